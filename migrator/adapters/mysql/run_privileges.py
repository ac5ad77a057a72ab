"""Preflight's check of the privileges the run, cutover and reverse sync use beyond reading the
mapped tables and the binlog (docs/architecture.md, "MySQL and MariaDB sources"). Each is what a
statement of this adapter executes:

- migrator's own tables in the source URL's database: `_migrator_markers` and `_migrator_slots`
  (capture.py, slots.py: CREATE TABLE IF NOT EXISTS, INSERT ... ON DUPLICATE KEY UPDATE, UPDATE,
  SELECT, DELETE ... WHERE, DROP TABLE at rollback) and `_migrator_reverse` (reverse_checkpoint.py:
  the same but DROP). Every run writes the first two: FAIL;
- the lock fence (fence.py), where the plan's phases.cutover.fence is `lock`: LOCK TABLES ... READ
  on the mapped tables (LOCK TABLES on their databases, and SELECT, checked already). Without it
  cutover stops at the fence, before the flip: FAIL, as a plan that cannot cut over;
- the writes held behind that fence (fence.py, cancel_waiting): found in information_schema.PROCESSLIST,
  which shows other users' sessions only with PROCESS, and interrupted with KILL QUERY, which another
  user's session allows only with CONNECTION ADMIN (MySQL: CONNECTION_ADMIN) or SUPER. Without
  them the writes are not cancelled after the flip and commit on the old primary once the fence
  lifts, where nothing carries them to the target: FAIL;
- reverse sync (reverse_writer.py, reverse_sql.py), where phases.cutover.reverse_sync is on:
  INSERT, UPDATE and DELETE on each mapped table. Without them reverse sync fails right after the
  flip: FAIL. With a target that keeps the source's types (a PostgreSQL target, whose identities
  give out keys), ALTER too on each table with an AUTO_INCREMENT column: rollback after cutover
  raises its counter past the target's (auto_increment.py), under the target's fence;
- the routing table of a switch of kind `postgres` (routing.py), in the source URL's database:
  every flip runs CREATE TABLE IF NOT EXISTS (CREATE, refused on an existing table too), then
  INSERT ... ON DUPLICATE KEY UPDATE (INSERT, UPDATE, and SELECT: the update reads the row's
  columns), and the switch reads the row (SELECT); a table without `run_id` is altered at the next
  flip (ALTER, asked only of such a table). Without them the flip fails at the point of no return:
  FAIL. The fix names the whole set, CREATE included: MariaDB refuses a table-level GRANT on a table
  that does not exist yet unless it grants CREATE (error 1146).

A `command` fence asks nothing of the database, and a one-way cutover writes nothing back: what
the plan does not use is not asked (no finding).

Grants held through the user's current role count (grants.py).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from migrator.adapters.inspection import CutoverNeeds
from migrator.adapters.mysql.inspect import MysqlServerInfo, quote_ident, quote_table, split_table
from migrator.findings import Finding, Severity

OWN_TABLES = ("_migrator_markers", "_migrator_slots", "_migrator_reverse")
OWN_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP")
REVERSE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE")
ROUTING_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "CREATE")
# What lets KILL QUERY interrupt another user's statement (MariaDB 10.5.2+, MySQL 8, either).
KILL_OTHERS = ("CONNECTION ADMIN", "CONNECTION_ADMIN", "SUPER")


def run_privilege_findings(
    server: MysqlServerInfo, tables: Sequence[str], needs: CutoverNeeds, counters: Collection[str] = ()
) -> list[Finding]:
    """The findings of the module's docstring for the mapped `tables` (schema.table), as far as
    the plan's cutover `needs` them; `counters`: the tables with an AUTO_INCREMENT column."""
    found = [_own_tables(server)] if server.database else []
    if needs.fence == "lock":
        found += _fence(server, tables)
        found += _cancel(server)
    if needs.reverse_sync:
        found += _reverse(server, tables, counters if needs.own_types else ())
    return found


def _own_tables(server: MysqlServerInfo) -> Finding:
    database = server.database
    missing = [
        p for p in OWN_TABLE_PRIVILEGES if not all(server.may(p, f"{database}.{t}") for t in OWN_TABLES)
    ]
    subject = f"{database}.{', '.join(OWN_TABLES)}"
    if not missing:
        return Finding("source.migrator_tables", Severity.OK, subject, f"user {server.user} may keep them")
    return Finding(
        "source.migrator_tables",
        Severity.FAIL,
        subject,
        f"user {server.user} lacks {', '.join(missing)} in database {database}, where the run creates, "
        f"writes and (at rollback) drops its own tables {', '.join(OWN_TABLES)}: change capture's markers "
        "and slot, and reverse sync's checkpoint",
        f"GRANT {', '.join(missing)} ON {quote_ident(database)}.* TO {server.grantee};",
    )


