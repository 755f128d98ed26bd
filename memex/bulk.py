"""Import, export, backup and restore: the bulk operations of a Memex handle.

Mixed into ``Memex``. An export reads one consistent snapshot and ``export(path)``
writes it through ``memex.files``, so it never lands on the store's own files and never
leaves a half-written file in place of an older one. A backup is a page-level copy of
the whole store file; a restore puts one back (see ``memex.storage.sqlite.backup``).
"""

from __future__ import annotations

import builtins
import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memex.core.ids import new_id, stored_id
from memex.core.models import Memory, Scope, utcnow
from memex.core.progress import Progress, Tally
from memex.core.query import Filters, selects
from memex.core.records import Record, build_record, parse_lines, reassign_ids, to_line, with_line
from memex.errors import ScopeError, StoreError, StoreLockedError, ValidationError
from memex.files import device_full, no_space, output_file, output_path
from memex.insertion import InsertionMixin
from memex.settings import Settings, located
from memex.storage.open import restore_store

if TYPE_CHECKING:
    from memex.engine import Engine

_REPORT_EVERY = 500


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """A backup just written: where it is, how many memories (every tenant, forgotten
    ones included) and how many bytes it holds."""

    path: str
    memories: int
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"path": self.path, "memories": self.memories, "size_bytes": self.size_bytes}


