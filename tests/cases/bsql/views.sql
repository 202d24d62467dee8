-- BSQL golden case: CREATE VIEW, OR REPLACE, column lists, views over views, joins, DROP
-- VIEW; run with psql -X -q; expected output produced by PostgreSQL 15.
\set VERBOSITY sqlstate
create table vw_emp (id int primary key, name text not null, dept text, salary int);
insert into vw_emp values (1, 'ann', 'eng', 120), (2, 'bob', 'eng', 100), (3, 'cid', 'ops', 90), (4, 'dee', null, 70);
create view vw_eng as select id, name, salary from vw_emp where dept = 'eng';
select * from vw_eng order by id;
select name from vw_eng where salary > 110;
select count(*), sum(salary) from vw_eng;
create view vw_totals (dept, people, payroll) as select dept, count(*), sum(salary) from vw_emp group by dept;
select * from vw_totals order by dept nulls last;
select t.dept, t.payroll from vw_totals t where t.people > 1;
create view vw_rich as select name from vw_eng where salary >= 110;
select * from vw_rich;
select e.name, t.payroll from vw_emp e join vw_totals t on e.dept = t.dept order by e.name;
insert into vw_emp values (5, 'eve', 'eng', 130);
select * from vw_rich order by name;
create view vw_eng as select 1;
create or replace view vw_eng as select id, name, salary, dept from vw_emp where dept = 'eng';
select * from vw_eng order by id;
create or replace view vw_eng as select id from vw_emp;
create view vw_bad as select nope from vw_emp;
create view vw_missing as select * from vw_nothing;
create view vw_emp as select 1;
create view vw_cols (a, b, c) as select 1, 2;
with vw_eng as (select 42 as id) select * from vw_eng;
select * from vw_eng v where v.id = 2;
drop view vw_rich;
select * from vw_rich;
drop view vw_rich;
drop view if exists vw_rich;
drop view vw_emp;
drop view vw_eng, vw_totals;
select * from vw_eng;
create table if not exists vw_emp (id int primary key);
create table vw_totals (a int primary key);
drop table vw_totals;
create view vw_again as select 1 as one;
create table vw_again (a int primary key);
create table if not exists vw_again (a int primary key);
drop table vw_again;
drop table if exists vw_none, vw_totals_x;
drop view vw_again;
create view vw_shape as select id, name, salary > 100 as high from vw_emp;
\d vw_shape
\dv
drop view vw_shape;
create view vw_base as select id, name from vw_emp;
create view vw_top as select name from vw_base where id < 3;
drop view vw_base;
drop table vw_emp;
drop view vw_base cascade;
select * from vw_top;
select count(*) from vw_emp;
create view vw_a as select id from vw_emp;
create view vw_b as select id from vw_emp;
drop table vw_emp cascade;
select * from vw_a;
