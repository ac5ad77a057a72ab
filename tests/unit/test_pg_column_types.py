"""A PostgreSQL target's column types for a source without PostgreSQL declarations (a MySQL
source): docs/plan.md's table is the module's, and the choices read the source type's modifiers.
The end-to-end proof (values read back) is tests/integration/pg_target/test_mariadb_to_pg.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from migrator.adapters.mysql.types import NATIVE_TYPES, column_info
from migrator.adapters.postgres_target.column_types import column_type, takes_null, type_table_markdown
from migrator.errors import TerminalError

PLAN_DOC = Path(__file__).parents[2] / "docs" / "plan.md"


def test_plan_doc_mysql_to_postgres_type_table_matches_code() -> None:
    text = PLAN_DOC.read_text()
    begin, end = "<!-- mysql-pg-type-table:begin -->\n", "\n<!-- mysql-pg-type-table:end -->"
    assert begin in text and end in text
    assert text.split(begin, 1)[1].split(end, 1)[0] == type_table_markdown(NATIVE_TYPES)


@pytest.mark.parametrize(
    ("data_type", "column_type_", "precision", "scale", "expected"),
    [
        ("bigint", "bigint(20) unsigned", None, None, "numeric(20,0)"),
        ("tinyint", "tinyint(3) unsigned", None, None, "integer"),
        ("decimal", "decimal(65,30) unsigned", 65, 30, "numeric(65,30)"),
        ("datetime", "datetime", None, None, "timestamp(0) without time zone"),
        ("timestamp", "timestamp(3)", None, None, "timestamp(3) with time zone"),
        ("time", "time(6)", None, None, "interval(6)"),
        ("bit", "bit(64)", None, None, "bit(64)"),
        ("char", "char(10)", None, None, "character(10)"),
        ("varchar", "varchar(255)", None, None, "character varying(255)"),
        ("enum", "enum('a','b(1)')", None, None, "text"),
        ("set", "set('x','y')", None, None, "text[]"),
        ("json", "json", None, None, "jsonb"),
        ("year", "year(4)", None, None, "smallint"),
        ("longblob", "longblob", None, None, "bytea"),
    ],
)
def test_a_mysql_column_gets_the_type_that_holds_its_values(
    data_type: str, column_type_: str, precision: int | None, scale: int | None, expected: str
) -> None:
    column = column_info(
        "c", data_type, column_type_, nullable=False, position=1, precision=precision, scale=scale
    )
    assert column_type(column) == expected


def test_the_plan_type_decides_and_a_declared_type_is_kept() -> None:
    tinyint1 = column_info("c", "tinyint", "tinyint(1)", nullable=True, position=1)
    assert column_type(tinyint1) == "smallint"
    assert column_type(tinyint1, "bool") == "boolean"
    declared = replace(tinyint1, declared_type="numeric(5,2)")  # a PostgreSQL source's column
    assert column_type(declared) == "numeric(5,2)" and not takes_null(declared)


def test_date_columns_take_null_for_zero_dates_and_others_keep_not_null() -> None:
    assert takes_null(column_info("d", "datetime", "datetime", nullable=False, position=1))
    assert not takes_null(column_info("n", "int", "int(11)", nullable=False, position=1))


@pytest.mark.parametrize(("data_type", "column_type_"), [("char", "char(0)"), ("inet6", "inet6")])
def test_a_type_postgresql_cannot_declare_is_refused_with_a_fix(data_type: str, column_type_: str) -> None:
    with pytest.raises(TerminalError) as refused:
        column_type(column_info("c", data_type, column_type_, nullable=True, position=1))
    assert refused.value.hint is not None and "exclude: [c]" in refused.value.hint
