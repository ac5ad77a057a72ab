"""Documents -> rows: the inverse of a CollectionMapping, for reverse sync after cutover.

For one document this gives the root row (its key from `_id`, compound keys from an `_id`
document of key columns; its columns from the fields) and the rows of every embedded level
(their link columns filled from the parent's values per `on`, their key columns from their
fields or links), as `DocumentRows` that a row store applies (adapters/postgres/reverse_writer.py).

Values go back through the conversion table (mapping/types.py) inverted, so that what is written
equals what the source held:

| document (BSON)               | column                                                      |
|-------------------------------|-------------------------------------------------------------|
| int, long (and integral double or decimal) | smallint, integer, bigint, oid (range-checked) |
| decimal (Decimal128), int, long, double    | numeric, money (exact; NaN and Infinity kept)  |
| double, int, long             | real, double precision                                      |
| string                        | text types, and every type the table converts to its text form (enum, interval, time, inet, ranges, geometric, bit, xml, ...): the text is parsed by the column's input function |
| bool                          | boolean; an integer column `types: {column: bool}` casts: 1/0 |
| date                          | timestamptz; timestamp (the UTC wall clock); date (must be midnight UTC) |
| binData 4 (UUID)              | uuid                                                        |
| binData 0                     | bytea                                                       |
| document / array / scalar     | json, jsonb (JSON values only: no dates, binaries, ...)     |
| array                         | arrays, element by element; nested arrays for more dimensions; nulls kept |
| null                          | NULL (a NOT NULL column refuses it here, naming the field)  |

Where the forward conversion loses information (timestamps to milliseconds; json text to its
value; trailing zeros of a numeric beyond Decimal128's 34 digits) the row store keeps the stored value when the written one maps to the same document
value (`TableLevel.equivalent`), so an untouched timestamp keeps its microseconds.

What the document does not say is not written: a field missing from the document leaves its
column as stored (excluded columns and columns the mapping does not take are never written); an
array or sub-document missing from the document leaves that level's rows of that parent alone.
An array that is present is the whole truth: rows of that parent not in it are deleted, and a
`many: false` sub-document set to null deletes its row.

A document the inverse cannot map (a value of the wrong type, a field the mapping does not know,
a missing key, two elements with one key) raises InverseError naming collection, _id and field.
"""

from __future__ import annotations

import datetime
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from migrator.adapters.base import ColumnInfo
from migrator.adapters.rows import DocumentRows, Equivalence, LevelRows, TableLevel
from migrator.errors import TerminalError
from migrator.mapping.spec import CollectionMapping, DocumentMapping, EmbedMapping, FieldMapping, Level
from migrator.mapping.types import Cast

UnknownFields = Literal["error", "ignore"]

_MISSING: Any = object()
_UTC = datetime.UTC
_INT_RANGES = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
    "bigint unsigned": (0, 2**64 - 1),  # Int64, or Decimal128 above 2**63 - 1 (types.py)
    "oid": (0, 2**32 - 1),
}
_TEXT_TYPES = frozenset({"text", "character varying", "character", "name", "citext"})
_TIMESTAMPS = frozenset({"timestamp with time zone", "timestamp without time zone"})
_JSON_TYPES = frozenset({"json", "jsonb"})


class InverseError(TerminalError):
    """A document (or a mapping) that cannot be turned back into rows."""

    def __init__(
        self,
        collection: str,
        document_id: Any,
        field: str,
        reason: str,
        *,
        hint: str | None = None,
    ) -> None:
        self.collection = collection
        self.document_id = document_id
        self.field = field
        self.reason = reason
        where = f"collection '{collection}'"
        if document_id is not _MISSING:
            where += f", document _id {document_id!r}"
        if field:
            where += f", field '{field}'"
        super().__init__(
            f"reverse sync cannot map {where} back to rows: {reason}",
            hint=hint
            or "fix the document on the target (or the application that wrote it), then resume reverse sync",
        )


class _Refused(Exception):
    """A value the column cannot take; the caller adds where it was."""


# -- values --------------------------------------------------------------------------------------

Convert = Callable[[Any], Any]


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Int64):
        return "long"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, Decimal128):
        return "decimal"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime.datetime):
        return "date"
    if isinstance(value, uuid.UUID):
        return "binData 4 (UUID)"
    if isinstance(value, Binary):
        return f"binData {value.subtype}"
    if isinstance(value, bytes):
        return "binData 0"
    if isinstance(value, Mapping):
        return "document"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _expect(value: Any, what: str) -> _Refused:
    return _Refused(f"expected {what}, found {_type_name(value)} {value!r}")


