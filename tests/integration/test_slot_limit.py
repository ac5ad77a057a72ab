"""A replication slot asked for on a server whose max_replication_slots are all taken fails with
SQLSTATE 53400, a limit that waiting does not lift: migrator stops at once with a terminal error
that names the server and what frees a slot, instead of retrying until its budget runs out; with
a slot freed, the same call succeeds."""

from __future__ import annotations

import pytest

from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.snapshot import SlotExporter
from migrator.errors import SourceError, TransientError
from tests.support.servers import PgServer, admin_connection, shared_server

FILLER = "migrator_test_filler_"


def test_creating_a_slot_on_a_full_server_is_a_terminal_error_naming_the_limit(
    pg_server: PgServer, pg_url: str
) -> None:
    if shared_server(pg_server.url):
        pytest.skip("fills every replication slot of the server: only on this worker's own cluster")
    endpoint = PgEndpoint(pg_url)
    with admin_connection(pg_server.url) as conn:
        limit = int(conn.execute("SELECT current_setting('max_replication_slots')").fetchone()[0])  # type: ignore[index]
        used = int(conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0])  # type: ignore[index]
        fillers = [f"{FILLER}{i}" for i in range(limit - used)]
        for name in fillers:  # physical slots reserve no WAL until used
            conn.execute("SELECT pg_create_physical_replication_slot(%s)", [name])
        try:
            with pytest.raises(SourceError) as raised:
                SlotExporter(endpoint, "migrator_test_full").close()
            assert not isinstance(raised.value, TransientError)
            assert "SQLSTATE 53400" in raised.value.message
            assert endpoint.name in raised.value.message
            assert "pg_replication_slots" in (raised.value.hint or "")
            assert "max_replication_slots" in (raised.value.hint or "")
            conn.execute("SELECT pg_drop_replication_slot(%s)", [fillers.pop()])
            exporter = SlotExporter(endpoint, "migrator_test_full")
            exporter.close()
            conn.execute("SELECT pg_drop_replication_slot('migrator_test_full')")
        finally:
            for name in fillers:
                conn.execute("SELECT pg_drop_replication_slot(%s)", [name])
