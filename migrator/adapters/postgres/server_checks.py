"""Preflight's checks of a PostgreSQL source server: logical decoding, version, privileges,
free slots and WAL senders, the run's slot and publication, and table ownership. Read-only:
they judge what inspection (inspect.py) found; every failure names the fix."""

from __future__ import annotations

from migrator.adapters.base import SourceInfo
from migrator.adapters.postgres import fixes
from migrator.findings import Finding, Severity
from migrator.plan.names import is_slot_of, publication_name

MIN_SERVER_VERSION = 100000  # pgoutput arrived in PostgreSQL 10
STREAMING_SERVER_VERSION = 140000  # proto v2 streaming of large transactions


def describe(info: SourceInfo) -> str:
    """The server as the 'source.reachable' finding names it."""
    return f"PostgreSQL {info.server.version} as {info.server.user}"


def server_findings(info: SourceInfo, plan_name: str) -> list[Finding]:
    """The server's findings, then each mapped table's ownership, in the order preflight lists them."""
    found: list[Finding] = []
    _check_server(found, info, plan_name)
    _check_tables(found, info)
    return found


def _add(
    found: list[Finding], check: str, severity: Severity, subject: str, message: str, fix: str | None = None
) -> None:
    found.append(Finding(check, severity, subject, message, fix))


def _check_server(found: list[Finding], source: SourceInfo, plan_name: str) -> None:
    server = source.server
    settings = server.settings
    wal_level = settings.get("wal_level", "unknown")
    if wal_level == "logical":
        _add(found, "source.wal_level", Severity.OK, "wal_level", "wal_level = logical")
    else:
        _add(
            found,
            "source.wal_level",
            Severity.FAIL,
            "wal_level",
            f"wal_level is '{wal_level}'; logical decoding needs 'logical'",
            "run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL "
            "(on managed services: set the logical replication parameter and reboot)",
        )
    if server.version_num < MIN_SERVER_VERSION:
        _add(
            found,
            "source.version",
            Severity.FAIL,
            "server_version",
            f"PostgreSQL {server.version} has no pgoutput",
            "upgrade to PostgreSQL 10 or newer (14+ recommended)",
        )
    elif server.version_num < STREAMING_SERVER_VERSION:
        _add(
            found,
            "source.version",
            Severity.WARN,
            "server_version",
            f"PostgreSQL {server.version} cannot stream in-progress transactions; "
            "a large transaction is spilled to disk on the server and arrives at commit",
            "upgrade to PostgreSQL 14 or newer",
        )
    if server.is_superuser or server.has_replication:
        _add(found, "source.replication_privilege", Severity.OK, server.user, "role may replicate")
    else:
        _add(
            found,
            "source.replication_privilege",
            Severity.FAIL,
            server.user,
            f"role {server.user} has neither REPLICATION nor superuser",
            f"run ALTER ROLE {server.user} WITH REPLICATION; (on RDS: GRANT rds_replication TO {server.user};)",
        )
    _check_capacity(
        found,
        "source.free_replication_slots",
        "max_replication_slots",
        settings,
        server.used_replication_slots,
        "replication slots",
    )
    _check_capacity(
        found, "source.free_wal_senders", "max_wal_senders", settings, server.used_wal_senders, "WAL senders"
    )
    if not (server.is_superuser or server.can_create_in_database):
        _add(
            found,
            "source.create_publication",
            Severity.FAIL,
            server.user,
            f"role {server.user} may not create a publication in this database",
            f"GRANT CREATE ON DATABASE {fixes.ident(server.database)} TO {fixes.ident(server.user)};",
        )
    # A slot's name carries its run (plan/names.py): any run of this plan may have one.
    for slot in (s for s in server.existing_slots if is_slot_of(plan_name, s)):
        _add(
            found,
            "source.existing_slot",
            Severity.WARN,
            slot,
            f"replication slot {slot} exists (a run of this plan was started); it retains WAL",
            f"resume it with `migrator run`, or drop it with `migrator rollback` or "
            f"SELECT pg_drop_replication_slot('{slot}');",
        )
    publication = publication_name(plan_name)
    if publication in server.existing_publications:
        _add(
            found,
            "source.existing_publication",
            Severity.INFO,
            publication,
            f"publication {publication} exists (a run of this plan was started, or someone made it): "
            "`migrator run` reuses it, made to match the plan's tables and columns",
        )


def _check_capacity(
    found: list[Finding], check: str, setting: str, settings: dict[str, str], used: int, what: str
) -> None:
    try:
        limit = int(settings.get(setting, "0"))
    except ValueError:
        limit = 0
    if limit - used >= 1:
        _add(found, check, Severity.OK, setting, f"{limit - used} of {limit} {what} free")
    else:
        _add(
            found,
            check,
            Severity.FAIL,
            setting,
            f"no free {what}: {used} in use of {setting} = {limit}",
            f"raise {setting} (ALTER SYSTEM SET {setting} = {max(limit, used) + 4}; then restart), "
            "or drop unused ones",
        )


def _check_tables(found: list[Finding], source: SourceInfo) -> None:
    # Missing tables are reported by resolution, with the collection they belong to; replica
    # identities and the other schema features by the source-feature matrix (features.py).
    for table in source.tables.values():
        if not source.server.is_superuser and not table.owned_by_current_user:
            _add(
                found,
                "source.table_owner",
                Severity.FAIL,
                table.name,
                f"the plan's role does not own {table.name}, which CREATE PUBLICATION ... FOR TABLE requires",
                f"ALTER TABLE {fixes.table(table.name)} OWNER TO {fixes.ident(source.server.user)}; "
                "or run as the owner",
            )
