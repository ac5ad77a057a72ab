"""Throwaway PostgreSQL and MongoDB-compatible servers for tests, the demo and local development.

Standard library only, so it runs before the virtualenv holds anything and tests can import it
from ``scripts/lib``. As a script it manages a long-lived pair under ``.services/``::

    python scripts/lib/devservices.py up|down|env|status [--dir .services]

PostgreSQL comes from the server binaries installed on the machine (``/usr/lib/postgresql/*/bin``,
``pg_config --bindir`` or ``PATH``; ``MIGRATOR_PG_BINDIR`` overrides). The MongoDB side is
SecantusDB's ``secantusd-py`` (a dev dependency; ``MIGRATOR_SECANTUSD`` overrides), because no real
MongoDB server is installable here; ``docker/`` has the real thing for machines with Docker.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"

# Logical decoding for CDC tests, room for many slots/walsenders because tests run in parallel
# against one server; no fsync because these clusters are thrown away (data still survives a killed
# server, only not a crashed OS). synchronous_commit stays on: with fsync off it saves nothing
# measurable here, and off would lose the last ~200 ms of acknowledged commits when a crash test
# kills the server with SIGKILL.
DEFAULT_PG_SETTINGS: dict[str, object] = {
    "listen_addresses": HOST,
    "wal_level": "logical",
    "max_replication_slots": 20,
    "max_wal_senders": 20,
    "fsync": "off",
    "synchronous_commit": "on",
    "full_page_writes": "off",
}

# Unix socket paths are limited to 107 bytes; ".s.PGSQL.65535" needs 15 of them.
_MAX_SOCKET_DIR_LEN = 80
_PG_OS_USER = "postgres"


class ServiceUnavailable(RuntimeError):
    """The binaries a server needs are not installed: callers may skip rather than fail."""


class ServiceError(RuntimeError):
    """A server was found but did not start or stop as it should."""


# ---------------------------------------------------------------------------------------------- helpers


def free_port(host: str = HOST) -> int:
    """A port nobody listens on right now. Racy by nature: starters retry on 'Address already in use'."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start_on_a_free_port(port: int | None, build: Callable[[int], Any], timeout: float) -> Any:
    """build(port) then start() the server; on a free port of our choosing, up to three times,
    since another process may take the "free" port between our probe and the server's bind."""
    attempts = 1 if port is not None else 3
    for attempt in range(attempts):
        server = build(port if port is not None else free_port())
        try:
            server.start(timeout)
            return server
        except ServiceError as exc:
            if "Address already in use" not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0) but will never serve again.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    tail = "\n".join(text.splitlines()[-lines:])
    return f"--- last lines of {path} ---\n{tail}"


def _deathsig_prefix(die_with_parent: bool, sig: str) -> list[str]:
    """Kill the server if the process that started it dies (a test run killed with SIGKILL, say).

    Done with util-linux ``setpriv`` rather than a ``preexec_fn``, which is unsafe in a process
    with threads (pymongo's monitors). Where setpriv is missing, the server just outlives us.
    """
    if not die_with_parent or not sys.platform.startswith("linux"):
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", sig, "--"] if setpriv else []


def _wait_exit(pid: int, proc: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    if proc is not None:
        try:
            proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def _terminate(pid: int, proc: subprocess.Popen[bytes] | None, first: signal.Signals, timeout: float) -> None:
    """Polite signal first; the whole process group gets SIGKILL if that does not work in time."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, first)
    if _wait_exit(pid, proc, timeout):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if not _wait_exit(pid, proc, 10):
        raise ServiceError(f"process {pid} survived SIGKILL")


def _kill_quietly(pid: int | None, proc: subprocess.Popen[bytes] | None, sig: signal.Signals) -> None:
    """Stop a server that failed to start, ignoring that it may be gone already."""
    if pid is not None:
        with contextlib.suppress(ServiceError):
            _terminate(pid, proc, sig, 5)


def _await_ready(
    proc: subprocess.Popen[bytes],
    name: str,
    port: int,
    log_path: Path,
    timeout: float,
    ready: Callable[[], bool],
    *,
    kill_with: signal.Signals = signal.SIGKILL,
    waiting_for: str = "answer",
) -> None:
    """Poll `ready` until it holds. A server that exits meanwhile, or is not ready within
    `timeout` (then killed with `kill_with`), raises ServiceError with the tail of its log."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise ServiceError(
                f"{name} exited with code {proc.returncode} during startup (port {port})\n{_log_tail(log_path)}"
            )
        if ready():
            return
        if time.monotonic() > deadline:
            _kill_quietly(proc.pid, proc, kill_with)
            raise ServiceError(f"{name} did not {waiting_for} within {timeout:.0f}s\n{_log_tail(log_path)}")
        time.sleep(0.05)


