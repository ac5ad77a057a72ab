"""MongoDB target adapter."""

from __future__ import annotations

import datetime
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal, cast
from urllib.parse import parse_qsl, urlsplit

import bson
from pymongo import MongoClient
from pymongo import errors as mongo

from migrator.adapters.base import (
    Abandoned,
    Capabilities,
    CutoverNeeds,
    MappedCollection,
    TargetCollectionInfo,
    TargetInfo,
)
from migrator.adapters.base import OwnerRecord as AnyOwner
from migrator.adapters.documents import id_identity, same
from migrator.adapters.mongodb.applier import STATE_COLLECTION, ChangeApplier, CurrentDocument, ReadContent
from migrator.adapters.mongodb.changes import ChangeStream
from migrator.adapters.mongodb.codec import CODEC, MAX_BSON_BYTES, encode_document
from migrator.adapters.mongodb.errors import classify
from migrator.adapters.mongodb.fence import ValidatorFence
from migrator.adapters.mongodb.ownership import Ownership
from migrator.adapters.mongodb.reader import DocumentReader
from migrator.adapters.mongodb.sessions import SessionLog
from migrator.adapters.mongodb.writer import DocumentWriter
from migrator.adapters.ownership_record import OwnerRecord, refusal
from migrator.adapters.vocabulary import ARRAY_ID_REFUSED, DOCUMENT_ID_ROLE, TargetVocabulary
from migrator.connstr import MalformedConnection, parse_mongodb
from migrator.errors import OwnedByAnotherRun, TargetError
from migrator.findings import Finding
from migrator.redact import url_passwords


