"""The MySQL source's pure parts: its type table (docs/plan.md), errno classification, URL parsing, key
text, and the server checks on settings a MariaDB test server cannot have (MySQL 8's)."""

from __future__ import annotations

import datetime
from decimal import Decimal
from pathlib import Path

import pymysql
import pytest
from bson.decimal128 import Decimal128

from migrator.adapters.base import SourceInfo
from migrator.adapters.mysql import MysqlSource
from migrator.adapters.mysql.errors import classify
from migrator.adapters.mysql.grants import parse_grants
from migrator.adapters.mysql.inspect import MysqlServerInfo
from migrator.adapters.mysql.server_checks import retention_seconds, server_findings
from migrator.adapters.mysql.types import column_info, type_table_markdown
from migrator.connstr import MalformedConnection, parse, parse_mysql
from migrator.errors import AuthenticationFailed, ConnectionFailed, SourceError, TerminalError, TransientError
from migrator.findings import Severity
from migrator.mapping.types import conversion_for
from migrator.mapping.types import type_table_markdown as pg_table

PLAN_DOC = Path(__file__).parents[2] / "docs" / "plan.md"


def test_plan_doc_mysql_type_table_matches_code() -> None:
    text = PLAN_DOC.read_text()
    begin, end = "<!-- mysql-type-table:begin -->\n", "\n<!-- mysql-type-table:end -->"
    assert begin in text and end in text
    assert text.split(begin, 1)[1].split(end, 1)[0] == type_table_markdown(conversion_for)


def test_the_postgres_table_leaves_other_sources_types_out() -> None:
    assert "bigint unsigned" not in pg_table() and "| geometry |" not in pg_table()


def test_spatial_columns_are_refused_with_the_hint_and_unsigned_bigints_kept() -> None:
    point = column_info("g", "point", "point", nullable=True, position=1)
    refused = conversion_for(point)
    assert not refused.supported and "ST_AsText(col)" in (refused.refused or "")
    big = conversion_for(column_info("u", "bigint", "bigint(20) unsigned", nullable=True, position=1))
    assert big.supported and "Decimal128" in big.bson
    unknown = conversion_for(column_info("a", "inet6", "inet6", nullable=True, position=1))
    assert not unknown.supported and "INET6" in (unknown.refused or "")


@pytest.mark.parametrize(
    ("errno", "kind"),
    [
        (2003, ConnectionFailed),
        (2013, ConnectionFailed),
        (2006, ConnectionFailed),
        (1040, ConnectionFailed),
        (1927, ConnectionFailed),
        (1205, TransientError),
        (1213, TransientError),
        (1045, AuthenticationFailed),
        (1142, AuthenticationFailed),
        (1227, AuthenticationFailed),
        (1236, SourceError),
        (1146, SourceError),
    ],
)
def test_errors_are_typed_by_errno(errno: int, kind: type) -> None:
    error = classify(
        pymysql.err.OperationalError(errno, "said pw-Zq91 here"), "mysql://u@h:1/db", ("pw-Zq91",)
    )
    assert type(error) is kind
    assert error.code == str(errno)
    assert "pw-Zq91" not in str(error) and "mysql://u@h:1/db" in str(error)
    assert isinstance(error, TransientError) != isinstance(error, TerminalError)


def test_a_purged_binlog_says_so() -> None:
    error = classify(pymysql.err.OperationalError(1236, "Could not find first log file"), "mysql://u@h:1/db")
    assert isinstance(error, TerminalError)
    assert "binlog" in error.message and error.hint and "new snapshot" in error.hint


def test_mysql_urls() -> None:
    info = parse_mysql("mysql://app:p%40ss@db.example:3307/shop?ssl_ca=/ca.pem")
    assert (info.user, info.password, info.hosts, info.database) == (
        "app",
        "p@ss",
        ("db.example:3307",),
        "shop",
    )
    assert parse("mariadb://app:x@h/shop").endpoint == "mariadb://app@h/shop"
    for bad in (
        "mysql://app:pw@h:3306/",
        "mysql://a:pw@h1,h2/db",
        "mysql://a:pw@h/db?passwd=x",
        "postgresql://h/db",
    ):
        with pytest.raises(MalformedConnection) as raised:
            parse_mysql(bad)
        assert "pw" not in str(raised.value).replace("password", "")


def test_endpoint_name_has_no_password() -> None:
    source = MysqlSource("mysql://app:Hidden-9@db.example/shop")
    assert source.name == "mysql://app@db.example:3306/shop"
    assert "Hidden-9" in source.endpoint.secrets


