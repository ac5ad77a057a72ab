"""Lookup embeds through CDC: sub-documents that the parent row links to (issue 17, defect 5).

A pagila-like schema: a customer links to its address (`customer.address_id`), an address to its
city, a city to its country; a customer owns its rentals (`rental.customer_id`), a rental links to
an inventory item, which links to a film; an address owns its phones. Many customers share one
address, so `plan` must accept the embed without a unique link, and CDC must follow both
directions: a customer re-pointed to another address embeds the new one; a change to an address
(a city, a country, a film) reaches every document and array element that embeds it; a customer
inserted with a link embeds the row as the source holds it.

And the owner direction's twin: child rows that exist before their parent (no foreign key, a
DEFERRABLE INITIALLY DEFERRED one, or a plain one and a statement that writes the child first)
are embedded when the parent appears, as the snapshot's join embeds them.

Expected documents are built from plain SQL in this file, never with migrator's mapping code.
"""

from __future__ import annotations

import random
import textwrap
import threading
from collections import defaultdict
from typing import Any

import psycopg
import pytest

from migrator import api
from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.postgres import PostgresSource
from migrator.mapping.affected import AffectedDocuments
from migrator.mapping.lookup import MappedDocuments
from migrator.mapping.spec import resolve, tables_of
from migrator.plan import parse_plan
from tests.support.compare import assert_equal_to_sql, records
from tests.support.docs import Migration
from tests.support.runs import follow, run, transactions
from tests.support.toast import toasted_rows

# Every run a test left following stops before its database is dropped.
pytestmark = pytest.mark.usefixtures("stop_followers")


PAGILA = (
    "CREATE TABLE country (country_id integer PRIMARY KEY, country text NOT NULL)",
    "CREATE TABLE city (city_id integer PRIMARY KEY, city text NOT NULL,"
    " country_id integer NOT NULL REFERENCES country ON UPDATE CASCADE)",
    "CREATE TABLE address (address_id integer PRIMARY KEY, address text NOT NULL, district text,"
    " city_id integer NOT NULL REFERENCES city ON UPDATE CASCADE, phone text, big text)",
    # Stored out of line when long, never compressed: an update of another column sends it as
    # unchanged ('u'), and the sub-document must keep it in every document that embeds it.
    "ALTER TABLE address ALTER COLUMN big SET STORAGE EXTERNAL",
    "CREATE TABLE address_phone (phone_id integer PRIMARY KEY,"
    " address_id integer NOT NULL REFERENCES address ON UPDATE CASCADE ON DELETE CASCADE, number text)",
    "CREATE TABLE customer (customer_id integer PRIMARY KEY, first_name text NOT NULL, email text,"
    " address_id integer NOT NULL REFERENCES address ON UPDATE CASCADE, active boolean NOT NULL)",
    "CREATE TABLE film (film_id integer PRIMARY KEY, title text NOT NULL, length integer)",
    "CREATE TABLE inventory (inventory_id integer PRIMARY KEY,"
    " film_id integer NOT NULL REFERENCES film ON UPDATE CASCADE, store_id integer NOT NULL)",
    "CREATE TABLE rental (rental_id integer PRIMARY KEY,"
    " customer_id integer NOT NULL REFERENCES customer ON UPDATE CASCADE ON DELETE CASCADE,"
    " inventory_id integer NOT NULL REFERENCES inventory ON UPDATE CASCADE, returned boolean NOT NULL)",
    "INSERT INTO country SELECT g, 'country ' || g FROM generate_series(1, 3) g",
    "INSERT INTO city SELECT g, 'city ' || g, 1 + g % 3 FROM generate_series(1, 6) g",
    "INSERT INTO address SELECT g, g || ' Main St', 'district ' || g % 4, 1 + g % 6, '555-' || g, NULL"
    " FROM generate_series(1, 30) g",
    "INSERT INTO address_phone SELECT g, 1 + g % 30, '+1 ' || g FROM generate_series(1, 40) g",
    "INSERT INTO customer SELECT g, 'name ' || g, 'c' || g || '@example.com', 1 + (g * 7) % 30, g % 5 <> 0"
    " FROM generate_series(1, 40) g",
    "INSERT INTO film SELECT g, 'film ' || g, 80 + g FROM generate_series(1, 12) g",
    "INSERT INTO inventory SELECT g, 1 + g % 12, 1 + g % 2 FROM generate_series(1, 25) g",
    "INSERT INTO rental SELECT g, 1 + g % 40, 1 + (g * 3) % 25, g % 3 = 0 FROM generate_series(1, 80) g",
)

