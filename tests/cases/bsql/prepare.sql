-- BSQL golden case: SQL-level PREPARE / EXECUTE / DEALLOCATE; run with psql -X -q; expected
-- output produced by PostgreSQL 15.
\set VERBOSITY sqlstate
create table prep_items (id int primary key, name text, qty int);
prepare ins (int, text, int) as insert into prep_items values ($1, $2, $3);
execute ins(1, 'apple', 10);
execute ins(2, 'pear', 5);
execute ins (3, 'fig', 7);
prepare by_id (int) as select name, qty from prep_items where id = $1;
execute by_id(2);
prepare cheap as select id from prep_items where qty < $1 order by id;
execute cheap(8);
prepare bump (int, int) as update prep_items set qty = qty + $2 where id = $1 returning qty;
execute bump(1, 5);
execute by_id(1);
execute by_id(1, 2);
execute nope(1);
prepare ins as select 1;
deallocate ins;
execute ins(4, 'kiwi', 1);
deallocate prepare by_id;
deallocate nope;
deallocate all;
execute cheap(100);
drop table prep_items;
