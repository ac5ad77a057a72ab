"""Preflight's checks of a MySQL/MariaDB source: the binlog settings change capture needs, the
version, binlog retention against the snapshot's estimated time, the user's privileges, and each
mapped table's features (primary key, storage engine, zero dates, tinyint(1); foreign-key actions
in cascades.py, triggers in triggers.py, the run's and cutover's privileges in run_privileges.py). Read-only: they judge
what inspection (inspect.py) found; every failure names the object and a fix the server accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from migrator.adapters.base import ColumnInfo, CutoverNeeds, MappedCollection, SourceInfo
from migrator.adapters.mysql.cascades import cascade_findings
from migrator.adapters.mysql.inspect import MysqlServerInfo, quote_ident, quote_table
from migrator.adapters.mysql.run_privileges import run_privilege_findings
from migrator.adapters.mysql.values import DATE_TYPES, ZeroDates
from migrator.findings import Finding, Severity

MIN_MARIADB = 100500  # binlog_row_metadata=FULL (column names in row events) arrived in 10.5
MIN_MYSQL = 80000
# The snapshot's duration is estimated as preflight's is (phases/preflight.py assumes about 15k
# documents/s on the test server, docs/architecture.md); the binlog must outlive it by a margin,
# for CDC to start reading at the snapshot's position, and a stopped run to resume.
ASSUMED_ROWS_PER_SECOND = 15_000
RETENTION_MARGIN_S = 3_600
RETENTION_COMFORT_S = 7 * 86_400
TRANSACTIONAL_ENGINES = frozenset({"innodb"})


def describe(info: SourceInfo) -> str:
    """The server as the 'source.reachable' finding names it."""
    server = server_of(info)
    return f"{server.product} {server.version} as {server.user}"


def server_of(info: SourceInfo) -> MysqlServerInfo:
    server = info.server
    assert isinstance(server, MysqlServerInfo), "inspected by the MySQL adapter"
    return server


def _add(
    found: list[Finding], check: str, severity: Severity, subject: str, message: str, fix: str | None = None
) -> None:
    found.append(Finding(check, severity, subject, message, fix))


def server_findings(info: SourceInfo, plan_name: str) -> list[Finding]:
    """The server's findings, then the user's privileges on each mapped table."""
    del plan_name  # nothing on the server is named after the plan (no slot, no publication)
    server = server_of(info)
    found: list[Finding] = []
    _version(found, server)
    _binlog(found, server)
    _retention(found, server, sum(t.estimated_rows for t in info.tables.values()))
    _xa(found, server)
    _privileges(found, server)
    for table in [*info.tables, *info.missing_tables]:
        if not server.may("SELECT", table):
            # information_schema hides the tables a user has no privilege on: a missing table
            # may be one of them.
            hidden = " (or it does not exist: the server hides tables the user may not read)"
            _add(
                found,
                "source.select_privilege",
                Severity.FAIL,
                table,
                f"user {server.user} may not SELECT from {table}" + ("" if table in info.tables else hidden),
                f"GRANT SELECT ON {quote_table(table)} TO {server.grantee};",
            )
    return found


def _version(found: list[Finding], server: MysqlServerInfo) -> None:
    least, name = (MIN_MARIADB, "MariaDB 10.5") if server.mariadb else (MIN_MYSQL, "MySQL 8.0")
    if server.version_num < least:
        _add(
            found,
            "source.version",
            Severity.FAIL,
            "version",
            f"{server.product} {server.version} cannot name the columns of row events (binlog_row_metadata)",
            f"upgrade to {name} or newer",
        )


def _binlog(found: list[Finding], server: MysqlServerInfo) -> None:
    settings = server.settings
    persist = "and set it in the server's configuration file so that a restart keeps it"
    if settings.get("log_bin", "OFF").upper() != "ON":
        _add(
            found,
            "source.log_bin",
            Severity.FAIL,
            "log_bin",
            "the binary log is off: there are no changes to follow",
            "start the server with log_bin (log-bin=mysql-bin in the [mysqld] section of its configuration "
            "file; it cannot be set at run time), then restart it",
        )
    else:
        _add(found, "source.log_bin", Severity.OK, "log_bin", "log_bin = ON")
    expected = {"binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL"}
    why = {
        "binlog_format": "changes must be logged as rows, not statements",
        "binlog_row_image": "every row event must carry the whole row (old and new)",
        "binlog_row_metadata": "row events must carry the column names",
    }
    for name, want in expected.items():
        have = settings.get(name)
        if have is None or have.upper() != want:
            _add(
                found,
                f"source.{name}",
                Severity.FAIL,
                name,
                f"{name} is {have or 'not available'}: {why[name]}",
                f"SET GLOBAL {name} = '{want}'; ({persist}; sessions opened before keep the old value: "
                "reconnect the applications)",
            )
        else:
            _add(found, f"source.{name}", Severity.OK, name, f"{name} = {want}")
    if settings.get("server_id", "0") in ("0", ""):
        _add(
            found,
            "source.server_id",
            Severity.FAIL,
            "server_id",
            "server_id is 0: a server without an id cannot serve its binlog to a replica",
            f"SET GLOBAL server_id = 1; ({persist})",
        )
    else:
        _add(found, "source.server_id", Severity.OK, "server_id", f"server_id = {settings['server_id']}")


def _xa(found: list[Finding], server: MysqlServerInfo) -> None:
    """Two-phase XA transactions are decided after the binlog holds their rows: change capture
    stops at one that changed a mapped table (binlog_events.py). The server's count since it
    started says whether the applications use them at all."""
    prepared = int(server.settings.get("com_xa_prepare") or 0)
    if prepared:
        _add(
            found,
            "source.xa_transactions",
            Severity.WARN,
            "Com_xa_prepare",
            f"the server has prepared {prepared} XA transaction(s) since it started: change capture stops "
            "at a two-phase XA transaction (XA PREPARE, then XA COMMIT) that changes a mapped table",
            "have the applications write the mapped tables in ordinary transactions, or commit their XA "
            "transactions with XA COMMIT ... ONE PHASE",
        )


def retention_seconds(settings: Mapping[str, str]) -> float | None:
    """How long binlogs are kept: binlog_expire_logs_seconds, else expire_logs_days; 0 means never
    purged (None returned); a server with both takes the seconds where they are set."""
    seconds = float(settings.get("binlog_expire_logs_seconds") or 0)
    days = float(settings.get("expire_logs_days") or 0)
    if seconds > 0:
        return seconds
    if days > 0:
        return days * 86_400
    return None


def _retention(found: list[Finding], server: MysqlServerInfo, rows: int) -> None:
    kept = retention_seconds(server.settings)
    snapshot = rows / ASSUMED_ROWS_PER_SECOND
    needed = snapshot + RETENTION_MARGIN_S
    name = "binlog_expire_logs_seconds"
    if kept is None:
        _add(found, "source.binlog_retention", Severity.OK, name, "binlogs are never purged automatically")
        return
    advised = int(max(RETENTION_COMFORT_S, needed * 2))
    fix = (
        f"SET GLOBAL binlog_expire_logs_seconds = {advised};"
        if "binlog_expire_logs_seconds" in server.settings
        else f"SET GLOBAL expire_logs_days = {-(-advised // 86_400)};"
    )
    text = f"binlogs are kept {_duration(kept)}; the snapshot is estimated at {_duration(snapshot)}"
    if kept < needed:
        _add(
            found,
            "source.binlog_retention",
            Severity.FAIL,
            name,
            f"{text}: the binlog at the snapshot's position may be purged before change capture reads it",
            fix,
        )
    elif kept < RETENTION_COMFORT_S:
        _add(
            found,
            "source.binlog_retention",
            Severity.WARN,
            name,
            f"{text}: a run stopped for longer than that cannot resume (its position is purged)",
            fix,
        )
    else:
        _add(found, "source.binlog_retention", Severity.OK, name, text)


def _duration(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.1f} h"
    return f"{seconds:.0f} s"


def _privileges(found: list[Finding], server: MysqlServerInfo) -> None:
    # MariaDB 10.5+ calls REPLICATION CLIENT BINLOG MONITOR (and lists it so), and accepts
    # REPLICATION REPLICA for REPLICATION SLAVE.
    monitor = (
        "BINLOG MONITOR" if server.mariadb and server.version_num >= MIN_MARIADB else "REPLICATION CLIENT"
    )
    needed: list[tuple[str, tuple[str, ...], str]] = [
        ("REPLICATION SLAVE", ("REPLICATION SLAVE", "REPLICATION REPLICA"), "read the binlog"),
        (monitor, ("REPLICATION CLIENT", "BINLOG MONITOR"), "read binlog positions (SHOW MASTER STATUS)"),
    ]
    if not server.mariadb:
        # MySQL 8 has no lock-free snapshot position: the snapshot holds FLUSH TABLES WITH READ
        # LOCK while its workers open their reads (docs/architecture.md).
        needed.append(("RELOAD", ("RELOAD",), "take the snapshot's short FLUSH TABLES WITH READ LOCK"))
    for grant, names, purpose in needed:
        if any(server.may(n) for n in names):
            _add(found, "source.privilege", Severity.OK, grant, f"user {server.user} holds {grant}")
        else:
            _add(
                found,
                "source.privilege",
                Severity.FAIL,
                grant,
                f"user {server.user} lacks {grant}, needed to {purpose}",
                f"GRANT {grant} ON *.* TO {server.grantee};",
            )


# -- the mapped tables ------------------------------------------------------------------------------


def preflight_findings(
    info: SourceInfo,
    collections: Sequence[MappedCollection],
    read: Mapping[str, set[str]],
    zero_dates: Mapping[str, Mapping[str, int]],
    zero_dates_to: ZeroDates,
    needs: CutoverNeeds,
) -> list[Finding]:
    """Each mapped table's primary key, engine and foreign-key actions (cascades.py), the zero
    dates a scan found in the columns the mapping reads (`zero_dates`: table -> column -> rows
    holding one; `zero_dates_to`: the plan's source.zero_dates), the tinyint(1) columns it reads as
    integers, and the privileges the run and the plan's cutover (`needs`) use (run_privileges.py)."""
    server = server_of(info)
    keys = {level.table: level.key for c in collections for level in c.levels}
    typed = {
        (level.table, f.column.name)
        for c in collections
        for level in c.levels
        for f in level.document.fields
        if f.plan_type is not None
    }
    found: list[Finding] = []
    for name, table in info.tables.items():
        if not table.primary_key:
            found.append(_keyless(name, keys.get(name) or ()))
        engine = server.engines.get(name, "")
        if engine.lower() not in TRANSACTIONAL_ENGINES:
            found.append(_engine(name, engine))
        columns = {c.name: c for c in table.columns}
        found += [
            _zero_date(name, columns[column], rows, zero_dates_to)
            for column, rows in zero_dates.get(name, {}).items()
        ]
        found += [
            _tinyint1(name, c.name, c.native_type)
            for c in table.columns
            if c.name in read.get(name, ())
            and c.native_type.lower().startswith("tinyint(1)")
            and (name, c.name) not in typed
        ]
    counters = [name for name, table in info.tables.items() if any(c.identity for c in table.columns)]
    return (
        found
        + cascade_findings(info.tables)
        + run_privilege_findings(server, list(info.tables), needs, counters)
    )


def _tinyint1(table: str, column: str, native: str) -> Finding:
    return Finding(
        "source.tinyint1",
        Severity.INFO,
        f"{table}.{column}",
        f"{native} column {table}.{column} is migrated as an integer, not a boolean (MySQL's BOOLEAN is "
        "TINYINT(1), and so may hold any integer)",
        f"to migrate it as true/false, give its collection or embed `types: {{{column}: bool}}` (`plan` then "
        "checks it holds only 0, 1 and NULL)",
    )


def _keyless(table: str, key: Sequence[str]) -> Finding:
    columns = ", ".join(quote_ident(k) for k in key) or "..."
    return Finding(
        "source.primary_key",
        Severity.FAIL,
        table,
        f"{table} has no primary key: it may hold rows no key tells apart, and a change to one could "
        "not be applied to its document alone",
        f"ALTER TABLE {quote_table(table)} ADD PRIMARY KEY ({columns});",
    )


def _engine(table: str, engine: str) -> Finding:
    return Finding(
        "source.engine",
        Severity.FAIL,
        table,
        f"{table} uses the {engine or 'unknown'} engine, which is not transactional: the snapshot cannot "
        "read it consistently with the binlog position",
        f"ALTER TABLE {quote_table(table)} ENGINE=InnoDB;",
    )


def _zero_date(table: str, info: ColumnInfo, rows: int, zero_dates_to: ZeroDates) -> Finding:
    column, col = info.name, quote_ident(info.name)
    held = f"{table}.{column} holds zero dates in {rows} row(s) ('0000-00-00' or a date with a zero month or day)"
    if zero_dates_to == "null":
        mapped = (
            f'{held}: they become null on the target (source zero_dates: "null"); reverse sync after cutover '
        )
        if info.nullable:
            return Finding(
                "source.zero_date",
                Severity.INFO,
                f"{table}.{column}",
                mapped + "cannot restore a zero date: a row that still holds one keeps it, any other "
                "row gets NULL",
            )
        return Finding(
            "source.zero_date",
            Severity.WARN,
            f"{table}.{column}",
            mapped
            + f"cannot write such a document back: {column} is NOT NULL, and a zero date cannot be restored",
            f"ALTER TABLE {quote_table(table)} MODIFY {col} {info.native_type} NULL; (keep its DEFAULT and "
            "COMMENT by repeating them) or accept that reverse sync stops at such a document",
        )
    # The fix is text for the operator, never run here.
    return Finding(
        "source.zero_date",
        Severity.FAIL,
        f"{table}.{column}",
        f"{held}, which no date type outside MySQL can hold",
        f"UPDATE {quote_table(table)} SET {col} = NULL WHERE YEAR({col}) = 0 OR MONTH({col}) = 0 OR "  # noqa: S608
        f"DAYOFMONTH({col}) = 0; (after ALTER TABLE ... MODIFY {col} ... NULL where it is NOT NULL), or "
        'exclude the column, or map zero dates to null: source: {..., zero_dates: "null"}',
    )


def date_columns(info: SourceInfo, read: Mapping[str, set[str]]) -> dict[str, list[str]]:
    """The date, datetime and timestamp columns the mapping reads, per table (to scan for zero dates)."""
    return {
        name: [c.name for c in table.columns if c.type_name in DATE_TYPES and c.name in read.get(name, ())]
        for name, table in info.tables.items()
    }


def unscanned(table: str, columns: Sequence[str], reason: str) -> Finding:
    """The zero-date scan of `table` failed (a statement time limit, say)."""
    return Finding(
        "source.zero_date",
        Severity.WARN,
        table,
        f"could not scan {', '.join(columns)} of {table} for zero dates ({reason}); a zero date stops the run",
        "check by hand: SELECT ... WHERE MONTH(col) = 0 OR DAYOFMONTH(col) = 0",
    )
