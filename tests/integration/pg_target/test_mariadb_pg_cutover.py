"""MariaDB -> PostgreSQL cutover, reverse sync and rollback after cutover (issue 16): an
application inserts, updates and deletes rows of many MySQL types (tests/support/mariadb_pg_app.py)
on the source, through `migrator cutover`, then on the target; reverse sync carries the target's
writes back; `rollback` switches back; the MariaDB rows then equal the application's own log of
what it wrote (never migrator's type table). The target's identity goes on past the source's
AUTO_INCREMENT (plus the margin), and after rollback the source's AUTO_INCREMENT is above every key
given out on the target. Then rollback to the start, and a run again copies clean."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from migrator import api
from tests.support.mariadb import connect, database
from tests.support.mariadb_pg_app import ITEMS, App, source_params, source_rows, values

MARGIN = 100


@pytest.fixture
def urls(mariadb_pg_urls: tuple[str, str]) -> tuple[str, str]:
    return mariadb_pg_urls


def _plan(tmp_path: Path, source_url: str, target_url: str, switch: Path) -> Path:
    path = tmp_path / "m2pcut.yaml"
    path.write_text(
        "version: 1\nname: m2pcut\n"
        f'source: {{adapter: mysql, url: "{source_url}"}}\n'
        f'target: {{adapter: postgres, url: "{target_url}"}}\n'
        f"tables:\n  - {{from: {database(source_url)}.items, name: public.items, types: {{flag: bool}}}}\n"
        "phases:\n"
        "  cdc: {heartbeat_interval: 1s}\n"
        f"  cutover: {{max_write_freeze: 5s, retries: 1, retry_pause: 0.2s, sequence_margin: {MARGIN},\n"
        f'            switch: {{kind: file, path: "{switch}"}}}}\n'
    )
    return path


def _run(plan: Path, state: Path) -> None:
    stop = threading.Event()
    timer = threading.Timer(120, stop.set)  # a safety net only: the run ends by itself
    timer.start()
    try:
        api.run(plan, until="caught-up", state=state, env={}, stop=stop)  # type: ignore[arg-type]
    finally:
        timer.cancel()


def _mysql(url: str, *statements: str, params: list[list[object]] | None = None) -> None:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        for i, statement in enumerate(statements):
            cur.execute(statement, params[i] if params else None)


def _counter(url: str) -> int:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = 'items'"
        )
        return int(cur.fetchone()[0])


def test_cutover_reverse_sync_and_rollback_from_mariadb_to_postgresql(
    urls: tuple[str, str], tmp_path: Path
) -> None:
    source_url, target_url = urls
    marks = ", ".join(["%s"] * 18)
    _mysql(source_url, ITEMS)
    first = {n: values(n) for n in range(1, 21)}
    _mysql(
        source_url,
        *[f"INSERT INTO items VALUES (%s, {marks})"] * len(first),
        params=[[n, *source_params(row)] for n, row in first.items()],
    )
    switch = tmp_path / "routing"
    plan = _plan(tmp_path, source_url, target_url, switch)
    state = tmp_path / "state.db"
    report = api.plan(plan, env={})
    assert report.ready, [(f.check, f.subject, f.message) for f in report.failures]
    assert [f.subject for f in report.findings if f.check == "target.sequences"] == ["public.items.id"]
    _run(plan, state)

    app = App(source_url, target_url, switch, list(first)).start()
    try:
        while app.counts["source"] < 20 and not app.errors:
            app.stop.wait(0.05)
        api.cutover(plan, state=state, env={})
        assert switch.read_text() == "target\n"
        before = app.counts["target"]
        while app.counts["target"] < before + 30 and not app.errors:
            app.stop.wait(0.05)
    finally:
        app.finish()
    assert app.errors == [], app.errors
    assert app.counts["source"] >= 20 and app.counts["target"] >= 30, app.counts

    # Keys given out on the target start past the source's counter plus the margin.
    assert app.inserted["source"] and app.inserted["target"], app.inserted
    assert min(app.inserted["target"]) == max(app.inserted["source"]) + MARGIN + 1, app.inserted

    # A row the target gives a key to and deletes again: the key never reaches MariaDB.
    with psycopg.connect(target_url, autocommit=True) as conn:
        row = conn.execute("INSERT INTO public.items (name) VALUES ('gone') RETURNING id").fetchone()
        assert row is not None
        gone = int(row[0])
        conn.execute("DELETE FROM public.items WHERE id = %s", [gone])
    assert gone > max(app.inserted["target"]), (gone, app.inserted)

    api.rollback(plan, state=state, env={})
    assert switch.read_text() == "source\n"
    expected = {**first, **app.expected}
    assert source_rows(source_url) == {k: row for k, row in expected.items() if row is not None}
    # The source's AUTO_INCREMENT is above every key the target gave out, the deleted row's too,
    # by the margin: the application's next insert on MariaDB takes a key never used.
    assert _counter(source_url) > max(app.expected)
    with connect(source_url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO items (name) VALUES ('back on the source')")
        cur.execute("SELECT LAST_INSERT_ID()")
        assert int(cur.fetchone()[0]) == gone + MARGIN + 1
        cur.execute("DELETE FROM items WHERE name = 'back on the source'")

    api.rollback(plan, to="start", state=state, env={})
    with psycopg.connect(target_url, autocommit=True) as conn:
        # Nothing of the run is left on the target: no slot, no table (migrator made it).
        slots = "SELECT slot_name FROM pg_replication_slots WHERE database = current_database()"
        assert conn.execute(slots).fetchall() == []
        assert conn.execute("SELECT to_regclass('public.items')").fetchall() == [(None,)]
    _run(plan, state)
    with psycopg.connect(target_url, autocommit=True) as conn:
        found = conn.execute("SELECT id FROM public.items ORDER BY id").fetchall()
    assert [k for (k,) in found] == sorted(k for k, row in expected.items() if row is not None)


def test_a_text_column_not_in_utf8mb4_is_refused_for_cutover_and_its_fix_is_accepted(
    urls: tuple[str, str], tmp_path: Path
) -> None:
    source_url, target_url = urls
    _mysql(
        source_url,
        # BIGINT UNSIGNED AUTO_INCREMENT: numeric(20,0) on the target, which cannot be an identity.
        "CREATE TABLE items (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, flag TINYINT(1), "
        "name VARCHAR(20) CHARACTER SET latin1 NOT NULL, note TEXT CHARACTER SET utf8mb4)",
        "INSERT INTO items VALUES (1, 1, 'café', 'ok ✓')",
    )
    plan = _plan(tmp_path, source_url, target_url, tmp_path / "routing")
    report = api.plan(plan, env={})
    refused = [f for f in report.failures if f.check == "target.cutover"]
    assert [f.subject for f in refused] == [f"{database(source_url)}.items.name"], refused
    assert refused[0].fix is not None
    _mysql(source_url, refused[0].fix.split(" (repeat", 1)[0])
    report = api.plan(plan, env={})
    assert report.ready, [(f.check, f.subject, f.message) for f in report.failures]
    assert [f for f in report.findings if f.check == "target.sequences"] == []
    _run(plan, tmp_path / "state.db")
    with psycopg.connect(target_url, autocommit=True) as conn:
        assert conn.execute("SELECT id, name, note FROM public.items").fetchall() == [(1, "café", "ok ✓")]
    with connect(source_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT name, CHARSET(name), IS_NULLABLE FROM items JOIN information_schema.COLUMNS c "
            "ON c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = 'items' AND c.COLUMN_NAME = 'name'"
        )
        assert cur.fetchall() == (("café", "utf8mb4", "NO"),)
