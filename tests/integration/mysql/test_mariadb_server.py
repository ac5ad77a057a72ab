"""The throwaway MariaDB the MySQL-source tests use is a binlog source as a migration needs one."""

from __future__ import annotations

from tests.support.mariadb import connect


def test_the_server_logs_full_row_images_in_row_format(mysql_url: str) -> None:
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@server_id"
        )
        assert cur.fetchone() == (1, "ROW", "FULL", "FULL", 1)
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB")
        cur.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
        cur.execute("SELECT id, v FROM t ORDER BY id")
        assert cur.fetchall() == ((1, "a"), (2, "b"))
        cur.execute("SHOW BINARY LOGS")
        assert cur.fetchall(), "the server writes a binlog"
