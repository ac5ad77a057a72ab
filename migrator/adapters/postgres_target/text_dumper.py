"""SourceText values written as their text (docs/architecture.md, "Undecoded change values";
text_values.py says which columns take them): a COPY text field, which psycopg escapes
(backslash, tab, newline, carriage return) as it does any text, or a text parameter, each cast to
the column's declared type by the statement as a decoded value's text is (rows.py placeholder,
staging.py)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.adapt import Dumper

from migrator.adapters.base import SourceText


class SourceTextDumper(Dumper):
    """A SourceText's bytes as they are, of no declared type (the statement casts it)."""

    oid = 0
    # bytes itself, called in C for every value (no Python frame): COPY calls `dump` per field.
    dump = staticmethod(bytes)  # type: ignore[assignment]


def register(conn: psycopg.Connection[Any]) -> None:
    """Let `conn` write SourceText values (each column's subclass too: psycopg looks a dumper up
    along the class's bases)."""
    conn.adapters.register_dumper(SourceText, SourceTextDumper)
