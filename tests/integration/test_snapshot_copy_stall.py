"""A server that hangs mid-COPY (its backend stopped with SIGSTOP on a throwaway cluster) does not
hold a snapshot's copy worker forever (migrator/adapters/postgres/copy_out.py): after the reader's
read timeout the chunk's read raises ReadStalled, a TransientError (which the snapshot's chunk
retry redoes on a new connection), naming the table, the chunk's range and the endpoint, never
the password. Once the backend runs again, a new reader in the same exported snapshot streams
the whole chunk: the same bytes as a plain COPY of the same query, read here with psycopg."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from migrator.adapters.postgres import PostgresSource
from migrator.errors import ReadStalled, TransientError
from tests.support.servers import PgServer

PASSWORD = "stall-s3cret"
ROWS = 200_000
COPY = "COPY (SELECT t.id, t.payload FROM public.items t WHERE true) TO STDOUT (FORMAT binary)"


def _with_password(url: str) -> str:
    """`url` with a password (the throwaway cluster trusts local connections and ignores it)."""
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit((parts.scheme, f"{user.partition(':')[0]}:{PASSWORD}@{host}", *parts[2:]))


@pytest.fixture
def exported(pg_cluster_factory: Callable[..., PgServer]) -> Iterator[tuple[str, str]]:
    """A table of about 50 MB (more than the socket's buffers hold) and a snapshot exported by an
    open transaction: the server's URL and the snapshot's name."""
    url = pg_cluster_factory().url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id integer PRIMARY KEY, payload text)")
        conn.execute(
            "INSERT INTO items SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, %s) g", [ROWS]
        )
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        row = holder.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        yield url, str(row[0])


def _copy_backend(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(100):
            row = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT%%' AND pid <> pg_backend_pid()"
            ).fetchone()
            if row is not None:
                return int(row[0])
            time.sleep(0.1)
    raise AssertionError("no backend runs the COPY")


def test_a_copy_stalled_mid_stream_raises_a_transient_error_and_a_new_reader_copies_the_chunk(
    exported: tuple[str, str],
) -> None:
    url, snapshot = exported
    source = PostgresSource(_with_password(url), read_timeout_s=2)
    reader = source.snapshot_reader(snapshot)
    blocks = reader.raw_chunk(
        "postgresql-binary", "public.items", ["id", "payload"], ["id"], ["integer"], None, None
    )
    next(blocks)  # the COPY is streaming
    backend = _copy_backend(url)
    os.kill(backend, signal.SIGSTOP)
    resumed = threading.Timer(120, os.kill, [backend, signal.SIGCONT])  # a safety net only
    resumed.start()
    try:
        with pytest.raises(ReadStalled) as caught:
            for _ in blocks:
                pass
    finally:
        os.kill(backend, signal.SIGCONT)
        resumed.cancel()
        reader.close()
    error = caught.value
    assert isinstance(error, TransientError)
    assert "COPY of public.items" in str(error) and "nothing for 2 s" in str(error), error
    assert error.endpoint == source.name and urlsplit(url).port is not None
    assert str(urlsplit(url).port) in str(error)
    assert PASSWORD not in str(error) and PASSWORD not in (error.hint or "")

    # The next attempt, on a new connection in the same snapshot, streams the whole chunk.
    reader = source.snapshot_reader(snapshot)
    try:
        copied = b"".join(
            reader.raw_chunk(
                "postgresql-binary", "public.items", ["id", "payload"], ["id"], ["integer"], None, None
            )
        )
    finally:
        reader.close()
        source.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        with conn.cursor().copy(COPY) as copy:
            expected = b"".join(bytes(b) for b in copy)
    assert copied == expected
    assert len(expected) > ROWS * 256
