"""The plan's lease: who holds it, read without taking it (status tells an interrupted phase)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from migrator.errors import RunInUse
from migrator.state.lease import Lease, is_held, lease_path


def _describe(state: Path, plan: str, **holder: object) -> None:
    lease_path(state, plan).write_text(json.dumps(holder))


def test_no_lease_file_is_not_held(tmp_path: Path) -> None:
    assert is_held(tmp_path / "state.db", "shop") is False


def test_a_lease_taken_here_is_held_and_refuses_another(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    lease = Lease.take(state, "shop", "run")
    try:
        assert is_held(state, "shop") is True
        with pytest.raises(RunInUse):
            Lease.take(state, "shop", "run")
    finally:
        lease.release()
    # Released, its description stays; this process lives on, so it reads as held: the safe side.
    assert is_held(state, "shop") is True
    Lease.take(state, "shop", "run").release()  # and it can be taken again


def test_a_holder_that_no_longer_exists_does_not_hold_it(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    _describe(state, "shop", pid=int(ended.stdout), host=socket.gethostname(), command="run", since="x")
    assert is_held(state, "shop") is False


def test_a_holder_on_another_host_or_undescribed_is_unknown(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    _describe(state, "shop", pid=1, host="not-" + socket.gethostname(), command="run", since="x")
    assert is_held(state, "shop") is None
    lease_path(state, "shop").write_text("")
    assert is_held(state, "shop") is None
