"""The README's tour on a user's own database (issue 14's "Done when"): `migrator init` proposes a
plan from a live PostgreSQL with three related tables, `migrator plan` takes it as written, a
`migrator run --http-port 0` answers `/api/v1/progress` while it follows a change, and
`run --until caught-up`, `verify` and `status` keep the `--json` contract (every stdout line
parses, exit codes of docs/json.md).

The expectations come from the test's own rows: 40 customers, 2 orders each, 3 items an order,
and one order inserted while the run follows."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from migrator.cli.main import cli
from tests.support import json_output
from tests.support.cli_process import MigratorRun
from tests.support.docs import Migration

CUSTOMERS, ORDERS_EACH, ITEMS_EACH = 40, 2, 3


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (
        "CREATE TABLE customers (id integer PRIMARY KEY, email text NOT NULL UNIQUE, name text)",
        "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customers (id),"
        " total numeric(10, 2))",
        "CREATE TABLE order_items (order_id integer NOT NULL REFERENCES orders (id), line integer NOT NULL,"
        " sku text, PRIMARY KEY (order_id, line))",
        f"INSERT INTO customers SELECT g, 'c' || g || '@example.com', 'c' || g FROM generate_series(1, {CUSTOMERS}) g",
        f"INSERT INTO orders SELECT g, 1 + (g - 1) % {CUSTOMERS}, g * 1.5"
        f" FROM generate_series(1, {CUSTOMERS * ORDERS_EACH}) g",
        f"INSERT INTO order_items SELECT o, l, 'sku' || l FROM generate_series(1, {CUSTOMERS * ORDERS_EACH}) o,"
        f" generate_series(1, {ITEMS_EACH}) l",
        "ANALYZE",
    )


def _cli(env: dict[str, str], *args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), env={**env, "MIGRATOR_STATE": None})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _progress(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            assert response.headers["Content-Type"] == "application/json"
            return dict(json.loads(response.read()))
    except OSError:
        return None


def _poll(what: str, read: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"never: {what}")


def test_init_plan_run_watched_verify_on_a_new_database(mig: Migration, tmp_path: Path) -> None:
    env = mig.env  # no MIGRATOR_STATE: the state file beside the plan, as for a new user
    plan_file = tmp_path / "plan.yaml"

    proposed = _cli(env, "init", mig.pg_url, "-o", str(plan_file), "--database", mig.database, "--json")
    assert proposed.exit_code == 0, proposed.output
    init = json_output.one_object(proposed.stdout)
    assert init["output"] == str(plan_file) and init["skipped"] == {}
    assert init["collections"] == [
        {
            "table": "public.customers",
            "embeds": [
                {
                    "table": "public.orders",
                    "one": False,
                    "embeds": [{"table": "public.order_items", "one": False, "embeds": []}],
                }
            ],
        }
    ]

    checked = _cli(env, "plan", str(plan_file), "--json")
    assert checked.exit_code == 0, checked.output
    assert json_output.one_object(checked.stdout)["ready"] is True

    run = MigratorRun(
        ["run", str(plan_file), "--http-port", "0"],
        {**{k: v for k, v in os.environ.items() if k != "MIGRATOR_STATE"}, **env},
        cwd=tmp_path,
        event_timeout=60,
    )
    try:
        served = _poll(
            "the dashboard's address on stderr", lambda: re.search(r"http://[\d.]+:\d+/", run.stderr)
        )
        api = served.group(0) + "api/v1/progress"
        run.wait_for("phase.started", phase="cdc")
        following = _poll("progress while CDC follows", lambda: _progress(api))
        assert following["command"] == "run" and following["run"]["status"] == "running"
        assert following["snapshot"]["documents"] == CUSTOMERS, following["snapshot"]
        mig.sql(
            f"INSERT INTO orders VALUES ({CUSTOMERS * ORDERS_EACH + 1}, 7, 9.99)",
            f"INSERT INTO order_items VALUES ({CUSTOMERS * ORDERS_EACH + 1}, 1, 'new')",
        )
        moved = _poll(
            "the change in /api/v1/progress",
            lambda: (p := _progress(api)) and (p["cdc"] or {}).get("changes"),
        )
        assert moved >= 2
        run.signal(signal.SIGINT)
        assert run.finish() == 0, run.describe()  # stopped while following: exit 0 (docs/cli.md)
    finally:
        run.kill_if_running()
    assert all(json.loads(line) for line in run.lines), run.describe()  # every stdout line parses
    assert run.result()["stopped_after"] == "interrupted" and run.events[-1]["event"] == "result"

    caught_up = _cli(env, "run", str(plan_file), "--until", "caught-up", "--json")
    assert caught_up.exit_code == 0, caught_up.output
    assert json_output.result(caught_up.stdout)["cdc"]["caught_up"] is True

    verified = _cli(env, "verify", str(plan_file), "--json")
    assert verified.exit_code == 0, verified.output
    report = json_output.result(verified.stdout)
    assert (report["verdict"], report["checked"], report["equal"]) == ("equal", CUSTOMERS, CUSTOMERS), report
    customer = mig.client[mig.database]["customers"].find_one({"_id": 7})
    assert customer is not None and len(customer["orders"]) == ORDERS_EACH + 1
    assert sorted(len(order["order_items"]) for order in customer["orders"]) == [1, ITEMS_EACH, ITEMS_EACH]

    shown = _cli(env, "status", str(plan_file), "--json")
    assert shown.exit_code == 0, shown.output
    assert json_output.one_object(shown.stdout)["run"]["id"] == run.result()["run_id"]
