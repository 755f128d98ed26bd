"""Privacy operations: an erased user, project or tenant is gone from every file the
store owns and from every read, the receipt counts what went, an interrupted erase is
finished by running it again, anonymising keeps the counts, and an export holds every
version of the user and nothing of anyone else."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clirun import run_cli

from memex import Memex, NotFoundError, ScopeError
from memex.core.privacy import PrivacyExport
from memex.core.progress import Step

SMALL = {"lexical_index_min": 10, "ann_min_vectors": 40}


def marker(who: str, i: int) -> str:
    return f"zq{who}{i}x{secrets.token_hex(3)}"


def fill(mx: Memex, who: str, count: int, **scope: str) -> list[str]:
    """``count`` memories of ``scope``, each with a marker of its own; the markers."""
    marks = [marker(who, i) for i in range(count)]
    mx.remember_many([{"content": f"note about {m} and tea", "scope": scope} for m in marks])
    return marks


def store_files(mx: Memex) -> list[Path]:
    files: list[Path] = []
    for path in mx._engine.store.info().files:
        if path.is_dir():
            files.extend(sorted(f for f in path.rglob("*") if f.is_file()))
        elif path.exists():
            files.append(path)
    return files


def found_in_files(files: list[Path], marks: list[str]) -> set[str]:
    blobs = [f.read_bytes() for f in files]
    return {m for m in marks if any(m.encode() in blob for blob in blobs)}


@pytest.fixture(params=["sqlite", "postgres"])
def any_mx(request: pytest.FixtureRequest, store_path: Path) -> Iterator[Memex]:
    where = request.getfixturevalue("postgres_url") if request.param == "postgres" else store_path
    with Memex.open(where, **SMALL) as handle:
        yield handle


# -- SQLite: nothing of the erased set is left in any file ------------------------------------


@pytest.mark.parametrize("what", ["user", "project", "tenant"])
def test_erase_leaves_no_marker_in_any_file(store_path: Path, what: str) -> None:
    with Memex.open(store_path, **SMALL) as mx:
        mx.admin.create_user("default", "alice")
        mx.admin.create_project("default", "web")
        gone_scope = {"user": {"user": "alice"}, "project": {"project": "web"}}.get(what, {})
        target = mx if what != "tenant" else mx.scoped(tenant="acme")
        gone = fill(target, "gone", 40, **gone_scope)
        kept = fill(mx, "kept", 40, user="bob", project="api")
        first = target.list(scope=gone_scope, limit=1).items[0]
        target.update(first.id, content=f"changed {first.content}")
        target.context("tea", 2000, session="chat", scope=gone_scope)
        assert target.recall(gone[3], 3)[0].memory.content.endswith(f"{gone[3]} and tea")
        if what == "tenant":
            receipt = mx.erase(tenant="acme", batch_size=7)
        else:
            receipt = mx.erase(**{what: "alice" if what == "user" else "web"}, batch_size=7)
        assert receipt.counts["memories"] == 40 and receipt.counts["versions"] == 41
        assert receipt.counts["sessions"] >= 1
        files = store_files(mx)
        assert files
        assert found_in_files(files, gone) == set()
        assert found_in_files(files, kept) == set(kept)
        assert all(h.memory.scope.user == "bob" for h in mx.recall(gone[5], 10))
        if what != "tenant":
            assert [u.name for u in mx.admin.users("default")] == (
                [] if what == "user" else ["alice"]
            )


# -- receipts, reads and history after an erase --------------------------------------------


def test_receipt_counts_match_what_left_the_store(any_mx: Memex) -> None:
    mx = any_mx
    mx.admin.create_user("default", "alice")
    mx.admin.create_key("default", "read_only", user="alice")
    fill(mx, "alice", 12, user="alice")
    fill(mx, "bob", 5, user="bob")
    alice = mx.scoped(user="alice")
    memories = alice.list(limit=100).items
    alice.update(memories[0].id, content="a new text for the first")
    alice.supersede(memories[1].id, "what replaced the second")
    alice.forget(memories[2].id)
    before, before_alice = mx.stats(), alice.stats()
    receipt = mx.erase(user="alice", batch_size=5)
    after = mx.stats()
    gone = before_alice.memories + before_alice.deleted + before_alice.superseded
    assert receipt.counts["memories"] == gone == 13
    assert receipt.counts["versions"] == before.versions - after.versions == before_alice.versions
    assert receipt.counts["vectors"] == before.vectors - after.vectors
    assert (receipt.counts["keys"], receipt.counts["users"]) == (1, 1)
    assert after.memories == 5 and alice.stats().versions == 0
    for memory_id in [m.id for m in memories]:
        with pytest.raises(NotFoundError):
            mx.get(memory_id)
        with pytest.raises(NotFoundError):
            mx.history(memory_id)
    assert (
        mx.list(scope={"user": "alice"}, include_deleted=True, include_superseded=True).items == []
    )
    with pytest.raises(NotFoundError):
        mx.erase(user="alice")  # nothing left of it


def test_the_receipt_hash_is_of_the_sorted_erased_ids(store_path: Path) -> None:
    with Memex.open(store_path) as mx:
        fill(mx, "a", 7, user="alice")
        ids = [m.id for m in mx.list(scope={"user": "alice"}, limit=100).items]
        receipt = mx.erase(user="alice", batch_size=3)
    expected = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
    assert receipt.ids_sha256 == expected


def test_erase_of_thousands_goes_in_batches_with_progress(store_path: Path) -> None:
    with Memex.open(store_path) as mx:
        for chunk in range(5):
            mx.remember_many(
                [
                    {"content": f"bulk note {chunk}-{i} zqbulk", "scope": {"user": "u"}}
                    for i in range(1_040)
                ]
            )
        fill(mx, "kept", 3, user="v")
        steps: list[Step] = []
        started = time.monotonic()
        receipt = mx.erase(user="u", progress=steps.append)
        elapsed = time.monotonic() - started
        assert receipt.counts["memories"] == 5_200
        advances = [s for s in steps if s.done]
        assert len(advances) == 11  # 500 a transaction
        assert [s.total for s in steps] == [5_200] * len(steps)
        assert advances[-1].done == 5_200
        assert mx.recall("bulk note zqbulk", 10, scope={"user": "u"}) == []
        assert mx.list(scope={"user": "u"}, include_deleted=True).items == []
        assert mx.stats().memories == 3
        assert elapsed < 60, elapsed  # a budget against a per-memory rewrite, not a benchmark


def test_memories_an_erased_one_superseded_are_restored(store_path: Path) -> None:
    with Memex.open(store_path) as mx:
        old = mx.remember("the office is in Leeds", scope={"user": "bob"})
        mx.remember("the office is in York", scope={"user": "alice"}, supersedes=old.id)
        assert mx.get(old.id).superseded_by is not None
        privacy = mx._engine.store.privacy()
        assert privacy.superseding("default", [old.id, mx.get(old.id).superseded_by or ""]) == {
            mx.get(old.id).superseded_by
        }
        mx.erase(user="alice")
        assert mx.get(old.id).superseded_by is None
        assert [h.memory.id for h in mx.recall("office", 1)] == [old.id]


# -- an interrupted erase --------------------------------------------------------------------

ERASER = textwrap.dedent(
    """
    import sys, time
    from memex import Memex
    def report(step):
        if step.done:
            print(step.done, flush=True)
            time.sleep(0.2)
    with Memex.open(sys.argv[1]) as mx:
        mx.erase(user="u", batch_size=100, progress=report)
    """
)


def test_a_killed_erase_is_finished_by_running_it_again(store_path: Path) -> None:
    with Memex.open(store_path, **SMALL) as mx:
        gone = fill(mx, "gone", 600, user="u")
        kept = fill(mx, "kept", 20, user="v")
        files = store_files(mx)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen(
        [sys.executable, "-c", ERASER, str(store_path)], stdout=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    assert int(proc.stdout.readline()) == 100  # killed after its first batch or so
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    with Memex.open(store_path, **SMALL) as mx:
        left = mx.stats().memories
        assert 20 < left < 620  # some batches erased, not all
        receipt = mx.erase(user="u")
        assert receipt.counts["memories"] == left - 20
        assert mx.stats().memories == 20
        files = store_files(mx)
        assert found_in_files(files, gone) == set()
        assert found_in_files(files, kept) == set(kept)


# -- anonymise and export ----------------------------------------------------------------------


def test_anonymise_keeps_counts_and_renames_everywhere(any_mx: Memex) -> None:
    mx = any_mx
    mx.admin.create_user("default", "alice")
    issued = mx.admin.create_key("default", "read_write", user="alice")
    fill(mx, "a", 6, user="alice")
    fill(mx, "b", 4, user="bob")
    first = mx.list(scope={"user": "alice"}, limit=1).items[0]
    mx.update(first.id, content="changed text")
    mx.context("tea", 1000, scope={"user": "alice"}, session="s1")
    before = mx.stats()
    done = mx.anonymise("alice")
    after = mx.stats()
    assert (before.memories, before.versions, before.by_kind, before.vectors) == (
        after.memories, after.versions, after.by_kind, after.vectors
    )  # fmt: skip
    assert done.pseudonym.startswith("anon-")
    assert done.counts == {"memories": 6, "versions": 7, "sessions": 1, "keys": 1, "users": 1}
    assert mx.list(scope={"user": "alice"}, include_deleted=True).items == []
    renamed = mx.scoped(user=done.pseudonym)
    assert len(renamed.list(limit=100).items) == 6
    assert {m.scope.user for m in renamed.history(first.id)} == {done.pseudonym}
    assert [h.memory.scope.user for h in renamed.recall("tea", 3)] == [done.pseudonym] * 3
    assert mx.admin.key(issued.key.id).user == done.pseudonym
    assert [u.name for u in mx.admin.users("default")] == [done.pseudonym]
    with pytest.raises(NotFoundError):
        mx.anonymise("alice")


def test_export_holds_every_version_of_the_user_and_nothing_else(any_mx: Memex) -> None:
    mx = any_mx
    mine = fill(mx, "mine", 5, user="alice")
    theirs = fill(mx, "theirs", 5, user="bob")
    alice = mx.scoped(user="alice")
    items = alice.list(limit=10).items
    alice.update(items[0].id, content="second text")
    alice.update(items[0].id, content="third text")
    alice.forget(items[1].id)
    package = mx.export_user("alice")
    data = json.loads(json.dumps(package.to_dict()))
    assert data["manifest"]["memories"] == 5 and data["manifest"]["versions"] == 8
    assert PrivacyExport.from_dict(data) == package
    text = json.dumps(data)
    assert all(m in text for m in mine) and not any(t in text for t in theirs)
    for memory, past in package.memories:
        assert [*past, memory] == mx.history(memory.id)
    data["memories"][0]["memory"]["content"] = "tampered"
    with pytest.raises(Exception, match="sha256"):
        PrivacyExport.from_dict(data)


def test_handles_reach_only_their_own(store_path: Path) -> None:
    with Memex.open(store_path) as mx:
        fill(mx, "a", 2, user="alice")
        fill(mx.scoped(tenant="other"), "o", 2, user="carol")
        with pytest.raises(NotFoundError):
            mx.export_user("carol")  # another tenant's user
        with pytest.raises(NotFoundError):
            mx.scoped(user="alice").erase(user="bob")
        with pytest.raises(ScopeError):
            mx.scoped(project="web").erase(user="alice")
        with pytest.raises(ScopeError):
            mx.scoped(user="alice").erase(tenant="other")
        assert mx.scoped(tenant="other").stats().memories == 2


# -- the command line --------------------------------------------------------------------------


def cli(store: Path, *args: str, stdin: str | None = None) -> Any:
    return run_cli(["privacy", *args, "--store", str(store)], stdin=stdin)


def test_cli_exit_codes_and_one_line_errors(store_path: Path) -> None:
    with Memex.open(store_path) as mx:
        fill(mx, "a", 3, user="alice")
    refused = cli(store_path, "erase", "--user", "alice")
    assert refused.exit_code == 2
    assert (
        refused.stderr == "error: erase asks for confirmation on a terminal; pass --yes to erase\n"
    )
    assert cli(store_path, "erase").exit_code == 2
    missing = cli(store_path, "export", "--user", "nobody")
    assert (missing.exit_code, missing.stderr) == (1, "error: no user 'nobody'\n")
    exported = cli(store_path, "export", "--user", "alice", "--tenant", "default")
    assert json.loads(exported.stdout)["manifest"]["memories"] == 3
    done = cli(store_path, "erase", "--user", "alice", "--yes", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["counts"]["memories"] == 3
    assert cli(store_path, "erase", "--user", "alice", "--yes").exit_code == 1
    whole = cli(store_path, "erase", "--tenant", "default", "--yes")
    assert (whole.exit_code, whole.stderr) == (1, "error: no tenant 'default'\n")


def test_erasing_an_encrypted_tenant_destroys_its_key(store_path: Path) -> None:
    with Memex.open(store_path, master_key=secrets.token_hex(32)) as mx:
        acme = mx.scoped(tenant="acme")
        fill(acme, "a", 5, user="alice")
        acme.context("tea", 1000, scope={"user": "alice"}, session="s1")
        fill(mx, "kept", 3)
        renamed = acme.anonymise("alice")
        assert renamed.counts["sessions"] == 1  # sealed: dropped, not renamed
        assert [t for t, _ in mx._engine.store.tenant_keys().encrypted()] == ["acme", "default"]
        receipt = mx.erase(tenant="acme")
        assert (receipt.counts["memories"], receipt.counts["data_keys"]) == (5, 1)
        assert [t for t, _ in mx._engine.store.tenant_keys().encrypted()] == ["default"]
        assert mx.stats().memories == 3


def test_export_holds_the_audit_entries_that_name_the_user(any_mx: Memex) -> None:
    mx = any_mx
    fill(mx, "a", 2, user="alice")
    fill(mx, "b", 2, user="bob")
    alice_ids = {m.id for m in mx.list(scope={"user": "alice"}, limit=10).items}
    forgotten = sorted(alice_ids)[0]
    mx.forget(forgotten)
    package = mx.export_user("alice")
    named = {entry["resource_id"] for entry in package.audit}
    assert forgotten in named and named <= alice_ids | {""}
    bob_ids = {m.id for m in mx.list(scope={"user": "bob"}, limit=10).items}
    assert not bob_ids & named
    assert package.to_dict()["manifest"]["audit_entries"] == len(package.audit) > 0
    receipt = mx.erase(user="alice")
    last = mx.audit_export().entries[-1]
    assert (last.action, last.resource_type, last.resource_id) == ("privacy.erase", "user", "")
    assert last.detail == f"ids_sha256={receipt.ids_sha256}" and last.count == 2
    assert all(v.ok for v in mx.audit_verify())


def test_a_tenant_with_quotas_and_keys_is_erased_whole(any_mx: Memex) -> None:
    mx = any_mx
    mx.admin.create_tenant("acme")
    mx.admin.create_user("acme", "alice")
    mx.admin.create_key("acme", "owner")
    mx.set_quota("acme", memories=1_000)
    fill(mx.scoped(tenant="acme"), "a", 3, user="alice")
    receipt = mx.erase(tenant="acme")
    assert (receipt.counts["tenants"], receipt.counts["users"], receipt.counts["keys"]) == (1, 1, 1)
    assert mx.admin.directory.tenant("acme") is None


def test_anonymise_drops_a_sealed_saved_context_on_postgresql(postgres_url: str) -> None:
    """A sealed context's seal is bound to its session's name: renaming it would leave
    it unreadable, so anonymise drops it, as on SQLite."""
    with Memex.open(postgres_url, master_key=secrets.token_hex(32)) as mx:
        fill(mx, "a", 4, user="alice")
        mx.context("tea", 1000, scope={"user": "alice"}, session="alice-chat")
        renamed = mx.anonymise("alice")
        assert renamed.counts["sessions"] == 1
        pseudonym = renamed.pseudonym
        later = mx.context("tea", 1000, scope={"user": pseudonym}, session="alice-chat")
        assert later.tokens > 0  # every context of the tenant still opens
        assert mx.stats().memories == 4
