-- BSQL golden case: plain numeric prints without padding zeros, numeric(p,s) with its
-- scale, as PostgreSQL; run with psql -X -q; expected output produced by PostgreSQL 15.
\set VERBOSITY sqlstate
create table num_vals (id int primary key, v numeric, w numeric(6,2));
insert into num_vals values (1, 1.5, 2.5), (2, 10, 3), (3, 0.125, null), (4, -42.75, -1), (5, null, 0);
select * from num_vals order by id;
select sum(v), max(v), min(w) from num_vals;
select id from num_vals where v > 1 order by id;
\d num_vals
