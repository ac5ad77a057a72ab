"""The statements reverse sync writes a batch of documents with, in MySQL/MariaDB syntax
(docs/architecture.md, "Reverse sync and echo prevention"). Pure: they take the tables' facts
(reverse_tables.py) and give (SQL, parameters) with PyMySQL's %s placeholders.

- Deletes, deepest level first, one statement per document and level: the rows of the level that
  belong to the document (linked to its root row through their parents as the source holds them
  now, or to a parent the document now holds) and that it no longer holds. Rows under a parent
  whose array (or sub-document) the document lacks (`exempt`), at any level above, stay.
- One DELETE of the deleted documents' root rows.
- Upserts, parents first: multi-row `INSERT ... ON DUPLICATE KEY UPDATE` of the columns a row
  carries, a row held by two documents written once, as the later one holds it. A column whose
  forward conversion is lossy keeps its stored value when the new one is its lossy copy
  (milliseconds of a timestamp, the text of a JSON value, trailing zeros beyond 34 digits), and
  an update that changes nothing is not logged to the binlog.
"""

# ruff: noqa: S608 (identifiers are quoted with quote()/table_sql() or constants; values are parameters)
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from migrator.adapters.mysql.reading import quote, table_sql
from migrator.adapters.mysql.reverse_tables import WriteTable
from migrator.adapters.mysql.write_values import write_value
from migrator.adapters.rows import DocumentRows, LevelRows, TableLevel
from migrator.errors import SourceError

Statement = tuple[str, list[Any]]


@dataclass(frozen=True)
class Guarded:
    """`then` runs only when `check` finds no row (a row's INSERT where it is not stored)."""

    check: Statement
    then: Statement


Step = Statement | Guarded
ROWS_PER_STATEMENT = 500


def _ref(alias: str, column: str) -> str:
    return f"{quote(alias)}.{quote(column)}"


def _tuple(refs: Sequence[str]) -> str:
    return f"({', '.join(refs)})"


def _values_list(values: Sequence[tuple[Any, ...]], params: list[Any]) -> str:
    """`((%s, %s), (%s, %s))`: row constructors for IN lists."""
    for value in values:
        params.extend(value)
    return "(" + ", ".join("(" + ", ".join(["%s"] * len(v)) + ")" for v in values) + ")"


