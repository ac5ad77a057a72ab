"""A plan's collections resolved against the source schema: the exact fields of every document.

Resolution turns 'default every column' into a concrete field list, checks every
named column exists with a compatible type, and reports each problem as a Finding
that names the table, the column and the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from migrator.adapters.base import ColumnInfo, ForeignKey, JoinHop, SourceInfo, TableInfo
from migrator.adapters.vocabulary import ARRAY_ID_REFUSED, DOCUMENT_ID_ROLE, TargetVocabulary
from migrator.findings import Finding, Severity
from migrator.mapping.types import CASTS, Cast, Conversion, cast_forward, conversion_for
from migrator.plan.models import Collection, Embed

# Types that compare equal across a join; an `on` pair from different families
# would silently match nothing.
_FAMILIES = {
    "smallint": "int",
    "integer": "int",
    "bigint": "int",
    "bigint unsigned": "int",
    "numeric": "int",
    "text": "text",
    "character varying": "text",
    "character": "text",
    "name": "text",
    "citext": "text",
}


_JSON_TYPES = frozenset({"json", "jsonb"})
_MILLISECOND_TYPES = frozenset({"timestamp with time zone", "timestamp without time zone"})


def _element_or_type(column: ColumnInfo) -> str:
    return (column.element_type or "") if column.type_kind == "array" else column.type_name


def _key_problem(column: ColumnInfo, *, compound: bool, array_key: str = ARRAY_ID_REFUSED) -> str | None:
    """Why `column` cannot be (part of) a document _id, or None when it can; `array_key` says why
    an array alone cannot, in the target's words."""
    conversion = conversion_for(column)
    if not conversion.supported:
        return str(conversion.refused).split(":")[0]  # what follows is the fix for a field
    if _element_or_type(column) in _JSON_TYPES:
        return (
            "a JSON value may be an array or hold names that start with '$', which MongoDB refuses in an "
            "_id, and its numbers need not read back exactly"
        )
    if column.type_kind == "array" and not compound:
        return array_key
    if column.type_kind == "array" and _element_or_type(column) in _MILLISECOND_TYPES:
        return "its elements become BSON dates of milliseconds, so an _id could not name its source row"
    return None


def _other_primary_key(table: TableInfo, key: tuple[str, ...]) -> str:
    """The fix for a `tables:` entry (keyed by the primary key, no `key:` to choose another) whose
    primary key cannot key its rows: a primary key that can, the old one kept unique."""
    names = {c.name for c in table.columns}
    column = next(n for n in ("doc_id", "row_id", "migrator_id") if n not in names)
    constraint = table.primary_key_name or f"{table.name.rpartition('.')[2]}_pkey"
    return (
        f"give {table.name} a primary key that can: ALTER TABLE {table.name} DROP CONSTRAINT {constraint}, "
        f"ADD COLUMN {column} bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ADD UNIQUE ({', '.join(key)})"
    )


@dataclass(frozen=True)
class FieldMapping:
    name: str  # target field
    column: ColumnInfo
    conversion: Conversion
    # The plan's `types` for the column, where it gives one: its values become the cast's (the
    # readers and change streams deliver the column's own; the mapping converts, so snapshot,
    # change capture and verify give one document). `forward` applies it, stopping on a value
    # the cast cannot carry.
    cast: Cast | None = None
    forward: Callable[[Any], Any] | None = None

    @property
    def plan_type(self) -> str | None:
        """The plan's `types` name for the column (adapters/mapped.py), None where it gives none."""
        return None if self.cast is None else self.cast.name


@dataclass(frozen=True)
class DocumentMapping:
    """One level of a document: top-level collection or embedded child."""

    table: str
    key: tuple[str, ...]
    fields: tuple[FieldMapping, ...]
    embeds: tuple[EmbedMapping, ...] = ()
    table_columns: tuple[ColumnInfo, ...] = ()  # every column of the table, for keys and links

    @property
    def all_columns(self) -> tuple[ColumnInfo, ...]:
        return self.table_columns

    def shape(self) -> dict[str, Any]:
        """The document's shape with BSON type names as values, for display."""
        out: dict[str, Any] = {
            f.name: f.conversion.bson + (" | null" if f.column.nullable else "") for f in self.fields
        }
        for embed in self.embeds:
            child = embed.child.shape()
            # many: false gives one sub-document or null, shown as the sub-document's shape.
            out[embed.as_] = [child] if embed.many else child
        return out

    def row_overhead(self) -> int:
        """BSON bytes a document of this level spends beyond its values: names, types, terminators."""
        names = sum(len(f.name) + 2 for f in self.fields) + sum(len(e.as_) + 2 for e in self.embeds)
        return names + 5 + 8  # document header and terminator, plus an array index key


