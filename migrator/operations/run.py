"""Sequences the phases of a run: preflight, then resume-first, phase by phase.

Sits above phases/ (phases never import it). It owns the run record: a run stays active
until it finishes or is rolled back, so that `migrator run` after any crash resumes it.

One owner (docs/architecture.md): before anything is read or written, the plan's lease in the
state file is taken (one process per run), and the target's ownership record must name this
run or no run at all; a new run claims it before it creates anything, and its slot carries
its id.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from migrator.adapters.base import OwnerRecord, SourceAdapter, TargetAdapter
from migrator.engine.context import RunContext
from migrator.engine.events import (
    BatchApplied,
    ErrorRaised,
    Event,
    EventBus,
    Notice,
    PhaseFinished,
    PhaseStarted,
    RunFinished,
    RunStarted,
)
from migrator.engine.throttle import Throttler
from migrator.errors import MigratorError, NoActiveRun, OwnedByAnotherRun, PreflightFailed, TerminalError
from migrator.operations.abandoned import end_abandoned
from migrator.operations.finished import finished_run, finishing, refuse_finished, refuse_finishing
from migrator.phases.lag import mirror_fields
from migrator.phases.preflight import PreflightReport, run_preflight
from migrator.phases.snapshot import SnapshotPhase, SnapshotResult
from migrator.plan import exclusions
from migrator.plan.models import Collection, Plan
from migrator.plan.names import legacy_slot_name, publication_name, slot_name
from migrator.state import new_run_id
from migrator.state.labels import CdcLabel, SnapshotLabel
from migrator.state.store import RunRecord, StateStore

# CDC, reverse sync and verify are imported where a run goes on to them, so that a run that
# stops after the snapshot loads only what it runs (docs/architecture.md, "Start-up imports").
if TYPE_CHECKING:
    from migrator.operations.follow import ReverseFollower
    from migrator.phases.cdc import CdcResult
    from migrator.phases.reverse import ReverseSync
    from migrator.phases.verify import VerifyReport

Until = Literal["snapshot", "caught-up", "verified", "stopped"]
PHASES: tuple[str, ...] = ("snapshot", "cdc")
# How often the CDC position is mirrored into the state store while changes flow (and once
# more when the phase returns); the authoritative position lives in the target.
CDC_MIRROR_INTERVAL_S = 30.0
CDC_START_TIMEOUT_S = 60.0


DIGEST_VERSION = "v2"


def plan_digest(plan: Plan) -> str:
    """What identifies a run's mapping for resume (docs/architecture.md, "Changing a plan on an
    active run"): what decides the documents, i.e. the collections (source tables, keys, fields,
    embeds) and the target database. Not the URLs (passwords rotate; a moved server is the
    operator's call) and not the settings under phases.*, which tune how the run goes (batch
    sizes, parallelism, throttling, lag budgets) and may change between resumes. Versioned: a
    digest without a version is plan_digest_v1's, which runs begun before v2 recorded."""
    return _digest(
        {"collections": [c.model_dump(mode="json", by_alias=True) for c in plan.collections]}, plan
    )


def _digest(data: dict[str, Any], plan: Plan) -> str:
    """The v2 digest of `data["collections"]` (a plan's, or a variant of them: plan/exclusions.py)."""
    mapping = {"collections": data["collections"], "target_database": plan.target.database}
    return f"{DIGEST_VERSION}:" + hashlib.sha256(json.dumps(mapping, sort_keys=True).encode()).hexdigest()


