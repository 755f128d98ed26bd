"""Consistent copies of a store file: a backup taken while writers go on, and a restore.

Both use SQLite's online backup API, which copies the file page by page. A backup
reads through one read transaction held for the whole copy, so the copy is the store as
it was at one moment and no step has to start over when another process writes (in WAL
mode the writers are not held up; without the held transaction a busy store restarts
the copy after every write and may never finish). It copies 4 MiB per step and reports
progress after each. Being the whole file, the copy holds the directory too (tenants,
users, projects, API keys as hashes), so keys keep working on it.

A restore first copies the backup to a staging file beside the store, checks it
(a memex store, not from a newer memex, ``integrity_check`` clean), upgrades it and
gives it a new store id, then copies the staging file over the store in one write
transaction: every process sees the old content or the new, never a mix. The new
store id makes every derived index of the old content unusable (in-memory vector
indexes, files in ``<store>.ann/``, the ``<store>.lexical/`` index): each is rebuilt
from the restored tables. The directory is replaced with the rest; its generation is
lifted above the old one, so a process that keeps keys in memory reads them again. A
store holding memories or API keys is replaced only when forced.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from memex.core.progress import Progress, Step
from memex.errors import (
    SchemaVersionError,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    StoreReadOnlyError,
    ValidationError,
)
from memex.files import same_path
from memex.storage.sqlite.connection import (
    BUSY_CODES,
    DERIVED,
    SIDECARS,
    check_is_memex,
    connect,
    owned_paths,
    prepare,
    translate,
)
from memex.storage.sqlite.migrate import LATEST, current_version, upgrade

PAGES_PER_STEP = 1024


def backup(source: sqlite3.Connection, target: Path, progress: Progress | None) -> int:
    """Copy the store behind ``source`` (a connection of its own) into the file ``target``.

    Returns how many memories the copy holds. The copy is left in rollback-journal mode,
    one self-contained file; opening it as a store switches it back to WAL.
    """
    source.execute("BEGIN")
    try:
        # The first read fixes the snapshot the whole copy is taken from.
        memories = int(source.execute("SELECT count(*) FROM memories").fetchone()[0])
        dest = sqlite3.connect(str(target), isolation_level=None)
        try:
            source.backup(dest, pages=PAGES_PER_STEP, progress=_reporter(progress, "copying"))
            dest.execute("PRAGMA journal_mode = DELETE")
        finally:
            dest.close()
    except BaseException:
        _remove_sidecars(target)
        raise
    finally:
        if source.in_transaction:
            source.execute("ROLLBACK")
    return memories


def restore(
    target: Path,
    source: Path,
    *,
    busy_timeout: float,
    force: bool,
    progress: Progress | None = None,
) -> int:
    """Replace the content of the store at ``target`` by the backup ``source``.

    Returns how many memories the restored store holds. A store that holds memories is
    replaced only with ``force``.
    """
    if not source.is_file():
        raise ValidationError(f"no backup file at {source}")
    for own in owned_paths(target):
        if same_path(source, own):
            raise ValidationError(f"{source} is the store itself, not a backup of it")
    reason = prepare(target, read_only=False)  # creates the folder of a new store
    if reason is not None:
        raise StoreReadOnlyError.refused(str(target), reason)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.restore-", dir=target.parent)
    except OSError as exc:
        raise StoreError(f"cannot restore into {target}: {exc.strerror or exc}") from exc
    os.close(fd)
    staging = Path(name)
    try:
        memories = _stage(source, staging, progress)
        _replace(target, staging, busy_timeout=busy_timeout, force=force, progress=progress)
    finally:
        for path in (staging, *(staging.with_name(staging.name + s) for s in SIDECARS)):
            with contextlib.suppress(OSError):
                path.unlink()
    for suffix in DERIVED:
        _discard(target.with_name(target.name + suffix))
    return memories


def _stage(source: Path, staging: Path, progress: Progress | None) -> int:
    """Copy the backup to ``staging``, check it, bring it up to date, give it a new id."""
    what = str(source)
    try:
        reader = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read backup {source}: {exc}") from exc
    try:
        version = current_version(reader)
        check_is_memex(reader, what)
        if version == 0:
            raise StoreCorruptError(f"{source} is not a memex backup (no memex schema)")
        if version > LATEST:
            raise SchemaVersionError(
                f"backup {source} has schema version {version}; this memex understands up "
                f"to {LATEST} (upgrade memex)"
            )
        dest = sqlite3.connect(str(staging), isolation_level=None)
        try:
            # One read transaction, in case the "backup" is a store in use elsewhere.
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM sqlite_schema").fetchone()
            reader.backup(dest, pages=PAGES_PER_STEP, progress=_reporter(progress, "reading"))
        finally:
            dest.close()
    except sqlite3.Error as exc:
        raise _corrupt(exc, what) from exc
    finally:
        reader.close()
    conn = sqlite3.connect(str(staging), isolation_level=None)
    try:
        if progress is not None:
            progress(Step("checking", 0, None))
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check(5)").fetchall()]
        if problems != ["ok"]:
            raise StoreCorruptError(f"backup {source} is damaged: {problems[0]}")
        upgrade(conn, what)
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16)))) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        return int(conn.execute("SELECT count(*) FROM memories").fetchone()[0])
    except sqlite3.Error as exc:
        raise _corrupt(exc, what) from exc
    finally:
        conn.close()


def _replace(
    target: Path, staging: Path, *, busy_timeout: float, force: bool, progress: Progress | None
) -> None:
    """Copy ``staging`` over the store in one write transaction."""
    dest = connect(target, busy_timeout=busy_timeout, synchronous="FULL")
    try:
        tables = {r[0] for r in dest.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
        held = _count(dest, tables, "memories")
        keys = _count(dest, tables, "api_keys")
        if (held or keys) and not force:
            what = f"{held} memories" + (f" and {keys} API keys" if keys else "")
            raise ValidationError(
                f"store {target} holds {what}; restoring replaces them all "
                "(force it to go ahead: memex restore --force)"
            )
        counters = generation = 0
        if "change_counters" in tables:
            counters = int(
                dest.execute("SELECT coalesce(sum(version), 0) FROM change_counters").fetchone()[0]
            )
        if "directory_generation" in tables:
            found = dest.execute("SELECT max(generation) FROM directory_generation").fetchone()
            generation = int(found[0] or 0)
        src = sqlite3.connect(str(staging), isolation_level=None)
        try:
            # A context section cached by a process from the old content is keyed by
            # change counters: lifting every restored counter above any sum of the old
            # ones keeps a cached section from matching the restored content by chance.
            src.execute("UPDATE change_counters SET version = version + ?", (counters + 1,))
            # Likewise the directory's generation: a server holding the old keys sees it
            # grow, and reads the restored keys (a key revoked in the old directory but
            # not in the backup is valid again; one the backup lacks is gone).
            src.execute(
                "UPDATE directory_generation SET generation = generation + ?", (generation + 1,)
            )
            deadline = time.monotonic() + busy_timeout
            src.backup(dest, pages=-1, progress=_until(deadline, progress, target))
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise translate(exc, str(target)) from exc
    finally:
        dest.close()


def _count(conn: sqlite3.Connection, tables: set[str], table: str) -> int:
    """How many rows ``table`` holds (0 if the store has no such table yet)."""
    if table not in tables:
        return 0
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _until(
    deadline: float, progress: Progress | None, target: Path
) -> Callable[[int, int, int], None]:
    report = _reporter(progress, "restoring")

    def check(status: int, remaining: int, total: int) -> None:
        if status in BUSY_CODES and time.monotonic() > deadline:
            raise StoreLockedError(
                f"store {target} is locked by another process (gave up waiting)"
            ) from None
        report(status, remaining, total)

    return check


def _reporter(progress: Progress | None, stage: str) -> Callable[[int, int, int], None]:
    def report(status: int, remaining: int, total: int) -> None:
        if progress is not None and status not in BUSY_CODES:
            progress(Step(stage, total - remaining, total))

    return report


def _corrupt(exc: sqlite3.Error, what: str) -> StoreError:
    error = translate(exc, what)
    if isinstance(error, StoreCorruptError):
        return StoreCorruptError(f"{what} is not a readable memex backup ({exc})")
    return error


def _remove_sidecars(path: Path) -> None:
    for suffix in SIDECARS:
        with contextlib.suppress(OSError):
            path.with_name(path.name + suffix).unlink()


def _discard(folder: Path) -> None:
    """Remove a derived index folder (moved aside first, so no reader finds half of it)."""
    if not folder.exists():
        return
    with contextlib.suppress(OSError):
        aside = Path(tempfile.mkdtemp(prefix=folder.name + ".old-", dir=folder.parent))
        os.replace(folder, aside / "index")
        shutil.rmtree(aside, ignore_errors=True)
