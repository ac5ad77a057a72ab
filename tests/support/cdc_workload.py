"""The set-up of the CDC workload tests (tests/integration/test_cdc_workload*.py): a source with
the demo schema and data (tests/support/demo.py) ready for the workload (tests/support/workload.py),
a plan copied from plans/demo.yaml, and `migrator run` processes started on it (`Setup.start`),
killed with SIGKILL (`Setup.kill9`).

The `workload_setup` fixture is registered for every test through `pytest_plugins` in
tests/conftest.py; a test calls it with a number of customers and a CDC mode to get its `Setup`.

In poll mode the processes load ADVANCE_HOOK (a sitecustomize.py on their PYTHONPATH): while the
gate file exists, the slot advance after a batch and its checkpoint are on the target waits, and
says so on stdout, so that a test can kill the process in that window (tests/support/cdc_kills.py).

Seeds: MIGRATOR_TEST_WORKLOAD_SEED (the workload) and MIGRATOR_TEST_KILL_SEED (the kill moments).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import psycopg
import pymongo
import pytest
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from psycopg import sql
from pymongo.database import Database
from ruamel.yaml import YAML

from tests.support.cli_process import MigratorRun
from tests.support.demo import demo_data
from tests.support.docs import run_slot
from tests.support.servers import ExternalServer, MongoServer
from tests.support.workload import prepare_source

ROOT = Path(__file__).resolve().parents[2]
DEMO_PLAN = ROOT / "plans" / "demo.yaml"
SEED = 20_250_301
WORKLOAD_SEED = int(os.environ.get("MIGRATOR_TEST_WORKLOAD_SEED", SEED))
KILL_SEED = int(os.environ.get("MIGRATOR_TEST_KILL_SEED", SEED + 1))
# Stream mode's database decodes with logical_decoding_work_mem at its minimum (as PostgreSQL's own
# streaming tests do): a large transaction is streamed at a size the suite can afford, and so is
# any workload transaction that writes large values.
STREAM_WORK_MEM = "64kB"
POLL_CHANGES = 2_000  # the poll variant's phases.cdc.poll_changes
EVENT_TIMEOUT = 90.0
CODEC: CodecOptions[dict[str, Any]] = CodecOptions(
    uuid_representation=UuidRepresentation.STANDARD, tz_aware=True, tzinfo=UTC
)


def write_plan(
    path: Path, name: str, database: str, *, parallel: int = 2, chunk_rows: int = 300, mode: str = "stream"
) -> None:
    yaml = YAML()  # round trip: the demo plan's comments and ${VAR} references are kept
    plan = yaml.load(DEMO_PLAN.read_text(encoding="utf-8"))
    plan.insert(1, "name", name)
    plan["target"]["database"] = database
    plan["phases"]["snapshot"] = {"parallel": parallel, "chunk_rows": chunk_rows}
    plan["phases"]["cdc"] = {"heartbeat_interval": "1s", "max_lag": "1s"}
    if mode == "poll":
        plan["phases"]["cdc"].update(mode="poll", poll_changes=POLL_CHANGES)
    with path.open("w", encoding="utf-8") as f:
        yaml.dump(plan, f)


# sitecustomize.py of the poll variant's `migrator run` processes (on their PYTHONPATH).
ADVANCE_HOOK = r'''"""Test hook of tests/support/cdc_workload.py. While the gate file exists, a
PollingStream's slot advance to a position at or past the one the file names (empty: any) waits
until the file is removed or the process killed: by then the batch and its checkpoint are on the
target. A JSON line on stdout names the position held."""

import json
import os
import sys
import time

_GATE = os.environ.get("MIGRATOR_TEST_ADVANCE_GATE")

if _GATE:
    from migrator.adapters.postgres import replication
    from migrator.adapters.postgres.lsn import Lsn

    _acknowledge = replication.PollingStream.acknowledge

    def _threshold():
        try:
            with open(_GATE, encoding="utf-8") as f:
                return Lsn.parse(f.read().strip() or "0/0").value
        except FileNotFoundError:
            return None

    def acknowledge(self, lsn):
        threshold = _threshold()
        if threshold is not None and lsn >= threshold:
            sys.stdout.write(json.dumps({"event": "test.advance_held", "position": str(Lsn(lsn))}) + "\n")
            sys.stdout.flush()
            while os.path.exists(_GATE):
                time.sleep(0.05)
        _acknowledge(self, lsn)

    replication.PollingStream.acknowledge = acknowledge
'''


@dataclass
class Setup:
    pg_url: str
    target: Database[dict[str, Any]]
    plan: Path
    state: Path
    name: str
    env: dict[str, str]
    own_server: bool  # the test suite's throwaway MongoDB-compatible server, used by nobody else now
    gate: Path | None = None  # poll mode: the gate file of ADVANCE_HOOK
    processes: list[MigratorRun] = field(default_factory=list)

    def kill9(self, process: MigratorRun) -> None:
        """SIGKILL `process`. A kill inside a target transaction leaves it open, holding the documents
        it wrote, until MongoDB aborts it after transactionLifetimeLimitSeconds (60 s): the next
        process ends it (killSessions with the session ids the killed one recorded) before its first
        batch, so that it does not wait a minute (docs/architecture.md, "Transactions a killed
        process left open"). The test does nothing to help it."""
        process.kill9()

    def start(self, until: str | None = None) -> MigratorRun:
        args = ["run", str(self.plan), "--state", str(self.state)]
        if until is not None:
            args += ["--until", until]
        process = MigratorRun(args, self.env, self.plan.parent, EVENT_TIMEOUT)
        self.processes.append(process)
        return process

    def slot(self) -> tuple[str, bool] | None:
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT confirmed_flush_lsn::text, active FROM pg_replication_slots WHERE slot_name = %s",
                (run_slot(self.state, self.name),),
            ).fetchone()
        return None if row is None else (str(row[0]), bool(row[1]))

    def slot_stats(self) -> dict[str, int]:
        """pg_stat_replication_slots: what logical decoding did for the slot (streamed, spilled)."""
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT stream_txns, stream_count, spill_txns, total_txns FROM pg_stat_replication_slots"
                " WHERE slot_name = %s",
                (run_slot(self.state, self.name),),
            ).fetchone()
        keys = ("stream_txns", "stream_count", "spill_txns", "total_txns")
        return dict(zip(keys, (int(v or 0) for v in row), strict=True)) if row else {}


