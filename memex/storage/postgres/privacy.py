"""Erasure and anonymisation in a PostgreSQL store (``memex.storage.privacy``).

Each batch is one transaction bound to the tenant (row-level security as for any write)
that also sees the directory (``memex.directory``). Deleted rows stay in their table's
pages as dead tuples until the table is rewritten, and a plain VACUUM frees their space
without overwriting it: ``scrub`` therefore rewrites every table that held erased data
(``VACUUM FULL``: new files; the old ones are unlinked) and asks for a ``CHECKPOINT``.
PostgreSQL's write-ahead log keeps copies of the rows until its segments are recycled;
docs/security.md ("Privacy") says what an operator does about it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from memex.core.privacy import Selector, renamed_session, session_names
from memex.errors import ConflictError, StoreReadOnlyError
from memex.storage.postgres.postings import Totals
from memex.storage.postgres.writes import Counts
from memex.storage.privacy import Erased

if TYPE_CHECKING:
    import psycopg

    from memex.storage.postgres.connection import Database

    Conn = psycopg.Connection[Any]

PENDING = "privacy_scrub"
TABLES = (
    "memories",
    "memory_history",
    "memory_terms",
    "memory_term_totals",
    "memory_reads",
    "context_sessions",
    "context_session_memories",
    "change_counters",
    "tenants",
    "tenant_users",
    "tenant_projects",
    "api_keys",
    "tenant_quotas",
    "tenant_keys",
)
"""Every table that can hold a tenant's, a user's or a project's data."""
_BUMP = "UPDATE directory_generation SET value = value + 1 WHERE id = 1"
_OWE = (
    "INSERT INTO memex_meta (key, value) VALUES (%s, '1') ON CONFLICT (key) DO NOTHING",
    (PENDING,),
)


def _where(selector: Selector) -> tuple[str, list[Any]]:
    if selector.user is not None:
        return "tenant = %s AND user_id = %s", [selector.tenant, selector.user]
    if selector.project is not None:
        return "tenant = %s AND project = %s", [selector.tenant, selector.project]
    return "tenant = %s", [selector.tenant]


class PostgresPrivacy:
    """The privacy operations of one PostgreSQL store."""

    def __init__(
        self, db: Database, read_only: str | None, forget_opened: Callable[[str], None]
    ) -> None:
        """``forget_opened`` drops a tenant's opened values from memory
        (``storage.opened.Opened``): after an erasure or a renaming."""
        self._db = db
        self._read_only = read_only
        self._forget_opened = forget_opened

    def _run(self, selector: Selector, fn: Any, *, write: bool = True) -> Any:
        if write and self._read_only is not None:
            raise StoreReadOnlyError.refused(self._db.location, self._read_only)
        try:
            with self._db.transaction(selector.tenant) as conn:
                conn.execute("SELECT set_config('memex.directory', 'on', true)")
                return fn(conn)
        finally:
            if write:
                self._forget_opened(selector.tenant)

    def count(self, selector: Selector) -> int:
        """How many memories the selector covers."""
        where, params = _where(selector)
        query = f"SELECT count(*) FROM memories WHERE {where}"
        return int(
            self._run(selector, lambda c: c.execute(query, params).fetchone()[0], write=False)
        )

    def known(self, selector: Selector) -> bool:
        """Whether the store holds anything of the selector."""
        return bool(self._run(selector, lambda c: _known(c, selector), write=False))

    def superseding(self, tenant: str, ids: Sequence[str]) -> set[str]:
        """Which of these ids a memory of the tenant names as ``superseded_by``."""
        query = (
            "SELECT DISTINCT superseded_by FROM memories "
            "WHERE tenant = %s AND superseded_by = ANY(%s)"
        )
        [rows] = self._db.run(tenant, [(query, (tenant, list(ids)))])
        return {str(r[0]) for r in rows}

    def erase_batch(self, selector: Selector, ids: Sequence[str]) -> Erased:
        """Remove these memories of the selector, in one transaction."""
        found: Erased = self._run(selector, lambda c: _erase_batch(c, selector, ids))
        return found

    def erase_rest(self, selector: Selector) -> Erased:
        """Remove the selector's sessions, keys and directory entries."""
        found: Erased = self._run(selector, lambda c: _erase_rest(c, selector))
        return found

    def scrub_pending(self) -> bool:
        """Whether a scrub is owed."""
        [rows] = self._db.run(None, [("SELECT 1 FROM memex_meta WHERE key = %s", (PENDING,))])
        return bool(rows)

    def scrub(self) -> tuple[str, ...]:
        """Rewrite every table that held erased data, then checkpoint."""
        import psycopg

        if self._read_only is not None:
            raise StoreReadOnlyError.refused(self._db.location, self._read_only)
        notes: list[str] = []
        with self._db.pooled().connection() as conn:  # autocommit: VACUUM runs outside one
            for table in TABLES:
                try:
                    conn.execute(f"VACUUM (FULL) {table}")
                except psycopg.Error as exc:
                    notes.append(f"VACUUM FULL {table} failed ({_line(exc)}): run it as its owner")
            try:
                conn.execute("CHECKPOINT")
            except psycopg.Error as exc:
                notes.append(
                    f"CHECKPOINT refused ({_line(exc)}): a superuser or a member of "
                    "pg_checkpoint runs it; until then erased rows are in the WAL"
                )
            if not any(n.startswith("VACUUM") for n in notes):
                with conn.transaction():
                    conn.execute("SELECT set_config('memex.all_tenants', 'on', true)")
                    conn.execute("DELETE FROM memex_meta WHERE key = %s", (PENDING,))
        return tuple(notes)

    def anonymise(self, selector: Selector, pseudonym: str) -> dict[str, int]:
        """Rename the selector's user, in one transaction."""
        counts: dict[str, int] = self._run(selector, lambda c: _anonymise(c, selector, pseudonym))
        return counts


