"""The ``memex`` command end to end: every command with --json, and every failure mode.

Each test runs the real command in process (tests/clirun.py) against a store file in a
temporary directory, parses the JSON the command prints, and checks exit codes and the
one-line ``error: ...`` message on standard error for bad input.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from clirun import Result, run_cli

from memex.interfaces.cli.demo import QUERIES
from memex.interfaces.cli.parser import build

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


# -- helpers ---------------------------------------------------------------------------


def invoke(
    store: Path,
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """Run ``memex <args> --store <store>``; unexpected exceptions propagate to pytest."""
    return run_cli([*args, "--store", str(store)], stdin=stdin, env=env)


def run_json(store: Path, *args: str, stdin: str | None = None) -> Any:
    """Run a command with --json, require success, and return the parsed JSON it printed."""
    result = invoke(store, *args, "--json", stdin=stdin)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return json.loads(result.stdout)


def run_jsonl(store: Path, *args: str) -> list[dict[str, Any]]:
    """Run a command that prints JSON Lines on stdout; return the records."""
    result = invoke(store, *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def assert_error(result: Result, code: int) -> str:
    """Exit ``code``, nothing on stdout, exactly one ``error: ...`` line on stderr."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert len(lines[0]) > len("error: ")
    return lines[0]


def remember(store: Path, content: str, *options: str) -> dict[str, Any]:
    memory: dict[str, Any] = run_json(store, "remember", content, *options)
    return memory


