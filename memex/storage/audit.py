"""The AuditLog protocol: a store's audit chains (``Store.audit()``), and their rows,
alike in both backends (column order; times as integer microseconds).

Appends that go with a change travel in its transaction (``WriteBatch.audit``, and the
``audit`` argument of the directory's changes); ``append`` is for a refused request,
which changes nothing else. Entries are never changed or removed through memex.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from memex.core.audit import AuditEntry, AuditEvent, AuditHead, AuditTrail
from memex.core.models import from_micros, to_micros


class AuditLog(Protocol):
    """The audit chains of one store, one per tenant (``STORE_CHAIN`` for the rest)."""

    def append(self, event: AuditEvent) -> None:
        """Append ``event`` to its tenant's chain in a transaction of its own."""
        ...

    def trail(
        self, tenant: str, since: datetime | None = None, until: datetime | None = None
    ) -> AuditTrail:
        """A tenant's entries (made in ``[since, until)``, or all) in order, with the
        chain's head, read in one transaction."""
        ...

    def heads(self) -> builtins.list[AuditHead]:
        """The head of every chain in the store, by tenant."""
        ...

    def copy(self, trail: AuditTrail) -> int:
        """Append, as they are, the entries of a whole chain read from another store that
        this store's chain of that tenant lacks, and take its head; return how many.

        Raises:
            ConflictError: this store's chain is not a beginning of ``trail``'s.
        """
        ...


COLUMNS = (
    "tenant, seq, at, key_id, {user}, action, resource_type, resource_id, outcome, client, "
    "user_agent, count, detail, prev_hash, hash"
)
"""The entries' columns; ``{user}`` is the backend's name for the user's column."""
WIDTH = 15


def values(entry: AuditEntry) -> tuple[Any, ...]:
    """An entry's values in ``COLUMNS`` order."""
    return (
        entry.tenant,
        entry.seq,
        to_micros(entry.at),
        entry.key_id,
        entry.user,
        entry.action,
        entry.resource_type,
        entry.resource_id,
        entry.outcome,
        entry.client,
        entry.user_agent,
        entry.count,
        entry.detail,
        entry.prev_hash,
        entry.hash,
    )


def entry(row: Sequence[Any]) -> AuditEntry:
    """The entry of a row read in ``COLUMNS`` order."""
    return AuditEntry(
        tenant=str(row[0]),
        seq=int(row[1]),
        at=from_micros(int(row[2])),
        key_id=str(row[3]),
        user=row[4],
        action=str(row[5]),
        resource_type=str(row[6]),
        resource_id=str(row[7]),
        outcome=str(row[8]),
        client=row[9],
        user_agent=row[10],
        count=int(row[11]),
        detail=str(row[12]),
        prev_hash=str(row[13]),
        hash=str(row[14]),
    )


def window(since: Any, until: Any) -> tuple[str, list[int]]:
    """The condition (``at`` in ``[since, until)``, with ``{}`` for each placeholder) and
    its values, for datetimes or None."""
    where, params = "", []
    if since is not None:
        where += " AND at >= {}"
        params.append(to_micros(since))
    if until is not None:
        where += " AND at < {}"
        params.append(to_micros(until))
    return where, params
