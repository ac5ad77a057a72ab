"""Changed values passed through undecoded (docs/architecture.md, "Undecoded change values"): a
source whose change stream carries a column's values in a text form that the target takes as it
is, for a column of the very same type on both sides that the plan does not cast, hands the
value over as a SourceText instead of a Python value; or as a plain str where no decoded value of
the column is a str other than its own text (so that nothing can take the str for a decoded
value: every PostgreSQL built-in type but json, jsonb and arrays of them, adapters/postgres/values.py
undecoded_parser), which costs one C call where a SourceText costs a Python call and a copy. The
mapping passes it on untouched (a flat table's field, no `types` cast), and the target's applier
writes its text as it is: a SourceText, and any str of a column that is not JSON.

The phase asks both adapters and compares format names only (phases/undecoded.py); which
formats exist is the adapters'. A target that takes no format (MongoDB) never receives a
SourceText: its source decodes every value as before. Key columns are always decoded (batches
fold writes by key).

Optional, as runtime-checkable protocols: a source or target without them decodes every value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, ClassVar, Protocol, runtime_checkable

from migrator.adapters.inspection import ColumnInfo
from migrator.adapters.raw_chunks import RawColumn


class SourceText(str):
    """One value of a changed row in the source's text form (`form`, of the source's type
    `type_id`), undecoded: the text itself. Made per column by `source_text_reader`, so that
    building one from the wire's UTF-8 bytes costs calls in C only (CDC builds one for every value
    passed through), and a str, so that a target's driver writes it as it writes any text, in C;
    `value()` decodes it where something must read it as the source's Python value."""

    __slots__ = ()
    form: ClassVar[str] = ""
    type_id: ClassVar[int] = 0
    parse: ClassVar[Callable[[bytes], Any]]

    def value(self) -> Any:
        """The Python value the source would have decoded."""
        return type(self).parse(self.encode())

    def __repr__(self) -> str:
        return f"SourceText({self.form!r}, {self.type_id}, {str.__repr__(self)})"


@cache
def source_text_type(form: str, type_id: int, parse: Callable[[bytes], Any]) -> type[SourceText]:
    """The SourceText class of one column's values (built once per format, type and parser)."""
    return type(
        "SourceText",
        (SourceText,),
        {"__slots__": (), "form": form, "type_id": type_id, "parse": staticmethod(parse)},
    )


def source_text_reader(
    form: str, type_id: int, parse: Callable[[bytes], Any]
) -> Callable[[bytes], SourceText]:
    """What makes a column's SourceText of its UTF-8 bytes (`parse`: how to decode one). A function
    calling the class with positional arguments, not a partial with keywords: those build a dict
    for every call (a tenth of a decoded row's time)."""
    made = source_text_type(form, type_id, parse)

    def reader(data: bytes) -> SourceText:
        return made(data, "utf-8", "strict")

    return reader


@runtime_checkable
class SourceTextSource(Protocol):
    def change_text_format(self, table: str, columns: Sequence[ColumnInfo]) -> str | None:
        """The text format this source's change stream can hand `columns` of `table` over in,
        undecoded (SourceText), or None."""
        ...


@runtime_checkable
class SourceTextTarget(Protocol):
    def takes_source_text(self, collection: str, form: str, columns: Sequence[RawColumn]) -> frozenset[str]:
        """The source columns (by name) of `columns` whose values this target's applier writes
        into `collection` as SourceText of `form`, as they are: those whose target column is of
        the very type of the source's (and whose text input reads the form exactly)."""
        ...
