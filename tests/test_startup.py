"""A command that needs no model and no search index does not load them.

Agents run the command line on every turn, so its start-up time is mostly what it
imports. These tests pin down what the quick paths leave out: if a change makes
`memex get` load numpy, faiss, tantivy, the tokenizer or rich again, they fail.
(How long start-up takes is measured in benchmarks/cli.py, not here.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from memex import Memex

HEAVY = (
    "numpy", "faiss", "tantivy", "tokenizers", "rich", "safetensors", "wordllama", "textual",
)  # fmt: skip

PROBE = """
import io, json, sys
from memex.interfaces.cli.app import run
sys.stdout = io.StringIO()
code = run(json.loads(sys.argv[1]))
sys.stdout = sys.__stdout__
loaded = sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)
print(json.dumps({"code": code, "loaded": loaded, "service": "memex.service" in sys.modules}))
"""


def loaded_by(args: list[str], tmp_path: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"MEMEX_WARM": "0", "MEMEX_HOME": str(tmp_path / "home"), "PATH": ""},
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "memex.db"
    with Memex.open(path) as mx:
        memory = mx.remember("a memory to read back", tags=["x"])
        mx.update(memory.id, content="a memory to read back, edited")
    return path, memory.id


@pytest.mark.parametrize(
    "command",
    [["get", "{id}"], ["history", "{id}"], ["list"], ["stats"], ["forget", "{id}"]],
)
def test_quick_commands_load_no_model_and_no_search_index(
    store: tuple[Path, str], tmp_path: Path, command: list[str]
) -> None:
    path, memory_id = store
    args = [a.format(id=memory_id) for a in command] + ["--store", str(path)]
    result = loaded_by(args, tmp_path)
    assert result["code"] == 0
    assert result["loaded"] == []


def test_version_loads_nothing_of_the_store(tmp_path: Path) -> None:
    result = loaded_by(["--version"], tmp_path)
    assert result == {"code": 0, "loaded": [], "service": False}


def test_recall_does_load_what_it_needs(store: tuple[Path, str], tmp_path: Path) -> None:
    """The probe itself can tell: a command that searches loads the model and numpy."""
    path, _ = store
    result = loaded_by(["recall", "memory", "--store", str(path)], tmp_path)
    assert result["code"] == 0
    assert {"numpy", "tokenizers"} <= set(result["loaded"])  # type: ignore[arg-type]


def test_a_command_on_a_server_loads_no_store(tmp_path: Path) -> None:
    """Against a memex server the command line loads the client only: no store, model
    or index (httpx itself brings rich, for its own command line)."""
    result = loaded_by(["get", "some-id", "--store", "http://127.0.0.1:9"], tmp_path)
    assert result["code"] == 3  # nothing listens there
    assert set(result["loaded"]) <= {"rich"}  # type: ignore[arg-type]
    assert result["service"] is False
