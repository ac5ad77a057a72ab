"""CDC of rows whose key or link is stored out of line (TOASTed), against real servers.

An UPDATE that leaves such a value alone sends it as "unchanged" in the new tuple, for a key
column too; PostgreSQL then logs the old replica identity (docs/architecture.md, "Unchanged
TOASTed values"). Expected documents are built from plain SQL on the source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from migrator import api
from migrator.adapters.mongodb.applier import ChangeApplier
from migrator.errors import TerminalError
from migrator.mapping.changes import ChangeMapper
from tests.support.compare import assert_documents, flat_documents, records
from tests.support.docs import Migration
from tests.support.runs import follow, run, transactions, wait_for
from tests.support.toast import BIG_FUNCTION, toasted_rows

pytestmark = pytest.mark.usefixtures("stop_followers")

# 2400 characters: over the ~2 kB at which PostgreSQL moves a row's values out of line (and SET
# STORAGE EXTERNAL keeps them uncompressed), under the ~2.7 kB a B-tree index entry may hold.
KEY_FUNCTION = (
    "CREATE FUNCTION k(seed text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT left(big(seed), 2400) $$"
)
IDENTITIES = pytest.mark.parametrize("identity", ["DEFAULT", "FULL"])


def notes(mig: Migration, identity: str, name: str) -> Path:
    mig.sql(
        BIG_FUNCTION,
        KEY_FUNCTION,
        "CREATE TABLE notes (code text PRIMARY KEY, qty integer, body text)",
        "ALTER TABLE notes ALTER COLUMN code SET STORAGE EXTERNAL",
        f"ALTER TABLE notes REPLICA IDENTITY {identity}",
        "INSERT INTO notes SELECT k('n' || g), g, 'b' || g FROM generate_series(1, 5) g",
    )
    return mig.plan("- {name: notes, from: notes, key: code}", name=name)


def notes_expected(mig: Migration) -> list[dict[str, Any]]:
    return flat_documents(mig, "SELECT code, qty, body FROM notes")


@IDENTITIES
def test_an_update_of_a_row_whose_toasted_key_is_unchanged(mig: Migration, identity: str) -> None:
    plan = notes(mig, identity, f"cdc-toast-key-{identity.lower()}")
    run(mig, plan, "snapshot")
    assert toasted_rows(mig, "notes") >= 5
    transactions(
        mig,
        "UPDATE notes SET qty = 10 WHERE code = k('n1')",  # the key arrives as 'unchanged'
        "UPDATE notes SET body = 'b2-changed', qty = NULL WHERE code = k('n2')",
        "UPDATE notes SET code = k('n30'), qty = 30 WHERE code = k('n3')",  # a real key change
        ["UPDATE notes SET qty = 40 WHERE code = k('n4')", "UPDATE notes SET qty = 41 WHERE code = k('n4')"],
        ["UPDATE notes SET qty = 50 WHERE code = k('n5')", "DELETE FROM notes WHERE code = k('n5')"],
        "INSERT INTO notes VALUES (k('n6'), 6, 'b6')",
    )
    outcome = run(mig, plan).outcome
    assert outcome is not None and outcome.cdc is not None and outcome.cdc.caught_up
    assert_documents(mig, "notes", notes_expected(mig))


def kids_expected(mig: Migration) -> list[dict[str, Any]]:
    kids: dict[str, list[dict[str, Any]]] = {}
    for kid in records(mig, "SELECT code, n, label FROM kids ORDER BY code, n"):
        kids.setdefault(kid["code"], []).append({"n": kid["n"], "label": kid["label"]})
    return [
        {"_id": p["code"], "name": p["name"], "kids": kids.get(p["code"], [])}
        for p in records(mig, "SELECT code, name FROM parents")
    ]


@IDENTITIES
def test_embedded_children_whose_toasted_key_and_link_are_unchanged(mig: Migration, identity: str) -> None:
    # kids: the key (code, n) holds the link, so the old identity carries the link too.
    mig.sql(
        BIG_FUNCTION,
        KEY_FUNCTION,
        "CREATE TABLE parents (code text PRIMARY KEY, name text)",
        "CREATE TABLE kids (code text NOT NULL REFERENCES parents ON UPDATE CASCADE, n integer, label text,"
        " PRIMARY KEY (code, n))",
        "ALTER TABLE parents ALTER COLUMN code SET STORAGE EXTERNAL",
        "ALTER TABLE kids ALTER COLUMN code SET STORAGE EXTERNAL",
        f"ALTER TABLE kids REPLICA IDENTITY {identity}",
        "INSERT INTO parents SELECT k('p' || g), 'p' || g FROM generate_series(1, 3) g",
        "INSERT INTO kids SELECT k('p' || g), n, 'k' || g || n FROM generate_series(1, 3) g, generate_series(1, 2) n",
    )
    plan = mig.plan(
        """
        - name: parents
          from: parents
          key: code
          embed: [{as: kids, from: kids, on: {code: code}, key: [code, n]}]
        """,
        name=f"cdc-toast-link-{identity.lower()}",
    )
    run(mig, plan, "snapshot")
    assert toasted_rows(mig, "parents") >= 3 and toasted_rows(mig, "kids") >= 6
    transactions(
        mig,
        "UPDATE parents SET name = 'p1-renamed' WHERE code = k('p1')",  # root key unchanged
        "UPDATE kids SET label = 'relabelled' WHERE code = k('p1') AND n = 1",  # key and link unchanged
        "UPDATE kids SET n = 3 WHERE code = k('p2') AND n = 2",  # element key change, link unchanged
        "UPDATE parents SET code = k('p30') WHERE code = k('p3')",  # cascades to the kids' link
        "UPDATE kids SET label = 'after-the-move' WHERE code = k('p30') AND n = 1",
    )
    outcome = run(mig, plan).outcome
    assert outcome is not None and outcome.cdc is not None and outcome.cdc.caught_up
    assert_documents(mig, "parents", kids_expected(mig))


def test_an_unexpected_error_is_recorded_with_where_it_happened(
    mig: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug (an error that is no MigratorError) that ends CDC: `migrator status` shows it, with the
    table or the positions it happened at, and the CDC phase is failed, not left running."""
    plan = notes(mig, "DEFAULT", "cdc-unexpected")
    run(mig, plan, "snapshot")
    transactions(mig, "UPDATE notes SET qty = 10 WHERE code = k('n1')")

    def broken_update(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the mapping")

    def broken_apply(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the applier")

    for target, name, broken, where in (
        (ChangeMapper, "update", broken_update, "public.notes"),
        (ChangeApplier, "apply", broken_apply, "0/"),
    ):
        with monkeypatch.context() as patched:
            patched.setattr(target, name, broken)
            with pytest.raises(TerminalError, match="unexpected error") as raised:
                run(mig, plan)
        assert "RuntimeError" in str(raised.value) and where in str(raised.value)
        report = api.status(plan, state=mig.state_path, env=mig.env, live=False)
        assert report.errors, "status shows no error"
        error = report.errors[-1]
        assert error.phase == "cdc" and "RuntimeError" in error.message and where in error.message
        assert not error.retrying
        assert [p.status for p in report.phases if p.name == "cdc"] == ["failed"]
    # Nothing was lost: once the bug is gone, the run goes on from its checkpoint.
    run(mig, plan)
    assert_documents(mig, "notes", notes_expected(mig))


def test_a_link_that_neither_tuple_carries_is_found_by_the_elements_own_key(mig: Migration) -> None:
    # kids' link is stored out of line. Under REPLICA IDENTITY FULL (what plan accepts) the old
    # row carries it; once the identity is the primary key id alone, an UPDATE of the label
    # carries the link as "unchanged" and no old tuple at all.
    mig.sql(
        BIG_FUNCTION,
        KEY_FUNCTION,
        "CREATE TABLE parents (code text PRIMARY KEY, name text)",
        "CREATE TABLE kids (id integer PRIMARY KEY, code text NOT NULL REFERENCES parents, label text)",
        "ALTER TABLE parents ALTER COLUMN code SET STORAGE EXTERNAL",
        "ALTER TABLE kids ALTER COLUMN code SET STORAGE EXTERNAL",
        "ALTER TABLE kids REPLICA IDENTITY FULL",
        "INSERT INTO parents SELECT k('p' || g), 'p' || g FROM generate_series(1, 2) g",
        "INSERT INTO kids SELECT g, k('p' || g), 'k' || g FROM generate_series(1, 2) g",
    )
    name = "cdc-toast-lost-link"
    plan = mig.plan(
        "- {name: parents, from: parents, key: code, embed: [{as: kids, from: kids, on: {code: code}, key: id}]}",
        name=name,
    )
    run(mig, plan, "snapshot")
    follower = follow(mig, plan, name)
    transactions(mig, "UPDATE kids SET label = 'full' WHERE id = 1")
    wait_for(
        lambda: not follower.alive or mig.documents("parents")[0]["kids"][0]["label"] == "full",
        "the update under REPLICA IDENTITY FULL",
    )
    transactions(
        mig, "ALTER TABLE kids REPLICA IDENTITY DEFAULT", "UPDATE kids SET label = 'placed' WHERE id = 2"
    )
    # The link did not change (it is unchanged, and no old tuple says otherwise): the element is
    # found by its own key, id, unique in kids.
    wait_for(
        lambda: (
            not follower.alive
            or sorted(k["label"] for d in mig.documents("parents") for k in d["kids"]) == ["full", "placed"]
        ),
        "the update under the default identity",
    )
    assert follower.alive
    kids: dict[str, list[dict[str, Any]]] = {}
    for kid in records(mig, "SELECT code, id, label FROM kids ORDER BY id"):
        kids.setdefault(kid["code"], []).append({"id": kid["id"], "label": kid["label"]})
    expected = [
        {"_id": p["code"], "name": p["name"], "kids": kids.get(p["code"], [])}
        for p in records(mig, "SELECT code, name FROM parents")
    ]
    assert_documents(mig, "parents", expected)