def _typed(
    table: WriteTable, columns: Sequence[str], values: Sequence[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    return [
        tuple(write_value(table.columns[c], v) for c, v in zip(columns, row, strict=True)) for row in values
    ]


def _chain(levels: Sequence[TableLevel], index: int) -> list[int]:
    """The level indexes from the root down to level `index`'s parent."""
    chain = [levels[index].parent]
    while levels[chain[-1]].parent != -1:
        chain.append(levels[chain[-1]].parent)
    chain.reverse()
    return chain


def delete_children(document: DocumentRows, index: int, table_of: Callable[[str], WriteTable]) -> Statement:
    """DELETE the rows of level `index` that belong to `document` and that it no longer holds."""
    levels = document.levels
    state = document.state or [LevelRows() for _ in levels]
    level, rows = levels[index], state[index]
    table, parent_table = table_of(level.table), table_of(levels[level.parent].table)
    params: list[Any] = []
    chain = _chain(levels, index)
    root = levels[0]
    joins = []
    where = []
    root_key = list(document.root_key)
    where.append(
        f"{_tuple([_ref('p0', k) for k in root_key])} = {_values_list(_typed(table_of(root.table), root_key, [tuple(document.root_key[k] for k in root_key)]), params)}"
    )
    for depth, hop_index in enumerate(chain[1:], start=1):
        hop = levels[hop_index]
        on = " AND ".join(f"{_ref(f'p{depth}', c)} = {_ref(f'p{depth - 1}', p)}" for c, p in hop.on)
        joins.append(f"JOIN {table_sql(hop.table)} AS {quote(f'p{depth}')} ON {on}")
        if state[hop_index].exempt:
            exempt = _typed(table_of(levels[hop.parent].table), hop.parent_link, state[hop_index].exempt)
            where.append(
                f"{_tuple([_ref(f'p{depth}', c) for c in hop.link])} NOT IN {_values_list(exempt, params)}"
            )
    last = f"p{len(chain) - 1}"
    parents = (
        f"SELECT * FROM (SELECT {', '.join(_ref(last, p) for p in level.parent_link)} "
        f"FROM {table_sql(root.table)} AS {quote('p0')} {' '.join(joins)} WHERE {' AND '.join(where)}) AS g"
    )
    link = _tuple([quote(c) for c in level.link])
    governed = [f"{link} IN ({parents})"]
    if rows.carried:
        governed.append(
            f"{link} IN {_values_list(_typed(parent_table, level.parent_link, rows.carried), params)}"
        )
    conditions = [f"({' OR '.join(governed)})"]
    if rows.exempt:
        conditions.append(
            f"{link} NOT IN {_values_list(_typed(parent_table, level.parent_link, rows.exempt), params)}"
        )
    if rows.rows:
        keys = [tuple(row[k] for k in level.key) for row in rows.rows]
        conditions.append(
            f"{_tuple([quote(k) for k in level.key])} NOT IN {_values_list(_typed(table, level.key, keys), params)}"
        )
    return f"DELETE FROM {table_sql(level.table)} WHERE {' AND '.join(conditions)}", params


def delete_roots(root: TableLevel, table: WriteTable, keys: list[dict[str, Any]]) -> Statement:
    columns = list(keys[0])
    params: list[Any] = []
    values = _values_list(_typed(table, columns, [tuple(k[c] for c in columns) for k in keys]), params)
    return (
        f"DELETE FROM {table_sql(root.table)} WHERE {_tuple([quote(c) for c in columns])} IN {values}",
        params,
    )


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def new_value(table: WriteTable, column: str, equivalence: str | None, mariadb: bool, new: str) -> str:
    """What `column` is set to on a duplicate key: `new`, unless the stored value maps to the same
    document value through a lossy conversion (then the stored one)."""
    cur = quote(column)
    if equivalence == "milliseconds":
        same = f"({cur} - INTERVAL MOD(MICROSECOND({cur}), 1000) MICROSECOND) <=> {new}"
    elif equivalence == "json":
        same = (
            f"JSON_EQUALS({cur}, {new}) <=> 1" if mariadb else f"CAST({cur} AS JSON) <=> CAST({new} AS JSON)"
        )
    elif equivalence == "numeric":
        same = f"{cur} = {new} AND LENGTH(REPLACE(REPLACE(CAST({cur} AS CHAR), '-', ''), '.', '')) > 34"
    else:
        return new
    return f"IF({same}, {cur}, {new})"


def level_upserts(level: TableLevel, table: WriteTable, held: list[LevelRows], mariadb: bool) -> list[Step]:
    """The rows the documents hold at one level, as multi-row upserts per set of columns."""
    arbiter = table.arbiter(level.key)
    latest: dict[Any, tuple[tuple[str, ...], dict[str, Any]]] = {}
    for rows in held:
        for row in rows.rows:
            columns = tuple(c for c in row if c not in table.generated)
            missing = [k for k in arbiter if k not in columns]
            if missing:
                raise SourceError(
                    f"rows of {table.name} reach the writer without their key column(s) {missing}"
                )
            key = _hashable(tuple(row.get(c) for c in arbiter))
            latest.pop(key, None)
            latest[key] = (columns, row)
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for columns, row in latest.values():
        by_columns.setdefault(columns, []).append(row)
    out: list[Step] = []
    equivalent: dict[str, str] = dict(level.equivalent)
    for columns, group in by_columns.items():
        updates = [c for c in columns if c not in arbiter]
        if updates and not table.required <= set(columns):
            out.extend(_update_or_insert(table, arbiter, columns, updates, group, equivalent, mariadb))
            continue
        for start in range(0, len(group), ROWS_PER_STATEMENT):
            part = group[start : start + ROWS_PER_STATEMENT]
            out.append(_upsert(table, arbiter, columns, updates, part, equivalent, mariadb))
    return out


def _upsert(
    table: WriteTable,
    arbiter: tuple[str, ...],
    columns: tuple[str, ...],
    updates: list[str],
    rows: list[dict[str, Any]],
    equivalent: dict[str, str],
    mariadb: bool,
) -> Statement:
    params = [write_value(table.columns[c], row[c]) for row in rows for c in columns]
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    assignments = [
        f"{quote(c)} = {new_value(table, c, equivalent.get(c), mariadb, f'VALUES({quote(c)})')}"
        for c in updates
    ] or [f"{quote(arbiter[0])} = {quote(arbiter[0])}"]  # a row of key columns only: nothing to update
    statement = (
        f"INSERT INTO {table_sql(table.name)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES {', '.join([row_sql] * len(rows))} ON DUPLICATE KEY UPDATE {', '.join(assignments)}"
    )
    return statement, params


def _update_or_insert(
    table: WriteTable,
    arbiter: tuple[str, ...],
    columns: tuple[str, ...],
    updates: list[str],
    rows: list[dict[str, Any]],
    equivalent: dict[str, str],
    mariadb: bool,
) -> list[Step]:
    """For a table with a NOT NULL column (no default) the rows do not carry: the server refuses
    an INSERT without it (errno 1364) before ON DUPLICATE KEY looks for the stored row, and an
    INSERT ... SELECT even when it selects nothing. So update the stored row, and insert a row
    only where it is not stored (which then fails, rightly, naming the column)."""
    out: list[Step] = []
    match = " AND ".join(f"{quote(k)} <=> %s" for k in arbiter)
    names = ", ".join(quote(c) for c in columns)
    for row in rows:
        values = {c: write_value(table.columns[c], row[c]) for c in columns}
        key = [values[k] for k in arbiter]
        params: list[Any] = []
        sets = []
        for c in updates:
            expression = new_value(table, c, equivalent.get(c), mariadb, "%s")
            params.extend([values[c]] * expression.count("%s"))
            sets.append(f"{quote(c)} = {expression}")
        out.append((f"UPDATE {table_sql(table.name)} SET {', '.join(sets)} WHERE {match}", params + key))
        insert = (
            f"INSERT INTO {table_sql(table.name)} ({names}) VALUES ({', '.join(['%s'] * len(columns))})",
            [values[c] for c in columns],
        )
        out.append(Guarded((f"SELECT 1 FROM {table_sql(table.name)} WHERE {match} FOR UPDATE", key), insert))
    return out
