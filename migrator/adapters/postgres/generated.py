"""Stored generated columns that the change stream does not carry, computed on the source.

pgoutput before PostgreSQL 18 (and 18 without `publish_generated_columns`) leaves stored
generated columns out of its Relation and row messages (docs/architecture.md, "Stored generated
columns"). A generation expression is immutable and reads only its own row's ordinary columns,
so evaluating it on the source over a change's values gives exactly the value PostgreSQL stored:
one statement per relation for all the rows of a batch, fed the values' text as the change
carried them and returning the results as PostgreSQL's text output, which CDC parses as it
parses the stream's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.errors import classify
from migrator.adapters.postgres.values import REPLICATION_OPTIONS

GENERATED_SERVER_VERSION = 120000  # stored generated columns exist from PostgreSQL 12

# Each stored generated column of a relation: its expression, and the columns it reads (the
# generation expression's dependencies, recorded by PostgreSQL on its pg_attrdef entry).
_GENERATED_SQL = """
SELECT a.attname::text, a.atttypid::bigint, pg_get_expr(d.adbin, d.adrelid),
       ARRAY(SELECT r.attname::text FROM pg_depend p
             JOIN pg_attribute r ON r.attrelid = p.refobjid AND r.attnum = p.refobjsubid
             WHERE p.classid = 'pg_attrdef'::regclass AND p.objid = d.oid
               AND p.refclassid = 'pg_class'::regclass AND p.refobjid = a.attrelid
               AND p.refobjsubid > 0 AND p.refobjsubid <> a.attnum
             ORDER BY r.attnum)
FROM pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %(rel)s::oid AND a.attgenerated = 's' AND NOT a.attisdropped
ORDER BY a.attnum
"""

_TYPES_SQL = """
SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = %(rel)s::oid AND attnum > 0 AND NOT attisdropped
"""

ORDINAL = "migrator ordinal"  # no column of the row: a generation expression reads only those

Text = str | None  # a value as PostgreSQL's text output (None: NULL)


@dataclass(frozen=True)
class StoredColumn:
    type_oid: int
    expression: str
    reads: tuple[str, ...]  # the columns the expression reads


@dataclass(frozen=True)
class Generated:
    """Stored generated columns of one relation that its change messages lack."""

    columns: dict[str, str]  # generated column -> its expression
    reads: dict[str, tuple[str, ...]]  # generated column -> the columns its expression reads
    types: dict[str, str]  # each column read -> its type, as format_type gives it

    def only(self, names: Collection[str]) -> Generated:
        """These of the columns (a row whose other generated columns are not computed)."""
        reads = {n: r for n, r in self.reads.items() if n in names}
        inputs = {c for r in reads.values() for c in r}
        return Generated(
            {n: e for n, e in self.columns.items() if n in names},
            reads,
            {c: t for c, t in self.types.items() if c in inputs},
        )

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every column some expression reads, in the order the statement takes them."""
        return tuple(self.types)

    def statement(self, rows: Sequence[Mapping[str, Text]]) -> sql.Composed:
        """SELECT <expressions> FROM (the rows, each input cast from text to its type) ORDER BY
        row. The expressions and types are the catalog's own SQL, each naming the row's columns,
        which the subquery provides under their names; the values are literals, so that nothing
        in the statement is taken for a parameter (an expression may hold a `%`)."""
        expressions = sql.SQL(", ").join(sql.SQL(e) for e in self.columns.values())
        ordinal = sql.Identifier(ORDINAL)
        if not self.inputs:
            source: sql.Composable = sql.SQL("generate_series(1, {}) AS v({})").format(len(rows), ordinal)
        else:
            casts = sql.SQL(", ").join(
                sql.SQL("u.{}::{} AS {}").format(sql.Identifier(f"c{i}"), sql.SQL(t), sql.Identifier(c))
                for i, (c, t) in enumerate(self.types.items())
            )
            arrays = sql.SQL(", ").join(
                sql.Composed([sql.Literal([row[c] for row in rows]), sql.SQL("::text[]")])
                for c in self.inputs
            )
            names = sql.SQL(", ").join(sql.Identifier(f"c{i}") for i in range(len(self.inputs)))
            source = sql.SQL(
                "(SELECT {casts}, u.{ordinal} FROM unnest({arrays}) WITH ORDINALITY AS u({names}, {ordinal})) AS v"
            ).format(casts=casts, ordinal=ordinal, arrays=arrays, names=names)
        return sql.Composed(
            [sql.SQL("SELECT "), expressions, sql.SQL(" FROM "), source, sql.SQL(" ORDER BY v."), ordinal]
        )


class GeneratedColumns:
    """Reads generation expressions from the catalog and evaluates them for rows of changes,
    on a connection of its own with the replication session's settings (so that values go in
    and come out in the text forms the stream uses)."""

    def __init__(self, endpoint: PgEndpoint) -> None:
        self._endpoint = endpoint
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self._endpoint.connect(options=REPLICATION_OPTIONS)
        return self._conn

    def _fail(self, exc: psycopg.Error) -> Exception:
        self.close()
        return classify(exc, self._endpoint.name, self._endpoint.secrets)

    def stored(self, relation_id: int) -> dict[str, StoredColumn]:
        """The stored generated columns of relation `relation_id` (its oid), by name."""
        try:
            conn = self._connection()
            if conn.info.server_version < GENERATED_SERVER_VERSION:
                return {}
            rows = conn.execute(_GENERATED_SQL, {"rel": relation_id}).fetchall()
        except psycopg.Error as exc:
            raise self._fail(exc) from None
        return {str(name): StoredColumn(int(oid), str(expr), tuple(reads)) for name, oid, expr, reads in rows}

    def computing(self, relation_id: int, columns: Mapping[str, StoredColumn]) -> Generated:
        """How to compute `columns` (stored generated columns of relation `relation_id`)."""
        try:
            types = dict(self._connection().execute(_TYPES_SQL, {"rel": relation_id}).fetchall())
        except psycopg.Error as exc:
            raise self._fail(exc) from None
        inputs = dict.fromkeys(c for column in columns.values() for c in column.reads)
        return Generated(
            {name: c.expression for name, c in columns.items()},
            {name: c.reads for name, c in columns.items()},
            {c: str(types[c]) for c in inputs},
        )

    def evaluate(
        self, generated: Generated, rows: Sequence[Mapping[str, Text]]
    ) -> list[tuple[bytes | None, ...]]:
        """For each row (the text of each of `generated.inputs`), the text of each generated
        column, in the order of `generated.columns`."""
        try:
            cur = self._connection().execute(generated.statement(rows))
            result = cur.pgresult
        except psycopg.Error as exc:
            raise self._fail(exc) from None
        assert result is not None
        width = len(generated.columns)
        # Raw text, as the stream would have sent it: not psycopg's Python values.
        return [tuple(result.get_value(i, j) for j in range(width)) for i in range(result.ntuples)]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
