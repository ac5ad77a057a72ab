"""`migrator init`: inspect a live source and propose a plan (docs/architecture.md, "Proposing a
plan"). Read-only: the source adapter's inspection and statistics, nothing written anywhere but
the returned text. The plan names its URLs through the environment; a password never reaches it."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from migrator.adapters.registry import SOURCE_SCHEMES, source_adapter_for_scheme, source_for
from migrator.connstr import ConnInfo, MalformedConnection, parse, parse_mongodb
from migrator.errors import UsageError
from migrator.operations.plan_text import Header, render
from migrator.operations.propose import Proposal, propose
from migrator.plan.schema import SCHEMA_FILE

SOURCE_ENV, TARGET_ENV = "MIGRATOR_SOURCE_URL", "MIGRATOR_TARGET_URL"
# What a MongoDB database name may not hold (plan/models.py Target): replaced by '_'.
_NOT_IN_DATABASE = re.compile(r"[/\\. \"$\x00]")


@dataclass(frozen=True)
class InitResult:
    text: str  # the plan file
    proposal: Proposal
    tables: tuple[str, ...]  # the tables inspected


def init(
    url: str,
    *,
    tables: Sequence[str] = (),
    target_url: str | None = None,
    database: str | None = None,
    plan_dir: str | os.PathLike[str] = ".",
) -> InitResult:
    """Propose a plan for the source at `url` (its tables, or `tables`). `plan_dir`: where the plan
    will be written, which the schema modeline's relative path starts from."""
    adapter, info = _source_kind(url)
    target_info = _target(target_url)
    source = source_for(adapter, url)
    try:
        names = _chosen(source.user_tables(), tables, adapter)
        inspected = source.inspect(names)
        stats = source.row_statistics(list(inspected.tables))
    finally:
        source.close()
    proposal = propose(inspected.tables, stats)
    header = Header(
        schema_ref=_schema_ref(Path(plan_dir)),
        endpoint=source.name,
        adapter=adapter,
        source_url=_reference(SOURCE_ENV, info.without_secrets),
        target_url=_reference(TARGET_ENV, target_info),
        database=_database(database or inspected.server.database or info.database or "app"),
    )
    return InitResult(render(proposal, header, len(inspected.tables)), proposal, tuple(names))


def _source_kind(url: str) -> tuple[str, ConnInfo]:
    try:
        info = parse(url)
    except MalformedConnection as exc:
        raise UsageError(f"the source URL is not well formed: {exc}") from None
    adapter = source_adapter_for_scheme(info.scheme)
    if adapter is None:
        raise UsageError(
            f"init takes a source database's URL ({', '.join(sorted(SOURCE_SCHEMES))}), not {info.scheme}://"
        )
    return adapter, info


def _target(url: str | None) -> str | None:
    if url is None:
        return None
    try:
        return parse_mongodb(url).without_secrets
    except MalformedConnection as exc:
        raise UsageError(f"the target URL is not well formed: {exc}") from None


def _reference(variable: str, default: str | None) -> str:
    """${VAR:-default}; ${VAR} alone where the default could not be written inside one."""
    if default is None or any(c in default for c in "}'\n") or "$" in default:
        return f"${{{variable}}}"
    return f"${{{variable}:-{default}}}"


def _chosen(known: Sequence[str], asked: Sequence[str], adapter: str) -> list[str]:
    """The tables to inspect: every known one, or those asked for (a bare name: the one table of
    that name; PostgreSQL's public schema where it is one)."""
    if not asked:
        return list(known)
    chosen: list[str] = []
    for name in asked:
        if name in known:
            chosen.append(name)
            continue
        matches = [t for t in known if t.rpartition(".")[2] == name] if "." not in name else []
        if adapter == "postgres" and f"public.{name}" in known:
            matches = [f"public.{name}"]
        if len(matches) != 1:
            found = "several tables have that name: qualify it" if matches else "no such table"
            raise UsageError(f"--tables {name}: {found}", hint=f"tables found: {', '.join(known) or 'none'}")
        chosen.append(matches[0])
    return list(dict.fromkeys(chosen))


def _database(name: str) -> str:
    return _NOT_IN_DATABASE.sub("_", name)[:63] or "app"


def _schema_ref(plan_dir: Path) -> str:
    """The committed schema's path relative to `plan_dir`, found in it or a directory above it;
    else a file beside the plan (`migrator schema > plan-v1.json` puts it there)."""
    start = plan_dir.resolve()
    for directory in (start, *start.parents):
        if (directory / SCHEMA_FILE).is_file():
            return Path(os.path.relpath(directory / SCHEMA_FILE, start)).as_posix()
    return Path(SCHEMA_FILE).name
