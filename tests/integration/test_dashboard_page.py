"""The dashboard page's rendering of what a plain run does not show (a verify report with its
differences, cutover and rollback steps, the freeze, errors), in headless Chromium: the page is
served from a LiveState fed with made-up events, so every expected text is known in advance."""

from __future__ import annotations

from migrator.cli.dashboard.server import DashboardServer
from migrator.engine.events import (
    CutoverAbandoned,
    CutoverStep,
    ErrorRaised,
    PhaseStarted,
    RollbackStepDone,
    RunStarted,
    VerifyFinished,
    WriteFreeze,
)
from migrator.engine.live_state import LiveState
from tests.support.browser import chromium, dump_dom, shown

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
REPORT = {
    "verdict": "different", "score": 0.98, "checked": 100, "equal": 98, "mismatched": 1, "missing": 1,
    "extra": 0, "unsettled": 0, "repaired": 0,
    "mismatches": [
        {"collection": "customers", "id": 42, "kind": "mismatched", "position": "0/1",
         "diffs": [{"path": "name", "source": "'Ann'", "target": "'Anne'"}]},
        {"collection": "customers", "id": 43, "kind": "missing", "position": "0/1", "diffs": []},
    ],
}  # fmt: skip


def test_the_page_shows_verify_differences_cutover_steps_freeze_and_errors() -> None:
    chromium()
    state = LiveState("cutover")
    state.set_budgets(1.0, 2 * 1024**3, 2.0)
    state.emit(RunStarted("0123456789abcdef", "shop", resumed=True))
    state.emit(PhaseStarted("cutover", resumed=False))
    state.emit(VerifyFinished(REPORT, at=T0))
    state.emit(CutoverStep("fence", "attempt 1: source writes held", at=T0 + 1))
    state.emit(CutoverAbandoned(1, "the marker took 3.0 s", 2100.0, at=T0 + 2))
    state.emit(CutoverStep("switched", "file switch.txt names the target", at=T0 + 3))
    state.emit(WriteFreeze("forward", 812.4))
    state.emit(RollbackStepDone("drop-slot", "done", "drop slot migrator_shop", at=T0 + 4))
    state.emit(ErrorRaised("cutover", "TargetError", "<b>bold</b> & co", False, hint="see the target's log"))
    with DashboardServer(state, 0) as server:
        page = shown(dump_dom(server.url, budget_ms=1500))
    assert page["command"]["text"] == "cutover" and page["plan"]["text"] == "shop"
    assert page["run-id"]["text"] == "01234567" and page["phase"]["text"] == "cutover"
    assert page["verify-verdict"]["text"] == "different (score 0.98)"
    assert page["verify-counts"]["text"].startswith("100 checked, 98 equal, 1 mismatched, 1 missing, 0 extra")
    mismatches = page["mismatches"]["text"]
    assert "42" in mismatches and "name 'Ann' 'Anne'" in mismatches and "missing" in mismatches
    steps = page["steps"]["text"]
    order = ["cutover fence", "cutover abandoned", "cutover switched", "rollback drop-slot"]
    assert [steps.index(s) for s in order] == sorted(steps.index(s) for s in order)
    assert "attempt 1: the marker took 3.0 s" in steps and "done: drop slot migrator_shop" in steps
    assert page["freeze"]["text"] == "812 ms" and page["freeze-budget"]["text"] == "(budget 2,000 ms)"
    assert page["messages"]["data-count"] == "2"  # the error and the abandoned attempt
    # Text from the API stays text: no element was made of it.
    assert "error TargetError [cutover] <b>bold</b> & co (see the target's log)" in page["messages"]["text"]
    assert page["retained-budget"]["text"] == "budget 2.0 GiB"  # no CDC in this process: no share made up
