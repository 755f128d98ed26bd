"""The authenticator on a real store: each refusal's reason, the cache that one read per
request keeps true, allowlists and proxies, and last-use times written sparingly."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from memex.core.identity import ApiKey, Principal, Role, Tenant, User
from memex.errors import AuthenticationError, PermissionDeniedError
from memex.security.auth import Authenticator
from memex.security.keys import issue_key
from memex.storage.directory import Directory
from memex.storage.sqlite import SQLiteStore

if TYPE_CHECKING:
    from conftest import Backend  # the fixture's type (tests/conftest.py)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Counting:
    """A real directory whose calls are counted."""

    def __init__(self, inner: Directory) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(*args, **kwargs)

        return call


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "memex.db"


@pytest.fixture
def store(path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(path)
    opened.directory().add_tenant(Tenant("home", T0))
    opened.directory().add_tenant(Tenant("acme", T0))
    yield opened
    opened.close()


def add_key(store: SQLiteStore, tenant: str = "acme", **fields: Any) -> tuple[ApiKey, str]:
    record, whole = issue_key(tenant, fields.pop("role", Role.READ_WRITE), now=T0, **fields)
    store.directory().add_key(record)
    return record, whole


def auth(store: SQLiteStore, clock: Clock | None = None, **options: Any) -> Authenticator:
    return Authenticator(store.directory(), "home", clock=clock or Clock(), **options)


def bearer(whole: str) -> str:
    return f"Bearer {whole}"


def reason(call: Callable[[], object]) -> str:
    with pytest.raises((AuthenticationError, PermissionDeniedError)) as caught:
        call()
    return str(caught.value.reason)  # type: ignore[union-attr]


def test_a_valid_key_makes_its_principal(store: SQLiteStore) -> None:
    store.directory().add_user(User("acme", "bob", T0))
    record, whole = add_key(store, user="bob", role=Role.ADMIN)
    owner, owner_key = add_key(store, "home", role=Role.OWNER)
    a = auth(store)
    assert a.authenticate(bearer(whole), "127.0.0.1", []) == Principal(
        key_id=record.id, tenant="acme", role=Role.ADMIN, user="bob", home=False
    )
    assert a.authenticate(f"bearer  {owner_key} ", None, []).home is True
    assert a.authenticate(bearer(owner_key), None, []).key_id == owner.id


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "missing"),
        ("", "missing"),
        ("   ", "missing"),
        ("Basic dXNlcjpwYXNz", "malformed"),
        ("Bearer", "malformed"),
        ("Bearer ", "malformed"),
        ("Bearer not-a-key", "malformed"),
        ("Bearer mxk_abc_tooshort", "malformed"),
        ("Bearer mxk_ab-c_" + "a" * 52, "malformed"),
        ("Bearer xyz_abcdefabcdefabcd_" + "a" * 52, "malformed"),
        ("Bearer mxk_abcdefabcdefabcd_" + "a" * 52, "unknown"),
    ],
)
def test_a_refused_header_says_why(store: SQLiteStore, header: str | None, expected: str) -> None:
    assert reason(lambda: auth(store).authenticate(header, "127.0.0.1", [])) == expected


def test_a_wrong_secret_for_a_real_id_is_unknown(store: SQLiteStore) -> None:
    _, whole = add_key(store)
    wrong = whole[:-4] + ("aaaa" if not whole.endswith("aaaa") else "bbbb")
    a = auth(store)
    assert reason(lambda: a.authenticate(bearer(wrong), None, [])) == "unknown"
    a.authenticate(bearer(whole), None, [])  # cached now: the wrong one is still refused
    assert reason(lambda: a.authenticate(bearer(wrong), None, [])) == "unknown"


def test_unknown_ids_and_wrong_secrets_cost_the_same_reads(store: SQLiteStore) -> None:
    """A refusal reads the directory the same way, and compares one hash, whether or not
    the key id exists: its time does not tell which ids are real."""
    _, whole = add_key(store)
    counting = Counting(store.directory())
    a = Authenticator(counting, "home")  # type: ignore[arg-type]
    wrong_secret = whole[:-1] + ("a" if whole[-1] != "a" else "b")
    unknown_id = "mxk_zzzzzzzzzzzzzzzz_" + whole.split("_")[2]
    for presented in (wrong_secret, unknown_id):
        counting.calls.clear()
        assert reason(lambda p=presented: a.authenticate(bearer(p), None, [])) == "unknown"
        assert counting.calls == Counter({"generation": 1, "key": 1})

    # Timed in turns, so that the load of a busy machine falls on both alike.
    times: dict[str, list[float]] = {wrong_secret: [], unknown_id: []}
    for _ in range(40):
        for presented, taken in times.items():
            start = time.perf_counter()
            with pytest.raises(AuthenticationError):
                a.authenticate(bearer(presented), None, [])
            taken.append(time.perf_counter() - start)
    known, unknown = (statistics.median(taken) for taken in times.values())
    assert 0.7 < known / unknown < 1.4


def test_verified_keys_cost_one_read_per_request(store: SQLiteStore) -> None:
    _, whole = add_key(store)
    counting = Counting(store.directory())
    a = Authenticator(counting, "home", clock=Clock())  # type: ignore[arg-type]
    a.authenticate(bearer(whole), None, [])
    counting.calls.clear()
    for _ in range(20):
        a.authenticate(bearer(whole), None, [])
    assert counting.calls == Counter({"generation": 20})


def test_revocation_by_another_handle_is_seen_on_the_next_request(
    store: SQLiteStore, path: Path
) -> None:
    record, whole = add_key(store)
    a = auth(store)
    a.authenticate(bearer(whole), None, [])
    other = SQLiteStore(path)  # as the command line, in another process, would
    try:
        other.directory().set_key(record.with_changes(revoked_at=T0))
    finally:
        other.close()
    assert reason(lambda: a.authenticate(bearer(whole), None, [])) == "revoked"


def test_a_key_expires_at_its_time(store: SQLiteStore) -> None:
    _, whole = add_key(store, expires_at=T0 + timedelta(hours=1))
    clock = Clock()
    a = auth(store, clock)
    clock.now = T0 + timedelta(minutes=59)
    a.authenticate(bearer(whole), None, [])
    clock.now = T0 + timedelta(hours=1)
    assert reason(lambda: a.authenticate(bearer(whole), None, [])) == "expired"


def test_a_revoked_key_is_refused_before_its_address_is_checked(store: SQLiteStore) -> None:
    record, whole = add_key(store, allow=("10.0.0.0/8",))
    store.directory().set_key(record.with_changes(revoked_at=T0))
    assert reason(lambda: auth(store).authenticate(bearer(whole), "192.0.2.1", [])) == "revoked"


@pytest.mark.parametrize(
    ("tenant_allow", "key_allow", "peer", "allowed"),
    [
        (("10.0.0.0/8",), (), "10.1.2.3", True),
        (("10.0.0.0/8",), (), "11.1.2.3", False),
        (("10.0.0.0/8",), (), "::ffff:10.1.2.3", True),  # IPv4 mapped into IPv6
        (("10.0.0.0/8",), (), "2001:db8::1", False),
        (("2001:db8::/32",), (), "2001:db8:1::5", True),
        (("2001:db8::/32",), (), "2001:dead::5", False),
        (("10.0.0.0/8", "2001:db8::/32"), (), "2001:db8::5", True),
        ((), ("192.168.1.0/24",), "192.168.1.77", True),
        ((), ("192.168.1.0/24",), "192.168.2.77", False),
        ((), ("fd00::/8",), "fd12::1", True),
        ((), ("fd00::/8",), "fe80::1", False),
        (("10.0.0.0/8",), ("10.9.0.0/16",), "10.9.1.1", True),
        (("10.0.0.0/8",), ("10.9.0.0/16",), "10.8.1.1", False),  # the key narrows
        (("10.9.0.0/16",), ("10.0.0.0/8",), "10.8.1.1", False),  # and cannot widen
        (("10.0.0.0/8",), (), None, False),  # an unknown address passes no allowlist
        ((), (), None, True),
    ],
)
def test_allowlists_of_the_tenant_and_the_key(
    store: SQLiteStore,
    tenant_allow: tuple[str, ...],
    key_allow: tuple[str, ...],
    peer: str | None,
    allowed: bool,
) -> None:
    store.directory().set_tenant(Tenant("acme", T0, allow=tenant_allow))
    _, whole = add_key(store, allow=key_allow)
    a = auth(store)
    if allowed:
        assert a.authenticate(bearer(whole), peer, []).tenant == "acme"
    else:
        assert reason(lambda: a.authenticate(bearer(whole), peer, [])) == "address"


def test_an_allowlist_changed_elsewhere_applies_on_the_next_request(
    store: SQLiteStore, path: Path
) -> None:
    _, whole = add_key(store)
    a = auth(store)
    a.authenticate(bearer(whole), "203.0.113.9", [])
    other = SQLiteStore(path)
    try:
        other.directory().set_tenant(Tenant("acme", T0, allow=("10.0.0.0/8",)))
    finally:
        other.close()
    assert reason(lambda: a.authenticate(bearer(whole), "203.0.113.9", [])) == "address"
    a.authenticate(bearer(whole), "10.0.0.1", [])


def test_forwarded_for_counts_only_from_a_trusted_proxy(store: SQLiteStore) -> None:
    store.directory().set_tenant(Tenant("acme", T0, allow=("10.0.0.0/8",)))
    _, whole = add_key(store)
    direct = auth(store)
    # A client outside the allowlist cannot get in by naming an allowed address itself.
    spoofed = ["10.0.0.1"]
    assert reason(lambda: direct.authenticate(bearer(whole), "198.51.100.7", spoofed)) == (
        "address"
    )
    proxied = auth(store, trusted_proxies=["172.16.0.0/12"])
    assert proxied.authenticate(bearer(whole), "172.16.0.2", ["10.0.0.1"]).tenant == "acme"
    # The right-most address the trusted proxy did not write is the client.
    assert reason(
        lambda: proxied.authenticate(bearer(whole), "172.16.0.2", ["10.0.0.1, 198.51.100.7"])
    ) == ("address")
    assert (
        proxied.authenticate(
            bearer(whole), "172.16.0.2", ["198.51.100.7, 10.0.0.1", "172.16.5.5"]
        ).tenant
        == "acme"
    )
    # A peer that is no trusted proxy is the client, whatever the header says.
    assert reason(lambda: proxied.authenticate(bearer(whole), "198.51.100.7", spoofed)) == (
        "address"
    )


def test_last_use_is_written_at_most_once_a_minute_per_key(store: SQLiteStore) -> None:
    record, whole = add_key(store)
    counting = Counting(store.directory())
    clock = Clock()
    a = Authenticator(counting, "home", clock=clock)  # type: ignore[arg-type]
    a.authenticate(bearer(whole), None, [])
    assert store.directory().key(record.id).last_used_at == T0  # type: ignore[union-attr]
    for seconds in range(1, 60, 5):
        clock.now = T0 + timedelta(seconds=seconds)
        a.authenticate(bearer(whole), None, [])
    assert counting.calls["touch_keys"] == 1
    assert store.directory().key(record.id).last_used_at == T0  # type: ignore[union-attr]
    clock.now = T0 + timedelta(seconds=61)
    a.authenticate(bearer(whole), None, [])
    assert counting.calls["touch_keys"] == 2
    assert store.directory().key(record.id).last_used_at == clock.now  # type: ignore[union-attr]
    clock.now = T0 + timedelta(seconds=70)
    a.authenticate(bearer(whole), None, [])
    assert counting.calls["touch_keys"] == 2
    a.close()  # what was pending is written
    assert counting.calls["touch_keys"] == 3
    assert store.directory().key(record.id).last_used_at == clock.now  # type: ignore[union-attr]
    a.flush()  # nothing pending: nothing written
    assert counting.calls["touch_keys"] == 3


def test_a_read_only_store_authenticates_without_writing(store: SQLiteStore, path: Path) -> None:
    record, whole = add_key(store)
    reader = SQLiteStore(path, read_only=True)
    try:
        a = Authenticator(reader.directory(), "home")
        assert a.authenticate(bearer(whole), None, []).key_id == record.id
        a.close()
    finally:
        reader.close()
    assert store.directory().key(record.id).last_used_at is None  # type: ignore[union-attr]


def test_revocation_elsewhere_is_seen_on_every_backend(backend: Backend) -> None:
    from memex.security.admin import Admin

    first, second = backend.open(), backend.reopen()
    try:
        admin = Admin(first.directory(), "home")
        admin.create_tenant("acme", ["10.0.0.0/8"])
        issued = admin.create_key("acme", Role.READ_WRITE)
        authenticator = admin.authenticator()
        principal = authenticator.authenticate(bearer(issued.secret), "10.1.1.1", [])
        assert (principal.tenant, principal.role) == ("acme", Role.READ_WRITE)
        authenticator.close()  # the last use is written
        Admin(second.directory(), "home").revoke_key(issued.key.id)
        assert reason(lambda: authenticator.authenticate(bearer(issued.secret), None, [])) == (
            "revoked"
        )
        assert second.directory().key(issued.key.id).last_used_at is not None  # type: ignore[union-attr]
    finally:
        first.close()
        second.close()


class Paused:
    """A real directory whose ``key`` read pauses, in one thread, once the row is read:
    the request is overtaken there by others, as a busy server's threads are."""

    def __init__(self, inner: Directory, thread_name: str) -> None:
        self.inner = inner
        self.thread_name = thread_name
        self.reached = threading.Event()
        self.go_on = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def key(self, key_id: str) -> ApiKey | None:
        found = self.inner.key(key_id)
        if threading.current_thread().name == self.thread_name:
            self.reached.set()
            self.go_on.wait(10)
        return found


