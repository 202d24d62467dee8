-- BSQL golden case: FOREIGN KEY constraints (column and table forms, NO ACTION, ON DELETE
-- CASCADE and SET NULL, a unique index as the referenced key, ALTER TABLE ADD FOREIGN KEY,
-- DROP TABLE of a referenced table); run with psql -X -q; expected output produced by
-- PostgreSQL 15.
\set VERBOSITY sqlstate
create table fk_parent (id int primary key, code text unique, name text);
insert into fk_parent values (1, 'a', 'one'), (2, 'b', 'two'), (3, 'c', 'three');
create table fk_child (id int primary key, pid int references fk_parent, note text);
create index fk_child_pid on fk_child (pid);
insert into fk_child values (10, 1, 'x'), (11, 1, 'y'), (12, 2, 'z');
insert into fk_child values (13, 9, 'orphan');
insert into fk_child values (14, null, 'no parent');
insert into fk_child values (15, 3, 'ok'), (16, 8, 'bad');
select id, pid from fk_child order by id;
update fk_child set pid = 7 where id = 10;
update fk_child set pid = 3 where id = 10;
delete from fk_parent where id = 1;
delete from fk_parent where id = 2;
update fk_parent set id = 20 where id = 2;
update fk_parent set name = 'TWO' where id = 2;
delete from fk_child where pid = 2;
delete from fk_parent where id = 2;
select id, name from fk_parent order by id;
truncate fk_parent;
drop table fk_parent;
create table fk_cascade (id int primary key, pid int, constraint fk_c foreign key (pid) references fk_parent (id) on delete cascade);
create index on fk_cascade (pid, id);
insert into fk_cascade values (1, 1), (2, 1), (3, 3);
delete from fk_parent where id = 1;
select id, pid from fk_cascade order by id;
select id, pid from fk_child order by id;
create table fk_setnull (id int primary key, code text, foreign key (code) references fk_parent (code) on delete set null);
insert into fk_setnull values (1, 'c');
insert into fk_setnull values (2, 'zz');
insert into fk_setnull values (2, null);
delete from fk_child where pid = 3;
delete from fk_parent where id = 3;
select id, code from fk_setnull order by id;
select id, pid from fk_cascade order by id;
create table fk_bad (id int primary key, pname text references fk_parent (name));
create table fk_late (id int primary key, pid int);
insert into fk_late values (1, 100);
alter table fk_late add constraint fk_late_pid foreign key (pid) references fk_parent (id);
delete from fk_late;
insert into fk_parent values (4, 'd', 'four');
insert into fk_late values (1, 4);
alter table fk_late add constraint fk_late_pid foreign key (pid) references fk_parent (id);
insert into fk_late values (2, 5);
begin;
insert into fk_parent values (5, 'e', 'five');
insert into fk_late values (2, 5);
commit;
select id, pid from fk_late order by id;
drop table fk_parent, fk_child, fk_cascade, fk_setnull, fk_late;
create table fk_p2 (id int primary key, code text unique);
create table fk_c2 (id int primary key, p int references fk_p2 on delete cascade, c text, constraint fk_c2_code foreign key (c) references fk_p2 (code) on delete set null, check (id > 0));
\d fk_p2
\d fk_c2
drop table fk_c2, fk_p2;