PAGILA_PLAN = """
- name: customers
  from: customer
  key: customer_id
  embed:
    - as: address
      from: address
      on: {address_id: address_id}
      many: false
      # address_id among the fields: the phones' link to their address (an owner embed in a lookup)
      fields: {address_id: address_id, address: address, district: district, city_id: city_id,
               phone: phone, big: big}
      embed:
        - as: city
          from: city
          on: {city_id: city_id}
          many: false
          embed:
            - {as: country, from: country, on: {country_id: country_id}, many: false}
        - {as: phones, from: address_phone, on: {address_id: address_id}, key: phone_id}
    - as: rentals
      from: rental
      on: {customer_id: customer_id}
      key: rental_id
      embed:
        - as: inventory
          from: inventory
          on: {inventory_id: inventory_id}
          many: false
          embed:
            - {as: film, from: film, on: {film_id: film_id}, many: false}
"""


def pagila_expected(mig: Migration) -> list[dict[str, Any]]:
    """The customers documents, from plain SQL: joins done here, in Python."""
    countries = {r["country_id"]: {"country": r["country"]} for r in records(mig, "SELECT * FROM country")}
    cities = {
        r["city_id"]: {
            "city": r["city"],
            "country_id": r["country_id"],
            "country": countries.get(r["country_id"]),
        }
        for r in records(mig, "SELECT * FROM city")
    }
    phones: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in records(mig, "SELECT * FROM address_phone ORDER BY phone_id"):
        phones[r["address_id"]].append({"phone_id": r["phone_id"], "number": r["number"]})
    addresses = {
        r["address_id"]: {
            "address_id": r["address_id"],
            "address": r["address"],
            "district": r["district"],
            "city_id": r["city_id"],
            "phone": r["phone"],
            "big": r["big"],
            "city": cities.get(r["city_id"]),
            "phones": phones.get(r["address_id"], []),
        }
        for r in records(mig, "SELECT * FROM address")
    }
    films = {
        r["film_id"]: {"title": r["title"], "length": r["length"]} for r in records(mig, "SELECT * FROM film")
    }
    inventory = {
        r["inventory_id"]: {
            "film_id": r["film_id"],
            "store_id": r["store_id"],
            "film": films.get(r["film_id"]),
        }
        for r in records(mig, "SELECT * FROM inventory")
    }
    rentals: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in records(mig, "SELECT * FROM rental ORDER BY rental_id"):
        rentals[r["customer_id"]].append(
            {
                "rental_id": r["rental_id"],
                "inventory_id": r["inventory_id"],
                "returned": r["returned"],
                "inventory": inventory.get(r["inventory_id"]),
            }
        )
    return [
        {
            "_id": c["customer_id"],
            "first_name": c["first_name"],
            "email": c["email"],
            "address_id": c["address_id"],
            "active": c["active"],
            "address": addresses.get(c["address_id"]),
            "rentals": rentals.get(c["customer_id"], []),
        }
        for c in records(mig, "SELECT * FROM customer")
    ]


def element_indexes(mig: Migration, collection: str) -> list[str]:
    return sorted(name for name in mig.client[mig.database][collection].index_information() if name != "_id_")


# -- the pagila-like workload ------------------------------------------------------------------------


