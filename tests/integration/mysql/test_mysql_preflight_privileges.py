"""The privileges the run, cutover and reverse sync use on a MariaDB source: preflight names each one
a user lacks, its GRANT runs on the server, and then, as that user, the adapter's own statements
succeed (migrator's tables created, written and dropped; the fence taken and the write waiting
behind it, another user's, seen and cancelled; reverse sync's checkpoint table kept). What the
plan's cutover does not use (a command fence, no reverse sync, a switch other than a routing table)
is not asked; a routing table's are, and once granted the switch's flips run as that user."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pymysql
import pytest

from migrator.adapters.inspection import CutoverNeeds
from migrator.adapters.mysql import MysqlSource
from migrator.findings import Finding, Severity
from tests.support.mariadb import connect, database, mysql_user

PASSWORD = "Cutover-pw-1"
CHECKS = (
    "source.migrator_tables",
    "source.cutover_privilege",
    "source.reverse_privilege",
    "source.trigger",
    "source.routing_privilege",
)
QUERY_INTERRUPTED = 1317
WAITING_SQL = "SELECT ID FROM information_schema.PROCESSLIST WHERE STATE = 'Waiting for table metadata lock'"


@pytest.fixture
def reader_url(mysql_url: str) -> Iterator[str]:
    """A user that may read the tables and the binlog, and nothing more: its URL."""
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE orders (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
        cur.execute("CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute("INSERT INTO orders VALUES (1, 10)")
    with mysql_user(
        mysql_url,
        "cut",
        PASSWORD,
        "GRANT SELECT ON {db}.* TO {user}",
        "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO {user}",
    ) as url:
        yield url


def _all_findings(url: str, needs: CutoverNeeds) -> list[Finding]:
    db = database(url)
    source = MysqlSource(url)
    try:
        info = source.inspect([f"{db}.orders", f"{db}.items"])
        return source.preflight_findings(info, [], {}, needs)
    finally:
        source.close()


def _findings(url: str, needs: CutoverNeeds | None = None) -> dict[tuple[str, str], Finding]:
    found = _all_findings(url, needs or CutoverNeeds(reverse_sync=True, fence="lock"))
    return {(f.check, f.subject): f for f in found if f.check in CHECKS and f.severity is not Severity.OK}


def test_missing_privileges_are_named_and_their_grants_are_enough(mysql_url: str, reader_url: str) -> None:
    db = database(mysql_url)
    user = urlsplit(reader_url).username
    found = _findings(reader_url)
    severities = {key: f.severity for key, f in found.items()}
    assert severities == {
        (
            "source.migrator_tables",
            f"{db}._migrator_markers, _migrator_slots, _migrator_reverse",
        ): Severity.FAIL,
        ("source.cutover_privilege", "PROCESS"): Severity.FAIL,
        ("source.cutover_privilege", "CONNECTION ADMIN"): Severity.FAIL,
        ("source.cutover_privilege", f"LOCK TABLES on {db}"): Severity.FAIL,
        ("source.reverse_privilege", f"{db}.orders"): Severity.FAIL,
        ("source.reverse_privilege", f"{db}.items"): Severity.FAIL,
        ("source.trigger", f"triggers in {db}"): Severity.WARN,
    }
    assert all(user in f.message for f in found.values())
    assert "INSERT, UPDATE, DELETE, CREATE, DROP" in found[next(iter(found))].message
    with connect(mysql_url) as conn, conn.cursor() as cur:  # as root
        for finding in found.values():
            assert finding.fix is not None
            grant = finding.fix[finding.fix.index("GRANT") :].split(";", 1)[0]
            cur.execute(grant)
    assert _findings(reader_url) == {}
    _run_as(reader_url, mysql_url)


def test_a_command_fence_and_no_reverse_sync_ask_for_neither(mysql_url: str, reader_url: str) -> None:
    """The same user, lacking all of it: only migrator's own tables are asked (every run writes
    them); no fence, kill, reverse-sync or trigger finding at all, not even an OK one."""
    db = database(mysql_url)
    found = _all_findings(reader_url, CutoverNeeds(reverse_sync=False, fence="command", switch="file"))
    asked = {(f.check, f.subject): f.severity for f in found if f.check in CHECKS}
    assert asked == {
        (
            "source.migrator_tables",
            f"{db}._migrator_markers, _migrator_slots, _migrator_reverse",
        ): Severity.FAIL
    }
    # Reverse sync alone back on: its grants and the trigger are asked, the fence's still not.
    found = _all_findings(reader_url, CutoverNeeds(reverse_sync=True, fence="command"))
    asked = {(f.check, f.subject): f.severity for f in found if f.check in CHECKS}
    assert asked == {
        (
            "source.migrator_tables",
            f"{db}._migrator_markers, _migrator_slots, _migrator_reverse",
        ): Severity.FAIL,
        ("source.reverse_privilege", f"{db}.orders"): Severity.FAIL,
        ("source.reverse_privilege", f"{db}.items"): Severity.FAIL,
        ("source.trigger", f"triggers in {db}"): Severity.WARN,
    }


def test_with_a_postgresql_target_alter_is_asked_of_an_auto_increment_table(
    mysql_url: str, reader_url: str
) -> None:
    """Rollback after cutover raises the AUTO_INCREMENT of `items` past the target's keys: ALTER is
    asked of it (not of `orders`, which has none); once granted, the user's statement moves the
    counter forward, and never back."""
    db = database(mysql_url)
    needs = CutoverNeeds(reverse_sync=True, fence="command", own_types=True)
    found = {f.subject: f for f in _all_findings(reader_url, needs) if f.check == "source.reverse_privilege"}
    fixes = {subject: f.fix or "" for subject, f in found.items()}
    assert "ALTER" in fixes[f"{db}.items"] and "ALTER" not in fixes[f"{db}.orders"], fixes
    with connect(mysql_url) as conn, conn.cursor() as cur:  # as root
        for fix in fixes.values():
            cur.execute(fix[fix.index("GRANT") :].split(";", 1)[0])
    assert [f for f in _all_findings(reader_url, needs) if f.check == "source.reverse_privilege"] == []

    def counter() -> int:
        with connect(mysql_url) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO items VALUES (NULL)")
            cur.execute("SELECT LAST_INSERT_ID()")
            return int(cur.fetchone()[0])

    source = MysqlSource(reader_url)
    try:
        source.set_sequences({f"{db}.items": {"id": 41}}, 10)
        assert counter() == 52
        source.set_sequences({f"{db}.items": {"id": 5}}, 10)  # behind the counter: left as it is
        assert counter() == 53
    finally:
        source.close()


def _routing(url: str, table: str) -> list[Finding]:
    needs = CutoverNeeds(reverse_sync=False, fence="command", switch="postgres", routing_table=table)
    return [f for f in _all_findings(url, needs) if f.check == "source.routing_privilege"]


def _grant(root_url: str, finding: Finding) -> None:
    assert finding.fix is not None
    with connect(root_url) as conn, conn.cursor() as cur:
        cur.execute(finding.fix[finding.fix.index("GRANT") :].split(";", 1)[0])


def test_a_routing_table_switch_asks_for_what_its_flips_run(mysql_url: str, reader_url: str) -> None:
    """A switch of kind postgres on this source: the table's privileges are named (the table not
    there yet: a table-level GRANT MariaDB accepts only with CREATE in it), granted, and then the
    switch's own statements run as the user; a table without run_id asks ALTER as well."""
    db = database(mysql_url)
    user = urlsplit(reader_url).username
    [fresh] = _routing(reader_url, "app_routing")
    assert (fresh.severity, fresh.subject) == (Severity.FAIL, f"routing table {db}.app_routing")
    # SELECT is not missing: the user reads the whole database.
    assert f"user {user}@% lacks INSERT, UPDATE, CREATE on {db}.app_routing" in fresh.message
    _grant(mysql_url, fresh)
    assert [(f.severity, f.subject) for f in _routing(reader_url, "app_routing")] == [
        (Severity.OK, f"routing table {db}.app_routing")
    ]
    with connect(mysql_url) as conn, conn.cursor() as cur:  # as root: an older table, no run_id
        cur.execute(
            "CREATE TABLE old_routing (plan VARCHAR(255) PRIMARY KEY, primary_side VARCHAR(6) NOT NULL, "
            "updated_at TIMESTAMP(6) NOT NULL)"
        )
        cur.execute("INSERT INTO old_routing VALUES ('p', 'source', NOW(6))")
    [old] = _routing(reader_url, "old_routing")
    assert old.severity is Severity.FAIL
    assert f"lacks INSERT, UPDATE, CREATE, ALTER on {db}.old_routing" in old.message
    _grant(mysql_url, old)
    assert [f.severity for f in _routing(reader_url, "old_routing")] == [Severity.OK]
    source = MysqlSource(reader_url)
    try:
        for table in ("app_routing", "old_routing"):
            source.write_routing_row(table, "p", "target", "run-1")
            assert source.routing_value(table, "p", "run_id") == "run-1"
    finally:
        source.close()
    with connect(mysql_url) as conn, conn.cursor() as cur:
        for table in ("app_routing", "old_routing"):
            cur.execute(f"SELECT plan, primary_side, run_id FROM {table}")
            assert cur.fetchall() == (("p", "target", "run-1"),)


