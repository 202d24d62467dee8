//! Global secondary indexes (`CREATE INDEX`), kept in step with their base table by
//! distributed transactions.
//!
//! An index on a regular or static column of a single-cell type (scalars, frozen
//! collections and UDTs) has a table of its own, hash-split like any CQL table and named
//! `<index>$index` in the base table's keyspace (hidden from CQL: its schema is not a
//! [`TableDef`]). One KV per indexed cell:
//! ```text
//! key   = token(8, Murmur3 of the value's wire bytes) ‖ len(u32) ‖ wire bytes ‖ base row key
//! value = a Cell with the base cell's writetime, expiry and TTL, and no value bytes
//! ```
//! The base row key is the base cell key without its column id (`partition ‖ 0x10 ‖ ck…`,
//! or `partition ‖ 0x01` for a static column, which selects the whole partition). The
//! entries of one value are contiguous in one tablet, ordered by the base rows' tokens.
//!
//! Writes: every write to a table with such an index goes through [`write`], one
//! serializable transaction that reads the indexed cells' old values, deletes their
//! entries, writes the new ones and the base cells, and checks the write's conditions
//! (lightweight transactions) against the same snapshot. Creation: the index is first
//! maintained by every writer (`ready = false`), then [`backfill`] indexes the existing rows
//! page by page, each page one transaction, then it is marked ready and queries use it.
//! Reads ([`entries`]) re-check every row they fetch, so an entry can never make a query
//! return a row that does not match.
//!
//! Indexes on collections (keys, values, entries of non-frozen collections) and on
//! primary-key columns have no table: their queries filter a scan.

use std::collections::BTreeMap;
use std::sync::Arc;

use client::{Isolation, Table};
use rpc::tablet::{Condition, KvOp};

use crate::dml::Planned;
use crate::error::{CqlError, Result};
use crate::exec::Engine;
use crate::schema::{self, Cell, Column, IndexDef, Kind, TableDef};

/// Suffix of an index's table name.
pub const TABLE_SUFFIX: &str = "$index";

/// Attempts of a write whose transaction met a conflicting one.
const ATTEMPTS: u32 = 16;
/// Largest indexed value (wire bytes): Cassandra's 64 KiB key limit, less room for the rest
/// of the entry key within the store's key limit.
pub const MAX_VALUE: usize = 65_535 - 512;
/// Base rows per backfill transaction.
const BACKFILL_PAGE: u32 = 500;

/// The table name of index `name`.
pub fn table_name(name: &str) -> String {
    format!("{name}{TABLE_SUFFIX}")
}

/// Whether an index of `kind` on column `c` gets a table of its own.
pub fn can_back(c: &Column, kind: &str) -> bool {
    matches!(c.kind, Kind::Regular | Kind::Static)
        && matches!(kind, "values" | "full")
        && !c.ty.is_multicell()
        && !c.ty.is_counter()
}

/// The indexes of `def` that writers keep in step (being built or ready), with their column.
pub fn maintained(def: &TableDef) -> impl Iterator<Item = (&IndexDef, &Column)> {
    def.indexes
        .iter()
        .filter(|i| !i.table.is_empty())
        .filter_map(|i| def.col(&i.column).map(|c| (i, c)))
}

/// Whether writes to `def` must go through [`write`].
pub fn has_maintained(def: &TableDef) -> bool {
    maintained(def).next().is_some()
}

/// The key prefix of the entries of one value (wire bytes), and the tablet hash it routes by.
pub fn value_prefix(wire: &[u8]) -> (u16, Vec<u8>) {
    let token = crate::token::token(wire);
    let mut k = Vec::with_capacity(12 + wire.len());
    k.extend_from_slice(&schema::token_bytes(token));
    k.extend_from_slice(&(wire.len() as u32).to_be_bytes());
    k.extend_from_slice(wire);
    (schema::token_hash(token), k)
}

