"""``memex admin``: a store's tenants, users, projects, API keys and quotas, directly on
the store (no server needed): whoever may open the store file administers it."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from memex.errors import ValidationError
from memex.interfaces.cli import render
from memex.interfaces.cli.invocation import Cli

if TYPE_CHECKING:
    from memex.core.identity import ApiKey
    from memex.core.limits import QuotaReport
    from memex.security.admin import Admin, IssuedKey

_PART = re.compile(r"(\d+)([smhdw])")
_DURATION = re.compile(r"(?:\d+[smhdw])+")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def add_parsers(admin: argparse.ArgumentParser, options: Callable[[Any], None]) -> None:
    """The ``memex admin`` subcommands; ``options`` adds the global options to a parser."""
    from memex.core.identity import Role

    objects = admin.add_subparsers(dest="admin_object", metavar="OBJECT", required=True)

    def action(group: Any, name: str, text: str) -> Any:
        sub = group.add_parser(name, help=text, description=text)
        options(sub)
        return sub

    def allow(parser: Any, text: str) -> None:
        parser.add_argument(
            "--allow", nargs="+", action="extend", default=[], metavar="CIDR", help=text
        )

    tenant = objects.add_parser("tenant", help="tenants of the store")
    options(tenant)
    tenants = tenant.add_subparsers(dest="admin_action", metavar="ACTION", required=True)
    p = action(tenants, "create", "Add a tenant.")
    p.add_argument("name", metavar="NAME")
    allow(p, "networks its requests must come from (repeat; default: anywhere)")
    action(tenants, "list", "List the tenants.")
    p = action(tenants, "allow", "Set the networks a tenant's requests must come from.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("cidrs", nargs="*", metavar="CIDR", help="none: anywhere")

    for kind in ("user", "project"):
        group = objects.add_parser(kind, help=f"{kind}s of a tenant")
        options(group)
        actions = group.add_subparsers(dest="admin_action", metavar="ACTION", required=True)
        p = action(actions, "create", f"Add a {kind} to a tenant (--tenant).")
        p.add_argument("name", metavar="NAME")
        action(actions, "list", f"List a tenant's {kind}s (--tenant).")

    key = objects.add_parser("key", help="API keys")
    options(key)
    keys = key.add_subparsers(dest="admin_action", metavar="ACTION", required=True)
    p = action(keys, "create", "Make an API key; it is shown only once.")
    roles = [role.value for role in Role]
    p.add_argument("--role", required=True, choices=roles, help="what the key may do")
    p.add_argument("--user", help="bind the key to this user of the tenant")
    p.add_argument("--project", help="bind the key to this project of the tenant")
    p.add_argument("--name", help="a label for people")
    p.add_argument("--expires", metavar="WHEN", help="a time (ISO 8601) or a duration (30d, 12h)")
    allow(p, "networks its requests must come from (repeat; default: anywhere)")
    action(keys, "list", "List API keys (never their secrets).")
    p = action(keys, "revoke", "Stop a key from working, at once.")
    p.add_argument("id", metavar="ID")
    p = action(keys, "rotate", "Replace a key; the old one works for a grace period.")
    p.add_argument("id", metavar="ID")
    p.add_argument("--grace", default="1h", help="how long the old key keeps working (1h)")
    p = action(keys, "allow", "Set the networks a key's requests must come from.")
    p.add_argument("id", metavar="ID")
    p.add_argument("cidrs", nargs="*", metavar="CIDR", help="none: anywhere")
    quota = objects.add_parser("quota", help="tenants' quotas (enforced by memex serve)")
    options(quota)
    quotas = quota.add_subparsers(dest="admin_action", metavar="ACTION", required=True)
    p = action(quotas, "show", "Show a tenant's quotas and use (--tenant).")
    p = action(quotas, "set", "Set a tenant's quotas (--tenant); the others are kept.")
    for name, unit in _QUOTA_OPTIONS:
        flag = name.replace("_", "-")
        p.add_argument(f"--{flag}", metavar="N", help=f"hard limit{unit} (none: no limit)")
        p.add_argument(f"--{flag}-soft", metavar="N", help="soft limit: a warning")
    p.add_argument("--reset", action="store_true", help="start from the defaults")
    _encryption_parsers(objects, action)


def _encryption_parsers(objects: Any, action: Callable[[Any, str, str], Any]) -> None:
    group = objects.add_parser("encryption", help="encryption at rest: tenants' data keys")
    actions = group.add_subparsers(dest="admin_action", metavar="ACTION", required=True)
    action(actions, "list", "List the encrypted tenants and their master key's id.")
    p = action(actions, "rotate", "Re-wrap every data key with a new master key, at once.")
    p.add_argument("--new-key-file", required=True, metavar="PATH", help="the new master key")
    p = action(actions, "encrypt", "Encrypt a tenant's stored memories (--tenant), in batches.")


_QUOTA_OPTIONS = (
    ("memories", ""),
    ("storage_mb", ", in MB"),
    ("calls_per_hour", ""),
    ("projects", ""),
    ("users", ""),
)


def parse_duration(text: str, what: str) -> timedelta:
    """A duration such as ``90s``, ``15m``, ``12h``, ``30d``, ``2w`` or ``1d12h``."""
    compact = text.strip().lower().replace(" ", "")
    if not _DURATION.fullmatch(compact):
        raise ValidationError(f"{what} takes a duration such as 30d, 12h or 15m, not {text!r}")
    try:
        return sum(
            (timedelta(**{_UNITS[unit]: int(n)}) for n, unit in _PART.findall(compact)),
            start=timedelta(0),
        )
    except OverflowError:
        raise ValidationError(f"{what} {text!r} is too long") from None


def parse_when(text: str, now: datetime) -> datetime:
    """``--expires``: an ISO 8601 time, or a duration from now."""
    from memex.core.models import parse_time

    if not _DURATION.fullmatch(text.strip().lower().replace(" ", "")):
        return parse_time(text, "--expires")
    try:
        return now + parse_duration(text, "--expires")
    except OverflowError:
        raise ValidationError(f"--expires {text!r} is too far ahead") from None


def run(cli: Cli) -> None:
    """Run one ``memex admin`` command."""
    a = cli.args
    handler = _HANDLERS[(a.admin_object, a.admin_action)]
    with cli.store(tenant=None) as mx:
        handler(cli, mx.admin)


def _tenant_of(cli: Cli, admin: Admin) -> str:
    """The tenant a user, project or key command works in: ``--tenant``, else the
    store's own tenant (``$MEMEX_TENANT``, else ``default``)."""
    return str(cli.args.tenant or admin.home_tenant)


