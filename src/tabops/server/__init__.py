"""HTTP transport: routers translate requests to service calls and results to JSON.

No model loading, SQL or pandas logic here; errors become HTTP only in ``errors.py``.
"""