@dataclass(frozen=True)
class EmbedMapping:
    as_: str
    many: bool
    on: tuple[tuple[str, str], ...]  # (child column, parent column)
    order_by: tuple[str, ...]
    child: DocumentMapping
    # A lookup: the parent holds the link (its `on` columns are no unique key of the parent) to
    # one child row (the child's `on` columns are a unique key): many parents may embed one row.
    # Otherwise the child holds the link and a child row belongs to at most one parent (owner).
    lookup: bool = False
    # An enforced foreign key leads from the child's `on` columns to the parent's: a child row
    # can reference a parent that does not exist only inside one source transaction.
    foreign_key: bool = False


# How a level sits in its parent: the root document; an array of elements (many: true); one
# sub-document the child's rows hold the link to (many: false); a lookup, one row the parent's
# link names, which many documents may embed (docs/architecture.md, "Embeds: owner and lookup").
LevelKind = Literal["root", "many", "one", "lookup"]


@dataclass(frozen=True)
class Level:
    """One level of a collection's documents: the root table's row, or an embedded table's rows
    under their parent. `CollectionMapping.levels` lists them depth first in the plan's order of
    embeds, a parent before its children, so a level's index is always above its parent's."""

    index: int
    parent: int  # index of the parent level; -1 for the root
    document: DocumentMapping  # this level's table, key, fields and embeds
    embed: EmbedMapping | None  # how it is embedded in its parent; None for the root
    path: tuple[str, ...]  # the field names from the document down to this level; () for the root
    hops: tuple[JoinHop, ...]  # the joins from the root table down to this level's table
    children: tuple[int, ...]  # indexes of the levels embedded here, in `document.embeds` order

    @property
    def table(self) -> str:
        return self.document.table

    @property
    def key(self) -> tuple[str, ...]:
        """The columns that identify a row: the document _id's at the root, else the element key."""
        return self.document.key

    @property
    def depth(self) -> int:
        return len(self.path)

    @property
    def link(self) -> tuple[str, ...]:
        """This level's columns that link it to its parent, in `on` order; () for the root."""
        return tuple(c for c, _ in self.embed.on) if self.embed is not None else ()

    @property
    def parent_link(self) -> tuple[str, ...]:
        """The parent's columns that `link` matches, in `on` order; () for the root."""
        return tuple(p for _, p in self.embed.on) if self.embed is not None else ()

    @property
    def kind(self) -> LevelKind:
        if self.embed is None:
            return "root"
        if self.embed.lookup:
            return "lookup"
        return "many" if self.embed.many else "one"


def levels_of(document: DocumentMapping) -> tuple[Level, ...]:
    """The levels of the documents `document` describes, depth first (see Level)."""
    found: list[Level] = []

    def walk(
        doc: DocumentMapping,
        parent: int,
        embed: EmbedMapping | None,
        path: tuple[str, ...],
        hops: tuple[JoinHop, ...],
    ) -> int:
        index = len(found)
        found.append(Level(index, parent, doc, embed, path, hops, ()))  # children below
        children = tuple(
            walk(
                e.child,
                index,
                e,
                (*path, e.as_),
                (*hops, JoinHop(e.child.table, e.on, e.child.row_overhead())),
            )
            for e in doc.embeds
        )
        found[index] = Level(index, parent, doc, embed, path, hops, children)
        return index

    walk(document, -1, None, (), ())
    return tuple(found)


@dataclass(frozen=True)
class CollectionMapping:
    name: str
    document: DocumentMapping

    @property
    def table(self) -> str:
        return self.document.table

    @cached_property
    def levels(self) -> tuple[Level, ...]:
        """The documents' levels, computed once (the mapping is immutable); see Level."""
        return levels_of(self.document)

    def shape(self) -> dict[str, Any]:
        doc = self.document
        id_shape: Any = f"<{doc.key[0]}>" if len(doc.key) == 1 else {k: f"<{k}>" for k in doc.key}
        return {"_id": id_shape, **doc.shape()}

    def join_paths(self) -> list[list[JoinHop]]:
        """Every embed path from the root, for the document-size estimate."""
        return [list(level.hops) for level in self.levels[1:]]

    def tables(self) -> list[str]:
        return [level.table for level in self.levels]


@dataclass
class Resolution:
    collections: list[CollectionMapping] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity is Severity.FAIL for f in self.findings)


