-- BSQL golden case: psql's \d and \d+ on tables (columns, types, not null, defaults, the
-- primary key index, CHECK constraints), CREATE INDEX / DROP INDEX with their errors, and
-- \di; run with psql -X -q; expected output produced by PostgreSQL 15.
\set VERBOSITY sqlstate
create table d_people (id bigint primary key, name text not null default 'x', score double precision);
create table d_items (sku varchar(12), shop int, qty int default 0 check (qty >= 0), note char(3), added date not null, ok boolean default true, primary key (sku, shop), constraint d_small check (shop < 1000));
create table d_nokey (a int, b text);
\d d_people
\d+ d_people
\d d_items
\d+ d_items
\d d_nokey
\d d_nothing
create index d_k on d_items (qty);
create index on d_items (note desc, qty);
create index on d_items (note desc, qty);
create index if not exists d_k on d_items (shop);
\d d_items
\di d_*
create index d_k on d_items (qty);
create index on d_nothing (a);
create index on d_items (nope);
drop index d_nothing;
drop index if exists d_nothing;
drop index d_items_pkey;
alter table d_items drop column qty;
\d d_items
drop index d_items_note_qty_idx;
drop table d_people;
drop table d_items;
drop table d_nokey;
