"""`migrator verify`: compare source and target through the plan's mapping, over a Session.

Safe while `migrator run` follows changes (phases/verify.py holds the comparison); with an
active run, the report is kept in its state store for `status` and the cutover gate.
"""

from __future__ import annotations

import threading
from typing import Any

from migrator.errors import PreflightFailed
from migrator.operations.run import StoreSink
from migrator.operations.session import Session
from migrator.phases.following import recorded_cdc_failure
from migrator.phases.preflight import run_preflight
from migrator.phases.verify import Verifier, VerifyReport, key_types_of
from migrator.plan.models import VerifySettings


def verify_settings(session: Session, *, mode: str | None, sample: float | None) -> VerifySettings:
    """The plan's verify settings with `mode`/`sample` overriding them (a sample implies the
    'sample' mode unless a mode is given); validated as the plan's own are."""
    settings = session.plan.phases.verify
    overrides: dict[str, Any] = {}
    if mode is not None:
        overrides["mode"] = mode
    if sample is not None:
        overrides["sample"] = sample
        overrides.setdefault("mode", "sample")
    if overrides:
        settings = type(settings).model_validate({**settings.model_dump(), **overrides})
    return settings


def verify(
    session: Session, settings: VerifySettings, *, repair: bool, stop: threading.Event | None
) -> VerifyReport:
    """One verify pass (with `repair`, what differs is copied again)."""
    store, source, target = session.open_run()
    report = run_preflight(session.plan, source, target, scan_data=False)
    if report.source is None or not report.collections:
        raise PreflightFailed(
            [f"{f.check} {f.subject}: {f.message}" for f in report.failures], unreached=bool(report.unreached)
        )
    run = store.active_run(session.plan.name)
    failure = None
    if run is not None:
        session.events.add(StoreSink(store, run.id))
        failure = recorded_cdc_failure(store, run.id)
    key_types = key_types_of(report.collections, report.source)
    verifier = Verifier(
        session.plan,
        report.collections,
        source,
        target,
        key_types,
        session.events,
        settings=settings,
        stop=stop,
        cdc_failure=failure,
    )
    return verifier.run(repair=repair)
