"""The audit chains of a PostgreSQL store (schema 6): appended in the transaction of the
change they record, after its other writes; the chain head's row lock (taken last, so
no two writers wait for each other in a circle) makes appends to one chain take turns
and keeps the numbers in commit order."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from memex.core.audit import (
    GENESIS,
    AuditEntry,
    AuditEvent,
    AuditHead,
    AuditTrail,
    head_of,
    next_entry,
)
from memex.core.models import utcnow
from memex.errors import ConflictError, StoreReadOnlyError
from memex.storage import audit as audit_rows

if TYPE_CHECKING:
    import psycopg

    from memex.storage.postgres.connection import Database

    Conn = psycopg.Connection[Any]

_COLUMNS = audit_rows.COLUMNS.format(user="user_name")
_MARKS = ", ".join(["%s"] * audit_rows.WIDTH)
_CHAIN = "SELECT set_config('memex.audit', %s, true)"
# Takes the head's row lock and reads it in one round trip (a new chain gets its head).
_LOCK_HEAD = (
    "INSERT INTO audit_heads (tenant, seq, hash) VALUES (%s, 0, %s) "
    "ON CONFLICT (tenant) DO UPDATE SET seq = audit_heads.seq RETURNING seq, hash"
)
_APPEND = (
    f"WITH entry AS (INSERT INTO audit_entries ({_COLUMNS}) VALUES ({_MARKS})) "
    "UPDATE audit_heads SET seq = %s, hash = %s WHERE tenant = %s"
)
_INSERT = f"INSERT INTO audit_entries ({_COLUMNS}) VALUES ({_MARKS})"


def _lock_head(conn: Conn, tenant: str, *, bound: bool = False) -> AuditHead:
    if not bound:  # a transaction bound to the tenant reaches its chain already
        conn.execute(_CHAIN, (tenant,))
    row = conn.execute(_LOCK_HEAD, (tenant, GENESIS)).fetchone()
    assert row is not None
    return AuditHead(tenant, int(row[0]), str(row[1]))


def append(
    conn: Conn, event: AuditEvent, at: datetime | None = None, *, bound: bool = False
) -> AuditEntry:
    """Append ``event`` to its tenant's chain, in ``conn``'s transaction (two round trips;
    ``bound``: the transaction is bound to that tenant already)."""
    head = _lock_head(conn, event.tenant, bound=bound)
    entry = next_entry(head, event, at or utcnow())
    conn.execute(_APPEND, [*audit_rows.values(entry), entry.seq, entry.hash, entry.tenant])
    return entry


def trail(conn: Conn, tenant: str, since: datetime | None, until: datetime | None) -> AuditTrail:
    """The chain's entries (within ``[since, until)``) in order, and its head, as
    ``conn``'s transaction (REPEATABLE READ) sees them."""
    conn.execute(_CHAIN, (tenant,))
    where, params = audit_rows.window(since, until)
    query = f"SELECT {_COLUMNS} FROM audit_entries WHERE tenant = %s{where.format('%s', '%s')}"
    rows = conn.execute(query + " ORDER BY seq", [tenant, *params]).fetchall()
    found = conn.execute("SELECT seq, hash FROM audit_heads WHERE tenant = %s", (tenant,))
    row = found.fetchone()
    head = None if row is None else AuditHead(tenant, int(row[0]), str(row[1]))
    return AuditTrail(tenant, tuple(audit_rows.entry(r) for r in rows), head)


def heads(conn: Conn) -> list[AuditHead]:
    """Every chain's head, by tenant (``conn`` does whole-store work)."""
    rows = conn.execute("SELECT tenant, seq, hash FROM audit_heads ORDER BY tenant").fetchall()
    return [AuditHead(str(t), int(s), str(h)) for t, s, h in rows if int(s) > 0]


def copy(conn: Conn, found: AuditTrail) -> int:
    """Append the entries of ``found`` that this chain lacks, as they are, and take its
    head; return how many (see the SQLite backend's ``copy``)."""
    ours = _lock_head(conn, found.tenant)
    if ours.seq:
        mine = [e for e in found.entries if e.seq == ours.seq]
        if not mine or mine[0].hash != ours.hash:
            raise ConflictError(
                f"the audit chain of {found.tenant!r} here is not a part of the one copied"
            )
    new = [e for e in found.entries if e.seq > ours.seq]
    with conn.cursor() as cur:
        cur.executemany(_INSERT, [audit_rows.values(e) for e in new])
    head = found.head or (head_of(new[-1]) if new else None)
    if head is not None and head.seq >= ours.seq:
        conn.execute(
            "UPDATE audit_heads SET seq = %s, hash = %s WHERE tenant = %s",
            (head.seq, head.hash, head.tenant),
        )
    return len(new)


class PostgresAuditLog:
    """The audit chains of a PostgreSQL store (``memex.storage.audit.AuditLog``)."""

    def __init__(self, db: Database, read_only: str | None, *, audited: bool = True) -> None:
        """``audited``: ``append`` appends (the store's ``audit`` setting)."""
        self._db = db
        self._read_only = read_only
        self._audited = audited

    def _writable(self) -> None:
        if self._read_only is not None:
            raise StoreReadOnlyError.refused(self._db.location, self._read_only)

    def append(self, event: AuditEvent) -> None:
        """Append ``event`` to its tenant's chain in a transaction of its own (nothing,
        in a store with the audit trail turned off)."""
        self._writable()
        if not self._audited:
            return
        with self._db.transaction(None) as conn:
            append(conn, event)

    def trail(
        self, tenant: str, since: datetime | None = None, until: datetime | None = None
    ) -> AuditTrail:
        """A chain's entries in order, with its head, read in one transaction."""
        with self._db.transaction(None, isolation="REPEATABLE READ READ ONLY") as conn:
            return trail(conn, tenant, since, until)

    def heads(self) -> list[AuditHead]:
        """Every chain's head, by tenant."""
        with self._db.transaction(None, all_tenants=True) as conn:
            return heads(conn)

    def copy(self, trail: AuditTrail) -> int:
        """Append the entries of another store's chain that this one lacks."""
        self._writable()
        with self._db.transaction(None) as conn:
            return copy(conn, trail)
