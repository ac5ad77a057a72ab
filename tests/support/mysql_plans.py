"""The plan the MySQL-source tests of one customers table with its orders embedded write: its
customers collection from the source URL's database, each customer's orders embedded by
customer_id."""

from __future__ import annotations

from pathlib import Path

from tests.support.mariadb import database

# A target nothing listens on (port 1): for tests that resolve a plan without running it.
NO_TARGET = "mongodb://127.0.0.1:1/?directConnection=true"


def customers_plan(
    path: Path,
    source_url: str,
    orders: str,
    *,
    target: str = NO_TARGET,
    target_db: str = "app",
    phases: str = "",
) -> Path:
    """Write the plan to `path`: `orders` the embed's settings beside as/from/on (flow YAML, e.g.
    "key: id, order_by: id"), `phases` the YAML of the phases' settings (flow YAML per phase, one a
    line, e.g. "snapshot: {parallel: 3}"); `path` returned."""
    schema = database(source_url)
    text = f"""\
version: 1
source: {{adapter: mysql, url: "{source_url}"}}
target: {{adapter: mongodb, url: "{target}", database: {target_db}}}
collections:
  - name: customers
    from: {schema}.customers
    key: id
    embed:
      - {{as: orders, from: {schema}.orders, on: {{customer_id: id}}, {orders}}}
"""
    if phases:
        text += "phases:\n" + "".join(f"  {line}\n" for line in phases.splitlines())
    path.write_text(text)
    return path
