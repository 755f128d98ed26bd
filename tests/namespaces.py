"""Run a Python child in its own user and mount namespace (``unshare -rm``).

Tests run as root, and root ignores permission bits: ``chmod 444`` stops nothing. A
read-only bind mount (or a small tmpfs) inside a private mount namespace is a real
read-only (or full) file system for the child, whoever runs it, and vanishes with it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import memex

ROOT = Path(memex.__file__).resolve().parent.parent


def _unshare(shell: str, *, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", shell],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
    )


@cache
def unavailable() -> str | None:
    """Why namespaces with read-only bind mounts and tmpfs cannot be used here, or None."""
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    with tempfile.TemporaryDirectory() as folder:
        target = shlex.quote(folder)
        probe = (
            f"mount --bind {target} {target} && mount -o remount,ro,bind {target} {target} "
            f"&& ! touch {target}/probe 2>/dev/null "
            f"&& mount -t tmpfs -o size=1m tmpfs {target} && touch {target}/probe"
        )
        try:
            done = _unshare(probe, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unshare -rm failed: {exc}"
        if done.returncode != 0:
            return f"unshare -rm cannot mount here: {done.stderr.strip()[:200]}"
    return None


def require() -> None:
    """Skip the calling test, with the reason, where namespaces are unavailable."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"needs a private mount namespace: {reason}")


def run_python(
    code: str,
    *args: object,
    read_only: Path | None = None,
    tmpfs: tuple[Path, str] | None = None,
    timeout: float = 240,
) -> dict[str, Any]:
    """Run ``code`` with ``args`` in a new namespace and return the JSON of its last line.

    ``read_only``: a folder bind-mounted read-only over itself first. ``tmpfs``: a
    folder and a size ("2m") for a fresh tmpfs mounted there first.
    """
    steps = []
    if read_only is not None:
        folder = shlex.quote(str(read_only))
        steps.append(f"mount --bind {folder} {folder}")
        steps.append(f"mount -o remount,ro,bind {folder} {folder}")
    if tmpfs is not None:
        folder, size = shlex.quote(str(tmpfs[0])), shlex.quote(tmpfs[1])
        steps.append(f"mount -t tmpfs -o size={size} tmpfs {folder}")
    command = [sys.executable, "-c", code, *map(str, args)]
    steps.append("exec " + shlex.join(command))
    done = _unshare(" && ".join(steps), timeout=timeout)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        pytest.fail(f"child failed ({done.returncode}): {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result
