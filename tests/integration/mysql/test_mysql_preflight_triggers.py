"""Triggers on mapped tables fire on reverse sync's writes too: preflight warns naming table and
trigger, and its fix (the trigger re-created to skip reverse sync's user) runs on the server; then
a write as that user leaves the trigger's work undone, and the application's write still does it."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from migrator.adapters.mysql import MysqlSource
from migrator.findings import Finding, Severity
from tests.support.mariadb import connect, database, mysql_user

PASSWORD = "Trigger-pw-1"


@pytest.fixture
def migrator_url(mysql_url: str) -> Iterator[str]:
    """Tables with triggers (created by root, the application's user) and migrator's own user."""
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE orders (id INT PRIMARY KEY, total INT, touched INT NOT NULL DEFAULT 0)")
        cur.execute("CREATE TABLE audit (n INT AUTO_INCREMENT PRIMARY KEY, order_id INT, what VARCHAR(10))")
        cur.execute(
            "CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW SET NEW.touched = OLD.touched + 1"
        )
        cur.execute(
            "CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW BEGIN "
            "INSERT INTO audit (order_id, what) VALUES (NEW.id, 'insert'); END"
        )
    with mysql_user(
        mysql_url, "mig", PASSWORD, "GRANT SELECT, INSERT, UPDATE, DELETE, TRIGGER ON {db}.* TO {user}"
    ) as url:
        yield url


def _warnings(url: str, tables: list[str]) -> dict[str, Finding]:
    source = MysqlSource(url)
    try:
        found = source.preflight_findings(source.inspect(tables), [], {})
    finally:
        source.close()
    return {f.subject: f for f in found if f.check == "source.trigger" and f.severity is Severity.WARN}


def _write(url: str, *statements: str) -> None:
    with connect(url) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def _read(url: str, query: str) -> list[tuple[object, ...]]:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(query)
        return [tuple(r) for r in cur.fetchall()]


def test_triggers_are_named_and_the_fix_skips_reverse_syncs_user(mysql_url: str, migrator_url: str) -> None:
    db = database(mysql_url)
    user = urlsplit(migrator_url).username
    tables = [f"{db}.orders", f"{db}.audit"]
    warned = _warnings(migrator_url, tables)
    assert sorted(warned) == [f"{db}.orders: trigger orders_audit", f"{db}.orders: trigger orders_touch"]
    touch = warned[f"{db}.orders: trigger orders_touch"]
    assert "BEFORE UPDATE" in touch.message and "reverse sync" in touch.message
    # Before the fix, migrator's user fires both, as the application does.
    _write(
        migrator_url,
        "INSERT INTO orders (id, total) VALUES (1, 10)",
        "UPDATE orders SET total = 11 WHERE id = 1",
    )
    assert _read(mysql_url, "SELECT id, total, touched FROM orders") == [(1, 11, 1)]
    assert _read(mysql_url, "SELECT order_id, what FROM audit") == [(1, "insert")]
    # The fixes: DROP TRIGGER, then CREATE TRIGGER (its own line: the body may hold ';').
    with connect(mysql_url) as conn, conn.cursor() as cur:
        for finding in warned.values():
            assert finding.fix is not None
            drop, create = finding.fix.splitlines()[-2:]
            assert drop.startswith("DROP TRIGGER ") and create.startswith("CREATE TRIGGER ")
            assert f"'{user}'" in create
            cur.execute(drop.removesuffix(";"))
            cur.execute(create.removesuffix(";"))
    assert sorted(_warnings(migrator_url, tables)) == sorted(warned)  # still there, still said
    # Migrator's user now writes without firing them ...
    _write(
        migrator_url,
        "INSERT INTO orders (id, total) VALUES (2, 20)",
        "UPDATE orders SET total = 21 WHERE id = 2",
    )
    assert _read(mysql_url, "SELECT id, total, touched FROM orders WHERE id = 2") == [(2, 21, 0)]
    assert _read(mysql_url, "SELECT order_id FROM audit ORDER BY n") == [(1,)]
    # ... and the application's (root's) writes still fire them.
    _write(
        mysql_url,
        "INSERT INTO orders (id, total) VALUES (3, 30)",
        "UPDATE orders SET total = 31 WHERE id = 3",
    )
    assert _read(mysql_url, "SELECT id, total, touched FROM orders WHERE id = 3") == [(3, 31, 1)]
    assert _read(mysql_url, "SELECT order_id FROM audit ORDER BY n") == [(1,), (3,)]


def test_a_user_that_may_not_list_triggers_is_told(mysql_url: str, migrator_url: str) -> None:
    db = database(mysql_url)
    user = urlsplit(migrator_url).username
    tables = [f"{db}.orders", f"{db}.audit"]
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute(f"REVOKE TRIGGER ON `{db}`.* FROM '{user}'@'%'")
    # A user that may write the table sees the triggers' names, not their bodies.
    warned = _warnings(migrator_url, tables)
    assert sorted(warned) == [
        f"{db}.orders: trigger orders_audit",
        f"{db}.orders: trigger orders_touch",
        f"triggers in {db}",
    ]
    hidden = warned[f"{db}.orders: trigger orders_audit"].fix or ""
    assert "body is hidden" in hidden and "DROP TRIGGER" not in hidden
    # A user that may only read the tables sees none of them.
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute(f"REVOKE INSERT, UPDATE, DELETE ON `{db}`.* FROM '{user}'@'%'")
    warned = _warnings(migrator_url, tables)
    assert sorted(warned) == [f"triggers in {db}"]
    finding = warned[f"triggers in {db}"]
    assert finding.fix is not None
    with connect(mysql_url) as conn, conn.cursor() as cur:
        look = finding.fix.removeprefix("look as a user who may: ").split(";", 1)[0]
        cur.execute(look)
        assert sorted(r[1] for r in cur.fetchall()) == ["orders_audit", "orders_touch"]
        grant = finding.fix[finding.fix.index("GRANT") :].split(";", 1)[0]
        cur.execute(grant)
    after = _warnings(migrator_url, tables)
    assert sorted(after) == [f"{db}.orders: trigger orders_audit", f"{db}.orders: trigger orders_touch"]
    assert all("CREATE TRIGGER" in (f.fix or "") for f in after.values())
