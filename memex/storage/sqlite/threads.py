"""A tenant's threads in memory: which memories sit next to which, in creation order.

A thread is the memories sharing a whole scope and kind (a conversation, a work
session). Hybrid recall gives a share of its best hits' scores to the memories next to
them in their thread; asked of SQL, that is two index range scans and a few row
lookups per hit. A process that already keeps a tenant's visibility in memory
(``visibility.py``) can keep its threads beside it: per thread, its members' creation
times and keys in order. The visibility state keeps it in step with every write it
replays (new memories, changed rows, purges).
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

COLUMNS = "seq, project, user_id, agent, session, kind, created_at"
"""What places a memory in its thread: its key, scope (but the tenant), kind and time."""

Thread = tuple[Any, ...]
_AT = {"project": 0, "user": 1, "agent": 2, "session": 3}
"""Where each scope field stands in a thread (``COLUMNS`` after the key)."""


class Threads:
    """Every memory of one tenant up to a key, filed by thread in (time, key) order."""

    def __init__(self) -> None:
        self._place: dict[int, tuple[Thread, int]] = {}
        self._members: dict[Thread, list[tuple[int, int]]] = {}

    @classmethod
    def load(cls, conn: sqlite3.Connection, tenant: str, up_to: int) -> Threads:
        """The tenant's memories with keys up to ``up_to``."""
        threads = cls()
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM memories WHERE tenant = ? AND seq <= ?", (tenant, up_to)
        )
        members = threads._members
        place = threads._place
        canon: dict[Thread, Thread] = {}  # one tuple per thread, shared by its members
        for key, *scope, created in rows:
            thread = canon.setdefault(tuple(scope), tuple(scope))
            place[key] = (thread, created)
            members.setdefault(thread, []).append((created, key))
        for listed in members.values():
            listed.sort()
        return threads

    def put(self, rows: Iterable[Sequence[Any]]) -> None:
        """File these rows (``COLUMNS``): new memories, or memories that changed."""
        for key, *scope, created in rows:
            thread = tuple(scope)
            old = self._place.get(key)
            if old == (thread, created):
                continue
            if old is not None:
                self._unfile(key, *old)
            self._place[key] = (thread, created)
            insort(self._members.setdefault(thread, []), (created, key))

    def drop(self, keys: Iterable[int]) -> None:
        """Forget these memories (purged)."""
        for key in keys:
            old = self._place.pop(key, None)
            if old is not None:
                self._unfile(key, *old)

    def _unfile(self, key: int, thread: Thread, created: int) -> None:
        listed = self._members[thread]
        at = bisect_left(listed, (created, key))
        if at < len(listed) and listed[at] == (created, key):
            del listed[at]
        if not listed:
            del self._members[thread]

    def around(
        self,
        keys: Sequence[int],
        radius: int,
        scope: Mapping[str, Any],
        passes: Callable[[int], bool | None],
    ) -> dict[int, list[int]] | None:
        """Up to ``radius`` members before and after each key that ``passes`` lets
        through, nearest first on each side, before then after, for keys whose thread is
        within ``scope`` (fields but the tenant); keys without any are left out, the
        others come in the order given. None if a key is not filed here, or ``passes``
        cannot tell (None) about a member it meets: ask SQL instead."""
        wanted = [(_AT[name], value) for name, value in scope.items() if name in _AT]
        found: dict[int, list[int]] = {}
        for key in dict.fromkeys(keys):
            placed = self._place.get(key)
            if placed is None:
                return None
            thread, created = placed
            if any(thread[at] != value for at, value in wanted):
                continue  # a thread outside the scope has no member the filters pass
            listed = self._members[thread]
            at = bisect_left(listed, (created, key))
            near: list[int] = []
            for step, end in ((-1, -1), (1, len(listed))):
                taken = 0
                i = at + step
                while i != end and taken < radius:
                    other = listed[i][1]
                    verdict = passes(other)
                    if verdict is None:
                        return None
                    if verdict:
                        near.append(other)
                        taken += 1
                    i += step
            if near:
                found[key] = near
        return found
