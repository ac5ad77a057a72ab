"""Applies change batches to MongoDB with their checkpoint (invariant 3).

Where the server has transactions, a batch's writes and its checkpoint commit together,
so the authoritative stream position lives beside the data in the `_migrator`
collection. Without transactions the writes (all idempotent) go first and the
checkpoint after them.

A change that needs what the target stores (an element's unchanged TOASTed values or its own
embedded arrays; a re-keyed document) and finds it nowhere is applied by re-reading the whole
document from the source instead (`current`): after a snapshot resumed at a newer point, the old
parent may have been read after the change and the new one before it, so that neither holds it.

Content a change names only by link values (a lookup's referenced row, a new parent's children)
comes as SourceRead placeholders: before a batch is written, they are filled in through `reads`,
all of the batch's at once (docs/architecture.md, "Embedded content read from the source"). A
placeholder with `only_if` is read only when an earlier write of the same source transaction
carries one of its tags: the applier keeps the tags of the transaction in progress, across the
batches a large transaction is applied in (until a batch that ends with its checkpoint).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from pymongo import DeleteMany, DeleteOne, ReplaceOne, UpdateMany, UpdateOne, WriteConcern
from pymongo import errors as mongo
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database

from migrator.adapters.base import SourceRead, WriteOp
from migrator.adapters.coalesce import coalesce
from migrator.adapters.mongodb.codec import CODEC
from migrator.adapters.mongodb.errors import aborted_for_size, classify, classify_batch
from migrator.errors import TargetLostWrites, TerminalError

# The run's records beside its data: checkpoints (here) and the owner record (ownership.py), in
# one collection of the target database (docs/architecture.md, "One owner").
STATE_COLLECTION = "_migrator"
# A batch and its checkpoint are acknowledged only once durable (majority, journaled): the slot is
# confirmed up to that checkpoint right after (invariant 3), so a write acknowledged but lost in a
# target crash or failover would leave its changes neither in the target nor in the slot.
DURABLE = WriteConcern("majority", j=True)


class _Aborted(Exception):
    """Carries a server error out of ClientSession.with_transaction, which retries only PyMongoErrors."""

    def __init__(self, error: mongo.OperationFailure) -> None:
        super().__init__(str(error))
        self.error = error


_BULK_KINDS = {"update", "update_many", "replace", "delete", "delete_many"}


def _bulk(op: WriteOp) -> Any:
    filters: list[Mapping[str, Any]] | None = list(op.array_filters) or None
    if op.kind == "update":
        return UpdateOne(op.filter, op.update, upsert=op.upsert, array_filters=filters)
    if op.kind == "replace":
        return ReplaceOne(op.filter, op.update, upsert=op.upsert)
    if op.kind == "update_many":
        return UpdateMany(op.filter, op.update, upsert=op.upsert, array_filters=filters)
    if op.kind == "delete":
        return DeleteOne(op.filter)
    return DeleteMany(op.filter)


def _matches(element: Any, conditions: dict[str, Any], name: str) -> bool:
    if not isinstance(element, dict):
        return False
    for path, value in conditions.items():
        field = path.removeprefix(f"{name}.")
        if element.get(field) != value:
            return False
    return True


def _containers(doc: dict[str, Any], path: str, array_filters: Sequence[dict[str, Any]]) -> list[Any]:
    """Values at a positional path ('orders.$[p0].items', 'a.$[].b') inside `doc`."""
    filters: dict[str, dict[str, Any]] = {}
    for f in array_filters:
        for key, value in f.items():
            filters.setdefault(key.split(".", 1)[0], {})[key] = value
    nodes: list[Any] = [doc]
    for part in path.split(".") if path else []:
        nxt: list[Any] = []
        for node in nodes:
            if part == "$[]":
                nxt.extend(node if isinstance(node, list) else [])
            elif part.startswith("$[") and part.endswith("]"):
                name = part[2:-1]
                if isinstance(node, list):
                    nxt.extend(e for e in node if _matches(e, filters.get(name, {}), name))
            elif isinstance(node, dict) and part in node:
                nxt.append(node[part])
        nodes = nxt
    return nodes


def _find_element(containers: list[Any], match: dict[str, Any]) -> dict[str, Any] | None:
    """The element (last, if several) of `containers` whose fields equal `match`."""
    found: dict[str, Any] | None = None
    for container in containers:
        for item in container if isinstance(container, list) else [container]:
            if isinstance(item, dict) and all(item.get(k) == v for k, v in match.items()):
                found = item
    return found


# (collection, _id) -> the document as the source holds it now, or None when it has no such row.
CurrentDocument = Callable[[str, Any], "dict[str, Any] | None"]
# Placeholders -> their content as the source holds it now, in the same order.
ReadContent = Callable[[Sequence[SourceRead]], Sequence[Any]]
# Records a session id (`ClientSession.session_id`) before its first transaction (sessions.py).
RecordSession = Callable[[Mapping[str, Any]], None]


def _text_of(record: Mapping[str, Any]) -> str:
    """A checkpoint record's position as the source wrote it (its `position_text`, recorded with
    the position in one update); the bare number only for a record that has no text."""
    return str(record.get("position_text") or f"position {record.get('position')}")


def _substitute(value: Any, filled: dict[int, Any]) -> Any:
    """`value` with every SourceRead in it (in dicts, lists and tuples) replaced by its content."""
    if isinstance(value, SourceRead):
        return filled[id(value)]
    if isinstance(value, dict):
        return {k: _substitute(v, filled) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, filled) for v in value]
    if isinstance(value, tuple):
        return tuple(_substitute(v, filled) for v in value)
    return value


class ChangeApplier:
    def __init__(
        self,
        database: Database[Any],
        checkpoint_id: str,
        *,
        transactions: bool,
        current: CurrentDocument | None = None,
        reads: ReadContent | None = None,
        record: RecordSession | None = None,
    ) -> None:
        self._db = database
        self._id = checkpoint_id
        self._transactions = transactions
        self._current = current
        self._reads = reads
        # Every batch's transaction in one long-lived session, recorded (`record`) before its first
        # one, so that the next process can end it if this one dies with a transaction open
        # (docs/architecture.md, "Transactions a killed process left open").
        self._record = record
        self._session: ClientSession | None = None
        # Tags of the writes of the source transaction in progress (SourceRead.only_if).
        self._tags: set[Hashable] = set()
        # The checkpoint position this applier last committed (or first read): each checkpoint
        # write requires it to be still there, so that a target that lost acknowledged writes
        # (its checkpoint went back) is found at once, never replayed over silently.
        self._written: int | None = None
        # Its text as the source wrote it (Positions.text, via `apply`, or the stored record's):
        # a target never formats a source's positions (docs/architecture.md, "Layers").
        self._written_text: str | None = None
        self._state: Collection[Any] = database.get_collection(
            STATE_COLLECTION, codec_options=CODEC, write_concern=DURABLE
        )

    def _coll(self, name: str) -> Collection[Any]:
        return self._db.get_collection(name, codec_options=CODEC, write_concern=DURABLE)

    def ensure_indexes(self, paths: dict[str, set[str]]) -> list[str]:
        """Create the (multikey) indexes embedded changes use to find their document."""
        created = []
        try:
            for collection, fields in sorted(paths.items()):
                for field in sorted(fields):
                    self._coll(collection).create_index([(field, 1)], name=f"migrator_{field}"[:120])
                    created.append(f"{collection}.{field}")
        except mongo.PyMongoError as exc:
            raise classify(exc, "target") from None
        return created

    def checkpoint(self) -> dict[str, Any] | None:
        """The stored checkpoint; raises TargetLostWrites when it is behind what this applier
        committed (the target lost acknowledged writes: after a restart, say)."""
        try:
            stored = self._state.find_one({"_id": self._id})
        except mongo.PyMongoError as exc:
            raise classify(exc, "target") from None
        position = None if stored is None or stored.get("position") is None else int(stored["position"])
        if self._written is not None and (position is None or position < self._written):
            raise self._lost(stored)
        if stored is not None and position is not None:
            self._written, self._written_text = position, _text_of(stored)
        return stored

    def _lost(self, stored: Mapping[str, Any] | None) -> TargetLostWrites:
        """The error for a checkpoint record `stored` behind the position this applier committed."""
        assert self._written is not None
        at = "none" if stored is None or stored.get("position") is None else _text_of(stored)
        committed = self._written_text or f"position {self._written}"
        return TargetLostWrites(
            f"the target lost writes it had acknowledged: its CDC checkpoint ({STATE_COLLECTION} {self._id}) is at "
            f"{at}, but this run committed {committed} (write concern majority, journaled) and "
            "confirmed the source's slot up to it, so the changes in between are neither in the target nor "
            "kept by the source",
            hint="the target did not keep a write it acknowledged as durable (a restart or failover of a server "
            "that does not journal, or a write concern the server ignores): `migrator verify --repair` rewrites "
            "what differs from the source, then `migrator run` resumes",
        )

    def apply(
        self,
        ops: Sequence[WriteOp],
        position: int | None,
        position_text: str | None,
        *,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Apply `ops`, to the effect of applying them in order (coalesce.py merges a document's
        `$set`s); when `position` is given, record it as the checkpoint with them (and `fields`
        beside it: the commit time lag is measured from, phases/lag.py). A transaction
        that meets a write conflict is retried (with_transaction, for up to 2 minutes): the caller
        keeps its own connections alive meanwhile (phases/cdc.py applies on a thread of its own).
        One a killed process left open is ended when the next process takes the run over
        (sessions.py), unless the server refuses to: then it lasts until the server aborts it."""

        writes = coalesce(self._fill(ops, complete=position is not None))

        previous = self._written

        def body(session: ClientSession | None) -> None:
            self._execute(writes, session)
            if position is not None:
                # Only over the checkpoint this applier committed last (or this one, when a retry
                # finds its first attempt committed): anything else means the target lost it.
                kept: dict[str, Any] = {"_id": self._id}
                if previous is not None:
                    kept["position"] = {"$in": [previous, position]}
                written = self._state.update_one(
                    kept,
                    {
                        "$set": {
                            **(fields or {}),  # what lag is measured from (phases/lag.py)
                            "position": position,
                            "position_text": position_text,
                            "updated_at": datetime.datetime.now(datetime.UTC),
                        }
                    },
                    upsert=previous is None,
                    session=session,
                )
                if previous is not None and written.matched_count == 0:
                    stored = self._state.find_one({"_id": self._id}, session=session)
                    raise self._lost(stored)
            elif session is not None:
                # A part of a large source transaction (no position yet): still touch the
                # checkpoint document, so that every forward transaction writes it and reverse
                # sync (phases/reverse.py) can tell it from the application's and skip it.
                # No upsert: a checkpoint without a position would be taken for one on resume.
                self._state.update_one(
                    {"_id": self._id},
                    {"$set": {"partial_at": datetime.datetime.now(datetime.UTC)}},
                    session=session,
                )

        def attempt(session: ClientSession) -> None:
            try:
                body(session)
            except mongo.OperationFailure as exc:
                if aborted_for_size(exc):
                    # Not retried as it is (with_transaction would, for two minutes): it would be
                    # aborted again. The caller applies smaller batches (phases/batch_size.py).
                    raise _Aborted(exc) from exc
                raise

        try:
            if self._transactions:
                self._transaction_session().with_transaction(attempt, write_concern=DURABLE)
            else:
                body(None)
        except _Aborted as aborted:
            raise classify_batch(aborted.error, "target", writes=len(ops)) from None
        except mongo.PyMongoError as exc:
            raise classify_batch(exc, "target", writes=len(ops)) from None
        if position is not None:
            self._written, self._written_text = position, position_text

    def _transaction_session(self) -> ClientSession:
        """This applier's session for its transactions, recorded before it is first used."""
        if self._session is None:
            session = self._db.client.start_session()
            try:
                if self._record is not None:
                    self._record(session.session_id)
            except BaseException:
                session.end_session()
                raise
            self._session = session
        return self._session

    def close(self) -> None:
        """End the session (the server forgets it); a later batch starts another."""
        if self._session is not None:
            session, self._session = self._session, None
            try:
                session.end_session()
            except mongo.PyMongoError as exc:
                raise classify(exc, "target") from None

    def _fill(self, ops: Sequence[WriteOp], *, complete: bool) -> Sequence[WriteOp]:
        """`ops` with their SourceRead placeholders filled in: read from the source (all at once,
        before anything is written, so at a point no older than any change of the batch) or, for
        an `only_if` placeholder that no earlier write of its transaction asks for, its
        `otherwise`. `complete`: the batch ends at a transaction's end, where the tags start over."""
        tags = self._tags
        wanted: list[SourceRead] = []
        filled: dict[int, Any] = {}
        for op in ops:
            for read in op.reads:
                if read.only_if is None or any(tag in tags for tag in read.only_if):
                    wanted.append(read)
                else:
                    filled[id(read)] = read.otherwise
            tags.update(op.tags)
        if complete:
            self._tags = set()
        if wanted:
            if self._reads is None:
                raise TerminalError(
                    "a change needs embedded content from the source, and this applier has no source reader",
                    hint="report this as a bug",
                )
            contents = self._reads(wanted)
            for read, content in zip(wanted, contents, strict=True):
                filled[id(read)] = {"$literal": content} if read.literal else content
        if not filled:
            return ops
        return [
            dataclasses.replace(
                op, update=_substitute(op.update, filled), extra=_substitute(op.extra, filled), reads=()
            )
            if op.reads
            else op
            for op in ops
        ]

    def _execute(self, ops: Sequence[WriteOp], session: ClientSession | None) -> None:
        pending: list[Any] = []
        pending_collection: str | None = None

        def flush() -> None:
            nonlocal pending, pending_collection
            if pending and pending_collection is not None:
                # Past a target fence (adapters/mongodb/fence.py): replication must never stop at it.
                self._coll(pending_collection).bulk_write(
                    pending, ordered=True, session=session, bypass_document_validation=True
                )
            pending, pending_collection = [], None

        for op in ops:
            if op.kind in _BULK_KINDS:
                if pending_collection not in (None, op.collection):
                    flush()
                pending_collection = op.collection
                pending.append(_bulk(op))
                continue
            flush()
            if op.kind == "rekey":
                self._rekey(op, session)
            elif op.kind == "merge_element":
                self._merge_element(op, session)
            else:
                raise ValueError(f"unknown write kind {op.kind!r}")
        flush()

    def _refresh(self, coll: Collection[Any], doc_id: Any, session: ClientSession | None) -> bool:
        """Make document `doc_id` what the source holds now; False without a way to read it.

        Later changes replay onto it in order, each setting what it changed, so the document
        converges as it does for a snapshot chunk read at a newer point."""
        if self._current is None:
            return False
        document = self._current(coll.name, doc_id)
        if document is None:
            coll.delete_one({"_id": doc_id}, session=session)
        else:
            coll.replace_one(
                {"_id": doc_id}, document, upsert=True, session=session, bypass_document_validation=True
            )
        return True

    def _rekey(self, op: WriteOp, session: ClientSession | None) -> None:
        coll = self._coll(op.collection)
        new_id = op.extra["new_id"]
        doc = coll.find_one(op.filter, session=session)
        if doc is None and self._refresh(coll, new_id, session):
            return  # the old document is not stored: what it carried over comes from the source
        if doc is None:
            update: dict[str, Any] = {"$setOnInsert": op.extra["defaults"] or {}}
            if op.extra["set"]:
                update["$set"] = op.extra["set"]
            coll.update_one(
                {"_id": new_id}, update, upsert=True, session=session, bypass_document_validation=True
            )
            return
        coll.delete_one(op.filter, session=session)
        doc.update(op.extra["set"])
        doc["_id"] = new_id
        existing = coll.find_one({"_id": new_id}, session=session)
        if existing is not None:
            # A replay: the document moved here already, and this copy may lack what only the
            # later one holds (an unchanged TOASTed value the replayed changes never carried).
            doc = {**existing, **doc}
        coll.replace_one({"_id": new_id}, doc, upsert=True, session=session, bypass_document_validation=True)

    def _merge_element(self, op: WriteOp, session: ClientSession | None) -> None:
        """An element change carrying unchanged TOASTed values: read the stored element, keep
        its unchanged fields, and write it where it now belongs."""
        extra = op.extra
        coll = self._coll(op.collection)
        match, as_ = extra["match"], extra["as"]
        if extra["old_parent_known"] and extra["old"] is not None:
            old_loc = extra["old"]
            doc = coll.find_one(old_loc.filter, session=session)
            containers = _containers(doc, old_loc.child(as_), old_loc.array_filters) if doc else []
            pull: Any = WriteOp(op.collection, "update", old_loc.filter, None, old_loc.array_filters)
        else:
            global_op: WriteOp = extra["old_global"]
            doc = coll.find_one(global_op.filter, session=session)
            path = next(iter(global_op.update.get("$pull", global_op.update.get("$set", {}))))
            containers = _containers(doc, path, ()) if doc else []
            pull = global_op
        old_element = _find_element(containers, match)
        new_loc = extra["new"]
        if old_element is None:
            # Not where the old row was: its parent's key changed (the parent document moved with
            # its elements, and the cascaded child change still names the old parent), or this is
            # a replay onto a document that already holds the change. Then it is in the new parent,
            # under its old key or, replayed, under its new one.
            new_key = {k: extra["set"].get(k, v) for k, v in match.items()}
            doc = coll.find_one(new_loc.filter, session=session)
            containers = _containers(doc, new_loc.child(as_), new_loc.array_filters) if doc else []
            old_element = _find_element(containers, match) or _find_element(containers, new_key)
            if old_element is None and doc is not None and self._refresh(coll, doc["_id"], session):
                # Stored nowhere: the new parent's document is read again from the source rather
                # than given an element without its unchanged values and its own arrays.
                return
        # The stored element's field order (the snapshot's: fields, then embedded arrays).
        if old_element is not None:
            merged = {**old_element, **extra["set"]}
            for name, empty in extra["defaults"].items():
                merged.setdefault(name, empty)
        else:
            merged = {**extra["set"], **extra["defaults"]}
        target = new_loc.child(as_)
        writes: list[WriteOp] = []
        if pull.kind == "update":
            old_target = extra["old"].child(as_)
            update = {"$pull": {old_target: match}} if extra["many"] else {"$set": {old_target: None}}
            writes.append(WriteOp(op.collection, "update", pull.filter, update, pull.array_filters))
        else:
            writes.append(pull)
        if extra["many"]:
            new_match = {k: merged.get(k) for k in match}
            writes.append(
                WriteOp(
                    op.collection,
                    "update",
                    new_loc.filter,
                    {"$pull": {target: new_match}},
                    new_loc.array_filters,
                )
            )
            writes.append(
                WriteOp(
                    op.collection,
                    "update",
                    new_loc.filter,
                    {"$push": {target: {"$each": [merged], "$sort": extra["sort"]}}},
                    new_loc.array_filters,
                )
            )
        else:
            writes.append(
                WriteOp(
                    op.collection, "update", new_loc.filter, {"$set": {target: merged}}, new_loc.array_filters
                )
            )
        self._execute(writes, session)
