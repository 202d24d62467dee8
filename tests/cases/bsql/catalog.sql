-- BSQL golden case: psql's catalog listings (\dt and \di with patterns, \dn); run with psql -X -q;
-- expected output produced by PostgreSQL 15.
\set VERBOSITY sqlstate
create table cat_accounts (id int primary key, name text);
create table cat_zebra (k int primary key);
\dt cat_*
\dt cat_acc*
\dt nothing_here
\di cat_*
\dn
select count(*) from pg_catalog.pg_namespace where nspname = 'public';
select datname from pg_catalog.pg_database where datname = current_database();
select relname, relkind from pg_class where relname like 'cat\_%' order by relname;
select nspname from pg_namespace where nspname in ('public', 'pg_catalog') order by 1;
drop table cat_accounts;
drop table cat_zebra;
