"""Replication-origin states: the server-wide room every replication origin that migrator binds
needs (docs/architecture.md, "Echo prevention on a PostgreSQL target").

An origin that has been bound to a session or advanced holds one of the server's origin states,
of which there are max_replication_slots, until the origin is dropped; with none free, binding
fails with SQLSTATE 53400. Forward CDC's origin on a PostgreSQL target and reverse sync's on a
PostgreSQL source each need one. Origins are the cluster's, so migrations into other databases of
the server, and earlier ones never rolled back, hold them too: `plan` counts them (`findings`),
and the error at bind time says what frees one. The limit does not lift by waiting: terminal.
"""

from __future__ import annotations

from typing import Any

import psycopg

from migrator.adapters.postgres.errors import CONFIGURATION_LIMIT_EXCEEDED
from migrator.findings import Finding, Severity

HINT = (
    "drop the replication origins of finished migrations (SELECT external_id FROM "
    "pg_replication_origin_status; then SELECT pg_replication_origin_drop('NAME') for each that no "
    "live migration uses; `migrator rollback --to start` drops a plan's own), or raise "
    "max_replication_slots on that server (ALTER SYSTEM SET max_replication_slots = N; then restart it)"
)
# pg_show_replication_origin_status() is revoked from PUBLIC: a role without it is not counted for.
_STATES_SQL = """
SELECT has_function_privilege('pg_show_replication_origin_status()', 'EXECUTE'),
       current_setting('max_replication_slots')::int
"""
_HELD_SQL = "SELECT external_id FROM pg_replication_origin_status ORDER BY local_id"
_NAMED = 5


def full_message(name: str, endpoint: str) -> str:
    return (
        f"{endpoint}: replication origin {name} cannot be bound: every replication-origin state of the "
        f"server (max_replication_slots of them) is held by another origin (SQLSTATE {CONFIGURATION_LIMIT_EXCEEDED})"
    )


def held(conn: psycopg.Connection[Any]) -> tuple[tuple[str, ...], int] | None:
    """The origins holding a state, in order, and how many states the server has; None when the
    role may not read them."""
    allowed, limit = conn.execute(_STATES_SQL).fetchone() or (False, 0)
    if not allowed:
        return None
    return tuple(str(row[0]) for row in conn.execute(_HELD_SQL).fetchall()), int(limit)


def findings(conn: psycopg.Connection[Any], name: str, check: str, subject: str) -> list[Finding]:
    """`room` for origin `name` on the server behind `conn`; nothing when the role may not read it."""
    states = held(conn)
    return [] if states is None else [room(states, name, check, subject)]


def room(states: tuple[tuple[str, ...], int], name: str, check: str, subject: str) -> Finding:
    """A FAIL when origin `name` would find no state free (it holds none and all are held), with
    the statement that raises the limit."""
    holders, limit = states
    if name in holders or len(holders) < limit:
        return Finding(
            check,
            Severity.OK,
            subject,
            f"replication origin {name} has a state ({len(holders)} of {limit} held)",
        )
    shown = ", ".join(holders[:_NAMED]) + (", ..." if len(holders) > _NAMED else "")
    return Finding(
        check,
        Severity.FAIL,
        subject,
        f"all {limit} replication-origin states of the server (max_replication_slots) are held, by "
        f"{shown}: replication origin {name} could not be bound. Drop the origins of finished "
        "migrations (SELECT pg_replication_origin_drop('NAME')), or raise the limit",
        f"ALTER SYSTEM SET max_replication_slots = {limit + 1}; -- then restart the server",
    )