def _integer(type_name: str) -> Convert:
    lo, hi = _INT_RANGES[type_name]

    def convert(value: Any) -> Any:
        if isinstance(value, bool):
            raise _expect(value, f"an integer for {type_name}")
        if isinstance(value, int):
            number = int(value)
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            number = int(value)  # what a JavaScript client writes for 5
        elif isinstance(value, Decimal128) and value.to_decimal().is_finite():
            exact = value.to_decimal()
            if exact != exact.to_integral_value():
                raise _expect(value, f"an integer for {type_name}")
            number = int(exact)
        else:
            raise _expect(value, f"an integer for {type_name}")
        if not lo <= number <= hi:
            raise _Refused(f"{number} is out of range for {type_name}")
        return number

    return convert


def _decimal(value: Any) -> Any:
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, bool):
        raise _expect(value, "a decimal")
    if isinstance(value, int):
        return Decimal(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return Decimal("NaN")
        if math.isinf(value):
            return Decimal("Infinity") if value > 0 else Decimal("-Infinity")
        return Decimal(repr(value))  # the shortest decimal that is this double
    raise _expect(value, "a decimal")


def _float(value: Any) -> Any:
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise _expect(value, "a double")


def _string(value: Any) -> Any:
    if isinstance(value, str):
        return value
    raise _expect(value, "a string")


def _boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    raise _expect(value, "a bool")


def _utc(value: Any) -> datetime.datetime:
    if not isinstance(value, datetime.datetime):
        raise _expect(value, "a date")
    if value.tzinfo is None:
        return value.replace(tzinfo=_UTC)  # BSON dates are UTC
    return value.astimezone(_UTC)


def _timestamptz(value: Any) -> Any:
    return _utc(value)


def _timestamp(value: Any) -> Any:
    return _utc(value).replace(tzinfo=None)  # the wall clock was taken as UTC


def _date(value: Any) -> Any:
    moment = _utc(value)
    if moment.time() != datetime.time(0):
        raise _Refused(f"a date column holds days; {moment.isoformat()} is not midnight UTC")
    return moment.date()


def _uuid(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, Binary) and value.subtype == 4 and len(value) == 16:
        return uuid.UUID(bytes=bytes(value))
    raise _expect(value, "a UUID (binData subtype 4)")


def _bytes(value: Any) -> Any:
    if isinstance(value, Binary):
        if value.subtype != 0:
            raise _expect(value, "binData subtype 0")
        return bytes(value)
    if isinstance(value, bytes):
        return value
    raise _expect(value, "binData subtype 0")


def _json(value: Any) -> Any:
    """A JSON value: what the forward conversion parses json/jsonb into, and nothing else."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Refused(f"JSON has no {value!r}")
        return value
    if isinstance(value, Decimal128):
        # A number the forward conversion stored as a decimal, since no double prints it back
        # (adapters/documents.py): its own digits, which the source's writer keeps (json_values.py).
        exact = value.to_decimal()
        if not exact.is_finite():
            raise _Refused(f"JSON has no {value}")
        if exact == exact.to_integral_value():
            return int(exact)
        approx = float(exact)
        return approx if Decimal(repr(approx)) == exact else exact
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    raise _Refused(f"JSON cannot hold {_type_name(value)} {value!r}")


_SCALARS: dict[str, Convert] = {
    "numeric": _decimal,
    "money": _decimal,
    "real": _float,
    "double precision": _float,
    "boolean": _boolean,
    "timestamp with time zone": _timestamptz,
    "timestamp without time zone": _timestamp,
    "date": _date,
    "uuid": _uuid,
    "bytea": _bytes,
    "json": _json,
    "jsonb": _json,
    **{name: _integer(name) for name in _INT_RANGES},
}


def _scalar(type_name: str, kind: str) -> Convert:
    if kind in ("enum", "range") or type_name in _TEXT_TYPES:
        return _string
    # Everything else the conversion table supports is either above or written as its text form.
    return _SCALARS.get(type_name, _string)


def _array(element: Convert) -> Convert:
    def convert(value: Any) -> Any:
        if not isinstance(value, list):
            raise _expect(value, "an array")
        out: list[Any] = []
        for i, item in enumerate(value):
            try:
                if item is None:
                    out.append(None)
                elif isinstance(item, list):
                    out.append(convert(item))  # a multidimensional array nests
                else:
                    out.append(element(item))
            except _Refused as exc:
                raise _Refused(f"element {i}: {exc}") from None
        return out

    return convert


def column_converter(column: ColumnInfo) -> Convert:
    """BSON value -> the Python value of `column` (None stays None); raises _Refused."""
    if column.type_kind == "array":
        return _array(_scalar(column.element_type or "", column.element_kind or "base"))
    return _scalar(column.type_name, column.type_kind)


def _as_is(column: ColumnInfo) -> Convert:
    """A target that keeps the source's types: the value is the column's already."""
    return _same


def _same(value: Any) -> Any:
    return value


def _backward(cast: Cast) -> Convert:
    def convert(value: Any) -> Any:
        try:
            return cast.backward(value)
        except ValueError as exc:
            raise _Refused(f"{exc} (the plan's `types` makes it {cast.name})") from None

    return convert


def _field_column(field: FieldMapping, column: _Column) -> _Column:
    """A field's column as its values go back: through the plan's cast (`types`) where it has one,
    e.g. true/false -> 1/0 (docs/architecture.md, "Types chosen by the plan")."""
    if field.cast is None:
        return column
    return _Column(column.info, _backward(field.cast))


def equivalence(column: ColumnInfo) -> Equivalence | None:
    """How the forward conversion of `column` loses information, if it does."""
    name = column.element_type if column.type_kind == "array" else column.type_name
    if name in _TIMESTAMPS:
        return "milliseconds"
    if column.type_kind != "array":
        if name in _JSON_TYPES:
            return "json"
        if name == "numeric":
            return "numeric"
    return None


# -- the inverse ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    info: ColumnInfo
    convert: Convert


@dataclass(frozen=True)
class _LevelInverse:
    """One level written back: a spec Level (mapping/spec.py) with its converters; `index` and
    `children` count only the levels written back."""

    index: int
    spec: Level
    table_level: TableLevel
    fields: dict[str, tuple[FieldMapping, _Column]]  # field name -> mapping, converter
    children: tuple[int, ...]
    columns: dict[str, _Column]  # every column of the table

    @property
    def doc(self) -> DocumentMapping:
        return self.spec.document

    @property
    def embed(self) -> EmbedMapping | None:
        return self.spec.embed


class DocumentInverse:
    """documents -> rows for one collection: `rows(document)` and `deletion(_id)`.

    `unknown_fields`: 'error' (default) refuses a document holding a field the mapping does not
    know (it could not be written back, and dropping it would be silent); 'ignore' leaves such
    fields behind on the target."""

    def __init__(
        self, mapping: CollectionMapping, *, unknown_fields: UnknownFields = "error", native: bool = False
    ) -> None:
        self.mapping = mapping
        self.collection = mapping.name
        self.unknown_fields = unknown_fields
        # `native`: the target keeps the source's column types (a PostgreSQL target), so a value
        # is already the column's and goes back as it is (the plan's `types` casts still invert).
        self._converter: Callable[[ColumnInfo], Convert] = _as_is if native else column_converter
        self._levels: list[_LevelInverse] = self._plan(mapping)
        self.levels: tuple[TableLevel, ...] = tuple(level.table_level for level in self._levels)
        root = self._levels[0]
        self._key_columns = [root.columns[k] for k in root.doc.key]
        self._check()

    # -- construction ---------------------------------------------------------------------------

    def _plan(self, mapping: CollectionMapping) -> list[_LevelInverse]:
        # A lookup's sub-document is a copy of a row that other documents embed too (and that
        # other rows may reference): its row, and what is embedded under it, is never written
        # or deleted through one document. The parent's link field carries the relationship
        # back (docs/architecture.md, "Embeds: owner and lookup").
        index_of: dict[int, int] = {}  # spec level -> its index among the levels written back
        kept: list[Level] = []
        for level in mapping.levels:
            if level.kind == "lookup" or (level.parent != -1 and level.parent not in index_of):
                continue
            index_of[level.index] = len(kept)
            kept.append(level)
        return [
            self._level(
                level,
                index_of[level.index],
                index_of.get(level.parent, -1),
                tuple(index_of[c] for c in level.children if c in index_of),
            )
            for level in kept
        ]

    def _level(self, level: Level, index: int, parent: int, children: tuple[int, ...]) -> _LevelInverse:
        doc, embed = level.document, level.embed
        columns = {c.name: _Column(c, self._converter(c)) for c in doc.all_columns}
        for f in doc.fields:  # all_columns is empty in mappings built by hand: fields suffice
            columns.setdefault(f.column.name, _Column(f.column, self._converter(f.column)))
        fields = {f.name: (f, _field_column(f, columns[f.column.name])) for f in doc.fields}
        equivalent = tuple(
            (name, kind) for name, column in columns.items() if (kind := equivalence(column.info)) is not None
        )
        table_level = TableLevel(
            table=doc.table,
            key=doc.key,
            parent=parent,
            on=embed.on if embed is not None else (),
            many=embed.many if embed is not None else True,
            equivalent=equivalent,
        )
        return _LevelInverse(index, level, table_level, fields, children, columns)

    def _check(self) -> None:
        """Every level's key and every link must be derivable from fields, _id or links."""
        for level in self._levels:
            known = {f.column.name for f, _ in level.fields.values()}
            known |= set(level.table_level.link)
            if level.embed is None:
                known |= set(level.doc.key)
            for column in level.doc.key:
                if column not in known:
                    raise InverseError(
                        self.collection,
                        _MISSING,
                        self._path_of(level),
                        f"key column {column} of {level.doc.table} is neither a field nor a link to the parent",
                        hint=f"map {column} as a field of '{self._path_of(level)}'",
                    )
            for child_index in level.children:
                child = self._levels[child_index]
                for parent_column in child.table_level.parent_link:
                    if parent_column not in known:
                        raise InverseError(
                            self.collection,
                            _MISSING,
                            self._path_of(child),
                            f"the link of {child.doc.table} to {level.doc.table} uses {parent_column}, which "
                            "the document does not hold",
                            hint=f"map {parent_column} as a field of {level.doc.table}, or join on its key",
                        )

    def _path_of(self, level: _LevelInverse) -> str:
        return ".".join(level.spec.path)

    # -- documents ------------------------------------------------------------------------------

    def key_of(self, document_id: Any) -> dict[str, Any]:
        """The root key's column values from a document `_id`."""
        columns = self._key_columns
        if len(columns) == 1:
            return {columns[0].info.name: self._value(columns[0], document_id, document_id, "_id")}
        if not isinstance(document_id, Mapping):
            raise InverseError(
                self.collection,
                document_id,
                "_id",
                f"the key is compound ({', '.join(c.info.name for c in columns)}), so _id must be a "
                f"document of those fields, not {_type_name(document_id)}",
            )
        names = [c.info.name for c in columns]
        extra = [k for k in document_id if k not in names]
        if extra:
            raise InverseError(self.collection, document_id, f"_id.{extra[0]}", "not a key column")
        out: dict[str, Any] = {}
        for column in columns:
            name = column.info.name
            if name not in document_id:
                raise InverseError(self.collection, document_id, f"_id.{name}", "key column missing")
            out[name] = self._value(column, document_id[name], document_id, f"_id.{name}")
        return out

    def deletion(self, document_id: Any) -> DocumentRows:
        """The document is gone: its root row and every row under it are deleted."""
        return DocumentRows(self.collection, document_id, self.levels, self.key_of(document_id), None)

    def rows(self, document: Mapping[str, Any]) -> DocumentRows:
        """The document's new state as rows."""
        document_id = document.get("_id", _MISSING)
        if document_id is _MISSING:
            raise InverseError(self.collection, _MISSING, "_id", "the document has no _id")
        root_key = self.key_of(document_id)
        state = [LevelRows() for _ in self._levels]
        root = self._levels[0]
        row = dict(root_key)
        self._fill(root, document, row, document_id, "", skip=("_id",))
        state[0].rows.append(row)
        self._children(root, document, row, state, document_id, "")
        for level in self._levels[1:]:
            self._unique(level, state[level.index].rows, document_id)
        return DocumentRows(self.collection, document_id, self.levels, root_key, state)

    def _value(self, column: _Column, value: Any, document_id: Any, path: str) -> Any:
        if value is None:
            if not column.info.nullable:
                raise InverseError(
                    self.collection, document_id, path, f"null, but {column.info.name} is NOT NULL"
                )
            return None
        try:
            return column.convert(value)
        except _Refused as exc:
            raise InverseError(
                self.collection,
                document_id,
                path,
                f"{exc} (column {column.info.name} {column.info.type_name})",
            ) from None

    def _fill(
        self,
        level: _LevelInverse,
        element: Mapping[str, Any],
        row: dict[str, Any],
        document_id: Any,
        path: str,
        skip: tuple[str, ...] = (),
    ) -> None:
        embeds = {e.as_ for e in level.doc.embeds}
        for name, value in element.items():
            where = f"{path}.{name}" if path else name
            if name in skip or name in embeds:
                continue
            found = level.fields.get(name)
            if found is None:
                if self.unknown_fields == "ignore":
                    continue
                raise InverseError(
                    self.collection,
                    document_id,
                    where,
                    f"{level.doc.table} has no column mapped to this field",
                    hint="remove the field on the target, map it in the plan (a column must exist), or run "
                    "reverse sync with unknown fields ignored",
                )
            mapping, column = found
            converted = self._value(column, value, document_id, where)
            name_ = mapping.column.name
            if name_ in row and row[name_] != converted:
                # A key from _id, or a link from the parent, that the field contradicts.
                raise InverseError(
                    self.collection,
                    document_id,
                    where,
                    f"{converted!r} contradicts {name_} = {row[name_]!r}, which the document's "
                    + ("_id" if level.embed is None else "parent")
                    + " gives",
                )
            row[name_] = converted

    def _children(
        self,
        level: _LevelInverse,
        element: Mapping[str, Any],
        row: dict[str, Any],
        state: list[LevelRows],
        document_id: Any,
        path: str,
    ) -> None:
        for child_index in level.children:
            child = self._levels[child_index]
            embed = child.embed
            assert embed is not None
            where = f"{path}.{embed.as_}" if path else embed.as_
            parent_values = []
            for parent_column in child.table_level.parent_link:
                if parent_column not in row:
                    raise InverseError(
                        self.collection,
                        document_id,
                        where,
                        f"the field holding {parent_column} is missing from its parent, so "
                        f"{child.doc.table} rows cannot be linked",
                    )
                parent_values.append(row[parent_column])
            link = dict(zip(child.table_level.link, parent_values, strict=True))
            value = element.get(embed.as_, _MISSING)
            if value is _MISSING:
                state[child_index].exempt.append(tuple(parent_values))
                continue
            state[child_index].carried.append(tuple(parent_values))
            if embed.many:
                if not isinstance(value, list):
                    raise InverseError(
                        self.collection,
                        document_id,
                        where,
                        f"expected an array of {child.doc.table} rows, found {_type_name(value)}",
                    )
                items = [(f"{where}.{i}", item) for i, item in enumerate(value)]
            elif value is None:
                items = []
            else:
                items = [(where, value)]
            for item_path, item in items:
                if not isinstance(item, Mapping):
                    raise InverseError(
                        self.collection,
                        document_id,
                        item_path,
                        f"expected a document ({child.doc.table} row), found {_type_name(item)}",
                    )
                child_row = dict(link)
                self._fill(child, item, child_row, document_id, item_path)
                for key_column in child.doc.key:
                    if key_column not in child_row or child_row[key_column] is None:
                        raise InverseError(
                            self.collection,
                            document_id,
                            item_path,
                            f"the element has no value for its key column {key_column}",
                        )
                state[child_index].rows.append(child_row)
                self._children(child, item, child_row, state, document_id, item_path)

    def _unique(self, level: _LevelInverse, rows: list[dict[str, Any]], document_id: Any) -> None:
        seen: set[tuple[Any, ...]] = set()
        for row in rows:
            key = tuple(_hashable(row[k]) for k in level.doc.key)
            if key in seen:
                raise InverseError(
                    self.collection,
                    document_id,
                    self._path_of(level),
                    f"two elements have the key {dict(zip(level.doc.key, key, strict=True))!r}; "
                    f"{level.doc.table} holds one row per key",
                )
            seen.add(key)


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _hashable(v)) for k, v in value.items())
    return value


def inverses(
    collections: list[CollectionMapping], *, unknown_fields: UnknownFields = "error", native: bool = False
) -> dict[str, DocumentInverse]:
    """One DocumentInverse per collection, by collection name (`native`: see DocumentInverse)."""
    return {c.name: DocumentInverse(c, unknown_fields=unknown_fields, native=native) for c in collections}
