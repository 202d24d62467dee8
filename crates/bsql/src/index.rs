//! Secondary indexes backed by index tables (global and consistent, as YugabyteDB's).
//!
//! Each index with a storage table ([`crate::catalog::IndexDef::storage`]) keeps one entry per
//! row of its table, in a range-partitioned table of its own, so entries are ordered and a
//! prefix of the indexed columns is one range scan:
//!
//! - key: for each indexed column a tag and the value's order-preserving encoding (tag 1 and
//!   the value, or tag 2 for NULL, so NULLs sort last as PostgreSQL's ASC; a DESC column has
//!   its bytes inverted), then the row's storage key, except in a UNIQUE index for a row
//!   whose indexed columns are all non-null: then the key is the columns alone, so a second
//!   row with the same values finds the key taken (23505). Rows with a NULL never conflict,
//!   as in PostgreSQL.
//! - value: the row's storage key.
//!
//! Entries are written in the same transaction as their rows (statements that change a table
//! with indexes always run in one, see `Session::execute`), so a committed row and its
//! entries appear together. Readers fetch the rows an index names and DataFusion re-applies
//! every filter, so an entry left by an interrupted index build is harmless.

use std::sync::Arc;

use client::{Condition, KvOp, Table};

use crate::access::Access;
use crate::catalog::{IndexDef, TableDef};
use crate::error::{SqlError, SqlResult};
use crate::row::{Datum, Row};

/// Tag of a non-null indexed value.
const VALUE: u8 = 1;
/// Tag of a NULL indexed value (after every value).
const NULL: u8 = 2;

/// An index with its storage table, ready to maintain and read.
#[derive(Debug)]
pub struct IndexTable {
    pub def: IndexDef,
    /// Indexed columns: positions in the table's columns, each with whether it is DESC.
    pub columns: Vec<(usize, bool)>,
    pub table: Arc<Table>,
}

impl IndexTable {
    pub fn new(table_def: &TableDef, def: IndexDef, table: Table) -> Self {
        let columns = def
            .columns
            .iter()
            .filter_map(|(id, desc)| table_def.position_of(*id).map(|p| (p, *desc)))
            .collect();
        IndexTable {
            def,
            columns,
            table: Arc::new(table),
        }
    }

    /// The encoded indexed columns of `row` (a prefix of its entry's key), and whether one
    /// is NULL.
    fn prefix(&self, row: &Row) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(16);
        let mut has_null = false;
        for &(c, desc) in &self.columns {
            has_null |= row[c].is_null();
            encode_column(&row[c], desc, &mut out);
        }
        (out, has_null)
    }

    /// The key of `row`'s entry (its storage key is `row_key`), and whether the key alone
    /// must be unique.
    pub fn entry_key(&self, row: &Row, row_key: &[u8]) -> (Vec<u8>, bool) {
        let (mut key, has_null) = self.prefix(row);
        let unique = self.def.unique && !has_null;
        if !unique {
            key.extend_from_slice(row_key);
        }
        (key, unique)
    }

    /// The range of keys whose leading columns are `values` (the first `values.len()`
    /// indexed columns, none NULL).
    pub fn range(&self, values: &[Datum]) -> (Vec<u8>, Vec<u8>) {
        let mut start = Vec::new();
        for (d, &(_, desc)) in values.iter().zip(&self.columns) {
            encode_column(d, desc, &mut start);
        }
        let end = successor(&start);
        (start, end)
    }

    /// The keys whose first column lies between `low` and `high` (both included; `None`:
    /// unbounded, NULLs excluded), for an ascending first column.
    pub fn value_range(&self, low: Option<&Datum>, high: Option<&Datum>) -> (Vec<u8>, Vec<u8>) {
        let start = match low {
            Some(d) => {
                let mut k = Vec::new();
                encode_column(d, false, &mut k);
                k
            }
            None => vec![VALUE],
        };
        let end = match high {
            Some(d) => {
                let mut k = Vec::new();
                encode_column(d, false, &mut k);
                successor(&k)
            }
            None => vec![NULL],
        };
        (start, end)
    }

    /// 23505 for this index, with the values of `row` (of table `table`) as DETAIL when
    /// known.
    pub fn duplicate(&self, table: &TableDef, row: Option<&Row>) -> SqlError {
        let e = SqlError::new(
            "23505",
            format!(
                "duplicate key value violates unique constraint \"{}\"",
                self.def.name
            ),
        );
        match row {
            Some(row) => {
                let cols: Vec<usize> = self.columns.iter().map(|(c, _)| *c).collect();
                e.with_detail(format!(
                    "{} already exists.",
                    crate::row::key_detail(table, row, &cols)
                ))
            }
            None => e,
        }
    }
}

