"""`migrator run --dry-run`: what a run would do, shown from real data, with nothing written.

Everything goes through a recording executor (engine/executor.py): the reads it needs run
(preflight inspection; a sample of source rows per collection, read in a READ ONLY
transaction and mapped to documents exactly as the snapshot maps them), and every phase's
actions are recorded, never executed. No state store is opened, no run begun, no slot,
publication or collection created.

From the sample it reports example target documents, key collisions (two source rows whose
_ids the target would hold as one: MongoDB's _id index compares numbers by value and dates
to the millisecond, so a timestamp key that differs in microseconds collides), and an
estimate of each phase's duration from the measured read-and-map throughput.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from migrator.adapters.base import SourceAdapter, TableInfo, TargetAdapter
from migrator.engine.context import PlanInputs, PlanView
from migrator.engine.executor import Action, Entry, Executor, Step
from migrator.errors import PreflightFailed
from migrator.mapping import compare
from migrator.mapping.assemble import Assembler
from migrator.mapping.lookup import json_id
from migrator.mapping.spec import CollectionMapping
from migrator.operations import finish
from migrator.phases import cdc, cutover, snapshot, verify
from migrator.phases.preflight import PreflightReport, run_preflight
from migrator.plan.models import Plan

# Root rows sampled per collection (each with its embedded rows), and documents shown of them.
SAMPLE_ROWS = 1_000
EXAMPLES = 3
# Collisions listed per collection (all are counted).
MAX_COLLISIONS = 20


# Each phase's steps (the ones its `run` performs: docs/architecture.md, "Executable actions"), in
# the order a migration runs them, and the command that runs it.
PHASES: tuple[tuple[str, Callable[[PlanView], list[Step]], str], ...] = (
    (snapshot.PHASE, snapshot.steps, "migrator run"),
    (cdc.PHASE, cdc.steps, "migrator run"),
    (
        verify.PHASE,
        lambda view: verify.steps(view.plan, view.collections, view.vocabulary.marker),
        "migrator verify",
    ),
    (cutover.PHASE, cutover.steps, "migrator cutover"),
    (finish.PHASE, lambda view: finish.planned_steps(view.plan, view.vocabulary), "migrator finish"),
)


@dataclass(frozen=True)
class Collision:
    """Source rows of one collection whose documents would share one _id in the target."""

    collection: str
    id: Any  # the _id they share, as extended JSON
    source_keys: tuple[tuple[str, ...], ...]  # the rows' keys, as PostgreSQL's text

    def to_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "id": self.id,
            "source_keys": [list(k) for k in self.source_keys],
        }


@dataclass
class CollectionSample:
    """What reading and mapping the first rows of one collection showed."""

    collection: str
    table: str
    requested: int  # root rows asked for
    documents: int = 0  # root rows read (one document each)
    rows: int = 0  # root and embedded rows read
    seconds: float = 0.0  # reading, mapping and BSON-encoding them, on one connection
    estimated_rows: int = 0  # the collection's rows, all tables (planner statistics, at least the sample)
    average_bytes: int = 0
    largest_bytes: int = 0
    examples: list[Any] = field(default_factory=list)  # documents as extended JSON
    collisions: list[Collision] = field(default_factory=list)
    collision_count: int = 0

    @property
    def rows_per_second(self) -> float | None:
        return self.rows / self.seconds if self.rows and self.seconds > 0 else None

    @property
    def estimated_seconds(self) -> float | None:
        """Reading and mapping the whole collection at the sample's pace."""
        if self.documents < self.requested:
            return self.seconds  # the sample was the whole collection
        rate = self.rows_per_second
        return None if rate is None else self.estimated_rows / rate

    def to_dict(self) -> dict[str, Any]:
        rate = self.rows_per_second
        estimated = self.estimated_seconds
        return {
            "collection": self.collection,
            "table": self.table,
            "requested": self.requested,
            "documents": self.documents,
            "rows": self.rows,
            "seconds": round(self.seconds, 4),
            "rows_per_second": None if rate is None else round(rate),
            "estimated_rows": self.estimated_rows,
            "estimated_seconds": None if estimated is None else round(estimated, 1),
            "average_bytes": self.average_bytes,
            "largest_bytes": self.largest_bytes,
            "collisions": self.collision_count,
            "collision_examples": [c.to_dict() for c in self.collisions],
            "examples": self.examples,
        }


