"""A `migrator run` killed (SIGKILL) while a CDC batch's target transaction is open: MongoDB keeps
that transaction and its documents' locks after the process is gone, until
transactionLifetimeLimitSeconds (60 s by default). The next run ends it at once: the killed
process recorded its session in the ownership record before its first transaction, and the next
one sends killSessions with it once it owns the run (docs/architecture.md, "Transactions a killed
process left open"). Without that, the next run's first batch meets WriteConflict on those
documents, retried for up to a minute.

The batch is held open by a test hook (a sitecustomize.py on the process's PYTHONPATH): while its
gate file exists, the first batch with writes stops after its writes, inside its transaction,
says so on stdout with its session id, and waits to be killed.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from bson.binary import Binary
from pymongo import errors as mongo

from tests.support.cli_process import MigratorRun
from tests.support.docs import Migration, sorted_documents

PLAN = "abandoned-txn"
EVENT_TIMEOUT = 120.0  # a bound on each wait, so that a hang fails: not a speed expectation
WRITE_CONFLICT = 112

HOLD_HOOK = r'''"""Test hook of tests/integration/test_cdc_abandoned_transaction.py. While the gate file exists,
the first CDC batch with writes holds its target transaction open after its writes (before its
checkpoint and its commit), says so on stdout with its session id, and waits to be killed. A batch
whose writes meet WriteConflict (another transaction holds a document) says so on stdout."""

import json
import os
import sys
import time

from pymongo import errors

_GATE = os.environ.get("MIGRATOR_TEST_HOLD_GATE")
_WRITE_CONFLICT = 112


def _say(event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _codes(exc):
    details = exc.details or {}
    return {exc.code, *(e.get("code") for e in details.get("writeErrors") or [])}


if _GATE:
    from migrator.adapters.mongodb import applier

    _execute = applier.ChangeApplier._execute

    def _execute_and_hold(self, ops, session):
        try:
            _execute(self, ops, session)
        except errors.OperationFailure as exc:
            if _WRITE_CONFLICT in _codes(exc):
                _say({"event": "test.write_conflict"})
            raise
        if session is not None and ops and os.path.exists(_GATE):
            _say({"event": "test.transaction_held", "session": bytes(session.session_id["id"]).hex()})
            while True:
                time.sleep(1)

    applier.ChangeApplier._execute = _execute_and_hold
'''


def _recorded(mig: Migration) -> list[str]:
    """The session ids (hex) the ownership record lists for the plan's run."""
    owner = mig.client[mig.database]["_migrator"].find_one({"_id": f"owner:{PLAN}"})
    assert owner is not None
    # (This client decodes a UUID-subtype Binary as a uuid.UUID.)
    return [s.hex if isinstance(s, uuid.UUID) else bytes(s).hex() for s in owner.get("sessions") or []]


def _conflict(mig: Migration, doc_id: Any) -> int | None:
    """The error code a write to document `doc_id` in a transaction of the test's own meets (None:
    it would succeed; the transaction is aborted either way)."""
    with mig.client.start_session() as session:
        session.start_transaction()
        try:
            mig.client[mig.database]["items"].update_one(
                {"_id": doc_id}, {"$set": {"probe": 1}}, session=session
            )
        except mongo.OperationFailure as exc:
            return exc.code
        finally:
            if session.in_transaction:
                session.abort_transaction()
    return None


def test_the_next_run_ends_the_transaction_a_killed_run_left_open(mig: Migration, tmp_path: Path) -> None:
    mig.sql(
        "CREATE TABLE items (id integer PRIMARY KEY, v text)",
        "INSERT INTO items SELECT i, 'v' || i FROM generate_series(1, 20) i",
    )
    plan = mig.plan(
        "- {name: items, from: items, key: id}", name=PLAN, phases="cdc: {heartbeat_interval: 1s}"
    )
    mig.run(plan)  # the snapshot
    mig.sql("UPDATE items SET v = 'held' WHERE id <= 5")  # the batch the kill leaves open

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOLD_HOOK, encoding="utf-8")
    gate = tmp_path / "hold.gate"
    gate.touch()
    env = {k: v for k, v in os.environ.items() if k != "MIGRATOR_STATE"}
    env.update(mig.env)
    env.update(
        PYTHONPATH=os.pathsep.join([str(hook), *filter(None, [env.get("PYTHONPATH")])]),
        MIGRATOR_TEST_HOLD_GATE=str(gate),
    )
    args = ["run", str(plan), "--state", str(mig.state_path)]
    held: str | None = None
    killed = MigratorRun(args, env, tmp_path, EVENT_TIMEOUT)
    try:
        held = str(killed.wait_for("test.transaction_held")["session"])
        # Recorded beside the data before its transaction began.
        assert held in _recorded(mig)
        # The open transaction holds the documents it wrote.
        assert _conflict(mig, 1) == WRITE_CONFLICT
        killed.kill9()
        gate.unlink()
        assert _conflict(mig, 1) == WRITE_CONFLICT  # kept by the server after the process is gone

        mig.sql(
            "UPDATE items SET v = 'after' WHERE id IN (1, 6)",
            "DELETE FROM items WHERE id = 20",
            "INSERT INTO items VALUES (21, 'new')",
        )
        final = MigratorRun([*args, "--until", "caught-up"], env, tmp_path, EVENT_TIMEOUT)
        assert final.finish() == 0, final.describe()
        # The next run ended the session (it says so, and forgot it): its transaction is gone.
        notices = [e["message"] for e in final.events if e["event"] == "notice" and e.get("level") == "info"]
        assert any(m.startswith("ended 1 target session(s)") for m in notices), notices
        assert held not in _recorded(mig)
        # Its documents were free for the run's first batch: no write of it met a conflict (which
        # pymongo's with_transaction would have retried until the server aborted the old one).
        assert not final.seen("test.write_conflict"), final.describe()
        # The documents are the source's rows, the held batch's and the later changes included.
        expected = [{"_id": i, "v": v} for i, v in mig.rows("SELECT id, v FROM items ORDER BY id")]
        assert sorted_documents(mig.documents("items")) == expected
        assert expected[0] == {"_id": 1, "v": "after"} and expected[4] == {"_id": 5, "v": "held"}
    finally:
        killed.kill_if_running()
        if held is not None:
            # What a failed assertion may have left open, so that dropping the database does not
            # wait on it (a no-op once the product ended it).
            mig.client.admin.command({"killSessions": [{"id": Binary(bytes.fromhex(held), 4)}]})
