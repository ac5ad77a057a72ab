"""pagila (https://github.com/devrimgunduz/pagila), a well-known public sample schema, as a
migration: snapshot, a CDC workload, and a checker that builds every document from SQL.

tests/corpus/pagila/schema.sql is a compact, faithful pagila: its tables and types (an enum, a
domain, char(20), text[], tsvector, bytea), its foreign keys, its last_updated and fulltext
triggers, and payment partitioned by month; data.sql fills it deterministically. The plan is a
realistic document model:

- customers: each with its address (a lookup, the customer holds address_id) holding its city
  holding its country (nested lookups), and its payments (an array from the partitioned table);
- films: the language (a lookup), actors (film_actor rows, each with the actor looked up) and
  categories likewise; `fulltext` (tsvector, derived data) is refused until excluded;
- rentals with their inventory item; stores with their staff, the password excluded.

The workload is a seeded sequence of pagila's everyday transactions (rent, pay, return, move a
payment to another month's partition, re-point a customer's address, rename a city or a country
that many documents embed, recast a film, change prices), run while `migrator run` follows.
"""

from __future__ import annotations

import random

from tests.support.corpus import Scenario, scenario_fixture
from tests.support.expected import Coll, Embed
from tests.support.pagila import HERE, SEED, workload, writers_across_a_restart

scenario = scenario_fixture("pagila")


def collections(*, exclude_fulltext: bool) -> list[Coll]:
    country = Embed("country", "country", {"country_id": "country_id"}, many=False)
    city = Embed("city", "city", {"city_id": "city_id"}, many=False, embeds=(country,))
    return [
        Coll(
            "customers",
            "customer",
            ("customer_id",),
            embeds=(
                Embed("address", "address", {"address_id": "address_id"}, many=False, embeds=(city,)),
                Embed(
                    "payments",
                    "payment",
                    {"customer_id": "customer_id"},
                    key=("payment_date", "payment_id"),
                    order_by=("payment_date",),
                ),
            ),
        ),
        Coll(
            "films",
            "film",
            ("film_id",),
            exclude=("fulltext",) if exclude_fulltext else (),
            embeds=(
                Embed("language", "language", {"language_id": "language_id"}, many=False),
                Embed(
                    "actors",
                    "film_actor",
                    {"film_id": "film_id"},
                    embeds=(Embed("actor", "actor", {"actor_id": "actor_id"}, many=False),),
                ),
                Embed(
                    "categories",
                    "film_category",
                    {"film_id": "film_id"},
                    embeds=(Embed("category", "category", {"category_id": "category_id"}, many=False),),
                ),
            ),
        ),
        Coll(
            "rentals",
            "rental",
            ("rental_id",),
            embeds=(Embed("inventory", "inventory", {"inventory_id": "inventory_id"}, many=False),),
        ),
        Coll(
            "stores",
            "store",
            ("store_id",),
            embeds=(
                Embed("staff", "staff", {"store_id": "store_id"}, key=("staff_id",), exclude=("password",)),
            ),
        ),
    ]


def test_01_plan_refuses_the_tsvector_and_passes_once_it_is_excluded(scenario: Scenario) -> None:
    scenario.sql((HERE / "schema.sql").read_text(), (HERE / "data.sql").read_text(), "ANALYZE")
    scenario.write_plan(collections(exclude_fulltext=False))
    failures = scenario.preflight().failures
    assert [(f.check, f.subject) for f in failures] == [("mapping.type_supported", "public.film.fulltext")], (
        failures
    )
    assert "exclude" in (failures[0].fix or ""), failures[0]
    scenario.write_plan(collections(exclude_fulltext=True))
    scenario.assert_plan_ready()


def test_02_snapshot(scenario: Scenario) -> None:
    scenario.start()
    scenario.assert_target()
    assert len(scenario.documents("customers")) == 100


def test_03_workload_while_following(scenario: Scenario) -> None:
    scenario.step(*workload(random.Random(SEED)))
    scenario.assert_target()
    # The workload reached what it is for: renamed countries inside addresses inside customers,
    # and payments moved to a later month (a delete and an insert on the wire).
    customers = scenario.documents("customers")
    assert any(
        (c["address"]["city"]["country"]["country"]).startswith("Renamed") for c in customers if c["address"]
    )
    assert scenario.scalar("SELECT count(*) FROM payment WHERE payment_date >= '2022-07-01'") > 0


def test_04_concurrent_writers_while_the_run_restarts(scenario: Scenario) -> None:
    """Two writers at once (their transactions interleave and commit in another order than they
    began), and `migrator run` stopped and resumed in the middle."""

    def restart() -> None:
        scenario.stop()
        scenario.start()

    writers_across_a_restart(scenario.pg_url, restart)
    scenario.catch_up()
    scenario.assert_target()


def test_05_verify_agrees(scenario: Scenario) -> None:
    report = scenario.verify()
    assert report["verdict"] == "equal", report
