"""Helpers for tests that run a migration and read its documents back.

`Migration` bundles one test's source database, target database, plan directory and state
file: write SQL, write a plan, run it through `migrator.api.run` exactly as an application
would, and read the target with pymongo. `typed` turns a decoded BSON value into a structure
that carries each value's BSON type and each document's key order, so that an assertion
tells an int32 from an int64, a date from a string, and {"b", "a"} from {"a", "b"}.
"""

from __future__ import annotations

import datetime
import textwrap
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import bson
import psycopg
import pymongo
from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument

from migrator import api
from migrator.engine.events import Collector, EventSink
from migrator.operations.run import RunOutcome
from migrator.plan.names import legacy_slot_name
from migrator.state import SQLiteStateStore

UTC = datetime.UTC


def typed(value: Any) -> Any:
    """A comparable form of a decoded BSON value: (BSON type, value), recursively, keys in order."""
    if isinstance(value, dict):
        return ("object", [(k, typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("array", [typed(v) for v in value])
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, Int64):
        return ("long", int(value))
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("double", repr(value))  # repr: NaN equals NaN, -0.0 differs from 0.0
    if isinstance(value, Decimal128):
        return ("decimal", str(value))  # str keeps the scale: 1.10 differs from 1.1
    if isinstance(value, datetime.datetime):
        assert value.tzinfo is not None, "read the target with tz_aware=True"
        return ("date", value.astimezone(UTC).isoformat())
    if isinstance(value, uuid.UUID):
        return ("uuid", str(value))  # only subtype 4 decodes to UUID with uuidRepresentation=standard
    if isinstance(value, Binary):
        return (f"binData/{value.subtype}", bytes(value))
    if isinstance(value, bytes):
        return ("binData/0", value)
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null", None)
    raise TypeError(f"no BSON type for {type(value).__name__}: {value!r}")


def run_slot(state: Path, plan_name: str) -> str:
    """The replication slot of the plan's latest run in the state file `state` (its name carries
    the run: plan/names.py); before any run, the plan-named slot that no run of today creates."""
    if state.exists():
        with SQLiteStateStore(state) as store:
            runs = store.runs(plan_name)
            if runs:
                return runs[-1].slot
    return legacy_slot_name(plan_name)


def id_order(document: dict[str, Any]) -> bytes:
    """A total order on documents by _id whatever its type (int, str, compound)."""
    return bson.encode({"k": document["_id"]})


def sorted_documents(documents: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(documents, key=id_order)


@dataclass
class Migration:
    """One test's source database, target database, plan directory and state file."""

    pg_url: str
    mongo_url: str
    database: str
    tmp_path: Path
    state_path: Path
    _client: pymongo.MongoClient[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def env(self) -> dict[str, str]:
        return {
            "MIGRATOR_SOURCE_URL": self.pg_url,
            "MIGRATOR_TARGET_URL": self.mongo_url,
            "MIGRATOR_TARGET_DB": self.database,
        }

    # -- source --------------------------------------------------------------------------------

    def sql(self, *statements: str) -> None:
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            conn.execute("SET TimeZone = 'UTC'")
            return list(conn.execute(query, list(params)).fetchall())

    def slot(self, plan_name: str) -> str:
        """The replication slot of the plan's latest run in this test's state file."""
        return run_slot(self.state_path, plan_name)

    def slots(self) -> list[tuple[str, str]]:
        """(slot name, confirmed_flush_lsn) of this database's replication slots."""
        return [
            (str(name), str(lsn))
            for name, lsn in self.rows(
                "SELECT slot_name, confirmed_flush_lsn::text FROM pg_replication_slots"
                " WHERE database = current_database() ORDER BY slot_name"
            )
        ]

    # -- plan and run --------------------------------------------------------------------------

    def plan(self, collections: str, *, name: str, phases: str = "", database: str | None = None) -> Path:
        """Write a plan with these `collections` (YAML list text) and optional `phases` (YAML)."""
        path = self.tmp_path / f"{name}.yaml"
        text = (
            "version: 1\n"
            f"name: {name}\n"
            "source: {adapter: postgres, url: '${MIGRATOR_SOURCE_URL}'}\n"
            "target: {adapter: mongodb, url: '${MIGRATOR_TARGET_URL}', "
            f"database: {database or self.database}}}\n"
            "collections:\n" + textwrap.indent(textwrap.dedent(collections).strip() + "\n", "  ")
        )
        if phases:
            text += "phases:\n" + textwrap.indent(textwrap.dedent(phases).strip() + "\n", "  ")
        path.write_text(text)
        return path

    def run(
        self,
        plan: Path,
        *sinks: EventSink,
        state: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> tuple[RunOutcome, Collector]:
        collector = Collector()
        outcome = api.run(
            plan,
            until="snapshot",
            state=state or self.state_path,
            sinks=[collector, *sinks],
            env={**self.env, **(env or {})},
        )
        return outcome, collector

    # -- target --------------------------------------------------------------------------------

    @property
    def client(self) -> pymongo.MongoClient[dict[str, Any]]:
        if self._client is None:
            self._client = pymongo.MongoClient(
                self.mongo_url, uuidRepresentation="standard", tz_aware=True, serverSelectionTimeoutMS=10_000
            )
        return self._client

    def documents(self, collection: str, database: str | None = None) -> list[dict[str, Any]]:
        """Every document of `collection`, ordered by _id."""
        found = list(self.client[database or self.database][collection].find())
        return sorted_documents(found)

    def raw_documents(self, collection: str, database: str | None = None) -> list[bytes]:
        """Every document's exact BSON bytes (types, key order and all), sorted."""
        options: bson.CodecOptions[RawBSONDocument] = bson.CodecOptions(document_class=RawBSONDocument)
        coll = self.client[database or self.database].get_collection(collection, codec_options=options)
        return sorted(bytes(cast(RawBSONDocument, d).raw) for d in coll.find())

    def by_id(self, collection: str) -> dict[Any, dict[str, Any]]:
        return {_hashable(d["_id"]): d for d in self.documents(collection)}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple((k, _hashable(v)) for k, v in value.items())
    return value
