"""What the target must have before the guarded CREATE TYPE / CREATE DOMAIN can run, compared
with the source (docs/architecture.md, "Tables as collections").

An enum the target already has under the name a source column's type has, compared label by
label with the source's (docs/architecture.md, "Tables as collections"): the guarded CREATE TYPE
(user_types.py) would keep the target's, and a source value it lacks would fail the copy. `plan`
refuses such a type, naming both lists, with the ALTER TYPE ... ADD VALUE statements that add
the missing labels (a target label the source lacks is harmless: no source value carries it).

A domain the target lacks whose CHECK calls a user-defined function: CREATE DOMAIN would fail
(42883) unless the target has the function. `plan` refuses it, naming the function, with its
definition as the source has it (after `SET check_function_bodies = off`: its body may read
tables the target does not have yet)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from migrator.adapters.base import MappedCollection
from migrator.adapters.inspection import UserType
from migrator.adapters.postgres_target.user_types import literal
from migrator.findings import Finding, Severity

_LABELS_SQL = """
SELECT ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
       t.typtype
FROM pg_type t WHERE t.oid = to_regtype(%s)
"""


def source_enums(collections: Sequence[MappedCollection]) -> list[UserType]:
    found: dict[str, UserType] = {}
    for collection in collections:
        for column in collection.levels[0].document.all_columns:
            if column.user_type is not None and column.user_type.kind == "enum":
                found.setdefault(column.user_type.name, column.user_type)
    return list(found.values())


def _additions(kind: UserType, target: list[str]) -> list[str]:
    """ADD VALUE statements putting each missing label next to its source neighbour."""
    have, statements = list(target), []
    for i, label in enumerate(kind.labels):
        if label in have:
            continue
        before = next((x for x in kind.labels[i + 1 :] if x in have), None)
        where = f" BEFORE {literal(before)}" if before is not None else ""
        statements.append(f"ALTER TYPE {kind.name} ADD VALUE {literal(label)}{where};")
        have.insert(have.index(before) if before is not None else len(have), label)
    return statements


def label_findings(conn: psycopg.Connection[Any], collections: Sequence[MappedCollection]) -> list[Finding]:
    findings = []
    for kind in source_enums(collections):
        row = conn.execute(_LABELS_SQL, [kind.name]).fetchone()
        if row is None:
            continue  # created before the tables
        target, typtype = [str(label) for label in row[0]], str(row[1])
        if typtype != "e":
            findings.append(
                Finding(
                    "target.types",
                    Severity.FAIL,
                    kind.name,
                    f"{kind.name} is an enum on the source but another kind of type on the target",
                    f"drop or rename the target's {kind.name}, then run plan again",
                )
            )
        elif [x for x in target if x in kind.labels] != list(kind.labels):
            findings.append(
                Finding(
                    "target.types",
                    Severity.FAIL,
                    kind.name,
                    f"enum {kind.name} has labels {list(kind.labels)} on the source but {target} on the target",
                    " ".join(_additions(kind, target))
                    or f"the labels are in another order: recreate {kind.name} on the target as on the source",
                )
            )
    return findings


_DOMAIN_SQL = "SELECT to_regtype(%s) IS NULL, to_regprocedure(%s) IS NULL"


def source_domains(collections: Sequence[MappedCollection]) -> list[UserType]:
    found: dict[str, UserType] = {}
    for collection in collections:
        for column in collection.levels[0].document.all_columns:
            if column.user_type is not None and column.user_type.functions:
                found.setdefault(column.user_type.name, column.user_type)
    return list(found.values())


def domain_findings(conn: psycopg.Connection[Any], collections: Sequence[MappedCollection]) -> list[Finding]:
    findings = []
    for kind in source_domains(collections):
        for signature, definition in kind.functions:
            row = conn.execute(_DOMAIN_SQL, [kind.name, signature]).fetchone()
            if row is None or not (row[0] and row[1]):
                continue  # the domain is there already (kept), or the function is
            findings.append(
                Finding(
                    "target.schema",
                    Severity.FAIL,
                    kind.name,
                    f"domain {kind.name} checks its values with function {signature}, which the target "
                    "lacks: creating the domain there would fail",
                    f"create the function on the target first, as the source defines it: "
                    f"SET check_function_bodies = off; {definition.strip()}",
                )
            )
    return findings
