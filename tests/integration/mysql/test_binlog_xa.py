"""XA transactions in the binlog (MariaDB): a two-phase XA is written at its XA PREPARE and decided
later, so one that changed a mapped table stops change capture with a terminal error naming it;
one on other tables is passed over, and XA COMMIT ... ONE PHASE is an ordinary transaction.
Preflight warns where the server has prepared XA transactions."""

from __future__ import annotations

import pytest

from migrator.adapters.base import Change
from migrator.adapters.mysql import MysqlSource
from migrator.errors import SourceError, TerminalError
from migrator.findings import Severity
from tests.support.mariadb import connect
from tests.support.mysql_binlog import database, execute, position_now, read_transactions, reading


def _schema(url: str) -> None:
    execute(
        url,
        "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB",
        "CREATE TABLE other (id INT PRIMARY KEY) ENGINE=InnoDB",
    )


def test_a_prepared_xa_on_a_mapped_table_stops_capture(mysql_url: str) -> None:
    _schema(mysql_url)
    db = database(mysql_url)
    start = position_now(mysql_url)
    execute(
        mysql_url,
        # Two-phase, on a table that is not mapped: nothing to follow.
        "XA START 'other1'",
        "INSERT INTO other VALUES (1)",
        "XA END 'other1'",
        "XA PREPARE 'other1'",
        "XA COMMIT 'other1'",
        # One phase: committed at once, as any transaction.
        "XA START 'one'",
        "INSERT INTO t VALUES (1)",
        "XA END 'one'",
        "XA COMMIT 'one' ONE PHASE",
        "INSERT INTO t VALUES (2)",
        # Two-phase on the mapped table, then rolled back: its insert never happened.
        "XA START 'undone'",
        "INSERT INTO t VALUES (3)",
        "XA END 'undone'",
        "XA PREPARE 'undone'",
        "XA ROLLBACK 'undone'",
        "INSERT INTO t VALUES (4)",
    )
    with reading(mysql_url, ["t"], start) as reader:
        events = read_transactions(reader, 2)
        assert [e.new for e in events if isinstance(e, Change)] == [{"id": 1}, {"id": 2}]
        with pytest.raises(SourceError) as stopped:
            read_transactions(reader, 1)
    assert isinstance(stopped.value, TerminalError)
    assert "'undone'" in stopped.value.message and f"{db}.t" in stopped.value.message
    assert "XA" in (stopped.value.hint or "")


def test_preflight_warns_when_the_server_has_prepared_xa_transactions(mysql_url: str) -> None:
    _schema(mysql_url)
    execute(
        mysql_url, "XA START 'seen'", "INSERT INTO other VALUES (1)", "XA END 'seen'", "XA PREPARE 'seen'"
    )
    execute(mysql_url, "XA COMMIT 'seen'")
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Com_xa_prepare'")
        prepared = int(cur.fetchone()[1])
    assert prepared >= 1
    source = MysqlSource(mysql_url)
    try:
        found = source.server_findings(source.inspect([]), "p")
    finally:
        source.close()
    warned = [f for f in found if f.check == "source.xa_transactions"]
    assert [(f.severity, f.subject) for f in warned] == [(Severity.WARN, "Com_xa_prepare")]
    assert f"prepared {prepared} XA" in warned[0].message
