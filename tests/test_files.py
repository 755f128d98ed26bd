"""Output files: never onto the store's own files, never half-written over an older file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from memex import Memex
from memex.errors import OutputError, ValidationError
from memex.files import output_file, output_path, refuse_owned


def write(path: str | Path, text: str, *, fail: bool = False) -> None:
    with output_file(path) as handle:
        handle.write(text)
        if fail:
            raise RuntimeError("the export failed")


@pytest.fixture
def owned(tmp_path: Path) -> list[Path]:
    store = tmp_path / "st.db"
    store.write_bytes(b"store")
    (tmp_path / "st.db.ann").mkdir()
    return [
        store,
        tmp_path / "st.db-wal",
        tmp_path / "st.db-shm",
        tmp_path / "st.db.ann",
        tmp_path / "st.db.lexical",
    ]


@pytest.mark.parametrize(
    "name",
    ["st.db", "st.db-wal", "st.db-shm", "st.db.ann/ivf.npz", "st.db.lexical/watermark.json"],
)
def test_every_owned_path_is_refused(tmp_path: Path, owned: list[Path], name: str) -> None:
    with pytest.raises(ValidationError, match="store"):
        refuse_owned(tmp_path / name, owned)


def test_owned_paths_are_refused_under_other_names(
    tmp_path: Path, owned: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "link.db").symlink_to(tmp_path / "st.db")
    (tmp_path / "wal-link").symlink_to(tmp_path / "st.db-wal")  # dangling: no WAL yet
    os.link(tmp_path / "st.db", tmp_path / "hard.db")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    for other in ("link.db", "wal-link", "hard.db", "sub/../st.db"):
        with pytest.raises(ValidationError):
            refuse_owned(tmp_path / other, owned)
    with pytest.raises(ValidationError):
        refuse_owned(Path("../st.db-shm"), owned)
    refuse_owned(tmp_path / "st.db.bak", owned)  # a neighbour is fine


def test_a_finished_file_replaces_the_target(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    target.chmod(0o640)
    with output_file(target) as handle:
        handle.write("new\n")
        assert target.read_text() == "old\n"  # nothing replaced before the end
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_a_failure_midway_keeps_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        write(target, "half of the new content\n", fail=True)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]  # no temporary left


def test_writing_through_a_symlink_replaces_its_target(tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    (tmp_path / "link.jsonl").symlink_to(real)
    with output_file(tmp_path / "link.jsonl") as handle:
        handle.write("new\n")
    assert (tmp_path / "link.jsonl").is_symlink()
    assert real.read_text() == "new\n"


def test_special_files_are_written_directly(tmp_path: Path) -> None:
    with output_file("/dev/null") as handle:
        handle.write("discarded\n")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    with output_file(fifo) as handle:
        handle.write("through the pipe\n")
    reader.join(10)
    assert received == ["through the pipe\n"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still a pipe, not replaced by a file


def test_a_full_device_is_a_clear_error() -> None:
    with pytest.raises(OutputError, match="no space left"):
        write("/dev/full", "x" * 100_000)


def test_bad_targets_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="folder"):
        write(tmp_path, "x")
    with pytest.raises(ValidationError, match="does not exist"):
        write(tmp_path / "missing" / "out.jsonl", "x")
    with pytest.raises(ValidationError, match="regular file"), output_path("/dev/null"):
        pass


def test_a_read_only_folder_is_an_output_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            write(folder / "out.jsonl", "x")
    finally:
        folder.chmod(0o700)


FILE_LIMIT = r"""
import resource, signal, sys
from memex import Memex
from memex.errors import OutputError

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # above the -shm
with Memex.open(sys.argv[1]) as mx:
    try:
        mx.export(sys.argv[2])
    except OutputError as exc:
        print(exc)
"""


def test_an_export_cut_short_by_the_os_leaves_the_old_file(tmp_path: Path) -> None:
    store = tmp_path / "st.db"
    with Memex.open(store) as mx:
        mx.remember_many([{"content": f"memory number {i} " * 8} for i in range(300)])
    target = tmp_path / "export.jsonl"
    target.write_text("the previous export\n")
    done = subprocess.run(
        [sys.executable, "-c", FILE_LIMIT, str(store), str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "file too large" in done.stdout and "unchanged" in done.stdout, done.stderr
    assert target.read_text() == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
