"""Preflight's checks of what a PostgreSQL source's role must be allowed for the plan's cutover,
beyond reading and replicating (server_checks.py), as the statements of this adapter execute them:

- reverse sync (reverse_writer.py), where the plan cuts over (a switch set) with
  phases.cutover.reverse_sync on: INSERT, UPDATE and
  DELETE on each mapped table, and EXECUTE on the replication origin functions its writer tags
  its writes with (so that forward CDC's slot skips them). Without them reverse sync fails right
  after the flip: FAIL;
- reverse sync's checkpoint (`migrator.reverse_checkpoint`, checkpoint_access.py): CREATE on the
  database where the schema `migrator` is missing, USAGE and CREATE on the schema where the table
  is, SELECT, INSERT, UPDATE and DELETE on the table where it exists. Without them reverse sync
  fails right after the flip: FAIL;
- rollback after cutover with a target that keeps the source's types (a PostgreSQL target, whose
  sequences give out keys): each mapped column's sequence is set past the target's under the fence
  (sequences.py: pg_sequence_last_value needs SELECT or USAGE, setval UPDATE). Without them the
  rollback stops under the fence, with the application's writes frozen: FAIL, naming each sequence.

An owner has these privileges unless they were revoked from it; preflight asks the server
(has_table_privilege, has_sequence_privilege) rather than assuming
(docs/architecture.md, "Sequences at rollback after cutover").
"""

from __future__ import annotations

from collections.abc import Mapping

from migrator.adapters.base import SourceInfo, TableInfo
from migrator.adapters.inspection import CutoverNeeds, Grant
from migrator.adapters.postgres import fixes, origin_states
from migrator.adapters.postgres.checkpoint_access import CHECKPOINT_SCHEMA, CHECKPOINT_TABLE
from migrator.findings import Finding, Severity
from migrator.plan.names import reverse_origin_name

CHECK = "source.reverse_privilege"
ORIGINS_CHECK = "source.replication_origins"  # room for reverse sync's origin (origin_states.py)
NO_ROLLBACK = "or a one-way cutover (phases.cutover.reverse_sync: false; no rollback after cutover)"


def run_privilege_findings(
    info: SourceInfo, read: Mapping[str, set[str]], needs: CutoverNeeds
) -> list[Finding]:
    """The module's findings for the mapped tables; `read`: the columns the mapping reads per table
    (a sequence is set only for a column the plan maps)."""
    if needs.switch is None or not needs.reverse_sync:
        return []  # no cutover (it needs a switch), or a one-way one: nothing is written back
    user = fixes.ident(info.server.user)
    found: list[Finding] = []
    if info.server.origin_functions_denied:
        found.append(_origin(info.server.origin_functions_denied, user))
    if info.server.origin_states is not None and needs.plan_name:
        name = reverse_origin_name(needs.plan_name)
        found.append(origin_states.room(info.server.origin_states, name, ORIGINS_CHECK, info.server.endpoint))
    if info.server.checkpoint_denied:
        found.append(_checkpoint(info.server.checkpoint_denied, user))
    for table in info.tables.values():
        if table.write_denied:
            found.append(_writes(table, user))
        if needs.own_types:
            found += _sequences(table, read.get(table.name, set()), user)
    return found


def _origin(functions: tuple[str, ...], user: str) -> Finding:
    return Finding(
        CHECK,
        Severity.FAIL,
        user,
        f"role {user} may not use replication origins on the source ({', '.join(functions)}), which tag "
        "reverse sync's writes so that they are not sent back to the target; reverse sync would fail "
        "right after the flip",
        f"GRANT EXECUTE ON FUNCTION {', '.join(functions)} TO {user}; {NO_ROLLBACK}",
    )


def _checkpoint(denied: tuple[Grant, ...], user: str) -> Finding:
    grants = " ".join(
        f"GRANT {g.privileges} ON {g.kind} {'.'.join(fixes.ident(n) for n in g.name)} TO {user};"
        for g in denied
    )
    schema = fixes.ident(CHECKPOINT_SCHEMA)
    # A missing schema may instead be made for the role, which then owns it (less than CREATE on
    # the whole database).
    own = f" or CREATE SCHEMA {schema} AUTHORIZATION {user};" if denied[0].kind == "DATABASE" else ""
    lacks = ", ".join(f"{g.privileges} on {g.kind.lower()} {'.'.join(g.name)}" for g in denied)
    return Finding(
        CHECK,
        Severity.FAIL,
        f"{CHECKPOINT_SCHEMA}.{CHECKPOINT_TABLE}",
        f"role {user} lacks {lacks}: reverse sync after cutover keeps its checkpoint in "
        f"{CHECKPOINT_SCHEMA}.{CHECKPOINT_TABLE} on the source (creating the schema and the table where "
        "missing), and would fail right after the flip",
        f"{grants}{own} {NO_ROLLBACK}",
    )


def _writes(table: TableInfo, user: str) -> Finding:
    missing = ", ".join(table.write_denied)
    return Finding(
        CHECK,
        Severity.FAIL,
        table.name,
        f"role {user} lacks {missing} on {table.name}: reverse sync after cutover "
        "(phases.cutover.reverse_sync) writes the target's changes back there, and would fail right "
        "after the flip",
        f"GRANT {missing} ON TABLE {fixes.table(table.name)} TO {user}; {NO_ROLLBACK}",
    )


def _sequences(table: TableInfo, mapped: set[str], user: str) -> list[Finding]:
    found = []
    for grant in table.sequences:
        if not grant.missing or grant.column not in mapped:
            continue
        missing = ", ".join(grant.missing)
        found.append(
            Finding(
                CHECK,
                Severity.FAIL,
                grant.sequence,
                f"role {user} lacks {missing} on sequence {grant.sequence} ({table.name}.{grant.column}): "
                "rollback after cutover sets it past the target's keys under the fence (setval), and "
                "would stop there with the application's writes frozen",
                f"GRANT {missing} ON SEQUENCE {grant.sequence} TO {user}; {NO_ROLLBACK}",
            )
        )
    return found
