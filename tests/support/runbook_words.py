"""What a runbook says outside code, and the words that belong to a MongoDB target, for the tests
that a runbook speaks its target's words (tests/unit/test_runbook_target_words.py,
tests/integration/pg_target/test_pg_target_runbook.py)."""

from __future__ import annotations

import re

# Matched case-insensitively outside code spans and blocks (metric names keep theirs: a contract).
MONGODB_WORDS = (
    "mongodb",
    "replica set",
    "change stream",
    "bson",
    "collection",
    "document",
    "insert_many",
    "validator",
    "16 mb",
    "error 121",
)


def prose_of(markdown: str) -> str:
    """The runbook without its code blocks and inline code, lower-cased."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", markdown, flags=re.S)).lower()
