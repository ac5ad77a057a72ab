"""The Session (migrator/operations/session.py) opens what a command needs once, in the order
the commands have always opened it, and fails as they always failed: no database is contacted
here (adapters connect on first use)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from migrator.errors import PlanError
from migrator.operations.session import Session
from tests.support.plans import OFFLINE_PLAN

PLAN = OFFLINE_PLAN


def _plan(tmp_path: Path) -> Path:
    path = tmp_path / "shop.yaml"
    path.write_text(PLAN)
    return path


def _record_closes(closed: list[str], **closers: Any) -> None:
    for name, thing in closers.items():

        def close(name: str = name, original: Callable[[], None] = thing.close) -> None:
            closed.append(name)
            original()

        thing.close = close


def test_a_bad_plan_fails_when_the_session_opens(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nname: shop\nsurprise: true\n")
    with pytest.raises(PlanError):
        Session(path)


def test_open_run_creates_no_state_file_and_closes_the_store_last(tmp_path: Path) -> None:
    state = tmp_path / "nowhere" / "shop.db"
    closed: list[str] = []
    with Session(_plan(tmp_path), state=state) as session:
        store, source, target = session.open_run()
        assert store.missing
        assert session.connect() == (source, target)  # opened once
        assert session.open_store() is store
        _record_closes(closed, store=store, source=source, target=target)
    assert closed == ["target", "source", "store"]  # as `with (store, source, target)`
    assert not state.exists() and not state.parent.exists()


def test_a_run_closes_its_store_before_the_databases(tmp_path: Path) -> None:
    state = tmp_path / "shop.db"
    closed: list[str] = []
    with Session(_plan(tmp_path), state=state) as session:
        source, target = session.connect()
        runner = session.runner()
        assert (runner.source, runner.target, runner.events) == (source, target, session.events)
        assert session.state_path == state and state.exists()
        _record_closes(closed, store=runner.store, source=source, target=target)
    assert closed == ["store", "target", "source"]  # the store's `with` was inside the databases'


def test_a_session_that_reads_only_the_plan_opens_nothing(tmp_path: Path) -> None:
    state = tmp_path / "shop.db"
    with Session(_plan(tmp_path), state=state) as session:  # as `status` and `throttle` use it
        assert session.plan.name == "shop"
        assert session.state_path == state
    assert not state.exists()