def _fence(server: MysqlServerInfo, tables: Sequence[str]) -> list[Finding]:
    databases = dict.fromkeys(split_table(t)[0] for t in tables)
    found = []
    for database in databases:
        mapped = [t for t in tables if split_table(t)[0] == database]
        subject = f"LOCK TABLES on {database}"
        if all(server.may("LOCK TABLES", t) for t in mapped):
            found.append(
                Finding("source.cutover_privilege", Severity.OK, subject, f"user {server.user} holds it")
            )
            continue
        found.append(
            Finding(
                "source.cutover_privilege",
                Severity.FAIL,
                subject,
                f"user {server.user} may not LOCK TABLES in database {database}: cutover's lock fence "
                f"(LOCK TABLES ... READ on {', '.join(mapped)}) would be refused, and cutover stop before the flip",
                f"GRANT LOCK TABLES ON {quote_ident(database)}.* TO {server.grantee}; or a command fence "
                "(phases.cutover.fence: {kind: command, pause: [...], resume: [...]})",
            )
        )
    return found


def _cancel(server: MysqlServerInfo) -> list[Finding]:
    kill = "CONNECTION ADMIN" if server.mariadb else "CONNECTION_ADMIN"
    needed = [
        ("PROCESS", ("PROCESS",), "see other users' sessions waiting behind the fence (PROCESSLIST)"),
        (kill, KILL_OTHERS, "interrupt them (KILL QUERY)"),
    ]
    found = []
    for grant, names, purpose in needed:
        if any(server.may(n) for n in names):
            found.append(
                Finding("source.cutover_privilege", Severity.OK, grant, f"user {server.user} holds {grant}")
            )
            continue
        found.append(
            Finding(
                "source.cutover_privilege",
                Severity.FAIL,
                grant,
                f"user {server.user} lacks {grant}, needed at cutover to {purpose}: the application's writes "
                "held by the lock fence would then commit on the source after the flip, and never reach the "
                "target (not needed where the application connects as this same user)",
                f"GRANT {grant} ON *.* TO {server.grantee}; or a command fence (phases.cutover.fence: "
                "{kind: command, pause: [...], resume: [...]}), which pauses the application itself",
            )
        )
    return found


def _reverse(server: MysqlServerInfo, tables: Sequence[str], counters: Collection[str]) -> list[Finding]:
    found = []
    for table in tables:
        asked = [*REVERSE_PRIVILEGES, *(["ALTER"] if table in counters else [])]
        missing = [p for p in asked if not server.may(p, table)]
        if not missing:
            continue
        found.append(
            Finding(
                "source.reverse_privilege",
                Severity.FAIL,
                table,
                f"user {server.user} lacks {', '.join(missing)} on {table}: reverse sync after cutover "
                "(phases.cutover.reverse_sync) writes the target's changes back there, and would fail "
                "right after the flip"
                + (
                    "; rollback after cutover raises its AUTO_INCREMENT past the target's keys (ALTER)"
                    if "ALTER" in missing
                    else ""
                ),
                f"GRANT {', '.join(missing)} ON {quote_table(table)} TO {server.grantee}; or a one-way "
                "cutover (phases.cutover.reverse_sync: false; no rollback after cutover)",
            )
        )
    return found


def routing_findings(server: MysqlServerInfo, table: str, columns: Collection[str]) -> list[Finding]:
    """The routing table `table`'s privileges (the module's docstring); `columns`: its columns as
    the user sees them (none where it is not there, or hidden from a user without privileges on it,
    whose next preflight, once granted, sees whether it needs ALTER)."""
    database = server.database
    if not database:
        return []
    needed = [*ROUTING_PRIVILEGES, *(["ALTER"] if columns and "run_id" not in columns else [])]
    name = f"{database}.{table}"
    missing = [p for p in needed if not server.may(p, name)]
    subject = f"routing table {name}"
    if not missing:
        return [Finding("source.routing_privilege", Severity.OK, subject, f"user {server.user} may write it")]
    return [
        Finding(
            "source.routing_privilege",
            Severity.FAIL,
            subject,
            f"user {server.user} lacks {', '.join(missing)} on {name}, where cutover's switch "
            "(phases.cutover.switch, kind postgres) creates"
            + (", alters (it has no run_id column)" if "ALTER" in needed else "")
            + " and writes the routing row: the flip would fail at the point of no return",
            f"GRANT {', '.join(needed)} ON {quote_ident(database)}.{quote_ident(table)} TO {server.grantee}; "
            "or another switch (phases.cutover.switch: {kind: file, path: ...})",
        )
    ]