fn encode_column(d: &Datum, desc: bool, out: &mut Vec<u8>) {
    let at = out.len();
    if d.is_null() {
        out.push(NULL);
    } else {
        out.push(VALUE);
        match d {
            // -0 and 0 are one value, as are all NaNs.
            Datum::Float(f) if *f == 0.0 => Datum::Float(0.0).encode_key(out),
            Datum::Float(f) if f.is_nan() => Datum::Float(f64::NAN).encode_key(out),
            d => d.encode_key(out),
        }
    }
    if desc {
        for b in &mut out[at..] {
            *b = !*b;
        }
    }
}

/// The smallest key after every key that starts with `prefix`.
fn successor(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: no upper bound but the end of the table.
    Vec::new()
}

/// One row change of a statement: the row as it was and as it is now, each with its storage
/// key (`None`: inserted / deleted).
pub type Change<'a> = (Option<(&'a [u8], &'a Row)>, Option<(&'a [u8], &'a Row)>);

/// Maintain `indexes` for a statement's row `changes`: per index, the entries of old rows
/// are removed before new ones are added (so rows that trade values within one statement do
/// not conflict), a taken unique key is 23505. The caller runs inside a transaction.
pub async fn maintain(
    access: &Access,
    table: &TableDef,
    indexes: &[IndexTable],
    changes: &[Change<'_>],
) -> SqlResult<()> {
    for ix in indexes {
        let mut deletes = Vec::new();
        let mut puts = Vec::new();
        // The new rows of unique entries, with their keys (for the error's DETAIL).
        let mut unique_rows: Vec<(Vec<u8>, &[u8], &Row)> = Vec::new();
        for (old, new) in changes {
            let old_entry = old.map(|(k, r)| (ix.entry_key(r, k), k));
            let new_entry = new.map(|(k, r)| (ix.entry_key(r, k), k));
            if let (Some((a, ka)), Some((b, kb))) = (&old_entry, &new_entry) {
                if a.0 == b.0 && ka == kb {
                    continue;
                }
            }
            if let Some(((key, _), _)) = old_entry {
                deletes.push(KvOp {
                    key,
                    delete: true,
                    ..Default::default()
                });
            }
            if let Some(((key, unique), row_key)) = new_entry {
                if let (true, Some((_, row))) = (unique, new) {
                    unique_rows.push((key.clone(), row_key, row));
                }
                puts.push(KvOp {
                    key,
                    value: row_key.to_vec(),
                    condition: if unique {
                        Condition::IfAbsent as i32
                    } else {
                        Condition::None as i32
                    },
                    ..Default::default()
                });
            }
        }
        if deletes.is_empty() && puts.is_empty() {
            continue;
        }
        let mut ops = deletes;
        ops.extend(puts);
        for chunk in chunks(ops) {
            let key = chunk[0].key.clone();
            if !access.write(&ix.table, &key, chunk).await? {
                let row = taken(access, ix, &unique_rows).await?;
                return Err(ix.duplicate(table, row));
            }
        }
    }
    Ok(())
}

/// Which new row's unique entry was taken (by an earlier row of the statement, or by an
/// entry for another row).
async fn taken<'a>(
    access: &Access,
    ix: &IndexTable,
    rows: &[(Vec<u8>, &[u8], &'a Row)],
) -> SqlResult<Option<&'a Row>> {
    let mut seen = std::collections::HashSet::new();
    for (key, _, row) in rows {
        if !seen.insert(key) {
            return Ok(Some(row));
        }
    }
    let keys: Vec<Vec<u8>> = rows.iter().map(|(k, _, _)| k.clone()).collect();
    let stored = access.get_many(&ix.table, &keys).await?;
    Ok(rows
        .iter()
        .zip(stored)
        .find(|((_, row_key, _), v)| v.as_deref().is_some_and(|v| v != *row_key))
        .map(|((_, _, row), _)| *row))
}

/// `ops` in writes of at most 1000 ops, in order.
fn chunks(mut ops: Vec<KvOp>) -> Vec<Vec<KvOp>> {
    let mut out = Vec::new();
    while !ops.is_empty() {
        let rest = ops.split_off(ops.len().min(1000));
        out.push(std::mem::replace(&mut ops, rest));
    }
    out
}

/// The storage keys of the rows whose leading indexed columns are `values` (may name rows
/// that no longer match: the caller re-applies its filters).
pub async fn lookup(access: &Access, ix: &IndexTable, values: &[Datum]) -> SqlResult<Vec<Vec<u8>>> {
    if ix.def.unique && values.len() == ix.columns.len() {
        let (key, _) = ix.range(values);
        return Ok(access.get(&ix.table, &key).await?.into_iter().collect());
    }
    let (start, end) = ix.range(values);
    let end = (!end.is_empty()).then_some(end);
    Ok(access
        .scan_range(&ix.table, start, end)
        .await?
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}

/// Build index `ix` over the rows of `table` already stored (CREATE INDEX on a table with
/// rows): each batch of entries is written in a transaction of its own that first reads the
/// entries' keys, so a row written meanwhile (whose writer already maintains the index) is
/// not counted as a duplicate of itself. A duplicate of a unique index is 23505.
pub async fn build(
    client: &client::Client,
    def: &TableDef,
    table: &Table,
    ix: &IndexTable,
) -> SqlResult<()> {
    let kvs = client.scan_all(table).await?;
    for batch in kvs.chunks(500) {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match build_batch(client, def, ix, batch).await {
                Err(e) if e.code == "40001" && attempt < 20 => {
                    tokio::time::sleep(std::time::Duration::from_millis(10 * attempt)).await;
                }
                r => {
                    r?;
                    break;
                }
            }
        }
    }
    Ok(())
}

async fn build_batch(
    client: &client::Client,
    def: &TableDef,
    ix: &IndexTable,
    batch: &[(Vec<u8>, Vec<u8>)],
) -> SqlResult<()> {
    let mut txn = client.begin(client::Isolation::Snapshot);
    let mut entries = Vec::with_capacity(batch.len());
    for (row_key, value) in batch {
        let row = crate::row::decode_value(def, value)?;
        let (key, unique) = ix.entry_key(&row, row_key);
        entries.push((key, unique, row_key.clone(), row));
    }
    let keys: Vec<(&Table, &[u8])> = entries
        .iter()
        .map(|(k, _, _, _)| (ix.table.as_ref(), &k[..]))
        .collect();
    let stored = txn.get_many(&keys).await?;
    let mut seen: std::collections::HashMap<&[u8], &[u8]> = Default::default();
    for ((key, unique, row_key, row), stored) in entries.iter().zip(stored) {
        if *unique {
            let other = seen.get(&key[..]).copied().or(stored.as_deref());
            if other.is_some_and(|o| o != &row_key[..]) {
                let cols: Vec<usize> = ix.columns.iter().map(|(c, _)| *c).collect();
                return Err(SqlError::new(
                    "23505",
                    format!("could not create unique index \"{}\"", ix.def.name),
                )
                .with_detail(format!(
                    "{} is duplicated.",
                    crate::row::key_detail(def, row, &cols)
                )));
            }
            seen.insert(key, row_key);
        }
        txn.put(&ix.table, key, row_key);
    }
    txn.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_bounds_the_prefix() {
        assert_eq!(successor(&[1, 2]), vec![1, 3]);
        assert_eq!(successor(&[1, 0xff]), vec![2]);
        assert_eq!(successor(&[0xff]), Vec::<u8>::new());
    }

    #[test]
    fn nulls_sort_last_and_desc_inverts() {
        let mut a = Vec::new();
        let mut n = Vec::new();
        encode_column(&Datum::Int(5), false, &mut a);
        encode_column(&Datum::Null, false, &mut n);
        assert!(a < n);
        let (mut ad, mut nd) = (Vec::new(), Vec::new());
        encode_column(&Datum::Int(5), true, &mut ad);
        encode_column(&Datum::Null, true, &mut nd);
        assert!(nd < ad);
        let (mut z, mut mz) = (Vec::new(), Vec::new());
        encode_column(&Datum::Float(0.0), false, &mut z);
        encode_column(&Datum::Float(-0.0), false, &mut mz);
        assert_eq!(z, mz);
    }
}
