-- Errors as psql shows them with the default verbosity: PostgreSQL's wording, and the
-- position that psql turns into "LINE n:" and a caret.
CREATE TABLE err_t (id int PRIMARY KEY, a int);
INSERT INTO err_t VALUES (1, 10), (2, 20);
-- A table referenced by its name where FROM gave it an alias, or not in FROM at all.
DELETE FROM err_t e WHERE err_t.a > 25;
UPDATE err_t AS e SET a = 1 WHERE err_t.id = 1;
SELECT a
  FROM err_t x
 WHERE err_t.a = 10;
SELECT nope.a FROM err_t;
-- Fine: an outer alias and an inner unaliased table in a subquery, a CTE, a function alias.
SELECT e.a FROM err_t e WHERE EXISTS (SELECT 1 FROM err_t WHERE err_t.id = e.id) ORDER BY 1;
WITH w AS (SELECT 1 AS x) SELECT w.x FROM w;
SELECT g FROM generate_series(1, 3) g;
SELECT s.i * 2 AS d FROM generate_series(1, 2) AS s(i);
-- Syntax errors.
selec 1;
SELECT 1 +;
INSERT INTO err_t VALUES (1,,2);
SELECT *
  FROM err_t
 WHERE id = = 1;
-- Prepared statements.
PREPARE q(int) AS SELECT $1;
EXECUTE q(1, 2);
DEALLOCATE q;
DROP TABLE err_t;
