"""Sakila (tests/support/sakila.py) from MariaDB into PostgreSQL, table by table (`tables:`):
`plan` refuses address.location (GEOMETRY) and the mapped children of Sakila's cascading keys,
the fixes it words are run, then `migrator run` copies and catches up, a Sakila workload is
written (a rental and its return, ON UPDATE CURRENT_TIMESTAMP, film_text rewritten by film's
triggers, a film deleted with its children, a customer deleted), and a second `run` catches up.

The expectation is the source itself: each table's rows read with plain SQL from MariaDB and
from PostgreSQL, compared value by value through docs/plan.md's "Types from MySQL/MariaDB into
PostgreSQL" (YEAR and the integers as integers, DECIMAL as numeric with its scale, ENUM as text,
SET as text[] in definition order, DATETIME as timestamp, TIMESTAMP as the same instant,
CHAR(n) blank-padded to n, BLOB as bytea), never migrator's type module.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import psycopg

from migrator import api
from tests.support import sakila
from tests.support.mariadb import connect, database
from tests.support.mysql_expected import MyColumn, columns, primary_key

UTC = datetime.UTC
TABLES = ("actor", "address", "category", "city", "country", "customer", "film", "film_actor",
          "film_category", "film_text", "inventory", "language", "payment", "rental", "staff", "store")  # fmt: skip


def _plan(path: Path, source: str, target: str, db: str) -> Path:
    entries = "\n".join(
        f"  - {{from: {db}.{t}{', exclude: [location]' if t == 'address' else ''}}}" for t in TABLES
    )
    path.write_text(
        f'version: 1\nname: sakila_pg\nsource: {{adapter: mysql, url: "{source}"}}\n'
        f'target: {{adapter: postgres, url: "{target}"}}\ntables:\n{entries}\n'
    )
    return path


def _expected(column: MyColumn, value: Any) -> Any:
    """What psycopg reads from the target column the type table gives `column`."""
    if value is None:
        return None
    if column.data_type == "set":
        return value.split(",") if value else []
    if column.data_type == "char":
        width = int(column.column_type.split("(")[1].rstrip(")"))
        return value.ljust(width)  # blank-padded to n characters
    if column.data_type == "timestamp":
        return value.replace(tzinfo=UTC)  # read in a +00:00 session: the instant
    if column.data_type in {"blob", "tinyblob", "mediumblob", "longblob", "varbinary", "binary"}:
        return bytes(value)
    return value


def _source(url: str, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with connect(url) as conn:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
        qualified = f"{database(url)}.{table}"
        cols = [c for c in columns(conn, qualified) if c.name != "location"]
        key = primary_key(conn, qualified)
        listed = ", ".join(
            f"CAST(`{c.name}` AS CHAR)" if c.data_type == "set" else f"`{c.name}`" for c in cols
        )
        with conn.cursor() as cur:
            cur.execute(f"SELECT {listed} FROM `{table}` ORDER BY {', '.join(key)}")
            rows = [tuple(_expected(c, v) for c, v in zip(cols, r, strict=True)) for r in cur.fetchall()]
    return [c.name for c in cols], rows


def _target(
    url: str, schema: str, table: str, names: list[str], key: tuple[str, ...]
) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        listed = ", ".join(f'"{n}"' for n in names)
        order = ", ".join(f'"{k}"' for k in key)
        return [tuple(r) for r in conn.execute(f'SELECT {listed} FROM "{schema}"."{table}" ORDER BY {order}')]


def _assert_same(source: str, target: str) -> None:
    schema = database(source)
    problems = []
    for table in TABLES:
        names, want = _source(source, table)
        with connect(source) as conn:
            key = primary_key(conn, f"{schema}.{table}")
        got = _target(target, schema, table, names, key)
        if got != want:
            bad = [(w, g) for w, g in zip(want, got, strict=False) if w != g][:3]
            problems.append(f"{table}: {len(want)} rows want, {len(got)} got; first differences {bad}")
    assert not problems, "\n".join(problems)


def test_sakila_into_postgresql_through_snapshot_and_binlog(
    mariadb_pg_urls: tuple[str, str], tmp_path: Path
) -> None:
    source, target = mariadb_pg_urls
    db = database(source)
    sakila.create(source)
    plan = _plan(tmp_path / "plan.yaml", source, target, db)
    unfixed = tmp_path / "unfixed.yaml"
    unfixed.write_text(plan.read_text().replace(", exclude: [location]", ""))
    report = api.plan(unfixed, env={})
    refused = {f.subject: f for f in report.failures}
    assert any(s.endswith("address.location") for s in refused), sorted(refused)
    with connect(source) as conn, conn.cursor() as cur:
        for subject, finding in refused.items():
            if ": foreign key " in subject:
                assert finding.fix is not None
                cur.execute(finding.fix.split(";", 1)[0])
    report = api.plan(plan, env={})
    assert report.ready, [(f.check, f.subject, f.message, f.fix) for f in report.failures]

    state = tmp_path / "state.db"
    assert api.run(plan, until="caught-up", state=state, env={}).cdc is not None
    _assert_same(source, target)

    with connect(source) as conn, conn.cursor() as cur:
        for statement in (
            "INSERT INTO rental (inventory_id, customer_id, staff_id) VALUES (7, 3, 1)",
            "INSERT INTO payment (customer_id, staff_id, rental_id, amount) VALUES (3, 1, LAST_INSERT_ID(), 2.99)",
            "UPDATE rental SET return_date = '2026-01-02 03:04:05' WHERE rental_id = 17",
            "UPDATE customer SET active = FALSE, email = NULL WHERE customer_id = 4",
            "UPDATE film SET title = 'FILM ONE RENAMED', description = 'Un été 😀', special_features = '',"
            " release_year = 2026 WHERE film_id = 1",
            "UPDATE language SET name = 'Français' WHERE language_id = 2",
            *sakila.delete_film(40),
            *sakila.delete_customer(6),
            "UPDATE staff SET picture = UNHEX('FFD8FFE0') WHERE staff_id = 2",
        ):
            cur.execute(statement)
    outcome = api.run(plan, until="caught-up", state=state, env={})
    assert outcome.cdc is not None and outcome.cdc.caught_up
    _assert_same(source, target)
