"""The demo's throwaway PostgreSQL target (scripts/demo --target postgres): a second cluster,
wal_level=logical (reverse sync after cutover reads a slot on it), kept running after the demo
like scripts/services' servers, its state in its own directory (.services-pg-target by default).

    python scripts/lib/demo_pg_target.py up|down|url [--dir DIR] [--database demo]

`up` starts a new cluster on a free port (after `down` of any previous one) and creates the
database; `url` prints its URL with that database. The demo creates nothing else there: migrator
creates the source's enum types (customers.status) before the tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import psycopg
from devservices import REPO_ROOT, PgServer, ServiceError, ServiceUnavailable, port_open, start_postgres
from psycopg import sql

STATE_FILE = "state.json"


def cmd_up(directory: Path, database: str) -> int:
    cmd_down(directory)
    directory.mkdir(parents=True, exist_ok=True)
    server = start_postgres(directory / "postgres", die_with_parent=False)
    (directory / STATE_FILE).write_text(
        json.dumps({**server.to_state(), "database": database}, indent=2) + "\n"
    )
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    print(f"postgres (target) started: {server.url_for(database)}")
    return 0


def cmd_down(directory: Path) -> int:
    path = directory / STATE_FILE
    if path.exists():
        PgServer.from_state(json.loads(path.read_text())).stop()
        path.unlink()
        print("postgres (target) stopped")
    return 0


def cmd_url(directory: Path) -> int:
    path = directory / STATE_FILE
    if not path.exists():
        print(f"no PostgreSQL target is up (state in {directory})", file=sys.stderr)
        return 1
    state = json.loads(path.read_text())
    server = PgServer.from_state(state)
    if not port_open(server.port):
        print(f"the PostgreSQL target is down (state in {directory})", file=sys.stderr)
        return 1
    print(server.url_for(state["database"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo_pg_target.py", description="The demo's PostgreSQL target.")
    parser.add_argument("command", choices=["up", "down", "url"])
    parser.add_argument("--dir", type=Path, default=REPO_ROOT / ".services-pg-target")
    parser.add_argument("--database", default="demo")
    args = parser.parse_args(argv)
    directory: Path = args.dir.resolve()
    try:
        if args.command == "up":
            return cmd_up(directory, args.database)
        if args.command == "down":
            return cmd_down(directory)
        return cmd_url(directory)
    except (ServiceUnavailable, ServiceError, OSError, psycopg.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