def _records(cli: Cli, name: str, items: Sequence[Any], header: Sequence[str]) -> None:
    """Tenants, users or projects: JSON, or a table of ``header``'s fields."""
    if cli.as_json:
        cli.emit({name: [item.public() for item in items]})
    elif not items:
        cli.say(f"no {name}")
    else:
        rows = [[_cell(getattr(item, field)) for field in header] for item in items]
        render.table(cli.out, header, rows, flexible=len(header) - 1)


def _cell(value: object) -> str:
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value) or "anywhere"
    if isinstance(value, datetime):
        return render.when(value)
    return "-" if value is None else str(value)


def tenant_create(cli: Cli, admin: Admin) -> None:
    made = admin.create_tenant(cli.args.name, cli.args.allow)
    _done(cli, made.public(), f"created tenant {made.name}")


def tenant_list(cli: Cli, admin: Admin) -> None:
    _records(cli, "tenants", admin.tenants(), ("name", "created_at", "allow"))


def tenant_allow(cli: Cli, admin: Admin) -> None:
    changed = admin.set_tenant_allow(cli.args.name, cli.args.cidrs)
    _done(cli, changed.public(), f"tenant {changed.name} allows {_cell(changed.allow)}")


def user_create(cli: Cli, admin: Admin) -> None:
    made = admin.create_user(_tenant_of(cli, admin), cli.args.name)
    _done(cli, made.public(), f"created user {made.name} in tenant {made.tenant}")


def user_list(cli: Cli, admin: Admin) -> None:
    _records(cli, "users", admin.users(_tenant_of(cli, admin)), ("name", "created_at"))


def project_create(cli: Cli, admin: Admin) -> None:
    made = admin.create_project(_tenant_of(cli, admin), cli.args.name)
    _done(cli, made.public(), f"created project {made.name} in tenant {made.tenant}")


def project_list(cli: Cli, admin: Admin) -> None:
    _records(cli, "projects", admin.projects(_tenant_of(cli, admin)), ("name", "created_at"))


def key_create(cli: Cli, admin: Admin) -> None:
    from memex.core.models import utcnow

    a = cli.args
    expires = None if a.expires is None else parse_when(a.expires, utcnow())
    issued = admin.create_key(
        _tenant_of(cli, admin),
        a.role,
        user=a.user,
        project=a.project,
        name=a.name,
        expires_at=expires,
        allow=a.allow,
    )
    _issued(cli, issued, {})


def key_list(cli: Cli, admin: Admin) -> None:
    from memex.core.models import utcnow

    keys = admin.keys(cli.args.tenant)
    if cli.as_json:
        cli.emit({"keys": [k.public() for k in keys]})
        return
    if not keys:
        cli.say("no keys")
        return
    now = utcnow()
    header = ("id", "tenant", "role", "user", "project", "state", "expires", "last used", "name")
    rows = [
        (
            k.id,
            k.tenant,
            k.role.value,
            k.user or "-",
            k.project or "-",
            _state(k, now),
            render.when(k.expires_at),
            render.when(k.last_used_at),
            k.name or "-",
        )
        for k in keys
    ]
    render.table(cli.out, header, rows, flexible=len(header) - 1)


