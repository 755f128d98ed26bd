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
_KEY_BITS = 40
_KEY_LIMIT = 1 << _KEY_BITS
_KEY_MASK = _KEY_LIMIT - 1
_THREAD_BITS = 24
_THREAD_LIMIT = 1 << _THREAD_BITS
_THREAD_MASK = _THREAD_LIMIT - 1


class Threads:
    """Every memory of one tenant up to a key, filed by thread in (time, key) order.

    Kept compact, as plain integers: a memory's place is its creation time and its
    thread's number in one integer, and a thread lists its members' creation times and
    keys likewise (about 0.3 kB a memory)."""

    def __init__(self) -> None:
        self._numbers: dict[Thread, int] = {}
        self._threads: list[Thread] = []  # per thread number: its scope and kind
        self._members: list[list[int]] = []  # per thread number: (created, key), packed
        self._place: dict[int, int] = {}  # key -> (created, thread number), packed
        self.usable = True  # False once a key or thread count outgrows the packing

    @classmethod
    def load(cls, conn: sqlite3.Connection, tenant: str, up_to: int) -> Threads:
        """The tenant's memories with keys up to ``up_to``."""
        threads = cls()
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM memories WHERE tenant = ? AND seq <= ?", (tenant, up_to)
        )
        for key, *scope, created in rows:
            threads._file(key, tuple(scope), created, append=True)
        for listed in threads._members:
            listed.sort()
        return threads

    def _file(self, key: int, thread: Thread, created: int, *, append: bool = False) -> None:
        number = self._numbers.get(thread)
        if number is None:
            number = self._numbers[thread] = len(self._members)
            self._threads.append(thread)
            self._members.append([])
        if not 0 <= key < _KEY_LIMIT or number >= _THREAD_LIMIT:
            self.usable = False
            return
        self._place[key] = (created << _THREAD_BITS) + number
        member = (created << _KEY_BITS) + key
        if append:
            self._members[number].append(member)
        else:
            insort(self._members[number], member)

    def put(self, rows: Iterable[Sequence[Any]]) -> None:
        """File these rows (``COLUMNS``): new memories, or memories that changed."""
        for key, *scope, created in rows:
            thread = tuple(scope)
            old = self._place.get(key)
            if old is not None:
                number = self._numbers.get(thread)
                if number is not None and old == (created << _THREAD_BITS) + number:
                    continue
                self._unfile(key, old)
            self._file(key, thread, created)

    def drop(self, keys: Iterable[int]) -> None:
        """Forget these memories (purged)."""
        for key in keys:
            old = self._place.pop(key, None)
            if old is not None:
                self._unfile(key, old)

    def _unfile(self, key: int, placed: int) -> None:
        listed = self._members[placed & _THREAD_MASK]
        member = ((placed >> _THREAD_BITS) << _KEY_BITS) + key
        at = bisect_left(listed, member)
        if at < len(listed) and listed[at] == member:
            del listed[at]

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
        if not self.usable:
            return None
        wanted = [(_AT[name], value) for name, value in scope.items() if name in _AT]
        found: dict[int, list[int]] = {}
        for key in dict.fromkeys(keys):
            placed = self._place.get(key)
            if placed is None:
                return None
            number = placed & _THREAD_MASK
            if any(self._threads[number][at] != value for at, value in wanted):
                continue  # a thread outside the scope has no member the filters pass
            listed = self._members[number]
            at = bisect_left(listed, ((placed >> _THREAD_BITS) << _KEY_BITS) + key)
            near: list[int] = []
            for step, end in ((-1, -1), (1, len(listed))):
                taken = 0
                i = at + step
                while i != end and taken < radius:
                    other = listed[i] & _KEY_MASK
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