def tables_of(collection: Collection) -> list[str]:
    """Every source table a collection reads, top-level first."""
    found = [collection.table]

    def walk(embeds: list[Embed]) -> None:
        for embed in embeds:
            found.append(embed.table)
            walk(embed.embed)

    walk(collection.embed)
    return found


def resolve(
    collections: list[Collection], source: SourceInfo, words: TargetVocabulary | None = None
) -> Resolution:
    """The plan's collections resolved against `source`; `words`, the target's vocabulary, words
    the refusals of keys (a document target's when not given)."""
    result = Resolution()
    for collection in collections:
        mapping = _Resolver(source, result.findings, collection.name, words).collection(collection)
        if mapping is not None:
            result.collections.append(mapping)
    return result


# Why a relation of another kind cannot be a collection's source, and what to map instead:
# logical replication publishes only ordinary (and partitioned) permanent tables.
_NOT_A_TABLE = (
    "logical replication publishes only tables, so its changes could not be followed",
    "map the tables it is made from ('from:' schema.table)",
)
_NOT_TABLES = {
    "a view": (
        "it holds no rows of its own, and logical replication publishes only tables, so no change of "
        "it could be followed",
        "map the tables the view reads ('from:' schema.table), its joins as 'embed'",
    ),
    "a materialized view": (
        "logical replication does not publish it (REFRESH rewrites it without row changes)",
        "map the tables it is computed from ('from:' schema.table)",
    ),
    "a foreign table": (
        "its rows live on another server, and their changes never reach this server's WAL",
        "migrate it from the server that holds its rows",
    ),
    "a temporary table": (
        "only the session that created it can read it, it is gone when that session ends, and logical "
        "replication does not publish it",
        "if its rows must be migrated, keep them in an ordinary table (CREATE TABLE ... (LIKE ...)) and map that",
    ),
}


