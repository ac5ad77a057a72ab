"""The routing table of the switch of kind postgres (engine/switch.py): one row per plan naming
the primary side and the run that flipped it, read and written on the source.

The table is named as one identifier (quote_ident), as the flips write it. A table made by a
version that did not record the run gets its `run_id` column on the next flip (ALTER only then:
it locks the table that applications read).
"""

from __future__ import annotations

from typing import Any, Literal

import psycopg
from psycopg import sql

from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.errors import classify


def routing_value(endpoint: PgEndpoint, table: str, plan: str, column: str) -> Any:
    """Plan `plan`'s `column` in `table`; None where the table, the column or the row is not there."""
    try:
        with endpoint.connect() as conn:
            row = conn.execute(
                "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(quote_ident(%s)) AND attname = %s "
                "AND NOT attisdropped",
                [table, column],
            ).fetchone()
            if row is None:
                return None
            found = conn.execute(
                sql.SQL("SELECT {} FROM {} WHERE plan = %s").format(
                    sql.Identifier(column), sql.Identifier(table)
                ),
                [plan],
            ).fetchone()
    except psycopg.Error as exc:
        raise classify(exc, endpoint.name, endpoint.secrets) from None
    return None if found is None else found[0]


def write_routing_row(
    endpoint: PgEndpoint, table: str, plan: str, primary: Literal["source", "target"], run_id: str
) -> None:
    """Name `primary` in plan `plan`'s row of `table` (created when missing), with `run_id`."""
    name = sql.Identifier(table)
    try:
        with endpoint.connect() as conn:
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (plan text PRIMARY KEY, primary_side text NOT NULL "
                    "CHECK (primary_side IN ('source', 'target')), updated_at timestamptz NOT NULL, run_id text)"
                ).format(name)
            )
            missing = conn.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(quote_ident(%s)) "
                "AND attname = 'run_id' AND NOT attisdropped)",
                [table],
            ).fetchone()
            if missing is not None and missing[0]:
                conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS run_id text").format(name))
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (plan, primary_side, updated_at, run_id) VALUES (%s, %s, now(), %s) "
                    "ON CONFLICT (plan) DO UPDATE SET primary_side = excluded.primary_side, "
                    "updated_at = excluded.updated_at, run_id = excluded.run_id"
                ).format(name),
                [plan, primary, run_id],
            )
    except psycopg.Error as exc:
        raise classify(exc, endpoint.name, endpoint.secrets) from None
