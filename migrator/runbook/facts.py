"""What a runbook states, gathered from the plan and (unless offline) a preflight report.

Everything here is a pure function of its inputs: no clock, no randomness, no database access
(preflight ran before, in api.runbook), and every text that could hold a secret is masked.
Offline, a value that only the databases know is `UNCHECKED`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from migrator.adapters.base import SourceInfo, SourceVocabulary, TargetInfo, TargetVocabulary
from migrator.adapters.registry import prerequisites_for, target_vocabulary_for, vocabulary_for
from migrator.connstr import MalformedConnection, parse
from migrator.findings import Finding, Severity
from migrator.phases.preflight import ASSUMED_ROWS_PER_SECOND, PreflightReport
from migrator.plan.models import Collection, Embed, Plan
from migrator.plan.names import publication_name, slot_name_pattern
from migrator.redact import redact_text, redact_url, url_passwords

UNCHECKED = "(checked at run time)"
# Verify reads both sides and writes nothing; its benchmark goal (scripts/bench/bench_verify.py) is
# at least the copy rate, so the runbook assumes the snapshot's rate for a full pass.
ASSUMED_VERIFY_ROWS_PER_SECOND = ASSUMED_ROWS_PER_SECOND
# `${NAME}` left as written: the offline runbook was generated without that variable set.
_PLACEHOLDER = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_ORDER = {Severity.FAIL: 0, Severity.WARN: 1, Severity.INFO: 2, Severity.OK: 3}


@dataclass(frozen=True)
class EndpointFacts:
    adapter: str
    url: str  # masked
    unset: bool  # the URL is an unset ${VAR} (offline only)
    database: str | None = None


@dataclass(frozen=True)
class TableFacts:
    table: str
    collection: str
    role: str  # how the table's rows appear in the collection
    estimated_rows: int | None  # None: not inspected (offline, or the table was not found)
    total_bytes: int | None


@dataclass(frozen=True)
class CheckFacts:
    """One prerequisite: what must hold, what preflight found, and how it ended."""

    check: str  # the preflight check id (findings.py), or plan.* for what the plan alone decides
    requirement: str
    found: str
    status: str  # ok | info | warn | fail | unchecked
    fix: str | None = None

    @property
    def passed(self) -> bool:
        return self.status in ("ok", "info")


@dataclass(frozen=True)
class Estimate:
    """Estimated durations in seconds; None where the rows are unknown (offline)."""

    source_rows: int | None
    documents: int | None
    source_bytes: int | None
    snapshot_seconds: float | None
    verify_seconds: float | None
    verify_share: float  # 1.0 for a full pass; the sample share in sample mode


@dataclass(frozen=True)
class Facts:
    plan: Plan
    plan_file: str  # as the operator gave it: the commands repeat it
    offline: bool
    source: EndpointFacts
    target: EndpointFacts
    slot: str
    publication: str
    words: SourceVocabulary  # the source's names for the slot, publication and change log
    target_words: TargetVocabulary  # the target's names for what it is and holds
    tables: list[TableFacts]
    shapes: dict[str, object]  # collection -> shape from the resolved mapping (online) or the plan
    resolved: bool  # shapes come from the source schema (BSON types known)
    estimate: Estimate
    checks: list[CheckFacts]
    other_findings: list[Finding] = field(default_factory=list)
    ready: bool | None = None  # None offline
    failures: int = 0


def gather(plan: Plan, plan_file: str, report: PreflightReport | None) -> Facts:
    """The runbook's facts: `report` is None offline."""
    secrets = url_passwords(plan.source.url.get_secret_value(), plan.target.url.get_secret_value())

    def clean(text: str) -> str:
        return redact_text(text, secrets)

    checks, covered = _checks(plan, report, clean)
    others: list[Finding] = []
    if report is not None:
        for f in report.findings:
            if (f.check, f.subject) in covered or f.check in covered_checks(covered):
                continue
            others.append(
                Finding(
                    f.check, f.severity, clean(f.subject), clean(f.message), clean(f.fix) if f.fix else None
                )
            )
        others.sort(key=lambda f: (_ORDER[f.severity], f.check, f.subject))
    return Facts(
        plan=plan,
        plan_file=plan_file,
        offline=report is None,
        source=_endpoint(plan.source.adapter, plan.source.url.get_secret_value()),
        target=_endpoint(plan.target.adapter, plan.target.url.get_secret_value(), plan.target.database),
        slot=slot_name_pattern(plan.name),
        publication=publication_name(plan.name),
        words=vocabulary_for(plan.source.adapter),
        target_words=target_vocabulary_for(plan.target.adapter),
        tables=_tables(plan, report),
        shapes=_shapes(plan, report),
        resolved=report is not None and len(report.collections) == len(plan.collections),
        estimate=_estimate(plan, report),
        checks=checks,
        other_findings=others,
        ready=None if report is None else report.ready,
        failures=0 if report is None else len(report.failures),
    )


def covered_checks(covered: set[tuple[str, str]]) -> set[str]:
    """Checks shown whole in the checklist (subject '*'): none of their findings is repeated."""
    return {check for check, subject in covered if subject == "*"}


