"""The warm process itself: runs command lines sent by ``memex`` on stores it keeps open.

Started in the background by the command line (see ``memex.interfaces.cli.warm``) as
``python -m memex.interfaces.cli.warm_server SOCKET``. It serves one request at a time:
each runs the ordinary command-line code (``memex.interfaces.cli.app.run``) in the
client's working directory and environment, with the client's standard
input and its terminal or not, and returns what was printed and the exit status. Open
stores are kept between requests, keyed by their file and settings, so a store
replaced on disk or a changed setting opens afresh.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import queue
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from memex.interfaces.cli import warm

if TYPE_CHECKING:
    from memex.service import Memex

MAX_STORES = 4


class _Output(io.TextIOWrapper):
    """A captured stream that answers ``isatty`` as the client's own stream would."""

    def __init__(self, buffer: IO[bytes], tty: bool) -> None:
        super().__init__(buffer, encoding="utf-8", errors="backslashreplace")
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


class Stores:
    """Stores kept open between requests, least recently used closed first."""

    def __init__(self, limit: int = MAX_STORES) -> None:
        self._limit = limit
        self._open: OrderedDict[tuple[Any, ...], Memex] = OrderedDict()

    @contextlib.contextmanager
    def open(
        self, location: str | None, tenant: str | None, options: dict[str, Any]
    ) -> Iterator[Memex]:
        """The store ``Memex.open(location, tenant=..., **options)`` would open, kept."""
        from memex.errors import StoreError
        from memex.service import Memex

        path, settings = Memex.locate(location, tenant=tenant, **options)
        try:
            info = os.stat(path)
            identity: tuple[int, int] | None = (info.st_dev, info.st_ino)
        except OSError:
            identity = None
        key = (str(path), identity, tuple(sorted(settings.as_dict().items())))
        handle = self._open.get(key)
        if handle is None:
            # The file was replaced (a new store at the same path): its old handles go.
            for other in [k for k in self._open if k[0] == key[0] and k[1] != identity]:
                self._close(other)
            handle = Memex.open(path, settings)
            self._open[key] = handle
            while len(self._open) > self._limit:
                self._close(next(iter(self._open)))
        self._open.move_to_end(key)
        try:
            yield handle
        except StoreError:
            self._close(key)  # a store that failed is opened afresh next time
            raise
        if handle.read_only is not None and not settings.read_only:
            # Read-only because it could not be written just now (a full disk, say): the
            # next command opens it afresh, in case that has changed.
            self._close(key)

    def _close(self, key: tuple[Any, ...]) -> None:
        handle = self._open.pop(key, None)
        if handle is not None:
            with contextlib.suppress(Exception):
                handle.close()

    def names(self) -> list[str]:
        return [key[0] for key in self._open]

    def close(self) -> None:
        for key in list(self._open):
            self._close(key)


