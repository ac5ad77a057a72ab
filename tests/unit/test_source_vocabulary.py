"""What users read about a source's change capture is in that source's words
(migrator/adapters/vocabulary.py): run over the memory adapter, whose words are its own ("memory
slot", "table set", "change log"), the status view, the progress lines, the rollback steps and
the snapshot's undo list say them and none of PostgreSQL's. The expected texts are written out
here, not taken from the adapter."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from migrator import api
from migrator.adapters.base import SourceVocabulary
from migrator.adapters.memory import MemorySource, MemoryTarget
from migrator.adapters.mysql import MysqlSource
from migrator.adapters.postgres import PostgresSource
from migrator.adapters.registry import SOURCES, vocabulary_for
from migrator.cli.progress import PlainLines
from migrator.cli.status import status_renderable
from migrator.engine.events import CdcProgress, Collector, EventBus, SlotCreated
from migrator.operations.dry_run import dry_run
from migrator.operations.rollback import Rollback
from migrator.operations.run import Runner
from migrator.operations.status import gather
from migrator.plan.names import publication_name, slot_name_pattern
from migrator.state import SQLiteStateStore
from tests.support.memory import MemoryMigration, items_table, memory_migration

POSTGRES_WORDS = ("WAL", "publication", "replication slot", "pg_")


@pytest.fixture
def mig(tmp_path: Path) -> Iterator[MemoryMigration]:
    yield from memory_migration(tmp_path)


def _texts(words: SourceVocabulary) -> list[str]:
    """Every text the vocabulary gives, filled in with sample names."""
    fields = [v for v in dataclasses.asdict(words).values() if isinstance(v, str)]
    return [
        *fields,
        words.capture("p"),
        words.named_stream("s"),
        words.drop_stream_hint("s"),
        words.drop_capture_hint("p"),
        words.changes_of("p"),
        words.to_go(10),
        words.to_go(None),
        *words.teardown("s", "p"),
    ]


def test_every_source_adapter_has_its_words() -> None:
    assert set(SOURCES) == {"postgres", "mysql", "memory"}
    assert vocabulary_for("postgres") is PostgresSource.vocabulary
    assert vocabulary_for("mysql") is MysqlSource.vocabulary
    assert vocabulary_for("memory") is MemorySource.vocabulary


def test_postgres_says_slot_publication_and_wal() -> None:
    words = PostgresSource.vocabulary
    assert (words.change_log, words.stream, words.publication) == ("WAL", "replication slot", "publication")
    assert words.teardown("s", "p") == ("drop replication slot s", "drop publication p")
    assert words.drop_stream_hint("s") == "SELECT pg_drop_replication_slot('s');"
    assert words.drop_capture_hint("p") == "DROP PUBLICATION p;"
    assert words.to_go(2048) == "2,048 bytes of WAL to go"


def test_mysql_says_binlog_and_never_a_postgres_word() -> None:
    words = MysqlSource.vocabulary
    assert (words.change_log, words.stream, words.publication) == ("binlog", "binlog stream", None)
    assert words.teardown("s", "p") == (
        "drop binlog stream s",
        "drop tables `_migrator_markers` and `_migrator_slots`",
    )
    assert words.drop_stream_hint("s") == "DELETE FROM `_migrator_slots` WHERE name = 's';"
    assert words.changes_of("p") == "changes of the mapped tables"
    for text in _texts(words):
        assert not any(w in text for w in POSTGRES_WORDS), text


def _plain(events: list[object]) -> str:
    out = io.StringIO()
    lines = PlainLines(Console(file=out, width=400, color_system=None))
    for event in events:
        lines.emit(event)  # type: ignore[arg-type]
    return out.getvalue()


def test_progress_lines_of_a_memory_run_use_its_words(mig: MemoryMigration) -> None:
    items_table(mig.db, 12)
    seen = Collector()
    source, target = MemorySource(mig.url), MemoryTarget(mig.url, mig.plan.target.database)
    with SQLiteStateStore(mig.state) as store:
        Runner(mig.plan, store, EventBus(seen), source, target).run("caught-up")
        slot = store.runs(mig.plan.name)[-1].slot
    created = [e for e in seen.events if isinstance(e, SlotCreated)]
    progress = [e for e in seen.events if isinstance(e, CdcProgress)]
    assert created and progress
    text = _plain([*created, progress[-1]])
    publication = publication_name(mig.plan.name)
    assert f"created table set {publication}; created memory slot {slot} at m/" in text, text
    assert f"memory slot retains {progress[-1].retained_wal_bytes:,} bytes of change log" in text, text
    assert not any(w in text for w in POSTGRES_WORDS), text


def test_status_of_a_memory_run_uses_its_words(mig: MemoryMigration) -> None:
    items_table(mig.db, 12)
    mig.run("caught-up")
    report = gather(mig.plan, mig.state)
    assert report.cdc is not None
    out = io.StringIO()
    Console(file=out, width=400, color_system=None).print(status_renderable(report))
    text = out.getvalue()
    assert f"memory slot {report.cdc.slot.name} idle (no `migrator run` streams it); retains " in text, text
    assert "of change log (max_retained_wal" in text, text
    assert not any(w in text for w in POSTGRES_WORDS), text
    # The --json field names are a contract: they keep their names whatever the source.
    data = report.to_dict()
    assert "retained_wal_bytes" in data["cdc"]["slot"]
    assert (data["cdc"]["stream"], data["cdc"]["change_log"]) == ("memory slot", "change log")


def test_rollback_steps_of_a_memory_run_use_its_words(mig: MemoryMigration) -> None:
    items_table(mig.db, 12)
    mig.run("snapshot")
    publication = publication_name(mig.plan.name)
    source, target = MemorySource(mig.url), MemoryTarget(mig.url, mig.plan.target.database)
    with SQLiteStateStore(mig.state, create=False) as store:
        rollback = Rollback(mig.plan, store, EventBus(), source, target)
        listed = {s.name: s.description for s in rollback.steps()}
        slot = rollback.slot
    assert listed["slot"] == f"drop memory slot {slot}"
    assert listed["publication"] == f"drop table set {publication} (created by the run)"
    assert not any(w in " ".join(listed.values()) for w in POSTGRES_WORDS), listed
    result = mig.rollback()
    outcomes = {s["name"]: s["outcome"] for s in result.steps}
    assert outcomes["slot"] == "dropped" and outcomes["publication"] == "dropped"
    assert not mig.db.slots and not mig.db.publications


def test_dry_run_of_a_memory_plan_lists_its_words(mig: MemoryMigration) -> None:
    items_table(mig.db, 12)
    source, target = MemorySource(mig.url), MemoryTarget(mig.url, mig.plan.target.database)
    report = dry_run(mig.plan, source, target, sample_rows=5)
    said = {a.description for actions in report.phases.values() for a in actions}
    publication, slot = publication_name(mig.plan.name), slot_name_pattern(mig.plan.name)
    assert f"create table set {publication} of public.items (unless it exists)" in said, said
    assert f"create memory slot {slot} at the current position, exporting a snapshot" in said, said
    assert f"move memory slot {slot} to the applied position" in said, said
    assert any(
        d.startswith(f"stream changes of table set {publication} from memory slot {slot}") for d in said
    )
    assert any("(a marker transaction in the change log, prefix " in d for d in said), said
    assert not any(w in " ".join(said) for w in POSTGRES_WORDS), said


MYSQL_PLAN = """\
version: 1
source: {adapter: mysql, url: "mysql://app:pw@db.internal:3306/shop"}
target: {adapter: mongodb, url: "mongodb://mongo.internal:27017/?replicaSet=rs0", database: shop}
collections:
  - {name: customers, from: shop.customers, key: id}
"""


def test_offline_runbook_of_a_mysql_plan_lists_binlog_prerequisites_and_words(tmp_path: Path) -> None:
    plan = tmp_path / "shop.yaml"
    plan.write_text(MYSQL_PLAN)
    text = api.runbook(plan, offline=True, env={})
    for line in (
        "the source MySQL/MariaDB answers at the plan's URL (`source.reachable`)",
        "binlog_format = ROW (changes logged as rows) (`source.binlog_format`)",
        "`shop.customers` has a primary key (a change is applied to its document by it) (`source.primary_key`)",
        "| binlog stream | `migrator_shop_",
        "| change capture | tables `_migrator_markers` and `_migrator_slots` |",
        "Estimated rows are MySQL's statistics (`information_schema.TABLES.TABLE_ROWS`)",
        "the binlog stream retains binlog from now on",
        "| retained binlog | `migrator_retained_wal_bytes`; status `cdc.slot.retained_wal_bytes` |",
    ):
        assert line in text, line
    # Field and metric names are a contract (lower case); no PostgreSQL noun is said.
    for word in ("WAL", "publication", "replication slot", "pg_", "wal_level", "REPLICA IDENTITY"):
        assert word not in text, word