def _rmtree(path: Path | None) -> None:
    if path is not None and path.exists():
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- PostgreSQL


def find_pg_bindir() -> Path:
    override = os.environ.get("MIGRATOR_PG_BINDIR")
    if override:
        path = Path(override)
        if not (path / "postgres").exists():
            raise ServiceUnavailable(f"MIGRATOR_PG_BINDIR={override} holds no 'postgres' binary")
        return path

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", p.parent.name))

    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]
    if candidates:
        return max(candidates, key=version)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        path = Path(out.stdout.strip())
        if out.returncode == 0 and (path / "initdb").exists():
            return path
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise ServiceUnavailable(
        "PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin, "
        "pg_config --bindir or PATH; install them (Debian: apt-get install postgresql) "
        "or set MIGRATOR_PG_BINDIR"
    )


def _pg_os_user() -> pwd.struct_passwd | None:
    """The user to run PostgreSQL as: None to run as ourselves; initdb and postgres refuse root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(_PG_OS_USER)
    except KeyError:
        raise ServiceUnavailable(
            f"running as root, and PostgreSQL refuses root: create a '{_PG_OS_USER}' OS user"
        ) from None


def _as_user(user: pwd.struct_passwd | None) -> dict[str, Any]:
    # Popen switches uid itself: no runuser/su in between, so the pid we hold is the postmaster's.
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _reachable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` may traverse every directory down to `path` (pytest's tmp dirs are 0700 root)."""
    groups = {user.pw_gid} | set(os.getgrouplist(user.pw_name, user.pw_gid))
    for p in [path, *path.parents]:
        try:
            st = p.stat()
        except OSError:
            return False
        if st.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _conf_value(value: object) -> str:
    if isinstance(value, bool):
        value = "on" if value else "off"
    return "'" + str(value).replace("'", "''") + "'"