class LookupWorkload:
    """Transactions of every shape that moves a lookup, one writer, seeded; each picks its rows
    from what the source holds when it runs, so that every one commits."""

    def __init__(self, url: str, seed: int) -> None:
        self.url = url
        self.rng = random.Random(seed)
        self.next_id = 1000
        self.counts: dict[str, int] = defaultdict(int)
        self.error: BaseException | None = None

    def ids(self, conn: psycopg.Connection[Any], query: str) -> list[int]:
        return [r[0] for r in conn.execute(query).fetchall()]

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def big(self) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(3000))

    def step(self, conn: psycopg.Connection[Any]) -> None:
        rng = self.rng
        addresses = self.ids(conn, "SELECT address_id FROM address ORDER BY 1")
        customers = self.ids(conn, "SELECT customer_id FROM customer ORDER BY 1")
        kind = rng.choice(
            [
                "repoint",
                "repoint",
                "repoint",
                "address",
                "address",
                "address_city",
                "city",
                "country",
                "customer_insert",
                "address_then_customer",
                "address_delete",
                "address_key",
                "customer_update",
                "customer_delete",
                "rental_insert",
                "rental_repoint",
                "rental_update",
                "rental_delete",
                "inventory_film",
                "film",
                "phone",
                "phone_move",
                "big",
                "mixed",
            ]
        )
        self.counts[kind] += 1
        a, c = rng.choice(addresses), rng.choice(customers) if customers else None
        if kind == "repoint" and c is not None:
            conn.execute("UPDATE customer SET address_id = %s WHERE customer_id = %s", [a, c])
        elif kind == "address":
            conn.execute(
                "UPDATE address SET district = %s, phone = %s WHERE address_id = %s",
                [f"district {rng.randrange(99)}", f"555-{rng.randrange(9999)}", a],
            )
        elif kind == "address_city":
            conn.execute("UPDATE address SET city_id = %s WHERE address_id = %s", [rng.randint(1, 6), a])
        elif kind == "city":
            conn.execute(
                "UPDATE city SET city = %s, country_id = %s WHERE city_id = %s",
                [f"city {rng.randrange(999)}", rng.randint(1, 3), rng.randint(1, 6)],
            )
        elif kind == "country":
            conn.execute(
                "UPDATE country SET country = %s WHERE country_id = %s",
                [f"land {rng.randrange(999)}", rng.randint(1, 3)],
            )
        elif kind == "customer_insert":
            conn.execute(
                "INSERT INTO customer VALUES (%s, %s, NULL, %s, true)",
                [self.new_id(), f"new {rng.randrange(99)}", a],
            )
        elif kind == "address_then_customer":
            address_id = self.new_id()
            conn.execute(
                "INSERT INTO address VALUES (%s, 'new street', NULL, %s, NULL, NULL)",
                [address_id, rng.randint(1, 6)],
            )
            conn.execute("INSERT INTO address_phone VALUES (%s, %s, '+1 new')", [self.new_id(), address_id])
            if rng.random() < 0.5:
                conn.execute(
                    "UPDATE address SET district = 'set after insert' WHERE address_id = %s", [address_id]
                )
            conn.execute(
                "INSERT INTO customer VALUES (%s, 'with new address', NULL, %s, true)",
                [self.new_id(), address_id],
            )
        elif kind == "address_delete":
            # Only addresses nothing references (the foreign key would refuse the others).
            conn.execute(
                "DELETE FROM address WHERE address_id = (SELECT address_id FROM address a WHERE NOT EXISTS"
                " (SELECT 1 FROM customer c WHERE c.address_id = a.address_id) ORDER BY address_id LIMIT 1)"
            )
        elif kind == "address_key":
            # The customers and phones follow through ON UPDATE CASCADE.
            conn.execute("UPDATE address SET address_id = %s WHERE address_id = %s", [self.new_id(), a])
        elif kind == "customer_update" and c is not None:
            conn.execute(
                "UPDATE customer SET email = %s WHERE customer_id = %s",
                [f"x{rng.randrange(999)}@example.com", c],
            )
        elif kind == "customer_delete" and c is not None:
            conn.execute("DELETE FROM customer WHERE customer_id = %s", [c])
        elif kind == "rental_insert" and c is not None:
            conn.execute(
                "INSERT INTO rental VALUES (%s, %s, %s, false)", [self.new_id(), c, rng.randint(1, 25)]
            )
        elif kind == "rental_repoint":
            conn.execute(
                "UPDATE rental SET inventory_id = %s WHERE rental_id = (SELECT rental_id FROM rental ORDER BY"
                " rental_id OFFSET %s LIMIT 1)",
                [rng.randint(1, 25), rng.randrange(40)],
            )
        elif kind == "rental_update":
            conn.execute(
                "UPDATE rental SET returned = NOT returned WHERE rental_id %% 7 = %s", [rng.randrange(7)]
            )
        elif kind == "rental_delete":
            conn.execute(
                "DELETE FROM rental WHERE rental_id = (SELECT rental_id FROM rental ORDER BY rental_id OFFSET %s LIMIT 1)",
                [rng.randrange(40)],
            )
        elif kind == "inventory_film":
            conn.execute(
                "UPDATE inventory SET film_id = %s WHERE inventory_id = %s",
                [rng.randint(1, 12), rng.randint(1, 25)],
            )
        elif kind == "film":
            conn.execute(
                "UPDATE film SET title = %s, length = length + 1 WHERE film_id = %s",
                [f"title {rng.randrange(999)}", rng.randint(1, 12)],
            )
        elif kind == "phone":
            conn.execute(
                "INSERT INTO address_phone VALUES (%s, %s, %s)", [self.new_id(), a, f"+{rng.randrange(99)}"]
            )
            conn.execute(
                "DELETE FROM address_phone WHERE phone_id = (SELECT phone_id FROM address_phone ORDER BY phone_id"
                " OFFSET %s LIMIT 1)",
                [rng.randrange(20)],
            )
        elif kind == "phone_move":
            conn.execute(
                "UPDATE address_phone SET address_id = %s, number = number || '>' WHERE phone_id = (SELECT phone_id"
                " FROM address_phone ORDER BY phone_id OFFSET %s LIMIT 1)",
                [a, rng.randrange(20)],
            )
        elif kind == "big":
            conn.execute("UPDATE address SET big = %s WHERE address_id = %s", [self.big(), a])
        elif kind == "mixed" and c is not None:
            # Several moves in one transaction: re-point, then change what is now embedded, then
            # re-point another customer to the changed row.
            conn.execute("UPDATE customer SET address_id = %s WHERE customer_id = %s", [a, c])
            conn.execute("UPDATE address SET address = address || '+' WHERE address_id = %s", [a])
            other = rng.choice(customers)
            conn.execute("UPDATE customer SET address_id = %s WHERE customer_id = %s", [a, other])

    def run(self, transactions: int, stop: threading.Event) -> None:
        try:
            with psycopg.connect(self.url) as conn:
                for _ in range(transactions):
                    if stop.is_set():
                        return
                    with conn.transaction():
                        self.step(conn)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.error = exc


