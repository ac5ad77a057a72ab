"""A migration over the memory adapters (migrator/adapters/memory): one shared MemoryDatabase as
source and target, a real plan and a real SQLiteStateStore, each `run`/`rollback` a new
"process" (its own store, adapters and Runner), so that a Crash leaves only what was committed.

Plan files name `adapter: postgres`/`mongodb` (plan/models.py accepts no other adapter yet); the
loaded plan's endpoints are then pointed at the memory adapters, unvalidated.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from migrator.adapters.memory import MemoryDatabase, MemorySource, MemoryTarget, register, unregister
from migrator.engine.events import EventBus
from migrator.operations.cutover import Switchover, SwitchoverOutcome
from migrator.operations.finish import Finish, FinishResult
from migrator.operations.rollback import Rollback, RollbackResult
from migrator.operations.run import Runner, RunOutcome, Until
from migrator.plan import Plan, load_plan
from migrator.plan.models import Source, Target
from migrator.state import SQLiteStateStore

_names = itertools.count()

PLAN = """\
version: 1
source: {{adapter: postgres, url: "postgresql://u@localhost/x"}}
target: {{adapter: mongodb, url: "mongodb://localhost/", database: shop}}
collections:
  - name: items
    from: public.items
    key: id
phases:
  snapshot: {{parallel: 1, chunk_rows: {chunk_rows}}}
  cdc: {{batch_changes: {batch_changes}, heartbeat_interval: 1}}
  cutover: {{reverse_sync: false, retry_pause: 0, switch: {switch}}}
"""


@dataclass
class MemoryMigration:
    db: MemoryDatabase
    plan: Plan
    state: Path

    def run(self, until: Until = "snapshot") -> RunOutcome:
        """One `migrator run` in a new "process"."""
        source, target = MemorySource(self.url), MemoryTarget(self.url, self.plan.target.database)
        with SQLiteStateStore(self.state) as store:
            return Runner(self.plan, store, EventBus(), source, target).run(until)

    def cutover(self) -> SwitchoverOutcome:
        """One `migrator cutover` (one-way: the memory target has no change stream for reverse
        sync) in a new "process"; returns once the writes the fence held reached the target."""
        source, target = MemorySource(self.url), MemoryTarget(self.url, self.plan.target.database)
        with SQLiteStateStore(self.state, create=False) as store:
            runner = Runner(self.plan, store, EventBus(), source, target, command="migrator cutover")
            return Switchover(runner).run(follow=False)

    def rollback(self, *, force: bool = False) -> RollbackResult:
        """One `migrator rollback` (to the start) in a new "process"."""
        source, target = MemorySource(self.url), MemoryTarget(self.url, self.plan.target.database)
        with SQLiteStateStore(self.state, create=False) as store:
            return Rollback(self.plan, store, EventBus(), source, target).run(force=force)

    def finish(self) -> FinishResult:
        """One `migrator finish` in a new "process"."""
        source, target = MemorySource(self.url), MemoryTarget(self.url, self.plan.target.database)
        with SQLiteStateStore(self.state, create=False) as store:
            return Finish(self.plan, store, EventBus(), source, target).run()

    def store(self) -> SQLiteStateStore:
        return SQLiteStateStore(self.state, create=False)

    @property
    def url(self) -> str:
        return f"memory://{self.db.name}"


def items_table(db: MemoryDatabase, rows: int) -> None:
    db.create_table("public.items", {"id": "integer", "name": "text", "qty": "integer"}, ["id"])
    db.load("public.items", [{"id": i, "name": f"item {i}", "qty": i * 10} for i in range(1, rows + 1)])


def memory_migration(
    tmp_path: Path, *, chunk_rows: int = 5, batch_changes: int = 1000, switch: str = "file"
) -> Iterator[MemoryMigration]:
    """`switch`: 'file' (the file tmp_path/primary) or 'mongodb' (a routing document in the
    memory target)."""
    db = register(MemoryDatabase(f"mem{next(_names)}"))
    plan_file = tmp_path / "items.yaml"
    plan_file.write_text(
        PLAN.format(
            chunk_rows=chunk_rows,
            batch_changes=batch_changes,
            switch=f'{{kind: file, path: "{tmp_path / "primary"}"}}'
            if switch == "file"
            else "{kind: mongodb}",
        )
    )
    plan = load_plan(plan_file)
    url = SecretStr(f"memory://{db.name}")
    plan = plan.model_copy(
        update={
            "source": Source.model_construct(adapter="memory", url=url),
            "target": Target.model_construct(adapter="memory", url=url, database=plan.target.database),
        }
    )
    try:
        yield MemoryMigration(db, plan, tmp_path / "state.db")
    finally:
        unregister(db.name)