class PgServer:
    """A throwaway PostgreSQL cluster. `stop()` deletes its data."""

    restartable = True

    def __init__(
        self,
        *,
        bindir: Path,
        data_dir: Path,
        port: int,
        log_path: Path,
        owned_root: Path | None = None,
        pid: int | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.bindir = bindir
        self.data_dir = data_dir
        self.port = port
        self.log_path = log_path
        # A directory we created outside the caller's base_dir (root runs) that stop() must remove.
        self.owned_root = owned_root
        self.pid = pid
        self.die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"PgServer(url={self.url!r}, data_dir={str(self.data_dir)!r}, pid={self.pid})"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def url_for(self, dbname: str) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{dbname}"

    def is_running(self) -> bool:
        if self.pid is None or not pid_alive(self.pid):
            return False
        # After a reboot or crash the pid may belong to someone else now.
        return str(self.data_dir) in _cmdline(self.pid)

    def _pidfile_ready(self) -> bool:
        """pg_ctl's own readiness test: postmaster.pid names our pid and says 'ready'."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[0].strip() == str(self.pid) and lines[7].strip() == "ready"

    def _await_previous_postmaster(self, timeout: float = 10.0) -> None:
        """Let a crashed postmaster's remains go before starting on the same data directory.

        postgres refuses to start while the pid in postmaster.pid answers kill(0), and a zombie does
        until it is reaped: after `kill -9`, or when the process that started it exited, that is
        up to PID 1, which reaps slowly on some machines (1-2 s in our VMs).
        """
        try:
            old = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return
        if pid_alive(old) and str(self.data_dir) in _cmdline(old):
            raise ServiceError(f"a postmaster (pid {old}) is already running on {self.data_dir}")
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.kill(old, 0)
            except ProcessLookupError:
                return
            except PermissionError:
                return  # another user's process reuses the pid; postgres ignores those itself
            if pid_alive(old) or time.monotonic() > deadline:
                break  # the pid now belongs to another process, or a zombie nobody reaps
            time.sleep(0.05)
        # Either way the postmaster that wrote this lock file is dead.
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)

    def start(self, timeout: float = 60.0) -> None:
        if self.is_running():
            return
        self._await_previous_postmaster()
        cmd = [
            *_deathsig_prefix(self.die_with_parent, "INT"),
            str(self.bindir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
        ]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.data_dir,
                **_as_user(_pg_os_user()),
            )
        self.pid = self._proc.pid
        _await_ready(
            self._proc,
            "postgres",
            self.port,
            self.log_path,
            timeout,
            lambda: self._pidfile_ready() and port_open(self.port),
            kill_with=signal.SIGQUIT,
            waiting_for="accept connections",
        )

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop the server and keep its data. SIGINT is what `pg_ctl stop -m fast` sends."""
        if self.pid is not None and (self._proc is not None or self.is_running()):
            _terminate(self.pid, self._proc, signal.SIGINT, timeout)
        self._proc = None
        self.pid = None

    def stop(self) -> None:
        try:
            self.shutdown()
        finally:
            _rmtree(self.owned_root or self.data_dir)

    def restart(self, timeout: float = 60.0) -> None:
        self.shutdown()
        self.start(timeout)

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "postgres",
            "url": self.url,
            "pid": self.pid,
            "port": self.port,
            "bindir": str(self.bindir),
            "data_dir": str(self.data_dir),
            "log": str(self.log_path),
            "owned_root": str(self.owned_root) if self.owned_root else None,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> PgServer:
        return cls(
            bindir=Path(state["bindir"]),
            data_dir=Path(state["data_dir"]),
            port=int(state["port"]),
            log_path=Path(state["log"]),
            owned_root=Path(state["owned_root"]) if state.get("owned_root") else None,
            pid=state.get("pid"),
            die_with_parent=False,
        )


def _initdb(bindir: Path, data_dir: Path, user: pwd.struct_passwd | None, log_path: Path) -> None:
    # C.UTF-8 gives Unicode-aware ctype with byte-order collation (what MongoDB compares by);
    # plain C is the fallback on systems without that locale.
    for locale in ("C.UTF-8", "C"):
        with open(log_path, "ab") as log:
            rc = subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data_dir),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--encoding=UTF8",
                    f"--locale={locale}",
                    "--no-sync",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
                **_as_user(user),
            ).returncode
        if rc == 0:
            return
        # initdb leaves a half-made directory behind; it must be empty for the next attempt.
        for child in data_dir.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
    raise ServiceError(f"initdb failed for {data_dir}\n{_log_tail(log_path)}")


