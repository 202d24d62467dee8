-- BSQL golden case: the messages and DETAIL lines of key violations (primary key, unique,
-- foreign key), as PostgreSQL prints them; run with psql -X -q; expected output produced by
-- PostgreSQL 15.
create table kd_p (id int primary key, code text unique, name varchar(10));
insert into kd_p values (1, 'a', 'x'), (2, 'b', 'y');
insert into kd_p values (1, 'z', 'dup id');
insert into kd_p values (3, 'c', 'ok'), (3, 'd', 'twice');
insert into kd_p values (4, 'a', 'dup code');
update kd_p set code = 'b' where id = 1;
update kd_p set id = 2 where id = 1;
create unique index kd_p_name on kd_p (name);
insert into kd_p values (5, 'e', 'x');
create table kd_two (a int, b text, unique (a, b));
insert into kd_two values (1, 'x'), (1, 'x');
create table kd_dupes (id int primary key, v int);
insert into kd_dupes values (1, 7), (2, 7);
create unique index kd_dupes_v on kd_dupes (v);
create table kd_c (id int primary key, pid int references kd_p);
insert into kd_c values (1, 1);
insert into kd_c values (2, 99);
delete from kd_p where id = 1;
alter table kd_dupes add constraint kd_dupes_fk foreign key (v) references kd_p (id);
drop table kd_c, kd_p, kd_two, kd_dupes;
