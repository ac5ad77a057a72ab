"""The run's publication on a real PostgreSQL: what it sends and what it refuses to publish.

- Columns the plan leaves out never leave the source (a publication column list, PostgreSQL 15+):
  shown by peeking the slot's raw pgoutput stream for the excluded value and column name.
- An existing publication of the plan's name is made to match and reported as reused; one FOR
  ALL TABLES is refused.
- `PublicationManager.ensure_publication` is the last guard: it publishes nothing when a table,
  or a partition of one, has no usable replica identity.
- Partitions publish under their own names (publish_via_partition_root = false), so a TRUNCATE of
  one partition is in the stream.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pymongo
import pytest

from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.snapshot import PublicationManager
from migrator.cli.progress import _describe
from migrator.engine.events import Notice, SlotCreated
from migrator.errors import SourceError
from migrator.findings import Severity
from migrator.plan.names import publication_name
from migrator.state.labels import SnapshotLabel
from migrator.state.sqlite import SQLiteStateStore
from tests.support.docs import run_slot
from tests.support.preflight import Setup, one

SECRET = "HASH-7f3a-never-streamed"


def peek(setup: Setup, slot: str, publication: str) -> bytes:
    """Every pgoutput message the slot holds, concatenated, without consuming them."""
    with psycopg.connect(setup.pg_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL,"
            " 'proto_version', '1', 'publication_names', %s)",
            [slot, publication],
        ).fetchall()
    return b"".join(bytes(r[0]) for r in rows)


def rows(setup: Setup, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(setup.pg_url, autocommit=True) as conn:
        return list(conn.execute(query, params).fetchall())


def published_columns(setup: Setup, publication: str) -> dict[str, list[str]]:
    return {
        f"{schema}.{table}": list(columns)
        for schema, table, columns in rows(
            setup,
            "SELECT schemaname, tablename, attnames FROM pg_publication_tables WHERE pubname = %s ORDER BY 1, 2",
            (publication,),
        )
    }


USERS = (
    "CREATE TABLE public.users (id bigint PRIMARY KEY, email text, password_hash text)",
    f"INSERT INTO public.users VALUES (1, 'a@example.com', '{SECRET}-1'), (2, 'b@example.com', '{SECRET}-2')",
)
USERS_PLAN = "- {name: users, from: users, key: id, exclude: [password_hash]}"


def test_excluded_column_never_leaves_the_source(
    setup: Setup, mongo: pymongo.MongoClient[dict[str, Any]]
) -> None:
    setup.sql(*USERS)
    name = f"exclude-{uuid.uuid4().hex[:8]}"
    setup.run(USERS_PLAN, name)
    setup.sql(
        f"INSERT INTO public.users VALUES (3, 'c@example.com', '{SECRET}-3')",
        "UPDATE public.users SET email = 'a2@example.com' WHERE id = 1",
        f"UPDATE public.users SET password_hash = '{SECRET}-new' WHERE id = 2",
        "DELETE FROM public.users WHERE id = 2",
    )
    stream = peek(setup, run_slot(setup.tmp_path / f"{name}.db", name), publication_name(name))
    # The stream holds the changes (the control), but neither the hash nor the column's name.
    assert b"c@example.com" in stream and b"a2@example.com" in stream
    assert SECRET.encode() not in stream
    assert b"password_hash" not in stream
    assert published_columns(setup, publication_name(name)) == {"public.users": ["id", "email"]}
    finding = one(setup.plan(USERS_PLAN), "source.excluded_columns", "public.users")
    assert finding.severity is Severity.INFO and "stays in the source" in finding.message

    # And CDC follows from the narrower Relation messages.
    setup.run(USERS_PLAN, name, until="caught-up")
    assert list(mongo[setup.database]["users"].find().sort("_id")) == [
        {"_id": 1, "email": "a2@example.com"},
        {"_id": 3, "email": "c@example.com"},
    ]


def test_existing_publication_is_made_to_match_and_reported_as_reused(setup: Setup) -> None:
    setup.sql(*USERS)
    name = f"reuse-{uuid.uuid4().hex[:8]}"
    publication = publication_name(name)
    # Left by hand (or an earlier run): every column, inserts only, published via the root.
    setup.sql(
        f"CREATE PUBLICATION {publication} FOR TABLE public.users"
        " WITH (publish = 'insert', publish_via_partition_root = true)"
    )
    events = setup.run(USERS_PLAN, name)
    created = events.of(SlotCreated)
    assert [e.publication_created for e in created] == [False]
    line = _describe(created[0], None)
    assert line is not None and line.startswith(f"reusing existing publication {publication}"), line
    assert published_columns(setup, publication) == {"public.users": ["id", "email"]}
    assert rows(
        setup,
        "SELECT pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot FROM pg_publication WHERE pubname = %s",
        (publication,),
    ) == [(True, True, True, True, False)]
    with SQLiteStateStore(setup.tmp_path / f"{name}.db") as store:
        run_record = store.active_run(name)
        assert run_record is not None
        slot = [c for c in store.checkpoints(run_record.id, "snapshot") if c.label == SnapshotLabel.SLOT]
    assert [c.detail["publication_created"] for c in slot] == [False]

    # A plan whose publication does not exist yet: created, and said so.
    fresh = f"fresh-{uuid.uuid4().hex[:8]}"
    events = setup.run(USERS_PLAN.replace("name: users", "name: users_fresh"), fresh)
    assert [e.publication_created for e in events.of(SlotCreated)] == [True]
    line = _describe(events.of(SlotCreated)[0], None)
    assert line is not None and line.startswith(f"created publication {publication_name(fresh)}"), line


def test_publication_for_all_tables_of_the_plans_name_is_refused(setup: Setup) -> None:
    setup.sql(*USERS)
    name = f"alltables-{uuid.uuid4().hex[:8]}"
    publication = publication_name(name)
    setup.sql(f"CREATE PUBLICATION {publication} FOR ALL TABLES")
    with pytest.raises(SourceError, match="FOR ALL TABLES") as raised:
        setup.run(USERS_PLAN, name)
    assert raised.value.hint is not None and f"DROP PUBLICATION {publication}" in raised.value.hint
    assert rows(setup, "SELECT puballtables FROM pg_publication WHERE pubname = %s", (publication,)) == [
        (True,)
    ]
    assert rows(
        setup,
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE %s",
        (f"migrator_%{name[-8:]}%",),
    ) == [(0,)]


# -- the last guard ---------------------------------------------------------------------------------


def test_ensure_publication_refuses_tables_without_a_usable_identity_and_publishes_nothing(
    setup: Setup,
) -> None:
    setup.sql(
        "CREATE TABLE public.ok (id bigint PRIMARY KEY, note text)",
        "CREATE TABLE public.accounts (id bigint PRIMARY KEY DEFERRABLE, owner text)",
        "CREATE TABLE public.orders (id bigint, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)",
        "CREATE TABLE public.orders_eu PARTITION OF public.orders FOR VALUES IN ('eu')",
        "CREATE TABLE public.orders_us PARTITION OF public.orders FOR VALUES IN ('us')",
        "ALTER TABLE public.orders_us REPLICA IDENTITY NOTHING",
        "INSERT INTO public.accounts VALUES (1, 'x')",
        "INSERT INTO public.orders VALUES (1, 'us')",
    )
    manager = PublicationManager(PgEndpoint(setup.pg_url))
    for table, named in (("public.accounts", "public.accounts"), ("public.orders", "public.orders_us")):
        with pytest.raises(SourceError) as raised:
            manager.ensure_publication("migrator_guard", {"public.ok": None, table: None})
        assert named in raised.value.message and "published nothing" in raised.value.message
        assert raised.value.hint is not None and "REPLICA IDENTITY" in raised.value.hint
        assert rows(setup, "SELECT count(*) FROM pg_publication") == [(0,)]
    # The application's writes never failed.
    setup.sql("UPDATE public.accounts SET owner = 'y'", "UPDATE public.orders SET id = 2")

    # Once fixed, published; again, reused; with other columns, altered to match.
    setup.sql("ALTER TABLE public.orders_us REPLICA IDENTITY DEFAULT")
    assert manager.ensure_publication("migrator_guard", {"public.ok": None, "public.orders": None}) is True
    assert manager.ensure_publication("migrator_guard", {"public.ok": None, "public.orders": None}) is False
    assert published_columns(setup, "migrator_guard")["public.ok"] == ["id", "note"]
    assert manager.ensure_publication("migrator_guard", {"public.ok": {"id"}, "public.orders": None}) is False
    assert published_columns(setup, "migrator_guard") == {
        "public.ok": ["id"],
        "public.orders_eu": ["id", "region"],
        "public.orders_us": ["id", "region"],
    }


# -- partitions publish under their own names -------------------------------------------------------


def test_partitions_publish_their_own_changes_and_truncate(setup: Setup) -> None:
    setup.sql(
        "CREATE TABLE public.orders (id bigint, region text, total int, PRIMARY KEY (id, region))"
        " PARTITION BY LIST (region)",
        "CREATE TABLE public.orders_eu PARTITION OF public.orders FOR VALUES IN ('eu')",
        "CREATE TABLE public.orders_us PARTITION OF public.orders FOR VALUES IN ('us')",
    )
    manager = PublicationManager(PgEndpoint(setup.pg_url))
    publication = f"migrator_parts_{uuid.uuid4().hex[:8]}"
    slot = publication
    assert manager.ensure_publication(publication, {"public.orders": None}) is True
    setup.sql(f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')")
    setup.sql(
        "INSERT INTO public.orders VALUES (1, 'eu', 1), (2, 'us', 2)",
        "TRUNCATE public.orders_us",
    )
    stream = peek(setup, slot, publication)
    # Relation messages name the partitions, never the partitioned table; the single partition's
    # TRUNCATE is there ('T' message). With publish_via_partition_root it would not be.
    assert b"orders_eu\x00" in stream and b"orders_us\x00" in stream
    assert b"orders\x00" not in stream
    truncates = [
        data
        for (data,) in rows(
            setup,
            "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL,"
            " 'proto_version', '1', 'publication_names', %s)",
            (slot, publication),
        )
        if bytes(data)[:1] == b"T"
    ]
    assert len(truncates) == 1


def test_a_column_added_later_to_a_listed_table_is_published_and_said(
    setup: Setup, mongo: pymongo.MongoClient[dict[str, Any]]
) -> None:
    """A column list is fixed when the publication is made: a column added to the table later is
    not published. Where the mapping takes every column, CDC widens the list, says so, and brings
    the documents of every row up to date: never documents silently without the new field."""
    setup.sql(*USERS)
    name = f"added-{uuid.uuid4().hex[:8]}"
    setup.run(USERS_PLAN, name)
    setup.sql(
        "ALTER TABLE public.users ADD COLUMN nickname text",
        "INSERT INTO public.users VALUES (3, 'c@example.com', 'x', 'cee')",
    )
    events = setup.run(USERS_PLAN, name, until="caught-up")
    said = [n.message for n in events.of(Notice) if "nickname" in n.message]
    assert said and "publishes" in said[0] and any("brought up to date" in s for s in said), said
    assert published_columns(setup, publication_name(name)) == {"public.users": ["id", "email", "nickname"]}
    # Rows that did not change, and the row inserted before the column was published, hold it.
    users = {d["_id"]: d for d in mongo[setup.database]["users"].find()}
    assert {k: d["nickname"] for k, d in users.items()} == {1: None, 2: None, 3: "cee"}
    # Published from here on: changed and new rows carry it.
    setup.sql(
        "INSERT INTO public.users VALUES (4, 'd@example.com', 'x', 'dee')",
        "UPDATE public.users SET nickname = 'ay' WHERE id = 1",
    )
    setup.run(USERS_PLAN, name, until="caught-up")
    users = {d["_id"]: d for d in mongo[setup.database]["users"].find()}
    assert (users[4].get("nickname"), users[1].get("nickname")) == ("dee", "ay")
    assert all("password_hash" not in d for d in users.values())
    assert {k: d["nickname"] for k, d in users.items()} == {1: "ay", 2: None, 3: "cee", 4: "dee"}