def test_pagila_lookups_follow_a_concurrent_workload(mig: Migration) -> None:
    mig.sql(*PAGILA)
    # Some addresses hold a value stored out of line from the start.
    mig.sql("UPDATE address SET big = repeat(md5(address_id::text), 100) WHERE address_id % 3 = 0")
    plan = mig.plan(PAGILA_PLAN, name="cdc-pagila")
    run(mig, plan, "snapshot")
    assert_equal_to_sql(mig, "customers", pagila_expected(mig))  # the snapshot is a join

    follower = follow(mig, plan, "cdc-pagila")
    workload = LookupWorkload(mig.pg_url, seed=17)
    stop = threading.Event()
    writer = threading.Thread(target=workload.run, args=(800, stop), daemon=True)
    writer.start()
    writer.join(300)
    stop.set()
    assert not writer.is_alive() and workload.error is None, workload.error
    follower.finish()
    outcome = run(mig, plan).outcome  # whatever the follower had not applied yet
    assert outcome is not None and outcome.cdc is not None and outcome.cdc.caught_up

    # Every shape of change happened, and the target equals the source.
    assert all(workload.counts[k] > 0 for k in ("repoint", "address_key", "address_delete", "mixed"))
    assert_equal_to_sql(mig, "customers", pagila_expected(mig))
    ((shared,),) = mig.rows(
        "SELECT count(*) FROM (SELECT address_id FROM customer GROUP BY 1 HAVING count(*) > 1) s"
    )
    assert shared > 0, "no address is shared: the workload did not test the fan-out"
    # The fan-out finds the parents through indexes on their link fields, at every depth.
    assert element_indexes(mig, "customers") == [
        "migrator_address.city.country_id",
        "migrator_address.city_id",
        "migrator_address.phones.phone_id",
        "migrator_address_id",
        "migrator_rentals.inventory.film_id",
        "migrator_rentals.inventory_id",
        "migrator_rentals.rental_id",
    ]


