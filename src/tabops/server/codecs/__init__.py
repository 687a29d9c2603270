"""Wire formats over the serving core's decisions: one module per protocol.

A codec decodes a request body into what the core takes (records, an encoded array), calls
the core, and encodes its decisions. It raises ``TabopsError`` subclasses only; statuses are
set in ``server/errors.py``.
"""
