"""The runbook's replica identity for a partitioned table, against a real PostgreSQL: one line per
partition (REPLICA IDENTITY is set per leaf; the partitioned table's own setting applies to none
of them), each with the fix preflight found, and the fix is one PostgreSQL accepts (issue 17).
"""

from __future__ import annotations

import re

import pytest

from migrator import api
from tests.support.docs import Migration

SCHEMA = (
    "CREATE TABLE events (id bigint NOT NULL, region text NOT NULL, body text, PRIMARY KEY (id, region))"
    " PARTITION BY LIST (region)",
    "CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu')",
    "CREATE TABLE events_us PARTITION OF events FOR VALUES IN ('us')",
    "INSERT INTO events VALUES (1, 'eu', 'a'), (2, 'us', 'b')",
    # One partition without a usable identity: the partitioned table's own setting says nothing of it.
    "ALTER TABLE events_us REPLICA IDENTITY NOTHING",
)

PLAN = "- {name: events, from: public.events, key: [id, region]}"


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return SCHEMA


def identity_lines(runbook: str) -> dict[str, tuple[str, str | None]]:
    """Each `source.replica_identity` checklist line: subject -> (line, its fix or None)."""
    lines = runbook.splitlines()
    out: dict[str, tuple[str, str | None]] = {}
    for i, line in enumerate(lines):
        if "(`source.replica_identity`)" not in line:
            continue
        subject = re.search(r"`([a-z_.]+)`", line)
        assert subject is not None, line
        fix = lines[i + 1].strip() if i + 1 < len(lines) and lines[i + 1].strip().startswith("fix:") else None
        out[subject.group(1)] = (line, fix.removeprefix("fix:").strip() if fix else None)
    return out


def test_runbook_lists_the_replica_identity_of_each_partition_with_a_fix_postgresql_accepts(
    mig: Migration,
) -> None:
    plan = mig.plan(PLAN, name="rb-parts")
    found = identity_lines(api.runbook(plan, env=mig.env))
    assert set(found) == {"public.events", "public.events_eu", "public.events_us"}, found
    assert found["public.events_eu"][0].startswith("- [x]"), found
    assert "REPLICA IDENTITY DEFAULT, primary key (id, region)" in found["public.events_eu"][0]
    line, fix = found["public.events_us"]
    assert line.startswith("- [ ] **FAIL**") and "REPLICA IDENTITY NOTHING" in line, line
    assert fix is not None and fix.startswith("ALTER TABLE public.events_us REPLICA IDENTITY DEFAULT;"), fix

    # The first fix offered, run as written, is accepted and makes the partition ready.
    mig.sql(fix.split(" or ")[0])
    found = identity_lines(api.runbook(plan, env=mig.env))
    assert all(line.startswith("- [x]") for line, _ in found.values()), found
    assert api.plan(plan, env=mig.env).ready
