"""Who may do what on a shared store: tenants, users, projects, API keys, roles and
client addresses. Pure: values and decisions, no I/O.

A tenant holds users and projects; memories belong to a tenant (and optionally to one
of its projects and users). An API key belongs to one tenant, optionally to one user
and one project, and carries one role. Everything a request may do follows from its
key: nothing in a request names a tenant.

The permission matrix (``PERMISSIONS``) is the one written in ``docs/security.md``;
a test checks the two against each other.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from memex.core.models import Scope
from memex.core.validate import shown, validate_text
from memex.errors import ValidationError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Role(StrEnum):
    """What a key may do, from least to most."""

    READ_ONLY = "read_only"
    READ_WRITE = "read_write"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        """The role's place in the order read_only < read_write < admin < owner."""
        return _RANKS[self]


_RANKS = {role: rank for rank, role in enumerate(Role)}


class Action(StrEnum):
    """What a request does, as the permission matrix names it."""

    READ = "read"
    """get, recall, context, list, range, stats, history, export."""
    WRITE = "write"
    """remember, update, supersede, forget, import."""
    PURGE = "purge"
    """erase a memory and its history for good."""
    PRIVACY = "privacy"
    """export, erase or anonymise a user's data, or erase a project's."""
    MANAGE_USERS = "manage_users"
    """create and list the tenant's users."""
    MANAGE_PROJECTS = "manage_projects"
    """create and list the tenant's projects."""
    MANAGE_KEYS = "manage_keys"
    """create, list, rotate and revoke the tenant's keys (up to the caller's own role)."""
    READ_AUDIT = "read_audit"
    """verify and export the tenant's audit trail."""
    MANAGE_TENANT = "manage_tenant"
    """change the tenant's own settings, such as its IP allowlist."""
    MANAGE_TENANTS = "manage_tenants"
    """create and list tenants: only an owner of the server's home tenant."""


PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.READ_ONLY: frozenset({Action.READ}),
    Role.READ_WRITE: frozenset({Action.READ, Action.WRITE}),
    Role.ADMIN: frozenset(
        {
            Action.READ,
            Action.WRITE,
            Action.PURGE,
            Action.PRIVACY,
            Action.MANAGE_USERS,
            Action.MANAGE_PROJECTS,
            Action.MANAGE_KEYS,
            Action.READ_AUDIT,
        }
    ),
    Role.OWNER: frozenset(Action) - {Action.MANAGE_TENANTS},
}
"""The actions each role may take within its own tenant (and project, if its key has one).
``MANAGE_TENANTS`` is granted by ``allows`` to owners of the home tenant only."""

PROJECT_BOUND_ACTIONS = frozenset({Action.READ, Action.WRITE, Action.PURGE})
"""What a key bound to one project may still do: its memories only, no administration."""


def parse_role(value: object) -> Role:
    """A role from its name; anything else is a ValidationError."""
    try:
        return Role(str(value))
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise ValidationError(f"role must be one of {names}, not {value!r}") from None


def check_name(value: object, what: str) -> str:
    """A tenant, user or project name: the rule of a scope value (it is one)."""
    try:
        if not isinstance(value, str):
            raise ValidationError(what)
        Scope(tenant=value)
    except ValidationError:
        raise ValidationError(
            f"{what} name must be 1-128 characters of letters, digits and _.:@/- "
            f"starting with a letter or digit, not {shown(value)}"
        ) from None
    return value


