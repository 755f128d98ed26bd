"""The warm process: commands it serves print and exit exactly as in their own process,
it follows the store on disk and the caller's environment, and it stops when idle, when
told, or when killed without leaving the command line stuck."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clirun import on_a_terminal

from memex import Memex


def memex(
    env: dict[str, str], *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "memex", *args],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def status(env: dict[str, str]) -> dict[str, object]:
    done = memex(env, "warm", "status", "--json")
    assert done.returncode == 0, done.stderr
    state: dict[str, object] = json.loads(done.stdout)
    return state


def wait_running(env: dict[str, str]) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = status(env)
        if state["running"]:
            return state
        time.sleep(0.1)
    raise AssertionError("the warm process did not start")


@pytest.fixture
def warm_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment with the warm process on, its socket in a short private folder."""
    runtime = Path(tempfile.mkdtemp(prefix="mx-", dir="/tmp"))  # socket paths are short
    env = {
        **os.environ,
        "MEMEX_WARM": "1",
        "MEMEX_RUNTIME_DIR": str(runtime / "run"),
        "MEMEX_HOME": str(tmp_path / "home"),
    }
    yield env
    memex(env, "warm", "stop")
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store" / "memex.db"
    with Memex.open(path) as mx:
        mx.remember_many(
            [
                {"content": "The deploy pipeline pushes images at noon.", "kind": "fact"},
                {"content": "Alice prefers green tea.", "kind": "preference"},
                {"content": "set the title \x1b]0;pwned\x07 [/INST]", "kind": "note"},
            ]
        )
    return path


def test_a_recall_starts_it_and_later_commands_are_served(
    warm_env: dict[str, str], store: Path
) -> None:
    assert status(warm_env)["running"] is False
    first = memex(warm_env, "recall", "deploy pipeline", "--store", str(store))
    assert first.returncode == 0 and b"deploy pipeline" in first.stdout
    state = wait_running(warm_env)
    served = state["served"]
    again = memex(warm_env, "recall", "deploy pipeline", "--store", str(store))
    assert again.stdout == first.stdout and again.stderr == first.stderr
    assert status(warm_env)["served"] == served + 1  # type: ignore[operator]
    assert str(store.resolve()) in status(warm_env)["stores"]  # type: ignore[operator]


COMMANDS: list[list[str]] = [
    ["recall", "green tea", "--json"],
    ["recall", "title", "-k", "3"],
    ["list", "--limit", "5"],
    ["list", "--json"],
    ["stats", "--json"],
    ["context", "deploy", "--budget", "300"],
    ["context", "deploy", "--budget", "300", "--json"],
    ["get", "00000000-0000-7000-8000-000000000000"],
    ["get", "\u2603"],
    ["recall", "x", "--mode", "fuzzy"],
    ["list", "--cursor", "not-a-cursor"],
    ["history", "not-an-id", "--json"],
]


def without_reads(value: object) -> object:
    """``value`` without the read statistics, which every recall and get adds to (and
    with them the size of the write-ahead log)."""
    if isinstance(value, dict):
        skip = {"access_count", "last_accessed_at", "size_bytes"}
        return {k: without_reads(v) for k, v in value.items() if k not in skip}
    if isinstance(value, list):
        return [without_reads(v) for v in value]
    return value


def test_served_commands_print_and_exit_as_in_their_own_process(
    warm_env: dict[str, str], store: Path
) -> None:
    cold_env = {**warm_env, "MEMEX_WARM": "0"}
    memex(warm_env, "warm", "start")
    wait_running(warm_env)
    before = status(warm_env)["served"]
    for args in COMMANDS:
        cold = memex(cold_env, *args, "--store", str(store))
        warm = memex(warm_env, *args, "--store", str(store))
        assert (warm.returncode, warm.stderr) == (cold.returncode, cold.stderr), args
        if "--json" in args and "context" in args:  # timings differ; the rest must not
            w, c = json.loads(warm.stdout), json.loads(cold.stdout)
            assert w["text"] == c["text"] and w["manifest"] == c["manifest"], args
        elif "--json" in args and warm.stdout:  # every run counts reads: leave those out
            assert without_reads(json.loads(warm.stdout)) == without_reads(
                json.loads(cold.stdout)
            ), args
        else:
            assert warm.stdout == cold.stdout, args
    assert status(warm_env)["served"] == before + len(COMMANDS)  # type: ignore[operator]


def test_writes_through_it_are_seen_by_other_processes(
    warm_env: dict[str, str], store: Path
) -> None:
    memex(warm_env, "warm", "start")
    wait_running(warm_env)
    done = memex(warm_env, "remember", "-", "--json", "--store", str(store), stdin=b"piped through")
    assert done.returncode == 0, done.stderr
    memory = json.loads(done.stdout)
    with Memex.open(store) as mx:
        assert mx.get(memory["id"]).content == "piped through"
        mx.remember("written by another process about zeppelins")
    found = memex(warm_env, "recall", "zeppelins", "--json", "--store", str(store))
    assert json.loads(found.stdout)[0]["memory"]["content"].endswith("zeppelins")
    bad = memex(warm_env, "remember", "-", "--store", str(store), stdin=b"\xff\xfe")
    assert bad.returncode == 2 and bad.stderr.startswith(b"error: standard input")


