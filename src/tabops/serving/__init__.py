"""The serving core: the one way into a loaded model, whatever the route or protocol.

Transports (the HTTP fast path, the FastAPI routes, jobs, file scoring) hand the core what
they decoded (records, an encoded array, a frame, an entity id) with a ``RequestContext``;
the core resolves the version, asks the ``authorize`` hook, scores, turns probabilities into
``Decisions`` in one place, and hands every decision to the prediction sink exactly once.
Rules: no web framework, no wire format, no status codes here; errors are ``TabopsError``.
"""
