"""One command's session: the plan, its state store, its event sinks and both databases, each
opened once, in the order every command has always opened them, and closed together.

api.py's functions open a Session and call the command's code over it (as alembic's command.py
builds a ScriptDirectory and an EnvironmentContext, then calls the script). What fails fails as
before: a bad plan when the session opens (PlanError), an adapter that cannot be named or a URL
that cannot be parsed when the databases are asked for, an unreachable database on first use,
a missing run when the command looks for it (docs/architecture.md, "State store").
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Self

from migrator.adapters.base import SourceAdapter, TargetAdapter
from migrator.adapters.registry import source_for, target_for
from migrator.engine.events import EventBus, EventSink
from migrator.engine.retry import retrying
from migrator.operations.run import Runner
from migrator.plan import Plan, load_plan
from migrator.state import SQLiteStateStore, resolve_state_path


def open_state_store(
    path: str | os.PathLike[str], *, create: bool = True, events: EventBus | None = None
) -> SQLiteStateStore:
    """The state store at `path`, its opening retried while another process holds the file
    locked (`migrator status` or `verify` while a run writes); `events` hear of each retry.

    Each attempt waits for the lock as long as the store's busy timeout; a file still locked
    after it is a TransientError (state/sqlite.py), retried for engine/retry.py's generous
    budget rather than failing the command."""
    return retrying(
        lambda: SQLiteStateStore(path, create=create),
        what=f"opening state file {path}",
        events=events,
    )


class Session:
    """Opened with the plan file; `connect()` and `open_store()` open the rest on demand, once.

    Closing (leaving the `with` block) closes what was opened, last opened first: the same
    order as the nested `with` blocks it replaces."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        env: Mapping[str, str] | None = None,
        state: str | os.PathLike[str] | None = None,
        sinks: Sequence[EventSink] = (),
    ) -> None:
        self.path = path
        self.plan: Plan = load_plan(Path(path), env=env)
        self.events = EventBus(*sinks)
        self._state = state
        self._stack = ExitStack()
        self._databases: tuple[SourceAdapter, TargetAdapter] | None = None
        self._store: SQLiteStateStore | None = None

    @cached_property
    def state_path(self) -> Path:
        """`--state`, else $MIGRATOR_STATE, else the default beside the plan file."""
        return resolve_state_path(self._state, self.plan.name, plan_file=self.path)

    def connect(self) -> tuple[SourceAdapter, TargetAdapter]:
        """The plan's source and target adapters; they connect on first use."""
        if self._databases is None:
            self._databases = self._adapters()
            for adapter in self._databases:
                self._stack.callback(_close, adapter)
        return self._databases

    def open_store(self, *, create: bool = True) -> SQLiteStateStore:
        """The state store. `create=False` (commands that find a run rather than begin one):
        a missing file is not created and reads as empty (state/sqlite.py). A file another
        process holds locked is waited for (`open_state_store`)."""
        if self._store is None:
            store = open_state_store(self.state_path, create=create, events=self.events)
            self._store = self._stack.enter_context(store)
        return self._store

    def open_run(self) -> tuple[SQLiteStateStore, SourceAdapter, TargetAdapter]:
        """For the commands that work on an existing run (verify, cutover, rollback): the
        adapters are built first (a URL that cannot be parsed is reported before anything else),
        then the store is opened without creating it, and it is closed after the databases."""
        if self._store is not None or self._databases is not None:
            raise RuntimeError("open_run() opens the store and the databases together, first")
        databases = self._adapters()
        store = self.open_store(create=False)
        self._databases = databases
        for adapter in databases:
            self._stack.callback(_close, adapter)
        return store, *databases

    def runner(self, *, command: str = "migrator run", stop: threading.Event | None = None) -> Runner:
        """A Runner over the session's plan, store, events and databases; `command` names this
        process to another one that finds the run in use; setting `stop` stops it (Runner.stop)."""
        source, target = self.connect()
        runner = Runner(self.plan, self.open_store(), self.events, source, target, command=command)
        if stop is not None:
            runner.stop_event = stop
        return runner

    def _adapters(self) -> tuple[SourceAdapter, TargetAdapter]:
        plan = self.plan
        source = source_for(plan.source.adapter, plan.source.url.get_secret_value(), **plan.source_options)
        target = target_for(plan.target.adapter, plan.target.url.get_secret_value(), plan.target.database)
        return source, target

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.__exit__(exc_type, exc, tb)


def _close(adapter: SourceAdapter | TargetAdapter) -> None:
    adapter.close()  # looked up when the session closes, not when the adapter was opened