class _Resolver:
    def __init__(
        self,
        source: SourceInfo,
        findings: list[Finding],
        collection: str,
        words: TargetVocabulary | None = None,
    ) -> None:
        self.source = source
        self.findings = findings
        self.collection_name = collection
        # How a key refusal words the target's key (a document target's when not told).
        self.key_role = DOCUMENT_ID_ROLE if words is None else words.key_role
        self.array_key = ARRAY_ID_REFUSED if words is None else words.array_key

    def fail(self, check: str, subject: str, message: str, fix: str) -> None:
        self.findings.append(Finding(check, Severity.FAIL, subject, message, fix))

    def table(self, name: str) -> TableInfo | None:
        info = self.source.tables.get(name)
        kind = self.source.not_tables.get(name)
        if info is None and kind is not None:
            why, fix = _NOT_TABLES.get(kind, _NOT_A_TABLE)
            self.fail(
                "mapping.table_exists",
                name,
                f"{name} is {kind}, which collection '{self.collection_name}' cannot be migrated from: {why}",
                fix,
            )
        elif info is None:
            self.fail(
                "mapping.table_exists",
                name,
                f"table {name} (collection '{self.collection_name}') does not exist or is not a table",
                "check 'from:' in the plan (schema.table), and that the plan's user can see it",
            )
        return info

    def columns_exist(self, table: TableInfo, columns: tuple[str, ...] | list[str], role: str) -> bool:
        ok = True
        for column in columns:
            if table.column(column) is None:
                ok = False
                known = ", ".join(c.name for c in table.columns)
                self.fail(
                    "mapping.column_exists",
                    f"{table.name}.{column}",
                    f"{role} column '{column}' does not exist in {table.name}",
                    f"use one of: {known}",
                )
        return ok

    def excluded_exist(self, table: TableInfo, exclude: list[str]) -> None:
        """An excluded column that does not exist excludes nothing: harmless (a column dropped
        after the plan was written, or after its run started, must not block the run), and said.
        One whose name is close to a column that would then be migrated is likely a typo that
        would let that column (a password hash) reach the target: refused."""
        names = [c.name for c in table.columns]
        for column in exclude:
            if table.column(column) is not None:
                continue
            meant = [
                n
                for n in difflib.get_close_matches(column, names, n=3, cutoff=0.8)
                + [n for n in names if n.lower() == column.lower()]
                if n not in exclude
            ]
            if meant:
                self.fail(
                    "mapping.column_exists",
                    f"{table.name}.{column}",
                    f"excluded column '{column}' does not exist in {table.name}, and '{meant[0]}', which it may "
                    "mean, would be migrated",
                    f"exclude '{meant[0]}' (or remove '{column}' from 'exclude')",
                )
            else:
                self.findings.append(
                    Finding(
                        "mapping.column_exists",
                        Severity.WARN,
                        f"{table.name}.{column}",
                        f"excluded column '{column}' no longer exists in {table.name} (or never did): it excludes "
                        "nothing, and no document changes",
                        f"remove '{column}' from 'exclude' (accepted on an active run: the documents stay the same)",
                    )
                )

    def collection(self, plan: Collection) -> CollectionMapping | None:
        table = self.table(plan.table)
        if table is None:
            return None
        # No key: a table moved to a table (a postgres target's `tables:`), keyed by its primary key.
        key = plan.key_columns or table.primary_key
        if not key:
            self.fail(
                "mapping.table_key",
                table.name,
                f"{table.name} has no primary key, which the target table '{self.collection_name}' is keyed by",
                _primary_key_fix(table),
            )
            return None
        if not self.columns_exist(table, key, "key"):
            return None
        self.key_is_unique(table, key, "the document _id")
        if not self.key_types(table, key, by_primary_key=not plan.key_columns):
            return None
        document = self.document(
            table, key, plan.fields, plan.exclude, plan.embed, hidden=set(key), root=True, types=plan.types
        )
        return CollectionMapping(plan.name, document) if document is not None else None

    def key_types(self, table: TableInfo, key: tuple[str, ...], *, by_primary_key: bool = False) -> bool:
        """Whether the key's types can form an _id that names its row both ways: MongoDB takes
        it, and verify, repair and the cutover checks find the source row from it (see
        docs/architecture.md, "Keys"). Refuses what cannot, with another key to use."""
        ok = True
        for name in key:
            column = table.column(name)
            assert column is not None
            problem = _key_problem(column, compound=len(key) > 1, array_key=self.array_key)
            if problem is None:
                if _element_or_type(column) in _MILLISECOND_TYPES:
                    self.findings.append(
                        Finding(
                            "mapping.key_precision",
                            Severity.WARN,
                            f"{table.name}.{name}",
                            f"key column {name} ({column.type_name}) becomes a BSON date, which holds milliseconds: "
                            "rows whose keys differ by less than a millisecond would become one document",
                            "check with `migrator run --dry-run` (key collisions), or key by another unique column",
                        )
                    )
                continue
            ok = False
            self.fail(
                "mapping.key_type",
                f"{table.name}.{name}",
                f"key column {name} of type {column.type_name} cannot form "
                f"{self.key_role.format(collection=self.collection_name)}: {problem}",
                _other_primary_key(table, key) if by_primary_key else self._other_key(table, key),
            )
        return ok

    def _other_key(self, table: TableInfo, key: tuple[str, ...]) -> str:
        """The fix for a key that cannot be an _id: another unique key of the table whose types
        can, or a column to add that can."""
        for unique in table.unique_keys:
            columns = [table.column(c) for c in unique]
            if set(unique) != set(key) and all(
                c is not None and _key_problem(c, compound=len(unique) > 1, array_key=self.array_key) is None
                for c in columns
            ):
                listed = unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"
                return (
                    f"key the collection by another unique key of {table.name}: key: {listed} (and make its "
                    f"unique index the replica identity: ALTER TABLE {table.name} REPLICA IDENTITY USING INDEX "
                    "<that index>)"
                )
        names = {c.name for c in table.columns}
        column = next(n for n in ("doc_id", "document_id", "migrator_id") if n not in names)
        # CDC finds a changed row's document by the replica identity, so the new key becomes it.
        index = f"{table.name.rpartition('.')[2]}_{column}_key"[:63]
        return (
            f"give {table.name} a key that can: ALTER TABLE {table.name} ADD COLUMN {column} bigint "
            f"GENERATED ALWAYS AS IDENTITY; CREATE UNIQUE INDEX {index} ON {table.name} ({column}); "
            f"ALTER TABLE {table.name} REPLICA IDENTITY USING INDEX {index}; then key: {column}"
        )

    def element_order(self, table: TableInfo, as_: str, order: tuple[str, ...]) -> None:
        """An array's elements are kept in order (`order`: order_by, then the element key) by
        CDC's `$sort`, which compares the BSON values; the snapshot orders its rows the same way
        in SQL (adapters/postgres/reading.py). Arrays
        and JSON values have no order SQL can give that way (MongoDB sorts an array by its
        smallest element, JSON across types), so they cannot order elements."""
        for name in order:
            column = table.column(name)
            assert column is not None
            if column.type_kind == "array" or column.type_name in _JSON_TYPES:
                others = [
                    c.name
                    for c in table.columns
                    if c.type_kind != "array" and c.type_name not in _JSON_TYPES and c.name not in order
                ]
                self.fail(
                    "mapping.embed_order_type",
                    f"{table.name}.{name}",
                    f"embed '{as_}' orders its elements by {name} ({column.type_name}), whose values have no "
                    "order both databases share",
                    "order (order_by) and key (key) the elements by other columns, e.g. one of: "
                    f"{', '.join(others) or 'none'}; or embed one row per parent (many: false)",
                )

    def key_is_unique(self, table: TableInfo, key: tuple[str, ...], role: str) -> None:
        if not any(set(unique) <= set(key) for unique in table.unique_keys):
            self.fail(
                "mapping.key_unique",
                f"{table.name}({', '.join(key)})",
                f"({', '.join(key)}) is not known to be unique and NOT NULL in {table.name}, but it forms {role}",
                "use the primary key, or add a unique index on NOT NULL columns",
            )

    def document(
        self,
        table: TableInfo,
        key: tuple[str, ...],
        fields: dict[str, str] | None,
        exclude: list[str],
        embeds: list[Embed],
        hidden: set[str],
        root: bool = False,
        types: Mapping[str, str] | None = None,
    ) -> DocumentMapping | None:
        self.excluded_exist(table, exclude)
        casts = self.casts(table, key, hidden, types or {})
        if fields is not None:
            if not self.columns_exist(table, list(fields.values()), "mapped"):
                return None
            pairs = list(fields.items())
        else:
            pairs = [
                (c.name, c.name) for c in table.columns if c.name not in hidden and c.name not in exclude
            ]
        mapped: list[FieldMapping] = []
        for name, column_name in pairs:
            column = table.column(column_name)
            assert column is not None
            conversion = conversion_for(column)
            if not conversion.supported:
                self.fail(
                    "mapping.type_supported",
                    f"{table.name}.{column.name}",
                    f"column {column.name} of type {column.type_name} cannot be migrated: {conversion.refused}",
                    f"add '{column.name}' to 'exclude' of {table.name}",
                )
                continue
            cast = casts.get(column.name)
            if cast is not None:
                forward = cast_forward(cast, table.name, column.name)
                mapped.append(FieldMapping(name, column, cast.conversion, cast, forward))
            else:
                mapped.append(FieldMapping(name, column, conversion))
        children: list[EmbedMapping] = []
        taken = {f.name for f in mapped}
        for embed in embeds:
            if embed.as_ in taken:
                self.fail(
                    "mapping.field_clash",
                    f"{table.name}: {embed.as_}",
                    f"embed '{embed.as_}' has the name of a field of {table.name}",
                    f"rename it with 'as:', or add the column '{embed.as_}' to 'exclude'",
                )
                continue
            child = self.embed(table, embed, mapped, key if root else ())
            if child is not None:
                children.append(child)
        return DocumentMapping(table.name, key, tuple(mapped), tuple(children), table.columns)

    def casts(
        self, table: TableInfo, key: tuple[str, ...], hidden: set[str], types: Mapping[str, str]
    ) -> dict[str, Cast]:
        """The plan's `types` of one level, checked against the table: the column exists, is no key
        or link (the plan refuses the ones it names; an embed's default key is the table's), and
        has a type the cast applies to. Only the casts that pass are returned."""
        found: dict[str, Cast] = {}
        if not self.columns_exist(table, list(types), "'types'"):
            types = {c: t for c, t in types.items() if table.column(c) is not None}
        for name, type_name in types.items():
            column = table.column(name)
            assert column is not None
            cast = CASTS[type_name]
            subject = f"{table.name}.{name}"
            if name in key or name in hidden:
                self.fail(
                    "mapping.type_cast",
                    subject,
                    f"'types' gives {name} the type {type_name}, but {name} keys or links the rows of {table.name}: "
                    "its values must stay as the source holds them",
                    f"remove '{name}' from 'types'",
                )
            elif column.type_kind != "base" or column.type_name not in cast.accepts:
                self.fail(
                    "mapping.type_cast",
                    subject,
                    f"'types' gives {name} the type {type_name}, which applies to columns of type "
                    f"{', '.join(sorted(cast.accepts))}; {name} is {column.native_type or column.type_name}",
                    f"remove '{name}' from 'types'",
                )
            else:
                found[name] = cast
        return found

    def embed(
        self, parent: TableInfo, plan: Embed, parent_fields: list[FieldMapping], root_key: tuple[str, ...]
    ) -> EmbedMapping | None:
        table = self.table(plan.table)
        if table is None:
            return None
        on = tuple(plan.on.items())
        ok = self.columns_exist(table, [c for c, _ in on], "embed 'on' (child)")
        ok = self.columns_exist(parent, [p for _, p in on], "embed 'on' (parent)") and ok
        if not ok:
            return None
        for child_col, parent_col in on:
            self.compatible(table, child_col, parent, parent_col)
        lookup = self.lookup(plan, table, parent, on)
        key = plan.key_columns or table.primary_key
        if not key:
            self.fail(
                "mapping.embed_key",
                table.name,
                f"embed '{plan.as_}': {table.name} has no primary key and the plan gives no 'key'",
                "add 'key:' naming the child's unique columns, or add a primary key",
            )
            return None
        if not self.columns_exist(table, key, "embed key"):
            return None
        self.key_is_unique(table, key, f"the element key of '{plan.as_}'")
        order = plan.order_columns or (key if plan.many else ())
        if not self.columns_exist(table, order, "order_by"):
            return None
        if plan.many:
            self.element_order(table, plan.as_, order + tuple(k for k in key if k not in order))
        hidden = {c for c, _ in on}
        child = self.document(
            table, key, plan.fields, plan.exclude, plan.embed, hidden=hidden, types=plan.types
        )
        if child is None:
            return None
        self.locatable(plan, table, parent, on, key, order, child, parent_fields, root_key, lookup)
        fk = _references(table, parent, on)
        if not lookup:
            self.foreign_key(plan, table, parent, on, fk)
        return EmbedMapping(plan.as_, plan.many, on, order, child, lookup, fk is not None and fk.holds)

    def foreign_key(
        self,
        plan: Embed,
        table: TableInfo,
        parent: TableInfo,
        on: tuple[tuple[str, str], ...],
        fk: ForeignKey | None,
    ) -> None:
        """(info) Whether a foreign key that every row satisfies ties the children to their
        parent: only then can CDC skip reading a new parent's children from the source (they
        can precede it only inside one transaction); NOT VALID and NOT ENFORCED keys do not."""
        link = f"{table.name}({', '.join(c for c, _ in on)})"
        if fk is None:
            said = f"no foreign key leads from {link} to {parent.name}"
        elif fk.holds:
            said = f"{table.name} has {fk.describe()}"
        else:
            said = f"{table.name} has {fk.describe()}, which rows older than it need not satisfy"
        consequence = (
            "a child row can precede its parent only inside one transaction"
            if fk is not None and fk.holds
            else "children may exist before their parent, so CDC reads a new parent's children from the source"
        )
        self.findings.append(
            Finding(
                "mapping.embed_foreign_key",
                Severity.INFO,
                link,
                f"embed '{plan.as_}': {said}: {consequence}",
                "",
            )
        )

    def lookup(
        self, plan: Embed, table: TableInfo, parent: TableInfo, on: tuple[tuple[str, str], ...]
    ) -> bool:
        """Whether the embed is a lookup (the parent holds the link to one child row); fails the
        embeds whose rows could not be placed either way."""
        parent_cols = [p for _, p in on]
        child_cols = [c for c, _ in on]
        if any(set(unique) <= set(parent_cols) for unique in parent.unique_keys):
            return False  # the child holds the link: each child row has at most one parent
        child_unique = any(set(unique) <= set(child_cols) for unique in table.unique_keys)
        parent_link = f"{parent.name}({', '.join(parent_cols)})"
        child_link = f"{table.name}({', '.join(child_cols)})"
        if not plan.many and child_unique:
            self.findings.append(
                Finding(
                    "mapping.embed_lookup",
                    Severity.INFO,
                    parent_link,
                    f"embed '{plan.as_}' is a lookup: {parent_link} names one {child_link} row, which every "
                    f"document naming it embeds; CDC writes a change of that row to each of them, and reads "
                    f"it from the source for a {parent.name} row inserted or re-pointed",
                    "",
                )
            )
            return True
        if plan.many:
            # The snapshot would copy one child row into the arrays of several documents, and
            # a change of it could not say which element of which array it is.
            self.fail(
                "mapping.embed_parent_unique",
                parent_link,
                f"embed '{plan.as_}' (many: true) joins on {parent_link}, which is not a unique NOT NULL key of "
                f"{parent.name}: one {table.name} row could belong in the arrays of several documents",
                f"join on a unique key of {parent.name} (each {table.name} row then belongs to one parent); or, "
                f"if {parent.name} holds a link to one {table.name} row, make it many: false with 'on' naming a "
                f"unique NOT NULL key of {table.name} (a lookup: many documents may embed one row); or migrate "
                f"{table.name} as a collection of its own and keep {', '.join(parent_cols)} as a reference",
            )
        else:
            self.fail(
                "mapping.embed_parent_unique",
                parent_link,
                f"embed '{plan.as_}' joins {parent_link} to {child_link}, and neither is a unique NOT NULL key "
                f"of its table: one document could match several {table.name} rows",
                f"{_unique_fix(table, child_cols)} (then many documents may embed one {table.name} row: a "
                f"lookup); or join on a unique key of {parent.name}",
            )
        return False

    def locatable(
        self,
        plan: Embed,
        table: TableInfo,
        parent: TableInfo,
        on: tuple[tuple[str, str], ...],
        key: tuple[str, ...],
        order: tuple[str, ...],
        child: DocumentMapping,
        parent_fields: list[FieldMapping],
        root_key: tuple[str, ...],
        lookup: bool,
    ) -> None:
        """CDC changes one element in place: it finds the parent by the `on` values and the
        element by its key, and keeps the array ordered with `$sort`. All of that works on the
        documents' fields, so those columns must be fields (the `on` columns are constant
        within one parent and need not be). A lookup's row is found by the parents' link
        fields, in every document and element that holds them."""
        on_child = {c for c, _ in on}
        self._element_fields(plan, table, on_child, key, order, child)
        self._link_in_identity(plan, table, on_child, key, lookup)
        self._link_fields(plan, parent, on, parent_fields, root_key)

    def _element_fields(
        self,
        plan: Embed,
        table: TableInfo,
        on_child: set[str],
        key: tuple[str, ...],
        order: tuple[str, ...],
        child: DocumentMapping,
    ) -> None:
        """The element's key and order_by columns are fields of the sub-document (or links)."""
        fields = {f.column.name for f in child.fields}
        missing_key = [k for k in key if k not in on_child and k not in fields]
        missing_order = [o for o in order if o not in on_child and o not in fields]
        for role, missing in (("key", missing_key), ("order_by", missing_order)):
            if missing:
                self.fail(
                    f"mapping.embed_{role}_fields",
                    f"{table.name}({', '.join(missing)})",
                    f"embed '{plan.as_}': {role} column(s) {missing} are not fields of the sub-document, so "
                    "changes could not find or order the element",
                    f"map {missing} in 'fields' (or remove them from 'exclude')",
                )

    def _link_in_identity(
        self, plan: Embed, table: TableInfo, on_child: set[str], key: tuple[str, ...], lookup: bool
    ) -> None:
        """The child's link columns are in its replica identity, so a change says which parent held it."""
        identity = set(table.identity_columns)
        if not on_child <= identity:
            own_key = [k for k in key if k not in on_child]
            severity_fail = lookup or len(own_key) != len(key)
            if lookup:
                consequence = (
                    ", so an update or delete does not say which documents embedded the row: they could "
                    "not be found"
                )
            elif severity_fail:
                consequence = (
                    ", so a change does not say whether the row moved to another parent: its deletes "
                    "could not be placed"
                )
            else:
                consequence = (
                    ", so a change does not say whether the row moved to another parent; each update then "
                    "costs three writes on the target instead of one"
                )
            self.findings.append(
                Finding(
                    "mapping.embed_identity",
                    Severity.FAIL if severity_fail else Severity.WARN,
                    f"{table.name}({', '.join(sorted(on_child))})",
                    f"embed '{plan.as_}': the replica identity of {table.name} ({', '.join(sorted(identity)) or 'none'}) "
                    f"does not include its link ({', '.join(sorted(on_child))})" + consequence,
                    _identity_fix(table, [*sorted(on_child), *own_key]),
                )
            )

    def _link_fields(
        self,
        plan: Embed,
        parent: TableInfo,
        on: tuple[tuple[str, str], ...],
        parent_fields: list[FieldMapping],
        root_key: tuple[str, ...],
    ) -> None:
        """The parent's link columns are fields of the parent (or its root key), so a child's change finds it."""
        parent_cols = [p for _, p in on]
        parent_mapped = {f.column.name for f in parent_fields}
        if not (root_key and set(parent_cols) == set(root_key)) and not set(parent_cols) <= parent_mapped:
            self.fail(
                "mapping.embed_link_fields",
                f"{parent.name}({', '.join(parent_cols)})",
                f"embed '{plan.as_}' joins on {parent_cols}, which are not fields of the parent, so changes "
                "to its rows could not find their parent",
                f"map {parent_cols} as fields of {parent.name}, or join on its key",
            )

    def compatible(self, child: TableInfo, child_col: str, parent: TableInfo, parent_col: str) -> None:
        a, b = child.column(child_col), parent.column(parent_col)
        assert a is not None and b is not None
        if a.type_name == b.type_name:
            return
        fa, fb = _FAMILIES.get(a.type_name), _FAMILIES.get(b.type_name)
        if fa is None or fa != fb:
            self.fail(
                "mapping.on_types",
                f"{child.name}.{child_col} -> {parent.name}.{parent_col}",
                f"embed join compares {a.type_name} with {b.type_name}",
                "join columns must have the same type (or both integers, or both text)",
            )


