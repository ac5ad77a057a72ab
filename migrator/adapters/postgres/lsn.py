"""A PostgreSQL WAL position (LSN): the one place its text form is parsed and written.

PostgreSQL shows an LSN as two hexadecimal halves, `%X/%X` (upper case, no padding: `16/B374D848`);
the protocol and our checkpoints carry it as one 64-bit integer. Positions belong to their adapter
(docs/architecture.md, "Layers"): phases compare, store and show them, never take them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

_HALF = 0xFFFFFFFF


@dataclass(frozen=True, order=True, slots=True)
class Lsn:
    """A WAL position; ordered as the WAL is. `str()` gives PostgreSQL's form, `.value` the integer."""

    value: int

    def __post_init__(self) -> None:
        if not 0 <= self.value <= 0xFFFFFFFFFFFFFFFF:
            raise ValueError(f"an LSN is a 64-bit unsigned integer, not {self.value}")

    @classmethod
    def parse(cls, text: str) -> Lsn:
        """`'16/B374D848'` (either case) -> Lsn; ValueError for anything else."""
        high, slash, low = text.partition("/")
        if not slash:
            raise ValueError(f"not an LSN (want HIGH/LOW in hexadecimal): {text!r}")
        return cls((int(high, 16) << 32) + int(low, 16))

    def __str__(self) -> str:
        return f"{self.value >> 32:X}/{self.value & _HALF:X}"

    def __int__(self) -> int:
        return self.value


class LsnPositions:
    """PostgreSQL's Positions (adapters/base.py): an LSN's integer and its `%X/%X` text."""

    @staticmethod
    def text(value: int) -> str:
        return str(Lsn(value))

    @staticmethod
    def parse(text: str) -> int:
        return Lsn.parse(text).value

    @staticmethod
    def bytes_between(older: int, newer: int) -> int | None:
        """WAL is one byte sequence: LSNs subtract."""
        return max(0, newer - older)
