"""Changed values passed through undecoded (docs/architecture.md, "Undecoded change values"): a
source whose change stream carries a column's values in a text form that the target takes as it
is, for a column of the very same type on both sides that the plan does not cast, hands the
value over as a SourceText instead of a Python value. The mapping passes it on untouched (a
flat table's field, no `types` cast), and the target's applier writes its text as it is.

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


class SourceText(bytearray):
    """One value of a changed row in the source's text form (`form`, of the source's type
    `type_id`), undecoded: its bytes are the text. Made per column by `source_text_type`, so that
    building one costs one call in C (CDC builds one for every passed-through value); `value()`
    decodes it where something must read it.

    A bytearray, not bytes: a bytes value is a binary column's value everywhere else."""

    __slots__ = ()
    form: ClassVar[str] = ""
    type_id: ClassVar[int] = 0
    parse: ClassVar[Callable[[bytes], Any]]

    def value(self) -> Any:
        """The Python value the source would have decoded."""
        return type(self).parse(bytes(self))

    def __repr__(self) -> str:
        return f"SourceText({self.form!r}, {self.type_id}, {bytes(self)!r})"


@cache
def source_text_type(form: str, type_id: int, parse: Callable[[bytes], Any]) -> type[SourceText]:
    """The SourceText class of one column's values (built once per format, type and parser)."""
    return type(
        "SourceText",
        (SourceText,),
        {"__slots__": (), "form": form, "type_id": type_id, "parse": staticmethod(parse)},
    )


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
