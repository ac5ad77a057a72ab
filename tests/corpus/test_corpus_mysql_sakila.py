"""Sakila (MySQL's sample database, tests/support/sakila.py) from MariaDB into MongoDB, as
test_corpus_pagila.py does for PostgreSQL.

The plan embeds as an application reading Sakila would: customers with their address -> city ->
country, rentals and payments; films with their language, actors (film_actor -> actor) and
categories; film_text (fed by triggers on film) as its own collection; stores with their staff
(password excluded, picture a BLOB). `plan` refuses address.location (GEOMETRY) and every mapped
child of Sakila's ON UPDATE CASCADE / ON DELETE SET NULL keys (the binlog carries no row event for
the rows InnoDB cascades: docs/architecture.md "Foreign-key actions"); the fixes it words are
run (excluding the column; each key replaced by a RESTRICT one), and the documented alternative
for a spatial column, a generated ST_AsText column, is mapped. Then the Sakila workload while CDC
follows: a rental and its return, payments (BEFORE INSERT triggers setting dates), ON UPDATE
CURRENT_TIMESTAMP, film updates whose triggers rewrite film_text, an actor renamed under every
film, a customer deleted with its rentals and payments (children first, as the RESTRICT keys
demand), a country renamed under its customers' addresses. Each step is compared with documents
built from the source's rows (tests/support/mysql_expected.py); verify agrees at the end.
"""

from __future__ import annotations

from tests.support import sakila
from tests.support.expected import Coll, Embed
from tests.support.mysql_corpus import MysqlScenario, mysql_scenario_fixture

scenario = mysql_scenario_fixture("sakila")


def _collections(s: MysqlScenario, *, address_exclude: tuple[str, ...] = ("location",)) -> list[Coll]:
    t = s.table
    country = Embed("country", t("country"), {"country_id": "country_id"}, many=False)
    city = Embed("city", t("city"), {"city_id": "city_id"}, many=False, embeds=(country,))
    return [
        Coll(
            "customers",
            t("customer"),
            ("customer_id",),
            embeds=(
                Embed(
                    "address",
                    t("address"),
                    {"address_id": "address_id"},
                    many=False,
                    exclude=address_exclude,
                    embeds=(city,),
                ),
                Embed("rentals", t("rental"), {"customer_id": "customer_id"}, order_by=("rental_date",)),
                Embed("payments", t("payment"), {"customer_id": "customer_id"}, order_by=("payment_date",)),
            ),
        ),
        Coll(
            "films",
            t("film"),
            ("film_id",),
            embeds=(
                Embed("language", t("language"), {"language_id": "language_id"}, many=False),
                Embed(
                    "actors",
                    t("film_actor"),
                    {"film_id": "film_id"},
                    embeds=(Embed("actor", t("actor"), {"actor_id": "actor_id"}, many=False),),
                ),
                Embed(
                    "categories",
                    t("film_category"),
                    {"film_id": "film_id"},
                    embeds=(Embed("category", t("category"), {"category_id": "category_id"}, many=False),),
                ),
            ),
        ),
        Coll("film_text", t("film_text"), ("film_id",)),
        Coll("inventory", t("inventory"), ("inventory_id",)),
        Coll(
            "stores",
            t("store"),
            ("store_id",),
            embeds=(Embed("staff", t("staff"), {"store_id": "store_id"}, exclude=("password",)),),
        ),
    ]


def test_01_plan_refuses_geometry_and_cascading_keys_and_passes_with_their_fixes(
    scenario: MysqlScenario,
) -> None:
    sakila.create(scenario.my_url)
    db = scenario.table("address").split(".")[0]
    report = scenario.preflight_of(_collections(scenario, address_exclude=()), "sakila_unfixed")
    failures = {f"{f.check} {f.subject}": f for f in report.failures}
    spatial = [f for k, f in failures.items() if "location" in k]
    assert spatial, sorted(failures)
    assert spatial[0].fix is not None and "exclude" in spatial[0].fix.lower(), spatial[0]
    cascades = {k: f for k, f in failures.items() if ": foreign key " in k}
    # Every Sakila key whose child is mapped cascades ON UPDATE; payment's rental key SETs NULL.
    assert {k.rsplit(": foreign key ", 1)[1] for k in cascades} >= {
        "fk_city_country", "fk_address_city", "fk_film_language", "fk_film_language_original",
        "fk_film_actor_actor", "fk_film_actor_film", "fk_film_category_film", "fk_film_category_category",
        "fk_customer_address", "fk_customer_store", "fk_rental_customer", "fk_payment_rental",
        "fk_payment_customer", "fk_inventory_film", "fk_staff_store",
    }, sorted(cascades)  # fmt: skip
    for finding in cascades.values():
        assert finding.fix is not None
        scenario.sql(finding.fix.split(";", 1)[0])
    # The documented alternative to excluding a spatial column: its WKT in a generated column.
    scenario.sql(
        f"ALTER TABLE `{db}`.address ADD COLUMN location_wkt VARCHAR(100) AS (ST_AsText(location)) VIRTUAL"
    )
    scenario.write_plan(_collections(scenario))
    scenario.assert_plan_ready()


