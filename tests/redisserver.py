"""A real ``redis-server`` for the tests: started on a free loopback port in a folder of
its own, stopped afterwards. Without ``redis-server`` on PATH the tests that need it are
skipped, except under CI (``CI=true``), where that is a failure naming the install."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

INSTALL = "apt-get update && apt-get install -y redis-server (or: make redis)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process: no persistence, loopback only."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log = (folder / "redis.log").open("w+b")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(folder),
             "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
            if self.process.poll() is not None:
                break
        self.stop()
        self._log.seek(0)
        raise RuntimeError(f"redis-server did not start: {self._log.read().decode()[-1000:]}")

    def stop(self) -> None:
        """Stop the server and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def redis_binary() -> str:
    """The path of ``redis-server``, or a skip (a failure under CI) saying how to get it."""
    found = shutil.which("redis-server")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"redis-server is not installed: {INSTALL}")
        pytest.skip(f"redis-server is not installed: {INSTALL}")
    return found
