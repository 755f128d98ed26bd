"""Fixtures shared by the storage tests."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import pytest

KillMidway = Callable[[Sequence[str], str], None]


@pytest.fixture
def kill_midway() -> KillMidway:
    """Run ``python -c *args`` three times, each killed (SIGKILL) at a random moment after
    it printed a line starting with ``ready``: a crash in the middle of its work."""

    def run(args: Sequence[str], ready: str) -> None:
        rng = random.Random(5)
        for _ in range(3):
            child = subprocess.Popen(
                [sys.executable, "-c", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert child.stdout is not None
            assert child.stdout.readline().startswith(ready), (
                child.stderr.read() if child.stderr else ""
            )
            time.sleep(rng.uniform(0.05, 1.0))
            child.send_signal(signal.SIGKILL)
            child.communicate()

    return run
