"""A PostgREST-v14-compatible gateway over a real PostgreSQL (``/rest/v1``)."""
