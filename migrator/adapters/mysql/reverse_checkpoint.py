"""Reverse sync's checkpoint in a MySQL/MariaDB source, and the mark that keeps its writes out of
the forward stream (docs/architecture.md, "Reverse sync and echo prevention").

One migrator-owned table in the source database, never mapped (so never in the forward stream's
changes), one row per plan:

    _migrator_reverse(plan VARCHAR(255) PRIMARY KEY, origin VARCHAR(255), resume_token LONGBLOB (BSON), cluster_time
                      BIGINT, cluster_at DATETIME(6), events BIGINT, writes BIGINT, updated_at)

Every reverse transaction writes the plan's row FIRST (`mark`): the checkpoint it commits with,
and `writes` counted up, so that the row changes, and the binlog holds a row event of this table
at the head of every transaction of reverse sync. The forward stream skips a transaction whose
first row event is on `_migrator_reverse` (REVERSE_TABLE) and names the origin it was told to skip
(binlog_events.py).
"""

# ruff: noqa: S608 (identifiers are quoted with quote()/table_sql() or constants; values are parameters)
from __future__ import annotations

import contextlib
import datetime
from typing import Any

import bson
import pymysql

from migrator.adapters.mysql.connection import MysqlEndpoint
from migrator.adapters.mysql.errors import classify
from migrator.adapters.mysql.slots import SLOTS_TABLE
from migrator.adapters.rows import ReverseCheckpoint

REVERSE_TABLE = "_migrator_reverse"
_NO_SUCH_TABLE = 1146

CREATE_SQL = (
    f"CREATE TABLE IF NOT EXISTS `{REVERSE_TABLE}` (plan VARCHAR(255) NOT NULL PRIMARY KEY, "
    "origin VARCHAR(255) NOT NULL DEFAULT '', resume_token LONGBLOB NULL, cluster_time BIGINT NULL, cluster_at DATETIME(6) NULL, "
    "events BIGINT NOT NULL DEFAULT 0, writes BIGINT NOT NULL DEFAULT 0, "
    "updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB CHARACTER SET utf8mb4"
)
_MARK = (
    f"INSERT INTO `{REVERSE_TABLE}` (plan, origin, writes, updated_at) VALUES (%s, %s, 1, CURRENT_TIMESTAMP(6)) "
    "ON DUPLICATE KEY UPDATE origin = VALUES(origin), writes = writes + 1, updated_at = VALUES(updated_at)"
)
_MARK_WITH_CHECKPOINT = (
    f"INSERT INTO `{REVERSE_TABLE}` (plan, origin, resume_token, cluster_time, cluster_at, events, "
    "writes, updated_at) VALUES (%s, %s, %s, %s, %s, %s, 1, CURRENT_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE "
    "origin = VALUES(origin), "
    "resume_token = VALUES(resume_token), cluster_time = VALUES(cluster_time), "
    "cluster_at = VALUES(cluster_at), events = VALUES(events), writes = writes + 1, "
    "updated_at = VALUES(updated_at)"
)


def mark(cur: Any, plan: str, origin: str, checkpoint: ReverseCheckpoint | None) -> None:
    """The first statement of every reverse transaction: the plan's row, naming the writer's
    `origin` (what the forward stream skips), with `checkpoint`."""
    if checkpoint is None:
        cur.execute(_MARK, [plan, origin])
        return
    cluster_at = None
    if checkpoint.cluster_time is not None:
        cluster_at = datetime.datetime.fromtimestamp(checkpoint.cluster_time >> 32, datetime.UTC).replace(
            tzinfo=None
        )
    cur.execute(
        _MARK_WITH_CHECKPOINT,
        [
            plan,
            origin,
            bson.encode(checkpoint.resume_token),
            checkpoint.cluster_time,
            cluster_at,
            checkpoint.events,
        ],
    )


def read(cur: Any, plan: str) -> ReverseCheckpoint | None:
    """The plan's checkpoint; None without the table, the row, or a token in it."""
    try:
        cur.execute(
            f"SELECT resume_token, cluster_time, events FROM `{REVERSE_TABLE}` WHERE plan = %s", [plan]
        )
    except pymysql.err.ProgrammingError as exc:
        if exc.args and exc.args[0] == _NO_SUCH_TABLE:
            return None
        raise
    row = cur.fetchone()
    if row is None or row[0] is None:
        return None
    cluster = None if row[1] is None else int(row[1])
    return ReverseCheckpoint(dict(bson.decode(bytes(row[0]))), cluster, int(row[2]))


def stored_checkpoint(endpoint: MysqlEndpoint, plan: str) -> ReverseCheckpoint | None:
    """Reverse sync's checkpoint for `plan`, read on a plain connection of its own, so that status
    or rollback can read it while reverse sync runs elsewhere."""
    try:
        with contextlib.closing(endpoint.connect()) as conn, conn.cursor() as cur:
            return read(cur, plan)
    except pymysql.MySQLError as exc:
        raise classify(exc, endpoint.name, endpoint.secrets) from None


def forget(cur: Any, plan: str) -> bool:
    """Remove the plan's row (rollback); True if it held a checkpoint. The table stays."""
    existing = read(cur, plan)
    try:
        cur.execute(f"DELETE FROM `{REVERSE_TABLE}` WHERE plan = %s", [plan])
    except pymysql.err.ProgrammingError as exc:
        if exc.args and exc.args[0] == _NO_SUCH_TABLE:
            return False
        raise
    return existing is not None


def drop_if_empty(cur: Any) -> bool:
    """Drop the table when no plan's row is left in it and no other run of this database holds a
    slot (a row of `_migrator_slots`: its reverse sync may use the table before it stores a row),
    at `migrator finish`; True if dropped."""
    for table in (REVERSE_TABLE, SLOTS_TABLE):
        try:
            cur.execute(f"SELECT 1 FROM `{table}` LIMIT 1")
        except pymysql.err.ProgrammingError as exc:
            if exc.args and exc.args[0] == _NO_SUCH_TABLE:
                if table == REVERSE_TABLE:
                    return False
                continue
            raise
        if cur.fetchone() is not None:
            return False
    cur.execute(f"DROP TABLE IF EXISTS `{REVERSE_TABLE}`")
    return True
