"""DDL that no change carries, against real servers: the snapshot records the mapped tables'
shape, and CDC compares it with the catalog when it starts and every few seconds while it
follows (docs/architecture.md, "Schema changes")."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.errors import TerminalError
from migrator.phases import follow_loop
from migrator.plan.names import publication_name
from tests.support.compare import assert_documents, flat_documents
from tests.support.ddl import DROPPED_OR_RETYPED, THINGS, WHEN
from tests.support.docs import Migration
from tests.support.runs import follow, run, transactions, wait_for

pytestmark = pytest.mark.usefixtures("stop_followers")


@pytest.fixture(autouse=True)
def frequent_schema_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """CDC compares the shape with the catalog every 0.5 s here, not every 5 s: a following case
    waits for that periodic look (the one under test), and the suite's time is its wait."""
    monkeypatch.setattr(follow_loop, "SCHEMA_CHECK_S", 0.5)


ACCOUNTS = (
    "CREATE TABLE accounts (id integer, region text, name text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)",
    "CREATE TABLE accounts_eu PARTITION OF accounts FOR VALUES IN ('eu')",
    "CREATE TABLE accounts_us PARTITION OF accounts FOR VALUES IN ('us')",
    "INSERT INTO accounts VALUES (1, 'eu', 'a1'), (2, 'us', 'a2')",
)


def stops(mig: Migration, plan: Path, name: str, when: str, *ddl: str) -> TerminalError:
    """Run `ddl` (which no change of a mapped row follows) while the run follows changes, or
    between two runs; the run must stop by itself. Returns its error."""
    if when == "between-runs":
        transactions(mig, *ddl)
        with pytest.raises(TerminalError) as raised:
            run(mig, plan)
        return raised.value
    follower = follow(mig, plan, name)
    transactions(mig, *ddl)
    wait_for(lambda: not follower.alive, "the run to stop by itself", 60)
    with pytest.raises(TerminalError) as raised:
        follower.join()
    return raised.value


@WHEN
@DROPPED_OR_RETYPED
def test_a_mapped_column_dropped_or_retyped_without_a_change_after_it(
    mig: Migration, ddl: str, says: str, when: str
) -> None:
    name = f"cdc-shape-{says.split()[-1]}-{when}"
    mig.sql(*THINGS)
    plan = mig.plan("- {name: things, from: things, key: id}", name=name)
    run(mig, plan, "snapshot")
    run(mig, plan)  # CDC started once: the next run resumes it
    error = stops(mig, plan, name, when, ddl)
    assert f"column public.things.qty {says}" in str(error)
    assert [d["qty"] for d in mig.documents("things")] == [1, 2, 3]


def test_a_mapped_table_dropped_while_following_stops_the_run(mig: Migration) -> None:
    # (Dropped between runs, the next run's preflight refuses the plan.)
    name = "cdc-shape-table-dropped"
    mig.sql(*THINGS)
    plan = mig.plan("- {name: things, from: things, key: id}", name=name)
    run(mig, plan, "snapshot")
    error = stops(mig, plan, name, "following", "DROP TABLE things")
    assert "table public.things was dropped (DROP TABLE)" in str(error)


def test_a_mapped_table_renamed_stops_the_run_until_renamed_back(mig: Migration) -> None:
    name = "cdc-shape-table-renamed"
    mig.sql(*THINGS)
    plan = mig.plan("- {name: things, from: things, key: id}", name=name)
    run(mig, plan, "snapshot")
    error = stops(mig, plan, name, "following", "ALTER TABLE things RENAME TO stuff")
    assert "table public.things was renamed to public.stuff" in str(error)
    assert error.hint is not None
    fix = error.hint.split(";")[0]
    assert fix == "ALTER TABLE public.stuff RENAME TO things"
    mig.sql(fix)  # PostgreSQL accepts it, and the run goes on
    transactions(mig, "UPDATE things SET qty = 20 WHERE id = 2")
    run(mig, plan)
    assert_documents(mig, "things", flat_documents(mig, "SELECT id, name, qty FROM things"))


@pytest.mark.parametrize(
    ("when", "ddl", "says"),
    [
        ("following", ("ALTER TABLE accounts DETACH PARTITION accounts_us",), "detached (DETACH PARTITION)"),
        (
            "between-runs",
            ("ALTER TABLE accounts DETACH PARTITION accounts_us",),
            "detached (DETACH PARTITION)",
        ),
        ("between-runs", ("DROP TABLE accounts_us",), "dropped (DROP TABLE)"),
    ],
    ids=["detach-following", "detach", "drop"],
)
def test_a_partition_detached_or_dropped_stops_the_run(
    mig: Migration, when: str, ddl: tuple[str, ...], says: str
) -> None:
    name = f"cdc-shape-partition-{says.split()[0]}-{when}"
    mig.sql(*ACCOUNTS)
    plan = mig.plan("- {name: accounts, from: accounts, key: [id, region]}", name=name)
    run(mig, plan, "snapshot")
    error = stops(mig, plan, name, when, *ddl)
    assert f"partition public.accounts_us of public.accounts was {says}" in str(error)
    assert len(mig.documents("accounts")) == 2


