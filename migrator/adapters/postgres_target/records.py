"""Migrator's records in the target, beside the data (invariants 3 and 9): CDC checkpoints and
ownership records, one row each in `migrator.state` (id, a JSON document), as the MongoDB target
keeps them in `_migrator` (docs/architecture.md, "Tables as collections").

A record's datetimes are kept as {"$date": ISO 8601} and come back as datetimes.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

SCHEMA = "migrator"
TABLE = "state"
STATE_TABLE = f"{SCHEMA}.{TABLE}"

_CREATE = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    "CREATE TABLE IF NOT EXISTS migrator.state (id text PRIMARY KEY, doc jsonb NOT NULL)",
)


def _default(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return {"$date": value.isoformat()}
    raise TypeError(f"a record holds no {type(value).__name__}")


def _hook(value: dict[str, Any]) -> Any:
    if len(value) == 1 and "$date" in value:
        return datetime.datetime.fromisoformat(value["$date"])
    return value


def to_json(record: Mapping[str, Any]) -> Jsonb:
    return Jsonb(dict(record), dumps=lambda v: json.dumps(v, default=_default))


def from_json(value: Any) -> dict[str, Any]:
    """A record as loaded (psycopg gives jsonb parsed) with its datetimes restored."""
    restored = json.loads(json.dumps(value), object_hook=_hook)
    assert isinstance(restored, dict)
    return restored


def exists(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [STATE_TABLE]).fetchone()
    return bool(row and row[0])


def ensure(conn: psycopg.Connection[Any]) -> bool:
    """Create the state table where it is missing; True when this call created it."""
    if exists(conn):
        return False
    for statement in _CREATE:
        conn.execute(statement)
    return True


def read(conn: psycopg.Connection[Any], record_id: str) -> dict[str, Any] | None:
    if not exists(conn):
        return None
    row = conn.execute("SELECT doc FROM migrator.state WHERE id = %s", [record_id]).fetchone()
    return None if row is None else {"_id": record_id, **from_json(row[0])}


def delete(conn: psycopg.Connection[Any], record_id: str) -> bool:
    if not exists(conn):
        return False
    return (
        conn.execute("DELETE FROM migrator.state WHERE id = %s RETURNING 1", [record_id]).fetchone()
        is not None
    )
