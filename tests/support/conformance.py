"""One conformance scenario's run (issue 15): its source (`SourceDb`, tests/support/sources.py),
its target database, its plan and state file, and `migrator run` through the API, bounded.

The `case` fixture (tests/integration/conformance/conftest.py) builds one per test and source
adapter. A scenario writes its plan's collections with `{table}` placeholders; `Case.plan` names
the tables as the source's plans name them (`public.t`, `db.t`), so that the scenario's text says
nothing about the dialect.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.cli_process import MigratorRun
from tests.support.docs import Migration
from tests.support.runs import ApiRun, streaming
from tests.support.sources import SourceDb

# A bound on each run and each wait for a process's event, so that a hang fails the test: not a
# speed expectation (the machine may be busy).
RUN_TIMEOUT_S = 300.0


@dataclass
class Case:
    source: SourceDb
    target: Migration  # its target side: client, documents (its source URL is not used)
    tmp_path: Path
    own_target: bool  # the suite's throwaway MongoDB-compatible server (not MIGRATOR_TEST_MONGO_URL's)
    _runs: list[ApiRun] = field(default_factory=list)
    _processes: list[MigratorRun] = field(default_factory=list)

    @property
    def state(self) -> Path:
        return self.target.state_path

    def plan(self, name: str, collections: str, tables: tuple[str, ...], phases: str = "") -> Path:
        """A plan `name` with `collections` (YAML, `{table}` for each of `tables`) and `phases`."""
        named = {t: self.source.table(t) for t in tables}
        text = (
            "version: 1\n"
            f"name: {name}\n"
            f"source: {{adapter: {self.source.adapter}, url: '{self.source.url}'}}\n"
            f"target: {{adapter: mongodb, url: '{self.target.mongo_url}', database: {self.target.database}}}\n"
            "collections:\n"
            + textwrap.indent(textwrap.dedent(collections).strip().format(**named) + "\n", "  ")
        )
        if phases:
            text += "phases:\n" + textwrap.indent(textwrap.dedent(phases).strip() + "\n", "  ")
        path = self.tmp_path / f"{name}.yaml"
        path.write_text(text)
        return path

    def start(self, plan: Path, until: str = "stopped") -> ApiRun:
        """`migrator run --until until` on a thread (stopped at teardown if still running)."""
        run = ApiRun(f"conformance-{until}", plan, until, self.state, {}, timeout=RUN_TIMEOUT_S)
        self._runs.append(run)
        return run

    def follow(self, plan: Path) -> ApiRun:
        """`migrator run` following changes on a thread, returned once its stream is open."""
        return streaming(self.start(plan), RUN_TIMEOUT_S)

    def run(self, plan: Path, until: str = "caught-up") -> ApiRun:
        """`migrator run --until until` to its end, bounded: its outcome and events."""
        run = self.start(plan, until)
        run.join()
        return run

    def process(self, plan: Path, until: str | None = None) -> MigratorRun:
        """The installed `migrator run` in a process of its own (killed at teardown if running)."""
        args = ["run", str(plan), "--state", str(self.state), *(["--until", until] if until else [])]
        env = {k: v for k, v in os.environ.items() if k != "MIGRATOR_STATE"}
        process = MigratorRun(args, env, self.tmp_path, RUN_TIMEOUT_S)
        self._processes.append(process)
        return process

    def kill9(self, process: MigratorRun) -> None:
        """SIGKILL `process`. A kill inside a target transaction leaves it open, holding its
        documents until MongoDB aborts it (60 s): the next run ends it (killSessions) before its
        first batch, as the product does after any crash (docs/architecture.md, "Transactions a
        killed process left open"); nothing here helps it."""
        process.kill9()

    def close(self) -> None:
        for process in self._processes:
            process.kill_if_running()
        if self._processes and self.own_target:
            # Teardown only (the test is over): a test that failed after a kill, or left a process
            # running, has no next run to end its open transaction, which would keep dropDatabase
            # waiting: abort it, on the suite's own server only.
            self.target.client.admin.command({"killAllSessions": []})
        for run in self._runs:
            run.stop.set()
            run._thread.join(30)  # teardown: its error, if any, was the test's to see
        self.target.close()