@dataclass(frozen=True)
class PhaseEstimate:
    phase: str
    seconds: float | None  # None: no end of its own, or nothing measured
    basis: str  # how it was estimated

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "seconds": None if self.seconds is None else round(self.seconds, 1),
            "basis": self.basis,
        }


@dataclass
class DryRunReport:
    plan: Plan
    preflight: PreflightReport
    phases: dict[str, list[Action]]
    samples: list[CollectionSample]
    estimates: list[PhaseEstimate]
    journal: list[Entry]

    @property
    def ready(self) -> bool:
        """Whether `migrator run` would start (preflight passes)."""
        return self.preflight.ready

    @property
    def collisions(self) -> int:
        return sum(s.collision_count for s in self.samples)

    def to_dict(self) -> dict[str, Any]:
        commands = {name: command for name, _, command in PHASES}
        return {
            "plan": self.plan.name,
            "dry_run": True,
            "ready": self.ready,
            "source": self.preflight.source.server.endpoint if self.preflight.source else None,
            "target": self.preflight.target.endpoint if self.preflight.target else None,
            "target_database": self.plan.target.database,
            "findings": [f.to_dict() for f in self.preflight.findings if f.severity.value != "ok"],
            "reads": [e.action.to_dict() for e in self.journal if e.performed],
            "phases": [
                {
                    "phase": name,
                    "command": commands.get(name, ""),
                    "actions": [{"description": a.description, "writes": a.writes} for a in actions],
                }
                for name, actions in self.phases.items()
            ],
            "samples": [s.to_dict() for s in self.samples],
            "collisions": self.collisions,
            "estimates": [e.to_dict() for e in self.estimates],
        }


def dry_run(
    plan: Plan,
    source: SourceAdapter,
    target: TargetAdapter,
    *,
    sample_rows: int = SAMPLE_ROWS,
    examples: int = EXAMPLES,
) -> DryRunReport:
    """Inspect, sample and plan every phase through a recording executor; write nothing."""
    executor = Executor.recording()
    report = executor.read(
        Action(
            "preflight",
            "inspect the source (server settings, tables, keys) and the target (collections)",
            "none",
        ),
        lambda: run_preflight(plan, source, target, scan_data=False),
    )
    if report.source is None or not report.collections:
        raise PreflightFailed(
            [f"{f.check} {f.subject}: {f.message}" for f in report.failures], unreached=bool(report.unreached)
        )
    view = PlanInputs(
        plan, report.source, report.collections, source.vocabulary, report.target_schema, report.post_copy
    )
    phases: dict[str, list[Action]] = {}
    for name, planned, _ in PHASES:
        executor.perform_steps(planned(view))  # listed without effects: recorded, none runs
        phases[name] = executor.recorded(name)
    tables = report.source.tables
    samples = []
    for mapping in report.collections:

        def read(mapping: CollectionMapping = mapping) -> CollectionSample:
            return _sample(source, target, mapping, tables[mapping.table], sample_rows, examples)

        sample = executor.read(
            Action(
                "dry-run",
                f"read the first {sample_rows:,} rows of {mapping.table} with their embedded rows in a READ ONLY "
                f"transaction, and map them to {mapping.name} documents",
                "none",
            ),
            read,
        )
        sample.estimated_rows = max(
            sample.rows, sum(tables[t].estimated_rows for t in mapping.tables() if t in tables)
        )
        samples.append(sample)
    return DryRunReport(plan, report, phases, samples, estimate(plan, samples), executor.journal)


