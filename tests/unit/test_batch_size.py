"""CDC batches that the target aborts shrink and grow back (issue 17, defect 8).

The server errors here carry the codes and labels MongoDB documents for a transaction it aborted
(docs/architecture.md, "Batches that adapt"): NoSuchTransaction 251 (the transaction was reaped
and a later statement or the commit names it), TransactionExceededLifetimeLimitSeconds 290 (the
statement interrupted by the reaper), TransactionTooLarge 257, BSONObjectTooLarge 10334. They are
built as pymongo builds them from a server reply; classification reads the code and the labels only.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import errors as mongo

from migrator.adapters.mongodb.errors import classify, classify_batch
from migrator.cli.logs import level_of
from migrator.cli.progress import _describe
from migrator.engine.events import BatchLimitChanged, Collector, EventBus
from migrator.errors import BatchTooLarge, ConnectionFailed, TerminalError, TransientError
from migrator.operations.run import plan_digest, plan_digest_v1, same_mapping
from migrator.phases.batch_size import BatchLimit
from migrator.plan import parse_plan
from tests.support.plans import OFFLINE_PLAN

_NAMES = {
    251: "NoSuchTransaction",
    290: "TransactionExceededLifetimeLimitSeconds",
    257: "TransactionTooLarge",
    10334: "BSONObjectTooLarge",
    112: "WriteConflict",
    50: "MaxTimeMSExpired",
    262: "ExceededTimeLimit",
}


def server_error(code: int, *labels: str) -> mongo.OperationFailure:
    details: dict[str, Any] = {"ok": 0, "errmsg": "some server text", "code": code, "codeName": _NAMES[code]}
    if labels:
        details["errorLabels"] = list(labels)
    return mongo.OperationFailure("some server text", code, details)


def after_with_transaction(error: mongo.OperationFailure) -> mongo.NetworkTimeout:
    """What pymongo's ClientSession.with_transaction raises once it has retried a transaction with a
    TransientTransactionError label for 120 s: a NetworkTimeout (a ConnectionFailure) made from the
    last server error, which is its __cause__ (client_session_shared._make_timeout_error)."""
    timeout = mongo.NetworkTimeout(str(error))
    timeout._error_labels = set(error._error_labels)
    timeout.__cause__ = error
    return timeout


@pytest.mark.parametrize("code", [251, 290, 257, 10334])
def test_an_aborted_batch_transaction_is_batch_too_large_and_says_what_happened(code: int) -> None:
    labels = ("TransientTransactionError",) if code in (251, 290) else ()
    error = classify_batch(server_error(code, *labels), "target", writes=1500)
    assert isinstance(error, BatchTooLarge) and isinstance(error, TransientError)
    assert "1,500 writes" in error.message and f"code {code}" in error.message
    assert "cannot connect" not in str(error) and "server runs" not in str(error)


@pytest.mark.parametrize("code", [50, 262])
def test_a_time_limit_inside_a_batch_transaction_is_batch_too_large(code: int) -> None:
    # Before MongoDB 4.4 the transaction reaper interrupted with ExceededTimeLimit (SERVER-42821).
    assert isinstance(classify_batch(server_error(code), "target", writes=10), BatchTooLarge)
    assert not isinstance(classify(server_error(code), "target"), BatchTooLarge)


def test_with_transactions_timeout_is_classified_by_the_server_error_behind_it() -> None:
    """The defect: pymongo gives up on a transaction the server keeps aborting with a NetworkTimeout,
    which read as "cannot connect to target ... check that the server runs"."""
    for error in (
        classify(after_with_transaction(server_error(251, "TransientTransactionError")), "target"),
    ):
        assert isinstance(error, BatchTooLarge), error
        assert "cannot connect" not in str(error) and "server runs" not in str(error)
    conflict = classify(after_with_transaction(server_error(112, "TransientTransactionError")), "target")
    assert isinstance(conflict, TransientError) and not isinstance(conflict, ConnectionFailed | BatchTooLarge)
    assert "code 112" in conflict.message and "cannot connect" not in str(conflict)


def test_a_transient_transaction_error_is_never_a_connection_failure() -> None:
    error = classify(server_error(112, "TransientTransactionError"), "target")
    assert isinstance(error, TransientError) and not isinstance(error, ConnectionFailed)
    real = classify(mongo.ServerSelectionTimeoutError("no servers"), "target")
    assert isinstance(real, ConnectionFailed) and "server runs" in str(real)


# -- the policy -----------------------------------------------------------------------------------


def too_large() -> BatchTooLarge:
    error = classify_batch(server_error(290, "TransientTransactionError"), "target", writes=0)
    assert isinstance(error, BatchTooLarge)
    return error


def limit_events(collector: Collector) -> list[tuple[int, int]]:
    return [(e.previous, e.limit) for e in collector.of(BatchLimitChanged)]


def test_the_limit_halves_below_the_failed_batch_and_grows_back_to_the_plans_value() -> None:
    collector = Collector()
    limit = BatchLimit(1000, grow_after=3, events=EventBus(collector))
    assert limit.limit == 1000
    limit.shrink(too_large(), writes=1000, where="after 0/10")
    assert limit.limit == 500
    limit.shrink(too_large(), writes=300, where="after 0/10")  # a smaller batch (flushed early) failed
    assert limit.limit == 150
    for _ in range(2):
        limit.succeeded()
    assert limit.limit == 150
    limit.succeeded()
    assert limit.limit == 300
    for _ in range(6):
        limit.succeeded()
    assert limit.limit == 1000  # 600, then capped at the plan's batch_changes
    for _ in range(10):
        limit.succeeded()
    assert limit.limit == 1000
    assert limit_events(collector) == [(1000, 500), (500, 150), (150, 300), (300, 600), (600, 1000)]
    shrunk = collector.of(BatchLimitChanged)[0]
    assert shrunk.reason and "code 290" in shrunk.reason


def test_a_failure_resets_the_count_towards_growing() -> None:
    limit = BatchLimit(100, grow_after=3)
    limit.shrink(too_large(), writes=100, where="x")
    limit.succeeded()
    limit.succeeded()
    limit.shrink(too_large(), writes=40, where="x")
    assert limit.limit == 20
    limit.succeeded()
    limit.succeeded()
    assert limit.limit == 20


def test_a_single_write_too_large_for_the_target_is_terminal_and_names_it() -> None:
    limit = BatchLimit(4, grow_after=3)
    limit.shrink(too_large(), writes=4, where="x")
    limit.shrink(too_large(), writes=2, where="x")
    assert limit.limit == 1
    with pytest.raises(TerminalError) as raised:
        limit.shrink(too_large(), writes=1, where="in the transaction committed at 0/1A2B3C")
    text = str(raised.value)
    assert "0/1A2B3C" in text and "code 290" in text
    assert "transactionLifetimeLimitSeconds" in text and "cannot connect" not in text


# -- settings that do not change the mapping may change on an active run ------------------------

PLAN = OFFLINE_PLAN
TUNED = PLAN + (
    "phases:\n  cdc: {batch_changes: 10, max_lag: 2s, mode: poll}\n  snapshot: {parallel: 4, chunk_rows: 7}\n"
    "  verify: {parallel: 3}\n  cutover: {max_write_freeze: 5s}\n"
)


@pytest.mark.parametrize(
    "changed",
    [
        PLAN.replace("key: id}", "key: id, exclude: [email]}"),
        PLAN.replace("from: users", "from: people"),
        PLAN.replace("name: users", "name: members"),
        PLAN.replace("database: app", "database: other"),
        PLAN.replace("key: id}", "key: [id, email]}"),
    ],
)
def test_the_digest_covers_the_mapping_only(changed: str) -> None:
    base = parse_plan(PLAN, file="shop.yaml")
    assert plan_digest(base) == plan_digest(parse_plan(TUNED, file="shop.yaml"))
    assert plan_digest(base).startswith("v2:")
    other = parse_plan(changed, file="shop.yaml")
    assert plan_digest(base) != plan_digest(other)
    assert not same_mapping(plan_digest(base), other)


def test_a_run_recorded_with_a_v1_digest_still_resumes() -> None:
    base = parse_plan(PLAN, file="shop.yaml")
    recorded = plan_digest_v1(base)  # what runs begun before v2 hold
    assert same_mapping(recorded, base)
    # v1 covered the settings too: a changed setting cannot be told from a changed mapping there.
    assert not same_mapping(recorded, parse_plan(TUNED, file="shop.yaml"))
    assert not same_mapping(recorded, parse_plan(PLAN.replace("database: app", "database: b"), file="x.yaml"))


def test_the_cli_renders_a_change_of_the_limit() -> None:
    shrunk = BatchLimitChanged(
        2000, 1000, 2000, "target aborted the batch's transaction after 2,000 writes: (code 290)"
    )
    grown = BatchLimitChanged(1000, 2000, 2000)
    assert _describe(shrunk, None) == (
        "warn: cdc batches of up to 1,000 writes (were 2,000): target aborted the batch's transaction after "
        "2,000 writes: (code 290)"
    )
    assert _describe(grown, None) == "cdc batches of up to 2,000 writes again (plan: 2,000)"
    assert level_of(shrunk) == "warning" and level_of(grown) == "info"


def test_a_limit_grown_and_aborted_again_waits_longer_to_grow() -> None:
    limit = BatchLimit(64, grow_after=2)
    limit.shrink(too_large(), writes=64, where="x")
    assert limit.limit == 32
    limit.succeeded()
    limit.succeeded()
    assert limit.limit == 64
    limit.shrink(too_large(), writes=64, where="x")  # grown, and aborted again: back off
    assert limit.limit == 32
    for _ in range(3):
        limit.succeeded()
    assert limit.limit == 32
    limit.succeeded()
    assert limit.limit == 64
    limit.shrink(too_large(), writes=64, where="x")
    limit.shrink(too_large(), writes=32, where="x")  # not grown in between: no further back-off
    for _ in range(7):
        limit.succeeded()
    assert limit.limit == 16
    limit.succeeded()
    assert limit.limit == 32
