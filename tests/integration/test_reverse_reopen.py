"""Reverse sync's caught-up marker across a stream reopened after a transient error, against
real servers: a marker read by the stream that failed proves nothing about the one that
replaces it (that one resumes from the checkpoint, before the marker, and must read again what
the failed batch held), so `run('caught-up')` reports caught up only once everything written
on the target before the call is applied on the source."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from bson.int64 import Int64

from migrator.adapters.base import ReverseWriter
from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.mongodb.codec import CODEC
from migrator.adapters.postgres import PostgresSource
from migrator.adapters.rows import DocumentRows, ReverseCheckpoint
from migrator.engine.events import Collector, ErrorRaised
from migrator.errors import TransientError
from migrator.mapping.spec import resolve, tables_of
from migrator.phases.reverse import ReverseSync
from migrator.plan import load_plan
from migrator.plan.names import reverse_origin_name
from tests.support.docs import Migration

ITEMS = 20


class FailsOnce:
    """The source's reverse writer, whose first apply that writes documents fails as a lost
    connection would (before it commits: nothing of that batch reaches the source)."""

    def __init__(self, writer: ReverseWriter) -> None:
        self.writer = writer
        self.failed: list[int] = []  # documents in the batch that failed

    def setup(self) -> None:
        self.writer.setup()

    def checkpoint(self) -> ReverseCheckpoint | None:
        return self.writer.checkpoint()

    def forget(self) -> bool:
        return self.writer.forget()

    def apply(self, documents: Sequence[DocumentRows], checkpoint: ReverseCheckpoint | None) -> int:
        if documents and not self.failed:
            self.failed.append(len(documents))
            raise TransientError("the source closed the connection (injected)")
        return self.writer.apply(documents, checkpoint)

    def close(self) -> None:
        self.writer.close()


def names(mig: Migration) -> dict[int, str]:
    return {int(i): str(n) for i, n in mig.rows("SELECT id, name FROM items ORDER BY id")}


def test_a_marker_read_before_the_stream_was_reopened_does_not_count(mig: Migration) -> None:
    name = "rev-reopen"
    mig.sql(
        "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL)",
        f"INSERT INTO items SELECT i, 'old ' || i FROM generate_series(1, {ITEMS}) i",
    )
    plan = load_plan(mig.plan("- {name: items, from: public.items, key: id}", name=name), env=mig.env)
    source = PostgresSource(mig.pg_url)
    target = MongoTarget(mig.mongo_url, mig.database)
    with source, target:
        info = source.inspect([t for c in plan.collections for t in tables_of(c)])
        collections = resolve(plan.collections, info).collections
        items = mig.client.get_database(mig.database, codec_options=CODEC)["items"]
        items.insert_many([{"_id": Int64(i), "name": f"old {i}"} for i in range(1, ITEMS + 1)])
        writer = FailsOnce(source.reverse_writer(name, reverse_origin_name(name)))
        events = Collector()
        sync = ReverseSync(name, collections, source, target, events, stop=threading.Event(), writer=writer)
        try:
            sync.prepare()
            for i in range(1, ITEMS + 1):
                items.update_one({"_id": Int64(i)}, {"$set": {"name": f"new {i}"}})
            # The marker follows every change in the stream, so the first stream reads them all,
            # then the marker, and fails applying them: the batch that failed held them all.
            result = sync.run("caught-up")
        finally:
            sync.close()
    assert writer.failed == [ITEMS], writer.failed
    assert [e for e in events.of(ErrorRaised) if e.retrying], "the injected error was not retried"
    assert result.caught_up
    assert names(mig) == {i: f"new {i}" for i in range(1, ITEMS + 1)}
