"""A reindex stages its vectors in a table of its own. One killed mid-run (SIGKILL skips
its clean-up) leaves the table behind; opening the store or starting a reindex drops it
once its process is gone, without waiting for the write lock, without disturbing a
reindex still running, and without failing on a store it cannot write."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from memex import Memex
from memex.storage.sqlite.reindex import staging_name

REINDEX = textwrap.dedent(
    """
    import sys, time
    from memex import Memex

    paused = []

    def progress(step):
        if step.done >= int(sys.argv[2]) and not paused:
            paused.append(step)
            print("ready", flush=True)
            sys.stdin.readline()  # killed here, or told to go on

    with Memex.open(sys.argv[1], embed_batch_size=100) as mx:
        print("done", mx.reindex(progress=progress), flush=True)
    """
)


def staging_tables(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT name FROM sqlite_schema WHERE name LIKE 'vectors\\_reindex\\_%' ESCAPE '\\'"
        ).fetchall()
    return sorted(r[0] for r in rows)


def start_reindex(path: Path, after: int) -> subprocess.Popen[str]:
    """A process reindexing the store, paused once ``after`` vectors are staged."""
    child = subprocess.Popen(
        [sys.executable, "-c", REINDEX, str(path), str(after)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.startswith("ready"), child.stderr.read() if child.stderr else line
    return child


def dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def add_table(path: Path, name: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(f"CREATE TABLE {name} (seq INTEGER PRIMARY KEY, vector BLOB)")
        conn.execute(f"INSERT INTO {name} VALUES (1, zeroblob(100000))")
        conn.commit()


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    path = tmp_path / "memex.db"
    with Memex.open(path) as mx:
        mx.remember_many(
            {"content": f"note {i} on the weather in town {i % 7}"} for i in range(2000)
        )
    return path


def test_killed_reindexes_leave_no_table_and_no_growth(filled: Path) -> None:
    sizes = []
    for _ in range(3):
        child = start_reindex(filled, 1200)
        assert len(staging_tables(filled)) == 1
        child.send_signal(signal.SIGKILL)
        child.communicate()
        with Memex.open(filled) as mx:  # opening drops the table of the killed process
            assert staging_tables(filled) == []
            assert mx.stats().memories == 2000
        sizes.append(filled.stat().st_size)
    # Each run staged 1,200 vectors (over 1 MB); the later runs reuse the freed pages.
    assert sizes[2] - sizes[0] < 200_000, sizes


def test_a_reindex_still_running_is_not_disturbed(filled: Path) -> None:
    child = start_reindex(filled, 300)
    try:
        with Memex.open(filled) as mx:
            assert len(staging_tables(filled)) == 1
            mx.remember("written while another process reindexes")
    finally:
        out, err = child.communicate("go on\n", timeout=120)
    assert out.split() == ["done", "2001"], err  # the memory written meanwhile too
    assert staging_tables(filled) == []


def test_a_reindex_starts_by_dropping_stale_tables(filled: Path) -> None:
    with Memex.open(filled) as mx:
        stale = f"vectors_reindex_{dead_pid()}_1"  # named as older memex did
        add_table(filled, stale)
        assert mx.reindex() == 2000
        assert staging_tables(filled) == []


def test_opening_does_not_wait_for_the_write_lock(filled: Path) -> None:
    stale = staging_name().replace(f"_{os.getpid()}_", f"_{dead_pid()}_")
    add_table(filled, stale)
    locker = sqlite3.connect(filled, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with Memex.open(filled, busy_timeout=30) as mx:
            assert mx.list(limit=1).items
        assert time.monotonic() - started < 20
        assert staging_tables(filled) == [stale]  # left for later
    finally:
        locker.rollback()
        locker.close()
    Memex.open(filled).close()
    assert staging_tables(filled) == []


def test_tables_of_live_or_unseen_processes_are_kept(filled: Path) -> None:
    live = staging_name().replace(f"_{os.getpid()}_", f"_{os.getppid()}_")
    other_host = f"vectors_reindex_00000000_{dead_pid()}_1"
    own = staging_name()
    for name in (live, other_host, own):
        add_table(filled, name)
    Memex.open(filled).close()
    assert staging_tables(filled) == sorted([live, other_host, own])


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make the store file unwritable, even for root (immutable), or skip."""
    try:
        immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    except FileNotFoundError:
        immutable = False
    if not immutable:
        if os.geteuid() == 0:
            pytest.skip("cannot make a file read-only for root here")
        path.chmod(0o444)
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(0o644)


def test_a_read_only_store_opens_with_a_stale_table(filled: Path) -> None:
    stale = staging_name().replace(f"_{os.getpid()}_", f"_{dead_pid()}_")
    add_table(filled, stale)
    with read_only(filled):
        with Memex.open(filled) as mx:
            assert len(mx.list(limit=5).items) == 5
        assert staging_tables(filled) == [stale]
    Memex.open(filled).close()
    assert staging_tables(filled) == []
