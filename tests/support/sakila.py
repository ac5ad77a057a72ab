"""Sakila, MySQL's sample database (https://dev.mysql.com/doc/sakila/en/), written from its
published schema: the same tables, columns, types, keys, foreign keys (ON DELETE RESTRICT ON
UPDATE CASCADE; payment's rental SET NULL), the film_text FULLTEXT table fed by triggers on film,
the date triggers, two of its views, utf8mb4; and a seeded generator of a few hundred rows in
place of sakila-data.sql (no internet here). The date triggers are created after the load, as
sakila-data.sql does, so that loaded rows keep their dates.
"""

from __future__ import annotations

import random
from typing import Any

from tests.support.mariadb import connect

_TS = "last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"
_FK = "ON DELETE RESTRICT ON UPDATE CASCADE"

TABLES = (
    f"""CREATE TABLE actor (actor_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
 first_name VARCHAR(45) NOT NULL, last_name VARCHAR(45) NOT NULL, {_TS},
 PRIMARY KEY (actor_id), KEY idx_actor_last_name (last_name)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE country (country_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
 country VARCHAR(50) NOT NULL, {_TS}, PRIMARY KEY (country_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE city (city_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT, city VARCHAR(50) NOT NULL,
 country_id SMALLINT UNSIGNED NOT NULL, {_TS}, PRIMARY KEY (city_id), KEY idx_fk_country_id (country_id),
 CONSTRAINT fk_city_country FOREIGN KEY (country_id) REFERENCES country (country_id) {_FK})
 ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE address (address_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
 address VARCHAR(50) NOT NULL, address2 VARCHAR(50) DEFAULT NULL, district VARCHAR(20) NOT NULL,
 city_id SMALLINT UNSIGNED NOT NULL, postal_code VARCHAR(10) DEFAULT NULL, phone VARCHAR(20) NOT NULL,
 location GEOMETRY NOT NULL, {_TS}, PRIMARY KEY (address_id), KEY idx_fk_city_id (city_id),
 SPATIAL KEY idx_location (location),
 CONSTRAINT fk_address_city FOREIGN KEY (city_id) REFERENCES city (city_id) {_FK})
 ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE category (category_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT,
 name VARCHAR(25) NOT NULL, {_TS}, PRIMARY KEY (category_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE language (language_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT, name CHAR(20) NOT NULL,
 {_TS}, PRIMARY KEY (language_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE film (film_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT, title VARCHAR(128) NOT NULL,
 description TEXT DEFAULT NULL, release_year YEAR DEFAULT NULL, language_id TINYINT UNSIGNED NOT NULL,
 original_language_id TINYINT UNSIGNED DEFAULT NULL, rental_duration TINYINT UNSIGNED NOT NULL DEFAULT 3,
 rental_rate DECIMAL(4,2) NOT NULL DEFAULT 4.99, length SMALLINT UNSIGNED DEFAULT NULL,
 replacement_cost DECIMAL(5,2) NOT NULL DEFAULT 19.99,
 rating ENUM('G','PG','PG-13','R','NC-17') DEFAULT 'G',
 special_features SET('Trailers','Commentaries','Deleted Scenes','Behind the Scenes') DEFAULT NULL,
 {_TS}, PRIMARY KEY (film_id), KEY idx_title (title), KEY idx_fk_language_id (language_id),
 KEY idx_fk_original_language_id (original_language_id),
 CONSTRAINT fk_film_language FOREIGN KEY (language_id) REFERENCES language (language_id) {_FK},
 CONSTRAINT fk_film_language_original FOREIGN KEY (original_language_id) REFERENCES language (language_id) {_FK})
 ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE film_actor (actor_id SMALLINT UNSIGNED NOT NULL, film_id SMALLINT UNSIGNED NOT NULL,
 {_TS}, PRIMARY KEY (actor_id, film_id), KEY idx_fk_film_id (film_id),
 CONSTRAINT fk_film_actor_actor FOREIGN KEY (actor_id) REFERENCES actor (actor_id) {_FK},
 CONSTRAINT fk_film_actor_film FOREIGN KEY (film_id) REFERENCES film (film_id) {_FK})
 ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE film_category (film_id SMALLINT UNSIGNED NOT NULL, category_id TINYINT UNSIGNED NOT NULL,
 {_TS}, PRIMARY KEY (film_id, category_id),
 CONSTRAINT fk_film_category_film FOREIGN KEY (film_id) REFERENCES film (film_id) {_FK},
 CONSTRAINT fk_film_category_category FOREIGN KEY (category_id) REFERENCES category (category_id) {_FK})
 ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE film_text (film_id SMALLINT NOT NULL, title VARCHAR(255) NOT NULL, description TEXT,
 PRIMARY KEY (film_id), FULLTEXT KEY idx_title_description (title, description))
 ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE staff (staff_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT, first_name VARCHAR(45) NOT NULL,
 last_name VARCHAR(45) NOT NULL, address_id SMALLINT UNSIGNED NOT NULL, picture BLOB DEFAULT NULL,
 email VARCHAR(50) DEFAULT NULL, store_id TINYINT UNSIGNED NOT NULL, active BOOLEAN NOT NULL DEFAULT TRUE,
 username VARCHAR(16) NOT NULL, password VARCHAR(40) BINARY DEFAULT NULL, {_TS},
 PRIMARY KEY (staff_id), KEY idx_fk_store_id (store_id), KEY idx_fk_address_id (address_id),
 CONSTRAINT fk_staff_address FOREIGN KEY (address_id) REFERENCES address (address_id) {_FK})
 ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE store (store_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT,
 manager_staff_id TINYINT UNSIGNED NOT NULL, address_id SMALLINT UNSIGNED NOT NULL, {_TS},
 PRIMARY KEY (store_id), UNIQUE KEY idx_unique_manager (manager_staff_id), KEY idx_fk_address_id (address_id),
 CONSTRAINT fk_store_staff FOREIGN KEY (manager_staff_id) REFERENCES staff (staff_id) {_FK},
 CONSTRAINT fk_store_address FOREIGN KEY (address_id) REFERENCES address (address_id) {_FK})
 ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"ALTER TABLE staff ADD CONSTRAINT fk_staff_store FOREIGN KEY (store_id) REFERENCES store (store_id) {_FK}",
    f"""CREATE TABLE customer (customer_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
 store_id TINYINT UNSIGNED NOT NULL, first_name VARCHAR(45) NOT NULL, last_name VARCHAR(45) NOT NULL,
 email VARCHAR(50) DEFAULT NULL, address_id SMALLINT UNSIGNED NOT NULL, active BOOLEAN NOT NULL DEFAULT TRUE,
 create_date DATETIME NOT NULL, last_update TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
 PRIMARY KEY (customer_id), KEY idx_fk_store_id (store_id), KEY idx_fk_address_id (address_id),
 KEY idx_last_name (last_name),
 CONSTRAINT fk_customer_address FOREIGN KEY (address_id) REFERENCES address (address_id) {_FK},
 CONSTRAINT fk_customer_store FOREIGN KEY (store_id) REFERENCES store (store_id) {_FK})
 ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE inventory (inventory_id MEDIUMINT UNSIGNED NOT NULL AUTO_INCREMENT,
 film_id SMALLINT UNSIGNED NOT NULL, store_id TINYINT UNSIGNED NOT NULL, {_TS},
 PRIMARY KEY (inventory_id), KEY idx_fk_film_id (film_id), KEY idx_store_id_film_id (store_id, film_id),
 CONSTRAINT fk_inventory_store FOREIGN KEY (store_id) REFERENCES store (store_id) {_FK},
 CONSTRAINT fk_inventory_film FOREIGN KEY (film_id) REFERENCES film (film_id) {_FK})
 ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE rental (rental_id INT NOT NULL AUTO_INCREMENT, rental_date DATETIME NOT NULL,
 inventory_id MEDIUMINT UNSIGNED NOT NULL, customer_id SMALLINT UNSIGNED NOT NULL,
 return_date DATETIME DEFAULT NULL, staff_id TINYINT UNSIGNED NOT NULL, {_TS},
 PRIMARY KEY (rental_id), UNIQUE KEY (rental_date, inventory_id, customer_id),
 KEY idx_fk_inventory_id (inventory_id), KEY idx_fk_customer_id (customer_id), KEY idx_fk_staff_id (staff_id),
 CONSTRAINT fk_rental_staff FOREIGN KEY (staff_id) REFERENCES staff (staff_id) {_FK},
 CONSTRAINT fk_rental_inventory FOREIGN KEY (inventory_id) REFERENCES inventory (inventory_id) {_FK},
 CONSTRAINT fk_rental_customer FOREIGN KEY (customer_id) REFERENCES customer (customer_id) {_FK})
 ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE payment (payment_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
 customer_id SMALLINT UNSIGNED NOT NULL, staff_id TINYINT UNSIGNED NOT NULL, rental_id INT DEFAULT NULL,
 amount DECIMAL(5,2) NOT NULL, payment_date DATETIME NOT NULL,
 last_update TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
 PRIMARY KEY (payment_id), KEY idx_fk_staff_id (staff_id), KEY idx_fk_customer_id (customer_id),
 CONSTRAINT fk_payment_rental FOREIGN KEY (rental_id) REFERENCES rental (rental_id)
  ON DELETE SET NULL ON UPDATE CASCADE,
 CONSTRAINT fk_payment_customer FOREIGN KEY (customer_id) REFERENCES customer (customer_id) {_FK},
 CONSTRAINT fk_payment_staff FOREIGN KEY (staff_id) REFERENCES staff (staff_id) {_FK})
 ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
)

