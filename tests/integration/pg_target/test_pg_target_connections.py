"""The PostgreSQL target's connections (adapters/postgres_target/connection.py): one a thread, and
an ended thread's closed once another is opened. The snapshot writes each chunk from a
write-behind thread of its own; kept open, their connections ran the target out of connections
after ~100 chunks ("sorry, too many clients already")."""

from __future__ import annotations

import threading

from migrator.adapters.postgres_target.connection import Connections, TargetEndpoint
from tests.support.pg_target import PgToPg
from tests.support.runs import wait_for

COUNT_SQL = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def test_an_ended_threads_connection_is_closed_when_another_is_opened(pg2pg: PgToPg) -> None:
    connections = Connections(TargetEndpoint(pg2pg.target_url))
    try:
        for _ in range(5):
            thread = threading.Thread(target=lambda: connections.run(lambda conn: conn.execute("SELECT 1")))
            thread.start()
            thread.join()
        # This thread's first use opens its own connection and closes the five ended threads' ones.
        connections.run(lambda conn: conn.execute("SELECT 1"))
        # (A backend ends a moment after its client closed the connection.)
        wait_for(
            lambda: pg2pg.target_rows(COUNT_SQL) == [(1,)], "the ended threads' connections to close", 10
        )
    finally:
        connections.close()
    wait_for(lambda: pg2pg.target_rows(COUNT_SQL) == [(0,)], "every connection to close", 10)
