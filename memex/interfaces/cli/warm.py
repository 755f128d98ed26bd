"""The warm process: one background ``memex`` per user that keeps stores open.

A hook that calls ``memex recall`` on every turn would otherwise pay, each time, for
starting Python, loading numpy, the tokenizer and the search indexes: hundreds of
milliseconds on a large store. Instead the command line hands such a command to a warm
process, which runs it exactly as the command line would (same code, same arguments,
same environment, same output and exit status) on a store it already has open, and
sends back what it printed.

- The first command that needs a store's indexes (``remember``, ``recall``,
  ``context``) runs as usual, then starts the warm process in the background. Later
  commands are served by it; ``get``, ``list`` and the other quick ones use it when it
  is there but do not start it.
- It runs one command at a time. A command that arrives while another runs is not
  queued: the caller runs it itself, so nothing waits behind a write that waits for a
  lock, and a caller's standard input is read before it connects.
- It listens on a Unix socket in a folder only this user can enter, answers only this
  user, and stops after ``MEMEX_WARM_SECONDS`` (600) without a command, or when asked
  (``memex warm stop``). Its socket's name carries the memex version, where memex is
  installed, the state of its files, the Python that runs it and ``PYTHONPATH``, so
  changed code starts a new one. It runs with its working directory at ``/`` and
  without the caller's directory on its import path (``python -P``).
- ``MEMEX_WARM=0`` turns it off: every command runs in its own process.
- A command on a memex server (``--store http://...``) runs in its own process: the
  server keeps its store open, and there is nothing to keep here.

This module is the client side and stays small: it runs before anything else is
imported. The server is ``memex.interfaces.cli.warm_server``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import socket

PROTOCOL = 2
IDLE_SECONDS = 600.0
# Commands the warm process may run: each opens the store, does one quick thing and
# prints. Long ones with progress bars or files (import, export, backup, restore,
# reindex, index) run in their own process.
SERVED = frozenset(
    {
        "remember",
        "recall",
        "context",
        "get",
        "list",
        "update",
        "forget",
        "unsupersede",
        "history",
        "stats",
        "expire",
    }
)
# Commands worth starting the warm process for: they load a model or search indexes.
STARTS = frozenset({"remember", "recall", "context"})
_HEADER_BYTES = 4  # a message's length, big-endian
_MAX_PATH = 100  # a Unix socket's path must fit in 108 bytes
_MAX_MESSAGE = 1 << 30
_ANSWER_SECONDS = 5.0  # for the warm process to take a command or say it is busy
_FLAGS = frozenset({"--json", "--read-only"})
_HELP = frozenset({"-h", "--help", "--version"})


class WarmError(Exception):
    """The warm process failed after it was given a command (which may have run)."""


def enabled() -> bool:
    """Whether commands may be handed to a warm process (``MEMEX_WARM``, default on)."""
    value = os.environ.get("MEMEX_WARM", "1").strip().lower()
    return value not in ("0", "false", "no", "off", "")


def idle_seconds() -> float:
    """How long the warm process waits for a request before it stops."""
    try:
        value = float(os.environ.get("MEMEX_WARM_SECONDS", IDLE_SECONDS))
    except ValueError:
        return IDLE_SECONDS
    return value if value > 0 else IDLE_SECONDS


def runtime_dir() -> str:
    """A folder only this user can enter, for the socket (``MEMEX_RUNTIME_DIR`` first)."""
    given = os.environ.get("MEMEX_RUNTIME_DIR")
    if given:
        return given
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return os.path.join(base, f"memex-{os.getuid()}")


def package_dir() -> str:
    """The folder holding the ``memex`` package this process runs."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _code_stamp(package: str) -> str:
    """A mark of the package's files as they are now: any edit or reinstall changes it."""
    newest, count = 0, 0
    stack = [package]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                    stack.append(entry.path)
                elif entry.name.endswith((".py", ".sql")):
                    newest = max(newest, entry.stat().st_mtime_ns)
                    count += 1
    return f"{newest}:{count}"


