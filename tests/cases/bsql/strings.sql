-- PostgreSQL's string functions and value output: format, quote_*, concat, VARIADIC,
-- to_date, timestamps and DateStyle, array literals.
select format('Hello %s, %1$s and %2$L', 'World', 'it''s');
select format('%-8s|%8s|%I', 'left', 'right', 'Mixed Case');
select format('%s %s', 'one');
select format('%L', NULL), quote_nullable(NULL), quote_literal('a\b'), quote_ident('select');
select concat(1, true, NULL, 2.5::float8, 'x'), concat_ws('-', 'a', NULL, 'b');
select concat(variadic array['a', 'b']), format('%2$s %1$s', variadic array['x', 'y']);
select concat_ws(',', variadic 5);
select length(7);
select 1 || 2;
select to_date('20240229', 'YYYYMMDD'), to_date('05 Mar 2023', 'DD Mon YYYY');
select to_timestamp('2024-01-02 13:14:15', 'YYYY-MM-DD HH24:MI:SS');
select timestamp '2024-01-02 03:04:05', timestamp '2024-01-02 03:04:05.250', time '10:11:12';
create table ts_out (id int primary key, t timestamp, d date);
insert into ts_out values (1, '2010-03-09 01:02:03', '2010-03-09'), (2, '1999-12-31 23:59:59.5', '1999-12-31');
select * from ts_out order by id;
set datestyle = 'Postgres, MDY';
show datestyle;
select * from ts_out order by id;
select concat('on ', d) from ts_out order by id;
set datestyle = 'German';
show datestyle;
select d from ts_out order by id;
set datestyle = 'SQL, DMY';
select d, t from ts_out order by id;
set datestyle = 'nonsense';
reset datestyle;
select '{1,2,3}'::int[], '{}'::text[], '{a,"b c",NULL}'::text[];
drop table ts_out;
-- Integer corner cases: functions named for types, overflow errors, ~, set-returning
-- functions' column names, oid.
select float8(3), int4(2.5::float8), int2(7);
select int2(70000);
select -('-9223372036854775808'::int8);
select abs('-9223372036854775808'::int8);
select '4567890123456789'::int8::int4;
select gcd('-9223372036854775808'::int8, 0);
select ~5 as not5, 6 # 3 as xor;
select * from generate_series(1, 2);
select * from generate_series(1, 2) g;
select * from generate_series(1, 5, 0);
select cast(123::int8 as oid) as o;
select cast(4567890123456789::int8 as oid);
select oid::int8 from pg_class where relname = 'pg_class';
-- to_char of numbers and timestamps, PostgreSQL's templates.
select to_char(4567890123456789::int8, '9G999G999G999G999G999'), to_char(-123, '9999PR'), to_char(1234.5::numeric, 'FM9,999.00');
select to_char(485, 'RN'), to_char(0.00012::float8, '9.99EEEE'), to_char(12, '99th');
select to_char(timestamp '2024-03-05 14:07:09.25', 'YYYY-MM-DD HH24:MI:SS.MS Dy Month DDth');
select to_char(date '2024-03-05', 'FMDay, DD Mon YYYY');
-- Prepared statements and pg_prepared_statements; name and path columns.
create table prep_t (id int primary key, n name, p path);
insert into prep_t values (1, 'alpha', '[(1,2),(3,4.5)]'), (2, 'beta', '((0,0),(1,1))');
select * from prep_t order by id;
insert into prep_t values (3, 'x', 'not a path');
prepare pq(int) as select n from prep_t where id = $1;
prepare pq2 as select id from prep_t where n = $1 and p = $2;
execute pq(1);
select name, statement, parameter_types from pg_prepared_statements order by name;
prepare pq3(nosuchtype) as select $1;
deallocate all;
select count(*) from pg_prepared_statements;
drop table prep_t;
-- EXECUTE arguments are checked against the declared types; CREATE TABLE AS EXECUTE.
create table prep_u (id int primary key, v text);
insert into prep_u values (1, 'one'), (2, 'two');
prepare pu(int, float8) as select id, v from prep_u where id >= $1 and id < $2 order by id;
execute pu(1, true);
execute pu('1', 10.5::numeric);
create temporary table pu_copy as execute pu(1, 3);
select * from pu_copy order by id;
create temporary table pu_empty as execute pu(1, 3) with no data;
select * from pu_empty;
deallocate pu;
drop table prep_u;