def test_repointed_unique_link_is_re_embedded(mig: Migration) -> None:
    """The tester's case that `plan` accepted before: a unique NOT NULL link held by the parent.
    Each change below left a wrong sub-document behind."""
    mig.sql(
        "CREATE TABLE address (address_id integer PRIMARY KEY, address text NOT NULL)",
        "CREATE TABLE customer (customer_id integer PRIMARY KEY, name text NOT NULL,"
        " address_id integer NOT NULL UNIQUE REFERENCES address)",
        "INSERT INTO address SELECT g, 'street ' || g FROM generate_series(1, 9) g",
        "INSERT INTO customer VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3), (6, 'f', 9)",
    )
    plan = mig.plan(
        "- {name: customers, from: customer, key: customer_id,"
        " embed: [{as: address, from: address, on: {address_id: address_id}, many: false}]}",
        name="cdc-unique-link",
    )
    run(mig, plan, "snapshot")
    transactions(
        mig,
        "UPDATE customer SET address_id = 4 WHERE customer_id = 1",  # re-pointed: address 4 embedded
        "UPDATE customer SET address_id = 8 WHERE customer_id = 6",  # ... and nothing else changes
        "INSERT INTO customer VALUES (4, 'd', 5)",  # inserted: address 5 exists before it
        ["INSERT INTO address VALUES (10, 'street 10')", "INSERT INTO customer VALUES (5, 'e', 10)"],
        "UPDATE address SET address = 'changed' WHERE address_id = 4",
        # Re-pointed, then the new address changed, in one transaction.
        [
            "UPDATE customer SET address_id = 6 WHERE customer_id = 2",
            "UPDATE address SET address = 'six' WHERE address_id = 6",
        ],
        # The address's key changed under its customer.
        [
            "UPDATE customer SET address_id = 7 WHERE customer_id = 3",
            "UPDATE address SET address = 'seven' WHERE address_id = 7",
        ],
    )
    run(mig, plan)
    streets = {r["address_id"]: r["address"] for r in records(mig, "SELECT * FROM address")}
    expected = [
        {
            "_id": c["customer_id"],
            "name": c["name"],
            "address_id": c["address_id"],
            "address": {"address": streets[c["address_id"]]},
        }
        for c in records(mig, "SELECT * FROM customer")
    ]
    assert_equal_to_sql(mig, "customers", expected)


def test_null_links_and_rows_that_are_not_there(mig: Migration) -> None:
    """A NULL link embeds null; without a foreign key, a link may name a row that does not exist
    (null) until that row is inserted; a deleted row leaves null behind; its key change moves it."""
    mig.sql(
        "CREATE TABLE address (address_id integer PRIMARY KEY, address text NOT NULL)",
        "CREATE TABLE customer (customer_id integer PRIMARY KEY, address_id integer)",
        "INSERT INTO address SELECT g, 'street ' || g FROM generate_series(1, 3) g",
        "INSERT INTO customer VALUES (1, 1), (2, 1), (3, NULL), (4, 8), (5, 2), (6, 9)",
    )
    plan = mig.plan(
        "- {name: customers, from: customer, key: customer_id,"
        " embed: [{as: address, from: address, on: {address_id: address_id}, many: false}]}",
        name="cdc-null-links",
    )
    run(mig, plan, "snapshot")
    transactions(
        mig,
        "UPDATE customer SET address_id = 3 WHERE customer_id = 3",  # from NULL
        "UPDATE customer SET address_id = NULL WHERE customer_id = 2",  # to NULL
        "INSERT INTO address VALUES (8, 'street 8')",  # customer 4 named it before it existed
        "DELETE FROM address WHERE address_id = 2",  # customer 5 still names it
        "UPDATE address SET address_id = 9 WHERE address_id = 1",  # now customer 6's, no longer 1's
        "INSERT INTO customer VALUES (7, 9), (8, 1)",
    )
    run(mig, plan)
    streets = {r["address_id"]: r["address"] for r in records(mig, "SELECT * FROM address")}
    expected = [
        {
            "_id": c["customer_id"],
            "address_id": c["address_id"],
            "address": {"address": streets[c["address_id"]]} if c["address_id"] in streets else None,
        }
        for c in records(mig, "SELECT * FROM customer")
    ]
    assert_equal_to_sql(mig, "customers", expected)