class BulkMixin(InsertionMixin):
    """``import_lines``, ``export_lines``, ``export``, ``iter_all``, ``backup``."""

    _engine: Engine
    _scope: Scope
    _root: bool

    # -- import ----------------------------------------------------------------------

    def import_lines(
        self, lines: Iterable[str], *, progress: Progress | None = None
    ) -> builtins.list[Memory]:
        """Import JSON Lines records, all or nothing; a bad line raises with its number.

        Records keep what an export carries: ids, versions, times, access statistics,
        forgetting and, from ``export_lines(history=True)``, past versions. On a handle
        scoped below its tenant every record gets a new id instead (links between the
        file's records follow), so the import works alike whichever ids exist elsewhere.
        """
        self._check_writable()
        now = utcnow()
        records: builtins.list[Record] = []
        explicit: builtins.list[str] = []
        limit = self._engine.settings.max_content_bytes
        for number, raw in parse_lines(lines):
            try:
                record = build_record(raw, within=self._scope, now=now, max_content_bytes=limit)
            except ValidationError as exc:
                raise with_line(number, exc) from exc
            except ScopeError as exc:
                raise with_line(number, ValidationError(str(exc))) from exc
            records.append(record)
            if raw.get("id"):
                explicit.append(record.memory.id)
        if not self._chooses_ids:
            records = reassign_ids(records, _fresh_id)
            explicit = []
        return self._insert(
            [r.memory for r in records],
            [],
            progress,
            explicit,
            [past for r in records for past in r.past],
            action="memory.import",
        )

    # -- export ----------------------------------------------------------------------

    def export_lines(
        self,
        *,
        include_deleted: bool = False,
        history: bool = False,
        progress: Progress | None = None,
        ids: Sequence[str] | None = None,
        scope: Scope | Mapping[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> Iterator[str]:
        """Every memory in scope as JSON Lines records (no line ends), oldest first.

        Superseded, pending and expired memories are included, forgotten ones with
        ``include_deleted``; ``history`` adds each memory's past versions, so that
        ``import_lines`` restores ``history`` as it was. The records are read from one
        snapshot, taken when iteration starts: writes made meanwhile are not seen.

        A selection narrows it: ``ids`` (those memories only, unknown ones left out),
        a narrower ``scope``, ``kinds``, ``tags`` (all of them) and a creation-time
        window ``[since, until)``, as ``list`` reads them.
        """
        selection = self._selection(scope, kinds, tags, since, until)
        if ids is not None:
            yield from self._export_ids(selection, ids, include_deleted, history, progress)
            return
        self._flush_access()
        snapshot = self._engine.store.snapshot(
            selection.scope, include_deleted=include_deleted, history=history
        )
        narrowed = selection != Filters(scope=selection.scope)
        try:
            tally = Tally(progress, "exporting", None if narrowed else snapshot.total)
            pending = 0
            for memory, past in snapshot:
                if narrowed and not selects(selection, memory):
                    continue
                yield to_line(memory, past if history else None)
                pending += 1
                if pending == _REPORT_EVERY:
                    tally.advance(pending)
                    pending = 0
            tally.advance(pending)
        finally:
            snapshot.close()

    def _selection(
        self,
        scope: Scope | Mapping[str, Any] | None,
        kinds: Sequence[str] | None,
        tags: Sequence[str] | None,
        since: datetime | str | None,
        until: datetime | str | None,
    ) -> Filters:
        """An export's selection, validated as a listing's filters are."""
        within = self._scope.narrow(Scope.of(scope))
        return Filters.build(scope=within, kinds=kinds, tags=tags, since=since, until=until)

    def _export_ids(
        self,
        selection: Filters,
        ids: Sequence[str],
        include_deleted: bool,
        history: bool,
        progress: Progress | None,
    ) -> Iterator[str]:
        """The lines of the memories named by id: read in one statement, oldest first
        (a few marked memories need no pass over the whole scope)."""
        if isinstance(ids, str) or not isinstance(ids, Iterable):
            raise ValidationError("ids must be a list of memory ids")
        wanted = list(dict.fromkeys(stored_id(i) for i in ids))
        store = self._engine.store
        found = store.fetch(
            Filters(
                scope=selection.scope, include_deleted=include_deleted, include_superseded=True
            ),
            wanted,
        )
        chosen = sorted(
            (m for m in found.values() if selects(selection, m)),
            key=lambda m: (m.created_at, m.id),
        )
        tally = Tally(progress, "exporting", len(chosen))
        for memory in chosen:
            past = None
            if history:
                versions = store.history(self._tenant(), memory.id)
                past = [v for v in versions if v.version < memory.version]
            yield to_line(memory, past)
            tally.advance(1)

    def export(
        self,
        path: str | Path,
        *,
        include_deleted: bool = False,
        history: bool = False,
        progress: Progress | None = None,
        ids: Sequence[str] | None = None,
        scope: Scope | Mapping[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> int:
        """Write ``export_lines`` to the file ``path``; return how many memories it holds.

        The file is written beside ``path`` and renamed over it once complete, so a
        failure leaves ``path`` as it was. The store's own files are refused.
        """
        count = 0
        with output_file(path, owned=self._engine.store.info().files) as handle:
            for line in self.export_lines(
                include_deleted=include_deleted,
                history=history,
                progress=progress,
                ids=ids,
                scope=scope,
                kinds=kinds,
                tags=tags,
                since=since,
                until=until,
            ):
                handle.write(line + "\n")
                count += 1
        return count

    def iter_all(self, *, include_deleted: bool = False) -> Iterator[Memory]:
        """Every memory in scope, oldest first, from one snapshot: superseded, pending and
        expired ones included, forgotten ones only with ``include_deleted``."""
        snapshot = self._engine.store.snapshot(
            self._scope, include_deleted=include_deleted, history=False
        )
        try:
            for memory, _ in snapshot:
                yield memory
        finally:
            snapshot.close()

    # -- backup ----------------------------------------------------------------------

    @classmethod
    def restore(
        cls,
        backup: str | Path,
        path: str | Path | None = None,
        settings: Settings | None = None,
        *,
        force: bool = False,
        progress: Progress | None = None,
        **overrides: Any,
    ) -> int:
        """Replace the store at ``path`` (as ``open`` finds it) by the backup file ``backup``;
        return how many memories it now holds (every tenant, forgotten ones included).

        The backup must be a memex store no newer than this memex, and pass SQLite's
        integrity check. A store that holds memories is replaced only with ``force``.
        The swap is one transaction: processes that have the store open see the old
        content or the restored one, and rebuild their search indexes from the latter.
        """
        location, settings = located(path, settings, overrides)
        return restore_store(location, backup, settings, force=force, progress=progress)

    def backup(self, path: str | Path, *, progress: Progress | None = None) -> BackupInfo:
        """Copy the whole store (every tenant) to the new file ``path``, consistently,
        while other processes go on writing. Root handle only.

        The copy is a complete store: ``Memex.open`` it, or put it back with
        ``Memex.restore``. Derived search indexes are rebuilt, not copied.
        """
        if not self._root:
            raise ScopeError("a backup copies the whole store; call it on the root handle")
        store = self._engine.store
        self._flush_access()
        with output_path(path, owned=store.info().files) as temp:
            try:
                memories = store.backup(temp, progress)
            except StoreError as exc:
                # SQLite reports a full device under the copy as if it held the store.
                if isinstance(exc, StoreLockedError) or not device_full(temp):
                    raise
                raise no_space(path) from exc
        size = os.path.getsize(os.path.realpath(path))
        return BackupInfo(str(path), memories, size)

    def _flush_access(self) -> None:
        """Write this process's pending read statistics, so a copy includes them."""
        with contextlib.suppress(StoreError):  # a busy or full store: they follow later
            self._engine.access.flush()


def _fresh_id(memory: Memory) -> str:
    return new_id(int(memory.created_at.timestamp() * 1000))
