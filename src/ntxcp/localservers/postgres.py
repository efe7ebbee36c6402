"""A throw-away PostgreSQL server on a free loopback port (Debian's ``postgresql``).

:class:`PostgresServer` runs the PostgreSQL binaries (``initdb``, ``pg_ctl``) with its
data and socket directories in a temporary directory. ``initdb`` refuses to run as
root, so under root every server command runs as an unprivileged system user
(``postgres`` when it exists, else ``nobody``) through ``runuser``. The server keeps
PostgreSQL's durable defaults (``fsync``, ``synchronous_commit``): the tests and the
local cluster demo show the control center's guarantees, not a faster, weaker
database.

With a certificate and key (``PostgresServer(tls=(cert, key))``) the server runs with
``ssl = on`` and accepts TCP connections over TLS only (``hostssl`` in ``pg_hba.conf``):
the production setting of docs/deployment.md, on loopback.

Example:
    >>> with PostgresServer() as server:  # doctest: +SKIP
    ...     print(server.url)
    postgresql://ntxcp@127.0.0.1:41234/ntxcp
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Self

from ntxcp.localservers._process import LocalServer

__all__ = ["DATABASE", "USER", "PostgresMissing", "PostgresServer", "binaries"]

USER = "ntxcp"
DATABASE = "ntxcp"
COMMAND_TIMEOUT = 60.0  # s for one initdb/pg_ctl/createdb on a loaded machine


class PostgresMissing(RuntimeError):
    """The PostgreSQL server binaries are not installed."""


def binaries() -> Path | None:
    """The directory of ``initdb``/``pg_ctl`` (newest version), or ``None`` when missing."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    if versions:
        return versions[0].parent
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _system_user() -> str | None:
    """The unprivileged user to run the server as (``None``: we are not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no unprivileged user to run PostgreSQL as")


class PostgresServer(LocalServer):
    """One PostgreSQL cluster in a temporary directory, on 127.0.0.1.

    Args:
        tls: the server's certificate and key (PEM files): TLS on, and required over TCP.

    Raises:
        PostgresMissing: the binaries are not installed.

    Attributes:
        port: the TCP port on 127.0.0.1.
        directory: the temporary directory (data, socket, log).
    """

    def __init__(self, *, tls: tuple[Path, Path] | None = None) -> None:
        bin_dir = binaries()
        if bin_dir is None:
            raise PostgresMissing("PostgreSQL is not installed (Debian package postgresql)")
        self._bin = bin_dir
        self._user = _system_user()
        self.directory = Path(tempfile.mkdtemp(prefix="ntxcp-pg-"))
        self.directory.chmod(0o755)  # the server's user must reach its data directory
        self._data = self.directory / "data"
        self._log = self.directory / "server.log"
        self.port = _free_port()
        self._tls = tls

    @property
    def url(self) -> str:
        """``postgresql://`` URL of the database (no password: trust on loopback)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def data_directory(self) -> Path:
        """The cluster's data directory (``postmaster.pid`` lives there)."""
        return self._data

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self._bin / args[0]), *args[1:]]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        return subprocess.run(
            command,
            check=check,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            cwd=self.directory,
            start_new_session=True,  # a Ctrl-C at the terminal is for the parent only
        )

    def _own(self, path: Path) -> None:
        if self._user is not None:
            record = pwd.getpwnam(self._user)
            os.chown(path, record.pw_uid, record.pw_gid)

    def start(self) -> Self:
        """Create the cluster (first time), start the server and create the database.

        Raises:
            subprocess.CalledProcessError: a PostgreSQL command failed (its output is
                in the exception; :meth:`log` has the server's log).
        """
        if not self._data.exists():
            self._data.mkdir()
            self._own(self._data)
            self._log.touch()
            self._own(self._log)
            self._run(
                "initdb", "-D", str(self._data), "-U", USER, "--auth=trust",
                "-E", "UTF8", "--no-locale", "--no-instructions",
            )  # fmt: skip
            if self._tls is not None:
                self._require_tls(*self._tls)
            created = False
        else:
            created = True
        self._run(
            "pg_ctl", "-D", str(self._data), "-l", str(self._log), "-w", "-t", "30",
            "-o", f"-p {self.port} -k {self._data} -c listen_addresses=127.0.0.1",
            "start",
        )  # fmt: skip
        if not created:
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE)
        return self

    def _require_tls(self, cert: Path, key: Path) -> None:
        """Turn TLS on; TCP connections only over TLS.

        The server gets copies of the certificate and key that its user owns (the key
        private to it: PostgreSQL refuses a key others may read).
        """
        tls_dir = self._data / "tls"
        tls_dir.mkdir()
        shutil.copyfile(cert, tls_dir / "server.pem")
        shutil.copyfile(key, tls_dir / "server.key")
        (tls_dir / "server.key").chmod(0o600)
        for path in (tls_dir, tls_dir / "server.pem", tls_dir / "server.key"):
            self._own(path)
        with (self._data / "postgresql.conf").open("a") as conf:
            conf.write(
                "ssl = on\n"
                f"ssl_cert_file = '{tls_dir / 'server.pem'}'\n"
                f"ssl_key_file = '{tls_dir / 'server.key'}'\n"
            )
        (self._data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all all 127.0.0.1/32 trust\n"
            "hostssl all all ::1/128 trust\n"
        )

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its ``postgresql://`` URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name)
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients; ``immediate``: like a crash)."""
        self._run("pg_ctl", "-D", str(self._data), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        """Stop and start again on the same port and data."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        """Whether the server runs."""
        return self.postmaster() is not None

    def postmaster(self) -> int | None:
        """The server's process id (from ``postmaster.pid``), if it is running."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self._data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 0)
            return pid
        return None

    def remove(self) -> None:
        """Stop the server and delete its directory (never leaving a server behind)."""
        pid = self.postmaster()
        try:
            self.stop("immediate")
        finally:
            if pid is not None and self.postmaster() is not None:
                with contextlib.suppress(OSError):  # pg_ctl could not stop it
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(self.directory, ignore_errors=True)
