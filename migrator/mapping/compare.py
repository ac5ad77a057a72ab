"""Comparing an expected document (source rows through the mapping) with the target's.

Both sides are compared as BSON, so a type difference is a difference: Decimal128 against a
double, int64 against int32, a date a millisecond off. Field order inside a document is not
significant (MongoDB applications read fields by name, and a `$set` may append a field that
a fresh copy puts elsewhere); array order is, because the plan orders arrays.

The fast path is a byte comparison of the encoded documents, which holds for nearly every
document; only unequal bytes are decoded, canonicalised and, when still unequal, explained.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import bson
from bson import json_util
from bson.decimal128 import Decimal128
from bson.raw_bson import RawBSONDocument

from migrator.adapters.documents import CODEC, canonical_bytes, same
from migrator.adapters.json_values import JsonText

# Differences explained per document at most: a wholly different document says enough in 20.
MAX_DIFFS_PER_DOCUMENT = 20
# How a UUID is stored (binary subtype 4), for rendering _ids as extended JSON.
UUID_REPRESENTATION = CODEC.uuid_representation


@dataclass(frozen=True)
class FieldDiff:
    """One difference inside a document: `path` as dotted field names and array indexes."""

    path: str
    kind: str  # 'changed', 'type', 'missing' (in target), 'extra' (in target), 'order'
    source: str  # the expected value, rendered with its BSON type; '' when absent
    target: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "kind": self.kind, "source": self.source, "target": self.target}


def id_key(doc_id: Any) -> bytes:
    """A hashable, type-exact key for an _id value: its BSON encoding."""
    return bson.encode({"_id": doc_id}, codec_options=CODEC)


def stored_id(doc_id: Any) -> Any:
    """An _id as the target stores it and gives it back (Decimal128 for a Decimal, a UTC date
    for a date, milliseconds for a timestamp, a UUID, a dict for a compound _id): the form every
    target query and every key lookup by _id starts from."""
    return decode(id_key(doc_id))["_id"]


def decode(raw: bytes) -> dict[str, Any]:
    return bson.decode(raw, codec_options=CODEC)


class _Decimal(str):
    """A decimal as its text, for DeepDiff: it sees no attributes in a Decimal128 and would call
    any two equal, and compares Decimals by value, where 1.0 and 1.000 differ in the scale a
    target keeps. The type stays distinct from a double's and a string's."""


def _comparable(value: Any) -> Any:
    """Canonical, with each decimal (Decimal128, Decimal) as its text (_Decimal), and a str
    subclass (a PostgreSQL target's character(n) value, Padded) as the plain text it holds."""
    if isinstance(value, Mapping):
        return {k: _comparable(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, Decimal128):
        return _Decimal(value.to_decimal())
    if isinstance(value, decimal.Decimal):
        return _Decimal(value)
    if isinstance(value, str) and type(value) is not str:
        return str(value)
    return value


def equal(expected: bytes, actual: bytes) -> bool:
    """Two BSON documents equal in any field order (adapters/documents.py)."""
    return same(expected, actual)


def digest(documents: Iterable[bytes]) -> str:
    """Order-independent digest of a set of canonical documents (for reports and range checks)."""
    hashes = sorted(hashlib.blake2b(canonical_bytes(d), digest_size=16).digest() for d in documents)
    return hashlib.blake2b(b"".join(hashes), digest_size=16).hexdigest()


def render(value: Any) -> str:
    """A value with its BSON type, as an operator needs to see it: Decimal128('1.50'), int64 5."""
    if value is _ABSENT:
        return ""
    if isinstance(value, _Decimal):
        value = decimal.Decimal(value)  # the text keeps the scale
    name = type(value).__name__
    if isinstance(value, RawBSONDocument):
        value = decode(bytes(value.raw))
    if isinstance(value, Mapping | list):
        text = json_util.dumps(_bson(value), json_options=_JSON)
        return ("document " if isinstance(value, Mapping) else "array ") + _cut(text)
    if isinstance(value, decimal.Decimal):
        text = f"Decimal128('{value}')"
    elif isinstance(value, datetime.datetime):
        text = value.isoformat(timespec="milliseconds")
    else:
        text = repr(value)
    text = _cut(text)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return text
    return f"{_TYPE_NAMES.get(name, name)} {text}"


_TYPE_NAMES = {
    "int": "int32",
    "Int64": "int64",
    "float": "double",
    "Decimal": "decimal",
    "datetime": "date",
}
_ABSENT = object()
_JSON = json_util.JSONOptions(
    json_mode=json_util.JSONMode.RELAXED, uuid_representation=CODEC.uuid_representation
)


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _bson(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _bson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bson(v) for v in value]
    if isinstance(value, decimal.Decimal | _Decimal):
        return Decimal128(value)
    return value


# DeepDiff renders paths with ast.literal_eval, and CPython 3.11's AST construction keeps its
# recursion depth in state shared by threads (gh-106905): two verify workers explaining at once
# failed with "SystemError: AST constructor recursion depth mismatch". Explaining is only done
# for documents that differ, so one at a time costs little.
_EXPLAINING = threading.Lock()


def explain(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[FieldDiff]:
    """The differences between two decoded documents, field by field."""
    with _EXPLAINING:
        return _explain(expected, actual)


def _parsed_json(
    expected: Mapping[str, Any], actual: Mapping[str, Any]
) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Top-level json/jsonb values read as their text on both sides (json_values.JsonText) are
    explained inside the value (`doc.x.1`) where they differ as parsed values; where only their
    text differs (key order, a number's scale), the field's text is the difference."""
    fields = [
        f
        for f, v in expected.items()
        if isinstance(v, JsonText) and isinstance(actual.get(f), JsonText) and v.value() != actual[f].value()
    ]
    if not fields:
        return expected, actual
    return (
        {f: expected[f].value() if f in fields else v for f, v in expected.items()},
        {f: actual[f].value() if f in fields else v for f, v in actual.items()},
    )


def _explain(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[FieldDiff]:
    # Imported here: deepdiff pulls numpy (~0.3 s), and only a document that differs is
    # explained, so no process start pays for it (docs/architecture.md, "Start-up imports").
    from deepdiff import DeepDiff

    diffs: list[FieldDiff] = []
    expected, actual = _parsed_json(expected, actual)
    expected, actual = _comparable(expected), _comparable(actual)
    actual = _align_reordered_arrays(expected, actual, "", diffs)
    tree = DeepDiff(expected, actual, verbose_level=2).tree
    for kind, items in tree.items():
        for item in items:
            path = _dotted(item.path(output_format="list"))
            if kind == "type_changes":
                diffs.append(FieldDiff(path, "type", render(item.t1), render(item.t2)))
            elif kind == "values_changed":
                diffs.append(FieldDiff(path, "changed", render(item.t1), render(item.t2)))
            elif kind in ("dictionary_item_removed", "iterable_item_removed"):
                diffs.append(FieldDiff(path, "missing", render(item.t1), ""))
            elif kind in ("dictionary_item_added", "iterable_item_added"):
                diffs.append(FieldDiff(path, "extra", "", render(item.t2)))
            else:
                diffs.append(FieldDiff(path, kind, render(item.t1), render(item.t2)))
    diffs.sort(key=lambda d: (d.path, d.kind))
    return diffs[:MAX_DIFFS_PER_DOCUMENT]


def _align_reordered_arrays(expected: Any, actual: Any, path: str, diffs: list[FieldDiff]) -> Any:
    """Report an array holding the expected elements in another order once, as 'order', and
    return `actual` with it put in the expected order, so the element-wise diff shows only
    real differences instead of every shifted element."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {
            k: _align_reordered_arrays(expected[k], v, f"{path}.{k}" if path else k, diffs)
            if k in expected
            else v
            for k, v in actual.items()
        }
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) == len(actual) and expected != actual:
            encode = [bson.encode({"v": v}, codec_options=CODEC) for v in expected]
            got = [bson.encode({"v": v}, codec_options=CODEC) for v in actual]
            if encode != got and sorted(encode) == sorted(got):
                diffs.append(FieldDiff(path or "(root)", "order", render(expected), render(actual)))
                return expected
        return [
            _align_reordered_arrays(e, a, f"{path}.{i}", diffs) if i < len(expected) else a
            for i, (e, a) in enumerate(zip(expected + [None] * len(actual), actual, strict=False))
        ]
    return actual


def _dotted(parts: list[Any]) -> str:
    return ".".join(str(p) for p in parts) or "(root)"