class Server:
    """One warm process: its socket, its open stores and what it has served.

    The main thread accepts connections and answers at once: a status, or whether it
    takes a command. One worker thread runs the commands it takes, one at a time; a
    command arriving while another runs is refused as busy (the caller runs it itself),
    so no caller ever waits behind another's command.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.stores = Stores()
        self.served = 0
        self.started = time.time()
        self.last_command = time.monotonic()
        self.stopping = False
        self._work: queue.Queue[tuple[socket.socket, dict[str, Any]] | None] = queue.Queue()
        self._busy = threading.Event()
        self._worker = threading.Thread(target=self._serve, name="memex-warm-worker")

    def run(self, listener: socket.socket) -> None:
        from memex.interfaces.cli import invocation

        invocation.OPENER = self.stores.open
        self._worker.start()
        idle = warm.idle_seconds()
        try:
            while not self.stopping:
                left = self.last_command + idle - time.monotonic()
                if left <= 0 and not self._busy.is_set():
                    return  # idle for long enough (asking for its status does not count)
                listener.settimeout(max(left, 0.5))
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                self._take(conn)
        finally:
            self._work.put(None)
            self._worker.join()

    def _take(self, conn: socket.socket) -> None:
        """Read one request and answer it, or hand it to the worker (which closes it)."""
        handed = False
        try:
            conn.settimeout(5.0)  # a caller sends its whole request at once
            if not _same_user(conn):
                return
            request = warm.receive(conn)
            if request is None:
                return
            if request.get("protocol") != warm.PROTOCOL:
                warm.send(conn, {"accepted": False, "reason": "another memex version"})
            elif request.get("control") is not None:
                warm.send(conn, self.control(str(request["control"])))
            elif self._busy.is_set() or self.stopping:
                warm.send(conn, {"accepted": False, "reason": "busy"})
            else:
                self._busy.set()
                warm.send(conn, {"accepted": True})
                conn.settimeout(None)
                self._work.put((conn, request))
                handed = True
        except (OSError, ValueError, warm.WarmError):
            if handed:
                return
        finally:
            if not handed:
                conn.close()

    def control(self, action: str) -> dict[str, Any]:
        if action == "stop":
            self.stopping = True
        return {
            "pid": os.getpid(),
            "served": self.served,
            "busy": self._busy.is_set(),
            "stores": self.stores.names(),
            "uptime_seconds": round(time.time() - self.started, 3),
            "idle_seconds": warm.idle_seconds(),
        }

    def _serve(self) -> None:
        while (item := self._work.get()) is not None:
            conn, request = item
            with conn:
                self.served += 1
                try:
                    reply = run_command(request)
                finally:
                    self.last_command = time.monotonic()
                    self._busy.clear()
                with contextlib.suppress(OSError):
                    warm.send(conn, reply)
        self.stores.close()


def run_command(request: dict[str, Any]) -> dict[str, Any]:
    """Run one command line as the client would have, capturing what it prints."""
    from memex.interfaces.cli.app import run

    ttys = request.get("tty") or {}
    stdin = (request.get("stdin") or "").encode("utf-8", "surrogateescape")
    out, err = io.BytesIO(), io.BytesIO()
    streams = sys.stdin, sys.stdout, sys.stderr
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_umask = os.umask(int(request.get("umask", 0o022)))
    captured = _Output(out, bool(ttys.get("stdout"))), _Output(err, bool(ttys.get("stderr")))
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    sys.stdout, sys.stderr = captured
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in (request.get("env") or {}).items()})
    try:
        os.chdir(request["cwd"])
        code = run([str(a) for a in request["argv"]])
    except Exception:  # as an uncaught error would end the command in its own process
        traceback.print_exc()
        code = 1
    finally:
        for stream in captured:  # keep the bytes: a wrapper closes its buffer when dropped
            stream.flush()
            stream.detach()
        sys.stdin, sys.stdout, sys.stderr = streams
        os.environ.clear()
        os.environ.update(saved_env)
        os.umask(saved_umask)
        with contextlib.suppress(OSError):
            os.chdir(saved_cwd)
    return {
        "code": code,
        "stdout": out.getvalue().decode("utf-8", "surrogateescape"),
        "stderr": err.getvalue().decode("utf-8", "surrogateescape"),
    }


def _same_user(conn: socket.socket) -> bool:
    """Whether the process at the other end runs as this user."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


def serve(path: str) -> int:
    """Listen at ``path`` until idle, stopped or signalled; 0 if another one listens."""
    if not warm.private_dir(os.path.dirname(path), create=True):
        return 1
    with open(os.path.splitext(path)[0] + ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # another warm process of this memex is starting or running
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by one that was killed
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(16)
        identity = os.stat(path).st_ino
        server = Server(path)

        def stop(signum: int, frame: object) -> None:
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, stop)
        try:
            server.run(listener)
        finally:
            listener.close()
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == identity:
                    os.unlink(path)
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1]))
