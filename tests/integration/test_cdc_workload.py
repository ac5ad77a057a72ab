"""CDC acceptance without kills: a randomized live workload (tests/support/workload.py) followed
in process through `api.run`, and a deterministic case the workload test found. In the end the
target must equal the source, document by document, as computed from the source's rows by
tests/support/cdc_expected.py, independently of migrator's mapping code.

The kill -9 variants of the workload test are files of their own (test_cdc_workload_kill_stream.py,
test_cdc_workload_kill_poll.py), so that parallel workers (pytest -n, --dist loadfile) run them
side by side.
"""

from __future__ import annotations

import base64
import random
import threading
from typing import Any

import psycopg

from migrator import api
from migrator.state import SQLiteStateStore
from migrator.state.labels import SnapshotLabel
from tests.support.cdc_expected import assert_target_equals_source
from tests.support.cdc_workload import WORKLOAD_SEED, Setup, write_plan
from tests.support.workload import Workload

# The in-process test's large transaction: several batches' worth (phases.cdc.batch_changes, 2,000).
BIG_TXN_ROWS = 5_000

# -- in process, without kills: quicker to debug ---------------------------------------------------


def test_cdc_workload_through_the_api_until_caught_up(workload_setup: Any) -> None:
    """api.run: snapshot while the workload runs, catch up, compare; more workload (and a large
    transaction applied in several batches), catch up again, compare."""
    s: Setup = workload_setup(300)
    env = {
        "MIGRATOR_SOURCE_URL": s.env["MIGRATOR_SOURCE_URL"],
        "MIGRATOR_TARGET_URL": s.env["MIGRATOR_TARGET_URL"],
    }
    workload = Workload(s.pg_url, WORKLOAD_SEED + 7, max_transactions=150, pace=0.005)
    workload.start()
    outcome = api.run(s.plan, until="snapshot", state=s.state, env=env)
    assert outcome.snapshot is not None and not outcome.interrupted
    workload.wait()

    outcome = api.run(s.plan, until="caught-up", state=s.state, env=env)
    assert outcome.cdc is not None and outcome.cdc.caught_up
    assert_target_equals_source(s.pg_url, s.target)

    more = Workload(s.pg_url, WORKLOAD_SEED + 8, max_transactions=80, pace=0)
    more.start()
    more.request_big_transaction(BIG_TXN_ROWS)
    stats = more.wait()
    assert stats.big_rows >= BIG_TXN_ROWS
    outcome = api.run(s.plan, until="caught-up", state=s.state, env=env)
    assert outcome.cdc is not None and outcome.cdc.caught_up
    assert_target_equals_source(s.pg_url, s.target)


# -- a deterministic case of what the workload test found ------------------------------------------


def test_changes_made_while_a_resumed_snapshot_was_down_converge(workload_setup: Any) -> None:
    """The snapshot stops after its first chunk (customers 1-5, read at T1, the slot's point); while
    it is down, rows move from customers of later chunks into customers of the first one, and a
    customer of a later chunk changes its key to one in the first chunk's range; the resume reads
    the later chunks at T2 > T1, and CDC replays everything after T1.

    What those changes need is in neither place: the moved address's TOASTed line2 and the moved
    order's items are neither in the stream (unchanged since before T1) nor in the target (the old
    parents were read at T2, after the move; the new ones at T1, before it); likewise the re-keyed
    customer's TOASTed preferences and its orders' items. Where a change needs stored state that
    the target holds nowhere, migrator reads the document again from the source (ChangeApplier's
    `current`), and the replay of the later changes converges on it."""
    s: Setup = workload_setup(20)
    with psycopg.connect(s.pg_url, autocommit=True) as conn:
        big = "x" + base64.b64encode(random.Random(1).randbytes(6000)).decode()
        # Stored out of line before the snapshot; never changed again.
        address = conn.execute(
            "INSERT INTO addresses (customer_id, kind, line1, line2, city, country)"
            " VALUES (18, 'work', '1 Rue', %s, 'Lyon', 'FR') RETURNING id",
            (big,),
        ).fetchone()
        conn.execute(
            "UPDATE customers SET preferences = jsonb_build_object('blob', %s::text) WHERE id = 19", (big,)
        )
        order = conn.execute(
            "SELECT o.id FROM orders o WHERE customer_id BETWEEN 11 AND 18 AND EXISTS"
            " (SELECT 1 FROM order_items i WHERE i.order_id = o.id) ORDER BY id LIMIT 1"
        ).fetchone()
        assert address is not None and order is not None
    write_plan(s.plan, s.name, s.target.name, parallel=1, chunk_rows=5)
    env = {
        "MIGRATOR_SOURCE_URL": s.env["MIGRATOR_SOURCE_URL"],
        "MIGRATOR_TARGET_URL": s.env["MIGRATOR_TARGET_URL"],
    }

    stop = threading.Event()

    def after_first_chunk(event: Any) -> None:
        if getattr(event, "kind", "") == "snapshot.chunk_finished" and event.collection == "customers":
            stop.set()

    outcome = api.run(s.plan, until="snapshot", state=s.state, env=env, sinks=[after_first_chunk], stop=stop)
    assert outcome.interrupted
    with SQLiteStateStore(s.state) as store:
        (run,) = store.runs()
        done = [(c.lo, c.hi) for c in store.chunks(run.id, "customers") if c.status == "done"]
    assert done == [(None, ["5"])], done
    with psycopg.connect(s.pg_url, autocommit=True) as conn:
        conn.execute("UPDATE addresses SET customer_id = 3 WHERE id = %s", (address[0],))
        conn.execute("UPDATE orders SET customer_id = 4 WHERE id = %s", (order[0],))
        conn.execute("UPDATE customers SET id = -19 WHERE id = 19")  # children follow (ON UPDATE CASCADE)
    outcome = api.run(s.plan, until="caught-up", state=s.state, env=env)
    assert outcome.cdc is not None and outcome.cdc.caught_up
    with SQLiteStateStore(s.state) as store:
        (run,) = store.runs()
        assert [c.label for c in store.checkpoints(run.id, "snapshot")].count(SnapshotLabel.REREAD) == 1
    assert_target_equals_source(s.pg_url, s.target)