def jsonl(records: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def count(store: Path) -> int:
    stats: dict[str, Any] = run_json(store, "stats")
    return int(stats["memories"])


def recall_ids(store: Path, query: str, *options: str) -> list[str]:
    hits = run_json(store, "recall", query, *options)
    return [h["memory"]["id"] for h in hits]


SEED = [
    {
        "content": "The deploy pipeline pushes docker images to the registry at noon.",
        "kind": "fact",
    },
    {"content": "Alice prefers green tea over coffee in the morning.", "kind": "preference"},
    {"content": "We chose PostgreSQL for the billing ledger.", "kind": "decision"},
    {"content": "The office wifi password rotates every month.", "kind": "fact"},
    {"content": "Bob is allergic to peanuts; order lunch accordingly.", "kind": "note"},
    {"content": "Kubernetes upgrade to 1.30 is planned for March.", "kind": "event"},
    {"content": "The quarterly tax filing deadline is the fifteenth.", "kind": "note"},
]


@pytest.fixture
def seeded(store_path: Path) -> Path:
    """A store holding SEED, imported through the CLI."""
    result = run_json(store_path, "import", "-", stdin=jsonl(SEED))
    assert result == {"imported": len(SEED)}
    return store_path


# -- remember / get --------------------------------------------------------------------


def test_remember_with_every_option_and_get_it_back(store_path: Path) -> None:
    memory = remember(
        store_path,
        "Deploys are frozen during the holiday week.",
        "--kind",
        "decision",
        "--tag",
        "ops",
        "--tag",
        "release",
        "--meta",
        "owner=alice",
        "--meta",
        "ticket=42",
        "--meta",
        'extra={"a": [1, 2]}',
        "--project",
        "apollo",
        "--ttl",
        "3600",
        "--importance",
        "0.8",
    )
    assert uuid.UUID(memory["id"])
    assert memory["content"] == "Deploys are frozen during the holiday week."
    assert memory["kind"] == "decision"
    assert memory["tags"] == ["ops", "release"]
    assert memory["metadata"] == {"owner": "alice", "ticket": 42, "extra": {"a": [1, 2]}}
    assert memory["scope"] == {"tenant": "default", "project": "apollo"}
    assert memory["importance"] == 0.8
    assert memory["version"] == 1
    assert memory["deleted_at"] is None
    lifetime = datetime.fromisoformat(memory["expires_at"]) - datetime.fromisoformat(
        memory["created_at"]
    )
    assert lifetime.total_seconds() == pytest.approx(3600, abs=1)

    fetched = run_json(store_path, "get", memory["id"])
    for key in ("id", "content", "kind", "tags", "metadata", "scope", "expires_at", "version"):
        assert fetched[key] == memory[key], key


def test_remember_reads_content_from_stdin(store_path: Path) -> None:
    text = "piped in from another program\nwith a second line"
    memory = run_json(store_path, "remember", "-", stdin=text + "\n")
    assert memory["content"].strip() == text
    assert run_json(store_path, "get", memory["id"])["content"] == memory["content"]
    assert recall_ids(store_path, "piped from another program")[0] == memory["id"]


def test_remember_defaults(store_path: Path) -> None:
    memory = remember(store_path, "a plain note")
    assert memory["kind"] == "note"
    assert memory["tags"] == []
    assert memory["metadata"] == {}
    assert memory["scope"] == {"tenant": "default"}
    assert memory["expires_at"] is None
    assert memory["importance"] == 0.5


# -- recall ----------------------------------------------------------------------------


def test_recall_finds_the_specific_memory_first(seeded: Path) -> None:
    target = remember(seeded, "The staging cluster runs out of disk on Sundays.")
    hits = run_json(seeded, "recall", "staging cluster disk")
    assert hits[0]["memory"]["id"] == target["id"]
    assert hits[0]["memory"]["content"] == target["content"]
    assert set(hits[0]) >= {"score", "lexical_rank", "vector_rank", "explain", "memory"}
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert recall_ids(seeded, "green tea coffee")[0] == next(
        m["id"]
        for m in run_json(seeded, "list", "--limit", "100")["items"]
        if "tea" in m["content"]
    )


def test_recall_k_limits_results(seeded: Path) -> None:
    assert len(run_json(seeded, "recall", "the", "-k", "2")) == 2
    assert len(run_json(seeded, "recall", "the", "--limit", "3")) == 3
    assert len(run_json(seeded, "recall", "the", "-k", "100")) == len(SEED)


def test_recall_kind_filter(seeded: Path) -> None:
    hits = run_json(seeded, "recall", "deploy pipeline registry billing", "--kind", "decision")
    assert hits
    assert {h["memory"]["kind"] for h in hits} == {"decision"}
    assert "PostgreSQL" in hits[0]["memory"]["content"]
    both = run_json(seeded, "recall", "anything", "--kind", "fact", "--kind", "event", "-k", "50")
    assert sorted(h["memory"]["kind"] for h in both) == ["event", "fact", "fact"]


def test_recall_project_scope_filter(store_path: Path) -> None:
    apollo = remember(store_path, "Rocket telemetry is sampled at 50 Hz.", "--project", "apollo")
    gemini = remember(store_path, "Rocket telemetry is sampled at 10 Hz.", "--project", "gemini")
    hits = run_json(store_path, "recall", "rocket telemetry sampling", "--project", "apollo")
    assert [h["memory"]["id"] for h in hits] == [apollo["id"]]
    unscoped = recall_ids(store_path, "rocket telemetry sampling")
    assert set(unscoped) == {apollo["id"], gemini["id"]}
    assert run_json(store_path, "recall", "rocket", "--project", "mercury") == []


# -- list ------------------------------------------------------------------------------


def test_list_pages_are_disjoint_and_cover_everything(seeded: Path) -> None:
    everything = run_json(seeded, "list", "--limit", "100")
    assert everything["next_cursor"] is None
    all_ids = [m["id"] for m in everything["items"]]
    assert len(all_ids) == len(SEED) == len(set(all_ids))

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        extra = ["--cursor", cursor] if cursor else []
        page = run_json(seeded, "list", "--limit", "3", *extra)
        pages.append([m["id"] for m in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 10, "pagination does not terminate"
    assert [len(p) for p in pages] == [3, 3, 1]
    flat = [i for p in pages for i in p]
    assert len(flat) == len(set(flat))  # disjoint
    assert flat == all_ids  # same order, nothing missing


def test_list_ascending_is_reverse_of_descending(seeded: Path) -> None:
    desc = [m["id"] for m in run_json(seeded, "list", "--limit", "100")["items"]]
    asc = [m["id"] for m in run_json(seeded, "list", "--limit", "100", "--order", "asc")["items"]]
    assert asc == list(reversed(desc))


def test_list_filters_by_kind(seeded: Path) -> None:
    items = run_json(seeded, "list", "--kind", "fact")["items"]
    assert len(items) == 2
    assert {m["kind"] for m in items} == {"fact"}


# -- update / forget / history ---------------------------------------------------------


def test_update_changes_content_and_bumps_version(store_path: Path) -> None:
    memory = remember(store_path, "The build server is named ares.", "--tag", "infra")
    updated = run_json(
        store_path, "update", memory["id"], "--content", "The build server is named zeus."
    )
    assert updated["id"] == memory["id"]
    assert updated["version"] == 2
    assert updated["content"] == "The build server is named zeus."
    assert updated["tags"] == ["infra"]
    assert run_json(store_path, "get", memory["id"])["content"] == updated["content"]
    assert recall_ids(store_path, "zeus")[0] == memory["id"]
    again = run_json(store_path, "update", memory["id"], "--importance", "0.9", "--kind", "fact")
    assert again["version"] == 3
    assert again["importance"] == 0.9
    assert again["kind"] == "fact"
    assert again["content"] == updated["content"]


def test_forget_history_and_purge(store_path: Path) -> None:
    keep = remember(store_path, "an unrelated memory that stays")
    memory = remember(store_path, "Version one of the release notes.")
    run_json(store_path, "update", memory["id"], "--content", "Version two of the release notes.")

    forgotten = run_json(store_path, "forget", memory["id"])
    assert forgotten == {"id": memory["id"], "purged": False, "version": 3}
    assert_error(invoke(store_path, "get", memory["id"]), 1)
    assert memory["id"] not in recall_ids(store_path, "release notes")
    assert memory["id"] not in [m["id"] for m in run_json(store_path, "list")["items"]]

    versions = run_json(store_path, "history", memory["id"])
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert [v["content"] for v in versions] == [
        "Version one of the release notes.",
        "Version two of the release notes.",
        "Version two of the release notes.",
    ]
    assert versions[0]["deleted_at"] is None
    assert versions[1]["deleted_at"] is None
    assert versions[2]["deleted_at"] is not None

    purged = run_json(store_path, "forget", memory["id"], "--purge")
    assert purged == {"id": memory["id"], "purged": True}
    assert_error(invoke(store_path, "history", memory["id"]), 1)
    assert_error(invoke(store_path, "get", memory["id"]), 1)
    assert run_json(store_path, "get", keep["id"])["content"] == keep["content"]
    stats = run_json(store_path, "stats")
    assert (stats["memories"], stats["deleted"], stats["vectors"]) == (1, 0, 1)


# -- stats -----------------------------------------------------------------------------


def test_stats_counts_match(store_path: Path) -> None:
    empty = run_json(store_path, "stats")
    assert (empty["memories"], empty["deleted"], empty["vectors"]) == (0, 0, 0)

    ids = [remember(store_path, f"note number {i} about topic {i}")["id"] for i in range(3)]
    remember(store_path, "a fact about the sky being blue", "--kind", "fact")
    run_json(store_path, "forget", ids[0])
    run_json(store_path, "update", ids[1], "--content", "note number one, revised")

    stats = run_json(store_path, "stats")
    assert stats["memories"] == 3
    assert stats["deleted"] == 1
    assert stats["by_kind"] == {"fact": 1, "note": 2}
    assert stats["vectors"] == 4  # a forgotten memory keeps its vector until purged
    assert stats["versions"] == 6  # 4 first versions + 1 forget + 1 update
    assert stats["embedder"] == "wordllama:l2_supercat:256"
    assert stats["dimensions"] == 256
    assert Path(stats["path"]).resolve() == store_path.resolve()
    assert stats["size_bytes"] > 0


# -- import / export -------------------------------------------------------------------


def test_import_file_then_recall(store_path: Path, tmp_path: Path) -> None:
    given_id = str(uuid.uuid4())
    records: list[dict[str, Any]] = [
        {"id": given_id, "content": "The espresso machine needs descaling weekly.", "kind": "fact"},
        {"content": "Carol owns the payments integration.", "tags": ["team"]},
        {"content": "Load tests run against staging only.", "metadata": {"env": "staging"}},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text(jsonl(records) + "\n\n", encoding="utf-8")  # blank lines are skipped
    assert run_json(store_path, "import", str(path)) == {"imported": 3}

    assert recall_ids(store_path, "espresso descaling")[0] == given_id
    carol = run_json(store_path, "recall", "who owns payments")[0]["memory"]
    assert carol["content"] == "Carol owns the payments integration."
    assert carol["tags"] == ["team"]
    assert run_json(store_path, "get", given_id)["kind"] == "fact"
    assert count(store_path) == 3


def test_import_from_stdin(store_path: Path) -> None:
    remember(store_path, "already here")
    records = [{"content": "Dave runs the Tuesday retro."}, {"content": "Eve reviews all SQL."}]
    assert run_json(store_path, "import", "-", stdin=jsonl(records)) == {"imported": 2}
    assert count(store_path) == 3
    top = run_json(store_path, "recall", "Tuesday retro")[0]["memory"]
    assert top["content"] == "Dave runs the Tuesday retro."


def test_export_to_stdout_and_file(seeded: Path, tmp_path: Path) -> None:
    records = run_jsonl(seeded, "export", "--json")
    assert sorted(r["content"] for r in records) == sorted(s["content"] for s in SEED)

    target = tmp_path / "out.jsonl"
    summary = run_json(seeded, "export", "-o", str(target))
    assert summary == {"exported": len(SEED), "output": str(target)}
    from_file = [json.loads(line) for line in target.read_text("utf-8").splitlines()]
    assert [r["id"] for r in from_file] == [r["id"] for r in records]
    assert [r["content"] for r in from_file] == [r["content"] for r in records]


def test_export_skips_forgotten_unless_all(seeded: Path) -> None:
    victim = run_json(seeded, "list", "--limit", "1")["items"][0]
    run_json(seeded, "forget", victim["id"])
    visible = run_jsonl(seeded, "export")
    assert victim["id"] not in {r["id"] for r in visible}
    assert len(visible) == len(SEED) - 1
    everything = run_jsonl(seeded, "export", "--all")
    assert victim["id"] in {r["id"] for r in everything}
    assert len(everything) == len(SEED)


def test_export_import_round_trip(seeded: Path, tmp_path: Path) -> None:
    remember(seeded, "tagged and scoped", "--tag", "x", "--meta", "k=v", "--project", "p1")
    dump = tmp_path / "dump.jsonl"
    run_json(seeded, "export", "-o", str(dump))

    fresh = tmp_path / "fresh" / "memex.db"
    assert run_json(fresh, "import", str(dump)) == {"imported": len(SEED) + 1}

    def key(store: Path) -> dict[str, tuple[Any, ...]]:
        return {
            r["id"]: (
                r["content"],
                r["kind"],
                r["tags"],
                r["metadata"],
                r["scope"],
                r["created_at"],
                r["importance"],
            )
            for r in run_jsonl(store, "export")
        }

    original, copy = key(seeded), key(fresh)
    assert len(original) == len(SEED) + 1
    assert copy == original
    assert count(fresh) == count(seeded)
    assert (
        recall_ids(fresh, "PostgreSQL billing ledger")[0]
        == recall_ids(seeded, "PostgreSQL billing ledger")[0]
    )


def history_of_everything(store: Path) -> dict[str, list[dict[str, Any]]]:
    """Every version of every memory (forgotten ones too), as ``memex history`` shows."""
    ids = [r["id"] for r in run_jsonl(store, "export", "--all")]
    return {i: run_json(store, "history", i) for i in ids}


def test_export_all_and_import_carry_the_whole_history(store_path: Path, tmp_path: Path) -> None:
    fact = remember(store_path, "Alice works at Initech", "--kind", "fact", "--tag", "job")
    run_json(store_path, "update", fact["id"], "--importance", "0.9", "--source", "hr")
    newer = remember(store_path, "Alice works at Globex", "--supersedes", fact["id"])
    gone = remember(store_path, "a secret nobody should see again")
    run_json(store_path, "forget", gone["id"])
    run_json(store_path, "get", newer["id"])  # read statistics travel too
    dump = tmp_path / "everything.jsonl"
    assert run_json(store_path, "export", "--all", "-o", str(dump))["exported"] == 3
    copy = tmp_path / "copy" / "memex.db"
    assert run_json(copy, "import", str(dump)) == {"imported": 3}
    before, after = history_of_everything(store_path), history_of_everything(copy)
    assert before == after
    assert [v["version"] for v in after[fact["id"]]] == [1, 2, 3]
    assert after[gone["id"]][-1]["deleted_at"] is not None
    assert recall_ids(copy, "where does Alice work", "-k", "1") == [newer["id"]]


def test_export_never_writes_onto_the_store(store_path: Path) -> None:
    remember(store_path, "precious")
    intact = store_path.read_bytes()
    for target in (store_path, Path(f"{store_path}-wal"), Path(f"{store_path}-shm")):
        message = assert_error(invoke(store_path, "export", "-o", str(target)), 2)
        assert "store" in message
    assert store_path.read_bytes() == intact
    assert [m["content"] for m in run_json(store_path, "list")["items"]] == ["precious"]


def test_backup_and_restore(store_path: Path, tmp_path: Path) -> None:
    keep = remember(store_path, "kept by the backup")
    run_json(store_path, "update", keep["id"], "--content", "kept by the backup, edited")
    copy = tmp_path / "backup.db"
    info = run_json(store_path, "backup", str(copy))
    assert info["memories"] == 1 and info["path"] == str(copy) and info["size_bytes"] > 0
    remember(store_path, "written after the backup")
    message = assert_error(invoke(store_path, "restore", str(copy)), 2)
    assert "--force" in message and count(store_path) == 2
    assert run_json(store_path, "restore", str(copy), "--force") == {
        "restored": 1,
        "backup": str(copy),
    }
    assert [m["content"] for m in run_json(store_path, "list")["items"]] == [
        "kept by the backup, edited"
    ]
    assert len(run_json(store_path, "history", keep["id"])) == 2
    assert_error(invoke(store_path, "backup", str(store_path)), 2)
    assert_error(invoke(store_path, "restore", str(tmp_path / "missing.db")), 2)


def test_unsupersede(store_path: Path) -> None:
    old = remember(store_path, "The office is in Leeds", "--kind", "fact")
    wrong = remember(store_path, "The office is in Paris", "--supersedes", old["id"])
    assert recall_ids(store_path, "where is the office", "-k", "1") == [wrong["id"]]
    back = run_json(store_path, "unsupersede", old["id"])
    assert back["valid_until"] is None and back["superseded_by"] is None
    assert set(recall_ids(store_path, "office Leeds Paris")) == {old["id"], wrong["id"]}
    assert_error(invoke(store_path, "unsupersede", old["id"]), 2)  # not superseded now
    assert_error(invoke(store_path, "unsupersede", str(uuid.uuid4())), 1)


# -- reindex / expire / quickstart -----------------------------------------------------


def test_reindex_reports_count_and_recall_still_works(seeded: Path) -> None:
    expected = recall_ids(seeded, "peanut allergy lunch")[0]
    result = run_json(seeded, "reindex")
    assert result == {"reindexed": len(SEED), "embedder": "wordllama:l2_supercat:256"}
    assert recall_ids(seeded, "peanut allergy lunch")[0] == expected
    hits = run_json(seeded, "recall", "nuts food intolerance", "--mode", "vector", "-k", "1")
    assert len(hits) == 1
    stats = run_json(seeded, "stats")
    assert stats["vectors"] == stats["memories"] == len(SEED)


def test_expire_removes_memories_past_their_ttl(store_path: Path) -> None:
    short = remember(store_path, "this one is short-lived", "--ttl", "6")
    long = remember(store_path, "this one stays around")
    # Before its expiry it is listed and expire finds nothing (6 s leaves room for a
    # loaded machine; the wait below is until the recorded expiry, not a fixed time).
    assert run_json(store_path, "expire") == {"expired": 0}
    assert short["id"] in {m["id"] for m in run_json(store_path, "list")["items"]}
    expires = datetime.fromisoformat(short["expires_at"])
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)
    assert run_json(store_path, "expire") == {"expired": 1}
    listed = {m["id"] for m in run_json(store_path, "list")["items"]}
    assert short["id"] not in listed
    assert long["id"] in listed
    assert_error(invoke(store_path, "get", short["id"]), 1)
    assert run_json(store_path, "history", short["id"])[-1]["deleted_at"] is not None
    assert run_json(store_path, "expire") == {"expired": 0}


def test_quickstart_lists_three_queries_with_hits(store_path: Path) -> None:
    results = run_json(store_path, "quickstart")
    assert [r["query"] for r in results] == QUERIES
    assert len(results) == 3
    for entry in results:
        assert entry["hits"], entry["query"]
        assert all(h["memory"]["scope"]["project"] == "quickstart" for h in entry["hits"])
    tops = {r["query"]: r["hits"][0]["memory"]["content"] for r in results}
    assert "tabs over spaces" in tops["which editor settings does the user like?"]
    assert "deploys happen on Fridays" in tops["when do we deploy?"]
    assert "billing service times out" in tops["billing timeout"]
    # Running it again reuses the examples instead of storing them twice.
    run_json(store_path, "quickstart")
    assert count(store_path) == 6


def test_index_builds_what_a_large_import_would_leave_to_the_first_recall(
    store_path: Path,
) -> None:
    env = {"MEMEX_LEXICAL_INDEX_MIN": "20"}
    records = [{"content": f"record {i} about topic {i % 7}"} for i in range(60)]
    with_json = invoke(store_path, "import", "-", "--json", stdin=jsonl(records), env=env)
    assert with_json.exit_code == 0, with_json.output
    watermark = store_path.with_name(store_path.name + ".lexical") / "watermark.json"
    assert json.loads(watermark.read_text())["max_seq"] == 60  # built by the import
    remember(store_path, "one more, left to the next query", "--tag", "late")
    assert json.loads(watermark.read_text())["max_seq"] == 60
    result = invoke(store_path, "index", "--json", env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["indexed"] is True
    assert json.loads(watermark.read_text())["max_seq"] == 61


def test_read_only_option_refuses_writes_and_serves_reads(store_path: Path) -> None:
    memory = remember(store_path, "a memory to read back")
    message = assert_error(invoke(store_path, "--read-only", "remember", "no"), 3)
    assert "read-only" in message and str(store_path) in message
    assert run_json(store_path, "--read-only", "get", memory["id"])["content"] == memory["content"]
    stats = run_json(store_path, "stats", "--read-only")
    assert stats["read_only"] == "opened read-only" and stats["memories"] == 1
    assert run_json(store_path, "stats")["read_only"] is None


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["get"],
        ["history"],
        ["forget"],
        ["forget", "--purge"],
        ["update", "--content", "x"],
    ],
)
def test_unknown_id_exits_1(store_path: Path, args: list[str]) -> None:
    remember(store_path, "something so the store exists")
    missing = str(uuid.uuid4())
    message = assert_error(invoke(store_path, args[0], missing, *args[1:]), 1)
    assert missing in message


@pytest.mark.parametrize("content", ["", "   ", "\n\t"])
def test_empty_content_exits_2(store_path: Path, content: str) -> None:
    message = assert_error(invoke(store_path, "remember", content), 2)
    assert "empty" in message
    assert count(store_path) == 0


def test_empty_stdin_exits_2(store_path: Path) -> None:
    assert_error(invoke(store_path, "remember", "-", stdin=""), 2)


def test_content_over_the_limit_exits_2(store_path: Path) -> None:
    env = {"MEMEX_MAX_CONTENT_BYTES": "100"}
    fits = invoke(store_path, "remember", "a" * 100, "--json", env=env)
    assert fits.exit_code == 0, fits.output
    message = assert_error(invoke(store_path, "remember", "a" * 101, env=env), 2)
    assert "101 bytes" in message
    assert "100" in message
    # The limit counts UTF-8 bytes, not characters: 51 'é' are 102 bytes.
    assert_error(invoke(store_path, "remember", "é" * 51, env=env), 2)
    assert count(store_path) == 1


@pytest.mark.parametrize("pair", ["novalue", "=value", ""])
def test_bad_meta_exits_2(store_path: Path, pair: str) -> None:
    message = assert_error(invoke(store_path, "remember", "hello", "--meta", pair), 2)
    assert "--meta" in message
    assert count(store_path) == 0


@pytest.mark.parametrize("value", ["1.5", "-0.1"])
def test_bad_importance_exits_2(store_path: Path, value: str) -> None:
    message = assert_error(invoke(store_path, "remember", "hello", "--importance", value), 2)
    assert "importance" in message
    assert count(store_path) == 0


def test_update_with_nothing_to_change_exits_2(store_path: Path) -> None:
    memory = remember(store_path, "unchanged")
    assert_error(invoke(store_path, "update", memory["id"]), 2)
    assert run_json(store_path, "get", memory["id"])["version"] == 1


def test_malformed_jsonl_line_is_named_and_nothing_is_imported(
    seeded: Path, tmp_path: Path
) -> None:
    before = run_json(seeded, "stats")
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"content": "first good record"}\n'
        '{"content": "second good record"}\n'
        '{"content": "third record is broken",\n'
        '{"content": "fourth good record"}\n',
        encoding="utf-8",
    )
    message = assert_error(invoke(seeded, "import", str(path)), 2)
    assert "line 3" in message
    after = run_json(seeded, "stats")
    assert after["memories"] == before["memories"] == len(SEED)
    assert after["versions"] == before["versions"]
    assert after["vectors"] == before["vectors"]
    assert not recall_ids(seeded, "first good record", "--mode", "lexical")


