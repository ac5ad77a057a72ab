"""SQL for reading key ranges and key sets of a MySQL/MariaDB source, and key values as text.

Key values travel as text (chunk bounds in the state store, keys verify read from the target) and
become typed query parameters here (`key_param`), so that a comparison is the key index's own.
Placeholders are PyMySQL's `%s`; every statement is run with a parameter list, so a literal `%`
is written `%%`.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from migrator.adapters.base import ColumnInfo, LevelRead
from migrator.adapters.mysql.values import select_expression

Where = tuple[str, list[Any]]

_INTEGERS = frozenset({"smallint", "integer", "bigint", "bigint unsigned"})
_DATETIMES = frozenset({"timestamp with time zone", "timestamp without time zone"})
# Key types whose documents hold less than the source: BSON dates keep milliseconds, so an _id
# read from the target names every source key of its millisecond (docs/architecture.md, "Keys").
MILLISECOND_KEYS = _DATETIMES
_TEXT_LIKE = frozenset({"character", "character varying", "text"})


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def table_sql(table: str) -> str:
    """`db`.`table` for 'db.table', `table` for a bare name (the connection's database)."""
    schema, dot, name = table.partition(".")
    return f"{quote(schema)}.{quote(name)}" if dot else quote(table)


def key_text(value: Any) -> str:
    """A key value the readers read, as the text `key_param` takes back (chunk bounds)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    return str(value)


def key_param(text: str, type_name: str) -> Any:
    """A key value given as text, as the parameter that compares as the key's type: integers and
    decimals as numbers, times as naive UTC datetimes (the session's time zone is UTC), binary
    strings from hex (with or without PostgreSQL's '\\x')."""
    if type_name in _INTEGERS:
        return int(text)
    if type_name == "numeric":
        return Decimal(text)
    if type_name in _DATETIMES:
        value = datetime.datetime.fromisoformat(text)
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC).replace(tzinfo=None)
        return value
    if type_name == "date":
        return datetime.date.fromisoformat(text[:10])
    if type_name == "bytea":
        return bytes.fromhex(text.removeprefix("\\x"))
    if type_name == "bit":
        return int(text, 2)
    return text


def _ref(alias: str, column: str) -> str:
    return f"{quote(alias)}.{quote(column)}" if alias else quote(column)


def _bound(refs: Sequence[str], values: Sequence[Any], strict_op: str, last_op: str, lead: str) -> Where:
    """`(k...) <op> (v...)` spelled out: k1 <op> v1 OR (k1 = v1 AND k2 <op> v2) OR ..."""
    alternatives: list[str] = []
    params: list[Any] = []
    for i in range(len(refs)):
        op = last_op if i == len(refs) - 1 else strict_op
        alternatives.append(
            "(" + " AND ".join([*(f"{refs[j]} = %s" for j in range(i)), f"{refs[i]} {op} %s"]) + ")"
        )
        params.extend(values[: i + 1])
    if len(refs) == 1:
        return alternatives[0], params
    return f"{refs[0]} {lead} %s AND (" + " OR ".join(alternatives) + ")", [values[0], *params]


def key_range_condition(
    alias: str,
    key: Sequence[str],
    key_types: Sequence[str],
    lo: Sequence[str] | None,
    hi: Sequence[str] | None,
) -> Where:
    """`(k...) > (lo...) AND (k...) <= (hi...)`, spelled out column by column: MariaDB does not
    use an index range for a row-constructor comparison; the leading `k1 >= lo1` gives the
    optimizer one for a compound key."""
    refs = [_ref(alias, k) for k in key]
    parts: list[str] = []
    params: list[Any] = []
    for bound, ops in ((lo, (">", ">", ">=")), (hi, ("<", "<=", "<="))):
        if bound is None:
            continue
        values = [key_param(v, t) for v, t in zip(bound, key_types, strict=True)]
        condition, bound_params = _bound(refs, values, *ops)
        parts.append(condition)
        params.extend(bound_params)
    return (" AND ".join(parts) if parts else "TRUE"), params


def key_match(ref: str, text: str, type_name: str) -> Where:
    """SQL true when key column `ref` is the key `text` names: exact, except for the timestamps,
    whose _id holds the millisecond: there every key of that millisecond."""
    value = key_param(text, type_name)
    if type_name not in MILLISECOND_KEYS:
        return f"{ref} = %s", [value]
    start = value.replace(microsecond=value.microsecond // 1000 * 1000)
    return f"({ref} >= %s AND {ref} < %s)", [start, start + datetime.timedelta(milliseconds=1)]


# A column's character set and collation (None: not a character column, or not known).
Collation = tuple[str, str] | None
_CHARSET_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def is_character(type_name: str, type_kind: str = "base") -> bool:
    """Whether values of this type compare by a character set's collation."""
    return type_name in _TEXT_LIKE or type_kind == "enum"


def collation_query(table: str, column: str) -> Where:
    """The character set and collation of `table`.`column` (no row where it has none)."""
    schema, dot, name = table.partition(".")
    return (
        "SELECT CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s AND COLUMN_NAME = %s "
        "AND CHARACTER_SET_NAME IS NOT NULL",
        [schema if dot else None, name if dot else table, column],
    )


def _cell(type_name: str, collation: Collation) -> str:
    """A derived table's value: a string in the character set and collation of the column it will
    be compared with. A derived table's column is no constant, which MySQL converts to a column's
    character set on the fly: a utf8mb4 value against a latin1 column is an illegal mix."""
    if collation is not None and all(_CHARSET_NAME.match(n) for n in collation):
        return f"CONVERT(%s USING {collation[0]}) COLLATE {collation[1]}"
    return _TYPED_PARAM.get(type_name, "%s")


def values_table(
    names: Sequence[str],
    types: Sequence[str],
    values: Sequence[Sequence[str]],
    ordinal: str,
    collations: Sequence[Collation] | None = None,
) -> Where:
    """A derived table of the given values (text, one tuple per row) as typed columns `names`,
    with their position (from 1) as column `ordinal`: `SELECT .. UNION ALL SELECT ..`, which
    both MariaDB and MySQL 8 take (their VALUES constructors differ)."""
    selects: list[str] = []
    params: list[Any] = []
    for n, row in enumerate(values, start=1):
        typed = [_cell(t, c) for t, c in zip(types, collations or [None] * len(types), strict=True)]
        cells = [f"{c} AS {quote(name)}" for c, name in zip(typed, names, strict=True)] if n == 1 else typed
        selects.append("SELECT " + ", ".join([*cells, f"{n} AS {quote(ordinal)}" if n == 1 else str(n)]))
        params.extend(key_param(v, t) for v, t in zip(row, types, strict=True))
    return "(" + " UNION ALL ".join(selects) + ")", params


# A derived table's column takes its type from its values: times are cast, as PyMySQL sends a
# datetime parameter as a string literal.
_TYPED_PARAM = {
    "timestamp with time zone": "CAST(%s AS DATETIME(6))",
    "timestamp without time zone": "CAST(%s AS DATETIME(6))",
    "date": "CAST(%s AS DATE)",
}


def key_match_sql(ref: str, value: str, type_name: str) -> str:
    """`key_match` against a typed value in SQL (a derived table's column `value`)."""
    if type_name not in MILLISECOND_KEYS:
        return f"{ref} = {value}"
    start = f"({value} - INTERVAL MICROSECOND({value}) %% 1000 MICROSECOND)"
    return f"({ref} >= {start} AND {ref} < {start} + INTERVAL 1000 MICROSECOND)"


def key_before_query(table: str, key: Sequence[str], key_types: Sequence[str], value: Sequence[str]) -> Where:
    """The greatest key of `table` below `value` (as text)."""
    refs = [_ref("r", k) for k in key]
    values = [key_param(v, t) for v, t in zip(value, key_types, strict=True)]
    condition, params = _bound(refs, values, "<", "<", "<=")
    cols = ", ".join(refs)
    desc = ", ".join(f"{r} DESC" for r in refs)
    return f"SELECT {cols} FROM {table_sql(table)} r WHERE {condition} ORDER BY {desc} LIMIT 1", params  # noqa: S608 - identifiers go through quote(), values are parameters


def missing_query(
    table: str,
    key: Sequence[str],
    key_types: Sequence[str],
    keys: Sequence[Sequence[str]],
    collations: Sequence[Collation] | None = None,
) -> Where:
    """The positions (from 1) of `keys` (as text) that `table` does not hold."""
    names = [f"v{i}" for i in range(len(key))]
    derived, params = values_table(names, key_types, keys, "n", collations)
    match = " AND ".join(
        key_match_sql(_ref("t", k), _ref("u", n), t) for k, n, t in zip(key, names, key_types, strict=True)
    )
    query = (
        f"SELECT u.n FROM {derived} u WHERE NOT EXISTS "  # noqa: S608 - identifiers go through quote(), values are parameters
        f"(SELECT 1 FROM {table_sql(table)} t WHERE {match}) ORDER BY u.n"
    )
    return query, params


def key_set_condition(
    alias: str, key: Sequence[str], key_types: Sequence[str], keys: Sequence[Sequence[str]]
) -> Where:
    """The root rows of the given keys (as text; see `key_match`)."""
    if not keys:
        return "FALSE", []
    alternatives: list[str] = []
    params: list[Any] = []
    for values in keys:
        matches = [key_match(_ref(alias, k), v, t) for k, v, t in zip(key, values, key_types, strict=True)]
        alternatives.append("(" + " AND ".join(m[0] for m in matches) + ")")
        params.extend(p for m in matches for p in m[1])
    return "(" + " OR ".join(alternatives) + ")", params


def sample_condition(alias: str, key: Sequence[str], fraction: float, seed: int) -> str:
    """A deterministic pseudo-random `fraction` of the root keys: the same keys in every level's
    query and in every run with the same seed."""
    cols = ", ".join(_ref(alias, k) for k in key)
    threshold = max(1, round(fraction * 16384))
    return f"(CRC32(CONCAT_WS(',', {int(seed)}, {cols})) & 16383) < {threshold}"


def element_order(alias: str, column: ColumnInfo) -> str:
    """Order embedded elements as BSON compares the values they become, nulls first (MySQL's
    ascending order puts NULL first), so that CDC's `$push` with `$sort` keeps the snapshot's
    order: strings by their UTF-8 bytes (an ENUM by its label, not its index; TIME and SET by their
    text), binaries by length first, timestamps by millisecond."""
    ref = _ref(alias, column.name)
    if column.type_kind in ("enum", "array") or column.type_name in _TEXT_LIKE:
        return f"CAST(CONVERT({ref} USING utf8mb4) AS BINARY)"
    if column.type_name == "time without time zone":
        return f"CAST(CAST({ref} AS CHAR) AS BINARY)"
    if column.type_name == "bytea":
        return f"LENGTH({ref}), {ref}"
    if column.type_name in MILLISECOND_KEYS:
        return f"LEFT(DATE_FORMAT({ref}, '%%Y-%%m-%%d %%H:%%i:%%s.%%f'), 23)"
    return ref


def level_query(
    level: LevelRead,
    root: str,
    key: Sequence[str],
    key_types: Sequence[str],
    lo: Sequence[str] | None,
    hi: Sequence[str] | None,
    where: Where | None = None,
    relation: Where | None = None,
) -> Where:
    """One level's rows for the root key range (lo, hi], ordered by the root key; `where` narrows
    the root rows further (a key set, a sample); `relation` stands in for the root table (a
    derived table of given values, `values_table`)."""
    condition, params = key_range_condition("r", key, key_types, lo, hi)
    if where is not None:
        condition = f"{condition} AND {where[0]}"
        params = [*params, *where[1]]
    root_relation = table_sql(root)
    if relation is not None:
        root_relation = relation[0]
        params = [*relation[1], *params]  # FROM comes before WHERE
    root_key = [_ref("r", k) for k in key]
    joins: list[str] = []
    if not level.path:
        select = [select_expression(_ref("r", c.name), c) for c in level.columns]
        order = root_key
    else:
        alias = f"c{len(level.path) - 1}"
        select = root_key + [select_expression(_ref(alias, c.name), c) for c in level.columns]
        order = root_key + [element_order(alias, c) for c in level.order_by]
        parent = "r"
        for depth, hop in enumerate(level.path):
            child = f"c{depth}"
            on = " AND ".join(f"{_ref(child, c)} = {_ref(parent, p)}" for c, p in hop.on)
            joins.append(f"JOIN {table_sql(hop.table)} {quote(child)} ON {on}")
            parent = child
    query = (
        f"SELECT {', '.join(select)} FROM {root_relation} r {' '.join(joins)} "  # noqa: S608 - identifiers go through quote(), values are parameters
        f"WHERE {condition} ORDER BY {', '.join(order)}"
    )
    return query, params


def key_query(
    root: str,
    key: Sequence[str],
    key_types: Sequence[str],
    lo: Sequence[str] | None,
    hi: Sequence[str] | None,
    where: Where | None,
    limit: int,
    offset: int = 0,
) -> Where:
    """The keys of `root` in (lo, hi] (narrowed by `where`), in key order: `limit` of them after
    skipping `offset`."""
    condition, params = key_range_condition("r", key, key_types, lo, hi)
    if where is not None:
        condition = f"{condition} AND {where[0]}"
        params = [*params, *where[1]]
    cols = ", ".join(_ref("r", k) for k in key)
    return (
        f"SELECT {cols} FROM {table_sql(root)} r WHERE {condition} ORDER BY {cols} "  # noqa: S608 - identifiers go through quote(), values are parameters
        f"LIMIT {int(limit)} OFFSET {int(offset)}"
    ), params