def _sample(
    source: SourceAdapter,
    target: TargetAdapter,
    mapping: CollectionMapping,
    table: TableInfo,
    limit: int,
    examples: int,
) -> CollectionSample:
    """Read the first `limit` root rows of `mapping` (with their embedded rows) as the snapshot
    reads a chunk, map and encode them, and time it."""
    result = CollectionSample(mapping.name, mapping.table, requested=limit)
    assembler = Assembler(mapping)
    key = mapping.document.key
    key_types = [str(column.type_name) for k in key if (column := table.column(k)) is not None]
    seen: dict[Hashable, tuple[str, ...]] = {}  # identity -> the first source key giving it
    grouped: dict[Hashable, list[tuple[str, ...]]] = {}
    first_id: dict[Hashable, Any] = {}  # identity -> the first _id giving it
    total_bytes = 0
    reader = source.range_reader()
    try:
        reader.begin()
        try:
            started = time.perf_counter()
            keys = reader.first_keys(mapping.table, key, limit)
            if keys:
                streams = reader.stream(assembler.reads(), mapping.table, key, key_types, None, keys[-1])
                for doc_id, document, used in assembler.documents(streams):
                    raw = target.encode_document(document, mapping.name)
                    result.documents += 1
                    result.rows += used
                    total_bytes += len(raw)
                    result.largest_bytes = max(result.largest_bytes, len(raw))
                    if len(result.examples) < examples:
                        result.examples.append(json_id(target.decode_document(raw)))
                    identity = target.id_identity(doc_id)
                    texts = _key_texts(source, doc_id, key)
                    if identity in seen:
                        grouped.setdefault(identity, [seen[identity]]).append(texts)
                    else:
                        seen[identity] = texts
                        first_id[identity] = doc_id
            result.seconds = time.perf_counter() - started
        finally:
            reader.end()
    finally:
        reader.close()
    result.average_bytes = total_bytes // result.documents if result.documents else 0
    result.collision_count = sum(len(rows) - 1 for rows in grouped.values())
    result.collisions = [
        Collision(
            mapping.name, json_id(compare.decode(compare.id_key(first_id[identity]))["_id"]), tuple(rows)
        )
        for identity, rows in list(grouped.items())[:MAX_COLLISIONS]
    ]
    return result


def _key_texts(source: SourceAdapter, doc_id: Any, key: tuple[str, ...]) -> tuple[str, ...]:
    if len(key) == 1:
        return (source.key_text(doc_id),)
    return tuple(source.key_text(doc_id[k]) for k in key)


def estimate(plan: Plan, samples: list[CollectionSample]) -> list[PhaseEstimate]:
    """Each phase's duration from the sample's measured pace (an estimate, and says how)."""
    measured = [s for s in samples if s.estimated_seconds is not None]
    rows = sum(s.estimated_rows for s in samples)
    sampled = sum(s.rows for s in samples)
    seconds: float | None = sum(s.estimated_seconds or 0.0 for s in measured) if measured else None
    pace = (
        f"{rows:,} estimated source rows at the pace measured by reading and mapping a sample of "
        f"{sampled:,} rows (the first {samples[0].requested if samples else 0:,} keys of each collection, "
        "one connection, BSON encoding included)"
    )
    snapshot_basis = (
        f"estimate: {pace}; target writes are not measured (a dry-run writes nothing) and may be the "
        "limit; mapping runs in one process, so it is not divided by phases.snapshot.parallel"
    )
    settings = plan.phases.verify
    share = settings.sample if settings.mode == "sample" else 1.0
    verify_seconds = None if seconds is None else seconds * share
    verify_basis = f"estimate: {pace}" + (
        f", times the sample share {settings.sample:g}" if settings.mode == "sample" else ""
    )
    verify_basis += "; reading the target's documents is not measured"
    freeze = plan.phases.cutover.max_write_freeze
    if plan.phases.cutover.switch is None:
        cutover_estimate = PhaseEstimate(
            cutover.PHASE, None, "none: without phases.cutover.switch, `migrator cutover` refuses"
        )
    else:
        cutover_estimate = PhaseEstimate(
            cutover.PHASE,
            None if verify_seconds is None else verify_seconds + freeze,
            f"estimate: the gate's verify pass (as above) plus a write freeze of at most "
            f"max_write_freeze {freeze:g} s per attempt",
        )
    return [
        PhaseEstimate(snapshot.PHASE, seconds, snapshot_basis),
        PhaseEstimate(
            cdc.PHASE,
            None,
            "no end of its own: follows changes until cutover; catching up after the snapshot depends on "
            "how much the source writes meanwhile, which a dry-run cannot measure",
        ),
        PhaseEstimate(verify.PHASE, verify_seconds, verify_basis),
        cutover_estimate,
        PhaseEstimate(
            finish.PHASE,
            None,
            "no estimate: a few statements on each side, run once the way back after cutover is no longer needed",
        ),
    ]
