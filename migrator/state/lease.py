"""Which process works on a plan's run in one state file now.

A command that changes a run (`migrator run`, `cutover`, `rollback`) holds the plan's lease for
as long as it works: an exclusive `flock` on a small file beside the state file, which the
kernel releases when the process ends, even by kill -9, so a crashed run never leaves a stale
lock. A second process (or a second command in the same process) that asks for the lease is
refused at once, naming the holder, before it reads or writes anything of the run: two
processes on one run would race over the same slot, chunks and checkpoints, and the loser used
to record the live run's phase as failed (docs/architecture.md, "One owner").

The lease covers one state file. Runs kept in different state files (another directory, another
host) are kept apart by the target's ownership record (adapters/mongodb/ownership.py).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrator.errors import RunInUse, StateDiskFull, StateError
from migrator.timestamps import now_text


@dataclass(frozen=True)
class Holder:
    """The process that holds a lease, as it described itself (None: it had not yet)."""

    pid: int | None
    host: str | None
    command: str | None
    since: str | None

    def describe(self) -> str:
        if self.pid is None:
            return "another migrator process (it has not described itself yet)"
        return f"`{self.command or 'migrator'}` (pid {self.pid} on {self.host or '?'}, since {self.since or '?'})"


def lease_path(state_path: str | os.PathLike[str], plan_name: str) -> Path:
    """The lock file of `plan_name`'s lease in the state file `state_path`."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", plan_name)
    return Path(f"{os.fspath(state_path)}.{safe}.lock")


def os_error(exc: OSError, doing: str, where: str | os.PathLike[str]) -> StateError:
    """A state file's OSError as an error an operator can act on (a full disk named as such)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        directory = Path(where).parent
        return StateDiskFull(
            f"the disk holding state file {where} is full: {doing} failed ({os.strerror(exc.errno)})",
            hint=f"free space on the filesystem of {directory} (df -h {directory}), then run the same "
            "command again: it resumes where it stopped",
        )
    return StateError(
        f"state file {where}: {doing} failed ({exc.strerror or exc})",
        hint="choose a writable location with --state PATH or MIGRATOR_STATE",
    )


class Lease:
    """An acquired lease; `release()` (or the end of the process) gives it up."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def take(cls, state_path: str | os.PathLike[str], plan_name: str, command: str) -> Lease:
        """Take `plan_name`'s lease in `state_path`, or raise RunInUse naming the holder."""
        path = lease_path(state_path, plan_name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise os_error(exc, f"creating the lock file {path.name}", state_path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunInUse(
                f"plan {plan_name} is in use: {holder.describe()} works on its run in state file "
                f"{os.fspath(state_path)}",
                hint="wait for it to finish, or stop it (Ctrl-C or SIGTERM: it checkpoints and exits), then run "
                "this command again",
            ) from None
        except OSError as exc:
            os.close(fd)
            raise os_error(exc, f"locking {path.name}", state_path) from None
        lease = cls(path, fd)
        lease._describe(command)
        return lease

    def _describe(self, command: str) -> None:
        assert self._fd is not None
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "since": now_text(),
        }
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, json.dumps(me).encode(), 0)
        except OSError:
            # Only the description of the holder is lost (a full disk): the lock itself is held,
            # and the state file's own next write reports the full disk.
            pass

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor releases the flock


def _read_holder(fd: int) -> Holder:
    try:
        data: Any = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    pid = data.get("pid")
    return Holder(
        pid=pid if isinstance(pid, int) else None,
        host=str(data["host"]) if data.get("host") else None,
        command=str(data["command"]) if data.get("command") else None,
        since=str(data["since"]) if data.get("since") else None,
    )


def is_held(state_path: str | os.PathLike[str], plan_name: str) -> bool | None:
    """Whether a process holds `plan_name`'s lease in `state_path` now, as far as this host can
    tell without taking it (taking the lock even for an instant would refuse a command starting
    then): False when the lease file is missing or names a process of this host that no longer
    exists (the kernel released its lock, by kill -9 too); None when the holder is on another
    host or never described itself. A reused pid reads as held: the safe side."""
    path = lease_path(state_path, plan_name)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False  # every command that takes the lease creates this file first
    except OSError:
        return None
    try:
        holder = _read_holder(fd)
    finally:
        os.close(fd)
    if holder.pid is None or holder.host != socket.gethostname():
        return None
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True
