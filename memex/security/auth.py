"""Who is calling: a request's key checked against the directory, with a cache that one
cheap read per request keeps true.

A verified key (found by the hash of the whole key presented) and its tenant stay in
memory until the directory's generation changes: a key revoked or an allowlist changed
by another process (the command line) is seen on the next request. When a key was last
used is kept in memory and written at most once a minute per key, never once per request.
"""

from __future__ import annotations

import contextlib
import hmac
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from memex.core.identity import (
    ApiKey,
    IPNetwork,
    Principal,
    Tenant,
    address_in,
    client_address,
    networks,
    parse_networks,
    split_key,
)
from memex.core.models import utcnow
from memex.errors import AuthenticationError, PermissionDeniedError, StoreError
from memex.security.keys import DUMMY_HASH, hash_key
from memex.storage.directory import Directory

TOUCH_EVERY = timedelta(minutes=1)
"""How often, at most, a key's last use is written."""
REFUSAL_FLOOR = 0.002
"""Seconds an unknown key's refusal takes at least (against timing which ids exist)."""
_MAX_CACHED = 10_000  # verified keys kept; beyond it the cache starts afresh


@dataclass(frozen=True, slots=True)
class _Checked:
    """A stored key or tenant with its allowlist parsed once."""

    allow: tuple[IPNetwork, ...]


@dataclass(frozen=True, slots=True)
class _Key(_Checked):
    key: ApiKey


@dataclass(frozen=True, slots=True)
class _Tenant(_Checked):
    tenant: Tenant