def _endpoint(adapter: str, url: str, database: str | None = None) -> EndpointFacts:
    unset = bool(_PLACEHOLDER.match(url))
    return EndpointFacts(adapter, url if unset else redact_url(url), unset, database)


# -- tables and shapes -----------------------------------------------------------------------------


def _walk(collection: Collection, words: TargetVocabulary) -> Iterable[tuple[str, str]]:
    """(table, role) of every table a collection reads, top-level first."""
    yield collection.table, words.becomes.format(key=", ".join(collection.key_columns))

    def embeds(items: list[Embed], path: str) -> Iterable[tuple[str, str]]:
        for e in items:
            where = f"{path}.{e.as_}" if path else e.as_
            kind = "array" if e.many else "sub-document"
            yield e.table, f"embedded {kind} `{where}`"
            yield from embeds(e.embed, f"{where}[]" if e.many else where)

    yield from embeds(collection.embed, "")


def _tables(plan: Plan, report: PreflightReport | None) -> list[TableFacts]:
    info = report.source.tables if report is not None and report.source is not None else {}
    found = []
    words = target_vocabulary_for(plan.target.adapter)
    for collection in plan.collections:
        for table, role in _walk(collection, words):
            t = info.get(table)
            found.append(
                TableFacts(
                    table,
                    collection.name,
                    role,
                    t.estimated_rows if t is not None else None,
                    t.total_bytes if t is not None else None,
                )
            )
    return found


def _plan_shape(shape: Collection | Embed) -> dict[str, object]:
    """A document's shape as the plan alone tells it: field -> source column, embeds nested."""
    out: dict[str, object] = {}
    if isinstance(shape, Collection):
        key = shape.key_columns
        out["_id"] = f"<{key[0]}>" if len(key) == 1 else {k: f"<{k}>" for k in key}
    if shape.fields is not None:
        out.update({name: f"<{column}>" for name, column in shape.fields.items()})
    else:
        skipped = ", ".join(shape.exclude)
        out["..."] = f"every column of {shape.table}" + (f" except {skipped}" if skipped else "")
    for e in shape.embed:
        child = _plan_shape(e)
        out[e.as_] = [child] if e.many else child
    return out


def _shapes(plan: Plan, report: PreflightReport | None) -> dict[str, object]:
    resolved = {c.name: c.shape() for c in report.collections} if report is not None else {}
    return {c.name: resolved.get(c.name, _plan_shape(c)) for c in plan.collections}


def _estimate(plan: Plan, report: PreflightReport | None) -> Estimate:
    verify = plan.phases.verify
    share = verify.sample if verify.mode == "sample" else 1.0
    if report is None or report.source is None:
        return Estimate(None, None, None, None, None, share)
    rows = report.source_rows
    return Estimate(
        source_rows=rows,
        documents=report.documents,
        source_bytes=report.source_bytes,
        snapshot_seconds=report.estimated_seconds,
        verify_seconds=rows * share / ASSUMED_VERIFY_ROWS_PER_SECOND,
        verify_share=share,
    )


# -- prerequisites ---------------------------------------------------------------------------------


def _worst(findings: list[Finding]) -> Finding | None:
    return min(findings, key=lambda f: _ORDER[f.severity]) if findings else None


def _checks(
    plan: Plan, report: PreflightReport | None, clean: Callable[[str], str]
) -> tuple[list[CheckFacts], set[tuple[str, str]]]:
    source = report.source if report is not None else None
    target = report.target if report is not None else None
    checklist = _Checklist(report, clean)
    _source_checks(checklist, plan, source)
    _target_checks(checklist, plan, target)
    checklist.out.extend(_plan_checks(plan))
    return checklist.out, checklist.covered


class _Checklist:
    """The checklist lines built so far and the (check, subject) pairs they cover."""

    def __init__(self, report: PreflightReport | None, clean: Callable[[str], str]) -> None:
        self.report = report
        self.findings = report.findings if report is not None else []
        self.clean = clean
        self.covered: set[tuple[str, str]] = set()
        self.out: list[CheckFacts] = []

    def add(
        self,
        check: str,
        requirement: str,
        found_ok: str | None,
        *,
        subject: str | None = None,
        side: object = None,
    ) -> None:
        """A checklist line fed by the findings of `check` (for `subject`, or all of them). With
        no finding, the check passed when `side` was inspected and `found_ok` says what was seen."""
        clean, out = self.clean, self.out
        self.covered.add((check, subject if subject is not None else "*"))
        mine = [f for f in self.findings if f.check == check and (subject is None or f.subject == subject)]
        worst = _worst(mine)
        if self.report is None:
            out.append(CheckFacts(check, requirement, UNCHECKED, "unchecked"))
        elif worst is not None and worst.severity in (Severity.FAIL, Severity.WARN):
            found = clean(worst.message)
            out.append(
                CheckFacts(check, requirement, found, worst.severity.value, clean(worst.fix or "") or None)
            )
        elif worst is not None:
            out.append(CheckFacts(check, requirement, clean(found_ok or worst.message), worst.severity.value))
        elif side is not None and found_ok is not None:
            out.append(CheckFacts(check, requirement, clean(found_ok), "ok"))
        else:
            out.append(
                CheckFacts(check, requirement, "(not checked: the database was not reached)", "unchecked")
            )