def _identity_fix(table: TableInfo, columns: list[str]) -> str:
    """Statements PostgreSQL accepts that put `columns` into the replica identity of `table`
    (tested in tests/integration/test_source_features.py). USING INDEX needs NOT NULL columns; a
    partitioned table's identity is per partition, and a partition's index has a name of its own,
    so there each partition gets FULL (docs/architecture.md, "Partitioned tables")."""
    if table.kind == "partitioned":
        return " ".join(f"ALTER TABLE {leaf.name} REPLICA IDENTITY FULL;" for leaf in table.leaves) + (
            " (and on each partition created later, which takes the default identity)"
        )
    index = f"{table.name.rpartition('.')[2][:42]}_replica_identity"
    nullable = [c for c in columns if (info := table.column(c)) is not None and info.nullable]
    statements = [f"ALTER TABLE {table.name} ALTER {c} SET NOT NULL;" for c in nullable]
    statements.append(f"CREATE UNIQUE INDEX CONCURRENTLY {index} ON {table.name} ({', '.join(columns)});")
    statements.append(f"ALTER TABLE {table.name} REPLICA IDENTITY USING INDEX {index};")
    return " ".join(statements) + f" or ALTER TABLE {table.name} REPLICA IDENTITY FULL;"


def _unique_fix(table: TableInfo, columns: list[str]) -> str:
    """Statements PostgreSQL accepts that make `columns` a unique NOT NULL key of `table`
    (tested in tests/integration/test_cdc_lookup.py), where its rows allow it."""
    index = f"{table.name.rpartition('.')[2][:30]}_{'_'.join(columns)[:28]}_key"
    nullable = [c for c in columns if (info := table.column(c)) is not None and info.nullable]
    statements = [f"ALTER TABLE {table.name} ALTER {c} SET NOT NULL;" for c in nullable]
    statements.append(f"CREATE UNIQUE INDEX CONCURRENTLY {index} ON {table.name} ({', '.join(columns)});")
    return " ".join(statements)


