"""pagila's everyday workload (https://github.com/devrimgunduz/pagila), shared by the corpus modules
that migrate pagila (to MongoDB, to PostgreSQL): tests/corpus/pagila/schema.sql and data.sql, a
seeded sequence of transactions, and a writer committing them as an application would.

The workload is pagila's everyday transactions (rent, pay, return, move a payment to another
month's partition, re-point a customer's address, rename a city or a country, recast a film,
change prices and features, refunds, new customers, staff and language edits).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parents[1] / "corpus" / "pagila"
WORKLOAD_TRANSACTIONS = 200
SEED = 20221


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


def writers_across_a_restart(
    url: str, restart: Callable[[], None], seeds: tuple[int, ...] = (7, 8)
) -> list[str]:
    """Two writers at once (their transactions interleave and commit in another order than they
    began), `restart` (the run stopped and resumed) called while they write; returns the names
    of the errors that rolled a transaction back."""
    failed: list[str] = []
    writers = [
        threading.Thread(target=write, args=(url, workload(random.Random(seed)), failed)) for seed in seeds
    ]
    for writer in writers:
        writer.start()
    time.sleep(0.5)
    restart()
    for writer in writers:
        writer.join(120)
        assert not writer.is_alive(), "a writer did not finish"
    return failed
