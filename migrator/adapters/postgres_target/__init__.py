"""PostgreSQL target adapter: tables moved as flat collections (docs/architecture.md, "Tables as
collections"). Snapshot writes (binary COPY where formats agree), CDC apply with its checkpoint
under a replication origin, ownership, verify's reads and range checksums, reverse sync's feed, the
fence for the switch back, sequences at cutover; a routing document (the switch of kind mongodb) is
refused by `plan` (target.cutover) and, should a switch reach it, with a terminal error."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal, NoReturn, cast

import psycopg
from psycopg import sql

from migrator.adapters.base import (
    Abandoned,
    Capabilities,
    CutoverNeeds,
    MappedCollection,
    OwnerRecord,
    PostCopy,
    PostCopyStatement,
    RawColumn,
    SchemaObject,
    SourceRead,
    TargetCollectionInfo,
    TargetInfo,
)
from migrator.adapters.ownership_record import OwnerRecord as StoredOwner
from migrator.adapters.ownership_record import refusal
from migrator.adapters.postgres import origin_states
from migrator.adapters.postgres.sequences import sequence_values
from migrator.adapters.postgres_target import post_copy, records, text_values
from migrator.adapters.postgres_target.applier import TableApplier
from migrator.adapters.postgres_target.checksums import TargetChecksums
from migrator.adapters.postgres_target.comparison import same
from migrator.adapters.postgres_target.connection import Connections, TargetEndpoint
from migrator.adapters.postgres_target.copy_in import BinaryWriter, raw_writer
from migrator.adapters.postgres_target.fence import TriggerFence
from migrator.adapters.postgres_target.labels import domain_findings, label_findings
from migrator.adapters.postgres_target.ownership import Ownership, drop_run_objects
from migrator.adapters.postgres_target.privileges import role_findings
from migrator.adapters.postgres_target.reader import TableReader
from migrator.adapters.postgres_target.reverse import PgReverseFeed
from migrator.adapters.postgres_target.rows import decode, encode
from migrator.adapters.postgres_target.schema import added_columns, create_tables, qualified
from migrator.adapters.postgres_target.sequences import set_sequences
from migrator.adapters.postgres_target.writer import TableWriter
from migrator.adapters.vocabulary import TargetVocabulary
from migrator.errors import OwnedByAnotherRun, TerminalError
from migrator.findings import Finding
from migrator.plan.names import checkpoint_plan, forward_origin_name

# A row's values travel as one document; PostgreSQL's own limit is 1 GB a value.
MAX_ROW_BYTES = 1 << 30

_TABLES_SQL = """
SELECT n.nspname || '.' || c.relname, GREATEST(c.reltuples, 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', %s)
  AND n.nspname NOT LIKE 'pg\\_%%'
"""

_COLUMNS_SQL = """
SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped
"""


def _later(what: str) -> NoReturn:
    raise TerminalError(
        f"a PostgreSQL target does not support {what} yet",
        hint="with a PostgreSQL target, use a switch of kind file, command or postgres (the routing row on the source)",
    )


class PostgresTarget:
    capabilities: ClassVar[Capabilities] = Capabilities(
        transactions=True, change_streams=True, keeps_source_types=True
    )
    # Reverse sync reads the target through a logical slot, which needs wal_level = logical, a
    # setting read at server start (docs/architecture.md, "A source's words").
    vocabulary: ClassVar[TargetVocabulary] = TargetVocabulary(
        reverse_feed="logical decoding on the target (wal_level = logical)",
        transactions_fix="use a writable PostgreSQL primary as the target",
        reverse_feed_fix="set wal_level = logical on the target server and restart it "
        "(ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL)",
        database="PostgreSQL",
        collection="table",
        document="row",
        becomes="rows (primary key {key})",
        value_types="the source's column types",
        transactions_requirement="transactions: data and checkpoint commit together",
        reverse_feed_requirement="logical decoding on the target (wal_level = logical): reverse sync, "
        "hence rollback after cutover",
        replica_sets=False,
        rollback_fence="a trigger on the mapped tables refuses inserts, updates and deletes "
        "(SQLSTATE 25006, retryable)",
        copy_speed="a conservative figure: binary COPY between PostgreSQL servers is often faster",
        oversize="rows over 1 GB (`phases.snapshot.on_oversize: skip`): exclude the column that holds the value",
        switch_kinds="file, command or postgres",
        key_role="the row key of table '{collection}' (what CDC, verify and repair find each row by)",
        array_key="a table's rows cannot be keyed by one array column alone",
        finish_feed="drop reverse sync's replication slot and publication on the target (migrator_rev_...) and "
        "forward CDC's replication origin there (migrator_forward_...: it holds one of the server's "
        "max_replication_slots origin states)",
        records="table migrator.state",
    )
    max_document_bytes: ClassVar[int] = MAX_ROW_BYTES

    def __init__(self, url: str, database: str = "", **_options: Any) -> None:
        self._endpoint = TargetEndpoint(url)
        self.name = self._endpoint.name
        self._connections = Connections(self._endpoint)

    @property
    def database(self) -> str:
        return self._endpoint.database

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._endpoint.secrets

    def _call(self, work: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        return self._connections.run(work)

    # -- the schema (docs/architecture.md, "Tables as collections") ----------------------------

    @staticmethod
    def table_statements(collections: Sequence[MappedCollection]) -> list[str]:
        """The DDL that creates the target tables before the copy (schema.py)."""
        return create_tables(collections)

    def schema_findings(self, collections: Sequence[MappedCollection]) -> list[Finding]:
        """What the target already has that the DDL would not override: an enum of the same name
        with other labels; and what it lacks that a domain's CHECK calls (labels.py)."""
        findings: list[Finding] = self._call(
            lambda conn: label_findings(conn, collections) + domain_findings(conn, collections)
        )
        return findings

    def role_findings(self, collections: Sequence[str], needs: CutoverNeeds) -> list[Finding]:
        """The privileges the plan's role lacks on the target (privileges.py), and room for forward
        CDC's replication origin (origin_states.py)."""

        def work(conn: psycopg.Connection[Any]) -> list[Finding]:
            found = role_findings(conn, collections, needs)
            if needs.plan_name:
                name = forward_origin_name(needs.plan_name, self.database)
                found += origin_states.findings(conn, name, "target.replication_origins", self.name)
            return found

        findings: list[Finding] = self._call(work)
        return findings

    def execute_schema(self, statements: Sequence[str]) -> None:
        def work(conn: psycopg.Connection[Any]) -> None:
            for statement in statements:
                conn.execute(cast(Any, statement))

        self._call(work)
        self._connections.forget_tables()

    def add_columns(self, collections: Sequence[MappedCollection]) -> list[str]:
        """The columns the mapping takes that the target tables lack: added on the source while
        CDC follows (schema.py added_columns; docs/architecture.md, "A column added while CDC
        follows"). The statements run."""

        def work(conn: psycopg.Connection[Any]) -> list[str]:
            done: list[str] = []
            for collection in collections:
                rows = conn.execute(_COLUMNS_SQL, [qualified(collection.name)]).fetchall()
                for statement in added_columns(collection, {str(r[0]) for r in rows}):
                    conn.execute(cast(Any, statement))
                    done.append(statement)
            return done

        statements: list[str] = self._call(work)
        if statements:
            self._connections.forget_tables()
        return statements

    # -- inspection -----------------------------------------------------------------------------

    def inspect(self, collections: Sequence[str]) -> TargetInfo:
        def work(conn: psycopg.Connection[Any]) -> TargetInfo:
            row = conn.execute(
                "SELECT current_setting('server_version'), current_setting('wal_level')"
            ).fetchone()
            version = str(row[0]) if row else "unknown"
            # Reverse sync reads the target through a logical slot (reverse.py).
            logical = bool(row and row[1] == "logical")
            found = {}
            for name in collections:
                exists = conn.execute("SELECT to_regclass(%s)", [qualified(name)]).fetchone()
                rows = 0
                if exists and exists[0] is not None:
                    count = conn.execute(
                        sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(qualified(name)))
                    ).fetchone()
                    rows = int(count[0]) if count else 0
                found[name] = TargetCollectionInfo(name, bool(exists and exists[0]), rows)
            return TargetInfo(self.name, version, None, True, logical, found)

        info: TargetInfo = self._call(work)
        return info

    @staticmethod
    def describe(info: TargetInfo) -> str:
        return f"PostgreSQL {info.version}"

    def existing_collections(self) -> dict[str, int]:
        rows = self._call(lambda conn: conn.execute(_TABLES_SQL, [records.SCHEMA]).fetchall())
        return {str(name): int(count) for name, count in rows}

    # -- rows ------------------------------------------------------------------------------------

    def writer(self, collection: str) -> TableWriter:
        return TableWriter(self._connections, collection)

    @staticmethod
    def post_copy(
        objects: Sequence[SchemaObject], targets: Mapping[str, tuple[str, Mapping[str, str]]]
    ) -> PostCopy:
        """Indexes and constraints built after the copy (post_copy.py)."""
        return post_copy.post_copy(objects, targets)

    @staticmethod
    def primary_keys(tables: Sequence[tuple[str, Sequence[str]]]) -> list[PostCopyStatement]:
        """The tables' primary keys, added after the copy (post_copy.py; docs/architecture.md,
        "After the copy")."""
        return post_copy.primary_keys(tables)

    def build_post_copy(self, statement: PostCopyStatement) -> bool:
        return post_copy.build(self._connections, statement)

    def raw_writer(self, collection: str, form: str, columns: Sequence[RawColumn]) -> BinaryWriter | None:
        """Snapshot chunks taken undecoded, where the table's types are the source's (copy_in.py)."""
        return raw_writer(self._connections, collection, form, columns)

    def takes_source_text(self, collection: str, form: str, columns: Sequence[RawColumn]) -> frozenset[str]:
        """Changed values taken as the source's text, where the table's types are the source's
        (text_values.py)."""
        return self._connections.run(lambda conn: text_values.takes(conn, collection, form, columns))

    def reader(self, collection: str) -> TableReader:
        return TableReader(self._connections, collection)

    def range_checksums(self) -> TargetChecksums:
        """Key ranges hashed in the server (checksums.py), as a PostgreSQL source hashes them."""
        return TargetChecksums(self._connections)

    @staticmethod
    def encode_document(document: dict[str, Any], collection: str) -> bytes:
        return encode(document)

    @staticmethod
    def decode_document(raw: bytes) -> dict[str, Any]:
        return decode(raw)

    @staticmethod
    def same_document(expected: bytes, actual: bytes) -> bool:
        return same(expected, actual)

    @staticmethod
    def id_identity(doc_id: Any) -> Hashable:
        """What the primary key compares: a compound key's values in key order."""
        if isinstance(doc_id, Mapping):
            return tuple(doc_id.items())
        return cast(Hashable, doc_id)

    def empty_collection(self, collection: str) -> int:
        query = sql.SQL("DELETE FROM {}").format(sql.SQL(qualified(collection)))
        return int(self._call(lambda conn: conn.execute(query).rowcount))

    def drop_collection(self, collection: str) -> None:
        query = sql.SQL("DROP TABLE IF EXISTS {}").format(sql.SQL(qualified(collection)))
        self._call(lambda conn: conn.execute(query))
        self._connections.forget_tables()

    # -- CDC and the run's records ---------------------------------------------------------------

    def applier(
        self,
        checkpoint_id: str,
        *,
        transactions: bool,
        current: Callable[[str, Any], dict[str, Any] | None] | None = None,
        reads: Callable[[Sequence[SourceRead]], Sequence[Any]] | None = None,
    ) -> TableApplier:
        """CDC's writer (applier.py): always in one transaction with its checkpoint, each batch
        under the plan's forward replication origin (origin.py)."""
        name = forward_origin_name(checkpoint_plan(checkpoint_id), self.database)
        return TableApplier(self._connections, checkpoint_id, current, origin_name=name)

    def end_abandoned(self, plan_name: str, run_id: str) -> Abandoned:
        """Nothing to end: PostgreSQL aborts a transaction once its connection is gone (a killed
        process's too), so the next process never waits for it."""
        return Abandoned()

    def checkpoint_record(self, checkpoint_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._call(lambda conn: records.read(conn, checkpoint_id))
        return found

    def applied_position(self, checkpoint_id: str) -> int | None:
        doc = self.checkpoint_record(checkpoint_id)
        return None if doc is None or doc.get("position") is None else int(doc["position"])

    def delete_state(self, state_id: str) -> bool:
        return bool(self._call(lambda conn: records.delete(conn, state_id)))

    def drop_reverse_feed(self, plan_name: str) -> list[str]:
        """Reverse sync's slot and publication here and forward CDC's replication origin
        (reverse_objects.py, origin.py), at `migrator finish`; what was dropped."""
        return list(self._call(lambda conn: drop_run_objects(conn, plan_name, self.database)))

    def change_stream(
        self, plan_name: str, collections: Iterable[str], *, max_await_ms: int = 500
    ) -> PgReverseFeed:
        """Reverse sync's feed of the target's changes (reverse.py): a slot and a publication here."""
        return PgReverseFeed(self._connections, plan_name, collections, max_await_ms=max_await_ms)

    def set_sequences(self, values: Mapping[str, Mapping[str, int]], margin: int) -> list[str]:
        """The target's sequences past the source's values, at cutover (sequences.py)."""
        done: list[str] = self._call(lambda conn: set_sequences(conn, values, margin))
        return done

    def sequence_values(self, collections: Sequence[str]) -> dict[str, dict[str, int]]:
        """The last value each mapped column's sequence gave out, now: what rollback after cutover
        brings the source's sequences past (the query a PostgreSQL source answers it with)."""
        found: dict[str, dict[str, int]] = self._call(lambda conn: sequence_values(conn, collections))
        return found

    def write_fence(self, collections: Sequence[str], plan_name: str) -> TriggerFence:
        """The fence for the switch back (fence.py): triggers refusing the application's writes."""
        return TriggerFence(self._connections, collections, plan_name)

    def ownership(self, plan_name: str) -> Ownership:
        return Ownership(self._connections, plan_name)

    def refusal(self, owner: OwnerRecord, *, this_run: str | None = None) -> OwnedByAnotherRun:
        return refusal(cast(StoredOwner, owner), self.database, this_run=this_run)

    # -- later in issue 16 -------------------------------------------------------------------------

    def routing_document(self, collection: str, plan_name: str) -> Mapping[str, Any] | None:
        _later("a routing switch of kind mongodb")

    def write_routing_document(
        self, collection: str, plan_name: str, primary: Literal["source", "target"], run_id: str
    ) -> None:
        _later("a routing switch of kind mongodb")

    def close(self) -> None:
        self._connections.close()

    def __enter__(self) -> PostgresTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
