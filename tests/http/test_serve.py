"""``memex serve`` as people run it: ``python -m memex serve`` in a process of its own,
a real uvicorn on loopback, reached over the network."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from memex import Memex

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 60


class ServeProcess:
    """A ``memex serve`` process and what it printed."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        environment = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "memex", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**environment, **(env or {})},
            start_new_session=True,  # its workers too are ended by close()
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.printed: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def url(self) -> str:
        """The URL it says it listens on (waiting for the line)."""
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            line = self.lines.get(timeout=deadline - time.monotonic())
            if line is None:
                break
            self.printed.append(line)
            if line.startswith("listening on "):
                return line.split()[-1]
        raise AssertionError(f"no URL printed: {self.printed} {self.stop()}")

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        """Its exit status and standard error, after ``sig``."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()

    def close(self) -> None:
        """End the process and its workers if they still run, and close its pipes."""
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # workers left behind hold its pipes
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def processes() -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for process in started:
        process.close()


def serve(processes: list[ServeProcess], *args: str, **env: str) -> ServeProcess:
    process = ServeProcess(list(args), env)
    processes.append(process)
    return process


def test_a_served_store_over_the_network(tmp_path: Path, processes: list[ServeProcess]) -> None:
    store = tmp_path / "memex.db"
    first = serve(processes, "--store", str(store))
    url = first.url()
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
    keys = [line for line in first.printed if line.startswith("owner key for tenant default: ")]
    assert len(keys) == 1
    owner = keys[0].split()[-1]
    assert any("will not be shown again" in line for line in first.printed)

    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {owner}"}) as api:
        items = [{"content": f"memory {i} " + "text " * 50} for i in range(300)]
        assert api.post("/v1/memories/batch", json={"items": items}).status_code == 201
        made = api.post("/v1/memories", json={"content": "Deploys happen on Fridays"}).json()
        assert api.get(f"/v1/memories/{made['id']}").json()["content"] == made["content"]
        hits = api.post("/v1/recall", json={"query": "when do we deploy", "k": 1}).json()
        assert hits["hits"][0]["memory"]["id"] == made["id"]
        assert httpx.get(f"{url}/v1/stats").status_code == 401

        with api.stream("GET", "/v1/export") as streamed:
            assert streamed.headers.get("transfer-encoding") == "chunked"
            lines = [json.loads(line) for line in streamed.iter_lines() if line]
        assert len(lines) == 301

        with api.stream("GET", "/v1/export") as cut:  # hang up early: the server goes on
            next(cut.iter_bytes())
        assert api.get("/v1/stats").json()["memories"] == 301
        # (That the export's snapshot closes when a client hangs up mid-stream is shown in
        # process, test_bulk.py: here the kernel's buffers take a whole small export.)

    code, errors = first.stop(signal.SIGTERM)
    assert code == 0, errors
    assert "Traceback" not in errors and owner not in errors

    second = serve(processes, "--store", str(store), "--json")
    printed = []
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        line = second.lines.get(timeout=deadline - time.monotonic())
        assert line is not None, second.stop()
        printed.append(json.loads(line))
        if "listening" in printed[-1]:
            break
    assert printed == [{"listening": printed[-1]["listening"]}]  # no key this time
    with httpx.Client(base_url=printed[-1]["listening"]) as api:
        me = api.get("/v1/me", headers={"Authorization": f"Bearer {owner}"})
        assert me.json()["role"] == "owner"
    code, errors = second.stop(signal.SIGINT)
    assert code == 0, errors
    with Memex.open(store) as mx:  # closed cleanly: opens, and holds what was written
        assert mx.stats().memories == 301


def test_serving_beyond_loopback_without_tls_warns(
    tmp_path: Path, processes: list[ServeProcess]
) -> None:
    process = serve(processes, "--store", str(tmp_path / "memex.db"), "--host", "0.0.0.0")
    url = process.url()
    port = url.rsplit(":", 1)[1]
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
    code, errors = process.stop()
    assert code == 0
    assert "warning: serving on 0.0.0.0 without TLS" in errors


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--no-auth", "--host", "0.0.0.0"], "loopback"),
        (["--tls-cert", "cert.pem"], "--tls-key"),
        (["--tls-cert", "missing.pem", "--tls-key", "missing.key"], "cannot use TLS"),
        (["--trusted-proxy", "not-a-network"], "not a CIDR"),
        (["--max-body", "0"], "--max-body"),
        (["--port", "70000"], "--port"),
    ],
)
def test_refused_options_exit_2_with_one_line(tmp_path: Path, args: list[str], words: str) -> None:
    from tests.clirun import run_cli

    result = run_cli(["serve", "--store", str(tmp_path / "memex.db"), *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and words in result.stderr
    assert not (tmp_path / "memex.db").exists()


def test_without_the_server_extra_the_error_names_it(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "fastapi.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'fastapi'\", name='fastapi')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "memex", "serve", "--store", str(tmp_path / "memex.db")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 3
    assert done.stderr.strip() == (
        "error: memex serve needs the server extra (fastapi is missing): "
        "pip install 'memex[server]'"
    )


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_stop_when_the_main_process_is_killed(
    tmp_path: Path, processes: list[ServeProcess]
) -> None:
    server = serve(processes, "--store", str(tmp_path / "memex.db"), "--workers", "2")
    url = server.url()
    assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200
    deadline = time.monotonic() + 30
    while len(workers := _children(server.proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(workers) >= 2
    server.proc.kill()  # no chance to stop its workers
    server.proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.2)
    assert not [
        w
        for w in workers
        if Path(f"/proc/{w}/stat").exists() and " Z " not in Path(f"/proc/{w}/stat").read_text()
    ], "orphaned workers still run"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/healthz", timeout=2)


def test_worker_processes_share_one_store_and_port(
    tmp_path: Path, processes: list[ServeProcess]
) -> None:
    store = tmp_path / "memex.db"
    server = serve(processes, "--store", str(store), "--workers", "2")
    url = server.url()
    owner = next(
        line.split()[-1] for line in server.printed if line.startswith("owner key for tenant")
    )
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {owner}"}) as api:
        made = [api.post("/v1/memories", json={"content": f"note {i}"}) for i in range(6)]
        assert {r.status_code for r in made} == {201}
        # Each request may land on either worker: every one sees every other's writes.
        for response in made:
            got = api.get(f"/v1/memories/{response.json()['id']}")
            assert got.status_code == 200 and got.json() == response.json()
        assert api.get("/v1/stats").json()["memories"] == 6
        read_only = api.post("/v1/keys", json={"role": "read_only"}).json()
        assert api.delete(f"/v1/keys/{read_only['id']}").status_code == 200
        for _ in range(4):  # revoked on one worker: refused on both
            refused = httpx.get(
                f"{url}/v1/stats", headers={"Authorization": f"Bearer {read_only['key']}"}
            )
            assert refused.status_code == 401
    code, errors = server.stop(signal.SIGTERM)
    assert code == 0, errors
    assert "Traceback" not in errors and owner not in errors
    with Memex.open(store) as mx:  # the workers closed the store and wrote key uses
        assert mx.stats().memories == 6
        (key,) = [k for k in mx.admin.keys() if k.role.value == "owner"]  # noqa: SIM118
        assert key.last_used_at is not None


@pytest.mark.parametrize("workers", ["0", "65"])
def test_a_bad_worker_count_exits_2(tmp_path: Path, workers: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "memex", "serve", "--store", str(tmp_path / "s.db"),
         "--workers", workers],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 2 and "--workers" in done.stderr
