"""Tenants stay apart over HTTP: random tenants, users, projects, keys and operations,
and after every answer the model's verdict (tests/http/isolation_model.py).

Every answer to a key is scanned for what lies outside its grants (another tenant's
name, content, memory or key ids, any key's hash or another key's secret); an id out of
a key's grants is answered exactly as an id that never existed; a write refused changes
nothing, and a write allowed changes only what the key may reach; roles decide what
succeeds; a revoked or expired key is 401.

The audit trail: every refusal (401, 403, 429) leaves exactly one denial entry, in the
key's tenant's chain, naming the key; nothing else does (a 404 for an id out of the
key's grants is no refusal); every entry a request leaves names its key, and none holds
memory content or a secret; every chain verifies.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi import Api, open_root
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule
from isolation_model import RANK, ROLES, Key, Truth, World, fingerprint, owner_of, state_of

from memex.core.audit import DENIED, STORE_CHAIN, AuditEntry
from memex.core.identity import Role

HOME = "homezq"
STRANGER = "mxk_nosuchkey0000000_" + "a" * 52
OTHERS = ("acmezq", "betazq")
NEW_TENANTS = ("gammazq", "deltazq")
USERS = ("u1", "u2")
PROJECTS = ("p1", "p2")
WORDS = ("deploy", "friday", "database", "coffee", "release", "invoice")

maybe_user = st.sampled_from((None, *USERS))
maybe_project = st.sampled_from((None, *PROJECTS))


def fresh_id() -> str:
    """A memory id no store holds."""
    return str(uuid.uuid4())


def code(response: httpx.Response) -> str | None:
    """An error answer's code (None for a success)."""
    if response.status_code < 400:
        return None
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert "\n" not in body["error"]["message"]
    return str(body["error"]["code"])


def same(before: Truth, after: Truth) -> bool:
    """Whether no write came between two readings of the store (reads may still have
    counted accesses)."""
    return {k: fingerprint(m) for k, m in before.items()} == {
        k: fingerprint(m) for k, m in after.items()
    }


