"""``Client`` and ``AsyncClient``: a memex server over HTTP, with the shape of ``Memex``."""
