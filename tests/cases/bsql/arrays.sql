-- Array columns: one-dimensional arrays of booleans, integers, floats and text.
create table arr (id int primary key, ints int[], bigs bigint[], words text[], flags boolean[], reals float8[], names varchar(10)[]);
insert into arr values (1, '{1,2,3}', '{10000000000}', '{a,"b c",NULL}', '{t,f}', '{1.5,-2}', '{x,y}');
insert into arr values (2, ARRAY[4,5], ARRAY[1,2]::bigint[], ARRAY['d'], ARRAY[true], ARRAY[0.25], ARRAY['z']);
insert into arr values (3, '{}', NULL, '{}', NULL, NULL, NULL);
insert into arr (id, ints) values (4, '{7, 8 ,9}');
select * from arr order by id;
select id, ints[1], ints[2], words[2], array_length(ints, 1) from arr order by id;
select id from arr where 2 = any(ints) order by id;
select id, cardinality(ints) from arr order by id;
update arr set ints = '{6}' where id = 3;
update arr set words = ARRAY['u', 'v'] where id = 4;
select id, ints, words from arr order by id;
select unnest(ints) as i from arr where id = 1;
\d arr
-- Bad input.
insert into arr (id, ints) values (5, '{1,x}');
insert into arr (id, ints) values (5, '1,2');
select count(*) from arr;
drop table arr;