def _source_checks(checklist: _Checklist, plan: Plan, source: SourceInfo | None) -> None:
    """The source's prerequisites as its adapter lists them (adapters/vocabulary.py,
    Prerequisite): its server, then every table the plan reads."""
    words = target_vocabulary_for(plan.target.adapter)
    tables = list(dict.fromkeys(table for c in plan.collections for table, _role in _walk(c, words)))
    for p in prerequisites_for(plan.source.adapter, plan.name, tables, source):
        checklist.add(
            p.check, p.requirement, p.found_ok, subject=p.subject, side=True if p.inspected else None
        )


def _target_checks(checklist: _Checklist, plan: Plan, target: TargetInfo | None) -> None:
    words = target_vocabulary_for(plan.target.adapter)
    topology = None
    if target is not None:
        topology = f"{words.database} {target.version}"
        if words.replica_sets:
            topology += ", " + (f"replica set {target.replica_set}" if target.replica_set else "standalone")
    checklist.add(
        "target.reachable", f"the target {words.database} answers at the plan's URL", topology, side=target
    )
    checklist.add("target.transactions", words.transactions_requirement, None, side=target)
    checklist.add("target.change_streams", words.reverse_feed_requirement, None, side=target)
    for collection in plan.collections:
        database = _target_database(plan)
        subject = f"{database}.{collection.name}" if database else collection.name
        checklist.add(
            "target.collection_empty",
            f"target {words.collection} `{subject}` is absent or empty",
            None,
            subject=subject,
            side=target,
        )


def _target_database(plan: Plan) -> str | None:
    """The target's database as preflight names it in subjects: the plan's (MongoDB), else the
    URL's (a PostgreSQL target); None where the URL is not known (offline, a variable unset)."""
    if plan.target.database:
        return plan.target.database
    try:
        return parse(plan.target.url.get_secret_value()).database
    except MalformedConnection:
        return None


def _plan_checks(plan: Plan) -> list[CheckFacts]:
    """What the plan alone decides: known offline too."""
    cutover = plan.phases.cutover
    cdc = plan.phases.cdc
    switch = cutover.switch
    checks = []
    if switch is None:
        checks.append(
            CheckFacts(
                "plan.cutover.switch",
                "a switch tells applications which side is primary (phases.cutover.switch)",
                "not configured: `migrator cutover` cannot flip",
                "fail",
                f"add phases.cutover.switch (kind: {target_vocabulary_for(plan.target.adapter).switch_kinds}) "
                "before the cutover",
            )
        )
    else:
        where = {
            "file": f"file {switch.path}",
            "command": "command " + " ".join(switch.run or []),
            "postgres": f"routing table {switch.name} on the source",
            "mongodb": f"routing collection {switch.name} on the target",
        }[switch.kind]
        checks.append(
            CheckFacts(
                "plan.cutover.switch",
                "a switch tells applications which side is primary (phases.cutover.switch)",
                f"{switch.kind}: {where}",
                "ok",
            )
        )
    checks.append(
        CheckFacts(
            "plan.cutover.reverse_sync",
            "reverse sync after cutover, so that the source stays a fallback (phases.cutover.reverse_sync)",
            "on" if cutover.reverse_sync else "off: one-way cutover, no rollback after it",
            "ok" if cutover.reverse_sync else "warn",
            None
            if cutover.reverse_sync
            else "set phases.cutover.reverse_sync: true to keep the way back open",
        )
    )
    fence = cutover.fence
    checks.append(
        CheckFacts(
            "plan.cutover.fence",
            "the write fence suits the application (phases.cutover.fence)",
            f"lock, lock_timeout {fence.lock_timeout:g} s"
            if fence.kind == "lock"
            else "command: pause " + " ".join(fence.pause or []) + "; resume " + " ".join(fence.resume or []),
            "ok",
        )
    )
    log = vocabulary_for(plan.source.adapter).change_log
    checks.append(
        CheckFacts(
            "plan.cdc.max_retained_wal",
            f"the source's {log} disk has room for phases.cdc.max_retained_wal on top of its usual use",
            f"max_retained_wal = {_bytes(int(cdc.max_retained_wal))} (the run stops past it): "
            f"check the {log} volume's free space by hand",
            "unchecked",
        )
    )
    return checks


def _bytes(value: int) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if value >= size and value % size == 0:
            return f"{value // size} {unit}"
    return f"{value} bytes"


def human_bytes(value: int) -> str:
    """Bytes for a reader: 1.5 GB, 203 MB, 12 kB."""
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if value >= size:
            amount = value / size
            return f"{amount:.1f} {unit}" if amount < 10 else f"{amount:.0f} {unit}"
    return f"{value} bytes"
