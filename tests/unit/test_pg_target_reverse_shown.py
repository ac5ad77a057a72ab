"""Whether a snapshot of a PostgreSQL target shows a decoded commit (adapters/postgres/visibility.py `shown`, which reverse sync's feed and the CDC reader use): pgoutput
gives the transaction's xid in 32 bits, `pg_current_snapshot()` gives 64-bit ids (epoch and xid)
as `xmin:xmax:running`. A transaction at or past xmax, or among the running ones, is not shown
yet (its commit is in the WAL before the committing session leaves the running transactions).
The snapshots are written by hand as PostgreSQL prints them."""

from __future__ import annotations

from migrator.adapters.postgres.visibility import shown

EPOCH = 1 << 32  # the first transaction id of epoch 1


def test_a_transaction_below_xmax_and_not_running_is_shown() -> None:
    assert shown(700, "690:726:")
    assert shown(725, "690:726:700,710")
    assert shown(3, "726:726:")  # long done


def test_one_at_or_past_xmax_or_running_is_not() -> None:
    assert not shown(726, "726:726:")  # committed in the WAL, latestCompletedXid not past it yet
    assert not shown(730, "726:726:")
    assert not shown(710, "690:726:700,710")


def test_the_epoch_is_set_aside_and_wraparound_is_counted() -> None:
    # Epoch 1: xid 5 of it is EPOCH + 5.
    assert shown(5, f"{EPOCH + 1}:{EPOCH + 9}:")
    assert not shown(9, f"{EPOCH + 1}:{EPOCH + 9}:")
    assert not shown(5, f"{EPOCH + 1}:{EPOCH + 9}:{EPOCH + 5}")
    # Just after the wrap: xmax is EPOCH + 2, a transaction of the epoch before (2^32 - 3) is
    # below it and shown; one still running is not; one past xmax in the new epoch is not.
    assert shown(EPOCH - 3, f"{EPOCH - 10}:{EPOCH + 2}:")
    assert not shown(EPOCH - 3, f"{EPOCH - 10}:{EPOCH + 2}:{EPOCH - 3}")
    assert not shown(2, f"{EPOCH - 10}:{EPOCH + 2}:")
    # Just before the wrap: xmax is 2^32 - 2, a transaction past it has wrapped to 1.
    assert not shown(1, f"{EPOCH - 20}:{EPOCH - 2}:")
    assert shown(EPOCH - 5, f"{EPOCH - 20}:{EPOCH - 2}:")
