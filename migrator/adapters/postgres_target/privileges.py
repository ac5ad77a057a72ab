"""What the plan's role must be allowed on a PostgreSQL target, checked by `plan`
(`target.privileges`; docs/architecture.md, "Tables as collections", "The target role's
privileges"). Each missing privilege is a FAIL naming the role, whose fix is the one statement a
superuser runs to grant it (tests/integration/pg_target/test_pg_target_privileges.py runs each
and sees the finding go):

- create the target tables and schemas and `migrator.state`: CREATE on the database (schemas
  missing, the reverse feed's publication), CREATE on each target table's existing schema (also
  where the table exists: `CREATE TABLE IF NOT EXISTS` asks for it first); a table that already exists owned by the role (indexes built after the
  copy, the fence's triggers and the publication need the owner);
- forward CDC's replication origin (origin.py) and the fence's test of it: EXECUTE on the origin
  functions, which PostgreSQL grants to no one but superusers;
- the apply's `SET LOCAL session_replication_role = replica` (applier.py): `GRANT SET ON
  PARAMETER` from PostgreSQL 15, before it a superuser;
- reverse sync after cutover (a switch set, `reverse_sync` on): the REPLICATION attribute for the
  logical slot on the target.

A superuser has them all; nothing is checked further for one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from migrator.adapters.inspection import CutoverNeeds
from migrator.adapters.postgres.fixes import ident, table
from migrator.adapters.postgres.inspect import ORIGIN_FUNCTIONS as WRITER_ORIGIN_FUNCTIONS
from migrator.adapters.postgres.inspect import split_table
from migrator.adapters.postgres_target.records import SCHEMA as STATE_SCHEMA
from migrator.adapters.postgres_target.schema import qualified
from migrator.findings import Finding, Severity

CHECK = "target.privileges"
# What origin.py and the fence function (fence.py) call: what a writer with an origin calls
# (as reverse sync's on a PostgreSQL source), and the fence's test of it.
ORIGIN_FUNCTIONS = (*WRITER_ORIGIN_FUNCTIONS, "pg_replication_origin_session_is_setup()")
_ROLE_SQL = """
SELECT current_user, r.rolsuper, r.rolreplication, current_database(),
       current_setting('server_version_num')::int
FROM pg_roles r WHERE r.rolname = current_user
"""


def role_findings(conn: psycopg.Connection[Any], tables: Sequence[str], needs: CutoverNeeds) -> list[Finding]:
    """The privileges the role behind `conn` lacks for a plan writing `tables` (schema.table)."""
    row = conn.execute(_ROLE_SQL).fetchone()
    assert row is not None  # current_user is a role
    role, superuser, replication, database, version = row
    if superuser:
        return [Finding(CHECK, Severity.OK, role, f"role {role} is a superuser on the target")]
    found = _schema_findings(conn, role, database, tables)
    found += _origin_findings(conn, role)
    found += _replica_role_findings(conn, role, version)
    if needs.switch is not None and needs.reverse_sync and not replication:
        found.append(
            _fail(
                role,
                f"role {role} lacks the REPLICATION attribute, which reverse sync's logical slot on "
                "the target needs after cutover",
                f"ALTER ROLE {ident(role)} REPLICATION;",
            )
        )
    if not found:
        found.append(Finding(CHECK, Severity.OK, role, f"role {role} has the privileges the plan needs"))
    return found


def _fail(subject: str, message: str, fix: str) -> Finding:
    return Finding(CHECK, Severity.FAIL, subject, message, fix)


def _schema_findings(
    conn: psycopg.Connection[Any], role: str, database: str, tables: Sequence[str]
) -> list[Finding]:
    found: list[Finding] = []
    # Every table's schema, also where the table exists: `CREATE TABLE IF NOT EXISTS` (schema.py)
    # asks for CREATE on the schema before it looks for the table; and migrator.state's.
    create_in = [split_table(name)[0] for name in tables] + [STATE_SCHEMA]
    for name in tables:
        if _exists(conn, name):
            found += _owner_findings(conn, role, name)
    missing = [s for s in dict.fromkeys(create_in) if not _schema_exists(conn, s)]
    for schema in dict.fromkeys(create_in):
        if schema not in missing and not _one(conn, "SELECT has_schema_privilege(%s, 'CREATE')", schema):
            found.append(
                _fail(
                    schema,
                    f"role {role} may not create tables in schema {schema} of the target",
                    f"GRANT CREATE ON SCHEMA {ident(schema)} TO {ident(role)};",
                )
            )
    if not _one(conn, "SELECT has_database_privilege(current_database(), 'CREATE')"):
        also = f" (schemas to create: {', '.join(missing)})" if missing else ""
        found.append(
            _fail(
                database,
                f"role {role} may not create schemas or publications in database {database}{also}",
                f"GRANT CREATE ON DATABASE {ident(database)} TO {ident(role)};",
            )
        )
    return found


def _owner_findings(conn: psycopg.Connection[Any], role: str, name: str) -> list[Finding]:
    owner = "SELECT pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_class c WHERE c.oid = %s::regclass"
    if _one(conn, owner, qualified(name)):
        return []
    return [
        _fail(
            name,
            f"role {role} does not own the target table {name}, which the indexes built after the copy, "
            "the fence of a rollback and reverse sync's publication need",
            f"ALTER TABLE {table(name)} OWNER TO {ident(role)};",
        )
    ]


def _one(conn: psycopg.Connection[Any], query: str, *params: Any) -> bool:
    row = conn.execute(query, list(params)).fetchone()
    return bool(row and row[0])


def _exists(conn: psycopg.Connection[Any], name: str) -> bool:
    return _one(conn, "SELECT to_regclass(%s) IS NOT NULL", qualified(name))


def _schema_exists(conn: psycopg.Connection[Any], schema: str) -> bool:
    return _one(conn, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = %s)", schema)


def _origin_findings(conn: psycopg.Connection[Any], role: str) -> list[Finding]:
    query = "SELECT has_function_privilege(%s, 'EXECUTE')"
    lacking = [f for f in ORIGIN_FUNCTIONS if not _one(conn, query, f"pg_catalog.{f}")]
    if not lacking:
        return []
    return [
        _fail(
            role,
            f"role {role} may not use replication origins on the target ({', '.join(lacking)}), which "
            "tag forward CDC's writes so that reverse sync skips them",
            f"GRANT EXECUTE ON FUNCTION {', '.join(lacking)} TO {ident(role)};",
        )
    ]


def _replica_role_findings(conn: psycopg.Connection[Any], role: str, version: int) -> list[Finding]:
    message = (
        f"role {role} may not set session_replication_role, which CDC's apply on the target sets to "
        "replica (foreign keys and triggers do not fire there, as under logical replication)"
    )
    if version < 150000:
        return [_fail(role, message, f"ALTER ROLE {ident(role)} SUPERUSER;")]
    if _one(conn, "SELECT has_parameter_privilege('session_replication_role', 'SET')"):
        return []
    return [_fail(role, message, f"GRANT SET ON PARAMETER session_replication_role TO {ident(role)};")]
