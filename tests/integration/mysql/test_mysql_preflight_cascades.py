"""Foreign-key actions the binlog does not carry: first what the server writes (no row event for a
child row changed by ON DELETE CASCADE or ON UPDATE SET NULL), then preflight refusing a mapped
child of such a key, and its fix run against the server."""

from __future__ import annotations

import pymysql
import pytest

from migrator.adapters.base import Change, TransactionBegun, TransactionCommitted
from migrator.adapters.mysql import MysqlSource
from migrator.findings import Finding, Severity
from tests.support.mariadb import connect, rows
from tests.support.mysql_binlog import database, execute, position_now, read_transactions, reading

ROW_IS_REFERENCED = 1451  # ER_ROW_IS_REFERENCED_2: a RESTRICT key refuses the parent's delete


def _schema(url: str) -> None:
    execute(
        url,
        "CREATE TABLE parent (id INT PRIMARY KEY, code INT NOT NULL, UNIQUE KEY (code)) ENGINE=InnoDB",
        "CREATE TABLE cascaded (id INT PRIMARY KEY, parent_id INT, CONSTRAINT cascaded_parent FOREIGN KEY "
        "(parent_id) REFERENCES parent (id) ON DELETE CASCADE) ENGINE=InnoDB",
        "CREATE TABLE nulled (id INT PRIMARY KEY, parent_code INT, CONSTRAINT nulled_parent FOREIGN KEY "
        "(parent_code) REFERENCES parent (code) ON UPDATE SET NULL ON DELETE SET NULL) ENGINE=InnoDB",
        "CREATE TABLE restricted (id INT PRIMARY KEY, parent_id INT, CONSTRAINT restricted_parent FOREIGN KEY "
        "(parent_id) REFERENCES parent (id) ON DELETE RESTRICT) ENGINE=InnoDB",
        "CREATE TABLE plain (id INT PRIMARY KEY, parent_id INT, CONSTRAINT plain_parent FOREIGN KEY "
        "(parent_id) REFERENCES parent (id)) ENGINE=InnoDB",
        "INSERT INTO parent VALUES (1, 100), (2, 200), (3, 300)",
        "INSERT INTO cascaded VALUES (10, 1), (11, 1), (12, 2)",
        "INSERT INTO nulled VALUES (20, 100), (21, 200)",
    )


def test_the_binlog_holds_no_row_event_for_cascaded_childrows(mysql_url: str) -> None:
    _schema(mysql_url)
    db = database(mysql_url)
    start = position_now(mysql_url)
    execute(mysql_url, "DELETE FROM parent WHERE id = 1", "UPDATE parent SET code = 201 WHERE id = 2")
    # The server did change the children ...
    assert rows(mysql_url, "SELECT id, parent_id FROM cascaded ORDER BY id") == [(12, 2)]
    assert rows(mysql_url, "SELECT id, parent_code FROM nulled ORDER BY id") == [(20, None), (21, None)]
    # ... and the binlog, every table mapped, holds only the parent's rows.
    with reading(mysql_url, ["parent", "cascaded", "nulled"], start) as reader:
        events = read_transactions(reader, 2)
    changes = [(e.table, e.kind) for e in events if isinstance(e, Change)]
    assert changes == [(f"{db}.parent", "delete"), (f"{db}.parent", "update")]
    assert [type(e) for e in events if not isinstance(e, Change)] == [
        TransactionBegun,
        TransactionCommitted,
        TransactionBegun,
        TransactionCommitted,
    ]


def _check(url: str, tables: list[str]) -> list[Finding]:
    source = MysqlSource(url)
    try:
        return source.preflight_findings(source.inspect(tables), [], {})
    finally:
        source.close()


def _refused(findings: list[Finding]) -> dict[str, Finding]:
    return {
        f.subject: f
        for f in findings
        if f.check == "source.foreign_key_action" and f.severity is Severity.FAIL
    }


def test_a_mapped_child_of_a_cascading_key_is_refused_and_the_fix_works(mysql_url: str) -> None:
    _schema(mysql_url)
    db = database(mysql_url)
    # The parent is not mapped: its children still change without a row event.
    tables = [f"{db}.cascaded", f"{db}.nulled", f"{db}.restricted", f"{db}.plain"]
    source = MysqlSource(mysql_url)
    try:
        keys = {t: source.inspect([t]).tables[t].foreign_keys[0] for t in tables}
    finally:
        source.close()
    assert {t: (k.on_delete, k.on_update) for t, k in keys.items()} == {
        f"{db}.cascaded": ("CASCADE", "RESTRICT"),
        f"{db}.nulled": ("SET NULL", "SET NULL"),
        f"{db}.restricted": ("RESTRICT", "RESTRICT"),
        f"{db}.plain": ("RESTRICT", "RESTRICT"),
    }
    refused = _refused(_check(mysql_url, tables))
    assert sorted(refused) == [
        f"{db}.cascaded: foreign key cascaded_parent",
        f"{db}.nulled: foreign key nulled_parent",
    ]
    nulled = refused[f"{db}.nulled: foreign key nulled_parent"]
    assert "ON DELETE SET NULL, ON UPDATE SET NULL" in nulled.message and f"{db}.parent" in nulled.message
    assert nulled.fix is not None and "application deletes or updates the child rows itself" in nulled.fix
    with connect(mysql_url) as conn, conn.cursor() as cur:
        for finding in refused.values():
            assert finding.fix is not None
            cur.execute(finding.fix.split(";", 1)[0])
    assert _refused(_check(mysql_url, tables)) == {}
    source = MysqlSource(mysql_url)
    try:
        replaced = source.inspect([f"{db}.nulled"]).tables[f"{db}.nulled"].foreign_keys
    finally:
        source.close()
    assert [(k.name, k.columns, k.referenced_table, k.referenced_columns) for k in replaced] == [
        ("nulled_parent_restrict", ("parent_code",), f"{db}.parent", ("code",))
    ]
    # The keys still hold: the parent of a child row can no longer be deleted under it.
    with pytest.raises(pymysql.err.IntegrityError) as refused_delete:
        execute(mysql_url, "DELETE FROM parent WHERE id = 1")
    assert refused_delete.value.args[0] == ROW_IS_REFERENCED
    assert rows(mysql_url, "SELECT id FROM cascaded ORDER BY id") == [(10,), (11,), (12,)]
