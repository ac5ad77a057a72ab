"""AUTO_INCREMENT counters under `auto_increment_increment` > 1 and `auto_increment_offset`
(migrator/adapters/mysql/auto_increment.py): the application's sessions give out keys in a series
(offset + k * increment), which cutover reads as the last value given out and rollback after
cutover raises the counter past. The next key the application takes after the raise must lie past
every key the target gave out (the target's last value plus the margin) and in its own series;
the expected keys are computed here from MariaDB's documented rule (the smallest value of the
series at or above the counter), not from the code under test."""

from __future__ import annotations

from typing import Any

from migrator.adapters.mysql import MysqlSource
from tests.support.mariadb import connect, database

INCREMENT, OFFSET = 3, 2


def _app(url: str) -> Any:
    """A connection as an application with its own series: keys 2, 5, 8, ..."""
    conn = connect(url)
    with conn.cursor() as cur:
        cur.execute(f"SET SESSION auto_increment_increment = {INCREMENT}, auto_increment_offset = {OFFSET}")
    return conn


def _insert(conn: Any, name: str) -> int:
    with conn.cursor() as cur:
        cur.execute("INSERT INTO items (name) VALUES (%s)", [name])
        cur.execute("SELECT LAST_INSERT_ID()")
        return int(cur.fetchone()[0])


def _next_in_series(at_least: int) -> int:
    k = max(0, -(-(at_least - OFFSET) // INCREMENT))
    return OFFSET + k * INCREMENT


def test_counter_in_a_series_is_read_and_raised_past_the_targets_keys(mysql_url: str) -> None:
    table = f"{database(mysql_url)}.items"
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name TEXT) ENGINE=InnoDB")
    app = _app(mysql_url)
    source = MysqlSource(mysql_url)
    try:
        given = [_insert(app, f"a{i}") for i in range(3)]
        assert given == [2, 5, 8]
        # Cutover: the target's identity is brought past the last value given out.
        (last,) = source.sequence_values([table])[table].values()
        assert last >= 8, last

        # After cutover the target gave out keys up to 44: 41 reached the source through reverse
        # sync (an explicit key), 44 went to a row deleted since (it never did).
        with connect(mysql_url) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO items VALUES (41, 'from the target')")
        margin = 10
        source.set_sequences({table: {"id": 44}}, margin)
        after = [_insert(app, f"b{i}") for i in range(3)]
        first = _next_in_series(44 + margin + 1)
        assert after == [first, first + INCREMENT, first + 2 * INCREMENT], after
        assert all(key > 44 + margin for key in after)

        # Never back: a lower value leaves the counter where it is.
        source.set_sequences({table: {"id": 5}}, margin)
        assert _insert(app, "c") == first + 3 * INCREMENT
    finally:
        source.close()
        app.close()
