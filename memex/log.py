"""memex's warnings: something went wrong that costs no memory (an index that cannot be
saved, statistics written later), worth telling whoever watches.

They go to the standard ``logging`` module, under the ``memex`` loggers, unless an
interface has set ``sink`` (the command line prints them as one line each). ``logging``
is loaded only when there is a warning to give: a short-lived command does not pay for
it.
"""

from __future__ import annotations

from collections.abc import Callable

sink: Callable[[str], bool] | None = None
"""Where warnings go instead of ``logging``, if set; it returns False for a warning it
does not take, which then goes to ``logging``."""


def warning(name: str, message: str, *args: object) -> None:
    """Give a warning from module ``name``, ``message % args`` as ``logging`` formats it."""
    if sink is not None and sink(message % args if args else message):
        return
    import logging

    logging.getLogger(name).warning(message, *args)
