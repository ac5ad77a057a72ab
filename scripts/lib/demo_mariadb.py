"""The demo's throwaway MariaDB (scripts/demo --source mariadb), kept running after the demo like
scripts/services' servers, its state in its own directory (.services-mariadb by default).

    python scripts/lib/demo_mariadb.py up|down|url [--dir DIR] [--database demo]

`up` starts a new server (after `down` of any previous one) and creates the database; `url` prints
its URL with that database. Standard library and mariadb_server.py only.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
from pathlib import Path

from devservices import REPO_ROOT, ServiceError, ServiceUnavailable
from mariadb_server import MariaDbServer, start_mariadb

STATE_FILE = "state.json"


def _server(directory: Path) -> MariaDbServer | None:
    path = directory / STATE_FILE
    return MariaDbServer.from_state(json.loads(path.read_text())) if path.exists() else None


def _create_database(server: MariaDbServer, database: str) -> None:
    """CREATE DATABASE through the mariadb client over the server's socket (no PyMySQL needed)."""
    client = server.bindir.parent / "bin" / "mariadb"
    command = [str(client) if client.exists() else "mariadb", "--no-defaults", "-uroot"]
    command += [f"--socket={server.socket_path}", "-e"]
    command.append(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
    subprocess.run(command, check=True, capture_output=True)


def cmd_up(directory: Path, database: str) -> int:
    cmd_down(directory)
    directory.mkdir(parents=True, exist_ok=True)
    server = start_mariadb(directory / "mariadb", die_with_parent=False)
    state = {**server.to_state(), "database": database}
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    _create_database(server, database)
    print(f"mariadb  started: {server.url_for(database)}")
    return 0


def cmd_down(directory: Path) -> int:
    server = _server(directory)
    if server is not None:
        server.stop()
        (directory / STATE_FILE).unlink()
        print("mariadb  stopped")
    return 0


def cmd_url(directory: Path) -> int:
    path = directory / STATE_FILE
    if not path.exists():
        print(f"no MariaDB is up (state in {directory})", file=sys.stderr)
        return 1
    state = json.loads(path.read_text())
    with socket.create_connection(("127.0.0.1", int(state["port"])), timeout=2):
        pass
    print(f"mysql://root@127.0.0.1:{state['port']}/{state['database']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo_mariadb.py", description="The demo's throwaway MariaDB.")
    parser.add_argument("command", choices=["up", "down", "url"])
    parser.add_argument("--dir", type=Path, default=REPO_ROOT / ".services-mariadb")
    parser.add_argument("--database", default="demo")
    args = parser.parse_args(argv)
    directory: Path = args.dir.resolve()
    try:
        if args.command == "up":
            return cmd_up(directory, args.database)
        if args.command == "down":
            return cmd_down(directory)
        return cmd_url(directory)
    except (ServiceUnavailable, ServiceError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
