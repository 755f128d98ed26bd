"""Each tenant's quotas on a server: what it may store (memories, content bytes), how many
calls it may make an hour, and how many projects and users it may have.

``QuotaBook`` is what a server checks them against. It keeps, per tenant, the quotas
read from the directory (read again when the directory's generation has changed,
looked at at most every ``SETTINGS_REFRESH`` seconds) and what the tenant uses,
counted from the store once and then kept up to date by this process's own writes,
counted again every ``USAGE_REFRESH`` seconds (and after a purge). No request counts
rows. So one process never lets a tenant past a hard quota; several processes writing
for one tenant may together pass it by what the others wrote since this one last
counted (at most ``USAGE_REFRESH`` seconds of their writes).

``LimitEvents`` is where soft-limit warnings and refusals are recorded: its two methods
are the one place each such event goes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from memex.actor import current_actor
from memex.core.audit import WARNING, AuditEvent
from memex.core.limits import (
    DEFAULT_QUOTAS,
    UNITS,
    UNLIMITED,
    Limit,
    QuotaReport,
    Quotas,
    Verdict,
    crossed_soft,
    judge,
    refusal_text,
    shown,
    warning_text,
)
from memex.errors import QuotaExceededError
from memex.storage.directory import Directory

log = logging.getLogger("memex.limits")

USAGE_REFRESH = 60.0
"""Seconds a tenant's counted memories and bytes are trusted before they are counted
again: the most that other processes' writes can go unseen."""
_MB = UNITS["storage_mb"]
SETTINGS_REFRESH = 2.0
"""Seconds between two looks at the directory's generation for changed quotas."""


class LimitEvents:
    """Where a server records soft-limit warnings and refusals (its audit trail).

    Each method is the one call site of its event; refusals of one key for one reason
    are passed on at most once every ``REFUSAL_EVERY`` seconds, with how many were held
    back meanwhile. The default writes them to the ``memex.limits`` log (names, counts,
    never content or keys)."""

    REFUSAL_EVERY = 10.0

    def __init__(self, record: Callable[[AuditEvent], None] | None = None) -> None:
        """``record`` appends an audit entry (a server's: its store's audit trail)."""
        self._record = record
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str | None, str, str | None], tuple[float, int]] = {}

    def on_quota_warning(self, tenant: str, quota: str, used: int, limit: Limit) -> None:
        """A tenant's use just reached a soft limit (once per crossing, per process): an
        audit entry in the tenant's chain, by the request's caller."""
        text = warning_text(quota, used, limit)
        log.warning("tenant %s is at its soft %s quota: %s", tenant, quota, text)
        if self._record is not None:
            event = AuditEvent(
                tenant, "quota.warning", "quota", current_actor(), quota, WARNING, detail=text
            )
            self._record(event)

    def on_refusal(
        self, tenant: str, key_id: str | None, code: str, quota: str | None, held_back: int
    ) -> None:
        """A request refused: ``code`` is ``rate_limited`` or ``quota_exceeded`` (with the
        ``quota``); ``held_back`` like refusals were not passed on before this one."""
        log.info(
            "refused %s for tenant %s key %s%s (%d more since the last)",
            code, tenant, key_id or "-", f" ({quota})" if quota else "", held_back,
        )  # fmt: skip

    def refused(self, tenant: str, key_id: str | None, code: str, quota: str | None) -> None:
        """Pass a refusal on to ``on_refusal``, unless a like one was passed on lately."""
        now = time.monotonic()
        slot = (tenant, key_id, code, quota)
        with self._lock:
            last = self._last.get(slot)
            if last is not None and now - last[0] < self.REFUSAL_EVERY:
                self._last[slot] = (last[0], last[1] + 1)
                return
            if len(self._last) > 10_000:
                self._last.clear()
            self._last[slot] = (now, 0)
        self.on_refusal(tenant, key_id, code, quota, 0 if last is None else last[1])


