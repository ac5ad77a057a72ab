"""Throwaway MariaDB servers from the installed binaries, for tests, the demo and benchmarks.

Standard library only, like devservices.py (whose process helpers it uses). A server here is a
binlog source as a migration needs one: ``--log-bin`` with ROW format, full row images and full
row metadata (the binlog names every column), a server id, GTIDs on. It never reads the machine's
``/etc/mysql/my.cnf`` (``--no-defaults``): that one names user ``mysql`` and the shared datadir of
the machine's own server, which tests never touch. ``MIGRATOR_MARIADB_BINDIR`` overrides where the
binaries are looked for (``mariadbd`` is in /usr/sbin on Debian).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devservices import (
    HOST,
    ServiceError,
    ServiceUnavailable,
    _await_ready,
    _cmdline,
    _deathsig_prefix,
    _rmtree,
    _terminate,
    pid_alive,
    start_on_a_free_port,
)

# What CDC needs from the binlog (docs/architecture.md, "MySQL and MariaDB sources"), and no
# durability the tests do not need: the data directory is thrown away.
DEFAULT_SETTINGS: dict[str, object] = {
    "binlog-format": "ROW",
    "binlog-row-image": "FULL",
    "binlog-row-metadata": "FULL",
    "server-id": 1,
    "log-slave-updates": "ON",
    "innodb-flush-log-at-trx-commit": 2,
    "sync-binlog": 0,
    "innodb-buffer-pool-size": "128M",
    "max-connections": 200,
    "character-set-server": "utf8mb4",
    "collation-server": "utf8mb4_general_ci",
    "skip-name-resolve": "ON",
}


def find_bindir() -> Path:
    """The directory holding mariadbd (MIGRATOR_MARIADB_BINDIR, /usr/sbin, or PATH)."""
    override = os.environ.get("MIGRATOR_MARIADB_BINDIR")
    candidates = [Path(override)] if override else [Path("/usr/sbin"), Path("/usr/bin")]
    found = shutil.which("mariadbd")
    if found:
        candidates.append(Path(found).parent)
    for directory in candidates:
        if (directory / "mariadbd").is_file():
            return directory
    raise ServiceUnavailable("mariadbd not found (install mariadb-server, or set MIGRATOR_MARIADB_BINDIR)")


def _install_db() -> str:
    found = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if not found:
        raise ServiceUnavailable("mariadb-install-db not found (install mariadb-server)")
    return found


def _ping(port: int) -> bool:
    """The server's handshake packet arrived: it accepts connections (protocol version 10)."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as conn:
            conn.settimeout(2)
            header = conn.recv(5)
            return len(header) == 5 and header[4] == 10
    except OSError:
        return False


class MariaDbServer:
    """One mariadbd with its own data directory, root without a password on 127.0.0.1."""

    restartable = True

    def __init__(
        self,
        *,
        bindir: Path,
        base_dir: Path,
        port: int,
        settings: Mapping[str, object] | None = None,
        owns_base_dir: bool = False,
        pid: int | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.bindir = bindir
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.port = port
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.owns_base_dir = owns_base_dir
        self.pid = pid
        self.die_with_parent = die_with_parent
        self.log_path = base_dir / "mariadb.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"MariaDbServer(url={self.url!r}, pid={self.pid})"

    @property
    def url(self) -> str:
        return f"mysql://root@{HOST}:{self.port}/"

    def url_for(self, dbname: str) -> str:
        return f"mysql://root@{HOST}:{self.port}/{dbname}"

    @property
    def tmp_dir(self) -> Path:
        # Its own temporary directory: servers started side by side in the shared /tmp raced over
        # the bootstrap's temporary files there.
        return self.base_dir / "tmp"

    @property
    def socket_path(self) -> Path:
        return self.base_dir / "mysqld.sock"

    def is_running(self) -> bool:
        if self.pid is None or not pid_alive(self.pid):
            return False
        return f"--port={self.port}" in _cmdline(self.pid)

    def initialize(self) -> None:
        """A new data directory with the system tables (about 2 s)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                _install_db(),
                "--no-defaults",
                f"--datadir={self.data_dir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                f"--tmpdir={self.tmp_dir}",
            ],
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(
                f"mariadb-install-db failed with code {result.returncode}: "
                f"{result.stderr.decode(errors='replace')[-2000:]}"
            )

    def start(self, timeout: float = 60.0) -> None:
        if self.is_running():
            return
        cmd = [
            *_deathsig_prefix(self.die_with_parent, "TERM"),
            str(self.bindir / "mariadbd"),
            "--no-defaults",
            f"--datadir={self.data_dir}",
            f"--port={self.port}",
            f"--bind-address={HOST}",
            f"--socket={self.socket_path}",
            f"--pid-file={self.base_dir / 'mariadbd.pid'}",
            f"--log-bin={self.base_dir / 'binlog'}",
            f"--log-error={self.log_path}",
            "--user=root",
            f"--tmpdir={self.tmp_dir}",
            *(f"--{name}={value}" for name, value in self.settings.items()),
        ]
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.base_dir,
        )
        self.pid = self._proc.pid
        _await_ready(self._proc, "mariadbd", self.port, self.log_path, timeout, lambda: _ping(self.port))

    def shutdown(self, timeout: float = 30.0, *, graceful: bool = True) -> None:
        """Stop the server, keeping its data (SIGKILL when not graceful: a crash InnoDB recovers)."""
        if self.pid is not None and (self._proc is not None or self.is_running()):
            _terminate(self.pid, self._proc, signal.SIGTERM if graceful else signal.SIGKILL, timeout)
        self._proc = None
        self.pid = None

    def stop(self) -> None:
        try:
            self.shutdown(graceful=False)  # the data directory goes next
        finally:
            _rmtree(self.base_dir if self.owns_base_dir else self.data_dir)

    def restart(self, timeout: float = 60.0) -> None:
        self.shutdown()
        self.start(timeout)

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "mariadb",
            "url": self.url,
            "pid": self.pid,
            "port": self.port,
            "bindir": str(self.bindir),
            "base_dir": str(self.base_dir),
            "log": str(self.log_path),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> MariaDbServer:
        return cls(
            bindir=Path(state["bindir"]),
            base_dir=Path(state["base_dir"]),
            port=int(state["port"]),
            pid=state.get("pid"),
            die_with_parent=False,
        )


def start_mariadb(
    base_dir: str | os.PathLike[str] | None = None,
    port: int | None = None,
    settings: Mapping[str, object] | None = None,
    *,
    timeout: float = 60.0,
    die_with_parent: bool = True,
) -> MariaDbServer:
    """Initialise a data directory and start mariadbd on a free port (retried if taken)."""
    bindir = find_bindir()
    owns = base_dir is None
    base = (
        Path(tempfile.mkdtemp(prefix="migrator-mariadb-")) if base_dir is None else Path(base_dir).resolve()
    )
    base.mkdir(parents=True, exist_ok=True)

    def build(free: int) -> MariaDbServer:
        server = MariaDbServer(
            bindir=bindir,
            base_dir=base,
            port=free,
            settings=settings,
            owns_base_dir=owns,
            die_with_parent=die_with_parent,
        )
        if not server.data_dir.exists():
            server.initialize()
        return server

    try:
        started: MariaDbServer = start_on_a_free_port(port, build, timeout)
        return started
    except BaseException:
        _rmtree(base if owns else base / "data")
        raise
