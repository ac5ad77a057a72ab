"""The runbook of a plan into a PostgreSQL target, generated against the databases (preflight run):
its checklist speaks the target's words and ticks what preflight found (the target table absent,
the role's privileges), and its prose has no MongoDB word (tests/support/runbook_words.py)."""

from __future__ import annotations

from migrator import api
from tests.support.pg_target import PgToPg
from tests.support.runbook_words import MONGODB_WORDS, prose_of


def test_the_runbook_of_a_postgres_target_checks_its_own_words(pg2pg: PgToPg) -> None:
    pg2pg.source("CREATE TABLE public.items (id integer PRIMARY KEY, name text)")
    plan = pg2pg.plan(
        "- {from: public.items}",
        phases=f"cutover: {{switch: {{kind: file, path: '{pg2pg.tmp_path / 'routing'}'}}}}",
    )
    text = api.runbook(plan, env=pg2pg.env)
    assert [w for w in MONGODB_WORDS if w in prose_of(text)] == []
    ticked = f"- [x] target table `{pg2pg.target_database}.public.items` is absent or empty"
    assert ticked in text, [line for line in text.splitlines() if "target" in line]
    assert (
        "- [x] the target PostgreSQL answers at the plan's URL (`target.reachable`): found: PostgreSQL 15"
        in text
    )