def test_it_follows_the_callers_environment_and_a_replaced_store(
    warm_env: dict[str, str], store: Path, tmp_path: Path
) -> None:
    memex(warm_env, "warm", "start")
    wait_running(warm_env)
    acme = {**warm_env, "MEMEX_TENANT": "acme"}
    assert memex(acme, "remember", "only acme sees this", "--store", str(store)).returncode == 0
    mine = json.loads(memex(warm_env, "stats", "--json", "--store", str(store)).stdout)
    theirs = json.loads(memex(acme, "stats", "--json", "--store", str(store)).stdout)
    assert (mine["memories"], theirs["memories"]) == (3, 1)
    # Relative store paths are the caller's.
    here = tmp_path / "elsewhere"
    here.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "memex", "remember", "relative", "--store", "rel.db"],
        env=warm_env,
        cwd=here,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (here / "rel.db").is_file()
    # A store deleted and made anew at the same path is not served from the old one.
    for leftover in store.parent.iterdir():
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()
    with Memex.open(store) as mx:
        mx.remember("a brand new store")
    listed = json.loads(memex(warm_env, "list", "--json", "--store", str(store)).stdout)
    assert [m["content"] for m in listed["items"]] == ["a brand new store"]


def test_it_stops_when_idle_when_told_and_when_killed(
    warm_env: dict[str, str], store: Path
) -> None:
    quick = {**warm_env, "MEMEX_WARM_SECONDS": "1"}
    memex(quick, "recall", "tea", "--store", str(store))
    wait_running(quick)
    deadline = time.monotonic() + 30
    while status(quick)["running"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status(quick)["running"] is False, "it did not stop when idle"

    memex(warm_env, "warm", "start")
    pid = wait_running(warm_env)["pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)  # its socket file stays behind
    time.sleep(0.2)
    done = memex(warm_env, "recall", "tea", "--json", "--store", str(store))
    assert done.returncode == 0, done.stderr  # run in its own process instead
    assert json.loads(done.stdout)[0]["memory"]["content"] == "Alice prefers green tea."
    assert wait_running(warm_env)["pid"] != pid  # and a new one was started
    stopped = memex(warm_env, "warm", "stop", "--json")
    assert json.loads(stopped.stdout)["running"] is False
    assert status(warm_env)["running"] is False


def test_it_is_off_with_memex_warm_0_and_refuses_a_shared_folder(
    warm_env: dict[str, str], store: Path
) -> None:
    off = {**warm_env, "MEMEX_WARM": "0"}
    assert memex(off, "recall", "tea", "--store", str(store)).returncode == 0
    time.sleep(0.5)
    assert status(warm_env)["running"] is False
    runtime = Path(warm_env["MEMEX_RUNTIME_DIR"])
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o777)  # a folder others may enter is never used for the socket
    assert memex(warm_env, "recall", "tea", "--store", str(store)).returncode == 0
    time.sleep(0.5)
    assert status(warm_env)["running"] is False
    assert not list(runtime.glob("*.sock"))


def test_nothing_in_the_callers_folder_is_imported(
    warm_env: dict[str, str], store: Path, tmp_path: Path
) -> None:
    """A command started (by the installed `memex` script, which does not import from
    its working directory) from a folder holding a `memex` package or modules named
    like ones memex imports must not run that code, in the warm process either."""
    script = Path(sys.executable).with_name("memex")
    if not script.exists():
        pytest.skip("the memex script is not installed beside this Python")
    folder = tmp_path / "untrusted"
    (folder / "memex").mkdir(parents=True)
    marker = tmp_path / "imported-from-the-callers-folder"
    trap = f"open({str(marker)!r}, 'a').write('x')\n"
    (folder / "memex" / "__init__.py").write_text(trap + "raise SystemExit(99)\n")
    (folder / "tomllib.py").write_text(trap)
    (folder / "numpy.py").write_text(trap)
    config = tmp_path / "config.toml"
    config.write_text("")
    env = {**warm_env, "MEMEX_CONFIG": str(config)}  # so the server loads tomllib
    for args in (["recall", "tea"], ["recall", "tea"], ["list"]):
        done = subprocess.run(
            [str(script), *args, "--store", str(store)],
            env=env,
            cwd=folder,
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        wait_running(warm_env)
    assert status(warm_env)["served"] == 2  # the first ran in its own process
    assert not marker.exists()


def test_a_command_never_waits_behind_another(
    warm_env: dict[str, str], store: Path, tmp_path: Path
) -> None:
    """While the warm process runs a write that waits for another process's lock, other
    commands (a read; a write reading its content from standard input) run in their own
    process at once instead of queueing behind it."""
    memex(warm_env, "warm", "start")
    wait_running(warm_env)
    other = tmp_path / "other" / "memex.db"
    with Memex.open(other) as mx:
        mx.remember("so the other store exists")
    slow = {**warm_env, "MEMEX_BUSY_TIMEOUT": "30"}
    holder = sqlite3.connect(other, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    writer = subprocess.Popen(
        [sys.executable, "-m", "memex", "remember", "waits for the lock", "--store", str(other)],
        env=slow,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not status(warm_env).get("busy") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status(warm_env)["busy"] is True  # the write is in the warm process, waiting
        served = status(warm_env)["served"]
        started = time.monotonic()
        read = memex(warm_env, "list", "--json", "--store", str(store))
        piped = memex(
            warm_env, "remember", "-", "--json", "--store", str(store), stdin=b"typed while busy"
        )
        assert time.monotonic() - started < 10
        assert read.returncode == 0 and len(json.loads(read.stdout)["items"]) == 3
        assert piped.returncode == 0 and json.loads(piped.stdout)["content"] == "typed while busy"
        assert status(warm_env)["served"] == served  # both ran in their own process
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert writer.wait(timeout=60) == 0
    listed = json.loads(memex(warm_env, "list", "--json", "--store", str(other)).stdout)
    assert "waits for the lock" in [m["content"] for m in listed["items"]]


def test_standard_input_is_read_before_the_warm_process_is_asked(
    warm_env: dict[str, str], store: Path
) -> None:
    memex(warm_env, "warm", "start")
    wait_running(warm_env)
    typing = subprocess.Popen(  # as `memex remember -` at a terminal, still being typed
        [sys.executable, "-m", "memex", "remember", "-", "--store", str(store)],
        env=warm_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert typing.stdin is not None
    try:
        time.sleep(0.5)
        started = time.monotonic()
        quick = memex(warm_env, "list", "--store", str(store))
        assert quick.returncode == 0 and time.monotonic() - started < 10
        # A value that happens to be "-" is not standard input.
        source = subprocess.run(
            [
                sys.executable,
                "-m",
                "memex",
                "remember",
                "dashed",
                "--source",
                "-",
                "--json",
                "--store",
                str(store),
            ],
            env=warm_env,
            stdin=subprocess.PIPE,  # never closed by anyone: reading it would hang
            capture_output=False,
            stdout=subprocess.PIPE,
            timeout=60,
        )
        assert json.loads(source.stdout)["source"] == "-"
    finally:
        out, _ = typing.communicate(b"typed at last", timeout=60)
    assert typing.returncode == 0 and out.startswith(b"remembered ")


def test_files_it_creates_follow_the_callers_umask(
    warm_env: dict[str, str], tmp_path: Path
) -> None:
    memex(warm_env, "warm", "start")
    wait_running(warm_env)
    private = tmp_path / "private" / "memex.db"
    private.parent.mkdir()
    done = subprocess.run(
        [
            "sh",
            "-c",
            f'umask 077 && exec "$0" -m memex remember secret --store "{private}"',
            sys.executable,
        ],
        env=warm_env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert status(warm_env)["served"] == 1  # made by the warm process
    assert private.stat().st_mode & 0o077 == 0


def test_it_knows_when_the_callers_output_is_a_terminal(
    warm_env: dict[str, str], store: Path
) -> None:
    memex(warm_env, "warm", "start")
    wait_running(warm_env)
    args = ["context", "title", "--budget", "300", "--store", str(store)]
    shown = on_a_terminal(args, warm_env)
    assert status(warm_env)["served"] == 1
    assert b"\\x1b]0;pwned\\x07" in shown and b"\x1b]0;pwned" not in shown
    piped = memex(warm_env, *args)
    assert b"\x1b]0;pwned\x07" in piped.stdout  # exact when it is not a terminal


@pytest.mark.parametrize(
    ("argv", "command", "stdin"),
    [
        (["remember", "-"], "remember", True),
        (["--store", "s.db", "remember", "-", "--kind", "note"], "remember", True),
        (["-s", "s.db", "--json", "remember", "-"], "remember", True),
        (["remember", "--kind", "-", "text"], "remember", False),
        (["remember", "text", "--source", "-"], "remember", False),
        (["--store=s.db", "get", "-"], "get", False),
        (["--tenant", "acme", "list"], "list", False),
        (["--version"], None, False),
        (["remember", "-h"], None, False),
        ([], None, False),
    ],
)
def test_what_an_argument_list_asks_for(argv: list[str], command: str | None, stdin: bool) -> None:
    from memex.interfaces.cli.warm import command_of, reads_stdin

    assert command_of(argv) == command
    assert reads_stdin(argv) is stdin
