"""What the command line prints: stored text literally, terminal controls escaped on a
terminal and exact elsewhere, one-line usage errors, global options on either side of
the command, bytes that are not UTF-8, and a reader that goes away early."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from clirun import Result, on_a_terminal, run_cli

from memex import Memex

HOSTILE = [
    "[/INST] the model's turn ends here",
    "[bold red]styled?[/bold red] and [link=https://evil.example]a hidden link[/link]",
    "emoji codes stay text :smile: :thumbs_up:",
    "set the title \x1b]0;pwned\x07 and colour \x1b[31mred\x1b[0m and erase \x1b[2J",
    "clipboard write \x1b]52;c;ZWNobyBoaQ==\x07 then a C1 CSI \x9b31m",
    "a bidi override \u202eevil\u202c reads backwards",
    "carriage return\roverwrites the line",
]
ESCAPED = {
    "\x1b": "\\x1b",
    "\x07": "\\x07",
    "\x9b": "\\x9b",
    "\u202e": "\\u202e",
    "\u202c": "\\u202c",
    "\r": "\\x0d",
}


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.stdout


def one_error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def hostile(store_path: Path) -> tuple[Path, list[str]]:
    """A store whose memories, tags and metadata hold markup and control sequences."""
    with Memex.open(store_path) as mx:
        ids = [
            mx.remember(
                text,
                tags=["[/INST]", "[bold]tag"],
                metadata={"note": "[/b] \x1b[31m", "x": "[x]"},
                kind="fact",
            ).id
            for text in HOSTILE
        ]
        mx.update(ids[0], content=HOSTILE[0] + " (edited [/i])")
    return store_path, ids


def assert_literal_and_inert(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
    assert "\u202e" not in text and "\r" not in text


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--limit", "50"],
        ["recall", "title colour clipboard override model turn", "-k", "20"],
        ["recall", "styled link", "--tag", "[/INST]"],
        ["stats"],
    ],
)
def test_tables_print_stored_text_literally(
    hostile: tuple[Path, list[str]], args: list[str]
) -> None:
    store, _ = hostile
    out = ok(run_cli([*args, "--store", str(store)]))
    assert_literal_and_inert(out)
    if args[0] != "stats":
        assert "[/INST]" in out or "[bold" in out or "\\x1b" in out


def test_get_and_history_show_every_field_literally(hostile: tuple[Path, list[str]]) -> None:
    store, ids = hostile
    for memory_id, text in zip(ids, HOSTILE, strict=True):
        out = ok(run_cli(["get", memory_id, "--store", str(store)]))
        assert_literal_and_inert(out)
        shown = text
        for raw, escaped in ESCAPED.items():
            shown = shown.replace(raw, escaped)
        assert shown in out  # the whole content, controls as visible escapes
        assert "[/INST]" in out and "[bold]tag" in out and "[/b] \\x1b[31m" in out
        history = ok(run_cli(["history", memory_id, "--store", str(store)]))
        assert_literal_and_inert(history)
    assert "[/i]" in ok(run_cli(["history", ids[0], "--store", str(store)]))


def test_json_output_is_exact(hostile: tuple[Path, list[str]]) -> None:
    store, ids = hostile
    for memory_id, text in zip(ids[1:], HOSTILE[1:], strict=True):
        record = json.loads(ok(run_cli(["get", memory_id, "--json", "--store", str(store)])))
        assert record["content"] == text
        assert record["tags"] == ["[/INST]", "[bold]tag"]
        assert record["metadata"] == {"note": "[/b] \x1b[31m", "x": "[x]"}


def test_a_store_path_with_markup_is_printed_as_it_is(tmp_path: Path) -> None:
    store = tmp_path / "[/INST] [bold]" / "memex.db"
    ok(run_cli(["remember", "hello", "--store", str(store)]))
    out = ok(run_cli(["stats", "--store", str(store)]))
    assert str(store) in out


def _spawn(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "memex", *args], capture_output=True, timeout=120, **kwargs
    )


def test_context_escapes_controls_on_a_terminal_and_is_exact_when_piped(
    hostile: tuple[Path, list[str]],
) -> None:
    store, _ = hostile
    args = ["context", "title colour clipboard", "--budget", "2000", "--store", str(store)]
    piped = _spawn(args)
    assert piped.returncode == 0, piped.stderr
    assert b"\x1b]0;pwned\x07" in piped.stdout  # exact bytes for a program or a file
    shown = on_a_terminal(args)
    assert b"\x1b]0;pwned" not in shown and b"\x1b[31m" not in shown and b"\x07" not in shown
    assert b"\\x1b]0;pwned\\x07" in shown


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["lst"], "invalid choice"),
        (["list", "--limitt", "3"], "unrecognized arguments"),
        (["recall"], "required"),
        (["list", "--limit", "many"], "invalid int value"),
        (["recall", "x", "--mode", "fuzzy"], "invalid choice"),
        (["context", "--format", "yaml"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line(store_path: Path, args: list[str], fragment: str) -> None:
    message = one_error(run_cli([*args, "--store", str(store_path)]), 2)
    assert fragment in message
    assert not store_path.exists()


def test_global_options_work_before_and_after_the_command(store_path: Path, tmp_path: Path) -> None:
    ok(run_cli(["--store", str(store_path), "remember", "before the command"]))
    ok(run_cli(["remember", "after the command", "--store", str(store_path)]))
    first = json.loads(ok(run_cli(["--json", "--store", str(store_path), "list"])))
    second = json.loads(ok(run_cli(["list", "--json", "--store", str(store_path)])))
    assert first == second
    assert sorted(m["content"] for m in first["items"]) == [
        "after the command",
        "before the command",
    ]
    other = tmp_path / "other.db"  # given on both sides, the one after the command wins
    ok(run_cli(["--store", str(store_path), "remember", "where?", "--store", str(other)]))
    assert json.loads(ok(run_cli(["stats", "--json", "--store", str(other)])))["memories"] == 1
    tenant = json.loads(
        ok(run_cli(["--tenant", "acme", "--store", str(store_path), "stats", "--json"]))
    )
    assert tenant["memories"] == 0


def test_bytes_that_are_not_utf8_are_refused_in_one_line(store_path: Path) -> None:
    ok(run_cli(["remember", "so the store exists", "--store", str(store_path)]))
    # On Linux, argv bytes that are not UTF-8 arrive as lone surrogates.
    for args in (
        ["remember", "bad tag", "--tag", "caf\udce9"],
        ["remember", "bad source", "--source", "\udcff"],
        ["remember", "bad meta", "--meta", "k=\udcff"],
        ["remember", "caf\udce9"],
        ["recall", "caf\udce9"],
        ["get", "\udcff"],
        ["context", "x", "--session", "s\udcff"],
    ):
        message = one_error(run_cli([*args, "--store", str(store_path)]), 2)
        assert "UTF-8" in message or "id" in message, message
    message = one_error(
        run_cli(["remember", "-", "--store", str(store_path)], stdin=b"\xff\xfe bad"), 2
    )
    assert "standard input" in message and "UTF-8" in message
    message = one_error(
        run_cli(["import", "-", "--store", str(store_path)], stdin=b'{"content": "\xff"}\n'), 2
    )
    assert "UTF-8" in message
    assert json.loads(ok(run_cli(["stats", "--json", "--store", str(store_path)])))["memories"] == 1


def test_real_argv_bytes_in_a_child_process(store_path: Path) -> None:
    done = _spawn([b"remember", b"caf\xe9 au lait", b"--store", os.fsencode(store_path)])  # type: ignore[list-item]
    assert done.returncode == 2
    lines = done.stderr.decode("utf-8", "replace").splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "UTF-8" in lines[0]


def test_export_into_a_closed_pipe_ends_quietly(store_path: Path) -> None:
    with Memex.open(store_path) as mx:
        mx.remember_many([{"content": f"memory number {i} " + "x" * 200} for i in range(1500)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "memex", "export", "--store", str(store_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    assert json.loads(first)["content"].startswith("memory number")
    proc.stdout.close()  # as `head -n 1` does
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 141
    assert err == b""


def test_json_leaves_no_raw_c1_control_or_bidi_override(store_path: Path) -> None:
    text = "C1 CSI \x9b31m, OSC \x9d0;t\x9c, override \u202eevil\u202c, DEL \x7f"
    memory = json.loads(ok(run_cli(["remember", text, "--json", "--store", str(store_path)])))
    out = ok(run_cli(["get", memory["id"], "--json", "--store", str(store_path)]))
    assert not any(ch in out for ch in "\x9b\x9d\x9c\u202e\u202c\x7f")
    assert json.loads(out)["content"] == text  # the same value
