"""CDC acceptance, SQL polling (`phases.cdc.mode: poll`: pg_logical_slot_peek_binary_changes, then
pg_replication_slot_advance once a batch and its checkpoint are on the target): the kill -9 workload
test of test_cdc_workload_kill_stream.py (tests/support/cdc_kills.py) with fewer kills, and kills at
the moment that poll mode has of its own: after a batch and its checkpoint are on the target,
before the slot is advanced past them. That window is microseconds wide, so the test widens it: a
sitecustomize hook (tests/support/cdc_workload.py ADVANCE_HOOK) in the processes it starts holds
the advance while a gate file exists and says so on stdout; the test checks that the target holds
the checkpoint and the slot does not, and kills the process there. The next process starts with
the slot behind the target's checkpoint, and must replay harmlessly, also when the held batch
ended the large transaction.

The sizes: tests/support/cdc_kills.py POLL.
"""

from __future__ import annotations

from typing import Any

from tests.support.cdc_kills import POLL, follow_a_random_workload_through_kills


def test_cdc_follows_a_random_workload_through_repeated_kill_9(workload_setup: Any) -> None:
    follow_a_random_workload_through_kills(workload_setup, POLL)
