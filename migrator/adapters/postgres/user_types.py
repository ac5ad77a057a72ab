"""The user-defined types a table's columns declare (or their arrays' elements): an enum's labels
in enumsortorder, a domain's base type and constraints, the kind of any other. A PostgreSQL target
creates these before its tables (docs/architecture.md, "Tables as collections")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import psycopg

from migrator.adapters.inspection import ColumnInfo, UserType

_KINDS = {"e": "enum", "d": "domain", "c": "composite", "r": "range", "m": "multirange"}

_TYPES_SQL = """
SELECT c.oid, format('%%I.%%I', n.nspname, u.typname), u.typtype,
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = u.oid ORDER BY e.enumsortorder),
       CASE WHEN u.typtype = 'd' AND b.typtype = 'b' AND bn.nspname = 'pg_catalog'
            THEN format_type(u.typbasetype, u.typtypmod) END,
       ARRAY(SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k
             WHERE k.contypid = u.oid AND k.contype = 'c' ORDER BY k.conname),
       u.typnotnull, n.nspname,
       ARRAY(SELECT DISTINCT ARRAY[format('%%I.%%I(%%s)', pn.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
                                   pg_get_functiondef(p.oid)]
             FROM pg_constraint k
             JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = k.oid
                             AND d.refclassid = 'pg_proc'::regclass AND d.refobjid >= 16384
             JOIN pg_proc p ON p.oid = d.refobjid JOIN pg_namespace pn ON pn.oid = p.pronamespace
             WHERE k.contypid = u.oid AND k.contype = 'c')
FROM pg_type c
JOIN pg_type u ON u.oid = CASE WHEN c.typcategory = 'A' AND c.typelem <> 0 THEN c.typelem ELSE c.oid END
JOIN pg_namespace n ON n.oid = u.typnamespace
LEFT JOIN pg_type b ON b.oid = u.typbasetype
LEFT JOIN pg_namespace bn ON bn.oid = b.typnamespace
WHERE c.oid = ANY(%s) AND u.typtype IN ('e', 'd', 'c', 'r', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""


def with_user_types(cur: psycopg.Cursor[Any], columns: Sequence[ColumnInfo]) -> tuple[ColumnInfo, ...]:
    """`columns` with each one's user-defined type attached (None where its type is built in)."""
    oids = sorted({c.type_oid for c in columns})
    found: dict[int, UserType] = {}
    rows = cur.execute(_TYPES_SQL, [oids]).fetchall()
    for oid, name, typtype, labels, base, checks, not_null, schema, functions in rows:
        found[int(oid)] = UserType(
            name=str(name),
            kind=_KINDS[str(typtype)],
            labels=tuple(str(label) for label in labels),
            base=str(base or ""),
            checks=tuple(str(check) for check in checks),
            not_null=bool(not_null),
            schema=str(schema),
            functions=tuple((str(f[0]), str(f[1])) for f in functions),
        )
    return tuple(replace(c, user_type=found.get(c.type_oid)) for c in columns)