def test_key_text_and_order() -> None:
    text = MysqlSource.key_text
    assert text(2**64 - 1) == "18446744073709551615"
    assert text(Decimal128("18446744073709551615")) == "18446744073709551615"
    assert text(Decimal("1.50")) == "1.50"
    assert text(datetime.date(2024, 2, 29)) == "2024-02-29"
    aware = datetime.datetime(2024, 1, 1, 12, 0, 0, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert text(aware, "timestamp with time zone") == "2024-01-01 10:00:00.000005"
    assert text(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC), "date") == "2024-01-01"
    assert text(b"\x00\xff") == "00ff"
    assert text("abc") == "abc"
    assert [MysqlSource.key_order(t) for t in ("smallint", "integer", "bigint", "bigint unsigned")] == [
        "integer"
    ] * 4
    assert MysqlSource.key_order("character varying") is None


def test_retention_reads_seconds_then_days() -> None:
    assert retention_seconds({"binlog_expire_logs_seconds": "0", "expire_logs_days": "0.000000"}) is None
    assert retention_seconds({"binlog_expire_logs_seconds": "600", "expire_logs_days": "3"}) == 600
    assert retention_seconds({"binlog_expire_logs_seconds": "0", "expire_logs_days": "2.000000"}) == 172_800


def _mysql8(settings: dict[str, str], privileges: frozenset[str]) -> SourceInfo:
    server = MysqlServerInfo(
        endpoint="mysql://u@h:3306/db",
        version="8.0.36",
        version_num=80036,
        settings=settings,
        used_replication_slots=0,
        used_wal_senders=0,
        user="u@%",
        is_superuser=False,
        has_replication=False,
        can_create_in_database=True,
        existing_slots=(),
        existing_publications=(),
        product="MySQL",
        privileges=privileges,
    )
    return SourceInfo(server, {})


def test_mysql8_server_id_zero_and_privileges() -> None:
    settings = {
        "log_bin": "ON",
        "binlog_format": "ROW",
        "binlog_row_image": "FULL",
        "binlog_row_metadata": "FULL",
        "server_id": "0",
        "binlog_expire_logs_seconds": "2592000",
    }
    found = server_findings(_mysql8(settings, frozenset({"REPLICATION SLAVE"})), "p")
    failed = {(f.check, f.subject): f for f in found if f.severity is Severity.FAIL}
    assert set(failed) == {
        ("source.server_id", "server_id"),
        ("source.privilege", "REPLICATION CLIENT"),
        ("source.privilege", "RELOAD"),
    }
    assert failed[("source.privilege", "RELOAD")].fix == "GRANT RELOAD ON *.* TO 'u'@'%';"
    assert failed[("source.server_id", "server_id")].fix.startswith("SET GLOBAL server_id = 1;")  # type: ignore[union-attr]


def test_mysql57_is_too_old() -> None:
    info = _mysql8({"log_bin": "ON"}, frozenset())
    old = SourceInfo(
        MysqlServerInfo(**{**info.server.__dict__, "version": "5.7.44", "version_num": 50744}), {}
    )
    versions = [f for f in server_findings(old, "p") if f.check == "source.version"]
    assert [f.severity for f in versions] == [Severity.FAIL] and "MySQL 8.0" in (versions[0].fix or "")


def test_show_grants_lines_are_read_roles_included() -> None:
    grants = parse_grants(
        [
            "GRANT `reader` TO `ru`@`%`",
            "GRANT USAGE ON *.* TO `ru`@`%` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122'",
            "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `reader`",
            "GRANT SELECT ON `app\\_db`.* TO `reader`",
            "GRANT SELECT (`a`, `b`), INSERT ON `shop`.`orders` TO `ru`@`%`",
            "GRANT ALL PRIVILEGES ON `shop`.`odd``name` TO `ru`@`%`",
            "GRANT EXECUTE ON PROCEDURE `shop`.`p` TO `ru`@`%`",
            "SET DEFAULT ROLE `reader` FOR `ru`@`%`",
        ]
    )
    assert grants.server == {"USAGE", "REPLICATION SLAVE", "BINLOG MONITOR"}
    assert grants.databases == {"app_db": {"SELECT"}}
    assert grants.tables == {"shop.orders": {"INSERT"}, "shop.odd`name": {"ALL PRIVILEGES"}}