class Authenticator:
    """Turns a request's ``Authorization`` header and address into a Principal, or refuses."""

    def __init__(
        self,
        directory: Directory,
        home_tenant: str,
        trusted_proxies: Sequence[str] = (),
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._directory = directory
        self._home = home_tenant
        self._trusted = networks(parse_networks(trusted_proxies))
        self._clock = clock
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._keys: dict[str, _Key] = {}  # by the hash of the whole key
        self._tenants: dict[str, _Tenant] = {}
        self._used: dict[str, datetime] = {}  # last uses not yet written
        self._written: dict[str, datetime] = {}  # when each key's last use was last written

    def authenticate(
        self, authorization: str | None, peer: str | None, forwarded_for: Sequence[str] = ()
    ) -> Principal:
        """The caller a request's key makes it.

        Args:
            authorization: the raw ``Authorization`` header (``Bearer <key>``), if any.
            peer: the address of the connection's other end.
            forwarded_for: the ``X-Forwarded-For`` headers, honoured only when ``peer``
                is a trusted proxy.

        Raises:
            AuthenticationError: ``reason`` is missing, malformed, unknown, revoked or expired.
            PermissionDeniedError: ``reason`` address: the client's address is outside
                the tenant's or the key's allowlist.
        """
        presented = _bearer(authorization)
        found = split_key(presented)
        if found is None:
            raise AuthenticationError("the API key is malformed", reason="malformed")
        key_id, whole = found
        digest = hash_key(whole)
        now = self._clock()
        seen = self._refresh()
        stored = self._key(key_id, digest, seen)
        key = stored.key
        refusal = key.refusal(now)
        if refusal is not None:
            raise AuthenticationError(
                f"the API key {key.prefix} is {refusal}",
                reason=refusal,
                key_id=key.id,
                tenant=key.tenant,
            )
        tenant = self._tenant(key.tenant, seen)
        client = client_address(peer, forwarded_for, self._trusted)
        if not address_in(client, tenant.allow) or not address_in(client, stored.allow):
            where = "an unknown address" if client is None else str(client)
            raise PermissionDeniedError(
                f"requests with this key are not allowed from {where}",
                reason="address",
                key_id=key.id,
                tenant=key.tenant,
            )
        self._note_use(key.id, now)
        return Principal(
            key_id=key.id,
            tenant=key.tenant,
            role=key.role,
            user=key.user,
            project=key.project,
            home=key.tenant == self._home,
        )

    def client(self, peer: str | None, forwarded_for: Sequence[str] = ()) -> str | None:
        """The address a request came from (``X-Forwarded-For`` believed only from a
        trusted proxy), for the audit trail."""
        found = client_address(peer, forwarded_for, self._trusted)
        return None if found is None else str(found)

    def cached(self, authorization: str | None) -> bool:
        """Whether the key of this ``Authorization`` header is verified and cached, so
        checking it again reads nothing but the directory's generation (no I/O else)."""
        try:
            found = split_key(_bearer(authorization))
        except AuthenticationError:
            return False
        return found is not None and hash_key(found[1]) in self._keys

    def _key(self, key_id: str, digest: str, seen: int) -> _Key:
        """The stored key whose hash is ``digest``; one read of the directory when it is
        not cached, and the same work whether or not ``key_id`` exists."""
        cached = self._keys.get(digest)
        if cached is not None:
            return cached
        start = time.perf_counter()
        key = self._directory.key(key_id)
        expected = key.hash if key is not None else DUMMY_HASH
        if not hmac.compare_digest(digest, expected) or key is None:
            # Reading and decoding a stored key takes longer than finding none: a refusal
            # waits out a floor, so its time does not tell whether the id exists.
            time.sleep(max(0.0, start + REFUSAL_FLOOR - time.perf_counter()))
            raise AuthenticationError("the API key is not known", reason="unknown", key_id=key_id)
        found = _Key(allow=networks(key.allow), key=key)
        with self._lock:
            # Kept only if the directory has not changed since ``seen``, read before the
            # key was: else a copy read before a revocation could outlive it.
            if self._generation == seen:
                if len(self._keys) >= _MAX_CACHED:
                    self._keys.clear()
                self._keys[digest] = found
        return found

    def _tenant(self, name: str, seen: int) -> _Tenant:
        cached = self._tenants.get(name)
        if cached is not None:
            return cached
        tenant = self._directory.tenant(name)
        if tenant is None:  # a key outlived its tenant: nothing may use it
            raise AuthenticationError("the API key is not known", reason="unknown")
        found = _Tenant(allow=networks(tenant.allow), tenant=tenant)
        with self._lock:
            if self._generation == seen:  # as for keys
                self._tenants[name] = found
        return found

    def _refresh(self) -> int:
        """Forget what is cached when the directory changed (one cheap read); the
        generation read."""
        generation = self._directory.generation()
        with self._lock:
            # Only forward: a request that read an older generation (before a change
            # another request has seen) must not make the cache look older than it is.
            if self._generation is None or generation > self._generation:
                self._keys.clear()
                self._tenants.clear()
                self._generation = generation
        return generation

    def _note_use(self, key_id: str, now: datetime) -> None:
        with self._lock:
            self._used[key_id] = now
            last = self._written.get(key_id)
            if last is not None and now - last < TOUCH_EVERY:
                return
            due = {k: at for k, at in self._used.items() if self._due(k, now)}
            for k in due:
                self._written[k] = now
        self._write(due)

    def _due(self, key_id: str, now: datetime) -> bool:
        last = self._written.get(key_id)
        return last is None or now - last >= TOUCH_EVERY

    def _write(self, used: dict[str, datetime]) -> None:
        """Record last uses; a store that is busy or read-only keeps them for later (a
        last-use time is a hint, never worth failing or holding up a request for)."""
        if not used:
            return
        with contextlib.suppress(StoreError):
            self._directory.touch_keys(used)
            with self._lock:
                for key_id, at in used.items():
                    if self._used.get(key_id) == at:
                        del self._used[key_id]

    def flush(self) -> None:
        """Write every last use not yet written."""
        with self._lock:
            pending = dict(self._used)
            now = self._clock()
            for key_id in pending:
                self._written[key_id] = now
        self._write(pending)

    def close(self) -> None:
        """Write what is pending; the authenticator may still be used afterwards."""
        self.flush()


def _bearer(authorization: str | None) -> str:
    """The key of a ``Bearer`` header (missing or malformed: AuthenticationError)."""
    if authorization is None or not authorization.strip():
        raise AuthenticationError(
            "no API key: send the header Authorization: Bearer <key>", reason="missing"
        )
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "the Authorization header must read Bearer <key>", reason="malformed"
        )
    return token.strip()
