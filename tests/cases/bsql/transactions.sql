-- Transaction blocks: BEGIN/COMMIT/ROLLBACK, a failed block, savepoints, isolation levels.
create table tx_acct (id int primary key, owner text, balance bigint not null);
insert into tx_acct values (1, 'ann', 100), (2, 'bob', 50), (3, 'cy', 0);

-- A committed transfer: both rows change together; the block sees its own writes.
begin;
update tx_acct set balance = balance - 30 where id = 1;
update tx_acct set balance = balance + 30 where id = 2;
select id, balance from tx_acct order by id;
commit;
select id, balance from tx_acct order by id;

-- A rolled-back block leaves nothing behind.
begin;
insert into tx_acct values (4, 'dee', 7);
delete from tx_acct where id = 3;
select count(*) from tx_acct;
rollback;
select id, owner from tx_acct order by id;

-- An error fails the block: later statements are refused, COMMIT rolls back.
begin;
insert into tx_acct values (5, 'eve', 1);
select 1 / 0;
select 1;
commit;
select count(*) from tx_acct where id = 5;

-- Savepoints.
begin;
insert into tx_acct values (6, 'fay', 6);
savepoint a;
insert into tx_acct values (7, 'gus', 7);
select id from tx_acct where id >= 6 order by id;
rollback to savepoint a;
select id from tx_acct where id >= 6 order by id;
select 1 / 0;
rollback to a;
insert into tx_acct values (8, 'hal', 8);
release savepoint a;
commit;
select id, owner from tx_acct where id >= 6 order by id;

-- Isolation levels.
show transaction_isolation;
begin isolation level repeatable read;
show transaction_isolation;
select sum(balance) from tx_acct;
commit;
start transaction isolation level serializable;
show transaction_isolation;
commit;
begin;
set transaction isolation level repeatable read;
show transaction_isolation;
rollback;
show transaction_isolation;

-- Outside a block.
savepoint nope;
drop table tx_acct;
