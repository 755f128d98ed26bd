"""Where a request comes from, and a key over its lifetime.

In process, the peer address is set on httpx's ASGI transport (IPv4 and IPv6 peers,
through trusted proxies or not); where the peer is what the network makes it, a real
``memex serve`` on loopback answers (its uvicorn, its address handling), and the command
line changes the store under it.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from asgi import Api, open_root
from test_serve import ServeProcess, serve

from memex.core.identity import Role
from memex.core.models import utcnow

ROOT = Path(__file__).resolve().parents[2]
PROXY = ("10.0.0.1", 443)
PROXIES = ("10.0.0.0/30", "fd00::/8")

_names = itertools.count()


class Place:
    """A store, the app over it (trusting ``PROXIES``), and a tenant per test."""

    def __init__(self, folder: Path) -> None:
        self.root = open_root(folder / "memex.db", "home")
        self.root.admin.ensure_owner()
        self.api = Api(self.root, trusted_proxies=PROXIES)

    def tenant(self, allow: list[str] | None = None) -> str:
        """A new tenant (with ``allow`` as its allowlist)."""
        name = f"t{next(_names)}"
        self.root.admin.create_tenant(name, allow=allow or ())
        return name

    def key(self, tenant: str, role: Role = Role.READ_WRITE, **options: object) -> str:
        """A new key of ``tenant``."""
        return self.root.admin.create_key(tenant, role, **options).secret  # type: ignore[arg-type]

    def status(
        self,
        key: str,
        peer: str | tuple[str, int],
        forwarded: str | list[str] | None = None,
        path: str = "/v1/stats",
    ) -> tuple[int, str | None]:
        """The status (and error code) of a request with ``key`` from ``peer``."""
        where = peer if isinstance(peer, tuple) else (peer, 50000)
        headers: list[tuple[str, str]] = []
        for hop in [forwarded] if isinstance(forwarded, str) else forwarded or []:
            headers.append(("x-forwarded-for", hop))
        answer = self.api.request("GET", path, key, peer=where, headers=httpx.Headers(headers))
        code = answer.json()["error"]["code"] if answer.status_code >= 400 else None
        return answer.status_code, code


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Place]:
    made = Place(tmp_path_factory.mktemp("addresses"))
    yield made
    made.api.close()
    made.root.close()


OK = (200, None)
DENIED = (403, "permission_denied")
UNAUTHENTICATED = (401, "unauthenticated")


# -- allowlists ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant_allow", "key_allow", "peer", "answer"),
    [
        # One host, IPv4 and IPv6, on the tenant or on the key.
        (["203.0.113.5/32"], [], "203.0.113.5", OK),
        (["203.0.113.5/32"], [], "203.0.113.6", DENIED),
        (["203.0.113.5"], [], "203.0.113.5", OK),  # a bare address is one host
        ([], ["2001:db8::1/128"], "2001:db8::1", OK),
        ([], ["2001:db8::1/128"], "2001:db8::2", DENIED),
        ([], ["2001:db8::1/128"], "203.0.113.5", DENIED),  # another family
        # Wider networks.
        (["198.51.100.0/24"], [], "198.51.100.255", OK),
        (["198.51.100.0/24"], [], "198.51.101.0", DENIED),
        ([], ["2001:db8:1::/48"], "2001:db8:1:ffff::9", OK),
        ([], ["2001:db8:1::/48"], "2001:db8:2::1", DENIED),
        # Both lists: the request must pass each.
        (["10.0.0.0/8"], ["10.1.0.0/16"], "10.1.2.3", OK),
        (["10.0.0.0/8"], ["10.1.0.0/16"], "10.2.0.1", DENIED),
        (["10.1.0.0/16"], ["10.0.0.0/8"], "10.2.0.1", DENIED),
        # Either family in one list.
        (["192.0.2.0/24", "2001:db8::/32"], [], "2001:db8:ab::1", OK),
        # An IPv4 address mapped into IPv6 is the IPv4 address.
        (["192.0.2.0/24"], [], "::ffff:192.0.2.7", OK),
        (["192.0.2.0/24"], [], "::ffff:198.51.100.1", DENIED),
        ([], ["::ffff:192.0.2.0/120"], "192.0.2.7", OK),
        # No list: from anywhere; a peer that is no address passes no list.
        ([], [], "198.51.100.1", OK),
        (["0.0.0.0/0", "::/0"], [], "not-an-address", DENIED),
    ],
)
def test_a_request_passes_the_tenants_and_the_keys_allowlists(
    place: Place,
    tenant_allow: list[str],
    key_allow: list[str],
    peer: str,
    answer: tuple[int, str | None],
) -> None:
    tenant = place.tenant(tenant_allow)
    key = place.key(tenant, allow=key_allow)
    assert place.status(key, peer) == answer


def test_an_allowlist_changed_over_http_holds_from_the_next_request(place: Place) -> None:
    tenant = place.tenant()
    owner = place.key(tenant, Role.OWNER)
    reader = place.key(tenant, Role.READ_ONLY)
    inside, outside = ("2001:db8:5::1", 1), ("2001:db8:6::1", 1)
    changed = place.api.request(
        "PATCH", "/v1/tenant", owner, peer=inside, json={"allow": ["2001:db8:5::/48"]}
    )
    assert changed.status_code == 200 and changed.json()["allow"] == ["2001:db8:5::/48"]
    assert place.status(reader, inside) == OK
    assert place.status(reader, outside) == DENIED
    key_id = reader.split("_")[1]
    narrowed = place.api.request(
        "PATCH", f"/v1/keys/{key_id}", owner, peer=inside, json={"allow": ["2001:db8:5::7"]}
    )
    assert narrowed.json()["allow"] == ["2001:db8:5::7/128"]
    assert place.status(reader, inside) == DENIED
    assert place.status(reader, ("2001:db8:5::7", 1)) == OK


# -- X-Forwarded-For -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded", "answer"),
    [
        # From a peer that is no trusted proxy the header proves nothing.
        ("203.0.113.9", "198.51.100.7", DENIED),
        ("198.51.100.7", "203.0.113.9", OK),
        ("2001:db8::9", "198.51.100.7", DENIED),
        # From a trusted proxy: the right-most address that is no trusted proxy.
        (PROXY[0], "198.51.100.7", OK),
        (PROXY[0], "203.0.113.9", DENIED),
        (PROXY[0], "198.51.100.7, 10.0.0.2", OK),  # a second proxy of ours in front
        (PROXY[0], "198.51.100.7, 203.0.113.9", DENIED),  # the client wrote the first
        (PROXY[0], ["198.51.100.7", "203.0.113.9"], DENIED),  # headers chain in order
        (PROXY[0], ["203.0.113.9", "198.51.100.7"], OK),
        ("fd00::1", "198.51.100.7", OK),  # an IPv6 proxy, an IPv4 client
        ("::ffff:10.0.0.1", "198.51.100.7", OK),  # the proxy's IPv4 address, mapped
        # A malformed chain from a trusted proxy: the client is unknown.
        (PROXY[0], "not-an-address", DENIED),
        (PROXY[0], "198.51.100.7, garbage", DENIED),
        (PROXY[0], "198.51.100.7,,", OK),  # empty hops are no hops
        # No header from a trusted proxy: the client is the proxy.
        (PROXY[0], None, DENIED),
    ],
)
def test_forwarded_for_is_believed_from_trusted_proxies_only(
    place: Place, peer: str, forwarded: str | list[str] | None, answer: tuple[int, str | None]
) -> None:
    tenant = place.tenant(["198.51.100.0/24"])
    assert place.status(place.key(tenant), peer, forwarded) == answer


def test_a_malformed_chain_passes_where_no_allowlist_asks(place: Place) -> None:
    key = place.key(place.tenant())
    assert place.status(key, PROXY[0], "not-an-address") == OK


# -- keys over their lifetime --------------------------------------------------------------


def test_expiry_and_a_rotations_grace_end_on_time(place: Place) -> None:
    tenant = place.tenant()
    owner = place.key(tenant, Role.OWNER)
    place.root.admin.create_user(tenant, "ann")
    ends = utcnow() + timedelta(seconds=2)
    expiring = place.key(tenant, Role.READ_ONLY, expires_at=ends)
    old = place.key(tenant, Role.READ_WRITE, user="ann")
    old_id = old.split("_")[1]
    rotated = place.api.request(
        "POST", f"/v1/keys/{old_id}/rotate", owner, json={"grace_seconds": 2}
    )
    assert rotated.status_code == 201
    new = rotated.json()
    assert (new["role"], new["user"], new["tenant"]) == ("read_write", "ann", tenant)
    for key in (expiring, old, new["key"]):
        assert place.status(key, "127.0.0.1") == OK
    again = place.api.request("POST", f"/v1/keys/{old_id}/rotate", owner)
    assert again.status_code == 409  # rotated once already

    retired = place.api.request("GET", f"/v1/keys/{old_id}", owner).json()
    grace_ends = datetime.fromisoformat(retired["expires_at"])
    assert retired["replaced_by"] == new["id"]
    time.sleep(max(0.0, (max(ends, grace_ends) - utcnow()).total_seconds()) + 0.3)
    for key in (expiring, old):
        answer = place.api.request("GET", "/v1/stats", key)
        assert (answer.status_code, answer.json()["error"]["code"]) == UNAUTHENTICATED
        assert answer.headers["www-authenticate"] == "Bearer"
        assert "expired" in answer.json()["error"]["message"]
    assert place.status(new["key"], "127.0.0.1") == OK


def test_an_expiry_in_the_past_is_refused(place: Place) -> None:
    tenant = place.tenant()
    owner = place.key(tenant, Role.OWNER)
    past = (utcnow() - timedelta(seconds=1)).isoformat()
    answer = place.api.request(
        "POST", "/v1/keys", owner, json={"role": "read_only", "expires_at": past}
    )
    assert (answer.status_code, answer.json()["error"]["code"]) == (422, "validation_error")


# -- a real server ---------------------------------------------------------------------------


@pytest.fixture
def servers() -> Iterator[list[ServeProcess]]:
    """``memex serve`` processes a test started (as tests/http/test_serve.py starts them),
    ended after it."""
    started: list[ServeProcess] = []
    yield started
    for process in started:
        process.close()


def prepared_store(path: Path) -> dict[str, str]:
    """A store with a walled tenant (198.51.100.0/24 only), one allowing loopback, and
    an open one; the keys made, by name."""
    keys: dict[str, str] = {}
    with open_root(path, "default") as root:
        admin = root.admin
        admin.create_tenant("walled", allow=["198.51.100.0/24"])
        admin.create_tenant("local", allow=["127.0.0.1"])
        admin.create_tenant("open")
        keys["walled"] = admin.create_key("walled", Role.READ_ONLY).secret
        keys["local"] = admin.create_key("local", Role.READ_ONLY).secret
        keys["owner"] = admin.create_key("open", Role.OWNER).secret
        keys["used"] = admin.create_key("open", Role.READ_WRITE, name="used").secret
        keys["revoked"] = admin.create_key("open", Role.READ_WRITE, name="revoked").secret
    return keys


def answer(url: str, key: str, forwarded: str | None = None) -> tuple[int, str | None]:
    """The status and error code of GET /v1/stats over the network."""
    headers = {"Authorization": f"Bearer {key}"}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    got = httpx.get(f"{url}/v1/stats", headers=headers, timeout=30)
    return got.status_code, got.json()["error"]["code"] if got.status_code >= 400 else None


def key_id(secret: str) -> str:
    return secret.split("_")[1]


def test_a_real_server_believes_no_forwarded_for_it_was_not_told_to(
    tmp_path: Path, servers: list[ServeProcess]
) -> None:
    store = tmp_path / "memex.db"
    keys = prepared_store(store)
    server = serve(servers, "--store", str(store))
    url = server.url()
    # The peer is the socket's: 127.0.0.1, trusted by no one, whatever it writes.
    assert answer(url, keys["walled"]) == DENIED
    assert answer(url, keys["walled"], "198.51.100.7") == DENIED
    assert answer(url, keys["local"]) == OK
    assert answer(url, keys["local"], "198.51.100.7") == OK
    code, errors = server.stop()
    assert code == 0, errors


def test_a_real_server_behind_a_trusted_proxy(tmp_path: Path, servers: list[ServeProcess]) -> None:
    store = tmp_path / "memex.db"
    keys = prepared_store(store)
    server = serve(servers, "--store", str(store), "--trusted-proxy", "127.0.0.1/32")
    url = server.url()
    assert answer(url, keys["walled"], "198.51.100.7") == OK
    assert answer(url, keys["walled"], "203.0.113.9, 198.51.100.7") == OK
    assert answer(url, keys["walled"], "198.51.100.7, 203.0.113.9") == DENIED
    assert answer(url, keys["walled"], "198.51.100.7, not-an-address") == DENIED
    assert answer(url, keys["walled"]) == DENIED  # the client is the proxy itself
    assert answer(url, keys["local"]) == OK
    assert answer(url, keys["local"], "198.51.100.7") == DENIED
    code, errors = server.stop()
    assert code == 0, errors


def admin_cli(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``memex admin ...`` on ``store``, as another process on the same machine runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "memex", "--store", str(store), "admin", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def last_used(keys: list[dict[str, object]], secret: str) -> datetime | None:
    found = next(k for k in keys if k["id"] == key_id(secret))
    at = found["last_used_at"]
    return datetime.fromisoformat(at) if isinstance(at, str) else None


def test_keys_revoked_from_the_command_line_and_last_uses_recorded(
    tmp_path: Path, servers: list[ServeProcess]
) -> None:
    store = tmp_path / "memex.db"
    keys = prepared_store(store)
    server = serve(servers, "--store", str(store))
    url = server.url()
    owner = {"Authorization": f"Bearer {keys['owner']}"}

    def listed() -> list[dict[str, object]]:
        return httpx.get(f"{url}/v1/keys", headers=owner, timeout=30).json()["keys"]

    assert last_used(listed(), keys["used"]) is None
    began = utcnow()
    assert answer(url, keys["used"]) == OK
    first = last_used(listed(), keys["used"])  # a key's first use is written at once
    assert first is not None and began <= first <= utcnow()
    time.sleep(0.01)
    again = utcnow()
    assert answer(url, keys["used"]) == OK  # within the minute: kept in memory
    assert last_used(listed(), keys["used"]) == first

    assert answer(url, keys["revoked"]) == OK
    done = admin_cli(store, "key", "revoke", key_id(keys["revoked"]))
    assert done.returncode == 0, done.stderr
    assert answer(url, keys["revoked"]) == UNAUTHENTICATED
    assert answer(url, keys["used"]) == OK

    code, errors = server.stop()
    assert code == 0, errors
    with open_root(store, "default") as root:  # the last use, written as the server stopped
        stored = root.admin.key(key_id(keys["used"])).last_used_at
    assert stored is not None and stored >= again
    assert keys["used"] not in errors and keys["revoked"] not in errors
