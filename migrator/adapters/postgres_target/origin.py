"""Forward CDC's replication origin on a PostgreSQL target (docs/architecture.md, "Tables as
collections", "Echo prevention on a PostgreSQL target").

Each batch the applier commits is tagged with the plan's forward origin (`forward_origin_name`):
the origin is bound to the applier's session for the transaction (`pg_replication_origin_session_setup`,
sent with the BEGIN) and released right after its commit (`pg_replication_origin_session_reset`,
sent with the COMMIT: `begin`, `commit`), so that no session holds it between batches (a second
applier of the same plan in this process, after a retry or on another thread, binds it again
rather than finding it held). PostgreSQL writes the origin into the commit record and
pgoutput sends it as an Origin message after Begin (PostgreSQL 10 and later, so 15 too); reverse
sync's reader on the target skips those transactions. The origin's progress (its remote LSN) is
not used: the checkpoint row of `migrator.state` stays the one truth of where CDC is.

The functions need superuser, or EXECUTE granted on them (the hint says which).
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.postgres import origin_states
from migrator.errors import TargetError, TransientError

OBJECT_IN_USE = "55006"  # the origin is bound to another session
PRIVILEGE_HINT = (
    "run migrator as a superuser on the target, or GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), "
    "pg_replication_origin_session_setup(text), pg_replication_origin_session_reset(), "
    "pg_replication_origin_oid(text), pg_replication_origin_drop(text) TO the plan's user"
)


def exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT pg_replication_origin_oid(%s)", [name]).fetchone()
    return row is not None and row[0] is not None


def ensure(conn: psycopg.Connection[Any], name: str) -> None:
    """Create origin `name` where it is missing."""
    if exists(conn, name):
        return
    # A concurrent set-up may create it between the check and here: a savepoint keeps the
    # surrounding transaction usable.
    with contextlib.suppress(psycopg.errors.UniqueViolation), conn.transaction():
        conn.execute("SELECT pg_replication_origin_create(%s)", [name])


# The transaction's session_replication_role as SET LOCAL sets it, as a function a SELECT can
# call beside others.
REPLICA_ROLE = "SELECT set_config('session_replication_role', 'replica', true)"


def begin(name: str | None) -> sql.Composed:
    """BEGIN and the transaction's replica role, with origin `name` bound (until released), in
    one query string: the simple protocol runs it in one round trip. The name goes as a literal
    since a query with parameters takes one statement only."""
    if name is None:
        return sql.SQL("BEGIN; {}").format(sql.SQL(REPLICA_ROLE))
    return sql.SQL("BEGIN; {}, pg_replication_origin_session_setup({})").format(
        sql.SQL(REPLICA_ROLE), sql.Literal(name)
    )


def commit(*, released: bool) -> sql.Composed:
    """COMMIT, then (`released`) the session's origin released in the same query string: the
    statement after COMMIT runs on its own, and an error of COMMIT's skips it (the caller closes
    the connection then, which releases the origin too)."""
    if not released:
        return sql.Composed([sql.SQL("COMMIT")])
    return sql.Composed([sql.SQL("COMMIT; SELECT pg_replication_origin_session_reset()")])


def drop(conn: psycopg.Connection[Any], name: str) -> bool:
    """Drop origin `name`; True if it existed."""
    if not exists(conn, name):
        return False
    conn.execute("SELECT pg_replication_origin_drop(%s)", [name])
    return True


def states_full(name: str, endpoint: str) -> TargetError:
    """No replication-origin state left on the server for origin `name` (origin_states.py)."""
    return TargetError(origin_states.full_message(name, endpoint), hint=origin_states.HINT)


def in_use(name: str) -> TransientError:
    return TransientError(
        f"replication origin {name} is bound to another session on the target: another applier of "
        "the plan may still be writing",
        hint="stop the other migrator process of this plan; a crashed one's session ends with its connection",
    )