@pytest.fixture
def workload_setup(
    pg_url: str,
    mongo_url: str,
    mongo_db_name: str,
    mongo_server: MongoServer | ExternalServer,
    tmp_path: Path,
    tmp_state_path: Path,
) -> Iterator[Any]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        mongo_url, serverSelectionTimeoutMS=10_000
    )
    made: list[Setup] = []

    def make(customers: int, mode: str = "stream") -> Setup:
        demo_data.load_demo(pg_url, customers=customers, seed=SEED)
        prepare_source(pg_url)
        if mode == "stream":
            with psycopg.connect(pg_url, autocommit=True) as conn:
                database = conn.info.dbname
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET logical_decoding_work_mem = {}").format(
                        sql.Identifier(database), sql.Literal(STREAM_WORK_MEM)
                    )
                )
        name = f"cdcwl-{uuid.uuid4().hex[:10]}"
        plan = tmp_path / f"{name}.yaml"
        write_plan(plan, name, mongo_db_name, mode=mode)
        env = {k: v for k, v in os.environ.items() if k != "MIGRATOR_STATE"}
        env.update(MIGRATOR_SOURCE_URL=pg_url, MIGRATOR_TARGET_URL=mongo_url)
        gate = None
        if mode == "poll":
            hook = tmp_path / "hook"
            hook.mkdir()
            (hook / "sitecustomize.py").write_text(ADVANCE_HOOK, encoding="utf-8")
            gate = tmp_path / "advance.gate"
            path = [str(hook), *filter(None, [env.get("PYTHONPATH")])]
            env.update(PYTHONPATH=os.pathsep.join(path), MIGRATOR_TEST_ADVANCE_GATE=str(gate))
        s = Setup(
            pg_url=pg_url,
            target=client.get_database(mongo_db_name, codec_options=CODEC),
            plan=plan,
            state=tmp_state_path,
            name=name,
            env=env,
            own_server=not isinstance(mongo_server, ExternalServer),
            gate=gate,
        )
        made.append(s)
        return s

    try:
        yield make
    finally:
        for s in made:
            for process in s.processes:
                process.kill_if_running()
        if made and not isinstance(mongo_server, ExternalServer):
            # Teardown only (the test is over: this helps no run of it). A test that failed after a
            # kill, or left a process running, has no next run to end its open target transaction.
            # MongoDB aborts it after transactionLifetimeLimitSeconds (60 s) and dropDatabase waits
            # for that; SecantusDB reaps only when another transaction statement comes, and its
            # dropDatabase spins on the open transaction's document forever. killAllSessions (a
            # MongoDB command) aborts it now; only on the test's own server, which no other test
            # uses at this moment.
            client.admin.command({"killAllSessions": []})
        client.close()