def test_invalid_record_on_last_line_rolls_back_the_whole_import(
    seeded: Path, tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        jsonl([{"content": "fine one"}, {"content": "fine two"}, {"content": "", "kind": "x"}]),
        encoding="utf-8",
    )
    message = assert_error(invoke(seeded, "import", str(path)), 2)
    assert "line 3" in message
    assert count(seeded) == len(SEED)


def test_unknown_field_in_jsonl_exits_2(store_path: Path) -> None:
    records = [{"content": "ok"}, {"content": "has an extra field", "colour": "red"}]
    message = assert_error(invoke(store_path, "import", "-", stdin=jsonl(records)), 2)
    assert "colour" in message
    assert "line 2" in message
    assert count(store_path) == 0


def test_import_missing_file_exits_2(store_path: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    message = assert_error(invoke(store_path, "import", str(missing)), 2)
    assert "nope.jsonl" in message


CORRUPT_CONTENTS = {
    "text": b"not a database\n" * 64,
    "random": random.Random(1234).randbytes(8192),
}


@pytest.mark.parametrize("kind", sorted(CORRUPT_CONTENTS))
@pytest.mark.parametrize("args", [["stats"], ["remember", "hello"], ["recall", "hello"]])
def test_corrupt_store_exits_3_and_is_left_alone(
    store_path: Path, kind: str, args: list[str]
) -> None:
    store_path.parent.mkdir(parents=True, exist_ok=True)
    garbage = CORRUPT_CONTENTS[kind]
    store_path.write_bytes(garbage)
    message = assert_error(invoke(store_path, *args, "--json"), 3)
    assert str(store_path) in message
    assert "corrupt" in message or "not a" in message
    assert store_path.read_bytes() == garbage


def test_locked_store_exits_3_and_writes_nothing(store_path: Path) -> None:
    remember(store_path, "written before the lock")
    holder = sqlite3.connect(store_path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        result = invoke(store_path, "remember", "quixotic zebra", env={"MEMEX_BUSY_TIMEOUT": "0.2"})
        elapsed = time.monotonic() - started
        message = assert_error(result, 3)
        assert "locked" in message
        assert elapsed < 10, "the busy timeout was not honoured"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    contents = [m["content"] for m in run_json(store_path, "list")["items"]]
    assert contents == ["written before the lock"]
    assert not recall_ids(store_path, "quixotic zebra", "--mode", "lexical")
    assert count(store_path) == 1


def test_sqlite_url_store_opens_the_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    target = tmp_path / "by-url" / "memex.db"
    result = run_cli(["stats", "--json", "--store", f"sqlite:///{target}"])
    assert result.exit_code == 0, result.output
    assert target.is_file()
    assert not (cwd / "sqlite:").exists()


def test_unsupported_store_url_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli(["stats", "--store", "postgres://x/y"])
    assert not (tmp_path / "postgres:").exists(), "a local directory was created for a URL"
    message = assert_error(result, 3)
    assert "postgres" in message


# -- documentation ---------------------------------------------------------------------


def registered_commands() -> list[str]:
    parser = build()
    actions = [a for a in parser._actions if a.dest == "command"]
    names = list(getattr(actions[0], "choices", {}))
    assert names, "the command line registers no commands"
    return sorted(names)


def test_context_json_and_text(store_path: Path) -> None:
    remember(store_path, "Never deploy on Fridays.", "--kind", "decision", "--tag", "pinned")
    remember(store_path, "The gateway listens on port 8443.", "--kind", "fact")
    remember(store_path, "user: can you check the gateway port?", "--kind", "message")
    first = run_json(store_path, "context", "gateway port", "--budget", "300", "--session", "s")
    assert 0 < first["tokens"] <= 300 and first["prefix_tokens_reused"] is None
    assert first["text"].startswith("## Pinned\n") and "8443" in first["text"]
    assert first["breakpoints"] and first["manifest"]
    second = run_json(store_path, "context", "deploy day", "--budget", "300", "--session", "s")
    assert second["prefix_tokens_reused"] > 0
    xml = invoke(store_path, "context", "gateway", "--format", "xml", "--budget", "300")
    assert xml.exit_code == 0 and xml.stdout.startswith("<section name=")
    assert "tokens" in xml.stderr
    bad = invoke(store_path, "context", "gateway", "--budget", "0")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ")
    bad_format = invoke(store_path, "context", "gateway", "--format", "yaml")
    assert bad_format.exit_code == 2


def test_every_command_is_tested_with_json() -> None:
    expected = {
        "remember",
        "recall",
        "get",
        "list",
        "update",
        "forget",
        "history",
        "stats",
        "import",
        "export",
        "reindex",
        "expire",
        "quickstart",
        "context",
        "index",
        "warm",
        "backup",
        "restore",
        "migrate",
        "unsupersede",
        "admin",
        "audit",
        "serve",
        "privacy",
        "tui",
        "mcp",
    }
    assert set(registered_commands()) == expected


def test_every_command_is_documented() -> None:
    assert DOCS.is_file(), f"{DOCS} is missing"
    text = DOCS.read_text(encoding="utf-8")
    headings = set(re.findall(r"^## memex ([a-z][a-z-]*)\s*$", text, flags=re.MULTILINE))
    missing = [name for name in registered_commands() if name not in headings]
    assert not missing, f"commands without a '## memex <name>' heading in docs/cli.md: {missing}"


def test_the_list_of_commands_is_the_parser_s() -> None:
    from memex.interfaces.cli.commands import COMMANDS as RUN
    from memex.interfaces.cli.parser import COMMANDS

    assert list(COMMANDS) == [c for c in registered_commands_in_order()]
    assert set(COMMANDS) == set(RUN)


def registered_commands_in_order() -> list[str]:
    actions = [a for a in build()._actions if a.dest == "command"]
    return list(getattr(actions[0], "choices", {}))
