"""CDC batches that the target aborts, against real servers (issue 17, defect 8).

MongoDB aborts a transaction that outlives transactionLifetimeLimitSeconds (60 s by default): the
statement it interrupts fails with TransactionExceededLifetimeLimitSeconds (code 290), a later
statement or the commit with NoSuchTransaction (251), both labelled TransientTransactionError
(MongoDB's error-code reference; SERVER-42821, SERVER-84150). The test server (SecantusDB) reaps
only transactions that sit idle past a fixed 60 s and has no setParameter for it, so the abort is
injected here, deterministically: a thin wrapper around the target client's bulk_write raises the
server error MongoDB sends, with its code and labels, once a transaction holds more than a given
number of writes. Everything else (decoding, batching, the applier's transaction, the retry from the
checkpoint) runs as in production. Expected documents come from plain SQL on the source.

Also here: settings that do not change the mapping (phases.*) may change between resumes of a run;
a changed mapping is still refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pymongo import errors as mongo
from pymongo.collection import Collection

from migrator import api
from migrator.engine.events import BatchApplied, BatchLimitChanged, ErrorRaised, Notice
from migrator.errors import TerminalError
from migrator.operations.run import plan_digest, plan_digest_v1
from migrator.state import SQLiteStateStore
from tests.support.compare import assert_documents, flat_documents
from tests.support.docs import Migration
from tests.support.runs import follow, run, transactions, wait_for

pytestmark = pytest.mark.usefixtures("stop_followers")

NAMES = {251: "NoSuchTransaction", 290: "TransactionExceededLifetimeLimitSeconds"}


class Aborting:
    """Makes the target abort every transaction that writes more than `over` documents, as MongoDB
    aborts one that outlives its lifetime limit: the bulk write that goes past it fails with the
    server's error (code, codeName, TransientTransactionError label). Writes outside a transaction
    (the snapshot's) and to migrator's own collection pass."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, over: int, code: int) -> None:
        self.over, self.code = over, code
        self.aborted: list[int] = []  # writes of each aborted transaction, when aborted
        self.counts: dict[tuple[bytes, int], int] = {}  # writes per target transaction
        original = Collection.bulk_write

        def bulk_write(coll: Collection[Any], requests: Any, *args: Any, **kwargs: Any) -> Any:
            session = kwargs.get("session")
            if session is not None and session.in_transaction and coll.name != "_migrator":
                key = (bytes(session.session_id["id"]), session._server_session.transaction_id)
                count = self.counts[key] = self.counts.get(key, 0) + len(requests)
                if count > self.over:
                    self.aborted.append(count)
                    raise mongo.OperationFailure(
                        f"Transaction {key[1]} has been aborted.",
                        self.code,
                        {
                            "ok": 0,
                            "errmsg": f"Transaction {key[1]} has been aborted.",
                            "code": self.code,
                            "codeName": NAMES[self.code],
                            "errorLabels": ["TransientTransactionError"],
                        },
                    )
            return original(coll, requests, *args, **kwargs)

        monkeypatch.setattr(Collection, "bulk_write", bulk_write)


def items(mig: Migration, name: str, batch_changes: int) -> Path:
    mig.sql(
        "CREATE TABLE items (id integer PRIMARY KEY, grp integer NOT NULL, label text)",
        "INSERT INTO items SELECT g, g % 7, 'i' || g FROM generate_series(1, 20) g",
    )
    return mig.plan(
        "- {name: items, from: items, key: id}", name=name, phases=f"cdc: {{batch_changes: {batch_changes}}}"
    )


def expected(mig: Migration) -> list[dict[str, Any]]:
    return flat_documents(mig, "SELECT id AS _id, grp, label FROM items")


def never_says_cannot_connect(follower_events: Any) -> None:
    texts = [n.message for n in follower_events.of(Notice)]
    texts += [f"{e.message} {e.hint}" for e in follower_events.of(ErrorRaised)]
    for text in texts:
        assert "cannot connect" not in text and "server runs" not in text, text


@pytest.mark.parametrize("code", [290, 251])
def test_batches_the_target_aborts_shrink_and_grow_back(
    mig: Migration, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    plan = items(mig, f"cdc-batches-{code}", batch_changes=64)
    run(mig, plan, "snapshot")
    # A backlog of inserts of distinct rows (one write each, nothing to coalesce): batches fill to
    # the limit. Then updates and deletes, and one source transaction larger than any batch.
    transactions(
        mig,
        *[
            f"INSERT INTO items SELECT g, g % 7, 'n' || g FROM generate_series({n}, {n + 3}) g"
            for n in range(100, 700, 4)
        ],
    )
    transactions(
        mig,
        *[
            f"UPDATE items SET label = 'u' || id, grp = grp + 1 WHERE id BETWEEN {n} AND {n + 2}"
            for n in range(1, 300, 3)
        ],
        "DELETE FROM items WHERE id % 11 = 0",
        "INSERT INTO items SELECT g, 0, 'big' || g FROM generate_series(5000, 5150) g",
    )
    aborting = Aborting(monkeypatch, over=16, code=code)
    follower = run(mig, plan, timeout=300)
    outcome = follower.outcome
    assert outcome is not None and outcome.cdc is not None and outcome.cdc.caught_up
    assert_documents(mig, "items", expected(mig))

    assert aborting.aborted, "no batch was aborted: the test proves nothing"
    changes = [(e.previous, e.limit, e.reason) for e in follower.events.of(BatchLimitChanged)]
    assert changes[0][:2] == (64, 32) and f"code {code}" in (changes[0][2] or ""), changes
    shrunk_to = min(limit for _, limit, _ in changes)
    assert shrunk_to <= 16
    grew = [c for c in changes if c[1] > c[0]]
    assert grew and grew[0][2] is None, f"the limit never grew back: {changes}"
    # What the target accepted: no applied batch held more writes than the limit allowed.
    assert max(e.writes for e in follower.events.of(BatchApplied)) <= 64
    errors = follower.events.of(ErrorRaised)
    assert errors and {e.error for e in errors} == {"BatchTooLarge"}
    assert all("aborted the batch's transaction" in e.message and f"code {code}" in e.message for e in errors)
    never_says_cannot_connect(follower.events)


def test_a_single_write_the_target_aborts_stops_the_run_naming_it(
    mig: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = items(mig, "cdc-batches-single", batch_changes=8)
    run(mig, plan, "snapshot")
    transactions(mig, "INSERT INTO items SELECT g, 1, 'x' || g FROM generate_series(100, 130) g")
    Aborting(monkeypatch, over=0, code=290)
    with pytest.raises(TerminalError) as raised:
        run(mig, plan, timeout=300)
    text = str(raised.value)
    assert "a single write (to items)" in text and "code 290" in text, text
    assert "transactionLifetimeLimitSeconds" in text and "cannot connect" not in text
    # Nothing after the checkpoint was lost: with the target accepting again, the run completes.
    monkeypatch.undo()
    outcome = run(mig, plan, timeout=300).outcome
    assert outcome is not None and outcome.cdc is not None and outcome.cdc.caught_up
    assert_documents(mig, "items", expected(mig))


# -- settings that do not change the mapping, on an active run ------------------------------------


def test_batch_changes_may_change_on_an_active_run_and_the_mapping_may_not(
    mig: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = items(mig, "cdc-batches-settings", batch_changes=1000)
    follower = follow(mig, plan, "cdc-batches-settings")
    transactions(mig, "UPDATE items SET label = 'first' WHERE id <= 5")
    wait_for(lambda: any(e.changes for e in follower.events.of(BatchApplied)), "the first batch", 120)
    follower.finish()

    # Operational settings change: accepted on resume, and used.
    text = plan.read_text()
    plan.write_text(
        text.replace("batch_changes: 1000", "batch_changes: 7")
        + "  snapshot: {parallel: 3, chunk_rows: 500}\n  verify: {parallel: 3}\n"
    )
    # One row a transaction: every batch ends at a commit (and is reported), none is a partial one.
    transactions(mig, *[f"INSERT INTO items VALUES ({n}, 2, 'y{n}')" for n in range(100, 161)])
    target = Aborting(monkeypatch, over=7, code=290)  # counts the writes of each target transaction
    resumed = run(mig, plan, timeout=300)
    outcome = resumed.outcome
    assert outcome is not None and outcome.cdc is not None and outcome.cdc.caught_up
    assert outcome.cdc.changes >= 61
    assert not target.aborted and not resumed.events.of(BatchLimitChanged)
    sizes = list(target.counts.values())
    assert sum(sizes) >= 61 and max(sizes) <= 7, sizes
    monkeypatch.undo()
    assert_documents(mig, "items", expected(mig))

    # A mapping change: refused, saying so.
    plan.write_text(plan.read_text().replace("key: id}", "key: id, exclude: [label]}"))
    with pytest.raises(TerminalError) as raised:
        run(mig, plan)
    text = str(raised.value)
    assert "mapping" in text and "changed since run" in text, text
    assert "phases" in text  # the hint says what may change


def test_a_run_recorded_with_a_v1_digest_resumes_and_is_upgraded(mig: Migration) -> None:
    """A state file written before digest v2 (the digest covered every setting): the run resumes
    while its plan is unchanged, is then recorded with its v2 digest, and from then on takes new
    settings. A changed setting before that is refused, saying why."""
    name = "cdc-batches-v1"
    plan = items(mig, name, batch_changes=100)
    run(mig, plan, "snapshot")
    with SQLiteStateStore(mig.state_path) as store:
        active = store.active_run(name)
        assert active is not None and active.plan_digest.startswith("v2:")
        store.set_plan_digest(active.id, plan_digest_v1(api.load(plan, env=mig.env)))
    original = plan.read_text()
    plan.write_text(original.replace("batch_changes: 100", "batch_changes: 9"))
    with pytest.raises(TerminalError) as raised:
        run(mig, plan)
    assert "earlier migrator" in str(raised.value) and "restore the plan" in str(raised.value)

    plan.write_text(original)
    transactions(mig, "UPDATE items SET label = 'v1' WHERE id <= 3")
    assert run(mig, plan).outcome is not None
    with SQLiteStateStore(mig.state_path) as store:
        active = store.active_run(name)
        assert active is not None and active.plan_digest == plan_digest(api.load(plan, env=mig.env))
    plan.write_text(original.replace("batch_changes: 100", "batch_changes: 9"))
    transactions(mig, "UPDATE items SET label = 'v2' WHERE id <= 3")
    outcome = run(mig, plan).outcome
    assert outcome is not None and outcome.cdc is not None and outcome.cdc.caught_up
    assert_documents(mig, "items", expected(mig))