def test_02_snapshot(scenario: MysqlScenario) -> None:
    scenario.start()
    scenario.assert_target()
    docs = {d["_id"]: d for d in scenario.documents("customers")}
    assert docs[1]["address"]["location_wkt"].startswith("POINT(")
    assert "location" not in docs[1]["address"]
    assert {d["_id"] for d in scenario.documents("film_text")} == set(range(1, 41))


def test_03_a_rental_and_its_return(scenario: MysqlScenario) -> None:
    scenario.step(
        [
            "INSERT INTO rental (inventory_id, customer_id, staff_id) VALUES (7, 3, 1)",
            "INSERT INTO payment (customer_id, staff_id, rental_id, amount) VALUES (3, 1, LAST_INSERT_ID(), 2.99)",
        ],
        "UPDATE rental SET return_date = '2026-01-02 03:04:05' WHERE rental_id = 17",
        "UPDATE payment SET amount = amount + 1 WHERE payment_id = 5",
    )
    scenario.assert_target()
    assert (
        scenario.scalar("SELECT COUNT(*) FROM rental WHERE rental_id > 200 AND rental_date > '2020-01-01'")
        == 1
    )


def test_04_on_update_current_timestamp_and_customer_writes(scenario: MysqlScenario) -> None:
    before = scenario.scalar("SELECT last_update FROM customer WHERE customer_id = 4")
    scenario.step(
        "UPDATE customer SET active = FALSE, email = NULL WHERE customer_id = 4",
        "INSERT INTO customer (store_id, first_name, last_name, email, address_id, active)"
        " VALUES (1, 'ZOË', 'NEW', 'zoe@example.org', 40, TRUE)",
        "UPDATE address SET location = ST_GeomFromText('POINT(1 2)'), phone = '555-9999' WHERE address_id = 5",
    )
    assert (
        scenario.scalar("SELECT last_update FROM customer WHERE customer_id = 4") != before
    )  # ON UPDATE CURRENT_TIMESTAMP
    scenario.assert_target()


def test_05_film_updates_fire_the_film_text_triggers(scenario: MysqlScenario) -> None:
    scenario.step(
        "UPDATE film SET title = 'FILM ONE RENAMED', description = 'Un été 😀' WHERE film_id = 1",
        "UPDATE film SET special_features = 'Trailers,Behind the Scenes', rating = 'NC-17',"
        " release_year = 2026, rental_rate = 0.99, original_language_id = NULL WHERE film_id = 2",
        [
            "INSERT INTO film (title, description, language_id, special_features) VALUES ('NEW FILM', 'new', 3, '')",
            "INSERT INTO film_actor (actor_id, film_id) VALUES (1, LAST_INSERT_ID()), (2, LAST_INSERT_ID())",
            "INSERT INTO film_category (film_id, category_id) VALUES (LAST_INSERT_ID(), 6)",
        ],
        sakila.delete_film(40),
        "UPDATE actor SET first_name = 'RENAMÉ' WHERE actor_id IN (1, 2, 3)",
    )
    scenario.assert_target()
    texts = {d["_id"]: d["title"] for d in scenario.documents("film_text")}
    assert texts[1] == "FILM ONE RENAMED" and 40 not in texts and texts[41] == "NEW FILM"


def test_06_a_customer_deleted_with_its_rentals_and_payments_and_a_country_renamed(
    scenario: MysqlScenario,
) -> None:
    scenario.step(
        sakila.delete_customer(6),
        "UPDATE country SET country = 'Nouveau Pays' WHERE country_id = 9",
        "UPDATE staff SET picture = UNHEX('FFD8FFE0'), active = 0 WHERE staff_id = 2",
    )
    scenario.assert_target()
    assert 6 not in {d["_id"] for d in scenario.documents("customers")}


def test_07_verify_agrees(scenario: MysqlScenario) -> None:
    scenario.verify()
