"""Statements of PostgreSQL's own logical-replication tests (src/test/subscription/t/*.pl,
contrib/test_decoding/sql/*.sql), publisher side, as the corpus modules run them against either
target (tests/corpus/README.md): one copy of each upstream scenario's SQL.
"""

from __future__ import annotations

# 001_rep_changes.pl's tables, in upstream's order.
REP_CHANGES_SETUP = (
    # A function that shadows a catalog function by name: the publisher must never call it.
    "CREATE FUNCTION public.pg_get_replica_identity_index(int) RETURNS regclass LANGUAGE sql AS 'SELECT 1/0'",
    "CREATE TABLE tab_notrep AS SELECT generate_series(1,10) AS a",
    "CREATE TABLE tab_ins AS SELECT generate_series(1,1002) AS a",
    "CREATE TABLE tab_full AS SELECT generate_series(1,10) AS a",
    "CREATE TABLE tab_full2 (x text)",
    "INSERT INTO tab_full2 VALUES ('a'), ('b'), ('b')",
    "CREATE TABLE tab_rep (a int primary key)",
    "CREATE TABLE tab_mixed (a int primary key, b text, c numeric)",
    "INSERT INTO tab_mixed (a, b, c) VALUES (1, 'foo', 1.1)",
    "CREATE TABLE tab_include (a int, b text, CONSTRAINT covering PRIMARY KEY(a) INCLUDE(b))",
    "CREATE TABLE tab_full_pk (a int primary key, b text)",
    "ALTER TABLE tab_full_pk REPLICA IDENTITY FULL",
    "CREATE TABLE tab_nothing (a int)",
    "ALTER TABLE tab_nothing REPLICA IDENTITY NOTHING",
    # Not upstream: NOTHING on a table that has a primary key (the fix is DEFAULT).
    "CREATE TABLE tab_nothing_pk (a int primary key)",
    "ALTER TABLE tab_nothing_pk REPLICA IDENTITY NOTHING",
)

# toast.sql's tables (after the database's logical_decoding_work_mem is set to 64kB).
TOAST_SETUP = (
    "CREATE SEQUENCE xpto_rand_seq START 79 INCREMENT 1499",
    """CREATE TABLE xpto (id serial primary key, toasted_col1 text,
        rand1 float8 DEFAULT nextval('xpto_rand_seq'), toasted_col2 text,
        rand2 float8 DEFAULT nextval('xpto_rand_seq'))""",
    "CREATE TABLE toasted_key (id serial, toasted_key text PRIMARY KEY, toasted_col1 text, toasted_col2 text)",
    "ALTER TABLE toasted_key ALTER COLUMN toasted_key SET STORAGE EXTERNAL",
    "ALTER TABLE toasted_key ALTER COLUMN toasted_col1 SET STORAGE EXTERNAL",
    "CREATE TABLE toasted_copy (id int primary key, data text)",
    "ALTER TABLE toasted_copy ALTER COLUMN data SET STORAGE EXTERNAL",
    "CREATE TABLE toasted_several (id serial unique not null, toasted_key text primary key,"
    " toasted_col1 text, toasted_col2 text)",
    "ALTER TABLE toasted_several REPLICA IDENTITY FULL",
    # Upstream also sets STORAGE EXTERNAL on toasted_key; PostgreSQL 15 then refuses the 100 kB key
    # in the primary key index (index row too big), so the key stays compressible here.
    "ALTER TABLE toasted_several ALTER COLUMN toasted_col1 SET STORAGE EXTERNAL",
    "ALTER TABLE toasted_several ALTER COLUMN toasted_col2 SET STORAGE EXTERNAL",
    # Before the snapshot, so that the copy reads TOASTed values too.
    "INSERT INTO xpto (toasted_col1, toasted_col2) SELECT string_agg(g.i::text, ''),"
    " string_agg((g.i*2)::text, '') FROM generate_series(1, 2000) g(i)",
)
TOASTED = "toasted{}-" + "1234567890" * 200

