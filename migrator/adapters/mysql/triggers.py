"""Preflight's check of triggers on the mapped tables (docs/architecture.md, "Reverse sync and echo
prevention").

Forward, a trigger is harmless: in ROW format what it writes is logged as row events of the same
transaction, and change capture reads them as any change. After cutover, reverse sync writes the
target's changes back into the mapped tables from an ordinary client session, and MySQL has no
session role that keeps triggers from firing (PostgreSQL's session_replication_role): each trigger
fires again on writes the application already made on the target. A BEFORE trigger that sets a
column (an updated_at, a counter) makes the source row differ from the document; an AFTER trigger
writes its audit row or counter a second time. WARN, naming table and trigger, with a fix the
server accepts: the trigger re-created with its body under a condition on USER(), the session's
login user, which is reverse sync's user inside the trigger too (CURRENT_USER() is the trigger's
definer there). That tells reverse sync apart only if the application connects as another user.

Without the TRIGGER privilege on a table, MariaDB lists its triggers to a user that may write it,
but not their bodies (ACTION_STATEMENT is NULL), and none to a user that may only read it: so
preflight names the triggers it sees, and says where it could not look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from migrator.adapters.mysql.inspect import (
    MysqlInspector,
    MysqlServerInfo,
    quote_ident,
    quote_table,
    split_table,
)
from migrator.findings import Finding, Severity

TRIGGERS_SQL = (
    "SELECT EVENT_OBJECT_SCHEMA, EVENT_OBJECT_TABLE, TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION, "
    "ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = %s AND "
    "EVENT_OBJECT_TABLE = %s ORDER BY ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER"
)


@dataclass(frozen=True)
class Trigger:
    table: str  # schema.table
    name: str
    timing: str  # BEFORE, AFTER
    event: str  # INSERT, UPDATE, DELETE
    body: str  # ACTION_STATEMENT: one statement, or BEGIN ... END; '' where the user may not read it


def read_triggers(inspector: MysqlInspector, tables: Sequence[str]) -> list[Trigger]:
    """The triggers of `tables` (schema.table) the user may see, in their firing order."""
    found = []
    for table in tables:
        for schema, name, trigger, timing, event, body in inspector.query(TRIGGERS_SQL, split_table(table)):
            found.append(Trigger(f"{schema}.{name}", str(trigger), str(timing), str(event), str(body or "")))
    return found


def trigger_findings(
    server: MysqlServerInfo, tables: Sequence[str], found: Sequence[Trigger]
) -> list[Finding]:
    """A WARN per trigger `found` on the mapped `tables`, and per database whose mapped tables'
    triggers the user may not list."""
    findings = [_fires(server, t) for t in found]
    unlisted: dict[str, list[str]] = {}
    for table in tables:
        if not server.may("TRIGGER", table):
            unlisted.setdefault(split_table(table)[0], []).append(table)
    findings += [_unlisted(server, database, names) for database, names in unlisted.items()]
    return findings


def skip_user_fix(trigger: Trigger, user: str) -> str:
    """DROP and CREATE of `trigger` with its body run only for sessions of another login user
    than `user` (statements on lines of their own; the body may hold ';')."""
    schema = trigger.table.partition(".")[0]
    name = f"{quote_ident(schema)}.{quote_ident(trigger.name)}"
    body = trigger.body.strip().rstrip(";")
    literal = "'" + user.replace("\\", "\\\\").replace("'", "''") + "'"
    return (
        f"DROP TRIGGER {name};\n"
        f"CREATE TRIGGER {name} {trigger.timing} {trigger.event} ON {quote_table(trigger.table)} FOR EACH ROW "
        f"IF SUBSTRING_INDEX(USER(), '@', 1) <> {literal} THEN {body}; END IF;"
    )


def _fires(server: MysqlServerInfo, trigger: Trigger) -> Finding:
    user = server.user.rpartition("@")[0]
    if trigger.body:
        fix = (
            f"to skip it for reverse sync's user {user} (the application connecting as another user), "
            "re-create it; in the mysql client between DELIMITER // and DELIMITER ; (its body holds ';'), "
            "and with FOLLOWS where the table has several triggers for the same event:\n"
            + skip_user_fix(trigger, user)
        )
    else:
        fix = (
            f"to skip it for reverse sync's user {user}, re-create it with its body under IF "
            f"SUBSTRING_INDEX(USER(), '@', 1) <> '{user}' THEN ... END IF (its body is hidden from {user}: "
            f"GRANT TRIGGER ON {quote_table(trigger.table)} TO {server.grantee}; and plan again for the statements)"
        )
    return Finding(
        "source.trigger",
        Severity.WARN,
        f"{trigger.table}: trigger {trigger.name}",
        f"trigger {trigger.name} ({trigger.timing} {trigger.event}) on {trigger.table} fires also when reverse "
        "sync writes the target's changes back after cutover (a MySQL session cannot keep triggers from "
        "firing): what it sets or writes is done a second time, and a value it sets makes the row differ "
        "from the document",
        fix,
    )


def _unlisted(server: MysqlServerInfo, database: str, tables: Sequence[str]) -> Finding:
    literal = database.replace("'", "''")
    return Finding(
        "source.trigger",
        Severity.WARN,
        f"triggers in {database}",
        f"user {server.user} may not list the triggers of {', '.join(tables)} (information_schema.TRIGGERS "
        "needs the TRIGGER privilege): a trigger there would fire again when reverse sync writes after cutover",
        # The fix is text for the operator, never run here.
        "look as a user who may: SELECT EVENT_OBJECT_TABLE, TRIGGER_NAME FROM information_schema.TRIGGERS "  # noqa: S608
        f"WHERE EVENT_OBJECT_SCHEMA = '{literal}'; or GRANT TRIGGER ON {quote_ident(database)}.* TO "
        f"{server.grantee}; (which also lets the user create triggers)",
    )