# -- children that exist before their parent -------------------------------------------------------

OWNERS = (
    "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL)",
    # No foreign key: a note may name a customer that does not exist (yet).
    "CREATE TABLE notes (id integer PRIMARY KEY, customer_id integer NOT NULL, body text)",
    # Checked at commit: a transaction may insert an order before its customer, an item before its order.
    "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL"
    " REFERENCES customers DEFERRABLE INITIALLY DEFERRED, pos integer NOT NULL)",
    "CREATE TABLE items (id integer PRIMARY KEY, order_id integer NOT NULL"
    " REFERENCES orders DEFERRABLE INITIALLY DEFERRED, sku text)",
    # Checked at the end of each statement: one statement may still write the child first.
    "CREATE TABLE tickets (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customers, subject text)",
    "INSERT INTO customers VALUES (1, 'one'), (2, 'two')",
    "INSERT INTO notes VALUES (1, 1, 'n1'), (2, 3, 'orphan for 3')",
    "INSERT INTO orders VALUES (10, 1, 1)",
    "INSERT INTO items VALUES (100, 10, 'a')",
    "INSERT INTO tickets VALUES (1, 1, 't1'), (2, 2, 't2')",
)

OWNERS_PLAN = """
- name: customers
  from: customers
  key: id
  embed:
    - {as: notes, from: notes, on: {customer_id: id}}
    - as: orders
      from: orders
      on: {customer_id: id}
      order_by: pos
      embed: [{as: items, from: items, on: {order_id: id}}]
    - {as: tickets, from: tickets, on: {customer_id: id}}
"""


def owners_expected(mig: Migration) -> list[dict[str, Any]]:
    def by(query: str, link: str) -> dict[int, list[dict[str, Any]]]:
        out: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for r in records(mig, query):
            out[r.pop(link)].append(r)
        return out

    items = by("SELECT id, order_id, sku FROM items ORDER BY id", "order_id")
    orders = by("SELECT id, customer_id, pos FROM orders ORDER BY pos, id", "customer_id")
    for elements in orders.values():
        for order in elements:
            order["items"] = items.get(order["id"], [])
    notes = by("SELECT id, customer_id, body FROM notes ORDER BY id", "customer_id")
    tickets = by("SELECT id, customer_id, subject FROM tickets ORDER BY id", "customer_id")
    return [
        {
            "_id": c["id"],
            "name": c["name"],
            "notes": notes.get(c["id"], []),
            "orders": orders.get(c["id"], []),
            "tickets": tickets.get(c["id"], []),
        }
        for c in records(mig, "SELECT id, name FROM customers")
    ]


def test_children_written_before_their_parent_are_embedded(mig: Migration) -> None:
    mig.sql(*OWNERS)
    plan = mig.plan(OWNERS_PLAN, name="cdc-owners")
    run(mig, plan, "snapshot")
    assert_equal_to_sql(mig, "customers", owners_expected(mig))
    transactions(
        mig,
        # No foreign key: the note for customer 3 was there before the snapshot, another comes now.
        "INSERT INTO notes VALUES (3, 4, 'orphan for 4')",
        "INSERT INTO customers VALUES (3, 'three'), (4, 'four')",
        # Deferred: children first, in one transaction, two levels deep.
        [
            "INSERT INTO items VALUES (200, 20, 'b'), (201, 20, 'c')",
            "INSERT INTO orders VALUES (20, 5, 2), (21, 5, 1)",
            "INSERT INTO customers VALUES (5, 'five')",
        ],
        # An item first, for an existing customer's new order.
        ["INSERT INTO items VALUES (110, 11, 'd')", "INSERT INTO orders VALUES (11, 1, 0)"],
        # A plain foreign key, and one statement that writes the child first.
        "WITH t AS (INSERT INTO tickets VALUES (6, 6, 't6') RETURNING customer_id)"
        " INSERT INTO customers SELECT customer_id, 'six' FROM t",
        # ... and one that deletes a parent and inserts it again: its children stay.
        "WITH d AS (DELETE FROM customers WHERE id = 2 RETURNING id) INSERT INTO customers SELECT id, 'two again' FROM d",
        # A parent whose transaction placed children under another parent: nothing to read for it.
        ["INSERT INTO orders VALUES (70, 1, 7)", "INSERT INTO customers VALUES (7, 'seven')"],
    )
    run(mig, plan)
    assert_equal_to_sql(mig, "customers", owners_expected(mig))


