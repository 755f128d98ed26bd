"""The security operations of ``Memex`` (mixed into it): the store's administration,
each tenant's quotas, and the limits a server puts on requests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memex.core.limits import QuotaReport
from memex.core.models import Scope, utcnow
from memex.core.versions import KEEP
from memex.errors import ScopeError
from memex.handle import Handle

if TYPE_CHECKING:
    from memex.security.admin import Admin
    from memex.security.limits import LimitPolicy, Limits
    from memex.security.quotas import LimitEvents


class SecurityMixin(Handle):
    """``admin``, ``quota``, ``set_quota`` and ``server_limits``."""

    _root: bool

    @property
    def admin(self) -> Admin:
        """The store's tenants, users, projects, API keys and quotas (root handle only)."""
        if not self._root:
            raise ScopeError("administration covers the whole store; use the root handle")
        from memex.security.admin import Admin

        engine = self._engine
        return Admin(
            engine.store.directory(),
            engine.settings.tenant,
            quota=engine.quota,
            count=self._count,
            keys=engine.store.tenant_keys,
        )

    def _count(self, tenant: str) -> tuple[int, int]:
        """A tenant's memories that are not forgotten, and the bytes of their content."""
        found = self._engine.store.stats(Scope(tenant=tenant), utcnow())
        return found.memories + found.superseded + found.expired, found.content_bytes

    def _quota_tenant(self, tenant: str | None) -> str:
        own = str(self._scope.tenant)
        if tenant is None or tenant == own:
            return own
        if not self._root:
            raise ScopeError(f"this handle is confined to tenant {own!r}; got {tenant!r}")
        return tenant

    def quota(self, tenant: str | None = None) -> QuotaReport:
        """A tenant's quotas and what it uses of each (default: this handle's tenant;
        another only from the root handle). The hourly calls are known to a server only."""
        from memex.security.admin import Admin

        name = self._quota_tenant(tenant)
        engine = self._engine
        admin = Admin(
            engine.store.directory(),
            engine.settings.tenant,
            quota=engine.quota,
            count=self._count,
            keys=engine.store.tenant_keys,
        )
        return admin.quota(name)

    def set_quota(
        self,
        tenant: str | None = None,
        *,
        memories: int | None = KEEP,
        memories_soft: int | None = KEEP,
        storage_mb: int | None = KEEP,
        storage_mb_soft: int | None = KEEP,
        calls_per_hour: int | None = KEEP,
        calls_per_hour_soft: int | None = KEEP,
        projects: int | None = KEEP,
        projects_soft: int | None = KEEP,
        users: int | None = KEEP,
        users_soft: int | None = KEEP,
        reset: bool = False,
    ) -> QuotaReport:
        """Set a tenant's quotas (root handle only): a number sets a limit, None removes
        it, one left out is kept; ``reset`` starts from the defaults. A hard limit
        given alone brings its soft limit down to it."""
        if not self._root:
            raise ScopeError("quotas are set from the root handle (memex admin quota set)")
        given: dict[str, Any] = {
            "memories": memories,
            "memories_soft": memories_soft,
            "storage_mb": storage_mb,
            "storage_mb_soft": storage_mb_soft,
            "calls_per_hour": calls_per_hour,
            "calls_per_hour_soft": calls_per_hour_soft,
            "projects": projects,
            "projects_soft": projects_soft,
            "users": users,
            "users_soft": users_soft,
        }
        changes = {name: value for name, value in given.items() if value is not KEEP}
        name = self._quota_tenant(tenant)
        return self.admin.set_quota(name, changes, reset=reset)

    def server_limits(self, policy: LimitPolicy, events: LimitEvents | None = None) -> Limits:
        """The limits a server puts on each request (root handle only): rate limits,
        and, when the policy says so, tenants' quotas, which every write through this
        store's handles is then checked against."""
        if not self._root:
            raise ScopeError("a server's limits cover the whole store; use the root handle")
        from memex.security.limits import Limits, LocalLimiter
        from memex.security.quotas import LimitEvents, QuotaBook

        events = events if events is not None else LimitEvents(self._engine.store.audit().append)
        engine = self._engine
        book = None
        if policy.quotas:
            book = QuotaBook(engine.store.directory(), self._count, engine.settings.tenant, events)
            engine.quota = book  # a purge makes it count again (Engine.drop_caches)
        if policy.redis is not None:
            from memex.security.redis_limits import RedisLimiter

            return Limits(policy, RedisLimiter.connect(policy.redis, policy.redis_prefix),
                          book, events)  # fmt: skip
        return Limits(policy, LocalLimiter(), book, events)
