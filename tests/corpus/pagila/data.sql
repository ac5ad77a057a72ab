-- Generated, deterministic data for schema.sql (pagila's own data is not used: its size and
-- licence do not matter here, its shape does). About 1,300 rows.
INSERT INTO language (name) VALUES ('English'), ('Italian'), ('Japanese'), ('Mandarin'), ('French'), ('German');
INSERT INTO country (country) SELECT 'Country ' || i FROM generate_series(1, 20) i;
INSERT INTO city (city, country_id) SELECT 'City ' || i, (i % 20) + 1 FROM generate_series(1, 60) i;
INSERT INTO address (address, address2, district, city_id, postal_code, phone)
    SELECT i || ' Main Street', CASE WHEN i % 3 = 0 THEN NULL ELSE '' END, 'District ' || (i % 7),
           (i % 60) + 1, lpad((i * 37 % 99999)::text, 5, '0'), '555-' || lpad(i::text, 4, '0')
    FROM generate_series(1, 130) i;
INSERT INTO staff (first_name, last_name, address_id, email, store_id, username, password, picture) VALUES
    ('Mike', 'Hillyer', 3, 'Mike.Hillyer@sakilastaff.com', 1, 'Mike', '8cb2237d0679ca88db6464eac60da96345513964', '\x89504e47'),
    ('Jon', 'Stephens', 4, 'Jon.Stephens@sakilastaff.com', 2, 'Jon', '8cb2237d0679ca88db6464eac60da96345513964', NULL);
INSERT INTO store (manager_staff_id, address_id) VALUES (1, 1), (2, 2);
ALTER TABLE staff ADD FOREIGN KEY (store_id) REFERENCES store;
INSERT INTO customer (store_id, first_name, last_name, email, address_id, activebool, create_date, active)
    SELECT (i % 2) + 1, 'First' || i, 'Last' || (i % 37), 'customer' || i || '@example.org', i + 5,
           i % 11 <> 0, DATE '2022-02-14' + (i % 30), (i % 11 <> 0)::int
    FROM generate_series(1, 100) i;
INSERT INTO actor (first_name, last_name) SELECT 'Actor' || i, 'Surname' || (i % 13) FROM generate_series(1, 40) i;
INSERT INTO category (name) VALUES ('Action'), ('Animation'), ('Children'), ('Classics'), ('Comedy'), ('Documentary'),
    ('Drama'), ('Family'), ('Foreign'), ('Games'), ('Horror'), ('Music'), ('New'), ('Sci-Fi'), ('Sports'), ('Travel');
INSERT INTO film (title, description, release_year, language_id, original_language_id, rental_duration, rental_rate,
                  length, replacement_cost, rating, special_features)
    SELECT 'FILM TITLE ' || i, 'A film about ' || md5(i::text), 2006 + (i % 5), (i % 6) + 1,
           CASE WHEN i % 4 = 0 THEN 1 END, 3 + (i % 5), (0.99 + (i % 3) * 2)::numeric(4,2), 46 + (i * 7 % 140),
           (9.99 + (i % 21))::numeric(5,2), (enum_range(NULL::mpaa_rating))[(i % 5) + 1],
           (ARRAY['{Trailers}', '{Commentaries,"Deleted Scenes"}', '{"Behind the Scenes"}', NULL])[(i % 4) + 1]::text[]
    FROM generate_series(1, 60) i;
INSERT INTO film_actor (actor_id, film_id) SELECT ((f * 7 + k * 11) % 40) + 1, f FROM generate_series(1, 60) f, generate_series(0, 2) k;
INSERT INTO film_category (film_id, category_id) SELECT f, (f % 16) + 1 FROM generate_series(1, 60) f;
INSERT INTO inventory (film_id, store_id) SELECT (i % 60) + 1, (i % 2) + 1 FROM generate_series(1, 150) i;
INSERT INTO rental (rental_date, inventory_id, customer_id, return_date, staff_id)
    SELECT TIMESTAMPTZ '2022-01-01 00:00:00+00' + i * INTERVAL '13 hours 7 minutes 11.123456 seconds', (i % 150) + 1,
           (i % 100) + 1, CASE WHEN i % 9 = 0 THEN NULL
                               ELSE TIMESTAMPTZ '2022-01-01 00:00:00+00' + i * INTERVAL '13 hours 7 minutes' + INTERVAL '3 days' END,
           (i % 2) + 1
    FROM generate_series(1, 300) i;
INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date)
    SELECT customer_id, staff_id, rental_id, (0.99 + (rental_id % 9))::numeric(5,2), rental_date + INTERVAL '1 hour'
    FROM rental WHERE rental_id % 10 <> 0;