def test_a_key_read_before_a_revocation_is_never_kept_after_it(
    store: SQLiteStore, path: Path
) -> None:
    record, whole = add_key(store)
    paused = Paused(store.directory(), "slow")
    a = Authenticator(paused, "home", clock=Clock())  # type: ignore[arg-type]
    slow = threading.Thread(
        target=lambda: a.authenticate(bearer(whole), None, []), name="slow", daemon=True
    )
    slow.start()  # reads the key, not yet revoked, and is held up before caching it
    assert paused.reached.wait(10)
    other = SQLiteStore(path)  # meanwhile it is revoked elsewhere ...
    try:
        other.directory().set_key(record.with_changes(revoked_at=T0))
    finally:
        other.close()
    # ... a request sees the revocation, then the slow one goes on with its old copy
    assert reason(lambda: a.authenticate(bearer(whole), None, [])) == "revoked"
    paused.go_on.set()
    slow.join(10)
    for _ in range(3):  # the old copy was not kept: every later request is refused
        assert reason(lambda: a.authenticate(bearer(whole), None, [])) == "revoked"


def test_cached_tells_a_verified_key_without_reading_it(store: SQLiteStore) -> None:
    _, whole = add_key(store)
    a = auth(store)
    assert not a.cached(bearer(whole)) and not a.cached(None) and not a.cached("Basic x")
    a.authenticate(bearer(whole), None, [])
    assert a.cached(bearer(whole))
    assert not a.cached(bearer(whole[:-1] + ("a" if whole[-1] != "a" else "b")))