def socket_path() -> str:
    """Where the warm process for this memex, this Python and this import path listens."""
    import hashlib

    from memex import __version__

    package = package_dir()
    try:
        stamp = _code_stamp(package)
    except OSError:
        stamp = "?"
    key = "\0".join(
        (
            str(PROTOCOL),
            __version__,
            sys.executable,
            package,
            stamp,
            os.environ.get("PYTHONPATH", ""),
        )
    )
    name = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    return os.path.join(runtime_dir(), f"warm-{name}.sock")


def private_dir(path: str, *, create: bool) -> bool:
    """Whether ``path`` is a folder of this user's that nobody else can enter."""
    if create:
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError:
            return False
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and stat.S_IMODE(info.st_mode) & 0o077 == 0
    )


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    """One length-prefixed JSON message."""
    import json

    data = json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogateescape")
    sock.sendall(len(data).to_bytes(_HEADER_BYTES, "big") + data)


def receive(sock: socket.socket) -> dict[str, Any] | None:
    """One length-prefixed JSON message; None when the other side closed first."""
    import json

    header = _read(sock, _HEADER_BYTES)
    if header is None:
        return None
    size = int.from_bytes(header, "big")
    if size > _MAX_MESSAGE:
        raise WarmError("a message from the warm process is too large")
    data = _read(sock, size)
    if data is None:
        return None
    message = json.loads(data.decode("utf-8", "surrogateescape"))
    if not isinstance(message, dict):
        raise WarmError("a message from the warm process is malformed")
    return message


def _read(sock: socket.socket, size: int) -> bytes | None:
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def connect(path: str) -> socket.socket | None:
    """A connection to the warm process listening at ``path``, if there is one."""
    import socket

    if not private_dir(os.path.dirname(path), create=False):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(1.0)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    sock.settimeout(None)
    return sock


def _positionals(argv: Sequence[str]) -> list[str] | None:
    """The positional arguments of ``argv`` (the command first), the values of options
    left out; None when it asks for help or the version. Every option but ``--json``
    and ``--read-only`` takes a value: true of the global options and of ``remember``'s,
    the only two places this is asked about."""
    found: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _HELP:
            return None
        elif arg.startswith("-") and arg != "-":
            skip = arg not in _FLAGS and "=" not in arg
        else:
            found.append(arg)
    return found


def command_of(argv: Sequence[str]) -> str | None:
    """The command an argument list names (global options may come before it)."""
    found = _positionals(argv)
    return found[0] if found else None


def on_server(argv: Sequence[str]) -> bool:
    """Whether ``argv`` names a memex server as its store (``--store``, ``--store=``,
    ``-s``, an abbreviation of ``--store``, else ``$MEMEX_STORE``)."""
    from memex.core.locations import is_memex_url

    found = None
    args = iter(argv)
    for arg in args:
        name, sep, value = arg.partition("=")
        if name == "-s" or (len(name) > 4 and "--store".startswith(name)):
            found = value if sep else next(args, None)
        elif arg.startswith("-s") and not arg.startswith("--"):
            found = arg[2:]
    return is_memex_url(found if found is not None else os.environ.get("MEMEX_STORE"))


def reads_stdin(argv: Sequence[str]) -> bool:
    """Whether ``argv`` is a ``remember`` whose content is ``-`` (standard input)."""
    found = _positionals(argv)
    return found is not None and found[:2] == ["remember", "-"]


