-- PostgreSQL's semantics where a naive engine differs, default verbosity.
-- A table without a primary key returns its rows in insertion order.
CREATE TABLE sem_heap (f1 int2, f2 text);
INSERT INTO sem_heap VALUES (5, 'e'), (32767, 'z'), (-3, 'c');
INSERT INTO sem_heap VALUES (0, 'a');
INSERT INTO sem_heap SELECT 1234, 'x';
SELECT * FROM sem_heap;
-- Integer arithmetic fails instead of wrapping around.
SELECT f1, f1 * 2::int2 AS x FROM sem_heap;
SELECT f1, f1 + 1::int2 AS x FROM sem_heap WHERE f1 < 32767;
SELECT 2147483647::int4 + 1::int4;
SELECT (-9223372036854775808)::int8 * (-1)::int8;
SELECT (-32768)::int2 / (-1)::int2;
SELECT 7::int4 / 0::int4;
SELECT gcd((-2147483648)::int4, 0::int4);
-- Floats round to the nearest even integer, numerics away from zero.
SELECT x, x::int2 AS i FROM (VALUES (-2.5::float8), (-1.5::float8), (-0.5::float8),
  (0.5::float8), (1.5::float8), (2.5::float8)) t(x);
SELECT x, x::int4 AS i FROM (VALUES (-2.5::numeric), (-0.5::numeric), (0.0::numeric),
  (0.5::numeric), (2.5::numeric)) t(x);
SELECT 40000.0::float8::int2;
-- Booleans: PostgreSQL's input rules, and its errors.
SELECT bool 'yes' AS t, bool ' of ' AS f, 'TRU'::boolean AS t2;
SELECT bool 'yeah' AS error;
SELECT 'o'::text::boolean AS error;
SELECT booleq(true, false), boolne(true, false);
-- Floats as PostgreSQL writes and reads them.
SELECT 1e15::float8 AS a, 1e14::float8 AS b, 0.00001::float8 AS c, 1.5e-7::float4 AS d,
  'Infinity'::float8 AS e, '-inf'::float8 AS f, 'NaN'::float8 AS g;
SELECT f1, f1 * '-10' AS x, @ f1 AS a, |/ 16.0 AS s, ceiling(f1) AS c, sign(f1) AS g
  FROM (VALUES (1004.3::float8), (-34.84::float8), (1.2345678901234e+200::float8)) t(f1);
SELECT '10e400'::float8;
SELECT 'N A N'::float8;
SELECT ' 7 '::text::float8 + 1 AS eight;
SELECT 1e308::float8 * 10;
SELECT 1::float8 / 0;
SELECT power(1004.3::float8, '2.0') AS square, ln(2.0::float8) AS ln2, sqrt('16') AS four;
SELECT ln(0::float8);
SELECT ln(-1::float8);
SELECT sqrt(-4::float8);
SELECT exp(1000::float8);
SELECT power(0::float8, -1::float8);
SELECT power(-8::float8, 0.5::float8);
SELECT acosh(0.5::float8);
SET extra_float_digits = 0;
SELECT sqrt(1004.3::float8) AS s, 1.1::float4 AS r;
RESET extra_float_digits;
SELECT sqrt(1004.3::float8) AS s;
-- INSERT's column list and values, NOT NULL's failing row, UPDATE ... SET c = DEFAULT.
CREATE TABLE sem_ins (a int NOT NULL, b int DEFAULT 10, c text);
INSERT INTO sem_ins (a, b, c) VALUES (1, 2);
INSERT INTO sem_ins (a) VALUES (1, 2);
INSERT INTO sem_ins VALUES (NULL, 5, 'x');
INSERT INTO sem_ins VALUES (1, 5, 'x');
UPDATE sem_ins SET b = DEFAULT, c = DEFAULT;
SELECT * FROM sem_ins;
DROP TABLE sem_ins;
-- Input errors point at the literal.
INSERT INTO sem_heap (f1) VALUES ('34.5');
INSERT INTO sem_heap (f1)
  VALUES ('100000');
SELECT '12 3'::int4;
-- Columns of a cast are named for the type.
SELECT (1 + 2)::text, 'x'::text, f1::text FROM sem_heap WHERE f1 = 5;
-- Column aliases and TABLE queries.
SELECT * FROM sem_heap AS f(a, b, c);
SELECT * FROM (TABLE sem_heap) AS s (a, b) WHERE a > 1000;
-- varchar(n) cuts trailing blanks, and refuses anything else.
CREATE TABLE sem_vc (v varchar(2));
INSERT INTO sem_vc VALUES ('ab    ');
INSERT INTO sem_vc VALUES ('abc');
SELECT v || '|' FROM sem_vc;
-- A temporary table hides a permanent one of the same name, until it is dropped.
CREATE TABLE sem_t (a text);
INSERT INTO sem_t VALUES ('permanent');
CREATE TEMP TABLE sem_t (a int);
INSERT INTO sem_t VALUES (1), (2);
SELECT * FROM sem_t;
SELECT * FROM public.sem_t;
DROP TABLE sem_t;
SELECT * FROM sem_t;
DROP TABLE sem_t;
DROP TABLE sem_heap;
DROP TABLE sem_vc;
