-- BSQL golden case: CHECK constraints are enforced on INSERT, UPDATE and upserts (NULL
-- passes); run with psql -X -q; expected output produced by PostgreSQL 15.
\set VERBOSITY terse
create table ck_items (id int primary key, qty int check (qty >= 0), price numeric(10,2), name text, constraint positive_price check (price > 0), check (qty < 1000 or name is not null));
insert into ck_items values (1, 5, 9.99, 'a');
insert into ck_items values (2, -1, 1, 'b');
insert into ck_items values (3, 1, 0, 'c');
insert into ck_items values (4, 2000, 1, null);
insert into ck_items values (5, null, null, null);
insert into ck_items values (6, 1, 1, 'x'), (7, -5, 1, 'y');
select * from ck_items order by id;
update ck_items set qty = -2 where id = 1;
update ck_items set qty = qty + 1 where id = 1;
update ck_items set price = 0 where id >= 1;
insert into ck_items values (1, 1, 1, 'z') on conflict (id) do update set qty = -9;
insert into ck_items values (1, 1, 1, 'z') on conflict (id) do update set qty = excluded.qty + 100;
select * from ck_items order by id;
alter table ck_items drop column qty;
insert into ck_items values (8, 2, 'n');
select * from ck_items order by id;