def request_for(argv: Sequence[str]) -> dict[str, Any]:
    """What the warm process needs to run ``argv`` exactly as this process would: the
    arguments, working directory, environment, umask, standard input and which streams
    are terminals (with the terminal's width)."""
    env = dict(os.environ)
    stdin = None
    if reads_stdin(argv):
        stdin = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
    umask = os.umask(0o077)
    os.umask(umask)
    ttys = {"stdout": _isatty(sys.stdout), "stderr": _isatty(sys.stderr)}
    if ttys["stdout"] and "COLUMNS" not in env:
        with contextlib.suppress(OSError, ValueError):
            env["COLUMNS"] = str(os.get_terminal_size(sys.stdout.fileno()).columns)
    return {
        "protocol": PROTOCOL,
        "argv": list(argv),
        "cwd": os.getcwd(),
        "env": env,
        "stdin": stdin,
        "tty": ttys,
        "umask": umask,
    }


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def run_warm(argv: Sequence[str]) -> int | None:
    """Run ``argv`` in the warm process and print what it printed; its exit status.

    None when the command is not one it serves, none is listening, or it is busy with
    another command: the caller runs the command itself. Raises WarmError when the warm
    process failed after it took the command, since the command may have run (running
    it again could write twice).
    """
    if not enabled():
        return None
    command = command_of(argv)
    if command not in SERVED or on_server(argv):
        return None
    path = socket_path()
    if not os.path.exists(path):
        return None
    request = request_for(argv)  # standard input is read before connecting
    reply = _ask(path, request)
    if reply is None:  # not taken: the caller runs it, with the input already read
        if request["stdin"] is not None:
            import io

            data = request["stdin"].encode("utf-8", "surrogateescape")
            sys.stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
        return None
    if not isinstance(reply.get("code"), int):
        raise WarmError("the warm memex process gave a malformed reply")
    for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        text = reply.get(name) or ""
        if text:
            stream.buffer.write(text.encode("utf-8", "surrogateescape"))
            stream.buffer.flush()
    code: int = reply["code"]
    return code


def _ask(path: str, request: dict[str, Any]) -> dict[str, Any] | None:
    """The warm process's reply to ``request``; None if it did not take it (none there,
    busy, or going away). Raises WarmError if it failed after taking it."""
    sock = connect(path)
    if sock is None:
        return None
    with sock:
        try:
            sock.settimeout(_ANSWER_SECONDS)
            send(sock, request)
            answer = receive(sock)
        except (OSError, ValueError, WarmError):
            return None
        if answer is None or not answer.get("accepted"):
            return None
        sock.settimeout(None)
        try:
            reply = receive(sock)
        except (OSError, ValueError) as exc:
            raise WarmError(f"the warm memex process failed: {exc}") from exc
    if reply is None:
        raise WarmError("the warm memex process stopped while running the command")
    return reply


def start_in_background(argv: Sequence[str]) -> None:
    """Start the warm process after ``argv`` ran, if that command is worth it."""
    if enabled() and command_of(argv) in STARTS and not on_server(argv):
        start()


def start() -> str | None:
    """Start the warm process in the background unless one listens; why it cannot be
    started, if it cannot."""
    path = socket_path()
    folder = os.path.dirname(path)
    if len(path) > _MAX_PATH:
        return f"the socket path {path} is too long for a Unix socket"
    if not private_dir(folder, create=True):
        return f"{folder} is not a folder only this user can enter"
    if os.path.exists(path) and _listening(path):
        return None
    import subprocess

    # Started from "/" and with -P, so nothing in the caller's folder can be imported;
    # the memex this process runs is put first on its path instead.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_dir(), env.get("PYTHONPATH")) if p)
    subprocess.Popen(
        [sys.executable, "-P", "-m", "memex.interfaces.cli.warm_server", path],
        cwd="/",
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    return None


def _listening(path: str) -> bool:
    sock = connect(path)
    if sock is None:
        return False
    sock.close()
    return True


def control(action: str) -> dict[str, Any]:
    """``status`` or ``stop`` of this memex's warm process."""
    path = socket_path()
    sock = connect(path)
    if sock is None:
        return {"running": False, "socket": path}
    with sock:
        send(sock, {"protocol": PROTOCOL, "control": action})
        reply = receive(sock) or {}
    return {"running": action != "stop", "socket": path, **reply}