def _line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _known(conn: Conn, selector: Selector) -> bool:
    where, params = _where(selector)
    if conn.execute(f"SELECT 1 FROM memories WHERE {where} LIMIT 1", params).fetchone():
        return True
    if selector.kind == "tenant":
        found = conn.execute("SELECT 1 FROM tenants WHERE name = %s", (selector.tenant,))
        return found.fetchone() is not None
    table = "tenant_users" if selector.user else "tenant_projects"
    name = selector.user or selector.project
    query = f"SELECT 1 FROM {table} WHERE tenant = %s AND name = %s"
    if conn.execute(query, (selector.tenant, name)).fetchone():
        return True
    return bool(_named_sessions(conn, selector))


def _erase_batch(conn: Conn, selector: Selector, wanted: Sequence[str]) -> Erased:
    where, params = _where(selector)
    found = conn.execute(
        f"SELECT seq, id FROM memories WHERE {where} AND id = ANY(%s) FOR UPDATE",
        [*params, list(wanted)],
    ).fetchall()
    if not found:
        return Erased()
    tenant = selector.tenant
    keys = [int(r[0]) for r in found]
    ids = [str(r[1]) for r in found]
    totals = Totals()
    totals.remove(conn, tenant, ids)  # reads the rows: before they go
    past = conn.execute(
        "DELETE FROM memory_history WHERE tenant = %s AND id = ANY(%s)", (tenant, ids)
    ).rowcount
    sessions = [
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT session FROM context_session_memories "
            "WHERE tenant = %s AND id = ANY(%s)",
            (tenant, ids),
        )
    ]
    dropped = _drop_sessions(conn, tenant, sessions)
    conn.execute("DELETE FROM memory_reads WHERE tenant = %s AND seq = ANY(%s)", (tenant, keys))
    gone = conn.execute(
        "DELETE FROM memories WHERE tenant = %s AND seq = ANY(%s) "
        "RETURNING project, kind, tags, embedding IS NOT NULL",
        (tenant, keys),
    ).fetchall()
    counts = Counts()
    for project, kind, tags, _ in gone:
        counts.add(tenant, project, kind, tags)
    totals.write(conn)
    counts.write(conn)
    conn.execute(*_OWE)
    return Erased(
        tuple(ids),
        {
            "memories": len(gone),
            "versions": len(gone) + past,
            "vectors": sum(1 for row in gone if row[3]),
            "sessions": dropped,
        },
    )


def _drop_sessions(conn: Conn, tenant: str, sessions: Sequence[str]) -> int:
    if not sessions:
        return 0
    dropped = conn.execute(
        "DELETE FROM context_sessions WHERE tenant = %s AND session = ANY(%s)",
        (tenant, list(sessions)),
    ).rowcount
    conn.execute(
        "DELETE FROM context_session_memories WHERE tenant = %s AND session = ANY(%s)",
        (tenant, list(sessions)),
    )
    return int(dropped)


def _named_sessions(conn: Conn, selector: Selector) -> list[str]:
    name, value = ("user", selector.user) if selector.user else ("project", selector.project)
    rows = conn.execute(
        "SELECT session FROM context_sessions WHERE tenant = %s", (selector.tenant,)
    ).fetchall()
    return [str(r[0]) for r in rows if value is not None and session_names(str(r[0]), name, value)]


