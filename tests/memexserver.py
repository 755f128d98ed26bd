"""A real ``memex serve`` on loopback for the tests: started as users start it
(``python -m memex serve --port 0 --json``), its URL and first-run owner key read from
what it prints, and a fresh tenant (with its owner key) for each test that wants one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

START_SECONDS = 60.0


class MemexServer:
    """One ``memex serve`` process on a SQLite store of its own."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.store = folder / "server.db"
        env = {**os.environ, "MEMEX_WARM": "0", "MEMEX_HOME": str(folder / "home")}
        env.pop("MEMEX_API_KEY", None)
        self._out = (folder / "stdout").open("w+b")
        self._err = (folder / "stderr").open("w+b")
        command = ["serve", "--store", str(self.store), "--port", "0", "--log-level", "warning",
                   # the limits are checked on every request, but never reached by the tests
                   # that share this server; quotas have tests of their own
                   "--key-rate", "100000/s", "--key-burst", "100000",
                   "--tenant-rate", "100000/s", "--tenant-burst", "100000", "--no-quotas"]  # fmt: skip
        self.process = subprocess.Popen(
            [sys.executable, "-m", "memex", *command, "--json"],
            stdout=self._out,
            stderr=self._err,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        said = self._wait_for("listening")
        self.url: str = said["listening"]
        self.owner_key: str = said["owner_key"]["key"]
        self.home_tenant: str = said["owner_key"]["tenant"]

    def _wait_for(self, last: str) -> dict[str, Any]:
        """What the server printed (one JSON object a line), once it printed ``last``."""
        deadline = time.monotonic() + START_SECONDS
        said: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self._out.seek(0)
            for line in self._out.read().decode().splitlines():
                if line.strip().startswith("{"):
                    said.update(json.loads(line))
            if last in said:
                return said
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        self._err.seek(0)
        raise RuntimeError(f"memex serve did not start: {self._err.read().decode()[-2000:]}")

    def new_tenant(self) -> tuple[str, str]:
        """A new tenant on the server: its name and its owner's key."""
        name = f"t{uuid.uuid4().hex[:16]}"
        answer = httpx.post(
            f"{self.url}/v1/tenants",
            json={"name": name},
            headers={"authorization": f"Bearer {self.owner_key}"},
            timeout=30,
        )
        answer.raise_for_status()
        return name, answer.json()["owner_key"]["key"]

    def stop(self) -> None:
        """Stop the server as SIGTERM does, and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.close()
        self._err.close()
