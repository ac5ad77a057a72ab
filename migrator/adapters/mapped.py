"""The resolved mapping as a source adapter's preflight and schema checks read it: mapping/spec.py
builds it; adapters sit below mapping (docs/architecture.md, "Layers"), so they see its shape only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from migrator.adapters.inspection import ColumnInfo


class MappedEmbed(Protocol):
    @property
    def as_(self) -> str: ...

    @property
    def many(self) -> bool: ...

    @property
    def on(self) -> tuple[tuple[str, str], ...]: ...

    @property
    def child(self) -> MappedDocument: ...


class MappedField(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def column(self) -> ColumnInfo: ...

    @property
    def plan_type(self) -> str | None:
        """The plan's `types` name for the column ('bool'), None where it gives none."""
        ...


class MappedDocument(Protocol):
    @property
    def table(self) -> str: ...

    @property
    def key(self) -> tuple[str, ...]: ...

    @property
    def fields(self) -> Sequence[MappedField]: ...

    @property
    def embeds(self) -> Sequence[MappedEmbed]: ...

    @property
    def all_columns(self) -> tuple[ColumnInfo, ...]:
        """Every column of the table (keys and links too)."""
        ...


class MappedLevel(Protocol):
    @property
    def table(self) -> str: ...

    @property
    def key(self) -> tuple[str, ...]: ...

    @property
    def link(self) -> tuple[str, ...]: ...

    @property
    def document(self) -> MappedDocument: ...

    @property
    def embed(self) -> MappedEmbed | None: ...


class MappedCollection(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def levels(self) -> Sequence[MappedLevel]: ...
