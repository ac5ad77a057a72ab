"""The statements reverse sync writes a batch of documents with, in MySQL/MariaDB syntax
(docs/architecture.md, "Reverse sync and echo prevention"). Pure: they take the tables' facts
(reverse_tables.py) and give (SQL, parameters) with PyMySQL's %s placeholders.

- Deletes, deepest level first, one statement per level for all the batch's documents: the rows
  of the level that belong to a document (linked to its root row through their parents as the
  source holds them now, or to a parent the document now holds) and that it no longer holds.
  Rows under a parent whose array (or sub-document) the document lacks (`exempt`), at any level
  above, stay.
- One DELETE of the deleted documents' root rows.
- Upserts, parents first: multi-row `INSERT ... ON DUPLICATE KEY UPDATE` of the columns a row
  carries, a row held by two documents written once, as the later one holds it; row by row
  (UPDATE, then INSERT where none is stored) for a table with a second unique index or a NOT
  NULL column the rows lack. A column whose
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
from migrator.adapters.mysql.values import DATE_TYPES
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


def _numbered_rows(names: Sequence[str], values: Sequence[tuple[Any, ...]], params: list[Any]) -> str:
    """A derived table of literal rows: `SELECT %s AS n0, %s AS n1 UNION ALL SELECT %s, %s ...`
    (MySQL 8 and MariaDB spell a table value constructor differently; this form both know)."""
    selects = []
    for i, value in enumerate(values):
        params.extend(value)
        if i == 0:
            selects.append("SELECT " + ", ".join(f"%s AS {quote(n)}" for n in names))
        else:
            selects.append("SELECT " + ", ".join(["%s"] * len(names)))
    return " UNION ALL ".join(selects)


def _numbered(lists: Sequence[Sequence[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """The tuples of each document's list, each led by the document's number (its position)."""
    return [(n, *item) for n, items in enumerate(lists) for item in items]


def _typed_numbered(
    table: WriteTable, columns: Sequence[str], values: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    return [(v[0], *_typed(table, columns, [v[1:]])[0]) for v in values]


def delete_level(
    levels: Sequence[TableLevel],
    group: Sequence[DocumentRows],
    index: int,
    table_of: Callable[[str], WriteTable],
) -> Statement:
    """DELETE the rows of level `index` that a document of `group` governs and does not hold, for
    every document at once. The documents are numbered (`n`), and every list a document's rows
    are compared with carries its number, so that each row is decided as its document alone
    would. A multi-table DELETE joined to the governed parents (`_governed`), so that the server
    finds the rows by index (a DELETE with an IN subquery scanned the whole table, measured: 150
    ms a document on 120k rows)."""
    level = levels[index]
    states = [d.state or [LevelRows() for _ in levels] for d in group]
    table, parent_table = table_of(level.table), table_of(levels[level.parent].table)
    params: list[Any] = []
    parents = [f"c{i}" for i in range(len(level.parent_link))]
    governed = _governed(levels, group, states, index, table_of, params)
    conditions = []
    exempt = _numbered([state[index].exempt for state in states])
    if exempt:
        row = _tuple([_ref("g", "n"), *(_ref("l", c) for c in level.link)])
        conditions.append(
            f"{row} NOT IN {_values_list(_typed_numbered(parent_table, level.parent_link, exempt), params)}"
        )
    held = _numbered([[tuple(row[k] for k in level.key) for row in state[index].rows] for state in states])
    if held:
        row = _tuple([_ref("g", "n"), *(_ref("l", k) for k in level.key)])
        conditions.append(f"{row} NOT IN {_values_list(_typed_numbered(table, level.key, held), params)}")
    on = " AND ".join(f"{_ref('l', c)} = {_ref('g', p)}" for c, p in zip(level.link, parents, strict=True))
    statement = (
        f"DELETE {quote('l')} FROM {table_sql(level.table)} AS {quote('l')} JOIN ({governed}) AS {quote('g')} ON {on}"
        + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
    )
    return statement, params


def _governed(
    levels: Sequence[TableLevel],
    group: Sequence[DocumentRows],
    states: list[list[LevelRows]],
    index: int,
    table_of: Callable[[str], WriteTable],
    params: list[Any],
) -> str:
    """(n, c0, c1, ...): the document number and the parent link values of the parents whose rows
    of level `index` the documents govern: as the source holds them under each document's root
    row now (skipping parents under an exempt one), and those the documents carry."""
    level = levels[index]
    root = levels[0]
    chain = _chain(levels, index)
    root_key = list(group[0].root_key)
    key_names = [f"k{i}" for i in range(len(root_key))]
    roots = [
        (n, *_typed(table_of(root.table), root_key, [tuple(d.root_key[k] for k in root_key)])[0])
        for n, d in enumerate(group)
    ]
    documents = _numbered_rows(["n", *key_names], roots, params)
    on_root = " AND ".join(
        f"{_ref('p0', k)} = {_ref('d', c)}" for k, c in zip(root_key, key_names, strict=True)
    )
    joins = [f"JOIN {table_sql(root.table)} AS {quote('p0')} ON {on_root}"]
    where = []
    for depth, hop_index in enumerate(chain[1:], start=1):
        hop = levels[hop_index]
        on = " AND ".join(f"{_ref(f'p{depth}', c)} = {_ref(f'p{depth - 1}', p)}" for c, p in hop.on)
        joins.append(f"JOIN {table_sql(hop.table)} AS {quote(f'p{depth}')} ON {on}")
        exempt = _numbered([state[hop_index].exempt for state in states])
        if exempt:
            values = _typed_numbered(table_of(levels[hop.parent].table), hop.parent_link, exempt)
            row = _tuple([_ref("d", "n"), *(_ref(f"p{depth}", c) for c in hop.link)])
            where.append(f"{row} NOT IN {_values_list(values, params)}")
    parents = [f"c{i}" for i in range(len(level.parent_link))]
    last = f"p{len(chain) - 1}"
    governed = (
        f"SELECT {_ref('d', 'n')} AS n, "
        + ", ".join(f"{_ref(last, p)} AS {quote(c)}" for p, c in zip(level.parent_link, parents, strict=True))
        + f" FROM ({documents}) AS d {' '.join(joins)}"
        + (f" WHERE {' AND '.join(where)}" if where else "")
    )
    carried = _numbered([state[index].carried for state in states])
    if carried:
        parent_table = table_of(levels[level.parent].table)
        governed += " UNION " + _numbered_rows(
            ["n", *parents], _typed_numbered(parent_table, level.parent_link, carried), params
        )
    return governed


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
    same: str | None = None
    if equivalence == "milliseconds":
        same = f"({cur} - INTERVAL MOD(MICROSECOND({cur}), 1000) MICROSECOND) <=> {new}"
    elif equivalence == "json":
        same = (
            f"JSON_EQUALS({cur}, {new}) <=> 1" if mariadb else f"CAST({cur} AS JSON) <=> CAST({new} AS JSON)"
        )
    elif equivalence == "numeric":
        same = f"{cur} = {new} AND LENGTH(REPLACE(REPLACE(CAST({cur} AS CHAR), '-', ''), '.', '')) > 34"
    info = table.columns.get(column)
    if info is None or info.type_name not in DATE_TYPES:
        return new if same is None else f"IF({same}, {cur}, {new})"
    # A zero date reads as null (the plan's zero_dates: "null"; docs/architecture.md, "Types chosen
    # by the plan"): a document's null keeps one the row holds, as no document value can restore
    # it; and date arithmetic on it (the milliseconds test) is an error in strict mode.
    zero = f"(YEAR({cur}) = 0 OR MONTH({cur}) = 0 OR DAYOFMONTH({cur}) = 0)"
    keep = f"WHEN {new} IS NULL AND {zero} THEN {cur}"
    if same is not None:
        keep += f" WHEN NOT {zero} AND {same} THEN {cur}"
    return f"CASE {keep} ELSE {new} END"


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
        # UPDATE then INSERT where the upsert cannot be used: a NOT NULL column the rows lack, or
        # a second unique index (a clash on it must fail, errno 1062, not update another row).
        if updates and (not table.required <= set(columns) or table.unique_indexes > 1):
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