# -- an unchanged TOASTed link ---------------------------------------------------------------------


def long_code(tag: str) -> str:
    """About 2100 characters: stored out of line (SET STORAGE EXTERNAL) yet small enough for a
    unique index entry."""
    return (tag + ":" + "x" * 2100)[:2100]


def test_an_unchanged_toasted_link_of_a_parent_is_no_change(mig: Migration) -> None:
    """A link column stored out of line that an update leaves unchanged arrives as 'unchanged',
    outside the replica identity: the link did not change, nothing is read, and the marker is
    written nowhere."""
    mig.sql(
        "CREATE TABLE refs (code text PRIMARY KEY, label text)",
        "CREATE TABLE docs (id integer PRIMARY KEY, title text, ref_code text REFERENCES refs)",
        "ALTER TABLE docs ALTER COLUMN ref_code SET STORAGE EXTERNAL",
        f"INSERT INTO refs VALUES ('{long_code('a')}', 'ref a'), ('{long_code('b')}', 'ref b')",
        f"INSERT INTO docs VALUES (1, 'one', '{long_code('a')}'), (2, 'two', '{long_code('a')}')",
    )
    plan = mig.plan(
        "- {name: docs, from: docs, key: id, embed: [{as: ref, from: refs, on: {code: ref_code}, many: false}]}",
        name="cdc-toasted-parent-link",
    )
    run(mig, plan, "snapshot")
    transactions(
        mig,
        "UPDATE docs SET title = 'one again' WHERE id = 1",  # ref_code unchanged, stored out of line
        "UPDATE refs SET label = 'ref a changed' WHERE code LIKE 'a:%'",
        f"UPDATE docs SET ref_code = '{long_code('b')}' WHERE id = 2",
    )
    run(mig, plan)
    assert toasted_rows(mig, "docs") > 0  # the links are stored out of line
    labels = {r["code"]: r["label"] for r in records(mig, "SELECT * FROM refs")}
    expected = [
        {
            "_id": d["id"],
            "title": d["title"],
            "ref_code": d["ref_code"],
            "ref": {"label": labels[d["ref_code"]]},
        }
        for d in records(mig, "SELECT * FROM docs")
    ]
    assert_equal_to_sql(mig, "docs", expected)


def test_an_element_whose_link_is_an_unchanged_toasted_value_is_found_by_its_key(mig: Migration) -> None:
    """The same for a child's link to its parent: the element stays where it is, found by its
    own key. Before, the marker went into the parent's filter and every rerun failed on it."""
    mig.sql(
        "CREATE TABLE coded (id integer PRIMARY KEY, code text NOT NULL UNIQUE)",
        "CREATE TABLE kids (id integer PRIMARY KEY, doc_code text NOT NULL, label text)",
        "ALTER TABLE kids ALTER COLUMN doc_code SET STORAGE EXTERNAL",
        f"INSERT INTO coded VALUES (1, '{long_code('c1')}'), (2, '{long_code('c2')}')",
        f"INSERT INTO kids VALUES (1, '{long_code('c1')}', 'k1'), (2, '{long_code('c1')}', 'k2')",
    )
    plan = mig.plan(
        "- {name: coded, from: coded, key: id, embed: [{as: kids, from: kids, on: {doc_code: code}}]}",
        name="cdc-toasted-child-link",
    )
    run(mig, plan, "snapshot")
    transactions(
        mig,
        "UPDATE kids SET label = 'k1 again' WHERE id = 1",  # doc_code unchanged
        "UPDATE kids SET id = 3 WHERE id = 2",  # ... and its key changed
    )
    run(mig, plan)
    assert toasted_rows(mig, "kids") > 0
    kids: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for k in records(mig, "SELECT * FROM kids ORDER BY id"):
        kids[k["doc_code"]].append({"id": k["id"], "label": k["label"]})
    expected = [
        {"_id": c["id"], "code": c["code"], "kids": kids[c["code"]]}
        for c in records(mig, "SELECT * FROM coded")
    ]
    assert_equal_to_sql(mig, "coded", expected)