FILM_TRIGGERS = (
    """CREATE TRIGGER ins_film AFTER INSERT ON film FOR EACH ROW BEGIN
 INSERT INTO film_text (film_id, title, description) VALUES (new.film_id, new.title, new.description); END""",
    """CREATE TRIGGER upd_film AFTER UPDATE ON film FOR EACH ROW BEGIN
 IF (old.title != new.title) OR (old.description != new.description) OR (old.film_id != new.film_id) THEN
  UPDATE film_text SET title = new.title, description = new.description, film_id = new.film_id
  WHERE film_id = old.film_id;
 END IF; END""",
    """CREATE TRIGGER del_film AFTER DELETE ON film FOR EACH ROW BEGIN
 DELETE FROM film_text WHERE film_id = old.film_id; END""",
)
DATE_TRIGGERS = (
    "CREATE TRIGGER customer_create_date BEFORE INSERT ON customer FOR EACH ROW SET NEW.create_date = NOW()",
    "CREATE TRIGGER payment_date BEFORE INSERT ON payment FOR EACH ROW SET NEW.payment_date = NOW()",
    "CREATE TRIGGER rental_date BEFORE INSERT ON rental FOR EACH ROW SET NEW.rental_date = NOW()",
)
VIEWS = (
    """CREATE VIEW customer_list AS SELECT cu.customer_id AS ID, CONCAT(cu.first_name, ' ', cu.last_name) AS name,
 a.address AS address, a.postal_code AS `zip code`, a.phone AS phone, city.city AS city, country.country AS country,
 IF(cu.active, 'active', '') AS notes, cu.store_id AS SID
 FROM customer AS cu JOIN address AS a ON cu.address_id = a.address_id JOIN city ON a.city_id = city.city_id
 JOIN country ON city.country_id = country.country_id""",
    """CREATE VIEW film_list AS SELECT film.film_id AS FID, film.title AS title, film.description AS description,
 category.name AS category, film.rental_rate AS price, film.length AS length, film.rating AS rating,
 GROUP_CONCAT(CONCAT(actor.first_name, ' ', actor.last_name) SEPARATOR ', ') AS actors
 FROM category LEFT JOIN film_category ON category.category_id = film_category.category_id
 LEFT JOIN film ON film_category.film_id = film.film_id JOIN film_actor ON film.film_id = film_actor.film_id
 JOIN actor ON film_actor.actor_id = actor.actor_id GROUP BY film.film_id, category.name""",
)

