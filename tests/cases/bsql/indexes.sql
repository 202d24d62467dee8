-- BSQL golden case: UNIQUE constraints and indexes, CREATE [UNIQUE] INDEX on rows already
-- stored, and reads through an index; run with psql -X -q; expected output produced by
-- PostgreSQL 15.
\set VERBOSITY sqlstate
create table ix_users (id int primary key, email text unique, name text, age int);
insert into ix_users values (1, 'a@x', 'ann', 30), (2, 'b@x', 'bob', 40);
insert into ix_users values (3, 'a@x', 'dup', 50);
insert into ix_users values (3, null, 'n1', 50), (4, null, 'n2', 60);
insert into ix_users values (5, 'e@x', 'eve', 20), (6, 'e@x', 'eve2', 21);
select id, email, name from ix_users order by id;
select id, name from ix_users where email = 'b@x';
select id, name from ix_users where email = 'nobody';
select count(*) from ix_users where email is null;
update ix_users set email = 'b@x' where id = 1;
update ix_users set email = 'c@x' where id = 1;
select id from ix_users where email = 'a@x';
select id from ix_users where email = 'c@x';
insert into ix_users values (7, 'a@x', 'reuse', 70);
delete from ix_users where id = 2;
insert into ix_users values (8, 'b@x', 'again', 80);
insert into ix_users values (9, 'b@x', 'skip', 90) on conflict do nothing;
insert into ix_users values (9, 'z@x', 'ok', 90), (10, 'z@x', 'dup', 100);
select count(*) from ix_users where id >= 9;
insert into ix_users select id + 100, email, name, age from ix_users where id = 1;
begin;
insert into ix_users values (11, 'q@x', 'txn', 1);
insert into ix_users values (12, 'q@x', 'txn', 2);
rollback;
select count(*) from ix_users where email = 'q@x';
create index ix_users_age on ix_users (age);
select id, age from ix_users where age = 80;
update ix_users set age = 81 where id = 8;
select id, age from ix_users where age = 80;
select id, age from ix_users where age = 81;
create unique index ix_users_name on ix_users (name);
insert into ix_users values (20, 'n@x', 'ann', 1);
create unique index ix_users_age_u on ix_users (age);
insert into ix_users values (21, 'm@x', 'mia', 30);
create table ix_dups (id int primary key, v int);
insert into ix_dups values (1, 1), (2, 1), (3, 2);
create unique index ix_dups_v on ix_dups (v);
insert into ix_dups values (4, 1);
\d ix_users
drop index ix_users_email_key;
drop index ix_users_name;
insert into ix_users values (22, 'r@x', 'ann', 2);
create table ix_pairs (a int, b int, c text, unique (a, b), constraint pair_c unique (c));
insert into ix_pairs values (1, 1, 'x'), (1, 2, 'y'), (2, 1, null), (2, 1, null);
insert into ix_pairs values (1, 1, 'z');
insert into ix_pairs values (1, null, 'p'), (1, null, 'q');
insert into ix_pairs values (5, 5, 'x');
select a, b, c from ix_pairs where a = 1 order by b, c;
select a, b, c from ix_pairs where a = 1 and b = 2;
\d ix_pairs
alter table ix_dups add constraint ix_dups_v_key unique (v);
delete from ix_dups where id in (2, 4);
alter table ix_dups add constraint ix_dups_v_key unique (v);
insert into ix_dups values (5, 2);
alter table ix_dups add column w int unique;
insert into ix_dups values (6, 6, 1), (7, 7, 1);
alter table ix_dups drop column w;
insert into ix_dups values (6, 6), (7, 7);
\d ix_dups
truncate ix_dups;
insert into ix_dups values (1, 2), (2, 1);
select id, v from ix_dups where v = 2;
create table ix_desc (id int primary key, g int, s text);
insert into ix_desc values (1, 10, 'a'), (2, 20, 'b'), (3, 10, 'c'), (4, null, 'd');
create index ix_desc_g on ix_desc (g desc, s);
select id from ix_desc where g = 10 order by id;
select id from ix_desc where g = 10 and s = 'c';
select id from ix_desc where g is null;
drop table ix_users, ix_pairs, ix_dups, ix_desc;
