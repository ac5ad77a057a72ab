"""An application's writes through the routing file: what the demo and the cutover benchmark
run while migrator cuts over and rolls back.

Each write renames one row (the source) or document (MongoDB), at a steady rate, on the side
the routing file names at that moment. A write the cutover fence cancelled (PostgreSQL SQLSTATE
57014, MySQL errno 1317) or the rollback fence refused (MongoDB error 121) is retried on the side
the file names then, as an application that sees no failed request does. The source's side is a
`SourceRows` (PostgreSQL's here; MySQL's in demo_app_mysql.py); the target's a pymongo collection,
or a PostgreSQL target's table as `PostgresTable` (its rollback fence: SQLSTATE 25006).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg
import pymongo.errors
from psycopg import sql

QUERY_CANCELED = "57014"
READ_ONLY = "25006"  # a PostgreSQL target's fence during a rollback (docs/architecture.md)
FENCED = 121  # DocumentValidationFailure


class Stop(Protocol):
    def is_set(self) -> bool: ...


class SourceRows(Protocol):
    """The source's side of the writes: one row's column set by its id, in the source's dialect."""

    def update(self, row_id: int, text: str) -> None: ...

    def fenced(self, exc: Exception) -> bool:
        """Whether `exc` is the cutover fence cancelling the write (retry it)."""
        ...


@dataclass
class Writes:
    counts: dict[str, int] = field(
        default_factory=lambda: {"source": 0, "target": 0, "retried": 0, "failed": 0}
    )
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # seconds, per write, retries included
    last: dict[int, str] = field(default_factory=dict)  # row key -> the value last written
    seconds: float = 0.0


def primary(routing: Path) -> str:
    try:
        return routing.read_text().strip() or "source"
    except FileNotFoundError:
        return "source"


class PostgresRows:
    """PostgreSQL's side: `statement` (update_statement) on an autocommit connection."""

    def __init__(self, conn: psycopg.Connection[Any], statement: sql.Composed) -> None:
        self._conn, self._statement = conn, statement

    def update(self, row_id: int, text: str) -> None:
        self._conn.execute(self._statement, [text, row_id])

    def fenced(self, exc: Exception) -> bool:
        return isinstance(exc, psycopg.Error) and exc.sqlstate == QUERY_CANCELED


class PostgresTable:
    """A PostgreSQL target's table, written as `write_to` writes a collection: `update_one` of
    one row's column by its id, on an autocommit connection; `fenced` tells the target's fence."""

    def __init__(self, conn: psycopg.Connection[Any], table: str) -> None:
        self._conn, self._table = conn, table

    def update_one(self, where: dict[str, Any], update: dict[str, Any]) -> None:
        ((column, text),) = update["$set"].items()
        self._conn.execute(update_statement(self._table, column), [text, where["_id"]])

    def fenced(self, exc: Exception) -> bool:
        return isinstance(exc, psycopg.Error) and exc.sqlstate == READ_ONLY


def write_routed_to(
    source: SourceRows,
    collection: Any,
    column: str,
    ids: Sequence[Any],
    routing: Path,
    rate: float,
    stop: Stop,
    value: str = "w{n}",
) -> Writes:
    """Write `rate` times a second until `stop` is set: a row of `source` or document `_id` of
    `collection`, its `column` set to `value` formatted with the count. `ids` are the documents'
    _ids (typed as stored); rows are keyed by their int value."""
    out = Writes()
    started = time.monotonic()
    n = 0
    while not stop.is_set():
        n += 1
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        write_to(source, collection, column, ids[n % len(ids)], value.format(n=n), routing, out)
    out.seconds = time.monotonic() - started
    return out


def update_statement(table: str, column: str) -> sql.Composed:
    """PostgreSQL's UPDATE of one row's `column`, by id: what `PostgresRows` runs there."""
    return sql.SQL("UPDATE {} SET {} = %s WHERE id = %s").format(
        sql.Identifier(table), sql.Identifier(column)
    )


def write_to(
    source: SourceRows,
    collection: Any,
    column: str,
    doc_id: Any,
    text: str,
    routing: Path,
    out: Writes,
    fenced_pause: float = 0.002,
) -> None:
    """One write of `text` on the side `routing` names, retried while a fence refuses it
    (waiting `fenced_pause` seconds after the target's), and recorded in `out`."""
    begun = time.monotonic()
    while True:
        side = primary(routing)
        try:
            if side == "source":
                source.update(int(doc_id), text)
            else:
                collection.update_one({"_id": doc_id}, {"$set": {column: text}})
            break
        except pymongo.errors.WriteError as exc:
            if exc.code == FENCED:
                out.counts["retried"] += 1
                time.sleep(fenced_pause)
                continue
            out.counts["failed"] += 1
            out.errors.append(str(exc))
            break
        except Exception as exc:  # noqa: BLE001 - a failed request, counted and shown
            if side == "source" and source.fenced(exc):
                out.counts["retried"] += 1
                continue
            if side == "target" and isinstance(collection, PostgresTable) and collection.fenced(exc):
                out.counts["retried"] += 1
                time.sleep(fenced_pause)
                continue
            out.counts["failed"] += 1
            out.errors.append(repr(exc))
            break
    out.latencies.append(time.monotonic() - begun)
    out.counts[side] += 1
    out.last[int(doc_id)] = text