FEATURES = ("Trailers", "Commentaries", "Deleted Scenes", "Behind the Scenes")
RATINGS = ("G", "PG", "PG-13", "R", "NC-17")
NAMES = ("PENELOPE", "NICK", "ED", "JENNIFER", "JOHNNY", "BETTE", "GRACE", "MATTHEW", "JOE", "CHRISTIAN",
         "ZERO", "KARL", "UMA", "VIVIEN", "CUBA", "FRED", "HELEN", "DAN", "BOB", "LUCILLE", "ZOË", "JOSÉ")  # fmt: skip


def _insert(cur: Any, table: str, rows: list[tuple[Any, ...]]) -> None:
    marks = ", ".join(["%s"] * len(rows[0]))
    cur.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


def create(url: str, seed: int = 2006) -> None:
    """The schema, a few hundred rows, then the date triggers and the views."""
    rng = random.Random(seed)
    when = "2005-05-24 22:53:30"
    with connect(url) as conn, conn.cursor() as cur:
        for statement in (*TABLES, *FILM_TRIGGERS):
            cur.execute(statement)
        cur.execute("SET FOREIGN_KEY_CHECKS = 0")  # staff <-> store, as sakila-data.sql does
        cur.execute("BEGIN")
        _insert(
            cur,
            "country",
            [(i, f"Country {i}", when) for i in range(1, 9)] + [(9, "Côte d\u2019Ivoire", when)],
        )
        _insert(cur, "city", [(i, f"City {i}", rng.randint(1, 9), when) for i in range(1, 21)])
        cur.executemany(
            "INSERT INTO address VALUES (%s, %s, %s, %s, %s, %s, %s, ST_GeomFromText(%s), %s)",
            [
                (i, f"{i} Main Street", None if i % 3 else "", f"District {i % 5}", rng.randint(1, 20),
                 None if i % 7 == 0 else f"{10000 + i}", f"555-{i:04d}", f"POINT({i / 10} {-i / 7})", when)
                for i in range(1, 41)
            ],
        )  # fmt: skip
        _insert(cur, "category", [(i, n, when) for i, n in enumerate(("Action", "Animation", "Comedy",
                                                                       "Documentary", "Drama", "Sci-Fi"), 1)])  # fmt: skip
        _insert(cur, "language", [(1, "English", when), (2, "Italian", when), (3, "日本語", when)])
        _insert(cur, "actor", [(i, rng.choice(NAMES), f"LAST{i}", when) for i in range(1, 31)])
        films = []
        for i in range(1, 41):
            features = ",".join(f for f in FEATURES if rng.random() < 0.4)
            films.append(
                (i, f"FILM {i}", None if i % 9 == 0 else f"A story of {i} — épique", 2006 if i % 5 else None,
                 1, rng.choice((None, 2, 3)), rng.randint(3, 7), rng.choice(("0.99", "2.99", "4.99")),
                 None if i % 11 == 0 else rng.randint(46, 185), f"{rng.randint(9, 29)}.99",
                 rng.choice(RATINGS), features if i % 8 else None, when)
            )  # fmt: skip
        _insert(cur, "film", films)
        _insert(
            cur, "film_actor", sorted({(rng.randint(1, 30), f, when) for f in range(1, 41) for _ in range(3)})
        )
        _insert(cur, "film_category", [(f, rng.randint(1, 6), when) for f in range(1, 41)])
        _insert(cur, "staff", [(1, "Mike", "Hillyer", 3, bytes(range(256)) * 4, "mike@sakilastaff.com", 1, 1,
                                "Mike", "8cb2237d0679ca88db6464eac60da96345513964", when),
                               (2, "Jon", "Stephens", 4, None, None, 2, 1, "Jon", None, when)])  # fmt: skip
        _insert(cur, "store", [(1, 1, 1, when), (2, 2, 2, when)])
        _insert(cur, "customer", [
            (i, 1 + i % 2, rng.choice(NAMES), f"CUST{i}", None if i % 10 == 0 else f"c{i}@sakilacustomer.org",
             4 + i, i % 13 != 0, f"2006-02-14 22:04:{i:02d}", when)
            for i in range(1, 31)
        ])  # fmt: skip
        _insert(cur, "inventory", [(i, 1 + i % 40, 1 + i % 2, when) for i in range(1, 101)])
        rentals, payments = [], []
        for i in range(1, 201):
            day = f"2005-{5 + i % 3:02d}-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{(7 * i) % 60:02d}"
            back = None if i % 17 == 0 else day.replace("2005-", "2006-", 1)
            rentals.append((i, day, rng.randint(1, 100), 1 + i % 30, back, 1 + i % 2, when))
            payments.append((i, 1 + i % 30, 1 + i % 2, i if i % 25 else None, rng.choice(("0.99", "2.99", "10.99")),
                             day, when))  # fmt: skip
        _insert(cur, "rental", rentals)
        _insert(cur, "payment", payments)
        cur.execute("COMMIT")
        cur.execute("SET FOREIGN_KEY_CHECKS = 1")
        for statement in (*DATE_TRIGGERS, *VIEWS):
            cur.execute(statement)


def delete_film(film_id: int) -> list[str]:
    """One transaction deleting a film: its children first, as Sakila's RESTRICT keys (the
    cascading ones replaced, as `plan` asks) demand; del_film then deletes its film_text row."""
    rentals = f"JOIN inventory i ON i.inventory_id = r.inventory_id WHERE i.film_id = {film_id}"
    return [
        f"DELETE FROM film_actor WHERE film_id = {film_id}",
        f"DELETE FROM film_category WHERE film_id = {film_id}",
        f"DELETE p FROM payment p JOIN rental r ON r.rental_id = p.rental_id {rentals}",
        f"DELETE r FROM rental r {rentals}",
        f"DELETE FROM inventory WHERE film_id = {film_id}",
        f"DELETE FROM film WHERE film_id = {film_id}",
    ]


def delete_customer(customer_id: int) -> list[str]:
    """One transaction deleting a customer with its payments and rentals."""
    return [f"DELETE FROM {t} WHERE customer_id = {customer_id}" for t in ("payment", "rental", "customer")]
