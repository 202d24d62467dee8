-- BSQL golden case: INSERT ... ON CONFLICT DO UPDATE, and RETURNING of every DML; run with
-- psql -X -q; expected output produced by PostgreSQL 15.
\set VERBOSITY sqlstate
create table counters (k int primary key, label text, hits int default 0);
insert into counters values (1, 'a', 1), (2, 'b', 1);
insert into counters values (1, 'x', 5) on conflict (k) do update set label = excluded.label, hits = counters.hits + excluded.hits;
select * from counters order by k;
insert into counters as c values (2, 'y', 1), (3, 'c', 1) on conflict (k) do update set hits = hits + 10 where c.label = 'b' returning *;
insert into counters values (2, 'z', 1) on conflict (k) do update set hits = 0 where counters.label = 'nope' returning *;
select * from counters order by k;
insert into counters values (1, 'q', 1) on conflict on constraint counters_pkey do update set label = excluded.label || '!' returning label, hits;
insert into counters values (4, 'd', 1) on conflict (k) do nothing returning k;
insert into counters values (4, 'd', 1) on conflict (k) do nothing returning k;
insert into counters values (5, 'q', 1), (5, 'r', 1) on conflict (k) do update set label = excluded.label;
insert into counters values (5, 'q', 1) on conflict (label) do update set label = excluded.label;
insert into counters values (5, 'q', 1) on conflict do update set label = excluded.label;
insert into counters (k, label) values (6, 'e') on conflict (k) do update set hits = counters.hits + 1 returning hits;
insert into counters (k, label) values (6, 'e') on conflict (k) do update set hits = counters.hits + 1 returning hits;
create table pairs (a int, b int, v text, primary key (a, b));
insert into pairs values (1, 1, 'one');
insert into pairs values (1, 1, 'uno') on conflict (b, a) do update set v = pairs.v || '/' || excluded.v;
select * from pairs;
update counters set hits = hits * 2 where k <= 2 returning k, hits;
delete from counters where k >= 4 returning k;
select * from counters order by k;
