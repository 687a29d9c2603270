"""Who may call the API and what it may do: API keys, scopes, rate limits, audit.

Keys are stored as hashes only. ``AccessPolicy`` is the serving core's ``authorize`` hook,
so every route (the fast path included) asks it; the stores below it do the I/O.
"""