/// The base row key of an entry key whose value prefix is `prefix_len` long.
pub fn base_key(entry: &[u8], prefix_len: usize) -> &[u8] {
    entry.get(prefix_len..).unwrap_or_default()
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A cell's TTL in ms relative to now, as a transaction takes it (0: none).
fn ttl_ms(expire_at_us: u64, relative_ms: u64, now: i64) -> u64 {
    if expire_at_us > 0 {
        (expire_at_us.saturating_sub(now.max(0) as u64) / 1000).max(1)
    } else {
        relative_ms
    }
}

/// Buffer the entry of `cell` (an indexed cell of base row `row`) in `txn`: a delete when
/// `put` is false.
fn stage_entry(
    txn: &mut client::Transaction,
    ixt: &Table,
    cell: &Cell,
    row: &[u8],
    put: bool,
    now: i64,
) {
    let (hash, mut key) = value_prefix(&cell.value);
    key.extend_from_slice(row);
    let idx = ixt.tablet_for_hash(hash);
    if put {
        let entry = Cell {
            writetime: cell.writetime,
            expire_us: cell.expire_us,
            ttl: cell.ttl,
            value: Vec::new(),
        };
        let ttl = if cell.expire_us > 0 {
            ttl_ms(cell.expire_us as u64, 0, now)
        } else {
            0
        };
        txn.put_with_ttl(ixt, idx, &key, Some(entry.encode()), ttl);
    } else {
        txn.put_with_ttl(ixt, idx, &key, None, 0);
    }
}

fn holds(op: &KvOp, cur: &Option<Vec<u8>>) -> bool {
    match Condition::try_from(op.condition).unwrap_or(Condition::None) {
        Condition::IfAbsent => cur.is_none(),
        Condition::IfPresent => cur.is_some(),
        Condition::IfEquals => cur.as_deref() == Some(&op.expected[..]),
        _ => true,
    }
}

fn is_retryable(e: &client::ClientError) -> bool {
    e.code() == common::StatusCode::TxnConflict
}

/// Write planned cell groups (of any tables, some with maintained indexes) in one
/// serializable transaction, with their index entries; false (nothing written) if a
/// condition of an op does not hold.
pub async fn write(engine: &Engine, groups: &[Planned]) -> Result<bool> {
    let client = &engine.catalog.client;
    // The index tables of every table written.
    let mut ix_tables: BTreeMap<String, Arc<Table>> = BTreeMap::new();
    for g in groups {
        for (i, _) in maintained(&g.def) {
            if !ix_tables.contains_key(&i.table_id) {
                // None: the definition is stale and the index dropped; nothing to keep.
                if let Some(t) = engine.catalog.index_table(&g.def.keyspace, i).await? {
                    ix_tables.insert(i.table_id.clone(), t);
                }
            }
        }
    }
    // The last op on each cell is the one that stays.
    let mut last: BTreeMap<(&str, usize, &[u8]), (&Planned, &KvOp)> = BTreeMap::new();
    for g in groups {
        for op in &g.ops {
            last.insert(
                (g.table.info.table_id.as_str(), g.idx, &op.key[..]),
                (g, op),
            );
        }
    }
    // Indexed cells written: (group, op, index table).
    let mut indexed: Vec<(&Planned, &KvOp, &Arc<Table>)> = Vec::new();
    for (g, op) in last.values() {
        let Some(parts) = schema::parse_key(&g.def, &op.key) else {
            continue;
        };
        for (i, c) in maintained(&g.def) {
            if c.id == parts.col {
                if let Some(t) = ix_tables.get(&i.table_id) {
                    let size = Cell::decode(&op.value).map_or(0, |c| c.value.len());
                    if !op.delete && size > MAX_VALUE {
                        return Err(CqlError::invalid(format!(
                            "Cannot index value of size {size} for index {} on {}.{}({}) (maximum allowed size={MAX_VALUE})",
                            i.name, g.def.keyspace, g.def.name, c.name
                        )));
                    }
                    indexed.push((g, op, t));
                }
            }
        }
    }
    // Ops with conditions (lightweight transactions).
    let checks: Vec<(&Planned, &KvOp)> = groups
        .iter()
        .flat_map(|g| g.ops.iter().map(move |op| (g, op)))
        .filter(|(_, op)| op.condition != Condition::None as i32)
        .collect();
    let mut attempt = 0;
    loop {
        let now = now_us();
        let mut txn = client.begin(Isolation::Serializable);
        let r: std::result::Result<bool, client::ClientError> = async {
            // Conditions, against the transaction's snapshot.
            if !checks.is_empty() {
                let keys: Vec<(&Table, usize, &[u8])> = checks
                    .iter()
                    .map(|(g, op)| (&*g.table, g.idx, &op.key[..]))
                    .collect();
                let cur = txn.get_many_in(&keys).await?;
                if !checks.iter().zip(&cur).all(|((_, op), v)| holds(op, v)) {
                    return Ok(false);
                }
            }
            // Old entries out, new ones in.
            let keys: Vec<(&Table, usize, &[u8])> = indexed
                .iter()
                .map(|(g, op, _)| (&*g.table, g.idx, &op.key[..]))
                .collect();
            let old = txn.get_many_in(&keys).await?;
            for ((_, op, ixt), old) in indexed.iter().zip(old) {
                let row = &op.key[..op.key.len().saturating_sub(2)];
                if let Some(cell) = old.as_deref().and_then(Cell::decode) {
                    stage_entry(&mut txn, ixt, &cell, row, false, now);
                }
                if !op.delete {
                    if let Some(cell) = Cell::decode(&op.value) {
                        stage_entry(&mut txn, ixt, &cell, row, true, now);
                    }
                }
            }
            for (g, op) in last.values() {
                let value = (!op.delete).then(|| op.value.clone());
                let ttl = ttl_ms(op.expire_at_us, op.ttl_ms, now);
                txn.put_with_ttl(&g.table, g.idx, &op.key, value, ttl);
            }
            Ok(true)
        }
        .await;
        let r = match r {
            Ok(true) => txn.commit().await.map(|_| true),
            other => other,
        };
        match r {
            Ok(applied) => return Ok(applied),
            Err(e) if is_retryable(&e) && attempt + 1 < ATTEMPTS => {
                attempt += 1;
                let jitter = rand::random::<u64>() % (2u64 << attempt.min(8));
                tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Index the rows `base` already holds: page by page, each page read and indexed in one
/// serializable transaction (so a page a writer changed meanwhile is done again).
pub async fn backfill(engine: &Engine, def: &TableDef, base: &Table, ix: &IndexDef) -> Result<()> {
    let col = def
        .col(&ix.column)
        .ok_or_else(|| CqlError::server(format!("index {} lost its column", ix.name)))?;
    let ixt = engine
        .catalog
        .index_table(&def.keyspace, ix)
        .await?
        .ok_or_else(|| CqlError::invalid(format!("Index {} was dropped while built", ix.name)))?;
    let client = &engine.catalog.client;
    for idx in 0..base.tablets.len() {
        let mut from: Option<Vec<u8>> = None;
        loop {
            let mut attempt = 0;
            let next = loop {
                let now = now_us();
                let mut txn = client.begin(Isolation::Serializable);
                let r = async {
                    let (rows, more) = txn
                        .scan(base, idx, from.clone(), None, BACKFILL_PAGE)
                        .await?;
                    for (k, v) in &rows {
                        let Some(parts) = schema::parse_key(def, k) else {
                            continue;
                        };
                        if parts.col != col.id {
                            continue;
                        }
                        // A value too large to index is left out, as Cassandra's build does.
                        if let Some(cell) = Cell::decode(v).filter(|c| c.value.len() <= MAX_VALUE) {
                            stage_entry(&mut txn, &ixt, &cell, &k[..parts.row_len], true, now);
                        }
                    }
                    Ok::<_, client::ClientError>(client::next_page(
                        more,
                        rows.last().map(|(k, _)| k.clone()),
                    ))
                }
                .await;
                let r = match r {
                    Ok(next) => txn.commit().await.map(|_| next),
                    Err(e) => Err(e),
                };
                match r {
                    Ok(next) => break next,
                    Err(e) if is_retryable(&e) && attempt + 1 < ATTEMPTS => {
                        attempt += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(5 << attempt.min(6)))
                            .await;
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            match next {
                Some(k) => from = Some(k),
                None => break,
            }
        }
    }
    Ok(())
}

/// Entries for value `wire` in index table `ixt`, in base token order, from entry key
/// `after` (exclusive) on, at most `limit`: (entry key, base row key) pairs, and whether
/// more may follow.
pub async fn entries(
    engine: &Engine,
    ixt: &Table,
    wire: &[u8],
    after: Option<&[u8]>,
    limit: u32,
) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, bool)> {
    let (hash, prefix) = value_prefix(wire);
    let idx = ixt.tablet_for_hash(hash);
    let start = match after {
        Some(a) if a.starts_with(&prefix) => [a, &[0]].concat(),
        _ => prefix.clone(),
    };
    let resp = engine
        .catalog
        .client
        .scan_tablet(
            ixt,
            idx,
            Some(start),
            crate::dml::prefix_end(&prefix),
            limit,
        )
        .await?;
    let rows = resp
        .kvs
        .into_iter()
        .map(|kv| {
            let base = base_key(&kv.key, prefix.len()).to_vec();
            (kv.key, base)
        })
        .collect();
    Ok((rows, resp.more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_of_one_value_share_a_prefix_and_a_tablet() {
        let (h1, p1) = value_prefix(b"alice@example.com");
        let (h2, p2) = value_prefix(b"alice@example.com");
        assert_eq!((h1, &p1), (h2, &p2));
        let (_, other) = value_prefix(b"alice@example.co");
        // Length-prefixed: no value's prefix is a prefix of another's.
        assert!(!p1.starts_with(&other) && !other.starts_with(&p1));
        let row = b"\x80\x00\x00\x00\x00\x00\x00\x01\x10row";
        let entry = [&p1[..], &row[..]].concat();
        assert_eq!(base_key(&entry, p1.len()), row);
    }
}
