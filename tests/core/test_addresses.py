"""Client addresses, pure: allowlists as written and stored, and the address a request
came from behind proxies."""

from __future__ import annotations

import pytest

from memex.core.identity import address_in, client_address, networks, parse_address, parse_networks
from memex.errors import ValidationError


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        (["10.1.2.3"], ("10.1.2.3/32",)),
        (["10.1.2.3/8"], ("10.0.0.0/8",)),  # host bits dropped
        ([" 2001:DB8::1 "], ("2001:db8::1/128",)),
        (["2001:db8::/32", "2001:db8::/32"], ("2001:db8::/32",)),  # once each
        # IPv4 mapped into IPv6 is IPv4: clients' mapped addresses are compared so.
        (["::ffff:192.0.2.7"], ("192.0.2.7/32",)),
        (["::ffff:192.0.2.0/120"], ("192.0.2.0/24",)),
        (["::ffff:0:0/96"], ("0.0.0.0/0",)),
        (["::/0"], ("::/0",)),  # wider than the mapped block: IPv6 still
        ([], ()),
    ],
)
def test_allowlists_are_stored_normalised(written: list[str], stored: tuple[str, ...]) -> None:
    assert parse_networks(written) == stored


@pytest.mark.parametrize("written", ["", "10.0.0.0/33", "host.example", "10.0.0.1/8/8", "::g"])
def test_a_network_that_is_none_is_refused(written: str) -> None:
    with pytest.raises(ValidationError, match="not a CIDR"):
        parse_networks([written])


@pytest.mark.parametrize(
    ("address", "allowed", "inside"),
    [
        ("192.0.2.7", ["::ffff:192.0.2.0/120"], True),
        ("::ffff:192.0.2.7", ["192.0.2.0/24"], True),
        ("192.0.2.7", ["::/0"], False),
        ("2001:db8::1", ["0.0.0.0/0"], False),
        ("2001:db8::1", [], True),
        (None, [], True),
        (None, ["0.0.0.0/0", "::/0"], False),
    ],
)
def test_an_address_is_in_an_allowlist(
    address: str | None, allowed: list[str], inside: bool
) -> None:
    found = parse_address(address) if address is not None else None
    assert address_in(found, networks(parse_networks(allowed))) is inside


TRUSTED = networks(parse_networks(["10.0.0.0/30", "fd00::/8"]))


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.9", ["198.51.100.7"], "203.0.113.9"),  # not a proxy: ignored
        ("10.0.0.1", ["198.51.100.7"], "198.51.100.7"),
        ("10.0.0.1", ["198.51.100.7, 10.0.0.2"], "198.51.100.7"),
        ("10.0.0.1", ["198.51.100.7, 203.0.113.9"], "203.0.113.9"),
        ("10.0.0.1", ["198.51.100.7", "203.0.113.9"], "203.0.113.9"),
        ("10.0.0.1", ["10.0.0.2, 10.0.0.3"], "10.0.0.2"),  # all proxies: the left-most
        ("10.0.0.1", [], "10.0.0.1"),
        ("10.0.0.1", ["garbage"], None),
        ("10.0.0.1", ["198.51.100.7, garbage"], None),
        ("10.0.0.1", ["[2001:db8::5]"], "2001:db8::5"),
        ("fd00::1", ["::ffff:198.51.100.7"], "198.51.100.7"),
        ("::ffff:10.0.0.1", ["198.51.100.7"], "198.51.100.7"),
        ("garbage", ["198.51.100.7"], None),
    ],
)
def test_the_client_is_the_right_most_address_no_trusted_proxy_wrote(
    peer: str, forwarded: list[str], client: str | None
) -> None:
    found = client_address(peer, forwarded, TRUSTED)
    assert (str(found) if found is not None else None) == client
