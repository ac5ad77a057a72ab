-- A Chinook-like music store, built to be migrated without having been designed for it:
-- artists -> albums -> tracks (two levels of embedding), a genre referenced by its text name,
-- playlists with a compound-key link table, customers keyed by text ('C-0001') with unicode
-- names, invoices with their lines. Every row is generated server-side and deterministically.

CREATE TABLE artist (
    artist_id integer PRIMARY KEY,
    name      text NOT NULL
);

CREATE TABLE album (
    album_id  integer PRIMARY KEY,
    artist_id integer NOT NULL REFERENCES artist,
    title     text NOT NULL,
    released  date
);

CREATE TABLE genre (
    name        text PRIMARY KEY,
    description text
);

CREATE TABLE track (
    track_id     integer PRIMARY KEY,
    album_id     integer REFERENCES album,          -- NULL: a single, on no album
    track_no     integer NOT NULL,                  -- not unique within an album: ties happen
    name         text NOT NULL,
    genre        text REFERENCES genre (name),
    composer     text,
    milliseconds integer NOT NULL,
    bytes        bigint,
    unit_price   numeric(10, 2) NOT NULL
);

CREATE TABLE playlist (
    playlist_id integer PRIMARY KEY,
    name        text NOT NULL
);

CREATE TABLE playlist_track (
    playlist_id integer REFERENCES playlist,
    track_id    integer REFERENCES track,
    position    integer NOT NULL,
    added_at    timestamptz NOT NULL,
    PRIMARY KEY (playlist_id, track_id)
);

CREATE TABLE customer (
    customer_id text PRIMARY KEY,
    first_name  text NOT NULL,
    last_name   text NOT NULL,
    email       text NOT NULL UNIQUE,
    country     text,
    support_rep text
);

CREATE TABLE invoice (
    invoice_id      integer PRIMARY KEY,
    customer_id     text NOT NULL REFERENCES customer,
    invoice_date    timestamp NOT NULL,
    billing_country text,
    total           numeric(10, 2) NOT NULL DEFAULT 0
);

CREATE TABLE invoice_line (
    invoice_line_id integer PRIMARY KEY,
    invoice_id      integer NOT NULL REFERENCES invoice,
    track_id        integer NOT NULL REFERENCES track,
    unit_price      numeric(10, 2) NOT NULL,
    quantity        integer NOT NULL
);

INSERT INTO genre (name, description)
SELECT g, CASE WHEN length(g) % 3 = 0 THEN NULL ELSE 'All about ' || g END
FROM unnest(ARRAY['Rock', 'Jazz', 'Metal', 'Alternative & Punk', 'Rock And Roll', 'Blues', 'Latin',
                  'Reggae', 'Pop', 'Soundtrack', 'Bossa Nova', 'Easy Listening', 'Heavy Metal',
                  'R&B/Soul', 'Electronica/Dance', 'World', 'Hip Hop/Rap', 'Science Fiction',
                  'TV Shows', 'Sci Fi & Fantasy', 'Drama', 'Comedy', 'Alternative', 'Classical',
                  'Opera']) AS g;

-- Artists 281..300 have no albums.
INSERT INTO artist (artist_id, name)
SELECT g, (ARRAY['Ångström', 'Motörhead', '東京事変', 'Beyoncé', 'Sigur Rós', 'AC/DC', 'Мумий Тролль'])[1 + g % 7]
          || ' ' || g
FROM generate_series(1, 300) AS g;

INSERT INTO album (album_id, artist_id, title, released)
SELECT g, 1 + (g * 7) % 280, 'Album ' || g || CASE WHEN g % 5 = 0 THEN ' (Deluxe – Remastered)' ELSE '' END,
       CASE WHEN g % 13 = 0 THEN NULL ELSE date '1970-01-01' + (g * 37) % 18000 END
FROM generate_series(1, 700) AS g;

INSERT INTO track (track_id, album_id, track_no, name, genre, composer, milliseconds, bytes, unit_price)
SELECT g,
       CASE WHEN g % 97 = 0 THEN NULL ELSE 1 + (g * 13) % 700 END,
       1 + (g * 7) % 9,
       'Track ' || g || CASE WHEN g % 11 = 0 THEN ' ♫ “live”' ELSE '' END,
       CASE WHEN g % 17 = 0 THEN NULL
            ELSE (SELECT name FROM genre ORDER BY name OFFSET (g % 25) LIMIT 1) END,
       CASE WHEN g % 3 = 0 THEN NULL ELSE 'Composer ' || (g % 40) END,
       120000 + (g * 7919) % 300000,
       CASE WHEN g % 19 = 0 THEN NULL ELSE g::bigint * 1000003 END,  -- above 2^31 from g = 2148
       CASE WHEN g % 4 = 0 THEN 1.99 ELSE 0.99 END
FROM generate_series(1, 4000) AS g;

INSERT INTO playlist (playlist_id, name)
SELECT g, 'Playlist ' || g FROM generate_series(1, 18) AS g;

INSERT INTO playlist_track (playlist_id, track_id, position, added_at)
SELECT p, t,
       row_number() OVER (PARTITION BY p ORDER BY (t * 31) % 1000, t),
       timestamptz '2020-01-01 00:00:00+00' + t * interval '1 minute 1.123456 second'
FROM generate_series(1, 18) AS p, generate_series(1, 4000) AS t
WHERE (t * p) % 23 = 0;

-- Customers C-0481..C-0500 have no invoices.
INSERT INTO customer (customer_id, first_name, last_name, email, country, support_rep)
SELECT 'C-' || lpad(g::text, 4, '0'),
       (ARRAY['José', 'Zoë', 'Łukasz', 'Søren', 'Анна', '李', 'محمد', 'François', 'Ærøskøbing'])[1 + g % 9],
       (ARRAY['Gonçalves', 'Müller', 'Kowalski', 'Østergaard', 'Иванова', '王', 'Ñúñez'])[1 + g % 7],
       'c' || g || '@example.com',
       CASE WHEN g % 10 = 0 THEN NULL ELSE (ARRAY['Brazil', 'Germany', 'Poland', 'Denmark', 'Russia', 'China'])[1 + g % 6] END,
       CASE WHEN g % 2 = 0 THEN NULL ELSE 'Rep ' || (g % 5) END
FROM generate_series(1, 500) AS g;

INSERT INTO invoice (invoice_id, customer_id, invoice_date, billing_country)
SELECT g, 'C-' || lpad((1 + (g * 17) % 480)::text, 4, '0'),
       timestamp '2021-01-01 00:00:00' + ((g * 7) % 1500) * interval '3 hours 17.123456 seconds',
       CASE WHEN g % 9 = 0 THEN NULL ELSE 'Country ' || (g % 6) END
FROM generate_series(1, 2000) AS g;

INSERT INTO invoice_line (invoice_line_id, invoice_id, track_id, unit_price, quantity)
SELECT g, 1 + (g * 7) % 2000, 1 + (g * 31) % 4000, CASE WHEN g % 4 = 0 THEN 1.99 ELSE 0.99 END, 1 + g % 3
FROM generate_series(1, 6000) AS g;

UPDATE invoice i SET total = s.total
FROM (SELECT invoice_id, sum(unit_price * quantity) AS total FROM invoice_line GROUP BY invoice_id) AS s
WHERE s.invoice_id = i.invoice_id;

ANALYZE;
