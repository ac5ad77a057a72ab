"""The runbook speaks the target's words (adapters/vocabulary.py, TargetVocabulary): a plan into a
PostgreSQL target says tables, rows, logical decoding and its trigger fence, and no MongoDB word
outside code (metric names keep their names: a contract); a MongoDB plan's runbook is the golden
file (tests/unit/test_runbook.py), unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator import api
from tests.support.runbook_words import MONGODB_WORDS, prose_of

PG_PLAN = """\
version: 1
name: words
source: {adapter: postgres, url: 'postgresql://u@src.internal/shop'}
target: {adapter: postgres, url: 'postgresql://u@tgt.internal/shop'}
tables:
  - {from: public.items}
phases:
  cutover: {switch: {kind: file, path: /srv/routing}}
"""


@pytest.mark.parametrize("switch", [True, False], ids=["switch", "no-switch"])
def test_a_postgres_target_runbook_has_no_mongodb_words(tmp_path: Path, switch: bool) -> None:
    plan = tmp_path / "words.yaml"
    plan.write_text(PG_PLAN if switch else PG_PLAN.split("phases:")[0])
    text = api.runbook(plan, offline=True, env={})
    prose = prose_of(text)
    assert [w for w in MONGODB_WORDS if w in prose] == []
    if not switch:  # the switches that work with this target
        assert "add phases.cutover.switch (kind: file, command or postgres)" in text
        return
    # and its own words, where MongoDB's stood
    assert "- [ ] the target PostgreSQL answers at the plan's URL (`target.reachable`)" in text
    assert "logical decoding on the target (wal_level = logical): reverse sync" in text
    assert "a trigger on the mapped tables refuses inserts, updates and deletes (SQLSTATE 25006" in text
    assert "target table `shop.public.items` is absent or empty" in text
    assert "| `public.items` | `public.items` | rows (primary key " in text


def test_the_prose_filter_sees_mongodb_words_in_a_mongodb_runbook() -> None:
    """The check above can fail: the same filter finds them in the MongoDB demo plan's runbook."""
    root = Path(__file__).resolve().parents[2]
    text = api.runbook(root / "plans" / "demo.yaml", offline=True, env={})
    prose = prose_of(text)
    assert {"mongodb", "replica set", "change stream", "validator", "error 121"} <= {
        w for w in MONGODB_WORDS if w in prose
    }
