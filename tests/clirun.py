"""Run the ``memex`` command in process, with its own standard streams and environment.

The command reads ``sys.stdin``/``sys.stdout``/``sys.stderr`` when it runs, so each
call swaps in byte-backed text streams (standard input has a ``.buffer``, as a real one
does) and restores the real ones afterwards.
"""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from memex.interfaces.cli.app import run


@dataclass(frozen=True)
class Result:
    """What one run printed, and its exit status."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _stream(data: bytes = b"") -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="backslashreplace")


def run_cli(
    args: Sequence[str],
    *,
    stdin: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> Result:
    """Run ``memex <args>``; unexpected exceptions propagate to the test."""
    data = stdin.encode("utf-8") if isinstance(stdin, str) else (stdin or b"")
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_env = {k: os.environ.get(k) for k in (env or {})}
    sys.stdin, sys.stdout, sys.stderr = _stream(data), _stream(), _stream()
    os.environ.update(env or {})
    try:
        code = run(list(args))
        out, err = sys.stdout, sys.stderr
        out.flush()
        err.flush()
        stdout = out.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]
        stderr = err.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return Result(code, stdout, stderr)


def on_a_terminal(args: list[str], env: Mapping[str, str] | None = None) -> bytes:
    """What ``python -m memex <args>`` writes to standard output when that is a terminal
    (a pseudo-terminal); the command must succeed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "memex", *args],
        stdout=follower,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=None if env is None else dict(env),
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0, err
    return b"".join(chunks)