def _state(key: ApiKey, now: datetime) -> str:
    refusal = key.refusal(now)
    if refusal is not None:
        return refusal
    return "rotated" if key.replaced_by is not None else "active"


def key_revoke(cli: Cli, admin: Admin) -> None:
    revoked = admin.revoke_key(cli.args.id)
    _done(cli, revoked.public(), f"revoked key {revoked.id}")


def key_rotate(cli: Cli, admin: Admin) -> None:
    grace = parse_duration(cli.args.grace, "--grace")
    issued = admin.rotate_key(cli.args.id, grace)
    old = admin.key(cli.args.id)
    until = render.when(old.expires_at)
    cli.err.write(f"key {old.id} keeps working until {until}; then use the new key\n")
    _issued(cli, issued, {"replaces": old.id, "replaced_expires_at": _iso(old.expires_at)})


def key_allow(cli: Cli, admin: Admin) -> None:
    changed = admin.set_key_allow(cli.args.id, cli.args.cidrs)
    _done(cli, changed.public(), f"key {changed.id} allows {_cell(changed.allow)}")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _done(cli: Cli, data: dict[str, object], line: str) -> None:
    if cli.as_json:
        cli.emit(data)
    else:
        cli.say(line)


def _issued(cli: Cli, issued: IssuedKey, extra: dict[str, object]) -> None:
    """A new key: the whole key on standard output (alone, for scripts), what it is on
    standard error; with --json, both in one object."""
    if cli.as_json:
        cli.emit({**issued.public(), **extra})
        return
    key = issued.key
    bound = "".join(
        f", {what} {value}"
        for what, value in (("user", key.user), ("project", key.project))
        if value
    )
    cli.err.write(
        render.one_line(f"key {key.id}: tenant {key.tenant}{bound}, role {key.role.value}") + "\n"
    )
    cli.out.write(issued.secret + "\n")
    cli.err.write("This key is shown only once: store it now (memex keeps only its hash).\n")


def _limit(text: str, what: str) -> int | None:
    """A quota option: a whole number, or ``none`` for no limit."""
    if text.strip().lower() in ("none", "unlimited"):
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValidationError(f"{what} takes a whole number >= 0 or none, not {text!r}")
    return value


def quota_show(cli: Cli, admin: Admin) -> None:
    _quota(cli, admin.quota(_tenant_of(cli, admin)))


def quota_set(cli: Cli, admin: Admin) -> None:
    a = cli.args
    changes: dict[str, int | None] = {}
    for name, _ in _QUOTA_OPTIONS:
        for key in (name, f"{name}_soft"):
            given = getattr(a, key)
            if given is not None:
                changes[key] = _limit(given, "--" + key.replace("_", "-"))
    _quota(cli, admin.set_quota(_tenant_of(cli, admin), changes, reset=a.reset))


def _quota(cli: Cli, report: QuotaReport) -> None:
    if cli.as_json:
        cli.emit(report.to_dict())
        return
    data = report.to_dict()["quotas"]
    rows = [
        [name, _cell(q["used"]), _cell(q["soft"]), _cell(q["hard"])] for name, q in data.items()
    ]
    shown = "defaults" if report.defaults else "set"
    cli.say(f"tenant {report.tenant} ({shown}; storage in MB, '-': none or not known here)")
    render.table(cli.out, ("quota", "used", "soft", "hard"), rows, flexible=0)


def encryption_list(cli: Cli, admin: Admin) -> None:
    _records(cli, "encrypted tenants", admin.encryption().tenants(), ("tenant", "key_id"))


def encryption_rotate(cli: Cli, admin: Admin) -> None:
    count = admin.encryption().rotate(cli.args.new_key_file)
    _done(
        cli,
        {"rewrapped": count},
        f"re-wrapped {count} data keys; open the store with the new master key from now on",
    )


def encryption_encrypt(cli: Cli, admin: Admin) -> None:
    from memex.interfaces.cli.progress import progress_bar

    tenant = _tenant_of(cli, admin)
    with progress_bar(cli.err) as report:
        count = admin.encryption().encrypt(tenant, report)
    _done(
        cli, {"tenant": tenant, "sealed": count}, f"tenant {tenant} encrypted ({count} rows sealed)"
    )


_HANDLERS: dict[tuple[str, str], Callable[[Cli, Admin], None]] = {
    ("encryption", "list"): encryption_list,
    ("encryption", "rotate"): encryption_rotate,
    ("encryption", "encrypt"): encryption_encrypt,
    ("tenant", "create"): tenant_create,
    ("tenant", "list"): tenant_list,
    ("tenant", "allow"): tenant_allow,
    ("user", "create"): user_create,
    ("user", "list"): user_list,
    ("project", "create"): project_create,
    ("project", "list"): project_list,
    ("key", "create"): key_create,
    ("key", "list"): key_list,
    ("key", "revoke"): key_revoke,
    ("key", "rotate"): key_rotate,
    ("key", "allow"): key_allow,
    ("quota", "show"): quota_show,
    ("quota", "set"): quota_set,
}
