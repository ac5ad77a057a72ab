"""The CDC workload tests' kill -9 scenario (tests/integration/test_cdc_workload_kill_*.py): a
randomized live workload, `migrator run --json` killed with SIGKILL at seeded random moments in the
snapshot and in CDC and started again each time, then caught up and compared with the source
(tests/support/cdc_expected.py); then a large transaction, killed while it is decoded and applied,
caught up and compared again. A `Variant` says the CDC mode and how much of each.

In poll mode, some kills come at the moment that mode has of its own: after a batch and its
checkpoint are on the target, before the slot is advanced past them (held open by the set-up's
ADVANCE_HOOK, tests/support/cdc_workload.py). The next process starts with the slot behind the
target's checkpoint, and must replay harmlessly.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from bson.int64 import Int64

from migrator.adapters.postgres.lsn import Lsn
from migrator.state import SQLiteStateStore
from migrator.state.labels import SnapshotLabel
from tests.support.cdc_expected import assert_target_equals_source
from tests.support.cdc_workload import KILL_SEED, WORKLOAD_SEED, Setup
from tests.support.cli_process import MigratorRun
from tests.support.workload import Workload, WorkloadStats

PACE = 0.25  # mean pause between the workload's transactions, in seconds (each is the catch-up's work)
WORKLOAD_TRANSACTIONS = 400  # the first workload's bound
WORKLOAD_TIMEOUT = 180.0  # for the workload to have committed every kind of change
# What the workload must have committed (each at least once) before it stops: every kind of change.
KINDS = (
    "customer.insert", "customer.update", "customer.delete", "customer.rekey", "address.move",
    "profile.insert", "profile.delete", "order.move", "order.rekey", "order.rekey_items", "item.move",
    "toast.write.customers", "toast.write.orders", "toast.write.addresses",
)  # fmt: skip
FINAL_TIMEOUT = 900.0
START_TIMEOUT = 60.0  # for the workload's first transactions


@dataclass
class Kill:
    phase: str  # 'snapshot' or 'cdc': where the process was when killed
    after_s: float  # since the process started
    applied: str | None = None  # the last position it reported durable
    unadvanced: bool = False  # poll mode: killed with a batch and its checkpoint applied, the slot behind


def _kill_at_random(
    s: Setup, rng: random.Random, kills: list[Kill], delay: tuple[float, float]
) -> MigratorRun:
    """Start `migrator run` (following changes), let CDC run for a random delay, SIGKILL it."""
    p = s.start()
    p.wait_for("phase.started", phase="cdc")
    p.run_for(rng.uniform(*delay))
    kills.append(_killed(s, p))
    return p


def _killed(s: Setup, p: MigratorRun) -> Kill:
    """SIGKILL `p` in CDC: the kill, with the position of the last batch it applied."""
    s.kill9(p)
    positions = [e["position"] for e in p.events if e["event"] == "cdc.batch_applied"]
    return Kill("cdc", time.monotonic() - p.started, positions[-1] if positions else None)


def _kill_in_its_apply(s: Setup, rng: random.Random, variant: Variant, first: int | None) -> Kill:
    """Start `migrator run`, wait until the large transaction's first product (near its end) is
    on the target, let it run a little longer, SIGKILL it: its open target transaction is left
    on the server, for the next run to end."""
    big_product = {"_id": Int64(first) if first is not None else None}
    p = s.start()
    p.wait_for("phase.started", phase="cdc")
    deadline = time.monotonic() + FINAL_TIMEOUT
    while s.target.products.find_one(big_product, {"_id": 1}) is None:
        assert time.monotonic() < deadline, "the large transaction never reached the target"
        p.run_for(0.05)
    if variant.mode == "stream":
        # Soon after its first product: the products come last, and 8,000 rows leave only a few
        # batches after it.
        p.run_for(rng.uniform(0.0, 0.2))
    else:
        # Poll mode applies it faster (from memory: a shorter delay).
        p.run_for(rng.uniform(0.1, 1.0))
    return _killed(s, p)


def _kill_before_advance(
    s: Setup, rng: random.Random, kills: list[Kill], delay: tuple[float, float], at_or_past: str = ""
) -> str:
    """Poll mode: start `migrator run`, let CDC run for a random delay, then hold its next slot
    advance (to `at_or_past` or further) with ADVANCE_HOOK's gate. There the batch and its
    checkpoint are on the target and the slot is behind them: SIGKILL it. Returns the position."""
    assert s.gate is not None
    p = s.start()
    p.wait_for("phase.started", phase="cdc")
    p.run_for(rng.uniform(*delay))
    s.gate.write_text(at_or_past, encoding="utf-8")
    try:
        # (Seconds as a rule; longer when the held batch ends the large transaction. Never:
        # the hook no longer fits PollingStream, and the process's stderr says why.)
        p.wait_for("test.advance_held", timeout=180)
        held = next(e["position"] for e in reversed(p.events) if e["event"] == "test.advance_held")
        checkpoint = s.target["_migrator"].find_one({"_id": f"cdc:{s.name}"})
        slot = s.slot()
        assert checkpoint is not None and checkpoint["position_text"] == held, (checkpoint, held)
        assert slot is not None and Lsn.parse(slot[0]) < Lsn.parse(held), (slot, held)
        s.kill9(p)
    finally:
        s.gate.unlink(missing_ok=True)
    kills.append(Kill("cdc", time.monotonic() - p.started, held, unadvanced=True))
    return held


def _catch_up(s: Setup) -> dict[str, Any]:
    """`migrator run --until caught-up` to its end: exit 0, caught up."""
    final = s.start(until="caught-up")
    code = final.finish(FINAL_TIMEOUT)
    assert code == 0, final.describe()
    result = final.result()
    assert result["stopped_after"] == "caught-up" and result["cdc"]["caught_up"] is True, result
    print(f"caught up in {time.monotonic() - final.started:.1f}s: {result['cdc']}")
    return result


def _assert_checkpoints(s: Setup, result: dict[str, Any]) -> None:
    """The checkpoint beside the data is the position reported, and the slot was acknowledged."""
    checkpoint = s.target["_migrator"].find_one({"_id": f"cdc:{s.name}"})
    assert checkpoint is not None and checkpoint["position_text"] == result["cdc"]["position"]
    with SQLiteStateStore(s.state) as store:
        (run,) = store.runs()
        (start,) = [c for c in store.checkpoints(run.id, "snapshot") if c.label == SnapshotLabel.SLOT]
    slot = s.slot()
    # (The slot may be acknowledged past the last applied commit: WAL with nothing to apply.)
    assert slot is not None and Lsn.parse(start.position) < Lsn.parse(slot[0]), (start.position, slot)


def _not_yet_committed(stats: WorkloadStats) -> list[str]:
    """What of KINDS, rolled back transactions and savepoints, and updates leaving TOASTed values
    unchanged the workload has not committed yet."""
    done = {kind for kind, n in dict(stats.operations).items() if n}
    missing = [kind for kind in KINDS if kind not in done]
    missing += [] if any(kind.startswith("toast.touch.") for kind in done) else ["toast.touch.*"]
    missing += [] if stats.rolled_back else ["a rolled back transaction"]
    return missing + ([] if stats.savepoints_rolled_back else ["a rolled back savepoint"])


@dataclass(frozen=True)
class Variant:
    mode: str  # phases.cdc.mode
    customers: int  # the demo data's customers, before the workload
    big_txn_rows: int  # row changes of the large transaction (0: none)
    kills_in_snapshot: int
    kills_in_cdc: int  # before the large transaction; kills at the large transaction come on top
    kills_before_advance: int  # poll mode: how many of kills_in_cdc wait for a held slot advance
    min_kills: int  # in all


# The replication stream (phases.cdc.mode: stream), and SQL polling with fewer kills, some of them
# with the slot advance held. The large transactions are several batches (phases.cdc.batch_changes,
# 2,000) or polls (phases.cdc.poll_changes, 2,000) of writes; in stream mode, many times the
# decoding memory (64kB): MIGRATOR_TEST_BIG_TXN_ROWS and MIGRATOR_TEST_POLL_BIG_TXN_ROWS set their
# sizes (0 leaves that step out, for a quicker run while debugging).
#
# What each kill proves, and why there are no more of them (each costs a process start and its
# replay, on the 2 cores the suite shares; the sizes are not the point, the moments are):
# - in the snapshot (two tries in stream mode, so that one lands there before the copy ends; one in
#   poll mode, where the snapshot is the same code): an interrupted copy resumes, and the changes
#   committed before the slot existed or during the copy are not lost;
# - in CDC at random moments (three): mid-batch and between batches, with the workload writing
#   every shape of change, the next process replays from the target's checkpoint harmlessly;
# - poll mode, two of those three with the slot advance held: the checkpoint on the target, the slot
#   behind it (the window poll mode has of its own);
# - the large transaction: stream mode, while the server decodes and streams it and migrator
#   spools it; both modes, once part of it is applied (no checkpoint: replayed whole), its open
#   target transaction left on the server for the catch-up's run to end (killSessions: no wait for
#   the server's 60 s limit); poll mode, once all of it is applied with the slot before it.
# Four batches (stream) and three polls (poll) of the large transaction are enough for a kill to
# land between them and for the replay to span several.
# Large transactions tried until a kill lands inside one's apply (a fast machine may finish it first).
BIG_ATTEMPTS = 4
STREAM = Variant(
    "stream",
    customers=800,
    big_txn_rows=int(os.environ.get("MIGRATOR_TEST_BIG_TXN_ROWS", 8_000)),
    kills_in_snapshot=2,
    kills_in_cdc=3,
    kills_before_advance=0,
    min_kills=7,
)
POLL = Variant(
    "poll",
    customers=800,
    big_txn_rows=int(os.environ.get("MIGRATOR_TEST_POLL_BIG_TXN_ROWS", 6_000)),
    kills_in_snapshot=1,
    kills_in_cdc=3,
    kills_before_advance=2,
    min_kills=6,
)


def follow_a_random_workload_through_kills(setup: Callable[[int, str], Setup], variant: Variant) -> None:
    """The scenario (the module's doc) on a set-up (the `workload_setup` fixture) of `variant`."""
    s = setup(variant.customers, variant.mode)
    big_rows = variant.big_txn_rows
    print(
        f"{variant.mode} mode: workload seed {WORKLOAD_SEED}, kill seed {KILL_SEED}, large transaction "
        f"{big_rows} rows"
    )
    rng = random.Random(KILL_SEED)
    # At most WORKLOAD_TRANSACTIONS (all kinds of change among them, in the seeded sequence): on a
    # busy machine the kills take longer, and the catch-up should not grow with them.
    workload = Workload(
        s.pg_url, WORKLOAD_SEED, max_transactions=WORKLOAD_TRANSACTIONS, max_seconds=600, pace=PACE
    )
    workload.start()
    # Changes before the slot exists too: a few transactions committed before the first process.
    deadline = time.monotonic() + START_TIMEOUT
    while workload.stats.committed < 5:
        assert not workload.failed and time.monotonic() < deadline, workload.error
        time.sleep(0.05)
    kills: list[Kill] = []
    started = time.monotonic()

    # 1. Kills during the snapshot: once the copy has begun, after a short random delay.
    for _ in range(variant.kills_in_snapshot):
        p = s.start()
        p.wait_for("snapshot.table_planned")
        p.run_for(rng.uniform(0.0, 0.4))
        in_snapshot = not p.seen("phase.started", phase="cdc")
        s.kill9(p)
        kills.append(Kill("snapshot" if in_snapshot else "cdc", time.monotonic() - p.started))
        assert not workload.failed, workload.error

    # 2. Kills during CDC, at seeded random delays after it starts, while the workload goes on; in
    # poll mode, some of them at the first slot advance after the delay.
    before_advance = set(rng.sample(range(variant.kills_in_cdc), variant.kills_before_advance))
    for i in range(variant.kills_in_cdc):
        if i in before_advance:
            _kill_before_advance(s, rng, kills, (0.5, 4.0))
        else:
            _kill_at_random(s, rng, kills, (0.5, 4.0))
        assert not workload.failed, workload.error
    # The workload goes on (while the last process is down) until it has committed every kind of
    # change: the kills do not wait for it, the comparison needs it.
    deadline = time.monotonic() + WORKLOAD_TIMEOUT
    while missing := _not_yet_committed(workload.stats):
        assert not workload.failed, workload.error
        assert time.monotonic() < deadline, f"never committed {missing}: {workload.stats.summary()}"
        time.sleep(0.1)
    stats = workload.stop()
    print(f"workload: {stats.summary()}")
    print(
        f"kills: {[(k.phase + ' unadvanced' * k.unadvanced, round(k.after_s, 2)) for k in kills]}; "
        f"{time.monotonic() - started:.1f}s so far"
    )
    assert Counter(k.phase for k in kills)["snapshot"] >= 1, kills
    assert sum(k.phase == "cdc" for k in kills) >= variant.kills_in_cdc, kills

    # 3. Catch up with the stopped source; the target equals the source.
    result = _catch_up(s)
    counts = assert_target_equals_source(s.pg_url, s.target)
    print(f"compared: {counts}; {time.monotonic() - started:.1f}s so far")
    _assert_checkpoints(s, result)
    # The workload did what it claims: every kind of change was committed.
    for kind in KINDS:
        assert stats.operations[kind] > 0, f"the workload never committed {kind}: {stats.summary()}"
    assert stats.rolled_back > 0 and stats.savepoints_rolled_back > 0
    assert sum(n for k, n in stats.operations.items() if k.startswith("toast.touch.")) > 0

    # 4. THE LARGE TRANSACTION (variant.big_txn_rows rows; 0 leaves this step out). A large
    # rolled-back transaction, then one of `big_rows` row changes committed amid more workload;
    # `migrator run` killed while it decodes, spools and applies it (a partial apply has no
    # checkpoint: the next process replays it whole), then caught up and compared again.
    if not big_rows:
        assert len(kills) >= variant.min_kills
        return
    more = Workload(s.pg_url, WORKLOAD_SEED + 1, max_transactions=120, max_seconds=120, pace=PACE)
    more.start()
    for attempt in range(1, BIG_ATTEMPTS + 1):
        big_done = more.request_big_transaction(big_rows)
        assert big_done.wait(600) and not more.failed, more.error
        assert more.big_commit_lsn is not None and more.big_tag is not None
        print(f"large transaction {attempt} committed; {time.monotonic() - started:.1f}s so far")
        first = more.big_first_product
        big_sku = {"sku": {"$regex": f"^BIG-{more.big_tag}-"}}
        if variant.mode == "stream":
            # (a) At a random moment: mostly while the server decodes and streams it and migrator
            # spools it (on a fast machine, sometimes once it is applied: not asserted).
            _kill_at_random(s, rng, kills, (1.0, 6.0))
        # (b) Once part of it is on the target (its product inserts come last): a partial apply.
        partial_kill = _kill_in_its_apply(s, rng, variant, first)
        kills.append(partial_kill)
        if partial_kill.applied is None or Lsn.parse(partial_kill.applied) < Lsn.parse(more.big_commit_lsn):
            break
        # The rest of it was applied before the kill landed (a fast, quiet machine): the kill
        # tested nothing of a partial apply, so another large transaction is killed instead.
        print("the kill meant for the large transaction came after it was applied: another one")
    else:
        pytest.fail(f"{BIG_ATTEMPTS} kills meant for a large transaction all came after it was applied")
    partial = s.target.products.count_documents({"_id": {"$gte": first}})
    if variant.mode == "poll":
        # (c) Once all of it is on the target with the checkpoint past its commit, the slot still
        # before it: the next process must not apply it again from the slot's position, nor stall
        # on a slot whose first polls (poll_changes each) hold nothing but it. (The workload has
        # one connection: the first commit past big_precommit_lsn is the large transaction's.)
        assert more.big_precommit_lsn is not None
        held = _kill_before_advance(s, rng, kills, (0.0, 0.0), at_or_past=more.big_precommit_lsn)
        assert Lsn.parse(held) >= Lsn.parse(more.big_precommit_lsn)
        assert s.target.products.count_documents(big_sku) > 0.9 * big_rows
    assert not more.failed, more.error
    more_stats = more.stop()
    print(
        f"large transaction: {more_stats.summary()}; {partial} of its product inserts applied at the kill; "
        f"kills: {[(k.phase + ' unadvanced' * k.unadvanced, round(k.after_s, 2)) for k in kills[-3:]]}; "
        f"{time.monotonic() - started:.1f}s so far"
    )
    assert len(kills) >= variant.min_kills
    result = _catch_up(s)
    counts = assert_target_equals_source(s.pg_url, s.target)
    print(f"compared: {counts}; {time.monotonic() - started:.1f}s in all")
    _assert_checkpoints(s, result)
    assert more_stats.big_rows >= big_rows and more_stats.big_rolled_back_rows > 0, more_stats.summary()
    assert s.target.products.count_documents(big_sku) > 0.9 * big_rows
    assert s.target.products.count_documents({"sku": {"$regex": "^(RB|SP)-"}}) == 0  # rolled back
    retries = Counter(
        e["message"].split(";")[0]
        for process in s.processes
        for e in process.events
        if e["event"] == "notice" and e.get("level") == "warn" and "retrying in" in e.get("message", "")
    )
    print(f"retried: {dict(retries) or 'nothing'}")
    if variant.mode == "stream":
        # It reached migrator as a streamed in-progress transaction (protocol 2), spooled to disk.
        assert s.slot_stats().get("stream_txns", 0) > 0, s.slot_stats()
