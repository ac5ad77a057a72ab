"""Secondary indexes and constraints built after the copy (docs/architecture.md, "After the
copy"): a source that reads them (`PostCopySource`) and a target that turns them into its DDL
(`PostCopyTarget`), in waves: indexes, unique, check and exclusion constraints first, foreign keys
once those exist (what they reference). Optional, as runtime-checkable protocols: a source or
target without them builds nothing after the copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable


@dataclass(frozen=True)
class SchemaObject:
    """A secondary index or a constraint of a source table, in the source's own dialect."""

    dialect: str  # whose SQL `definition` is ("postgresql")
    kind: Literal["index", "constraint", "foreign_key"]
    table: str  # the source table, schema.table
    name: str
    definition: str  # an index: its definition after "ON table "; a constraint: after "ADD CONSTRAINT name "
    unique: bool = False  # an index: CREATE UNIQUE INDEX
    columns: tuple[str, ...] = ()  # the table's columns it reads
    references: str | None = None  # a foreign key: the table it references (schema.table)
    referenced_columns: tuple[str, ...] = ()
    reference_text: str = ""  # how `definition` names the referenced table
    # Objects of the source database it calls (user-defined functions, operators, collations,
    # operator classes, as pg_describe_object names them), which the target may lack.
    calls: tuple[str, ...] = ()


@dataclass(frozen=True)
class PostCopyStatement:
    """One statement the target runs after the copy; `wave` 0 before 1. `table` and `name` let
    the target find it done (a resumed run builds only what is missing)."""

    wave: int
    table: str  # the target table
    name: str
    kind: Literal["index", "constraint", "foreign_key", "primary_key"]
    sql: str
    # A foreign key: the target table it references. Its first wave built, and its own table's,
    # the key is built while other tables still copy (phases/post_copy.py); None: after the copy.
    references: str | None = None


@dataclass(frozen=True)
class PostCopy:
    statements: tuple[PostCopyStatement, ...] = ()
    skipped: tuple[tuple[SchemaObject, str], ...] = ()  # (object, why it is not built)


@runtime_checkable
class PostCopySource(Protocol):
    def schema_objects(self, tables: Sequence[str]) -> list[SchemaObject]:
        """The secondary indexes and constraints of `tables` (not their primary keys)."""
        ...


@runtime_checkable
class PostCopyTarget(Protocol):
    def post_copy(
        self, objects: Sequence[SchemaObject], targets: Mapping[str, tuple[str, Mapping[str, str]]]
    ) -> PostCopy:
        """The statements that build `objects` on the target; `targets` maps each copied source
        table to its target table and its columns (source name -> target name)."""
        ...

    def build_post_copy(self, statement: PostCopyStatement) -> bool:
        """Run `statement` unless what it builds exists; whether it ran."""
        ...


@runtime_checkable
class KeysAfterCopyTarget(Protocol):
    """A target whose tables are created without their primary keys, which it adds after the copy
    (a key maintained row by row makes the copy several times slower; docs/architecture.md, "After
    the copy"): statements of kind "primary_key" in wave 0, run by `build_post_copy`. The snapshot
    runs a collection's first where its rows are written by key (the document path)."""

    def primary_keys(self, tables: Sequence[tuple[str, Sequence[str]]]) -> list[PostCopyStatement]:
        """The statements that add each target table's primary key, `tables` as (target table, key
        columns)."""
        ...
