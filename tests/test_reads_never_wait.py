"""Reads never wait for another process's write lock: not during a call, not in close.

Another process holds ``BEGIN IMMEDIATE`` on the store while a reader with a 20 s busy
timeout opens it, reads, assembles a context for a session and closes. Access statistics
and the session snapshot wait in memory and are written by a later flush once the lock
is free; what is still pending at close while the lock is held is dropped.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from memex import Memex, Settings

pytestmark = pytest.mark.slow

BOUND = 10.0  # far below the reader's 20 s busy timeout: a behaviour bound, not speed

READER = textwrap.dedent(
    """
    import json, sys, time
    from memex import Memex, Settings

    path, memory_id = sys.argv[1], sys.argv[2]
    settings = Settings(
        busy_timeout=20, access_flush_seconds=0.2, lexical_index_min=100, ann_min_vectors=200
    )

    def timed(name, call):
        started = time.monotonic()
        value = call()
        print(json.dumps({"step": name, "seconds": time.monotonic() - started}), flush=True)
        return value

    mx = timed("open", lambda: Memex.open(path, settings))
    timed("get", lambda: mx.get(memory_id))
    timed("recall", lambda: mx.recall("granite harbor", 10))
    first = timed("context", lambda: mx.context("lighthouse", 400, session="chat"))
    again = timed("context again", lambda: mx.context("lighthouse", 400, session="chat"))
    print(json.dumps({
        "snapshots": [first.stats["session_snapshot"], again.stats["session_snapshot"]],
        "reused": again.prefix_tokens_reused,
    }), flush=True)
    sys.stdin.readline()  # the lock is free now: the background flush writes
    sys.stdin.readline()  # the lock is held again
    timed("get while locked", lambda: mx.get(memory_id))
    timed("close", mx.close)
    """
)


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "memex.db"
    with Memex.open(path, Settings(lexical_index_min=100, ann_min_vectors=200)) as mx:
        mx.remember_many({"content": f"note {i} on granite and the harbor"} for i in range(300))
        memory = mx.remember("The lighthouse keeper logs each fog horn blast")
        mx.recall("granite harbor")  # both derived indexes exist, as in a long-lived store
    return path, memory.id


@pytest.fixture
def holder(store: tuple[Path, str]) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(store[0], isolation_level=None)
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


def stored(path: Path, query: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def access_count(path: Path, memory_id: str) -> int:
    return int(stored(path, "SELECT access_count FROM memories WHERE id = ?", (memory_id,))[0][0])


def test_reads_and_close_never_wait_for_another_writer(
    store: tuple[Path, str], holder: sqlite3.Connection
) -> None:
    path, memory_id = store
    holder.execute("BEGIN IMMEDIATE")  # another process's write lock
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(path), memory_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert reader.stdin is not None and reader.stdout is not None
    try:
        steps = [json.loads(reader.stdout.readline() or "null") for _ in range(6)]
        assert None not in steps, reader.communicate(timeout=60)[1][-3000:]
        timings = {s["step"]: s["seconds"] for s in steps[:5]}
        assert set(timings) == {"open", "get", "recall", "context", "context again"}
        assert all(seconds < BOUND for seconds in timings.values()), timings
        # The snapshot waits in memory; the reader's next context already builds on it.
        assert steps[5]["snapshots"] == ["pending", "pending"]
        assert steps[5]["reused"] is not None and steps[5]["reused"] > 0
        time.sleep(0.6)  # several flush rounds, all refused at once while the lock is held
        assert access_count(path, memory_id) == 0
        assert stored(path, "SELECT session FROM context_sessions", ()) == []

        holder.execute("COMMIT")  # the lock is free: a later flush writes what was kept
        reader.stdin.write("\n")
        reader.stdin.flush()
        deadline = time.monotonic() + BOUND
        while access_count(path, memory_id) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        flushed = access_count(path, memory_id)
        assert flushed >= 1  # the get, and the context's recalls that found it
        while not stored(path, "SELECT 1 FROM context_sessions", ()):
            assert time.monotonic() < deadline, "the session snapshot was never written"
            time.sleep(0.05)
        assert stored(path, "SELECT session FROM context_sessions", ()) == [("#chat",)]

        holder.execute("BEGIN IMMEDIATE")  # held again: close drops rather than waits
        reader.stdin.write("\n")
        reader.stdin.flush()
        out, err = reader.communicate(timeout=60)
        last = {s["step"]: s["seconds"] for s in map(json.loads, out.strip().splitlines())}
        assert reader.returncode == 0, err[-3000:]
        assert last["get while locked"] < BOUND and last["close"] < BOUND, last
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.communicate()
    holder.execute("COMMIT")
    assert access_count(path, memory_id) == flushed  # the get made while locked was dropped