def _erase_rest(conn: Conn, selector: Selector) -> Erased:
    tenant = selector.tenant
    counts: dict[str, int] = {}
    if selector.kind == "tenant":
        counts["sessions"] = conn.execute(
            "DELETE FROM context_sessions WHERE tenant = %s", (tenant,)
        ).rowcount
        for table in ("context_session_memories", "change_counters", "memory_term_totals"):
            conn.execute(f"DELETE FROM {table} WHERE tenant = %s", (tenant,))
        for kind, table, column in (
            ("keys", "api_keys", "tenant"),
            ("users", "tenant_users", "tenant"),
            ("projects", "tenant_projects", "tenant"),
            ("quotas", "tenant_quotas", "tenant"),
            ("tenants", "tenants", "name"),
        ):
            counts[kind] = conn.execute(
                f"DELETE FROM {table} WHERE {column} = %s", (tenant,)
            ).rowcount
    else:
        counts["sessions"] = _drop_sessions(conn, tenant, _named_sessions(conn, selector))
        column, table, kind, name = (
            ("user_name", "tenant_users", "users", selector.user)
            if selector.user
            else ("project", "tenant_projects", "projects", selector.project)
        )
        if selector.project is not None:
            for cleared in ("change_counters", "memory_term_totals"):
                conn.execute(
                    f"DELETE FROM {cleared} WHERE tenant = %s AND project = %s", (tenant, name)
                )
        counts["keys"] = conn.execute(
            f"DELETE FROM api_keys WHERE tenant = %s AND {column} = %s", (tenant, name)
        ).rowcount
        counts[kind] = conn.execute(
            f"DELETE FROM {table} WHERE tenant = %s AND name = %s", (tenant, name)
        ).rowcount
    if any(counts.get(k) for k in ("keys", "users", "projects", "tenants")):
        conn.execute(_BUMP)  # servers caching keys read the directory again
    if any(counts.values()):
        conn.execute(*_OWE)
    counts.pop("quotas", None)  # settings, not data: not counted
    return Erased((), {k: int(v) for k, v in counts.items()})


def _anonymise(conn: Conn, selector: Selector, pseudonym: str) -> dict[str, int]:
    tenant, user = selector.tenant, str(selector.user)
    taken = conn.execute(
        "SELECT 1 FROM tenant_users WHERE tenant = %s AND name = %s UNION ALL "
        "SELECT 1 FROM memories WHERE tenant = %s AND user_id = %s LIMIT 1",
        (tenant, pseudonym, tenant, pseudonym),
    ).fetchone()
    if taken is not None:
        raise ConflictError(f"user {pseudonym!r} exists in tenant {tenant!r}")
    memories = conn.execute(
        "UPDATE memories SET user_id = %s WHERE tenant = %s AND user_id = %s",
        (pseudonym, tenant, user),
    ).rowcount
    past = conn.execute(
        "UPDATE memory_history SET user_id = %s WHERE tenant = %s AND user_id = %s",
        (pseudonym, tenant, user),
    ).rowcount
    sessions = _named_sessions(conn, selector)
    for old in sessions:
        query = (
            "SELECT sealed_text IS NOT NULL FROM context_sessions "
            "WHERE tenant = %s AND session = %s"
        )
        found = conn.execute(query, (tenant, old)).fetchone()
        if found is not None and found[0]:
            _drop_sessions(conn, tenant, [old])  # sealed: its seal is bound to its name
            continue
        new = renamed_session(old, user, pseudonym)
        for table in ("context_sessions", "context_session_memories"):
            conn.execute(
                f"UPDATE {table} SET session = %s WHERE tenant = %s AND session = %s",
                (new, tenant, old),
            )
    users = conn.execute(
        "INSERT INTO tenant_users (tenant, name, created_at) SELECT tenant, %s, created_at "
        "FROM tenant_users WHERE tenant = %s AND name = %s",
        (pseudonym, tenant, user),
    ).rowcount
    keys = conn.execute(
        "UPDATE api_keys SET user_name = %s WHERE tenant = %s AND user_name = %s",
        (pseudonym, tenant, user),
    ).rowcount
    conn.execute("DELETE FROM tenant_users WHERE tenant = %s AND name = %s", (tenant, user))
    if users or keys:
        conn.execute(_BUMP)
    counts = {
        "memories": memories,
        "versions": memories + past,
        "sessions": len(sessions),
        "keys": keys,
        "users": users,
    }
    if any(counts.values()):
        conn.execute(*_OWE)
    return counts
