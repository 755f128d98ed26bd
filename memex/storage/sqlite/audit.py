"""The audit chains of a SQLite store: appended inside the store's write transaction
(``BEGIN IMMEDIATE``, which is what makes appends take turns), read in one read
transaction with their heads."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from memex.core.audit import AuditEntry, AuditEvent, AuditHead, AuditTrail, head_of, next_entry
from memex.core.models import utcnow
from memex.errors import ConflictError
from memex.storage import audit as audit_rows
from memex.storage.sqlite.connection import Reader, Writer

_COLUMNS = audit_rows.COLUMNS.format(user="user_id")
_INSERT = f"INSERT INTO audit_entries ({_COLUMNS}) VALUES ({', '.join('?' * audit_rows.WIDTH)})"
_SET_HEAD = (
    "INSERT INTO audit_heads (tenant, seq, hash) VALUES (?, ?, ?) "
    "ON CONFLICT (tenant) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"
)


def _head(conn: sqlite3.Connection, tenant: str) -> AuditHead | None:
    row = conn.execute("SELECT seq, hash FROM audit_heads WHERE tenant = ?", (tenant,)).fetchone()
    return None if row is None else AuditHead(tenant, int(row[0]), str(row[1]))


def append(conn: sqlite3.Connection, event: AuditEvent, at: datetime | None = None) -> AuditEntry:
    """Append ``event`` to its tenant's chain (the caller holds the write transaction)."""
    entry = next_entry(_head(conn, event.tenant), event, at or utcnow())
    conn.execute(_INSERT, audit_rows.values(entry))
    conn.execute(_SET_HEAD, (entry.tenant, entry.seq, entry.hash))
    return entry


def trail(
    conn: sqlite3.Connection, tenant: str, since: datetime | None, until: datetime | None
) -> AuditTrail:
    """The chain's entries (within ``[since, until)``) in order, and its head, read in one
    transaction."""
    where, params = audit_rows.window(since, until)
    query = f"SELECT {_COLUMNS} FROM audit_entries WHERE tenant = ?{where.format(*'??')}"
    conn.execute("BEGIN")
    try:
        rows = conn.execute(query + " ORDER BY seq", [tenant, *params]).fetchall()
        head = _head(conn, tenant)
    finally:
        conn.execute("COMMIT")
    return AuditTrail(tenant, tuple(audit_rows.entry(r) for r in rows), head)


def heads(conn: sqlite3.Connection) -> list[AuditHead]:
    """Every chain's head, by tenant."""
    rows = conn.execute("SELECT tenant, seq, hash FROM audit_heads ORDER BY tenant").fetchall()
    return [AuditHead(str(t), int(s), str(h)) for t, s, h in rows]


def copy(conn: sqlite3.Connection, found: AuditTrail) -> int:
    """Append the entries of ``found`` (a whole chain, read elsewhere) that this chain
    lacks, as they are, and take its head; return how many. The chain must be a prefix
    of ``found``'s (ConflictError otherwise); the caller holds the write transaction."""
    ours = _head(conn, found.tenant)
    have = 0 if ours is None else ours.seq
    if have:
        mine = [e for e in found.entries if e.seq == have]
        if not mine or mine[0].hash != (ours.hash if ours else ""):
            raise ConflictError(
                f"the audit chain of {found.tenant!r} here is not a part of the one copied"
            )
    new = [e for e in found.entries if e.seq > have]
    conn.executemany(_INSERT, [audit_rows.values(e) for e in new])
    head = found.head or (head_of(new[-1]) if new else None)
    if head is not None and head.seq >= have:
        conn.execute(_SET_HEAD, (head.tenant, head.seq, head.hash))
    return len(new)


class SQLiteAuditLog:
    """The audit chains of a SQLite store (``memex.storage.audit.AuditLog``)."""

    def __init__(self, read: Reader, write: Writer, *, audited: bool = True) -> None:
        """``audited``: ``append`` appends (the store's ``audit`` setting)."""
        self._read = read
        self._write = write
        self._audited = audited

    def append(self, event: AuditEvent) -> None:
        """Append ``event`` to its tenant's chain in a transaction of its own (nothing,
        in a store with the audit trail turned off)."""
        if self._audited:
            self._write(lambda c: append(c, event))

    def trail(
        self, tenant: str, since: datetime | None = None, until: datetime | None = None
    ) -> AuditTrail:
        """A chain's entries in order, with its head, read in one transaction."""
        return self._read(lambda c: trail(c, tenant, since, until))

    def heads(self) -> list[AuditHead]:
        """Every chain's head, by tenant."""
        return self._read(heads)

    def copy(self, trail: AuditTrail) -> int:
        """Append the entries of another store's chain that this one lacks."""
        return self._write(lambda c: copy(c, trail))