def plan_digest_v1(plan: Plan) -> str:
    """The digest runs recorded before v2: the mapping and every setting but cdc.apply and throttle."""
    data = plan.model_dump(mode="json", by_alias=True, exclude={"source", "target"})
    data["target_database"] = plan.target.database
    data["phases"]["cdc"].pop("apply", None)
    data["phases"].pop("throttle", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def same_mapping(recorded: str, plan: Plan) -> bool:
    """Whether `plan` maps as the run whose digest is `recorded` did."""
    if recorded.startswith(f"{DIGEST_VERSION}:"):
        return recorded == plan_digest(plan)
    # A v1 digest covers the settings too: equal means the mapping is too. Unequal may be a
    # setting only, which v1 cannot tell from a mapping change: refused as before.
    return recorded == plan_digest_v1(plan)


class StoreSink:
    """Writes durable events to the state store's event log: the run's lineage."""

    def __init__(self, store: StateStore, run_id: str) -> None:
        self._store = store
        self._run_id = run_id

    def emit(self, event: Event) -> None:
        if event.durable:
            payload = json.loads(json.dumps(event.payload(), default=str))
            self._store.append_event(self._run_id, event.kind, payload)


class CdcMirror:
    """Mirrors the CDC position into the state store (DESIGN 4.3: the target holds the
    authoritative one, beside the data; the store mirrors it for status and history), at most
    every `interval` seconds while batches are applied, so that `migrator status` still knows
    where replay stood when the target cannot be reached."""

    def __init__(self, store: StateStore, run_id: str, interval: float = CDC_MIRROR_INTERVAL_S) -> None:
        self._store = store
        self._run_id = run_id
        self._interval = interval
        latest = store.latest_checkpoint(run_id, "cdc")
        self._written: str | None = latest.position if latest is not None else None
        self._pending: str | None = None
        self._commit_time: float | None = None  # of the newest applied transaction (phases/lag.py)
        self._written_at = float("-inf")  # the first position is written at once

    def emit(self, event: Event) -> None:
        if isinstance(event, BatchApplied):
            self._pending = event.position
            if event.commit_time is not None:
                self._commit_time = event.commit_time
            if time.monotonic() - self._written_at >= self._interval:
                self.flush()

    def flush(self, position: str | None = None) -> None:
        """Record `position` (default: the last applied batch's) unless it is already recorded."""
        chosen = position or self._pending
        if chosen is None or chosen == self._written:
            return
        detail: dict[str, Any] = {"mirror_of": "target"}
        if self._commit_time is not None:
            detail.update(mirror_fields(self._commit_time))
        self._store.add_checkpoint(self._run_id, "cdc", CdcLabel.APPLIED, chosen, detail)
        self._written = chosen
        self._written_at = time.monotonic()


@dataclass
class RunOutcome:
    run_id: str
    resumed: bool
    preflight: PreflightReport
    snapshot: SnapshotResult | None
    cdc: CdcResult | None
    stopped_after: str
    interrupted: bool
    verify: VerifyReport | None = None  # with until='verified'


class Runner:
    def __init__(
        self,
        plan: Plan,
        store: StateStore,
        events: EventBus,
        source: SourceAdapter,
        target: TargetAdapter,
        *,
        command: str = "migrator run",
    ) -> None:
        self.plan = plan
        self.store = store
        self.events = events
        self.source = source
        self.target = target
        self.command = command  # names this process to another one that finds the run in use
        self.stop_event = threading.Event()

    def stop(self) -> None:
        """Finish the work in flight, checkpoint it, and return (SIGINT/SIGTERM). Safe from a
        signal handler: it only sets an event."""
        self.stop_event.set()

    def run(self, until: Until = "stopped", *, preflight: PreflightReport | None = None) -> RunOutcome:
        """Run or resume the plan's phases. `until`: 'snapshot' stops after the copy,
        'caught-up' once CDC lag is under cdc.max_lag, 'verified' once caught up and a verify
        pass of the live migration is done (CDC follows during it), 'stopped' follows changes
        until stop(). `preflight`: a ready report the caller already has (ready_preflight()).
        Throttled while `migrator throttle` or the plan's `phases.throttle` say so."""
        ctx, report, resumed = self.open(preflight=preflight)
        throttle = ctx.throttle = self._throttler(ctx)
        try:
            return self._run(ctx, report, resumed, until)
        finally:
            throttle.close()

    def _throttler(self, ctx: RunContext) -> Throttler:
        settings = self.plan.phases.throttle
        store, run_id = self.store, ctx.run.id

        def controls() -> dict[str, Any]:
            return {c.name: c.value for c in store.controls(run_id)}

        load = None
        if settings.max_active_sessions is not None or settings.max_replica_lag is not None:
            load = self.source.load_probe()
        return Throttler(
            file=settings.file,
            max_active_sessions=settings.max_active_sessions,
            max_replica_lag=settings.max_replica_lag,
            check_interval=settings.check_interval,
            max_lag=self.plan.phases.cdc.max_lag,
            chunk_rows=self.plan.phases.snapshot.chunk_rows,
            events=self.events,
            controls=controls,
            load=load,
        )

    def _run(self, ctx: RunContext, report: PreflightReport, resumed: bool, until: Until) -> RunOutcome:
        run = ctx.run
        done = {p.name for p in self.store.phases(run.id) if p.status == "done"}
        snapshot: SnapshotResult | None = None
        cdc: CdcResult | None = None
        interrupted = False
        if "snapshot" not in done:
            snapshot, interrupted = self._run_phase(
                "snapshot", SnapshotPhase(ctx, self.stop_event).run, resumed
            )
        if not interrupted and until != "snapshot":
            from migrator.operations.follow import ReverseFollower
            from migrator.phases.cdc import CdcPhase

            reverse = self._reverse_after_cutover(ctx)
            follower: ReverseFollower | None = None
            if reverse is not None and until == "stopped":
                follower = ReverseFollower(reverse, self.stop_event)
                follower.start()
            try:
                phase = CdcPhase(
                    ctx, stop=self.stop_event, until="stopped" if until == "stopped" else "caught-up"
                )
                mirror = CdcMirror(self.store, run.id)
                self.events.add(mirror)
                cdc, interrupted = self._run_phase("cdc", phase.run, resumed, keep_running=True)
                mirror.flush(cdc.position)
                interrupted = interrupted or cdc.stopped
                if follower is not None:
                    follower.finish()  # raises what stopped reverse sync (it also stopped CDC)
                elif reverse is not None and not interrupted:
                    interrupted = reverse.run("caught-up").stopped
            finally:
                if follower is not None:
                    follower.stop()
                if reverse is not None:
                    reverse.close()
        verify: VerifyReport | None = None
        if not interrupted and until == "verified":
            verify, interrupted = self._verify_live(ctx, resumed)
        stopped_after = "interrupted" if interrupted else until
        self.events.emit(RunFinished(run.id, "active", stopped_after))
        return RunOutcome(run.id, resumed, report, snapshot, cdc, stopped_after, interrupted, verify)

    def _verify_live(self, ctx: RunContext, resumed: bool) -> tuple[VerifyReport, bool]:
        """The verify phase: a verify pass while CDC goes on following (on a thread): the pass
        waits for CDC to apply its markers, so that it compares each range at a known position."""
        from migrator.operations.follow import follow_cdc
        from migrator.phases.verify import Verifier, key_types_of

        follower = follow_cdc(ctx, self._run_phase)

        def verify() -> VerifyReport:
            follower.wait_streaming(ctx, CDC_START_TIMEOUT_S)
            key_types = key_types_of(ctx.collections, ctx.source_info)
            verifier = Verifier(
                self.plan,
                ctx.collections,
                ctx.source,
                ctx.target,
                key_types,
                self.events,
                stop=self.stop_event,
                cdc_alive=follower.raise_if_failed,  # a CDC that fails ends the pass at once, named
            )
            report = verifier.run()
            follower.raise_if_failed()
            return report

        follower.start()
        try:
            report, interrupted = self._run_phase("verify", verify, resumed)
        finally:
            follower.stop()
        follower.raise_if_failed()
        return report, interrupted or self.stop_event.is_set()

    def _reverse_after_cutover(self, ctx: RunContext) -> ReverseSync | None:
        """After cutover the target is primary: reverse sync runs beside forward CDC (which
        still carries a late write that reached the source), so that the source stays a
        complete fallback. None before cutover, after a rollback flipped the switch back, or
        for a one-way cutover (reverse_sync: false)."""
        from migrator.phases.cutover import switched
        from migrator.phases.reverse import ReverseSync

        if not switched(self.store, ctx.run.id) or not self.plan.phases.cutover.reverse_sync:
            return None
        self.events.emit(
            Notice("info", "the target is primary (cut over): following both directions, reverse sync too")
        )
        return ReverseSync.from_context(ctx, stop=self.stop_event)

    def open(
        self, *, existing: bool = False, preflight: PreflightReport | None = None
    ) -> tuple[RunContext, PreflightReport, bool]:
        """Preflight (unless the caller passes its ready report), then the plan's active run
        (begun unless `existing`, which requires one) and the context its phases work with; also
        whether the run was resumed. Refuses while another process works on the run in this
        state file, and refuses a run that the target's ownership record does not name
        (docs/architecture.md, "One owner"). Preflight comes before the lease: it reads only the
        databases, and a plan it refuses leaves no lock file behind."""
        report = preflight or ready_preflight(self.plan, self.source, self.target)
        self.store.hold(self.plan.name, self.command)
        assert report.source is not None
        digest = plan_digest(self.plan)
        run = self.store.active_run(self.plan.name)
        resumed = run is not None
        if run is not None and finishing(self.store, run.id):
            raise refuse_finishing(run, self.command)
        ended = finished_run(self.store, self.plan.name) if run is None else None
        if ended is not None:
            # The safe choice (docs/cutover.md, "Finishing"): a new run in this state file would
            # copy the source over the target, which has been primary since the cutover.
            raise refuse_finished(ended, self.command)
        if run is None:
            if existing:
                raise NoActiveRun(
                    f"plan {self.plan.name} has no active run",
                    hint="`migrator run` the plan first (snapshot, then CDC)",
                )
            run = self._begin(digest)
        elif not same_mapping(run.plan_digest, self.plan):
            v2 = run.plan_digest.startswith(f"{DIGEST_VERSION}:")
            # Only exclusions of dropped columns removed: the run goes on under the plan it began
            # with (the same documents), so that CDC knows those columns were not mapped.
            began = self._plan_as_begun(run, report) if v2 else None
            if began is None and not v2:
                raise TerminalError(
                    f"plan {self.plan.name} changed since run {run.id} started, and that run's record (from an "
                    "earlier migrator) cannot tell a changed setting from a changed mapping: resuming might mix "
                    "two mappings",
                    hint="restore the plan as it was and resume once (from then on, settings under phases may "
                    "change between resumes), or `migrator rollback` the run and start again",
                )
            if began is None:
                raise TerminalError(
                    f"the mapping of plan {self.plan.name} (its collections or target database) changed since run "
                    f"{run.id} started: resuming would mix two mappings",
                    hint="restore the collections and target database as they were (settings under phases may "
                    "change between resumes), or `migrator rollback` the run and start again",
                )
            self.plan = began
            self._claim(run.id, run.started_at, run.slot)
        else:
            self._claim(run.id, run.started_at, run.slot)
            if run.plan_digest != digest:
                # A run recorded with a v1 digest: from now on only its mapping is compared.
                self.store.set_plan_digest(run.id, digest)
        self.events.add(StoreSink(self.store, run.id))
        self.events.emit(RunStarted(run.id, self.plan.name, resumed, self._state_location()))
        # The run is this process's now (lease and ownership record): a transaction a killed
        # process of it left open on the target must not hold its documents for a minute.
        end_abandoned(self.target, self.plan.name, run.id, self.events, self.stop_event)
        ctx = RunContext(
            plan=self.plan,
            run=run,
            store=self.store,
            events=self.events,
            source=self.source,
            target=self.target,
            source_info=report.source,
            collections=report.collections,
        )
        return ctx, report, resumed

    def _plan_as_begun(self, run: RunRecord, report: PreflightReport) -> Plan | None:
        """The plan the run began with, where today's differs from it only by `exclude` entries
        naming columns dropped since the snapshot (the columns its slot checkpoint recorded, gone
        from the source now): they excluded nothing, so the documents are the same
        (plan/exclusions.py). None otherwise."""
        assert report.source is not None
        slot = next(
            (c for c in self.store.checkpoints(run.id, "snapshot") if c.label == SnapshotLabel.SLOT), None
        )
        recorded = (slot.detail.get("schema") if slot is not None else None) or {}
        gone: dict[str, set[str]] = {}
        for table, shape in recorded.items():
            info = report.source.tables.get(table)
            if info is not None:
                before = {str(column[0]) for column in shape.get("columns", ())}
                gone[table] = before - {c.name for c in info.columns}
        if not any(gone.values()):
            return None
        data = self.plan.model_dump(mode="json", by_alias=True, exclude={"source", "target"})
        found = exclusions.recorded_plan(
            data, gone, lambda variant: _digest(variant, self.plan), run.plan_digest
        )
        if found is None:
            return None
        # Only `exclude` lists differ: the collections are rebuilt, the rest (URLs) kept as is.
        began = self.plan.model_copy(
            update={"collections": [Collection.model_validate(c) for c in found["collections"]]}
        )
        self.events.emit(
            Notice(
                "info",
                f"plan {self.plan.name} no longer excludes columns dropped since run {run.id} started "
                f"({', '.join(sorted(f'{t}.{c}' for t, cs in gone.items() for c in cs))}): the documents stay the "
                "same, and the run goes on",
            )
        )
        return began

    def _begin(self, digest: str) -> RunRecord:
        """Begin a new run: claim the target for it first, so that nothing is created for a run
        that does not own the data; its slot's name carries its id."""
        legacy = legacy_slot_name(self.plan.name)
        if self.source.capture_setup().slot_exists(legacy):
            # Runs begun before ownership records existed have no record: their slot says it.
            state = f".migrator/{self.plan.name}.db"
            words = self.source.vocabulary
            raise OwnedByAnotherRun(
                f"{words.named_stream(legacy)} exists: a run of plan {self.plan.name} begun by an earlier "
                f"migrator version owns it (its state file is {state} in the directory that run was started "
                "from)",
                hint="resume it from that directory (or with --state PATH to that file), or roll it back the same "
                f"way; if no such run is left, drop the {words.stream}: {words.drop_stream_hint(legacy)}",
            )
        run_id = new_run_id()
        slot = slot_name(self.plan.name, run_id)
        self._claim(run_id, _now_iso(), slot)
        try:
            return self.store.begin_run(self.plan.name, digest, run_id=run_id, slot=slot)
        except MigratorError:
            # The run does not exist after all: its claim must not block the next attempt.
            with contextlib.suppress(MigratorError):
                self.target.ownership(self.plan.name).release(run_id, [])
            raise

    def _claim(self, run_id: str, started_at: str, slot: str) -> OwnerRecord:
        return self.target.ownership(self.plan.name).claim(
            run_id=run_id,
            started_at=started_at,
            host=socket.gethostname(),
            state=self._state_location(),
            slot=slot,
            publication=publication_name(self.plan.name),
            replaceable=self._never_began,
        )

    def _state_location(self) -> str:
        path = getattr(self.store, "path", "")
        return os.path.abspath(path) if path and path != ":memory:" else str(path)

    def _never_began(self, owner: OwnerRecord) -> bool:
        """A claim from this host and this state file whose run is not in it: the process that
        made it stopped before it began the run (or the claim outlived a failed begin)."""
        if owner.host != socket.gethostname() or owner.state != self._state_location():
            return False
        return all(r.id != owner.run_id for r in self.store.runs(self.plan.name))

    def _run_phase(self, name: str, body: Any, resumed: bool, keep_running: bool = False) -> tuple[Any, bool]:
        """Run a phase's body; `keep_running`: the phase has no end of its own (CDC runs until
        cutover), so returning leaves it 'running' for the next `migrator run` to resume."""
        run_id = self._run_id()
        self.store.set_phase(run_id, name, "running")
        self.events.emit(PhaseStarted(name, resumed))
        started = time.monotonic()
        try:
            result = body()
        except TerminalError as exc:
            self._record_failed(run_id, name, exc, failed=True)
            raise
        except MigratorError as exc:  # transient, its retries spent: the phase stays resumable
            self._record_failed(run_id, name, exc, failed=False)
            raise
        except Exception as exc:  # a defect: recorded and failed like a terminal error, never silent
            self._record_failed(run_id, name, exc, failed=True)
            raise
        if getattr(result, "stopped", False):
            return result, True
        if keep_running:
            return result, False
        self.store.set_phase(run_id, name, "done")
        self.events.emit(PhaseFinished(name, round(time.monotonic() - started, 3)))
        return result, False

    def _record_failed(self, run_id: str, phase: str, exc: Exception, *, failed: bool) -> None:
        """Record the error that stops a phase in the event log (its class, message, and the
        server's code and driver class behind it: for `migrator status`, metrics and logs), and
        mark the phase failed when retrying cannot help. Recording must not hide the error
        itself: should the state store be what failed (a full disk), the original error is still
        the one raised, the recording's own error noted on it."""
        try:
            self.events.emit(ErrorRaised.of(phase, exc, retrying=False))
            if failed:
                self.store.set_phase(run_id, phase, "failed")
        except MigratorError as recording:
            exc.add_note(f"(not recorded in the state store: {recording.message})")

    def _run_id(self) -> str:
        run = self.store.active_run(self.plan.name)
        assert run is not None
        return run.id


def ready_preflight(plan: Plan, source: SourceAdapter, target: TargetAdapter) -> PreflightReport:
    """The preflight a run starts with (read-only: no data scan); PreflightFailed, naming each
    failure and its fix, unless the plan is ready."""
    report = run_preflight(plan, source, target, scan_data=False)
    if not report.ready:
        raise PreflightFailed(
            [
                f"{f.check} {f.subject}: {f.message}" + (f" (fix: {f.fix})" if f.fix else "")
                for f in report.failures
            ],
            unreached=bool(report.unreached),
        )
    return report


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


def describe(outcome: RunOutcome) -> dict[str, Any]:
    snap = outcome.snapshot
    cdc = outcome.cdc
    return {
        "cdc": None
        if cdc is None
        else {
            "position": cdc.position,
            "transactions": cdc.transactions,
            "changes": cdc.changes,
            "caught_up": cdc.caught_up,
            **({"dual_write": cdc.dual_write} if cdc.dual_write is not None else {}),
        },
        "run_id": outcome.run_id,
        "resumed": outcome.resumed,
        **({"verify": outcome.verify.to_dict()} if outcome.verify is not None else {}),
        "stopped_after": outcome.stopped_after,
        "interrupted": outcome.interrupted,
        "snapshot": None
        if snap is None
        else {
            "position": snap.position,
            "consistent_after": snap.consistent_after,
            "chunks_copied": snap.chunks_copied,
            "rows": snap.rows,
            "documents": snap.documents,
            "skipped": len(snap.skipped),
        },
    }