# 015-018: rows of the unmapped test_tab_2 that take a transaction past 64 kB of decoded changes
# (PostgreSQL 16's logical_replication_mode = immediate, which 15 lacks).
STREAM_PAD = "INSERT INTO test_tab_2 SELECT i FROM generate_series(1, 3000) s(i)"
_INSERT = "INSERT INTO test_tab VALUES ({0}, md5({0}::text))"
# 018_stream_subxact_abort.pl: two transactions with savepoints rolled back and released out of
# order (test_tab keeps 3, 8, 9, 10 and 11 of them), then one whose statements are rolled back whole.
STREAM_SAVEPOINTS = (
    [
        STREAM_PAD, _INSERT.format(3), "SAVEPOINT s1", _INSERT.format(4), "SAVEPOINT s2", _INSERT.format(5),
        "SAVEPOINT s3", _INSERT.format(6), "ROLLBACK TO s2", _INSERT.format(7), "ROLLBACK TO s1", _INSERT.format(8),
        "SAVEPOINT s4", _INSERT.format(9), "SAVEPOINT s5", _INSERT.format(10),
    ],
    [
        STREAM_PAD, _INSERT.format(11), "SAVEPOINT s1", _INSERT.format(12), "SAVEPOINT s2", _INSERT.format(13),
        "SAVEPOINT s3", _INSERT.format(14), "RELEASE s2", _INSERT.format(15), "ROLLBACK TO s1",
    ],
)  # fmt: skip
STREAM_ABORTED = (
    STREAM_PAD, _INSERT.format(16), "SAVEPOINT s1", _INSERT.format(17), "SAVEPOINT s2", _INSERT.format(18),
)  # fmt: skip
STREAM_KEPT = [1, 2, 3, 8, 9, 10, 11]

# 100_bugs.pl: the replica identity switched from one unique index to another while changes flow.
REPLIDENTITY_SETUP = (
    "CREATE TABLE tab_replidentity_index(a int not null, b int not null)",
    "CREATE UNIQUE INDEX idx_replidentity_index_a ON tab_replidentity_index(a)",
    "CREATE UNIQUE INDEX idx_replidentity_index_b ON tab_replidentity_index(b)",
    "ALTER TABLE tab_replidentity_index REPLICA IDENTITY USING INDEX idx_replidentity_index_a",
    "INSERT INTO tab_replidentity_index VALUES(1, 1),(2, 2)",
)
REPLIDENTITY_SWITCH = (
    "ALTER TABLE tab_replidentity_index REPLICA IDENTITY USING INDEX idx_replidentity_index_b",
    "UPDATE tab_replidentity_index SET a = -a WHERE a = 1",
    "DELETE FROM tab_replidentity_index WHERE a = 2",
)


def toast_copy(pg_url: str) -> None:
    """toast.sql's COPY into toasted_copy: TOASTed rows among plain ones (a multi-insert)."""
    import psycopg

    rows = [(1, "untoasted1"), (2, TOASTED.format(1)), (3, "untoasted2"), (4, TOASTED.format(2))]
    rows += [(i, f"untoasted{i - 2}") for i in range(5, 201)]
    rows += [(201, TOASTED.format(3)), (202, "untoasted199")]
    with (
        psycopg.connect(pg_url) as conn,
        conn.cursor() as cur,
        cur.copy("COPY toasted_copy FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


# 017_stream_ddl.pl: columns added inside small and streamed transactions, each a transaction.
STREAM_DDL = (
    [
        "INSERT INTO test_tab VALUES (3, md5(3::text))",
        "ALTER TABLE test_tab ADD COLUMN c INT",
        "SAVEPOINT s1",
        "INSERT INTO test_tab VALUES (4, md5(4::text), -4)",
    ],
    [
        "INSERT INTO test_tab SELECT i, md5(i::text), -i FROM generate_series(5, 1000) s(i)",
        "ALTER TABLE test_tab ADD COLUMN d INT",
        "SAVEPOINT s1",
        "INSERT INTO test_tab SELECT i, md5(i::text), -i, 2*i FROM generate_series(1001, 2000) s(i)",
    ],
    [
        "INSERT INTO test_tab VALUES (2001, md5(2001::text), -2001, 2*2001)",
        "ALTER TABLE test_tab ADD COLUMN e INT",
        "SAVEPOINT s1",
        "INSERT INTO test_tab VALUES (2002, md5(2002::text), -2002, 2*2002, -3*2002)",
    ],
    [
        "INSERT INTO test_tab SELECT i, md5(i::text), -i, 2*i, -3*i FROM generate_series(2003,5000) s(i)",
        "ALTER TABLE test_tab ADD COLUMN f INT",
    ],
    "INSERT INTO test_tab SELECT i, md5(i::text), -i, 2*i, -3*i, 4*i FROM generate_series(5001,5005) s(i)",
)
