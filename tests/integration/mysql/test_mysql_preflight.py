"""Preflight of a MariaDB source: each failed check names the object, and its fix is one the server
accepts (the test runs it, and the check passes afterwards)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from migrator.adapters.mysql import MysqlSource
from migrator.findings import Finding, Severity
from tests.support.mariadb import connect
from tests.support.servers import mariadb_lib


def _db(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _fails(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check and f.severity is Severity.FAIL]


def _statement(fix: str | None) -> str:
    """The SQL of a fix: up to its first ';' (what follows is advice)."""
    assert fix is not None
    return fix.split(";", 1)[0]


def _check(url: str, tables: list[str], read: dict[str, set[str]] | None = None) -> list[Finding]:
    source = MysqlSource(url)
    try:
        info = source.inspect(tables)
        return source.server_findings(info, "p") + source.preflight_findings(info, [], read or {})
    finally:
        source.close()


@pytest.fixture
def bad_server(tmp_path: Path) -> Iterator[str]:
    """A MariaDB without a binlog, in STATEMENT format, minimal images, binlogs kept 10 minutes.
    (MariaDB's server_id cannot be 0: that check is MySQL's, tests/unit/test_mysql_checks.py.)"""
    settings = {
        "skip-log-bin": "ON",
        "binlog-format": "STATEMENT",
        "binlog-row-image": "MINIMAL",
        "binlog-row-metadata": "MINIMAL",
        "binlog-expire-logs-seconds": 600,
    }
    server = mariadb_lib.start_mariadb(tmp_path / "bad", settings=settings)
    try:
        with connect(server.url) as conn, conn.cursor() as cur:
            cur.execute("CREATE DATABASE app")
        yield server.url_for("app")
    finally:
        server.stop()


def test_bad_binlog_settings_are_refused_and_their_fixes_work(bad_server: str) -> None:
    findings = _check(bad_server, [])
    expected = {
        "source.log_bin": "log_bin",
        "source.binlog_format": "binlog_format",
        "source.binlog_row_image": "binlog_row_image",
        "source.binlog_row_metadata": "binlog_row_metadata",
        "source.binlog_retention": "binlog_expire_logs_seconds",
    }
    for check, subject in expected.items():
        failed = _fails(findings, check)
        assert [f.subject for f in failed] == [subject], (check, findings)
    assert "log-bin" in (_fails(findings, "source.log_bin")[0].fix or "")
    # Every fix but log_bin's (a restart with log-bin) is a SET GLOBAL the server takes.
    with connect(bad_server) as conn, conn.cursor() as cur:
        for check in expected:
            if check != "source.log_bin":
                statement = _statement(_fails(findings, check)[0].fix)
                assert statement.startswith("SET GLOBAL"), statement
                cur.execute(statement)
    after = _check(bad_server, [])
    assert [f.check for f in after if f.severity is Severity.FAIL] == ["source.log_bin"]
    assert {f.check for f in after if f.severity is Severity.OK} >= set(expected) - {"source.log_bin"}


def test_a_well_set_server_passes(mysql_url: str) -> None:
    findings = _check(mysql_url, [])
    assert [f.check for f in findings if f.severity is Severity.FAIL] == []


def test_myisam_and_keyless_tables_are_refused(mysql_url: str) -> None:
    db = _db(mysql_url)
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE legacy (id INT PRIMARY KEY, v TEXT) ENGINE=MyISAM")
        cur.execute("CREATE TABLE memo (id INT PRIMARY KEY) ENGINE=MEMORY")
        cur.execute("CREATE TABLE keyless (id INT NOT NULL, v TEXT) ENGINE=InnoDB")
        cur.execute("CREATE TABLE fine (id INT PRIMARY KEY) ENGINE=InnoDB")
    tables = [f"{db}.legacy", f"{db}.memo", f"{db}.keyless", f"{db}.fine"]
    findings = _check(mysql_url, tables)
    engines = _fails(findings, "source.engine")
    assert [f.subject for f in engines] == [f"{db}.legacy", f"{db}.memo"]
    assert "MyISAM" in engines[0].message and "MEMORY" in engines[1].message
    keyless = _fails(findings, "source.primary_key")
    assert [f.subject for f in keyless] == [f"{db}.keyless"]
    with connect(mysql_url) as conn, conn.cursor() as cur:
        for finding in engines:
            cur.execute(_statement(finding.fix))
        cur.execute(_statement(keyless[0].fix).replace("...", "`id`"))
    after = _check(mysql_url, tables)
    assert not _fails(after, "source.engine") and not _fails(after, "source.primary_key")


def test_zero_dates_are_refused_naming_the_column(mysql_url: str) -> None:
    db = _db(mysql_url)
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute(
            "CREATE TABLE events (id INT PRIMARY KEY, d DATE NULL, at DATETIME NULL, ts TIMESTAMP NULL, "
            "part DATE NULL, fine DATE NULL, unread DATE NULL)"
        )
        cur.execute(
            "INSERT INTO events VALUES (1, '0000-00-00', '2024-01-01 10:00:00', '2024-01-01 10:00:00', "
            "'2024-05-01', '2024-01-01', '0000-00-00'),"
            "(2, '2024-01-02', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '2024-00-10', '2024-01-02', NULL)"
        )
    table = f"{db}.events"
    read = {table: {"id", "d", "at", "ts", "part", "fine"}}  # `unread` is not mapped: not scanned
    findings = _check(mysql_url, [table], read)
    zero = _fails(findings, "source.zero_date")
    assert sorted(f.subject for f in zero) == sorted(f"{table}.{c}" for c in ("d", "at", "ts", "part"))
    with connect(mysql_url) as conn, conn.cursor() as cur:
        for finding in zero:
            cur.execute(_statement(finding.fix))
    assert not _fails(_check(mysql_url, [table], read), "source.zero_date")


def test_tinyint1_is_noted(mysql_url: str) -> None:
    db = _db(mysql_url)
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE flags (id INT PRIMARY KEY, active TINYINT(1))")
    findings = _check(mysql_url, [f"{db}.flags"], {f"{db}.flags": {"id", "active"}})
    noted = [f for f in findings if f.check == "source.tinyint1"]
    assert [(f.severity, f.subject) for f in noted] == [(Severity.INFO, f"{db}.flags.active")]


@pytest.fixture
def limited_user(mysql_url: str) -> Iterator[tuple[str, str]]:
    """A user that may only SELECT from one table: (its URL, its name)."""
    name = f"lim_{uuid.uuid4().hex[:8]}"
    db = _db(mysql_url)
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE granted (id INT PRIMARY KEY)")
        cur.execute("CREATE TABLE hidden (id INT PRIMARY KEY)")
        cur.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY 'Limited-pw-1'")
        cur.execute(f"GRANT SELECT ON `{db}`.`granted` TO '{name}'@'%'")
    parts = urlsplit(mysql_url)
    netloc = f"{name}:{quote('Limited-pw-1')}@{parts.hostname}:{parts.port}"
    try:
        yield urlunsplit((parts.scheme, netloc, parts.path, "", "")), name
    finally:
        with connect(mysql_url) as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{name}'@'%'")


def test_a_user_without_privileges_is_refused_naming_them(
    mysql_url: str, limited_user: tuple[str, str]
) -> None:
    url, name = limited_user
    db = _db(mysql_url)
    tables = [f"{db}.granted", f"{db}.hidden"]
    findings = _check(url, tables)
    missing = _fails(findings, "source.privilege")
    assert [f.subject for f in missing] == ["REPLICATION SLAVE", "BINLOG MONITOR"]
    assert all(name in f.message for f in missing)
    select = _fails(findings, "source.select_privilege")
    assert [f.subject for f in select] == [f"{db}.hidden"]
    with connect(mysql_url) as conn, conn.cursor() as cur:  # as root
        for finding in [*missing, *select]:
            cur.execute(_statement(finding.fix))
    after = _check(url, tables)
    assert not _fails(after, "source.privilege") and not _fails(after, "source.select_privilege")


def test_privileges_held_through_a_role_count(mysql_url: str) -> None:
    db = _db(mysql_url)
    suffix = uuid.uuid4().hex[:8]
    user, role = f"ru_{suffix}", f"reader_{suffix}"
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute(f"CREATE ROLE {role}")
        cur.execute(f"GRANT SELECT ON `{db}`.* TO {role}")
        cur.execute(f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO {role}")
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'Role-pw-1'")
        cur.execute(f"GRANT {role} TO '{user}'@'%'")
        cur.execute(f"SET DEFAULT ROLE {role} FOR '{user}'@'%'")
    parts = urlsplit(mysql_url)
    url = urlunsplit((parts.scheme, f"{user}:Role-pw-1@{parts.hostname}:{parts.port}", parts.path, "", ""))
    try:
        findings = _check(url, [f"{db}.t"])
        assert not _fails(findings, "source.privilege") and not _fails(findings, "source.select_privilege")
        assert all("Role-pw-1" not in f.message and "IDENTIFIED" not in f.message for f in findings)
    finally:
        with connect(mysql_url) as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
            cur.execute(f"DROP ROLE IF EXISTS {role}")
