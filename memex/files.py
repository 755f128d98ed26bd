"""Writing output files safely: never onto a store's own files, never half-written.

An export or a backup goes to a temporary file beside its target, is flushed to disk,
and replaces the target by a rename only once it is complete, so a failure (a full
disk, an error while reading the store, an interrupt) leaves the target as it was. A
target that exists and is not a regular file (``/dev/null``, a terminal, a pipe) is
written directly: there is nothing to replace.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from memex.errors import OutputError, ValidationError

_LOW_SPACE = 1 << 20  # free bytes under which a failed write is taken for a full device
_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system or the size limit",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
}


def refuse_owned(path: str | Path, owned: Iterable[Path]) -> None:
    """Refuse ``path`` if it is one of ``owned`` or lies inside one of them.

    Paths are compared resolved (relative paths and symlinks followed) and, for files
    that exist, by identity (a hard link is the same file under another name).
    """
    target = Path(path)
    where = _absolute(target)
    for own in owned:
        mine = _absolute(own)
        if same_path(target, own):
            raise ValidationError(f"cannot write to {path}: it is the store's own file {own}")
        if mine in where.parents:
            raise ValidationError(f"cannot write to {path}: it lies in {own}, which the store owns")


@contextlib.contextmanager
def output_file(
    path: str | Path, *, owned: Iterable[Path] = (), binary: bool = False
) -> Iterator[IO[Any]]:
    """A file open for writing whose content replaces ``path`` only if the block succeeds.

    Text files are UTF-8 with lines ending in ``\\n`` as written.

    Raises:
        ValidationError: ``path`` is owned by the store, a folder, or in a missing folder.
        OutputError: the file could not be written (no space left, no permission).
    """
    target = Path(path)
    refuse_owned(target, owned)
    mode = "wb" if binary else "w"
    encoding = None if binary else "utf-8"
    newline = None if binary else ""
    if _special(target):
        with (
            _os_errors(target, partial=True),
            open(target, mode, encoding=encoding, newline=newline) as handle,
        ):
            yield handle
        return
    with (
        output_path(target) as temp,
        _os_errors(target),
        open(temp, mode, encoding=encoding, newline=newline) as handle,
    ):
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def output_path(path: str | Path, *, owned: Iterable[Path] = ()) -> Iterator[Path]:
    """A new empty file beside ``path`` for the block to fill; it is renamed over ``path``
    when the block succeeds and removed when it fails (``path`` then keeps its content).

    Raises:
        ValidationError: ``path`` is owned by the store, is not a regular file, or is in
            a missing folder.
        OutputError: the file could not be written.
    """
    target = Path(path)
    refuse_owned(target, owned)
    if _special(target):
        raise ValidationError(f"cannot write to {path}: it is not a regular file")
    final = _absolute(target)
    if final.is_dir():
        raise ValidationError(f"cannot write to {path}: it is a folder")
    if not final.parent.is_dir():
        raise ValidationError(f"cannot write to {path}: folder {final.parent} does not exist")
    with _os_errors(target):
        temp = _reserve(final)
    try:
        yield temp
        with _os_errors(target):
            _fsync(temp)
            os.replace(temp, final)
            _fsync_folder(final.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def device_full(path: Path) -> bool:
    """Whether the device holding ``path`` has (next to) no free space left."""
    try:
        import shutil

        return shutil.disk_usage(_absolute(path).parent).free < _LOW_SPACE
    except OSError:
        return False


def no_space(path: str | Path) -> OutputError:
    """The error for an output file that could not be written for want of space."""
    return OutputError(f"cannot write {path}: {_REASONS[errno.ENOSPC]}; it is unchanged")


def _reserve(final: Path) -> Path:
    """Create an empty, uniquely named file beside ``final``, with the mode it will need."""
    try:
        mode = stat.S_IMODE(final.stat().st_mode)
    except OSError:
        mode = 0o666  # what a newly created file gets, less the umask
    while True:
        temp = final.with_name(f".{final.name}.{os.urandom(4).hex()}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
        os.close(fd)
        return temp


def _absolute(path: Path) -> Path:
    return Path(os.path.realpath(path.expanduser()))


def same_path(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same once resolved, or (for files that
    exist) the same file under another name, a hard link."""
    if _absolute(a) == _absolute(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def _special(path: Path) -> bool:
    """Whether ``path`` exists and is neither a regular file nor a folder."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; some file systems cannot sync a folder, which is fine."""
    with contextlib.suppress(OSError):
        _fsync(folder)


@contextlib.contextmanager
def _os_errors(path: Path, *, partial: bool = False) -> Iterator[None]:
    """Turn an OS error while writing ``path`` into a one-line OutputError."""
    try:
        yield
    except OSError as exc:
        state = "it may hold part of the output" if partial else "it is unchanged"
        reason = _REASONS.get(exc.errno or 0) or exc.strerror or str(exc)
        raise OutputError(f"cannot write {path}: {reason}; {state}") from exc
