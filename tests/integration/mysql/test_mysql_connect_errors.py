"""MySQL errors are typed by errno and never show the password: an unreachable port is transient
and names host:port, a wrong password is terminal, an unknown database, a missing privilege, a lock
wait timed out."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import pymysql
import pytest

from migrator.adapters.mysql import MysqlSource
from migrator.adapters.mysql.connection import MysqlEndpoint
from migrator.adapters.mysql.errors import classify
from migrator.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    DatabaseNotFound,
    TerminalError,
    TransientError,
)
from tests.support.mariadb import connect, mysql_user

PASSWORD = "S3cret-pw-h15"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def user_url(mysql_url: str) -> Iterator[str]:
    """mysql_url's database as a user with PASSWORD (SELECT on the database only)."""
    with mysql_user(mysql_url, "u", PASSWORD, "GRANT SELECT ON {db}.* TO {user}") as url:
        yield url


def test_an_unreachable_port_is_transient_and_named_without_the_password() -> None:
    port = _free_port()
    source = MysqlSource(f"mysql://app:{PASSWORD}@127.0.0.1:{port}/shop")
    with pytest.raises(ConnectionFailed) as raised:
        source.inspect(["shop.t"])
    error = raised.value
    assert isinstance(error, TransientError)
    assert f"127.0.0.1:{port}" in str(error)
    assert PASSWORD not in str(error) and PASSWORD not in repr(error.args)
    assert error.code == "2003"


def test_a_wrong_password_is_terminal_and_not_shown(user_url: str) -> None:
    wrong = user_url.replace(quote(PASSWORD), "Wrong-pw-777")
    endpoint = MysqlEndpoint(wrong)
    with pytest.raises(AuthenticationFailed) as raised:
        endpoint.connect()
    error = raised.value
    assert isinstance(error, TerminalError)
    assert error.code == "1045"
    assert "Wrong-pw-777" not in str(error) and PASSWORD not in str(error)
    assert endpoint.name in str(error)


def test_an_unknown_database_is_terminal(user_url: str) -> None:
    parts = urlsplit(user_url)
    root = urlunsplit((parts.scheme, f"root@{parts.hostname}:{parts.port}", "/no_such_db", "", ""))
    with pytest.raises(DatabaseNotFound) as raised:
        MysqlEndpoint(root).connect()
    assert raised.value.code == "1049"


def test_a_missing_privilege_and_a_lock_wait(mysql_url: str, user_url: str) -> None:
    endpoint = MysqlEndpoint(user_url)
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        cur.execute("INSERT INTO t VALUES (1, 0)")
    conn = endpoint.connect()
    try:
        with conn.cursor() as cur, pytest.raises(pymysql.MySQLError) as raised:
            cur.execute("UPDATE t SET v = 1")  # the user may only SELECT
        error = classify(raised.value, endpoint.name, endpoint.secrets)
        assert isinstance(error, AuthenticationFailed) and error.code == "1142"
    finally:
        conn.close()
    holder, waiter = MysqlEndpoint(mysql_url).connect(), MysqlEndpoint(mysql_url).connect()
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("UPDATE t SET v = 2 WHERE id = 1")
        with waiter.cursor() as cur:
            cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
            with pytest.raises(pymysql.MySQLError) as raised:
                cur.execute("UPDATE t SET v = 3 WHERE id = 1")
        lock = classify(raised.value, "mysql://root@h:1/db")
        assert type(lock) is TransientError and lock.code == "1205"
    finally:
        holder.close()
        waiter.close()


def test_a_malformed_url_quotes_nothing() -> None:
    from migrator.errors import SourceError

    with pytest.raises(SourceError) as raised:
        MysqlEndpoint(f"mysql://app:{PASSWORD}@db@host:3306/shop")
    assert PASSWORD not in str(raised.value)
