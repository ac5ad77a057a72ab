"""DualWrite: the plan's mapping bound to both databases, for the application.

- `mirror(collection, ids)`: copy documents from PostgreSQL (read through the mapping) to
  MongoDB now: replace each, or delete it where the source has no such row.
- `mirrored(collection, keys)`: a decorator for a function that writes to PostgreSQL (and
  commits): after it returns, the keys `keys(*args, **kwargs)` names are mirrored.
- `install(session_or_factory)`: the same for SQLAlchemy sessions, on commit (sessions.py).
- `shadow_read(primary, ...)`: run the application's read and return its answer; compare the
  documents it is about on both sides, off the answer's path.

A mirror reads the source, writes the target, and reads the source again: if another
transaction changed the document in between, it is written again (a few rounds). Whichever of
two concurrent mirrors writes last has read a source state at least as new as the other's, so
the target converges on the source's latest state.

Nothing here raises into the application once its own work is done: mismatches and failures go
to the Reporter; `migrator verify --repair` (or a later mirror) fixes what a failed mirror left.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import bson
from bson.raw_bson import RawBSONDocument

from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.mongodb.codec import CODEC
from migrator.adapters.postgres import PostgresSource
from migrator.dualwrite.report import DUAL_WRITE, SHADOW_READ, LoggingReporter, Mismatch, Reporter
from migrator.errors import PreflightFailed
from migrator.mapping import compare
from migrator.mapping.affected import Affected, AffectedDocuments, DocumentId, Row
from migrator.mapping.lookup import Keys, MappedDocuments, difference, json_id
from migrator.mapping.spec import CollectionMapping, resolve, tables_of
from migrator.plan import Plan, load_plan

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

# Rounds of read-write-read per mirror before the document is reported as unsettled.
MIRROR_ROUNDS = 3


class DualWrite:
    """Open with `DualWrite.open(plan)`; close when the application stops (or use `with`)."""

    def __init__(
        self,
        collections: Sequence[CollectionMapping],
        source_url: str,
        target: MongoTarget,
        reporter: Reporter | None = None,
    ) -> None:
        self.reporter: Reporter = reporter if reporter is not None else LoggingReporter()
        self.collections = list(collections)
        self._target = target
        source = PostgresSource(source_url)
        self._documents = MappedDocuments(self.collections, source, target)
        # Rows from an application carry what it loaded; no column is promised (identity {}).
        self._affected = AffectedDocuments(self.collections, {})
        self._tables = {table for c in self.collections for table in c.tables()}
        self._hook: Any = None

    @classmethod
    def open(
        cls,
        plan: Plan | str | os.PathLike[str],
        *,
        env: Mapping[str, str] | None = None,
        reporter: Reporter | None = None,
    ) -> DualWrite:
        """Load the plan (a path: ${VARS} from `env`, default the environment), read the
        source's schema and resolve the mapping, as `migrator plan` does (without its other
        checks)."""
        loaded = plan if isinstance(plan, Plan) else load_plan(Path(plan), env=env)
        source_url = loaded.source.url.get_secret_value()
        with PostgresSource(source_url) as source:
            tables = [t for c in loaded.collections for t in tables_of(c)]
            info = source.inspect(list(dict.fromkeys(tables)))
        resolution = resolve(list(loaded.collections), info)
        if not resolution.ok:
            raise PreflightFailed([f"{f.check} {f.subject}: {f.message}" for f in resolution.findings])
        target = MongoTarget(loaded.target.url.get_secret_value(), loaded.target.database)
        return cls(resolution.collections, source_url, target, reporter)

    @property
    def tables(self) -> set[str]:
        """The source tables the plan maps (schema.table)."""
        return set(self._tables)

    # -- dual writes -------------------------------------------------------------------------------

    def mirror(self, collection: str, ids: Iterable[Any]) -> int:
        """Make these documents in the target what the source holds now; returns how many
        were written (replaced or deleted). Failures go to the reporter."""
        keys = Keys(ids={compare.id_key(i): i for i in ids})
        return self._mirror({collection: keys}) if keys else 0

    def mirror_changes(self, changes: Iterable[tuple[str, Row | None, Row | None]]) -> int:
        """Mirror the documents that row changes touched: (table 'schema.table', old row or
        None for an insert, new row or None for a delete), rows as column -> value; an old row
        with its old `on` values lets a child that moved name its old parent too."""
        return self.mirror_refs(self.affected(changes))

    def affected(self, changes: Iterable[tuple[str, Row | None, Row | None]]) -> list[Affected]:
        """The documents row changes touch, as references (resolved when mirrored)."""
        refs: list[Affected] = []
        for table, old, new in changes:
            if new is None:
                if old is not None:
                    refs.extend(self._affected.delete(table, old))
            elif old is None:
                refs.extend(self._affected.insert(table, new))
            else:
                refs.extend(self._affected.update(table, old, new))
        return refs

    def mirror_refs(self, refs: Sequence[Affected]) -> int:
        if not refs:
            return 0
        try:
            resolved = self._documents.resolve(refs)
        except Exception as exc:  # noqa: BLE001 - the application's write stands; reported
            for collection in sorted({r.collection for r in refs}):
                self.reporter.failure(DUAL_WRITE, collection, exc)
            return 0
        return self._mirror(resolved)

    def _mirror(self, resolved: Mapping[str, Keys]) -> int:
        written = 0
        for collection, keys in resolved.items():
            if not keys:
                continue
            try:
                written += self._mirror_collection(collection, keys)
            except Exception as exc:  # noqa: BLE001 - the application's write stands; reported
                self.reporter.failure(DUAL_WRITE, collection, exc)
        return written

    def _mirror_collection(self, collection: str, keys: Keys) -> int:
        docs = self._documents
        texts = [docs.key_texts(collection, i) for i in keys.ids.values()] + list(keys.texts)
        typed = {compare.id_key(i): i for i in docs.typed_ids(collection, texts)}
        remaining = list(typed.values())
        written = 0
        for _ in range(MIRROR_ROUNDS):
            wanted = [docs.key_texts(collection, i) for i in remaining]
            _, first = docs.read_source(collection, wanted)
            for doc_id in remaining:
                found = first.get(compare.id_key(doc_id))
                if found is None:
                    docs.delete(collection, doc_id)
                else:
                    docs.replace(collection, doc_id, found[1])
                written += 1
            _, second = docs.read_source(collection, wanted)
            remaining = [
                doc_id
                for doc_id in remaining
                if not _same(first.get(compare.id_key(doc_id)), second.get(compare.id_key(doc_id)))
            ]
            if not remaining:
                break
        for doc_id in remaining:
            self.reporter.mismatch(
                Mismatch(
                    DUAL_WRITE,
                    collection,
                    json_id(doc_id),
                    "unsettled",
                    detail=f"the source changed during each of {MIRROR_ROUNDS} mirror rounds; "
                    "a later mirror or `migrator verify --repair` settles it",
                )
            )
        self.reporter.checked(DUAL_WRITE, collection, len(typed))
        return written

    def mirrored(
        self, collection: str, keys: Callable[P, Iterable[Any]]
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a function that writes to PostgreSQL and commits: after it returns, the
        documents `keys(*args, **kwargs)` names (_ids of `collection`) are mirrored. If it
        raises, nothing is mirrored and the exception is the caller's."""

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            @functools.wraps(fn)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                result = fn(*args, **kwargs)
                try:
                    ids = list(keys(*args, **kwargs))
                except Exception as exc:  # noqa: BLE001 - the write stands; reported
                    self.reporter.failure(DUAL_WRITE, collection, exc)
                    return result
                self.mirror(collection, ids)
                return result

            return wrapper

        return decorate

    def install(self, target: Any) -> None:
        """Mirror what SQLAlchemy sessions commit: `target` is a Session, a sessionmaker or
        the Session class (see migrator/dualwrite/sessions.py)."""
        if self._hook is None:
            self._hook = session_mirror()(self)
        self._hook.install(target)

    def touch(self, session: Any, collection: str, ids: Iterable[Any]) -> None:
        """Mirror these documents when `session` commits: for writes the session's unit of work
        does not see (Core or text statements, bulk updates)."""
        session_mirror().touch(session, [DocumentId(collection, i) for i in ids])

    # -- shadow reads ------------------------------------------------------------------------------

    def shadow_read(
        self,
        primary: Callable[[], T],
        *,
        collection: str,
        ids: Iterable[Any] | Callable[[T], Iterable[Any]],
        shadow: Callable[[], Iterable[Mapping[str, Any]]] | None = None,
    ) -> T:
        """Return `primary()`'s answer (its exceptions are the caller's); then compare the
        documents of `collection` with these _ids (or `ids(answer)`) on both sides: the source's
        through the mapping against the target's (or the documents `shadow()`, the
        application's own read of the target, returns). Differences and failures go to the
        reporter, never to the caller."""
        answer = primary()
        try:
            wanted = list(ids(answer) if callable(ids) else ids)
            self._shadow_compare(collection, wanted, shadow)
        except Exception as exc:  # noqa: BLE001 - the primary's answer stands; reported
            self.reporter.failure(SHADOW_READ, collection, exc)
        return answer

    def _shadow_compare(
        self,
        collection: str,
        wanted: list[Any],
        shadow: Callable[[], Iterable[Mapping[str, Any]]] | None,
    ) -> None:
        docs = self._documents
        typed = {
            compare.id_key(i): i
            for i in docs.typed_ids(collection, [docs.key_texts(collection, i) for i in wanted])
        }

        def look(ids: dict[bytes, Any]) -> tuple[dict[bytes, Any], dict[bytes, bytes], dict[bytes, bytes]]:
            if shadow is None:
                seen = docs.look(collection, Keys(ids=dict(ids)))
                return seen.ids, seen.expected, seen.actual
            actual: dict[bytes, bytes] = {}
            all_ids = dict(ids)
            for document in shadow():
                k = compare.id_key(document["_id"])
                all_ids.setdefault(k, document["_id"])
                actual[k] = _raw(document)
            _, source = docs.read_source(
                collection, [docs.key_texts(collection, i) for i in all_ids.values()]
            )
            for k, (doc_id, _) in source.items():
                all_ids.setdefault(k, doc_id)
            return all_ids, {k: raw for k, (_, raw) in source.items()}, actual

        ids, expected, actual = look(typed)
        differing = {k: ids[k] for k in ids if not _same(expected.get(k), actual.get(k))}
        if differing:
            # A write between the two reads makes them differ for a moment: look again, and
            # report only what still differs on a source that did not change meanwhile.
            _, again_expected, again_actual = look(differing if shadow is None else typed)
            for k, doc_id in differing.items():
                if not _same(expected.get(k), again_expected.get(k)):
                    continue  # the source changed: neither look is the one to judge by
                if _same(again_expected.get(k), again_actual.get(k)):
                    continue
                kind, diffs = difference(again_expected.get(k), again_actual.get(k))
                self.reporter.mismatch(Mismatch(SHADOW_READ, collection, json_id(doc_id), kind, diffs))
        self.reporter.checked(SHADOW_READ, collection, len(ids))

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        self._documents.close()
        self._target.close()

    def __enter__(self) -> DualWrite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _same(a: Any, b: Any) -> bool:
    """Two looks at one document (raw BSON, or (_id, raw) pairs): equal, or both absent."""
    if isinstance(a, tuple):
        a = a[1]
    if isinstance(b, tuple):
        b = b[1]
    if a is None or b is None:
        return a is None and b is None
    return compare.equal(a, b)


def _raw(document: Mapping[str, Any]) -> bytes:
    if isinstance(document, RawBSONDocument):
        return bytes(document.raw)
    return bson.encode(document, codec_options=CODEC)


def session_mirror() -> Any:
    """The SQLAlchemy session hooks' class, imported only when an application uses them: SQLAlchemy
    is the `dualwrite` extra's, not a dependency of the CLI or the engine."""
    try:
        from migrator.dualwrite.sessions import SessionMirror
    except ModuleNotFoundError as exc:
        if exc.name != "sqlalchemy":
            raise
        raise ModuleNotFoundError(
            "DualWrite.install and DualWrite.touch need SQLAlchemy: pip install 'migrator-cdc[dualwrite]'",
            name="sqlalchemy",
        ) from exc
    return SessionMirror
