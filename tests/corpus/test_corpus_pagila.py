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
import threading
import time
from pathlib import Path

import psycopg

from tests.support.corpus import Scenario, scenario_fixture
from tests.support.expected import Coll, Embed

scenario = scenario_fixture("pagila")

HERE = Path(__file__).parent / "pagila"
WORKLOAD_TRANSACTIONS = 200
SEED = 20221


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


def workload(rng: random.Random) -> list[list[str]]:
    """WORKLOAD_TRANSACTIONS transactions of pagila's everyday kinds, each a list of statements."""
    txns: list[list[str]] = []
    next_customer = 101
    for n in range(WORKLOAD_TRANSACTIONS):
        kind = rng.randrange(12)
        customer = rng.randint(1, 100)
        film = rng.randint(1, 60)
        day = f"2022-0{rng.randint(1, 7)}-{rng.randint(10, 28)} {rng.randint(0, 23):02d}:{n % 60:02d}:00.{n:06d}+00"
        if kind == 0:  # rent and pay
            txns.append(
                [
                    "INSERT INTO rental (rental_date, inventory_id, customer_id, staff_id)"
                    f" VALUES ('{day}', {rng.randint(1, 150)}, {customer}, {rng.randint(1, 2)})",
                    "INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date)"
                    f" SELECT customer_id, staff_id, rental_id, {rng.randint(99, 1099) / 100}, rental_date"
                    " FROM rental WHERE rental_id = currval('rental_rental_id_seq')",
                ]
            )
        elif kind == 1:  # return
            txns.append(
                [
                    f"UPDATE rental SET return_date = rental_date + interval '2 days' WHERE customer_id = {customer}"
                ]
            )
        elif kind == 2:  # a payment moves to another month's partition
            txns.append(
                [
                    f"UPDATE payment SET payment_date = payment_date + interval '1 month', amount = amount + 1"
                    f" WHERE payment_id = (SELECT min(payment_id) FROM payment WHERE customer_id = {customer}"
                    " AND payment_date < '2022-07-01')"
                ]
            )
        elif kind == 3:  # the customer moves: re-points the address lookup
            txns.append(
                [f"UPDATE customer SET address_id = {rng.randint(6, 130)} WHERE customer_id = {customer}"]
            )
        elif kind == 4:  # a city renamed, or moved to another country: fans out through nested lookups
            city = rng.randint(1, 60)
            txns.append(
                [
                    f"UPDATE city SET city = city || '+', country_id = {rng.randint(1, 20)} WHERE city_id = {city}"
                ]
            )
        elif kind == 5:
            txns.append(
                [
                    f"UPDATE country SET country = 'Renamed ' || country_id || '-{n}' WHERE country_id = {rng.randint(1, 20)}"
                ]
            )
        elif kind == 6:  # recast: one actor out, another in; an actor renamed (fans out into arrays)
            txns.append(
                [
                    f"DELETE FROM film_actor WHERE film_id = {film} AND actor_id = (SELECT min(actor_id)"
                    f" FROM film_actor WHERE film_id = {film})",
                    f"INSERT INTO film_actor (actor_id, film_id) VALUES ({rng.randint(1, 40)}, {film})"
                    " ON CONFLICT DO NOTHING",
                    f"UPDATE actor SET last_name = upper(last_name) || '{n}' WHERE actor_id = {rng.randint(1, 40)}",
                ]
            )
        elif kind == 7:  # prices and features (the fulltext trigger fires; the column is excluded)
            txns.append(
                [
                    f"UPDATE film SET rental_rate = rental_rate + 1, special_features = special_features ||"
                    f" '{{Trailers}}'::text[], title = title || ' II' WHERE film_id = {film}"
                ]
            )
        elif kind == 8:  # a refund: the payment and then the rental go
            txns.append(
                [
                    f"DELETE FROM payment WHERE rental_id IN (SELECT rental_id FROM rental WHERE customer_id = {customer}"
                    " ORDER BY rental_id DESC LIMIT 1)",
                    f"DELETE FROM rental WHERE rental_id IN (SELECT rental_id FROM rental WHERE customer_id = {customer}"
                    " ORDER BY rental_id DESC LIMIT 1)",
                ]
            )
        elif kind == 9:  # a new customer with a new address
            txns.append(
                [
                    "INSERT INTO address (address, district, city_id, phone)"
                    f" VALUES ('{n} New Road', 'New', {rng.randint(1, 60)}, '555-9{n:03d}')",
                    "INSERT INTO customer (store_id, first_name, last_name, email, address_id, active)"
                    f" VALUES (1, 'New{n}', 'Customer', NULL, currval('address_address_id_seq'), 1)",
                ]
            )
            next_customer += 1
        elif kind == 10:  # staff: password (excluded) and email; language names (char(20))
            txns.append(
                [
                    f"UPDATE staff SET password = md5('{n}'), email = 'staff{n}@example.org' WHERE staff_id = {rng.randint(1, 2)}",
                    f"UPDATE language SET name = 'Lang{n}' WHERE language_id = {rng.randint(1, 6)}",
                ]
            )
        else:  # the address itself changes (every customer embedding it)
            txns.append(
                [
                    f"UPDATE address SET phone = '555-{n:04d}', address2 = NULL WHERE address_id = {rng.randint(6, 130)}"
                ]
            )
    return txns


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


def write(url: str, txns: list[list[str]], failed: list[str]) -> None:
    """Commit each transaction; one that a concurrent writer makes fail (a deadlock, a unique
    rental) is rolled back whole, as an application's would be."""
    with psycopg.connect(url) as conn:
        for statements in txns:
            try:
                with conn.transaction():
                    for statement in statements:
                        conn.execute(statement)
            except psycopg.errors.Error as exc:
                failed.append(type(exc).__name__)


def test_04_concurrent_writers_while_the_run_restarts(scenario: Scenario) -> None:
    """Two writers at once (their transactions interleave and commit in another order than they
    began), and `migrator run` stopped and resumed in the middle."""
    failed: list[str] = []
    writers = [
        threading.Thread(target=write, args=(scenario.pg_url, workload(random.Random(seed)), failed))
        for seed in (7, 8)
    ]
    for writer in writers:
        writer.start()
    time.sleep(0.5)
    scenario.stop()
    scenario.start()
    for writer in writers:
        writer.join(120)
        assert not writer.is_alive(), "a writer did not finish"
    scenario.catch_up()
    scenario.assert_target()


def test_05_verify_agrees(scenario: Scenario) -> None:
    report = scenario.verify()
    assert report["verdict"] == "equal", report
