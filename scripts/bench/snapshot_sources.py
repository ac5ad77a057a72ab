"""The snapshot benchmark's source side (bench_snapshot.py), per source: its tables (a flat table
of 7 mixed columns, a parent table with CHILDREN children per parent) and its raw pipe, the
fastest read the driver allows into insert_many(ordered=False), no mapping.

Values keep their BSON types in the raw pipes (numeric and DECIMAL as Decimal128 through the same
codec migrator uses): with float instead, the target server does measurably less work and the
limit would not be one for these rows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pymongo
import pymysql
import pymysql.cursors
from mariadb_server import MariaDbServer
from mariadb_server import start_mariadb as _start_mariadb
from psycopg import sql
from pymongo import ReplaceOne

from migrator.adapters.mongodb.codec import CODEC

CHILDREN = 3
NAMES = ["_id", "name", "amount", "score", "active", "created_at", "tag"]
BATCH = 1000


def _in_threads(copy: Callable[[int, int], None], rows: int, parallel: int) -> tuple[float, float]:
    """`copy(lo, hi)` on `parallel` threads, the ids (lo, hi] split evenly; the wall and CPU
    seconds it took. The first error of a thread is raised again here."""
    bounds = [rows * i // parallel for i in range(parallel + 1)]
    errors: list[BaseException] = []

    def guarded(lo: int, hi: int) -> None:
        try:
            copy(lo, hi)
        except BaseException as exc:  # noqa: BLE001 (raised again by the main thread)
            errors.append(exc)

    cpu = time.process_time()
    started = time.monotonic()
    threads = [threading.Thread(target=guarded, args=(bounds[i], bounds[i + 1])) for i in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    cpu = time.process_time() - cpu
    if errors:
        raise errors[0]
    return seconds, cpu


def _batched(rows: Any, write: Callable[[list[dict[str, Any]]], None]) -> None:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(dict(zip(NAMES, row, strict=True)))
        if len(batch) >= BATCH:
            write(batch)
            batch = []
    if batch:
        write(batch)


# --- PostgreSQL ----------------------------------------------------------------------------------


def create_flat(conn: psycopg.Connection[Any], rows: int) -> None:
    """bench_flat: `rows` rows of seven mixed columns (the flat case of every PostgreSQL benchmark)."""
    conn.execute(
        """
        CREATE TABLE bench_flat (
            id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2), score double precision,
            active boolean, created_at timestamptz, tag uuid)
        """
    )
    conn.execute(
        """
        INSERT INTO bench_flat
        SELECT i, 'name-' || i, (i %% 100000) / 100.0, i * 0.5, i %% 2 = 0,
               timestamptz '2024-01-01' + i * interval '1 second', md5(i::text)::uuid
        FROM generate_series(1, %s) i
        """,
        [rows],
    )


def create_tables(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_child, bench_parent, bench_flat")
        create_flat(conn, rows)
        conn.execute(
            """
            CREATE TABLE bench_parent (
                id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2), score double precision,
                active boolean, created_at timestamptz, tag uuid)
            """
        )
        conn.execute("INSERT INTO bench_parent SELECT * FROM bench_flat")
        conn.execute(
            """
            CREATE TABLE bench_child (
                id bigint PRIMARY KEY, parent_id bigint NOT NULL REFERENCES bench_parent(id),
                label text, qty integer, price numeric(10,2))
            """
        )
        conn.execute(
            """
            INSERT INTO bench_child
            SELECT p * %s + c, p, 'item ' || c, c, c * 1.25
            FROM generate_series(1, %s) p, generate_series(0, %s) c
            """,
            [CHILDREN, rows, CHILDREN - 1],
        )
        conn.execute("CREATE INDEX ON bench_child (parent_id)")
        conn.execute("VACUUM ANALYZE bench_flat, bench_parent, bench_child")


def raw_limit(
    pg_url: str, mongo_url: str, database: str, rows: int, parallel: int, upsert: bool = False
) -> dict[str, Any]:
    """COPY of the flat rows (psycopg binary) into insert_many(ordered=False), `parallel` threads;
    with `upsert`, ReplaceOne upserts instead."""
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(mongo_url, uuidRepresentation="standard")
    collection = client[database].get_collection("raw", codec_options=CODEC)
    collection.drop()

    def write(batch: list[dict[str, Any]]) -> None:
        if upsert:
            # The alternative the snapshot does not take: idempotent by construction, but it
            # is measured here to show what inserting first saves.
            collection.bulk_write(
                [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in batch], ordered=False
            )
        else:
            collection.insert_many(batch, ordered=False)

    def copy(lo: int, hi: int) -> None:
        with psycopg.connect(pg_url) as conn, conn.cursor() as cur:
            query = sql.SQL(
                "COPY (SELECT id, name, amount, score, active, created_at, tag FROM bench_flat "
                "WHERE id > {} AND id <= {} ORDER BY id) TO STDOUT (FORMAT BINARY)"
            ).format(sql.Literal(lo), sql.Literal(hi))
            with cur.copy(query) as cp:
                cp.set_types(["int8", "text", "numeric", "float8", "bool", "timestamptz", "uuid"])
                _batched(cp.rows(), write)

    seconds, cpu = _in_threads(copy, rows, parallel)
    docs = collection.estimated_document_count()
    collection.drop()
    client.close()
    return {"rows": rows, "docs": docs, "seconds": seconds, "cpu_seconds": cpu}


def drop_slots(url: str, plan_name: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE %s",
            [f"migrator_{plan_name.replace('-', '_')}_%"],
        )


# --- MySQL (MariaDB) -------------------------------------------------------------------------------


def _connect(port: int, database: str | None, **options: Any) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(
        host="127.0.0.1",
        port=port,
        user="root",
        database=database,
        autocommit=True,
        charset="utf8mb4",
        **options,
    )


def start_mariadb(directory: Path, database: str) -> MariaDbServer:
    """A throwaway MariaDB writing a binlog, with an empty `database`."""
    server = _start_mariadb(directory)
    with _connect(server.port, None) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}`")
    return server


def create_mysql_tables(port: int, database: str, rows: int) -> None:
    """The rows come from MariaDB's SEQUENCE engine (seq_1_to_N), written server-side."""
    with _connect(port, database) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_child, bench_parent, bench_flat")
        columns = (
            "id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, amount DECIMAL(12,2), score DOUBLE, "
            "active TINYINT(1), created_at DATETIME(6), tag CHAR(36)"
        )
        cur.execute(f"CREATE TABLE bench_flat ({columns}) ENGINE=InnoDB")
        cur.execute(
            f"""
            INSERT INTO bench_flat
            SELECT seq, CONCAT('name-', seq), (seq % 100000) / 100.0, seq * 0.5, seq % 2 = 0,
                   TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND, UUID()
            FROM seq_1_to_{int(rows)}
            """  # noqa: S608 (numbers only)
        )
        cur.execute(f"CREATE TABLE bench_parent ({columns}) ENGINE=InnoDB")
        cur.execute("INSERT INTO bench_parent SELECT * FROM bench_flat")
        cur.execute(
            """
            CREATE TABLE bench_child (
                id BIGINT PRIMARY KEY, parent_id BIGINT NOT NULL, label VARCHAR(32), qty INT,
                price DECIMAL(10,2), KEY (parent_id),
                FOREIGN KEY (parent_id) REFERENCES bench_parent (id)) ENGINE=InnoDB
            """
        )
        cur.execute(
            f"""
            INSERT INTO bench_child
            SELECT p.seq * {CHILDREN} + c.seq, p.seq, CONCAT('item ', c.seq), c.seq, c.seq * 1.25
            FROM seq_1_to_{int(rows)} p, seq_0_to_{CHILDREN - 1} c
            """  # noqa: S608 (numbers only)
        )
        cur.execute("ANALYZE TABLE bench_flat, bench_parent, bench_child")
        cur.fetchall()


def raw_pipe(port: int, database: str, mongo_url: str, rows: int, parallel: int) -> dict[str, Any]:
    """SELECT of the flat rows through an unbuffered SSCursor into insert_many(ordered=False) of
    plain dicts of what PyMySQL returns, `parallel` threads; the collection `raw` is left for the
    caller to size and drop."""
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(mongo_url, uuidRepresentation="standard")
    collection = client[database].get_collection("raw", codec_options=CODEC)
    collection.drop()

    def copy(lo: int, hi: int) -> None:
        with _connect(port, database, cursorclass=pymysql.cursors.SSCursor) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT id, name, amount, score, active, created_at, tag FROM bench_flat "
                "WHERE id > %s AND id <= %s ORDER BY id",
                [lo, hi],
            )
            _batched(cur, lambda batch: collection.insert_many(batch, ordered=False))

    seconds, cpu = _in_threads(copy, rows, parallel)
    docs = collection.count_documents({})
    client.close()
    return {"rows": rows, "docs": docs, "seconds": seconds, "cpu_seconds": cpu}
