"""A binlog position: the one place its text form is parsed and written (docs/architecture.md,
"MySQL and MariaDB sources").

A binlog coordinate is a file (`binlog.000012`) and a byte offset in it. The engine orders and
stores positions as integers: the file's numeric suffix in the high 32 bits and the offset in the
low 32 (a binlog file never exceeds 4 GiB: max_binlog_size is at most 1 GiB, one event at most
max_allowed_packet), which orders them as the server wrote them. Text: "<file number>:<offset>"
with the suffix's six digits, e.g. "000012:4567". The file's base name (`binlog`) is not part of
a position: it is the server's (log_bin_basename), read when a file is named to it.
"""

from __future__ import annotations

import re

_OFFSET_BITS = 32
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1
_TEXT = re.compile(r"(\d+):(\d+)")
_FILE = re.compile(r"^(.*)\.(\d+)$")


def pack(file_number: int, offset: int) -> int:
    if not 0 <= offset <= _OFFSET_MASK or not 0 <= file_number <= _OFFSET_MASK:
        raise ValueError(f"not a binlog coordinate: file {file_number}, offset {offset}")
    return file_number << _OFFSET_BITS | offset


def unpack(value: int) -> tuple[int, int]:
    """(file number, offset) of a position."""
    return value >> _OFFSET_BITS, value & _OFFSET_MASK


def split_file(name: str) -> tuple[str, int]:
    """'binlog.000012' (or a path to it) -> ('binlog', 12); ValueError for a name without suffix."""
    found = _FILE.match(name.rsplit("/", 1)[-1])
    if found is None:
        raise ValueError(f"not a binlog file name: {name!r}")
    return found.group(1), int(found.group(2))


def file_name(base: str, number: int) -> str:
    """The file of `number` under the server's base name: ('binlog', 12) -> 'binlog.000012'."""
    return f"{base}.{number:06d}"


def of_file(name: str, offset: int) -> int:
    """The position of `offset` in binlog file `name`."""
    return pack(split_file(name)[1], offset)


class BinlogPositions:
    """MySQL's Positions (adapters/base.py): a packed binlog coordinate and its text."""

    @staticmethod
    def text(value: int) -> str:
        number, offset = unpack(value)
        return f"{number:06d}:{offset}"

    @staticmethod
    def parse(text: str) -> int:
        found = _TEXT.fullmatch(text.strip())
        if found is None:
            raise ValueError(
                f"not a binlog position (want <file number>:<offset>, e.g. 000012:4567): {text!r}"
            )
        return pack(int(found.group(1)), int(found.group(2)))

    @staticmethod
    def bytes_between(older: int, newer: int) -> int | None:
        """Offsets subtract inside one binlog file; across files the sizes of the files between
        are the server's (the monitor counts them), not the positions', so None: an unknown lag
        in bytes, never a figure off by 2^32 per file."""
        (older_file, older_offset), (newer_file, newer_offset) = unpack(older), unpack(newer)
        if older_file != newer_file:
            return None if newer_file > older_file else 0
        return max(0, newer_offset - older_offset)