def _run_as(url: str, root_url: str) -> None:
    """What the run, cutover and rollback execute with these privileges, as the granted user."""
    db = database(url)
    source = MysqlSource(url)
    try:
        capture = source.capture_setup()
        assert capture.ensure_publication("pub", {}) is True
        capture.record_slot_here("slot")
        assert capture.slot_exists("slot")
        source.monitor().heartbeat("migrator", "probe")
        writer = source.reverse_writer("p", "origin")
        try:
            writer.setup()
            assert writer.checkpoint() is None
            assert writer.forget() is False
        finally:
            writer.close()
        _fence_cancels_another_users_write(source, root_url)
        assert capture.drop_slot("slot") is True
        capture.drop_publication("pub")
    finally:
        source.close()
    with connect(root_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", [db])
        assert sorted(r[0] for r in cur.fetchall()) == ["_migrator_reverse", "items", "orders"]


def test_without_process_the_fence_sees_no_write_of_another_user(mysql_url: str, reader_url: str) -> None:
    """What the PROCESS finding is for: the write waits, and the fence's user does not see it."""
    db = database(mysql_url)
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute(f"GRANT LOCK TABLES ON `{db}`.* TO '{urlsplit(reader_url).username}'@'%'")
    source = MysqlSource(reader_url)
    fence = source.write_fence([f"{db}.orders"], lock_timeout=5, hold_limit=60)
    fence.engage()
    seen: list[int] = []

    def look() -> None:
        """Once root sees the write waiting, what the fence's user sees; then end the write."""
        with connect(mysql_url) as conn, conn.cursor() as cur:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                cur.execute(WAITING_SQL)
                found = [r[0] for r in cur.fetchall()]
                if found:
                    seen.append(fence.waiting_writers())
                    cur.execute("KILL QUERY %s", [found[0]])
                    return
                time.sleep(0.05)

    looking = threading.Thread(target=look)
    try:
        with connect(mysql_url) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = 60")
            looking.start()
            with pytest.raises(pymysql.MySQLError) as ended:
                cur.execute("INSERT INTO orders VALUES (3, 30)")
        looking.join(timeout=60)
        assert ended.value.args[0] == QUERY_INTERRUPTED  # it waited behind the fence until root ended it
        assert seen == [0]
    finally:
        fence.lift()
        source.close()


def _fence_cancels_another_users_write(source: MysqlSource, root_url: str) -> None:
    db = database(root_url)
    outcome: list[int | None] = []

    def write() -> None:
        with connect(root_url) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = 60")
            try:
                cur.execute("INSERT INTO orders VALUES (2, 20)")
                outcome.append(None)
            except pymysql.MySQLError as exc:
                outcome.append(int(exc.args[0]))

    fence = source.write_fence([f"{db}.orders", f"{db}.items"], lock_timeout=5, hold_limit=60)
    fence.engage()
    writer = threading.Thread(target=write)
    try:
        writer.start()
        deadline = time.monotonic() + 30
        while fence.waiting_writers() != 1:
            assert time.monotonic() < deadline, "root's write never waited behind the fence"
            time.sleep(0.05)
        assert fence.cancel_waiting() == 1
        writer.join(timeout=30)
    finally:
        fence.lift()
        writer.join(timeout=30)
    assert outcome == [QUERY_INTERRUPTED]
    with connect(root_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM orders ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == [1]


def test_privileges_held_through_a_role_count(mysql_url: str, reader_url: str) -> None:
    db = database(mysql_url)
    user = urlsplit(reader_url).username
    role = f"cutover_{uuid.uuid4().hex[:8]}"
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE ROLE {role}")
        cur.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, LOCK TABLES, TRIGGER ON `{db}`.* TO {role}"
        )
        cur.execute(f"GRANT PROCESS, CONNECTION ADMIN ON *.* TO {role}")
        cur.execute(f"GRANT {role} TO '{user}'@'%'")
        cur.execute(f"SET DEFAULT ROLE {role} FOR '{user}'@'%'")
    try:
        assert _findings(reader_url) == {}
    finally:
        with connect(mysql_url) as conn, conn.cursor() as cur:
            cur.execute(f"DROP ROLE IF EXISTS {role}")
