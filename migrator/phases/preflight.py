"""Preflight: read-only checks that a plan can run against these two databases.

In gh-ost's words, the Inspector: it reads, never writes. Every failed check names
the object and the fix. `migrator plan` shows the report; `migrator run` refuses to
start where it holds a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from migrator.adapters.base import (
    CutoverNeeds,
    PostCopy,
    SourceAdapter,
    SourceInfo,
    TargetAdapter,
    TargetInfo,
)
from migrator.errors import MigratorError
from migrator.findings import Finding, Severity
from migrator.mapping.columns import columns_read
from migrator.mapping.post_copy import planned
from migrator.mapping.spec import CollectionMapping, Resolution, resolve, tables_of
from migrator.phases.table_target import (
    large_object_findings,
    partition_findings,
    sequence_findings,
    trigger_findings,
)
from migrator.plan.models import Plan

DECIMAL128_DIGITS = 34
# What the estimate assumes until the snapshot measures: insert_many on the test server
# runs at about 15k documents/s (DESIGN.md section 6); real MongoDB is faster.
ASSUMED_ROWS_PER_SECOND = 15_000


@dataclass
class PreflightReport:
    plan: Plan
    findings: list[Finding] = field(default_factory=list)
    source: SourceInfo | None = None
    target: TargetInfo | None = None
    collections: list[CollectionMapping] = field(default_factory=list)
    source_rows: int = 0
    documents: int = 0
    source_bytes: int = 0
    # The DDL `run` would execute on the target before the copy (none for MongoDB).
    target_schema: list[str] = field(default_factory=list)
    # What it would build after the copy (docs/architecture.md, "After the copy").
    post_copy: PostCopy = field(default_factory=PostCopy)
    # The errors that kept a database from being inspected (each also a `*.reachable` finding):
    # `migrator plan` exits with their code (3: cannot connect) rather than 1 (checks failed).
    unreached: list[MigratorError] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not any(f.severity is Severity.FAIL for f in self.findings)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.FAIL]

    @property
    def estimated_seconds(self) -> float:
        return self.source_rows / ASSUMED_ROWS_PER_SECOND

    def to_dict(self) -> dict[str, Any]:
        tables = self.source.tables if self.source else {}
        return {
            "plan": self.plan.name,
            "ready": self.ready,
            "source": self.source.server.endpoint if self.source else None,
            "target": self.target.endpoint if self.target else None,
            "findings": [f.to_dict() for f in self.findings],
            "target_schema": list(self.target_schema),
            "target_after_copy": [s.sql for s in self.post_copy.statements],
            "collections": [
                {
                    "name": c.name,
                    "tables": [
                        {
                            "table": t,
                            "estimated_rows": tables[t].estimated_rows if t in tables else None,
                            "total_bytes": tables[t].total_bytes if t in tables else None,
                        }
                        for t in c.tables()
                    ],
                    "estimated_documents": tables[c.table].estimated_rows if c.table in tables else None,
                    "shape": c.shape(),
                }
                for c in self.collections
            ],
            "estimate": {
                "source_rows": self.source_rows,
                "documents": self.documents,
                "source_bytes": self.source_bytes,
                "snapshot_seconds": round(self.estimated_seconds, 1),
                "assumed_rows_per_second": ASSUMED_ROWS_PER_SECOND,
            },
        }


class Preflight:
    """`scan_data` runs the checks that read whole tables (numeric digits, document sizes).
    `plan` runs them; `run` skips them because the snapshot enforces both limits itself,
    row by row, and a full scan before every resume would cost as much as a chunk of copy.

    Generic: what is particular to a database (a PostgreSQL server's settings, its schema
    features) the adapters check and report as findings; what the adapters can do at all, this
    reads from their Capabilities (docs/architecture.md, "Layers")."""

    def __init__(
        self, plan: Plan, source: SourceAdapter, target: TargetAdapter, *, scan_data: bool = True
    ) -> None:
        self.scan_data = scan_data
        self.plan = plan
        self.source = source
        self.target = target
        self.report = PreflightReport(plan)

    def add(self, check: str, severity: Severity, subject: str, message: str, fix: str | None = None) -> None:
        self.report.findings.append(Finding(check, severity, subject, message, fix))

    def run(self) -> PreflightReport:
        tables = [t for c in self.plan.collections for t in tables_of(c)]
        source = self._inspect_source(tables)
        if source is not None:
            self._check_capture()
            self._check_replica_lag()
            self.report.findings.extend(self.source.server_findings(source, self.plan.name))
            resolution = resolve(list(self.plan.collections), source, self.target.vocabulary)
            self.report.findings.extend(self._resolution_findings(resolution))
            self.report.collections = resolution.collections
            read = columns_read(resolution.collections)
            self.report.findings.extend(
                self.source.preflight_findings(
                    source,
                    resolution.collections,
                    read,
                    replace(cutover_needs(self.plan), own_types=self.target.capabilities.keeps_source_types),
                )
            )
            if not self.target.capabilities.keeps_source_types:
                self._check_precision(resolution)
            self._check_casts(resolution)
            self._plan_target_schema(resolution.collections)
            if self.target.capabilities.keeps_source_types:
                # Tables to tables: sequences to bring along, large objects that cannot come.
                margin = self.plan.phases.cutover.sequence_margin
                self.report.findings += sequence_findings(resolution.collections, margin)
                self.report.findings += large_object_findings(resolution.collections)
                self.report.findings += trigger_findings(resolution.collections, source)
                self.report.findings += partition_findings(resolution.collections, source)
                self._check_cutover_back()
            if resolution.ok and self.scan_data:
                self._check_document_sizes(resolution)
            self._estimate(source)
        self._check_switch_kind()
        self._check_target()
        return self.report

    def _resolution_findings(self, resolution: Resolution) -> list[Finding]:
        """The mapping's findings, less the BSON ones where the target keeps the source's types
        (a PostgreSQL target's timestamp key keeps its microseconds: docs/architecture.md,
        "Tables as collections")."""
        if not self.target.capabilities.keeps_source_types:
            return list(resolution.findings)
        return [f for f in resolution.findings if f.check != "mapping.key_precision"]

    def _check_switch_kind(self) -> None:
        """A switch of kind mongodb keeps its routing document in the target: refused where the
        target keeps none (a PostgreSQL target), with the switches that work there."""
        switch = self.plan.phases.cutover.switch
        if switch is None or switch.kind != "mongodb" or self.target.capabilities.routing_documents:
            return
        self.add(
            "target.cutover",
            Severity.FAIL,
            self.target.name,
            f"a cutover switch of kind mongodb (routing collection {switch.name}) needs a MongoDB target: "
            "this target keeps no routing document",
            "set phases.cutover.switch to {kind: postgres, name: <schema.table>} (a routing row in the source's "
            "database, which applications read), or {kind: file, path: ...}, or {kind: command, run: [...]}",
        )

    def _check_cutover_back(self) -> None:
        """A target that keeps the source's types hands its own values to reverse sync and
        rollback: a source of other types cannot take them back yet (docs/architecture.md,
        "Tables as collections"). Only a plan that cuts over (a switch set) is refused."""
        if self.plan.phases.cutover.switch is None or self.source.capabilities.reverse_from_own_types:
            return
        self.add(
            "target.cutover",
            Severity.FAIL,
            self.target.name,
            f"cutover from a {self.source.vocabulary.database} source into this target is not supported: "
            "reverse sync and rollback after cutover would write the target's own types back to the source",
            "cut over with a PostgreSQL or MySQL/MariaDB source or a MongoDB target (snapshot, CDC and verify into this "
            "target work without a cutover section)",
        )

    def _plan_target_schema(self, collections: list[CollectionMapping]) -> None:
        """The DDL the target would run before the copy (docs/architecture.md, "Tables as collections")."""
        try:
            self.report.target_schema = self.target.table_statements(collections)
            self.report.post_copy = planned(self.source, self.target, collections)
        except MigratorError as exc:
            self.add("target.schema", Severity.FAIL, self.target.name, exc.message, exc.hint)
            return
        try:
            self.report.findings += self.target.schema_findings(collections)
        except MigratorError as exc:
            self.report.unreached.append(exc)
            self.add("target.reachable", Severity.FAIL, self.target.name, exc.message, exc.hint)
        for obj, why in self.report.post_copy.skipped:
            kind = obj.kind.replace("_", " ")
            self.add(
                "target.after_copy",
                Severity.WARN,
                f"{obj.table}.{obj.name}",
                f"{kind} {obj.name} of {obj.table} is not built on the target: {why}",
                "copy what it reads (or the table it references) under the source's names, or build it on "
                "the target yourself after the snapshot",
            )

    # -- source -------------------------------------------------------------------------------------

    def _inspect_source(self, tables: list[str]) -> SourceInfo | None:
        try:
            info = self.source.inspect(tables)
        except MigratorError as exc:
            self.report.unreached.append(exc)
            self.add("source.reachable", Severity.FAIL, self.source.name, exc.message, exc.hint)
            return None
        self.report.source = info
        self.add("source.reachable", Severity.OK, self.source.name, self.source.describe(info))
        return info

    def _check_capture(self) -> None:
        """A migration follows changes after the snapshot: a source that cannot capture them
        cannot be migrated without downtime."""
        if not self.source.capabilities.change_capture:
            self.add(
                "source.change_capture",
                Severity.FAIL,
                self.source.name,
                "the source adapter cannot capture changes: the target would miss every write after the copy",
                "use a source adapter with change capture",
            )

    def _check_replica_lag(self) -> None:
        """Throttling on replica lag the source cannot read would never throttle: refused, not
        ignored (docs/architecture.md, "MySQL and MariaDB sources")."""
        lag = self.plan.phases.throttle.max_replica_lag
        if lag is None or self.source.capabilities.replica_lag:
            return
        self.add(
            "plan.throttle",
            Severity.FAIL,
            "phases.throttle.max_replica_lag",
            f"the {self.source.name} source cannot read its replicas' lag (a primary does not know how far "
            "they have applied): max_replica_lag would never throttle",
            "remove phases.throttle.max_replica_lag; throttle with phases.throttle.file (created while a "
            "replica lags, by the replica's own monitoring) or phases.throttle.max_active_sessions",
        )

    def _check_precision(self, resolution: Resolution) -> None:
        warned: set[str] = set()
        scanned: set[str] = set()
        for collection in resolution.collections:
            # Breadth first, the order these findings have always been listed in.
            for doc in (level.document for level in sorted(collection.levels, key=lambda v: v.depth)):
                for fld in doc.fields:
                    column, conv = fld.column, fld.conversion
                    subject = f"{doc.table}.{column.name}"
                    if conv.precision_warning and subject not in warned:
                        warned.add(subject)
                        self.add("mapping.precision", Severity.WARN, subject, conv.precision_warning)
                    numeric = (column.element_type or column.type_name) == "numeric"
                    # A table mapped twice (two collections, or embedded twice) is scanned once.
                    if numeric and subject not in scanned:
                        scanned.add(subject)
                        array = column.type_kind == "array"
                        self._check_numeric(subject, doc.table, column.name, column.numeric_precision, array)

    def _check_casts(self, resolution: Resolution) -> None:
        """The plan's `types` carry only some values (bool: 0 and 1): a column holding others today
        is refused, as its values would be lost; one that holds none is noted (a later other value
        stops the run: mapping/types.py CastError)."""
        scanned: set[str] = set()
        for collection in resolution.collections:
            for level in collection.levels:
                for fld in level.document.fields:
                    cast, column, table = fld.cast, fld.column.name, level.table
                    subject = f"{table}.{column}"
                    if cast is None or cast.exact_values is None or subject in scanned or not self.scan_data:
                        continue
                    scanned.add(subject)
                    self._check_cast(subject, table, column, cast.name, cast.exact_values)

    def _check_cast(self, subject: str, table: str, column: str, name: str, allowed: tuple[Any, ...]) -> None:
        shown = ", ".join(str(v) for v in allowed)
        option = f"`types: {{{column}: {name}}}`"
        try:
            count = self.source.values_outside(table, column, allowed)
        except MigratorError as exc:
            self.add(
                "mapping.type_cast",
                Severity.WARN,
                subject,
                f"could not scan {subject} for values other than {shown} ({exc.message}); such a value stops "
                "the run",
            )
            return
        if count:
            others = ", ".join(str(v) for v in allowed[1:])
            update = f"UPDATE {table} SET {column} = {others} WHERE {column} NOT IN ({shown});"  # noqa: S608 (advice shown, never run)
            self.add(
                "mapping.type_cast",
                Severity.FAIL,
                subject,
                f"{count} row(s) of {table} hold a {column} other than {shown} or NULL, which {option} cannot "
                "carry: their values would be lost",
                f"remove '{column}' from 'types' (the column then migrates as it is), or set those values to "
                f"{shown} first: {update}",
            )
        else:
            self.add(
                "mapping.type_cast",
                Severity.OK,
                subject,
                f"{subject} holds only {shown} or NULL today: {option} carries them; a later other value stops "
                "the run",
            )

    def _check_numeric(
        self, subject: str, table: str, column: str, precision: int | None, array: bool
    ) -> None:
        if precision is not None:
            if precision > DECIMAL128_DIGITS:
                self.add(
                    "mapping.numeric_precision",
                    Severity.FAIL,
                    subject,
                    f"numeric({precision}) can hold more than the {DECIMAL128_DIGITS} digits of Decimal128",
                    f"exclude the column, or narrow it to numeric({DECIMAL128_DIGITS}, s)",
                )
            return
        if not self.scan_data:
            return
        try:
            digits = self.source.max_significant_digits(table, column, array=array)
        except MigratorError as exc:
            self.add(
                "mapping.numeric_precision",
                Severity.WARN,
                subject,
                f"unconstrained numeric: could not scan for values beyond {DECIMAL128_DIGITS} digits ({exc.message})",
            )
            return
        if digits > DECIMAL128_DIGITS:
            self.add(
                "mapping.numeric_precision",
                Severity.FAIL,
                subject,
                f"holds values with {digits} significant digits; Decimal128 keeps {DECIMAL128_DIGITS}",
                "exclude the column, or round the values",
            )
        else:
            self.add(
                "mapping.numeric_precision",
                Severity.INFO,
                subject,
                f"unconstrained numeric: largest value today has {digits} significant digits (limit "
                f"{DECIMAL128_DIGITS}); a later larger value stops the run",
            )

    def _check_document_sizes(self, resolution: Resolution) -> None:
        for collection in resolution.collections:
            paths = collection.join_paths()
            if not paths:
                continue
            try:
                largest = self.source.largest_document(
                    collection.table, collection.document.key, collection.document.row_overhead(), paths
                )
            except MigratorError as exc:
                self.add(
                    "mapping.document_size",
                    Severity.WARN,
                    collection.name,
                    f"could not estimate the largest document ({exc.message})",
                    "raise the statement timeout, or check the child tables' sizes by hand",
                )
                continue
            if largest is None:
                continue
            key = ", ".join(repr(k) for k in largest.key)
            size_mb = largest.estimated_bytes / 1024 / 1024
            text = (
                f"largest document: _id ({key}) with {largest.embedded_rows} embedded rows, "
                f"about {size_mb:.2f} MB"
            )
            limit = self.target.max_document_bytes
            if largest.estimated_bytes > limit:
                self.add(
                    "mapping.document_size",
                    Severity.FAIL,
                    collection.name,
                    f"{text}: over MongoDB's 16 MB document limit",
                    "map the large child table to a collection of its own instead of embedding it",
                )
            elif largest.estimated_bytes > limit // 2:
                self.add(
                    "mapping.document_size",
                    Severity.WARN,
                    collection.name,
                    f"{text}: over half the 16 MB limit; growth may reach it",
                )
            else:
                self.add("mapping.document_size", Severity.OK, collection.name, text)

    def _estimate(self, source: SourceInfo) -> None:
        tables = {t for c in self.report.collections for t in c.tables()}
        self.report.source_rows = sum(source.tables[t].estimated_rows for t in tables if t in source.tables)
        self.report.source_bytes = sum(source.tables[t].total_bytes for t in tables if t in source.tables)
        self.report.documents = sum(
            source.tables[c.table].estimated_rows for c in self.report.collections if c.table in source.tables
        )

    # -- target -------------------------------------------------------------------------------------

    def _check_target(self) -> None:
        names = [c.name for c in self.plan.collections]
        try:
            # The role first: what it may not do also explains an inspection it is refused.
            self.report.findings += self.target.role_findings(names, cutover_needs(self.plan))
            info = self.target.inspect(names)
        except MigratorError as exc:
            self.report.unreached.append(exc)
            self.add("target.reachable", Severity.FAIL, self.target.name, exc.message, exc.hint)
            return
        self.report.target = info
        self.add("target.reachable", Severity.OK, self.target.name, self.target.describe(info))
        capabilities = self.target.capabilities
        words = self.target.vocabulary
        # The adapter says what it can do at all; inspection, what this server offers.
        if capabilities.transactions and info.transactions:
            self.add("target.transactions", Severity.OK, self.target.name, "transactions supported")
        else:
            self.add(
                "target.transactions",
                Severity.WARN,
                self.target.name,
                "no transactions (standalone server): CDC batches and checkpoints commit separately, "
                "relying on idempotent writes",
                words.transactions_fix,
            )
        if capabilities.change_streams and info.change_streams:
            self.add(
                "target.change_streams", Severity.OK, self.target.name, f"{words.reverse_feed} supported"
            )
        else:
            self.add(
                "target.change_streams",
                Severity.WARN,
                self.target.name,
                f"no {words.reverse_feed}: reverse sync after cutover, hence rollback after cutover, is impossible",
                words.reverse_feed_fix,
            )
        for name, coll in info.collections.items():
            if coll.documents > 0:
                self.add(
                    "target.collection_empty",
                    Severity.WARN,
                    f"{self.target.database}.{name}",
                    f"target collection holds about {coll.documents} documents: they will be mixed with the "
                    "copy, and rollback will refuse to drop the collection without --force",
                    "drop or rename it, or choose another target database",
                )
            else:
                state = "exists and is empty" if coll.exists else "will be created"
                self.add("target.collection_empty", Severity.OK, f"{self.target.database}.{name}", state)


def cutover_needs(plan: Plan) -> CutoverNeeds:
    """What the plan's cutover asks of the source, in the adapters' terms."""
    cutover = plan.phases.cutover
    switch = cutover.switch
    return CutoverNeeds(
        reverse_sync=cutover.reverse_sync,
        fence=cutover.fence.kind,
        switch=switch.kind if switch is not None else None,
        routing_table=switch.name if switch is not None and switch.kind == "postgres" else None,
        plan_name=plan.name,
    )


def run_preflight(
    plan: Plan, source: SourceAdapter, target: TargetAdapter, *, scan_data: bool = True
) -> PreflightReport:
    return Preflight(plan, source, target, scan_data=scan_data).run()