def check_label(value: object, what: str) -> str:
    """A key's name: 1-128 printable characters, as people label keys (spaces allowed)."""
    text = validate_text(value, what, 128)
    if not text.strip() or not text.isprintable():
        raise ValidationError(f"{what} must be 1-128 printable characters, not {shown(value)}")
    return text


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant: an isolated part of a store, with its own users, projects and keys."""

    name: str
    created_at: datetime
    allow: tuple[str, ...] = ()
    """CIDR networks requests for this tenant must come from; empty: anywhere."""

    def public(self) -> dict[str, object]:
        """The tenant as JSON."""
        return {
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "allow": list(self.allow),
        }


@dataclass(frozen=True, slots=True)
class Member:
    """A named member of a tenant: a user or a project."""

    tenant: str
    name: str
    created_at: datetime

    def public(self) -> dict[str, object]:
        """The member as JSON."""
        return {"tenant": self.tenant, "name": self.name, "created_at": self.created_at.isoformat()}


@dataclass(frozen=True, slots=True)
class User(Member):
    """A person or agent within a tenant."""


@dataclass(frozen=True, slots=True)
class Project(Member):
    """A project within a tenant: keys may be limited to one."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key: everything but its secret, which is kept only as ``hash``."""

    id: str
    tenant: str
    role: Role
    hash: str
    created_at: datetime
    user: str | None = None
    project: str | None = None
    name: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    replaced_by: str | None = None
    allow: tuple[str, ...] = ()
    """CIDR networks requests with this key must come from; empty: anywhere."""

    @property
    def prefix(self) -> str:
        """The visible start of the key, by which people recognise it."""
        return key_prefix(self.id)

    def refusal(self, now: datetime) -> str | None:
        """Why the key cannot be used at ``now`` (``revoked``, ``expired``), or None."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return None

    def public(self) -> dict[str, object]:
        """What may be shown of the key: never its hash."""
        return {
            "id": self.id,
            "prefix": self.prefix,
            "tenant": self.tenant,
            "user": self.user,
            "project": self.project,
            "role": self.role.value,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "last_used_at": _iso(self.last_used_at),
            "replaced_by": self.replaced_by,
            "allow": list(self.allow),
        }

    def with_changes(self, **changes: object) -> ApiKey:
        """A copy with some fields replaced."""
        return replace(self, **changes)  # type: ignore[arg-type]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


KEY_MARK = "mxk"
"""How every memex API key starts: ``mxk_<id>_<secret>``."""


def key_prefix(key_id: str) -> str:
    """The visible, non-secret start of the key with id ``key_id``."""
    return f"{KEY_MARK}_{key_id}"


def split_key(presented: str) -> tuple[str, str] | None:
    """(key id, whole key) for a well-formed key, else None."""
    parts = presented.split("_")
    if len(parts) != 3 or parts[0] != KEY_MARK or not parts[1] or len(parts[2]) < 43:
        return None
    if not parts[1].isalnum() or not parts[1].isascii():
        return None
    return parts[1], presented


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request, as its key makes it: never from the request itself."""

    key_id: str
    tenant: str
    role: Role
    user: str | None = None
    project: str | None = None
    home: bool = False
    """Whether the tenant is the server's home tenant (whose owners manage tenants)."""

    @property
    def scope(self) -> Scope:
        """The scope every operation of this caller is confined to."""
        return Scope(tenant=self.tenant, user=self.user, project=self.project)

    def allows(self, action: Action) -> bool:
        """Whether this caller may take ``action``."""
        if action is Action.MANAGE_TENANTS:
            return self.home and self.role is Role.OWNER and self.project is None
        if self.project is not None and action not in PROJECT_BOUND_ACTIONS:
            return False
        return action in PERMISSIONS[self.role]

    def may_grant(self, role: Role) -> bool:
        """Whether this caller may create or rotate a key with ``role``: never above its own."""
        return self.allows(Action.MANAGE_KEYS) and role.rank <= self.role.rank


# -- client addresses ------------------------------------------------------------------------


def parse_networks(values: Iterable[str]) -> tuple[str, ...]:
    """CIDR networks (IPv4 or IPv6; a bare address is a /32 or /128), normalised; an
    IPv4 network mapped into IPv6 (``::ffff:192.0.2.0/120``) is that IPv4 network."""
    out: list[str] = []
    for value in values:
        try:
            network = _unmapped(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ValidationError(f"not a CIDR network or IP address: {value!r}") from None
        out.append(str(network))
    return tuple(dict.fromkeys(out))


def networks(values: Sequence[str]) -> tuple[IPNetwork, ...]:
    """Parsed networks of stored (already normalised) CIDR strings."""
    return tuple(_unmapped(ipaddress.ip_network(v, strict=False)) for v in values)


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _unmapped(network: IPNetwork) -> IPNetwork:
    """A network of IPv4 addresses mapped into IPv6 as the IPv4 network: clients' mapped
    addresses are compared as IPv4 (see ``parse_address``), so only it can match them."""
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def parse_address(value: str) -> IPAddress | None:
    """An IP address, or None for anything that is not one (IPv4-mapped IPv6 unmapped)."""
    try:
        address = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_in(address: IPAddress | None, allowed: Sequence[IPNetwork]) -> bool:
    """Whether ``address`` lies in one of ``allowed``; an empty list allows every address,
    an unknown address none."""
    if not allowed:
        return True
    if address is None:
        return False
    return any(address.version == n.version and address in n for n in allowed)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]
) -> IPAddress | None:
    """The address a request came from.

    ``X-Forwarded-For`` is honoured only when the peer is a trusted proxy; then the
    client is the right-most address of the chain that is not itself a trusted proxy
    (addresses to its left were written by the client and prove nothing).
    """
    address = parse_address(peer) if peer else None
    if address is None or not trusted or not address_in(address, trusted):
        return address
    chain = [part for header in forwarded_for for part in header.split(",") if part.strip()]
    for hop in reversed(chain):
        hop_address = parse_address(hop)
        if hop_address is None:
            return None  # a malformed chain: the client is unknown, so no allowlist passes
        if not address_in(hop_address, trusted):
            return hop_address
        address = hop_address
    return address


def require(principal: Principal, action: Action) -> None:
    """Refuse (PermissionDeniedError, reason ``role``) an action the caller may not take."""
    if not principal.allows(action):
        from memex.errors import PermissionDeniedError

        raise PermissionDeniedError(
            f"a {principal.role.value} key"
            + (f" bound to project {principal.project!r}" if principal.project else "")
            + f" may not {action.value.replace('_', ' ')}",
            reason="role",
        )
