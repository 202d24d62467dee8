-- BSQL golden case: statements outside a transaction block are atomic (a failing row
-- leaves none of the statement's rows written); run with psql -X -q; expected output
-- produced by PostgreSQL 15.
\set VERBOSITY sqlstate
create table at_rows (id int primary key, v int not null);
insert into at_rows values (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (8, 8);
insert into at_rows values (10, 10), (11, 11), (3, 33), (12, 12);
insert into at_rows values (20, 20), (21, null);
insert into at_rows values (30, 1), (30, 2);
insert into at_rows select id + 100, v from at_rows union all select 5, 0;
select count(*), sum(v) from at_rows;
update at_rows set v = v * 10 where id > 0;
update at_rows set v = case when id = 8 then null else v + 1 end;
select count(*), sum(v) from at_rows;
delete from at_rows where id % 2 = 0;
select id, v from at_rows order by id;
