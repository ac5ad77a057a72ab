"""Helpers of the binlog tests: a source on a test database, its schema checks with the tables
mapped, and reading events until a number of transactions has committed."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from migrator.adapters.base import (
    ChangeEvent,
    Idle,
    Keepalive,
    MappedColumns,
    Received,
    SourceInfo,
    SourceServerInfo,
    TableInfo,
    TransactionCommitted,
)
from migrator.adapters.mysql import MysqlSource
from migrator.adapters.mysql.binlog_link import BinlogEndpoint
from migrator.adapters.mysql.monitor import current_position
from tests.support.mariadb import connect, database

SLOT = "migrator_test_slot"
PUBLICATION = "migrator_test_pub"


def position_now(url: str) -> int:
    endpoint = BinlogEndpoint(url)
    conn = endpoint.connect()
    try:
        position = current_position(endpoint, conn)
    finally:
        conn.close()
    assert position is not None
    return position


def execute(url: str, *statements: str | tuple[str, Sequence[Any]]) -> None:
    """Run statements on one connection (autocommit: wrap in BEGIN/COMMIT for a transaction)."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        for statement in statements:
            if isinstance(statement, tuple):
                cur.execute(statement[0], statement[1])
            else:
                cur.execute(statement)


class _Host:
    def notice(self, level: str, message: str) -> None:
        pass

    def table_changed(self, table: str, info: TableInfo) -> None:
        raise AssertionError("not expected")

    def reads_with(self, table: str, info: TableInfo) -> dict[str, set[str]] | None:
        return None

    def column_added(self, table: str, column: str) -> None:
        pass


def source_info(tables: Sequence[str]) -> SourceInfo:
    server = SourceServerInfo(
        endpoint="test",
        version="10.11",
        version_num=101100,
        settings={},
        used_replication_slots=0,
        used_wal_senders=0,
        user="root",
        is_superuser=True,
        has_replication=True,
        can_create_in_database=True,
        existing_slots=(),
        existing_publications=(),
    )
    infos = {
        name: TableInfo(
            name=name,
            columns=(),
            primary_key=("id",),
            unique_keys=(),
            replica_identity="full",
            identity_columns=("id",),
            foreign_keys=(),
            estimated_rows=0,
            total_bytes=0,
            owned_by_current_user=True,
        )
        for name in tables
    }
    return SourceInfo(server, infos)


@contextmanager
def reading(
    url: str, tables: Sequence[str], start: int, *, applied: int = 0, skip_origin: str = ""
) -> Iterator[Any]:
    """A reader of the binlog from `start`, `tables` (names in the test database) mapped;
    reverse sync's transactions of `skip_origin` skipped."""
    source = MysqlSource(url)
    qualified = [f"{database(url)}.{t}" for t in tables]
    mapped = MappedColumns(read={t: set() for t in qualified}, mapped={}, locating={}, open_shapes={})
    schema = source.schema_watch(PUBLICATION, source_info(qualified), mapped, _Host(), lambda: None)
    stream = source.change_stream(SLOT, PUBLICATION, start)
    try:
        yield schema.reader(stream, applied=lambda: applied, skip_origin=skip_origin)
    finally:
        stream.close()
        schema.close()


def read_transactions(reader: Any, count: int, *, limit_s: float = 120.0) -> list[ChangeEvent]:
    """The events up to the `count`th TransactionCommitted (without Idle, Keepalive, Received)."""
    events: list[ChangeEvent] = []
    committed = 0
    deadline = time.monotonic() + limit_s
    for event in reader.events(wait_s=0.2):
        if isinstance(event, Idle | Keepalive | Received):
            if time.monotonic() > deadline:
                raise AssertionError(f"only {committed} of {count} transactions arrived: {events}")
            continue
        events.append(event)
        if isinstance(event, TransactionCommitted):
            committed += 1
            if committed == count:
                return events
    raise AssertionError("the stream ended")


def read_until_idle(reader: Any, *, idle_s: float = 2.0) -> list[ChangeEvent]:
    """The events until nothing arrived for `idle_s`."""
    events: list[ChangeEvent] = []
    quiet_since = time.monotonic()
    for event in reader.events(wait_s=0.2):
        if isinstance(event, Idle | Keepalive | Received):
            if time.monotonic() - quiet_since >= idle_s:
                return events
            continue
        quiet_since = time.monotonic()
        events.append(event)
    return events
