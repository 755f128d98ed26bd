"""``memex tui``: a terminal memory inspector (Textual), on a local store or a memex server.

It holds one ``Memex`` or ``Client`` and calls only the methods the two share: search
(``recall``), a filtered listing a page at a time (``list``), details and versions
(``history``), ``forget``, ``purge``, ``export`` and ``stats``. Every call runs in a
worker thread, so the screen never waits for the store. Stored text is shown literally
(``memex.core.literal``): never read as markup, control characters as escapes.
"""