class Isolation(RuleBasedStateMachine):
    """One store, its tenants and keys, and random calls through the HTTP API."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="memex-isolation-"))
        # Contexts count tokens by the heuristic: loading the Llama 2 tokenizer for each
        # new store would take most of the test's time, and counting is not its subject.
        root = open_root(self.folder / "memex.db", HOME, tokenizer="heuristic")
        self.world = World(root, HOME)
        self.api = Api(self.world.root)

    def teardown(self) -> None:
        assert all(found.ok for found in self.world.root.audit_verify()), "a chain broke"
        self.api.close()
        self.world.root.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- the world -------------------------------------------------------------------

    @initialize(data=st.data())
    def populate(self, data: st.DataObject) -> None:
        world = self.world
        admin = world.root.admin
        owner = admin.ensure_owner()
        assert owner is not None
        world.keys.append(self._key(owner.key.id, owner.secret))
        extra = data.draw(st.integers(1, len(OTHERS)), label="other tenants")
        world.tenants = [HOME, *OTHERS[:extra]]
        for tenant in world.tenants:
            if tenant != HOME:
                admin.create_tenant(tenant)
            # The same user and project names in every tenant: names never cross.
            world.users[tenant] = set(USERS)
            world.projects[tenant] = set(PROJECTS)
            for user in USERS:
                admin.create_user(tenant, user)
            for project in PROJECTS:
                admin.create_project(tenant, project)
            for _ in range(data.draw(st.integers(2, 5), label="memories")):
                self._seed(tenant, data.draw(maybe_user), data.draw(maybe_project))
            # Keys that may administer (a tenant-wide one and one bound to a user), and
            # random ones.
            grants = [("admin", None, None), ("admin", data.draw(st.sampled_from(USERS)), None)]
            for _ in range(data.draw(st.integers(1, 4), label="keys")):
                role = data.draw(st.sampled_from(ROLES))
                grants.append((role, data.draw(maybe_user), data.draw(maybe_project)))
            for role, user, project in grants:
                issued = admin.create_key(tenant, role, user=user, project=project)
                world.keys.append(self._key(issued.key.id, issued.secret))

    def _seed(self, tenant: str, user: str | None, project: str | None) -> None:
        world = self.world
        scope = {k: v for k, v in (("user", user), ("project", project)) if v}
        handle = world.root.scoped(tenant=tenant, **scope)
        first = world.marker()
        world.owners[first] = (tenant, user, project)
        memory = handle.remember(self._content(first), kind=f"{tenant}kind")
        world.made[memory.id] = None
        if len(world.owners) % 3 == 0:  # some supersede chains, for removals to undo
            second = world.marker()
            world.owners[second] = (tenant, user, project)
            world.made[handle.supersede(memory.id, self._content(second)).id] = None

    def _content(self, marker: str) -> str:
        return f"{WORDS[len(marker) % len(WORDS)]} {WORDS[self.world.counter % 6]} {marker}"

    def _key(self, key_id: str, secret: str) -> Key:
        record = self.world.root.admin.key(key_id)
        return Key(
            record.id,
            secret,
            record.tenant,
            record.role.value,
            record.user,
            record.project,
            home=record.tenant == HOME,
        )

    # -- one call, checked -------------------------------------------------------------

    def send(
        self, key: Key, method: str, path: str, *, issues: bool = False, **options: Any
    ) -> tuple[httpx.Response, Truth, Truth]:
        """One call with ``key``; returns the answer and the store before and after.

        Checks what holds of every answer: a dead key is refused and changes nothing;
        no answer holds a word out of the key's grants that the request did not."""
        world = self.world
        before, directory = world.truth(), world.directory()
        entries = self._entries()
        response = self.api.request(method, path, key.secret, **options)
        after = world.truth()
        assert response.status_code < 500, (method, path, response.text)
        self._audited(key, response, entries)
        if key.dead:
            assert (response.status_code, code(response)) == (401, "unauthenticated")
            assert response.headers["www-authenticate"] == "Bearer"
            assert same(before, after) and world.directory() == directory
            return response, before, after
        code(response)  # every error has the error shape
        sent = path + json.dumps(options.get("json")) + str(options.get("params"))
        sent += str(options.get("content"))
        issued = set()
        if issues and response.status_code == 201:
            body = response.json()
            issued = {body.get("key"), body.get("owner_key", {}).get("key")} - {None}
        params = options.get("params") or {}
        history = path.endswith("/history") or bool(params.get("history"))
        words = world.forbidden(key, before, issued=issued, history=history)
        if path == "/v1/tenants" and key.may("tenants"):
            words -= set(world.tenants)  # the home tenant's owners see every tenant
        # A visible memory may name the memory that superseded it, wherever that lies.
        words -= {m.superseded_by for m in world.visible(key, before).values() if m.superseded_by}
        leaked = sorted(w for w in words if w in response.text and w not in sent)
        assert not leaked, (method, path, leaked, response.text[:2000])
        if response.status_code >= 400:
            assert same(before, after), (method, path, response.text)
            assert world.directory() == directory, (method, path, response.text)
        else:
            self._changed_within(key, before, after, method, path)
        return response, before, after

    def _entries(self) -> set[AuditEntry]:
        return set(self.world.root.audit_export().entries)

    def _audited(self, key: Key | None, response: httpx.Response, before: set[AuditEntry]) -> None:
        """What the request left in the audit trail: one denial for a refusal, in the
        key's tenant's chain (a key no store holds: the store's), and nothing else."""
        new = self._entries() - before
        denials = [e for e in new if e.outcome == DENIED]
        where = (response.request.method, response.request.url.path, response.status_code)
        if response.status_code in (401, 403, 429):
            assert len(denials) == 1, (where, new)
            denial = denials[0]
            assert denial.detail.split(":")[0] == code(response), (where, denial)
            if key is None:
                assert denial.tenant == STORE_CHAIN, (where, denial)
            else:
                assert (denial.tenant, denial.key_id) == (key.tenant, key.id), (where, denial)
        else:
            assert denials == [], (where, denials)
        if response.status_code >= 400:
            assert new == set(denials), (where, new)  # a refused change leaves no entry
        text = json.dumps([e.to_dict() for e in new])
        assert key is None or all(e.key_id == key.id for e in new), (where, new)
        markers = [m for m in self.world.owners if m in text]
        secrets = [k.secret for k in self.world.keys if k.secret in text]
        assert markers == [] and secrets == [], (where, text)

    def _changed_within(self, key: Key, before: Truth, after: Truth, *call: str) -> None:
        """A write changes what the key may reach; what it superseded may come back."""
        for where in set(before) | set(after):
            old, new = before.get(where), after.get(where)
            if old is not None and new is not None and fingerprint(old) == fingerprint(new):
                continue
            tenant = where[0]
            reachable = [m for m in (old, new) if m is not None and key.sees(owner_of(tenant, m))]
            if reachable:
                continue
            # A removal gives back what the removed memory superseded, wherever it is.
            assert old is not None and new is not None, (call, where)
            assert tenant == key.tenant and old.superseded_by is not None, (call, where)
            assert new.content == old.content and new.scope == old.scope, (call, where)

    # -- drawing -------------------------------------------------------------------------

    def _pick_key(self, data: st.DataObject) -> Key:
        keys = self.world.keys
        alive = [k for k in keys if not k.dead]
        if alive and data.draw(st.integers(0, 9), label="alive?") > 0:
            return data.draw(st.sampled_from(alive), label="key")
        return data.draw(st.sampled_from(keys), label="key")

    def _pick_target(self, data: st.DataObject, key: Key) -> str:
        """A memory id: often one the key may reach, else any tenant's, a purged one or
        one that never existed."""
        truth = self.world.truth()
        visible = self.world.visible(key, truth)
        mine = [memory_id for memory_id in self.world.made if memory_id in visible]
        if mine and data.draw(st.booleans(), label="reachable?"):
            return data.draw(st.sampled_from(mine), label="memory")
        pool = list(self.world.made)
        if not pool or data.draw(st.integers(0, 12), label="absent?") == 0:
            return fresh_id()
        return data.draw(st.sampled_from(pool), label="memory")

    def _scope(self, data: st.DataObject) -> dict[str, str] | None:
        scope = {
            "user": data.draw(st.sampled_from((None, *USERS, "u9")), label="scope user"),
            "project": data.draw(maybe_project, label="scope project"),
            "agent": data.draw(st.sampled_from((None, "a1")), label="scope agent"),
        }
        given = {k: v for k, v in scope.items() if v is not None}
        return given or None

    def _item(self, data: st.DataObject, key: Key) -> tuple[dict[str, Any], str]:
        marker = self.world.marker()
        item: dict[str, Any] = {"content": self._content(marker)}
        item["kind"] = data.draw(st.sampled_from(("note", "fact", f"{key.tenant}kind")))
        scope = self._scope(data)
        if scope is not None:
            item["scope"] = scope
        return item, marker

    def _owner_for(self, key: Key, scope: dict[str, str] | None) -> tuple[Any, ...]:
        scope = scope or {}
        return (key.tenant, key.user or scope.get("user"), key.project or scope.get("project"))

    def _check_new(self, key: Key, memory: dict[str, Any], marker: str, after: Truth) -> None:
        """A memory the key just wrote: in its tenant, within its grants."""
        stored = after[(key.tenant, memory["id"])]
        owner = owner_of(key.tenant, stored)
        assert key.sees(owner), (memory, key)
        assert memory["scope"]["tenant"] == key.tenant and marker in stored.content
        self.world.owners[marker] = owner
        self.world.made[memory["id"]] = None

    def _expect(self, response: httpx.Response, allowed: set[tuple[int, str | None]]) -> None:
        got = (response.status_code, code(response))
        event(f"{response.request.method} {response.request.url.path.split('/')[2]} {got}")
        assert got in allowed, (got, allowed, response.request.url, response.text[:1000])

    def _twin(
        self, key: Key, target: str, before: Truth, response: httpx.Response, build: Any
    ) -> None:
        """An id out of the key's grants is answered as an id no store holds."""
        if key.dead or target in self.world.visible(key, before):
            return
        method, path, options = build(fresh_id())
        twin = self.api.request(method, path, key.secret, **options)
        got, wanted = (response.status_code, code(response)), (twin.status_code, code(twin))
        assert got == wanted, (method, path, response.text, twin.text)

    # -- memories --------------------------------------------------------------------------

    @rule(data=st.data())
    def remember(self, data: st.DataObject) -> None:
        key = self._pick_key(data)
        item, marker = self._item(data, key)
        target = None
        if data.draw(st.integers(0, 3), label="supersedes?") == 0:
            target = item["supersedes"] = self._pick_target(data, key)

        def build(memory_id: str | None) -> tuple[str, str, dict[str, Any]]:
            body = {**item, "supersedes": memory_id} if memory_id else item
            return "POST", "/v1/memories", {"json": body}

        response, before, after = self.send(key, *build(target)[:2], **build(target)[2])
        if key.dead:
            return
        visible = self.world.visible(key, before)
        if not key.may("write"):
            wanted = {(403, "permission_denied")}
        elif target is not None and (
            target not in visible or state_of(visible[target]) == "forgotten"
        ):
            wanted = {(404, "not_found")} | (
                set() if key.narrows(item.get("scope")) else {(403, "scope_error")}
            )
        elif not key.narrows(item.get("scope")):
            wanted = {(403, "scope_error")}
        elif target is not None and state_of(visible[target]) == "superseded":
            wanted = {(422, "validation_error")}  # superseded already
        else:
            wanted = {(201, None)}
        self._expect(response, wanted)
        if target is not None:
            self._twin(key, target, before, response, build)
        if response.status_code == 201:
            memory = response.json()
            self._check_new(key, memory, marker, after)
            assert owner_of(key.tenant, after[(key.tenant, memory["id"])]) == self._owner_for(
                key, item.get("scope")
            )
            if target is not None:
                assert after[(key.tenant, target)].superseded_by == memory["id"]

    @rule(data=st.data())
    def batch(self, data: st.DataObject) -> None:
        key = self._pick_key(data)
        drawn = [self._item(data, key) for _ in range(data.draw(st.integers(1, 3)))]
        body = {"items": [item for item, _ in drawn]}
        response, _, after = self.send(key, "POST", "/v1/memories/batch", json=body)
        if key.dead:
            return
        if not key.may("write"):
            wanted = {(403, "permission_denied")}
        elif not all(key.narrows(item.get("scope")) for item, _ in drawn):
            wanted = {(403, "scope_error")}
        else:
            wanted = {(201, None)}
        self._expect(response, wanted)
        if response.status_code == 201:
            stored = response.json()["memories"]
            assert len(stored) == len(drawn)
            for memory, (_, marker) in zip(stored, drawn, strict=True):
                self._check_new(key, memory, marker, after)

    @rule(data=st.data(), op=st.sampled_from(("get", "history")))
    def read_one(self, data: st.DataObject, op: str) -> None:
        self._one(data, op)

    @rule(data=st.data(), op=st.sampled_from(("patch", "supersede")))
    def change_one(self, data: st.DataObject, op: str) -> None:
        self._one(data, op)

    @rule(data=st.data(), op=st.sampled_from(("forget", "purge")))
    def remove_one(self, data: st.DataObject, op: str) -> None:
        self._one(data, op)

    def _one(self, data: st.DataObject, op: str) -> None:
        """One memory's route, on a memory the key may reach or not."""
        key = self._pick_key(data)
        target = self._pick_target(data, key)
        marker = self.world.marker()
        scope = self._scope(data) if op == "supersede" else None
        body: dict[str, Any] = {"content": self._content(marker)}
        if scope is not None:
            body["scope"] = scope

        def build(memory_id: str) -> tuple[str, str, dict[str, Any]]:
            path = f"/v1/memories/{memory_id}"
            return {
                "get": ("GET", path, {}),
                "patch": ("PATCH", path, {"json": body}),
                "supersede": ("POST", f"{path}/supersede", {"json": body}),
                "forget": ("DELETE", path, {}),
                "purge": ("POST", f"{path}/purge", {}),
                "history": ("GET", f"{path}/history", {}),
            }[op]

        method, path, options = build(target)
        response, before, after = self.send(key, method, path, **options)
        if key.dead:
            return
        action = {"get": "read", "history": "read", "purge": "purge"}.get(op, "write")
        visible = self.world.visible(key, before)
        state = state_of(visible[target]) if target in visible else None
        success = 201 if op == "supersede" else 200
        if not key.may(action):
            wanted = {(403, "permission_denied")}
        elif state is None:
            wanted = {(404, "not_found")} | (
                set() if key.narrows(scope) else {(403, "scope_error")}
            )
        elif op == "supersede" and not key.narrows(scope) and state != "forgotten":
            wanted = {(403, "scope_error")}
        elif state == "forgotten" and op not in ("purge", "history"):
            wanted = {(404, "not_found")}
        elif state == "superseded" and op == "supersede":
            wanted = {(422, "validation_error")}  # superseded already
        else:
            wanted = {(success, None)}
        self._expect(response, wanted)
        self._twin(key, target, before, response, build)
        if response.status_code >= 400:
            return
        where = (key.tenant, target)
        if op == "get":
            got = response.json()
            assert got["id"] == target and got["content"] == before[where].content
        elif op == "history":
            versions = response.json()["versions"]
            assert versions and {v["id"] for v in versions} == {target}
        elif op == "patch":
            assert marker in after[where].content
            self.world.owners[marker] = owner_of(key.tenant, after[where])
        elif op == "supersede":
            memory = response.json()
            self._check_new(key, memory, marker, after)
            assert after[where].superseded_by == memory["id"]
            for name, value in (scope or {}).items():
                assert memory["scope"][name] == value
        elif op == "forget":
            assert state_of(after[where]) == "forgotten"
        else:
            assert where not in after
            self.world.purged.add(target)

    @rule(
        data=st.data(),
        route=st.sampled_from(("/v1/memories", "/v1/range")),
        user=st.sampled_from((None, *USERS, "u9")),
        project=maybe_project,
        kind=st.sampled_from((None, "note", "fact")),
        deleted=st.booleans(),
        superseded=st.booleans(),
    )
    def listing(
        self,
        data: st.DataObject,
        route: str,
        user: str | None,
        project: str | None,
        kind: str | None,
        deleted: bool,
        superseded: bool,
    ) -> None:
        key = self._pick_key(data)
        filters = {"user": user, "project": project, "kind": kind}
        params: dict[str, Any] = {k: v for k, v in filters.items() if v is not None}
        if route == "/v1/memories":
            params.update(include_deleted=deleted, include_superseded=superseded, limit=10_000)
        else:
            deleted = superseded = False
        response, before, _ = self.send(key, "GET", route, params=params)
        if key.dead:
            return
        fits = key.narrows({"user": user, "project": project} if user or project else None)
        self._expect(response, {(200, None)} if fits else {(403, "scope_error")})
        if not fits:
            return
        wanted = {
            memory_id
            for memory_id, m in self.world.visible(key, before).items()
            if (user is None or m.scope.user == user)
            and (project is None or m.scope.project == project)
            and (kind is None or m.kind == kind)
            and (deleted or m.deleted_at is None)
            and (superseded or state_of(m) != "superseded")
        }
        assert {m["id"] for m in response.json()["items"]} == wanted

    @rule(
        data=st.data(),
        route=st.sampled_from(("/v1/recall", "/v1/context")),
        words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
    )
    def search(self, data: st.DataObject, route: str, words: list[str]) -> None:
        key = self._pick_key(data)
        body: dict[str, Any] = {"query": " ".join(words)}
        scope = self._scope(data)
        if scope is not None:
            body["scope"] = scope
        response, before, _ = self.send(key, "POST", route, json=body)
        if key.dead:
            return
        self._expect(response, {(200, None)} if key.narrows(scope) else {(403, "scope_error")})
        if response.status_code == 200 and route == "/v1/recall":
            visible = self.world.visible(key, before)
            for hit in response.json()["hits"]:
                assert state_of(visible[hit["memory"]["id"]]) == "live"

    @rule(data=st.data())
    def stats(self, data: st.DataObject) -> None:
        key = self._pick_key(data)
        response, before, _ = self.send(key, "GET", "/v1/stats")
        if key.dead:
            return
        self._expect(response, {(200, None)})
        states = [state_of(m) for m in self.world.visible(key, before).values()]
        kinds: dict[str, int] = {}
        for m in self.world.visible(key, before).values():
            if state_of(m) == "live":
                kinds[m.kind] = kinds.get(m.kind, 0) + 1
        got = response.json()
        assert got["memories"] == states.count("live")
        assert got["deleted"] == states.count("forgotten")
        assert got["superseded"] == states.count("superseded")
        assert got["by_kind"] == kinds

    @rule(data=st.data(), deleted=st.booleans(), history=st.booleans())
    def export(self, data: st.DataObject, deleted: bool, history: bool) -> None:
        key = self._pick_key(data)
        params = {"include_deleted": deleted, "history": history}
        response, before, _ = self.send(key, "GET", "/v1/export", params=params)
        if key.dead:
            return
        self._expect(response, {(200, None)})
        got = [json.loads(line)["id"] for line in response.text.splitlines() if line]
        visible = self.world.visible(key, before)
        assert sorted(got) == sorted(
            i for i, m in visible.items() if deleted or m.deleted_at is None
        )

    @rule(data=st.data())
    def import_(self, data: st.DataObject) -> None:
        key = self._pick_key(data)
        records: list[dict[str, Any]] = []
        markers: list[str] = []
        for _ in range(data.draw(st.integers(1, 2), label="records")):
            item, marker = self._item(data, key)
            markers.append(marker)
            if data.draw(st.booleans(), label="names a tenant?"):
                tenants = self.world.tenants
                item.setdefault("scope", {})["tenant"] = data.draw(st.sampled_from(tenants))
            if data.draw(st.integers(0, 2), label="an id?") == 0:
                item["id"] = self._pick_target(data, key)
            records.append(item)
        explicit = [r["id"] for r in records if "id" in r]
        lines = "\n".join(json.dumps(r) for r in records) + "\n"
        headers = {"content-type": "application/x-ndjson"}
        response, before, after = self.send(
            key, "POST", "/v1/import", content=lines.encode(), headers=headers
        )
        if key.dead:
            return
        keeps_ids = key.user is None and key.project is None
        taken = {i for (t, i) in before if t == key.tenant}
        if not key.may("write"):
            wanted = {(403, "permission_denied")}
        elif not all(key.narrows(r.get("scope")) for r in records):
            wanted = {(422, "import_format_error")}
        elif len(set(explicit)) < len(explicit) or (keeps_ids and set(explicit) & taken):
            wanted = {(422, "validation_error"), (422, "import_format_error")}
        else:
            wanted = {(201, None)}
        self._expect(response, wanted)
        if response.status_code == 201:
            ids = response.json()["ids"]
            assert response.json()["imported"] == len(records) == len(ids)
            for memory_id, record, marker in zip(ids, records, markers, strict=True):
                stored = after[(key.tenant, memory_id)]
                assert key.sees(owner_of(key.tenant, stored)) and marker in stored.content
                if keeps_ids and "id" in record:
                    assert memory_id == record["id"]
                self.world.owners[marker] = owner_of(key.tenant, stored)
                self.world.made[memory_id] = None

    # -- administration ----------------------------------------------------------------

    @rule(
        data=st.data(),
        what=st.sampled_from(("users", "projects")),
        name=st.sampled_from(("u1", "u2", "u3", "p1", "p2", "p3")),
        create=st.booleans(),
    )
    def members(self, data: st.DataObject, what: str, name: str, create: bool) -> None:
        key = self._pick_key(data)
        known = self.world.users if what == "users" else self.world.projects
        if create:
            response, _, _ = self.send(key, "POST", f"/v1/{what}", json={"name": name})
        else:
            response, _, _ = self.send(key, "GET", f"/v1/{what}")
        if key.dead:
            return
        if not key.may("manage"):
            wanted = {(403, "permission_denied")}
        elif create and name in known[key.tenant]:
            wanted = {(409, "conflict")}
        else:
            wanted = {(201 if create else 200, None)}
        self._expect(response, wanted)
        if response.status_code == 201:
            assert response.json()["tenant"] == key.tenant
            known[key.tenant].add(name)
        elif response.status_code == 200:
            listed = response.json()[what]
            assert {m["name"] for m in listed} == known[key.tenant]
            assert {m["tenant"] for m in listed} <= {key.tenant}

    @rule(
        data=st.data(),
        role=st.sampled_from(ROLES),
        user=st.sampled_from((None, *USERS, "u9")),
        project=st.sampled_from((None, *PROJECTS, "p9")),
    )
    def create_key(
        self, data: st.DataObject, role: str, user: str | None, project: str | None
    ) -> None:
        key = self._pick_key(data)
        body = {"role": role, "user": user, "project": project}
        response, _, _ = self.send(key, "POST", "/v1/keys", issues=True, json=body)
        if key.dead:
            return
        bound = key.user or user
        above = RANK[role] > RANK[key.role]
        other_user = key.user is not None and user not in (None, key.user)
        if not key.may("manage") or above or other_user:
            wanted = {(403, "permission_denied")}
        elif (bound is not None and bound not in self.world.users[key.tenant]) or (
            project is not None and project not in self.world.projects[key.tenant]
        ):
            wanted = {(404, "not_found")}
        else:
            wanted = {(201, None)}
        self._expect(response, wanted)
        if response.status_code == 201:
            made = response.json()
            new = self._key(made["id"], made["key"])
            assert (new.tenant, new.role, new.user, new.project) == (
                key.tenant,
                role,
                bound,
                project,
            )
            self.world.keys.append(new)
            self._expect(self.api.request("GET", "/v1/me", new.secret), {(200, None)})

    @rule(
        data=st.data(),
        op=st.sampled_from(("list", "get", "allow", "rotate", "rotate-now", "revoke")),
    )
    def keys(self, data: st.DataObject, op: str) -> None:
        key = self._pick_key(data)
        world = self.world
        target = data.draw(st.sampled_from([*world.keys, None]), label="target key")
        target_id = target.id if target is not None else "nosuchkey0000000"

        def build(key_id: str) -> tuple[str, str, dict[str, Any]]:
            path = f"/v1/keys/{key_id}"
            return {
                "list": ("GET", "/v1/keys", {}),
                "get": ("GET", path, {}),
                "allow": ("PATCH", path, {"json": {"allow": ["0.0.0.0/0", "::/0"]}}),
                "rotate": ("POST", f"{path}/rotate", {}),
                "rotate-now": ("POST", f"{path}/rotate", {"json": {"grace_seconds": 0}}),
                "revoke": ("DELETE", path, {}),
            }[op]

        method, path, options = build(target_id)
        response, _, _ = self.send(key, method, path, issues=True, **options)
        if key.dead:
            return
        found = target is not None and key.sees_key(target)
        if not key.may("manage"):
            wanted = {(403, "permission_denied")}
        elif op == "list":
            wanted = {(200, None)}
        elif not found:
            wanted = {(404, "not_found")}
        elif op != "get" and target is not None and RANK[target.role] > RANK[key.role]:
            wanted = {(403, "permission_denied")}
        elif op.startswith("rotate") and target is not None and (target.dead or target.rotated):
            wanted = {(409, "conflict")}
        else:
            wanted = {(201 if op.startswith("rotate") else 200, None)}
        self._expect(response, wanted)
        if op != "list" and not found and key.may("manage"):
            twin = self.api.request(*build("nosuchkey0000001")[:2], key.secret, **options)
            assert (twin.status_code, code(twin)) == (response.status_code, code(response))
        if response.status_code >= 400:
            return
        if op == "list":
            listed = {k["id"] for k in response.json()["keys"]}
            assert listed == {k.id for k in world.keys if key.sees_key(k)}
            assert all("hash" not in k for k in response.json()["keys"])
        elif op in ("get", "allow"):
            assert response.json()["id"] == target_id
        elif op == "revoke":
            assert target is not None
            target.dead = True
        else:
            assert target is not None
            made = response.json()
            new = self._key(made["id"], made["key"])
            grants = (target.tenant, target.role, target.user, target.project)
            assert (new.tenant, new.role, new.user, new.project) == grants
            world.keys.append(new)
            target.rotated = True
            target.dead = op == "rotate-now"

    @rule(
        data=st.data(),
        op=st.sampled_from(("me", "tenant", "tenants", "create-tenant", "allow")),
        name=st.sampled_from(NEW_TENANTS),
        allow=st.sampled_from(([], ["127.0.0.0/8"], ["0.0.0.0/0", "::/0"])),
    )
    def tenancy(self, data: st.DataObject, op: str, name: str, allow: list[str]) -> None:
        key = self._pick_key(data)
        world = self.world
        method, path, options = {
            "me": ("GET", "/v1/me", {}),
            "tenant": ("GET", "/v1/tenant", {}),
            "tenants": ("GET", "/v1/tenants", {}),
            "create-tenant": ("POST", "/v1/tenants", {"json": {"name": name}}),
            "allow": ("PATCH", "/v1/tenant", {"json": {"allow": allow}}),
        }[op]
        response, _, _ = self.send(key, method, path, issues=True, **options)
        if key.dead:
            return
        if op in ("me", "tenant"):
            wanted = {(200, None)}
        elif op == "allow":
            wanted = {(200, None)} if key.may("tenant") else {(403, "permission_denied")}
        elif not key.may("tenants"):
            wanted = {(403, "permission_denied")}
        elif op == "create-tenant" and name in world.tenants:
            wanted = {(409, "conflict")}
        else:
            wanted = {(201 if op == "create-tenant" else 200, None)}
        self._expect(response, wanted)
        if response.status_code >= 400:
            return
        body = response.json()
        if op == "me":
            assert body["key"]["id"] == key.id
            assert (body["tenant"], body["role"]) == (key.tenant, key.role)
        elif op == "tenant":
            assert body["name"] == key.tenant
        elif op == "allow":
            assert world.root.admin.tenant(key.tenant).allow == tuple(body["allow"])
        elif op == "tenants":
            assert {t["name"] for t in body["tenants"]} == set(world.tenants)
        else:
            world.tenants.append(name)
            world.users[name], world.projects[name] = set(), set()
            owner = self._key(body["owner_key"]["id"], body["owner_key"]["key"])
            assert (owner.tenant, owner.role, owner.home) == (name, Role.OWNER.value, False)
            world.keys.append(owner)

    @rule(secret=st.sampled_from(("", "Bearer", "Basic abc", STRANGER, f"Bearer {STRANGER}")))
    def stranger(self, secret: str) -> None:
        entries = self._entries()
        response = self.api.request("GET", "/v1/stats", headers={"authorization": secret})
        self._expect(response, {(401, "unauthenticated")})
        self._audited(None, response, entries)
        new = self._entries() - entries
        if secret.startswith("Bearer mxk_"):  # a well-formed key: its public id only
            assert [e.key_id for e in new] == ["nosuchkey0000000"]
        else:
            assert [e.key_id for e in new] == [""]
        assert response.headers["www-authenticate"] == "Bearer"


Isolation.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    # A failure is reported as drawn: shrinking runs of real requests takes minutes.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestIsolation = pytest.mark.slow(Isolation.TestCase)
