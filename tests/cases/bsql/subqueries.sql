-- BSQL golden case: correlated subqueries DataFusion cannot decorrelate (a correlation
-- that is not an equality), evaluated row by row; run with psql -X -q; expected output
-- produced by PostgreSQL 15.
\set VERBOSITY sqlstate
create table sq_t (a int, b int, c int, d int, e int);
insert into sq_t values (1, 2, 3, 4, 5), (6, 7, 8, 9, 10), (11, 12, 13, 14, 15), (2, 1, 4, 3, 5), (20, null, 1, 2, 3);
select a, (select count(*) from sq_t as x where x.b < sq_t.b) as below from sq_t order by 1;
select a from sq_t where (select count(*) from sq_t as x where x.b < sq_t.b) > 1 order by a desc;
select (select count(*) from sq_t as x where x.c > sq_t.c and x.d < sq_t.d), a + b from sq_t order by 2 nulls first, 1 limit 3;
select case when a < (select avg(c) from sq_t) then a * 2 else (select count(*) from sq_t as x where x.b < sq_t.b) end as v from sq_t order by 1;
select (select max(x.a) from sq_t as x where x.a < sq_t.a) as prev, a from sq_t order by a offset 1;
select distinct (select count(*) from sq_t as x where x.e <= sq_t.e) from sq_t order by 1;
select a from sq_t where exists (select 1 from sq_t as x where x.a > sq_t.a * 5) order by a;
select (select 1 from sq_t as x where x.b < sq_t.b) from sq_t;
select (select count(*) from sq_t as x where x.b < sq_t.b) from sq_t where a > 100;
drop table sq_t;