def test_a_partition_attached_with_rows_stops_the_run(mig: Migration) -> None:
    name = "cdc-shape-attached"
    mig.sql(*ACCOUNTS)
    plan = mig.plan("- {name: accounts, from: accounts, key: [id, region]}", name=name)
    run(mig, plan, "snapshot")
    error = stops(
        mig,
        plan,
        name,
        "following",
        "CREATE TABLE accounts_asia (id integer NOT NULL, region text NOT NULL, name text)",
        "INSERT INTO accounts_asia VALUES (3, 'asia', 'loaded before it was attached')",
        "ALTER TABLE accounts ATTACH PARTITION accounts_asia FOR VALUES IN ('asia')",
    )
    assert "partition public.accounts_asia was attached to public.accounts (ATTACH PARTITION)" in str(error)


def test_partitions_created_or_attached_empty_are_followed(mig: Migration) -> None:
    name = "cdc-shape-new-partitions"
    mig.sql(*ACCOUNTS)
    plan = mig.plan("- {name: accounts, from: accounts, key: [id, region]}", name=name)
    run(mig, plan, "snapshot")
    follower = follow(mig, plan, name)
    transactions(
        mig,
        [
            "CREATE TABLE accounts_asia PARTITION OF accounts FOR VALUES IN ('asia')",
            "INSERT INTO accounts VALUES (3, 'asia', 'a3')",
        ],
        "CREATE TABLE accounts_af (id integer NOT NULL, region text NOT NULL, name text)",
        "ALTER TABLE accounts ATTACH PARTITION accounts_af FOR VALUES IN ('af')",
        "INSERT INTO accounts VALUES (4, 'af', 'a4')",
        "UPDATE accounts SET region = 'asia' WHERE id = 1",
    )
    wait_for(lambda: len(mig.documents("accounts")) == 4 or not follower.alive, "the new rows")
    follower.finish()
    run(mig, plan)  # a run that starts compares the catalog with the snapshot's: no stop
    assert_documents(
        mig,
        "accounts",
        [
            {"_id": {"id": r[0], "region": r[1]}, "name": r[2]}
            for r in mig.rows("SELECT id, region, name FROM accounts")
        ],
    )


@WHEN
def test_a_mapped_column_dropped_and_added_again_stops_the_run(mig: Migration, when: str) -> None:
    # Same name and type: only its attnum tells the new column (NULL in every row) from the old.
    name = f"cdc-shape-readded-{when}"
    mig.sql(*THINGS)
    plan = mig.plan("- {name: things, from: things, key: id}", name=name)
    run(mig, plan, "snapshot")
    run(mig, plan)
    error = stops(mig, plan, name, when, "ALTER TABLE things DROP qty, ADD qty integer")
    assert "column public.things.qty was dropped and added again" in str(error), error
    assert error.hint is not None and "migrator rollback" in error.hint
    assert [d["qty"] for d in mig.documents("things")] == [1, 2, 3]


@WHEN
@pytest.mark.parametrize(
    ("case", "alter", "says"),
    [
        ("drop-table", "DROP TABLE things", "it no longer publishes table public.things"),
        (
            "publish",
            "SET (publish = 'insert, update, truncate')",
            "it no longer publishes DELETE (publish = 'insert, update, truncate')",
        ),
        ("viaroot", "SET (publish_via_partition_root = true)", "publish_via_partition_root = true"),
        ("row-filter", "SET TABLE things WHERE (id > 1)", "table public.things has a row filter"),
        (
            "column-list",
            "SET TABLE things (id, name)",
            "its column list for table public.things leaves out qty",
        ),
    ],
)
def test_the_runs_publication_altered_stops_the_run_until_restored(
    mig: Migration, when: str, case: str, alter: str, says: str
) -> None:
    """pgoutput sends nothing of what the publication no longer publishes: the run stops naming
    the publication and what changed; the statements of its hint restore it, and the run goes
    on (docs/architecture.md, "The run's publication")."""
    name = f"cdc-pub-{case}-{when}"
    publication = publication_name(name)
    mig.sql(*THINGS)
    plan = mig.plan("- {name: things, from: things, key: id}", name=name)
    run(mig, plan, "snapshot")
    run(mig, plan)
    error = stops(mig, plan, name, when, f"ALTER PUBLICATION {publication} {alter}")
    assert f"publication {publication}" in str(error) and says in str(error), error
    assert error.hint is not None and "verify --repair" in error.hint, error.hint
    restore = error.hint.split("restore it: ")[1].split(" then `migrator run`")[0]
    assert restore.startswith(f"ALTER PUBLICATION {publication}"), restore
    mig.sql(restore)  # PostgreSQL accepts it, and the run goes on
    transactions(mig, "DELETE FROM things WHERE id = 1", "UPDATE things SET qty = 20 WHERE id = 2")
    run(mig, plan)
    assert_documents(mig, "things", flat_documents(mig, "SELECT id, name, qty FROM things"))