# -- documents a change touches (the dual-write oracle, cutover's final check) ---------------------


def test_every_document_that_embeds_a_changed_row_is_found(mig: Migration) -> None:
    """What the oracle and cutover's last check ask: which documents does this row change touch?
    For a lookup's row, every document whose link names it (one only, before)."""
    mig.sql(*PAGILA)
    plan = parse_plan(
        "version: 1\nsource: {adapter: postgres, url: 'postgresql://h/x'}\n"
        "target: {adapter: mongodb, url: 'mongodb://h/', database: z}\n"
        "collections:\n" + textwrap.indent(textwrap.dedent(PAGILA_PLAN).strip() + "\n", "  "),
        env={},
    )
    source = PostgresSource(mig.pg_url)
    try:
        tables = [t for c in plan.collections for t in tables_of(c)]
        info = source.inspect(tables)
        resolution = resolve(list(plan.collections), info)
        assert resolution.ok
        # The catalog's foreign keys are recognised: rentals and phones name their parent through
        # one (their new parents read them only when their transaction put them there first).
        embeds = {e.as_: e for e in resolution.collections[0].document.embeds}
        phones = embeds["address"].child.embeds[1]
        assert embeds["rentals"].foreign_key and phones.foreign_key and not phones.lookup
        assert embeds["address"].lookup and not embeds["address"].foreign_key
        identity = {name: t.identity_columns for name, t in info.tables.items()}
        affected = AffectedDocuments(resolution.collections, identity)
        documents = MappedDocuments(resolution.collections, source, MongoTarget(mig.mongo_url, mig.database))
        try:
            refs = affected.update("public.address", None, {"address_id": 8, "address": "x", "city_id": 3})
            refs += affected.update("public.film", None, {"film_id": 2, "title": "t", "length": 1})
            found = documents.resolve(refs)["customers"]
        finally:
            documents.close()
    finally:
        source.close()
    expected = mig.rows(
        "SELECT customer_id::text FROM customer WHERE address_id = 8 UNION SELECT r.customer_id::text FROM rental r"
        " JOIN inventory i USING (inventory_id) WHERE i.film_id = 2"
    )
    assert sorted(found.texts) == sorted(tuple(r) for r in expected) and len(expected) > 2


def test_plan_refuses_a_link_unique_on_neither_side_with_a_fix_postgresql_accepts(mig: Migration) -> None:
    mig.sql(
        "CREATE TABLE city (city_id integer, city text)",
        "CREATE TABLE address (address_id integer PRIMARY KEY, city_id integer)",
        "INSERT INTO city VALUES (1, 'one'), (2, 'two')",
        "INSERT INTO address VALUES (1, 1), (2, 1)",
    )
    plan = mig.plan(
        "- {name: addresses, from: address, key: address_id,"
        " embed: [{as: city, from: city, on: {city_id: city_id}, many: false}]}",
        name="plan-lookup-fix",
    )

    def report() -> Any:
        return api.plan(plan, env=mig.env)

    [refusal] = [f for f in report().findings if f.check == "mapping.embed_parent_unique"]
    statements = refusal.fix.split(" (then")[0]
    assert statements.startswith("ALTER TABLE public.city ALTER city_id SET NOT NULL;")
    mig.sql(*[s.strip() for s in statements.split(";") if s.strip()])  # as an operator would
    findings = report().findings
    assert not [f for f in findings if f.check == "mapping.embed_parent_unique"]
    assert [f.check for f in findings if f.check == "mapping.embed_lookup"] == ["mapping.embed_lookup"]
