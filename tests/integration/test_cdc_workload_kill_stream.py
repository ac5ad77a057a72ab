"""CDC acceptance, replication stream (`phases.cdc.mode: stream`, the default): a randomized live
workload, `migrator run` killed with SIGKILL again and again, and in the end a target equal to the
source (tests/support/cdc_kills.py; the poll variant is test_cdc_workload_kill_poll.py).

The workload (tests/support/workload.py) commits transactions of every shape the demo schema allows
(inserts, updates, deletes and key changes at every level of the customer document, children moving
between parents, profiles coming and going, TOASTed values left unchanged by later updates, rolled
back transactions and savepoints, and once a large transaction) while `migrator run PLAN --json`
follows it: first through the snapshot, then CDC. The process is killed with SIGKILL at seeded
random moments, in the snapshot and in CDC, and started again each time. Then the workload stops,
`migrator run --until caught-up` finishes, and every customer and product document must equal the
document computed from the source's rows by tests/support/cdc_expected.py, from SQL, independently
of migrator's mapping code.

The database decodes with logical_decoding_work_mem at 64kB, so the large transaction reaches
migrator as a streamed in-progress transaction (protocol 2) that it spools to disk; it is killed
while that happens and once part of it is applied; that last kill's open target transaction is
ended by the catch-up's run (killSessions), which does not wait for the server's 60 s limit. Its
size: tests/support/cdc_kills.py STREAM.
"""

from __future__ import annotations

from typing import Any

from tests.support.cdc_kills import STREAM, follow_a_random_workload_through_kills


def test_cdc_follows_a_random_workload_through_repeated_kill_9(workload_setup: Any) -> None:
    follow_a_random_workload_through_kills(workload_setup, STREAM)