def _references(child: TableInfo, parent: TableInfo, on: tuple[tuple[str, str], ...]) -> ForeignKey | None:
    """The foreign key of `child` that leads from exactly its `on` columns to the parent's, if
    any (whether it holds for every row is the caller's question: ForeignKey.holds)."""
    pairs = set(on)
    for fk in child.foreign_keys:
        # The inspector names the referenced table with its schema; a bare name (an older record)
        # is taken as public, the default search_path.
        referenced = fk.referenced_table if "." in fk.referenced_table else f"public.{fk.referenced_table}"
        if referenced == parent.name and set(zip(fk.columns, fk.referenced_columns, strict=True)) == pairs:
            return fk
    return None


def _primary_key_fix(table: TableInfo) -> str:
    """A primary key the database accepts for `table`: over a unique key of NOT NULL columns where
    it has one, else a surrogate identity column, which rows without any key (duplicates) take
    too. Either becomes the default replica identity, which CDC finds rows by."""
    names = {c.name for c in table.columns}
    column = next(n for n in ("id", "row_id", "migrator_id") if n not in names)
    surrogate = (
        f"ALTER TABLE {table.name} ADD COLUMN {column} bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    )
    if table.unique_keys:
        listed = ", ".join(table.unique_keys[0])
        return (
            f"add a primary key to {table.name}: ALTER TABLE {table.name} ADD PRIMARY KEY ({listed}) "
            f"(its unique key), or a new key column: {surrogate}"
        )
    return f"add a primary key to {table.name}: {surrogate} (or ADD PRIMARY KEY over columns that are unique)"
