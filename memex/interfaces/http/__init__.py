"""The HTTP server (``memex serve``): a thin adapter over ``Memex``."""