class MongoTarget:
    """The target side: inspection now; writes arrive with the snapshot phase."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        transactions=True, change_streams=True, routing_documents=True
    )
    # Both need a replica set (docs/architecture.md, "A source's words").
    vocabulary: ClassVar[TargetVocabulary] = TargetVocabulary(
        reverse_feed="change streams",
        transactions_fix="run MongoDB as a replica set (a single-node one will do)",
        reverse_feed_fix="run MongoDB as a replica set (a single-node one will do)",
        database="MongoDB",
        collection="collection",
        document="document",
        becomes="documents (`_id` <- {key})",
        value_types="BSON types",
        transactions_requirement="transactions (a replica set): data and checkpoint commit together",
        reverse_feed_requirement="change streams (a replica set): reverse sync, hence rollback after cutover",
        replica_sets=True,
        rollback_fence="a validator on the mapped collections refuses inserts and updates (error 121, retryable)",
        copy_speed="about what `insert_many` reaches on one process; real MongoDB is often faster",
        oversize="documents over 16 MB (`phases.snapshot.on_oversize: skip`): re-plan the embedding",
        switch_kinds="file, command, postgres or mongodb",
        key_role=DOCUMENT_ID_ROLE,
        array_key=ARRAY_ID_REFUSED,
        finish_feed="nothing to drop on the target: reverse sync's change streams keep nothing on the server",
        records="the `_migrator` collection",
    )

    def __init__(self, url: str, database: str, *, timeout_ms: int = 5_000) -> None:
        self._url = url
        self.database = database
        # Strict parsing first (migrator/connstr.py): pymongo's own errors quote the malformed
        # part (a port that is the password), these quote nothing.
        try:
            self.name = parse_mongodb(url).endpoint
        except MalformedConnection as exc:
            raise TargetError(
                f"the target URL is not usable: {exc}",
                hint="write it as mongodb://user:password@host:port/?replicaSet=... (or directConnection=true), "
                "percent-encoding '@', ':', '/', '?', '#', '%' in the password",
            ) from None
        self._secrets = url_passwords(url)
        self._timeout_ms = timeout_ms
        self._client: MongoClient[dict[str, Any]] | None = None
        # Where this process's appliers record their sessions, once it has taken a run over
        # (end_abandoned); the appliers made, whose sessions close() ends.
        self._sessions: SessionLog | None = None
        self._appliers: list[ChangeApplier] = []

    @property
    def secrets(self) -> tuple[str, ...]:
        """What error messages about this endpoint must never show (its password)."""
        return self._secrets

    def client(self) -> MongoClient[dict[str, Any]]:
        if self._client is None:
            # Keyword arguments override the URL in pymongo: set only what the URL leaves out.
            given = {k.lower() for k, _ in parse_qsl(urlsplit(self._url).query)}
            defaults: dict[str, Any] = {
                "serverSelectionTimeoutMS": self._timeout_ms,
                "connectTimeoutMS": self._timeout_ms,
                "appname": "migrator",
            }
            options = {k: v for k, v in defaults.items() if k.lower() not in given}
            try:
                self._client = MongoClient(self._url, tz_aware=True, **options)
            except mongo.PyMongoError as exc:
                raise classify(exc, self.name, self._secrets) from None
        return self._client

    def writer(self, collection: str) -> DocumentWriter:
        coll = self.client()[self.database].get_collection(collection, codec_options=CODEC)
        return DocumentWriter(coll, self.name, self._secrets)

    def write_fence(self, collections: Sequence[str], plan_name: str) -> ValidatorFence:
        """Blocks the application's writes to `collections` while held (rollback after cutover)."""
        return ValidatorFence(self, collections, plan_name)

    def reader(self, collection: str) -> DocumentReader:
        return DocumentReader(self.client()[self.database][collection], self.name, self._secrets)

    def ownership(self, plan_name: str) -> Ownership:
        """The plan's ownership record in the target database (which run owns the data)."""
        return Ownership(self, plan_name)

    def change_stream(
        self, plan_name: str, collections: Iterable[str], *, max_await_ms: int = 500
    ) -> ChangeStream:
        """The change stream of `collections` for plan `plan_name`'s reverse sync
        (adapters/mongodb/changes.py)."""
        return ChangeStream(self, plan_name, collections, max_await_ms=max_await_ms)

    def checkpoint_record(self, checkpoint_id: str) -> dict[str, Any] | None:
        """CDC's checkpoint record in `_migrator` (written with the data: position, commit time,
        ...), or None before CDC wrote one."""
        try:
            return self.client()[self.database][STATE_COLLECTION].find_one({"_id": checkpoint_id})
        except mongo.PyMongoError as exc:
            raise classify(exc, self.name, self._secrets) from None

    def applied_position(self, checkpoint_id: str) -> int | None:
        """The source position CDC has applied up to (the `_migrator` checkpoint written with
        the data), or None before CDC wrote one."""
        doc = self.checkpoint_record(checkpoint_id)
        return None if doc is None else int(doc["position"])

    def routing_document(self, collection: str, plan_name: str) -> Mapping[str, Any] | None:
        """Plan `plan_name`'s routing document in `collection` (the switch of kind mongodb,
        engine/switch.py), or None where there is none."""
        try:
            return self.client()[self.database][collection].find_one({"_id": plan_name})
        except mongo.PyMongoError as exc:
            raise classify(exc, self.name, self._secrets) from None

    def write_routing_document(
        self, collection: str, plan_name: str, primary: Literal["source", "target"], run_id: str
    ) -> None:
        """Name `primary` in plan `plan_name`'s routing document, with the run that flipped it;
        the same side twice is the same state."""
        try:
            self.client()[self.database][collection].replace_one(
                {"_id": plan_name},
                {
                    "_id": plan_name,
                    "primary": primary,
                    "run_id": run_id,
                    "updated_at": datetime.datetime.now(datetime.UTC),
                },
                upsert=True,
            )
        except mongo.PyMongoError as exc:
            raise classify(exc, self.name, self._secrets) from None

    def delete_state(self, state_id: str) -> bool:
        """Remove one of migrator's documents from `_migrator` (a checkpoint); True if it existed."""
        try:
            result = self.client()[self.database][STATE_COLLECTION].delete_one({"_id": state_id})
        except mongo.PyMongoError as exc:
            raise classify(exc, self.name, self._secrets) from None
        return result.deleted_count > 0

    def drop_reverse_feed(self, plan_name: str) -> list[str]:
        """Nothing: a change stream keeps no object on the server (finish)."""
        return []

    def empty_collection(self, collection: str) -> int:
        """Delete every document of `collection` and the indexes migrator created on it (named
        migrator_*), keeping the collection and its other indexes; the count deleted."""
        try:
            coll = self.client()[self.database][collection]
            deleted = coll.delete_many({}).deleted_count
            for name in coll.index_information():
                if name.startswith("migrator_"):
                    coll.drop_index(name)
        except mongo.PyMongoError as exc:
            raise classify(exc, self.name, self._secrets) from None
        return int(deleted)

    def set_sequences(self, values: Mapping[str, Mapping[str, int]], margin: int) -> list[str]:
        """Nothing: a collection has no sequences (an `_id` is the source's key)."""
        return []

    def sequence_values(self, collections: Sequence[str]) -> dict[str, dict[str, int]]:
        """Nothing: a collection has no sequences."""
        return {}

    def existing_collections(self) -> dict[str, int]:
        """Collections of the target database and their estimated document counts."""
        try:
            db = self.client()[self.database]
            return {name: db[name].estimated_document_count() for name in db.list_collection_names()}
        except mongo.PyMongoError as exc:
            raise classify(exc, self.name, self._secrets) from None

    def drop_collection(self, collection: str) -> None:
        try:
            self.client()[self.database].drop_collection(collection)
        except mongo.PyMongoError as exc:
            raise classify(exc, self.name, self._secrets) from None

    def inspect(self, collections: Sequence[str]) -> TargetInfo:
        try:
            client = self.client()
            hello = client.admin.command("hello")
            version = str(client.server_info().get("version", "unknown"))
            db = client[self.database]
            existing = set(db.list_collection_names())
            found = {
                name: TargetCollectionInfo(
                    name=name,
                    exists=name in existing,
                    documents=db[name].estimated_document_count() if name in existing else 0,
                )
                for name in collections
            }
        except mongo.PyMongoError as exc:
            raise classify(exc, self.name, self._secrets) from None
        replica_set = hello.get("setName")
        sharded = hello.get("msg") == "isdbgrid"
        major = _major(version)
        # Transactions need a replica set (4.0+) or a sharded cluster (4.2+); change streams
        # need a replica set or sharded cluster (3.6+). A standalone server has neither.
        transactions = (replica_set is not None and major >= 4) or (sharded and major >= 5)
        change_streams = replica_set is not None or sharded
        return TargetInfo(
            endpoint=self.name,
            version=version,
            replica_set=replica_set,
            transactions=transactions,
            change_streams=change_streams,
            collections=found,
        )

    def refusal(self, owner: AnyOwner, *, this_run: str | None = None) -> OwnedByAnotherRun:
        """The error that names the owning run (`owner`, as `ownership().read()` gave it)."""
        return refusal(cast(OwnerRecord, owner), self.database, this_run=this_run)

    def applier(
        self,
        checkpoint_id: str,
        *,
        transactions: bool,
        current: CurrentDocument | None = None,
        reads: ReadContent | None = None,
    ) -> ChangeApplier:
        """CDC's writer of batches with their checkpoint (adapters/mongodb/applier.py); its session
        is recorded for the next process once this one has taken the run over (end_abandoned)."""
        applier = ChangeApplier(
            self.client()[self.database],
            checkpoint_id,
            transactions=transactions,
            current=current,
            reads=reads,
            record=self._sessions.record if self._sessions is not None else None,
        )
        self._appliers.append(applier)
        return applier

    def end_abandoned(self, plan_name: str, run_id: str) -> Abandoned:
        """killSessions for the sessions an earlier process of the run recorded, and record this
        process's from now on (adapters/mongodb/sessions.py)."""
        log = self._sessions
        if log is None or (log.plan_name, log.run_id) != (plan_name, run_id):
            log = SessionLog(self.client()[self.database], plan_name, run_id, self.name, self._secrets)
        ended = log.end_recorded()
        self._sessions = log
        return ended

    def close(self) -> None:
        appliers, self._appliers = self._appliers, []
        try:
            for applier in appliers:
                applier.close()
            if self._sessions is not None and self._client is not None:
                self._sessions.forget_own()  # every session ended: none left open for the next
        finally:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> MongoTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # What phases and the mapping ask of the documents themselves (adapters/base.py).

    max_document_bytes: ClassVar[int] = MAX_BSON_BYTES

    @staticmethod
    def encode_document(document: dict[str, Any], collection: str) -> bytes:
        """BSON bytes of a document (codec.encode_document): what readers give back, writers take."""
        return encode_document(document, collection)

    @staticmethod
    def decode_document(raw: bytes) -> dict[str, Any]:
        return bson.decode(raw, codec_options=CODEC)

    @staticmethod
    def same_document(expected: bytes, actual: bytes) -> bool:
        return same(expected, actual)

    @staticmethod
    def id_identity(doc_id: Any) -> Hashable:
        """The _id as MongoDB's _id index compares it (documents.id_identity)."""
        return id_identity(doc_id)

    @staticmethod
    def table_statements(collections: Sequence[MappedCollection]) -> list[str]:
        """None: MongoDB creates a collection on its first write."""
        return []

    @staticmethod
    def schema_findings(collections: Sequence[MappedCollection]) -> list[Finding]:
        """None: no DDL, nothing to clash with."""
        return []

    @staticmethod
    def role_findings(collections: Sequence[str], needs: CutoverNeeds) -> list[Finding]:
        """None checked: a role missing a MongoDB privilege is refused with its error code."""
        return []

    @staticmethod
    def execute_schema(statements: Sequence[str]) -> None:
        """Nothing to run (table_statements gives none)."""

    @staticmethod
    def describe(info: TargetInfo) -> str:
        """The server as preflight's 'reachable' finding names it."""
        topology = f"replica set {info.replica_set}" if info.replica_set else "standalone"
        return f"MongoDB {info.version}, {topology}"


def _major(version: str) -> int:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0