@dataclass(slots=True)
class _Usage:
    memories: int
    content_bytes: int
    counted_at: float
    calls: int = 0
    calls_window: float = 0.0


class QuotaBook:
    """A server's quotas per tenant, with what each tenant uses (see the module's doc)."""

    def __init__(
        self,
        directory: Directory,
        count: Callable[[str], tuple[int, int]],
        home_tenant: str,
        events: LimitEvents,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``count(tenant)`` counts a tenant's memories and content bytes in the store."""
        self._directory = directory
        self._count = count
        self._home = home_tenant
        self.events = events
        self._clock = clock
        self._lock = threading.Lock()
        self._quotas: dict[str, tuple[Quotas, bool]] = {}
        self._generation: int | None = None
        self._looked = float("-inf")
        self._usage: dict[str, _Usage] = {}

    # -- settings ----------------------------------------------------------------------

    def defaults(self, tenant: str) -> Quotas:
        """A tenant's quotas until some are set: none for the home tenant."""
        return UNLIMITED if tenant == self._home else DEFAULT_QUOTAS

    def quotas(self, tenant: str) -> Quotas:
        """The tenant's quotas (cached; see ``SETTINGS_REFRESH``)."""
        if self._clock() - self._looked < SETTINGS_REFRESH:  # asked on every request
            found = self._quotas.get(tenant)
            if found is not None:
                return found[0]
        return self._settings(tenant)[0]

    def _settings(self, tenant: str) -> tuple[Quotas, bool]:
        now = self._clock()
        if now - self._looked >= SETTINGS_REFRESH:
            self._looked = now
            generation = self._directory.generation()
            if generation != self._generation:
                with self._lock:
                    self._quotas.clear()
                    self._generation = generation
        found = self._quotas.get(tenant)
        if found is None:
            stored = self._directory.quotas(tenant)
            found = (stored, False) if stored is not None else (self.defaults(tenant), True)
            with self._lock:
                self._quotas[tenant] = found
        return found

    def changed(self) -> None:
        """Forget the quotas read: they were just set in this process."""
        with self._lock:
            self._quotas.clear()
            self._looked = float("-inf")

    # -- memories and bytes ------------------------------------------------------------

    def _current(self, tenant: str) -> _Usage:
        found = self._usage.get(tenant)
        now = self._clock()
        if found is None or now - found.counted_at >= USAGE_REFRESH:
            memories, size = self._count(tenant)  # outside the lock: it reads the store
            with self._lock:
                found = self._usage.get(tenant)
                if found is None:
                    found = self._usage[tenant] = _Usage(memories, size, now)
                else:
                    found.memories, found.content_bytes, found.counted_at = memories, size, now
        return found

    def admit(self, tenant: str, memories: int, content_bytes: int) -> None:
        """Count a write of ``memories`` holding ``content_bytes``, or refuse it whole
        (QuotaExceededError) if it would pass a hard quota."""
        quotas = self.quotas(tenant)
        if quotas.memories == quotas.storage_mb == Limit(None, None):
            return
        usage = self._current(tenant)
        warnings: list[tuple[str, int, Limit]] = []
        with self._lock:
            checks = (
                ("memories", usage.memories, memories, quotas.memories),
                ("storage_mb", usage.content_bytes, content_bytes, quotas.storage_mb),
            )
            for name, used, adding, limit in checks:
                unit = UNITS.get(name, 1)
                if judge(limit, used, adding, unit) is Verdict.REFUSE:
                    refusal = QuotaExceededError(refusal_text(name, used, adding, limit), name)
                    break
                if crossed_soft(limit, used, used + adding, unit):
                    warnings.append((name, used + adding, limit))
            else:
                refusal = None
                usage.memories += memories
                usage.content_bytes += content_bytes
        if refusal is not None:
            self.events.refused(tenant, None, "quota_exceeded", refusal.quota)
            raise refusal
        for name, used, limit in warnings:
            self.events.on_quota_warning(tenant, name, used, limit)

    def release(self, tenant: str, memories: int, content_bytes: int) -> None:
        """Uncount a write that failed after ``admit``."""
        with self._lock:
            usage = self._usage.get(tenant)
            if usage is not None:
                usage.memories = max(0, usage.memories - memories)
                usage.content_bytes = max(0, usage.content_bytes - content_bytes)

    def clear(self) -> None:
        """Count every tenant's use again on its next write (after a purge)."""
        with self._lock:
            self._usage.clear()

    # -- members and calls ---------------------------------------------------------------

    def admit_member(self, tenant: str, kind: str, existing: int) -> None:
        """Allow one more ``kind`` (``projects`` or ``users``) beside ``existing``, or
        refuse (QuotaExceededError); a warning at the soft limit."""
        limit: Limit = getattr(self.quotas(tenant), kind)
        verdict = judge(limit, existing, 1)
        if verdict is Verdict.REFUSE:
            self.events.refused(tenant, None, "quota_exceeded", kind)
            raise QuotaExceededError(refusal_text(kind, existing, 1, limit), kind)
        if crossed_soft(limit, existing, existing + 1):
            self.events.on_quota_warning(tenant, kind, existing + 1, limit)

    def note_calls(self, tenant: str, calls: int, next_hour: float, limit: Limit) -> None:
        """Keep the tenant's calls this hour, as the limiter counted them; a warning
        when they reach the soft limit of ``limit`` (its calls_per_hour quota)."""
        ends = self._clock() + next_hour
        with self._lock:
            usage = self._usage.get(tenant)
            if usage is None:
                usage = self._usage[tenant] = _Usage(0, 0, float("-inf"))
            before = usage.calls if abs(usage.calls_window - ends) < 1.0 else 0
            usage.calls, usage.calls_window = calls, ends
        if limit.soft is not None and before < limit.soft <= calls:  # crossed_soft, inline
            self.events.on_quota_warning(tenant, "calls_per_hour", calls, limit)

    # -- what is shown ----------------------------------------------------------------

    def warnings(self, tenant: str) -> str | None:
        """The ``Memex-Quota-Warning`` value for a tenant at or over soft limits, from
        what is known already (no I/O): ``memories 8123/10000, calls_per_hour 810/1000``."""
        usage = self._usage.get(tenant)
        found = self._quotas.get(tenant)
        if usage is None or found is None:
            return None
        quotas = found[0]
        calls = usage.calls if usage.calls_window > self._clock() else 0
        # The common case, asked on every answer: under every soft line (as judge sees it).
        soft = quotas.memories.soft
        if soft is None or usage.memories < soft or usage.memories <= 0:
            soft = quotas.storage_mb.soft
            used = usage.content_bytes
            if soft is None or used < soft * _MB or used <= 0:
                soft = quotas.calls_per_hour.soft
                if soft is None or calls < soft or calls <= 0:
                    return None
        parts = [
            warning_text(name, used, limit)
            for name, used, limit in (
                ("memories", usage.memories, quotas.memories),
                ("storage_mb", usage.content_bytes, quotas.storage_mb),
                ("calls_per_hour", calls, quotas.calls_per_hour),
            )
            if judge(limit, used, 0, UNITS.get(name, 1)) is Verdict.WARN
        ]
        return ", ".join(parts) or None

    def report(self, tenant: str, members: Callable[[], tuple[int, int]]) -> QuotaReport:
        """The tenant's quotas and use; ``members`` counts its projects and users."""
        quotas, defaults = self._settings(tenant)
        usage = self._current(tenant)
        projects, users = members()
        calls = usage.calls if usage.calls_window > self._clock() else 0
        return QuotaReport(
            tenant=tenant,
            quotas=quotas,
            used={
                "memories": usage.memories,
                "storage_mb": shown("storage_mb", usage.content_bytes),
                "calls_per_hour": calls,
                "projects": projects,
                "users": users,
            },
            defaults=defaults,
        )