def start_postgres(
    base_dir: str | os.PathLike[str],
    port: int | None = None,
    settings: Mapping[str, object] | None = None,
    *,
    timeout: float = 60.0,
    die_with_parent: bool = True,
) -> PgServer:
    """initdb a new cluster and start it on `port` (a free one by default).

    `settings` override DEFAULT_PG_SETTINGS (e.g. {'wal_level': 'replica'}); they go into
    postgresql.conf so that restarts keep them. As root the cluster runs as the 'postgres' OS user;
    when that user cannot reach `base_dir` the data directory goes to a fresh dir under the system
    temp dir instead (logs stay in `base_dir`).
    """
    base = Path(base_dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    bindir = find_pg_bindir()
    user = _pg_os_user()

    owned_root: Path | None = None
    data_dir = base / "pgdata"
    if (user is not None and not _reachable_by(base, user)) or len(str(data_dir)) > _MAX_SOCKET_DIR_LEN:
        owned_root = Path(tempfile.mkdtemp(prefix="migrator-pg-"))
        data_dir = owned_root / "data"
    if data_dir.exists():
        raise ServiceError(f"{data_dir} already exists; pick a new base_dir")
    data_dir.mkdir(mode=0o700)
    if user is not None:
        if owned_root is not None:
            os.chown(owned_root, user.pw_uid, user.pw_gid)
        os.chown(data_dir, user.pw_uid, user.pw_gid)

    log_path = base / "postgres.log"
    try:
        _initdb(bindir, data_dir, user, log_path)
        merged = {**DEFAULT_PG_SETTINGS, **(settings or {}), "unix_socket_directories": str(data_dir)}
        with open(data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# devservices.py\n")
            for key, value in merged.items():
                conf.write(f"{key} = {_conf_value(value)}\n")

        server: PgServer = start_on_a_free_port(
            port,
            lambda free: PgServer(
                bindir=bindir,
                data_dir=data_dir,
                port=free,
                log_path=log_path,
                owned_root=owned_root,
                die_with_parent=die_with_parent,
            ),
            timeout,
        )
        return server
    except BaseException:
        _rmtree(owned_root or data_dir)
        raise


# ---------------------------------------------------------------------------------------------- MongoDB


def find_secantusd() -> Path:
    override = os.environ.get("MIGRATOR_SECANTUSD")
    candidates = [Path(override)] if override else []
    candidates.append(Path(sys.executable).parent / "secantusd-py")
    found = shutil.which("secantusd-py")
    if found:
        candidates.append(Path(found))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise ServiceUnavailable(
        "secantusd-py (SecantusDB, the MongoDB-compatible test server) not found next to "
        f"{sys.executable} or on PATH; run scripts/bootstrap, or set MIGRATOR_SECANTUSD"
    )


def _mongo_ping(port: int) -> bool:
    try:
        import pymongo
    except ImportError:
        return True  # a TCP accept is the best a stdlib-only caller can do
    client: Any = pymongo.MongoClient(
        f"mongodb://{HOST}:{port}/?directConnection=true", serverSelectionTimeoutMS=2000
    )
    try:
        client.admin.command("ping")
        return True
    except Exception:  # noqa: BLE001 - any failure means "not yet"; the caller times out
        return False
    finally:
        client.close()


class MongoServer:
    """A SecantusDB server speaking the MongoDB wire protocol, advertised as a one-node replica set."""

    restartable = True

    def __init__(
        self,
        *,
        executable: Path,
        base_dir: Path,
        port: int,
        storage: Path | None,
        owns_base_dir: bool = False,
        pid: int | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.executable = executable
        self.base_dir = base_dir
        self.port = port
        self.storage = storage  # None: in memory, gone at every stop
        self.owns_base_dir = owns_base_dir
        self.pid = pid
        self.die_with_parent = die_with_parent
        self.log_path = base_dir / "mongo.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"MongoServer(url={self.url!r}, storage={str(self.storage)!r}, pid={self.pid})"

    @property
    def url(self) -> str:
        return f"mongodb://{HOST}:{self.port}/?directConnection=true"

    def url_for(self, dbname: str) -> str:
        return f"mongodb://{HOST}:{self.port}/{dbname}?directConnection=true"

    def is_running(self) -> bool:
        if self.pid is None or not pid_alive(self.pid):
            return False
        return str(self.port) in _cmdline(self.pid)

    def start(self, timeout: float = 60.0) -> None:
        if self.is_running():
            return
        # An explicit, empty config: without --config it would pick up ./secantusd.toml,
        # ~/.secantus/ or /etc/secantus/ and behave differently from machine to machine.
        config = self.base_dir / "secantusd.toml"
        if not config.exists():
            config.write_text("# empty on purpose: devservices.py passes every setting as a flag\n")
        cmd = [
            *_deathsig_prefix(self.die_with_parent, "TERM"),
            str(self.executable),
            "--config",
            str(config),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--storage-path",
            str(self.storage) if self.storage else ":memory:",
        ]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.base_dir,
            )
        self.pid = self._proc.pid
        _await_ready(
            self._proc,
            "secantusd-py",
            self.port,
            self.log_path,
            timeout,
            lambda: port_open(self.port) and _mongo_ping(self.port),
        )

    def shutdown(self, timeout: float = 15.0, *, graceful: bool = True) -> None:
        """Stop the server, keeping its storage. A clean SIGTERM shutdown takes about 2 s."""
        if self.pid is not None and (self._proc is not None or self.is_running()):
            _terminate(self.pid, self._proc, signal.SIGTERM if graceful else signal.SIGKILL, timeout)
        self._proc = None
        self.pid = None

    def stop(self) -> None:
        try:
            # The storage is deleted next, so a clean shutdown would only cost 2 s. In memory mode
            # the server deletes its own temp dir, which it does only on SIGTERM.
            self.shutdown(graceful=self.storage is None)
        finally:
            _rmtree(self.base_dir if self.owns_base_dir else self.storage)

    def restart(self, timeout: float = 60.0) -> None:
        self.shutdown()
        self.start(timeout)

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "mongo",
            "url": self.url,
            "pid": self.pid,
            "port": self.port,
            "executable": str(self.executable),
            "base_dir": str(self.base_dir),
            "storage": str(self.storage) if self.storage else None,
            "log": str(self.log_path),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> MongoServer:
        return cls(
            executable=Path(state["executable"]),
            base_dir=Path(state["base_dir"]),
            port=int(state["port"]),
            storage=Path(state["storage"]) if state.get("storage") else None,
            pid=state.get("pid"),
            die_with_parent=False,
        )


def start_mongo(
    base_dir: str | os.PathLike[str] | None = None,
    port: int | None = None,
    memory: bool = False,
    *,
    timeout: float = 60.0,
    die_with_parent: bool = True,
) -> MongoServer:
    """Start secantusd-py; with `memory` the data lives in a temp dir that each stop discards."""
    executable = find_secantusd()
    owns = base_dir is None
    base = Path(tempfile.mkdtemp(prefix="migrator-mongo-")) if base_dir is None else Path(base_dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    storage = None if memory else base / "mongo-data"
    try:
        server: MongoServer = start_on_a_free_port(
            port,
            lambda free: MongoServer(
                executable=executable,
                base_dir=base,
                port=free,
                storage=storage,
                owns_base_dir=owns,
                die_with_parent=die_with_parent,
            ),
            timeout,
        )
        return server
    except BaseException:
        _rmtree(base if owns else storage)
        raise


# ---------------------------------------------------------------------------------------------- CLI

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_FILE = "state.json"


def _load_state(directory: Path) -> dict[str, Any]:
    path = directory / STATE_FILE
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _save_state(directory: Path, state: Mapping[str, Any]) -> None:
    tmp = directory / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(directory / STATE_FILE)


def _servers(state: Mapping[str, Any]) -> tuple[PgServer | None, MongoServer | None]:
    pg = PgServer.from_state(state["postgres"]) if "postgres" in state else None
    mongo = MongoServer.from_state(state["mongo"]) if "mongo" in state else None
    return pg, mongo


def _alive(server: PgServer | MongoServer | None) -> bool:
    return server is not None and server.is_running() and port_open(server.port)


def _up_postgres(directory: Path, previous: PgServer | None, port: int | None) -> PgServer:
    if previous is not None and _alive(previous):
        print(f"postgres already up: {previous.url}")
        return previous
    if previous is not None and previous.data_dir.exists():
        previous.start()
        print(f"postgres restarted on its existing data: {previous.url}")
        return previous
    server = start_postgres(directory / "postgres", port=port, die_with_parent=False)
    print(f"postgres started: {server.url}")
    return server


def _up_mongo(directory: Path, previous: MongoServer | None, port: int | None) -> MongoServer:
    if previous is not None and _alive(previous):
        print(f"mongo    already up: {previous.url}")
        return previous
    if previous is not None and previous.storage is not None and previous.storage.exists():
        previous.start()
        print(f"mongo    restarted on its existing data: {previous.url}")
        return previous
    server = start_mongo(directory / "mongo", port=port, die_with_parent=False)
    print(f"mongo    started: {server.url}")
    return server


def cmd_up(directory: Path, pg_port: int | None, mongo_port: int | None) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    state = _load_state(directory)
    pg, mongo = _servers(state)
    # State is saved after each server so that a failure on the second still lets 'down' clean up.
    state["postgres"] = _up_postgres(directory, pg, pg_port).to_state()
    _save_state(directory, state)
    state["mongo"] = _up_mongo(directory, mongo, mongo_port).to_state()
    _save_state(directory, state)
    print('to use them: eval "$(scripts/services env)"')
    return 0


def cmd_down(directory: Path) -> int:
    if not (directory / STATE_FILE).exists():
        print(f"nothing to stop: no {STATE_FILE} in {directory}")
        return 0
    pg, mongo = _servers(_load_state(directory))
    errors = []
    for server in (mongo, pg):
        if server is None:
            continue
        try:
            server.stop()
            print(f"{'postgres' if isinstance(server, PgServer) else 'mongo':8} stopped")
        except ServiceError as exc:
            errors.append(str(exc))
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    # Only a directory holding our state file is ours to delete wholesale.
    shutil.rmtree(directory)
    return 0


def cmd_env(directory: Path) -> int:
    pg, mongo = _servers(_load_state(directory))
    if pg is None or mongo is None or not (_alive(pg) and _alive(mongo)):
        print(f"services are not up (state in {directory}); run: scripts/services up", file=sys.stderr)
        return 1
    print(f"export MIGRATOR_SOURCE_URL={shlex.quote(pg.url)}")
    print(f"export MIGRATOR_TARGET_URL={shlex.quote(mongo.url)}")
    # scripts/demo keeps its state file and routing file with these servers: `migrator status
    # plans/demo.yaml` (and run, verify, cutover, rollback) in this shell then find the demo's run.
    print(f"export MIGRATOR_STATE={shlex.quote(str(directory.resolve() / 'demo-state.db'))}")
    print(f"export MIGRATOR_ROUTING_FILE={shlex.quote(str(directory.resolve() / 'demo-routing'))}")
    return 0


def cmd_status(directory: Path) -> int:
    pg, mongo = _servers(_load_state(directory))
    all_up = True
    for name, server in (("postgres", pg), ("mongo", mongo)):
        if server is None:
            print(f"{name:8} not created")
            all_up = False
        elif _alive(server):
            print(f"{name:8} up    pid {server.pid:<7} {server.url}  log {server.log_path}")
        else:
            print(f"{name:8} down  (data kept; 'up' restarts it)  log {server.log_path}")
            all_up = False
    return 0 if all_up else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/services", description="Throwaway PostgreSQL + MongoDB-compatible servers."
    )
    parser.add_argument("command", choices=["up", "down", "env", "status"])
    parser.add_argument(
        "--dir", type=Path, default=REPO_ROOT / ".services", help="state directory (default: .services)"
    )
    parser.add_argument("--pg-port", type=int, default=None, help="for 'up': PostgreSQL port (default: free)")
    parser.add_argument("--mongo-port", type=int, default=None, help="for 'up': MongoDB port (default: free)")
    args = parser.parse_args(argv)
    directory: Path = args.dir.resolve()
    try:
        if args.command == "up":
            return cmd_up(directory, args.pg_port, args.mongo_port)
        if args.command == "down":
            return cmd_down(directory)
        if args.command == "env":
            return cmd_env(directory)
        return cmd_status(directory)
    except (ServiceUnavailable, ServiceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
