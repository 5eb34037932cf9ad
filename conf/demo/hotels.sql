-- Sample database served by the shipped config as /mcp/demo-db.
-- mcpgate creates conf/demo/hotels.db from this script on first start.
CREATE TABLE hotels (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  city TEXT NOT NULL,
  country TEXT NOT NULL,
  stars INTEGER NOT NULL CHECK (stars BETWEEN 1 AND 5),
  price_per_night REAL NOT NULL,
  opened DATE
);
CREATE TABLE guests (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT NOT NULL UNIQUE
);
CREATE TABLE bookings (
  id INTEGER PRIMARY KEY,
  hotel_id INTEGER NOT NULL REFERENCES hotels(id),
  guest_id INTEGER NOT NULL REFERENCES guests(id),
  check_in DATE NOT NULL,
  check_out DATE NOT NULL,
  status TEXT NOT NULL DEFAULT 'confirmed' CHECK (status IN ('confirmed', 'cancelled', 'completed'))
);
CREATE INDEX bookings_hotel ON bookings(hotel_id);
CREATE INDEX bookings_guest ON bookings(guest_id);
CREATE VIEW hotel_occupancy AS
  SELECT h.name, COUNT(b.id) AS bookings FROM hotels h LEFT JOIN bookings b ON b.hotel_id = h.id AND b.status != 'cancelled' GROUP BY h.id;

INSERT INTO hotels VALUES
  (1, 'Harbour View', 'Lisbon', 'PT', 4, 145.0, '2009-05-01'),
  (2, 'Alpine Lodge', 'Zermatt', 'CH', 5, 420.0, '1998-12-15'),
  (3, 'City Central', 'Berlin', 'DE', 3, 89.5, '2015-03-20'),
  (4, 'Canal House', 'Amsterdam', 'NL', 4, 175.0, '2011-07-07'),
  (5, 'Old Town Inn', 'Prague', 'CZ', 3, 72.0, '2003-09-30'),
  (6, 'Seaside Retreat', 'Nice', 'FR', 5, 390.0, '2019-06-01'),
  (7, 'Park Suites', 'Vienna', 'AT', 4, 160.0, NULL),
  (8, 'Riverside', 'Porto', 'PT', 3, 95.0, '2017-04-12');
INSERT INTO guests VALUES
  (1, 'Ana Souza', 'ana@example.com'), (2, 'Ben Keller', 'ben@example.com'),
  (3, 'Chloé Martin', 'chloe@example.com'), (4, 'Dara Novak', 'dara@example.com'),
  (5, 'Elif Yılmaz', 'elif@example.com'), (6, 'Finn Larsen', 'finn@example.com');
INSERT INTO bookings VALUES
  (1, 1, 1, '2026-06-01', '2026-06-05', 'completed'),
  (2, 2, 2, '2026-12-20', '2026-12-27', 'confirmed'),
  (3, 3, 3, '2026-09-10', '2026-09-12', 'completed'),
  (4, 1, 4, '2026-07-14', '2026-07-18', 'cancelled'),
  (5, 4, 5, '2026-10-01', '2026-10-04', 'completed'),
  (6, 6, 6, '2027-01-05', '2027-01-09', 'confirmed'),
  (7, 5, 1, '2026-11-28', '2026-12-01', 'confirmed'),
  (8, 8, 2, '2026-08-08', '2026-08-11', 'completed'),
  (9, 1, 3, '2027-02-14', '2027-02-16', 'confirmed'),
  (10, 7, 4, '2026-05-03', '2026-05-06', 'completed');
