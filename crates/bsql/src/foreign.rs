//! FOREIGN KEY constraints: checked as rows are written, inside the statement's transaction.
//!
//! - A new or changed row of a referencing (child) table whose key columns are all non-null
//!   must find its parent row, by the parent's primary key or a unique index; else 23503.
//!   Inside a transaction the parent row is also rewritten unchanged ("touched"): a
//!   concurrent transaction that deletes it then conflicts with this one at commit (one of
//!   them gets 40001), so a committed child never loses its parent. This is the role of
//!   PostgreSQL's `FOR KEY SHARE` lock on the parent row.
//! - A parent row deleted, or whose referenced columns change, is checked against each
//!   referencing table ([`crate::catalog::TableDef::referenced_by`]), through a child index
//!   on the referencing columns if there is one, else by a scan: referencing rows are
//!   refused (NO ACTION / RESTRICT, 23503), deleted (ON DELETE CASCADE) or have their key
//!   columns set to NULL (ON DELETE SET NULL). ON UPDATE is always NO ACTION (the DDL
//!   refuses the others).

use std::collections::HashSet;
use std::sync::Arc;

use client::{Condition, KvOp};

use crate::access::Access;
use crate::catalog::{FkAction, ForeignKeyDef, Resolved, TableDef};
use crate::error::{SqlError, SqlResult};
use crate::row::{self, Datum, Row};
use crate::session::Session;

/// How deep ON DELETE CASCADE may chain.
const MAX_CASCADE_DEPTH: usize = 16;
/// Up to this many removed parent keys, referencing rows are found through a child index
/// (when one starts with the referencing columns); more, and the child is scanned once.
const INDEX_LOOKUPS: usize = 1000;

/// Positions in `def` of the columns with ids `ids`.
fn positions(def: &TableDef, ids: &[u32]) -> Option<Vec<usize>> {
    ids.iter().map(|id| def.position_of(*id)).collect()
}

/// 23503 for a child row without its parent (`cols`: the key columns in `row`).
fn missing_parent(child: &TableDef, fk: &ForeignKeyDef, row: &Row, cols: &[usize]) -> SqlError {
    SqlError::new(
        "23503",
        format!(
            "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
            child.name, fk.name
        ),
    )
    .with_detail(format!(
        "{} is not present in table \"{}\".",
        row::key_detail(child, row, cols),
        fk.parent_table
    ))
}

/// Where the parent row of values `values` (for `fk.parent_columns`) is: its storage key and
/// stored bytes, or `None`.
pub async fn find_parent(
    access: &Access,
    parent: &Resolved,
    fk: &ForeignKeyDef,
    values: &[Datum],
) -> SqlResult<Option<(Vec<u8>, Vec<u8>)>> {
    let pdef = &parent.def;
    let cols: Vec<usize> = fk
        .parent_columns
        .iter()
        .filter_map(|n| pdef.column(n))
        .collect();
    if cols.len() != values.len() {
        return Err(SqlError::internal(format!(
            "foreign key {}: a referenced column is gone",
            fk.name
        )));
    }
    if cols == pdef.pk {
        let mut prow: Row = vec![Datum::Null; pdef.columns.len()];
        for (&c, v) in cols.iter().zip(values) {
            prow[c] = v.clone();
        }
        let key = row::encode_key(pdef, &prow);
        return Ok(access.get(&parent.table, &key).await?.map(|v| (key, v)));
    }
    let Some(ix) = parent
        .indexes
        .iter()
        .find(|ix| ix.def.unique && ix.columns.iter().map(|(c, _)| *c).eq(cols.iter().copied()))
    else {
        return Err(SqlError::new(
            "42830",
            format!(
                "there is no unique constraint matching given keys for referenced table \"{}\"",
                pdef.name
            ),
        ));
    };
    for key in crate::index::lookup(access, ix, values).await? {
        if let Some(v) = access.get(&parent.table, &key).await? {
            return Ok(Some((key, v)));
        }
    }
    Ok(None)
}

/// Check that each of `rows` (new rows of `child`) finds the parent rows its foreign keys
/// name; inside a transaction, touch each parent found (see the module doc).
pub async fn check_parents(
    s: &Session,
    access: &Access,
    child: &Resolved,
    rows: &[&Row],
) -> SqlResult<()> {
    let def = &child.def;
    let touch = access.isolation().await.is_some();
    for fk in &def.foreign_keys {
        let Some(cols) = positions(def, &fk.columns) else {
            continue;
        };
        let parent = if fk.parent_schema == def.schema && fk.parent_table == def.name {
            None
        } else {
            Some(
                s.catalog
                    .require(&s.db, &fk.parent_schema, &fk.parent_table)
                    .await?,
            )
        };
        let parent: Arc<Resolved> = match parent {
            Some(p) => p,
            None => s.catalog.require(&s.db, &def.schema, &def.name).await?,
        };
        let mut checked = HashSet::new();
        for row in rows {
            let Some(t) = row::key_tuple(row, &cols) else {
                continue; // MATCH SIMPLE: a NULL in the key references nothing.
            };
            if !checked.insert(t) {
                continue;
            }
            let values: Vec<Datum> = cols.iter().map(|&c| row[c].clone()).collect();
            // A row of this statement may be its own parent (self-reference).
            let own = parent.def.name == def.name
                && rows.iter().any(|r| {
                    fk.parent_columns
                        .iter()
                        .filter_map(|n| def.column(n))
                        .map(|c| &r[c])
                        .eq(values.iter())
                });
            if own {
                continue;
            }
            match find_parent(access, &parent, fk, &values).await? {
                None => return Err(missing_parent(def, fk, row, &cols)),
                Some((key, raw)) if touch => {
                    let op = KvOp {
                        key: key.clone(),
                        value: raw.clone(),
                        condition: Condition::IfEquals as i32,
                        expected: raw,
                        ..Default::default()
                    };
                    if !access.write(&parent.table, &key, vec![op]).await? {
                        return Err(crate::dml::serialization_failure());
                    }
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// Rows of `parent` change: `old` rows (storage key, row) are deleted (`new` is `None`) or
/// replaced by `new` (same order). Apply each referencing foreign key's action to the rows
/// that referenced values which no longer exist.
pub async fn parents_changed(
    s: &Session,
    parent: &Resolved,
    old: &[(Vec<u8>, Row)],
    new: Option<&[Row]>,
) -> SqlResult<()> {
    parents_changed_at(s, parent, old, new, 0).await
}

async fn parents_changed_at(
    s: &Session,
    parent: &Resolved,
    old: &[(Vec<u8>, Row)],
    new: Option<&[Row]>,
    depth: usize,
) -> SqlResult<()> {
    let pdef = &parent.def;
    for reference in &pdef.referenced_by {
        let Some(child) = s
            .catalog
            .table(&s.db, &reference.schema, &reference.table)
            .await?
        else {
            continue;
        };
        let Some(fk) = child
            .def
            .foreign_keys
            .iter()
            .find(|f| f.name == reference.constraint)
            .cloned()
        else {
            continue;
        };
        let pcols: Vec<usize> = fk
            .parent_columns
            .iter()
            .filter_map(|n| pdef.column(n))
            .collect();
        let Some(ccols) = positions(&child.def, &fk.columns) else {
            continue;
        };
        // Referenced values that are gone after the change.
        let kept: HashSet<Vec<u8>> = new
            .unwrap_or_default()
            .iter()
            .filter_map(|r| row::key_tuple(r, &pcols))
            .collect();
        let mut gone: HashSet<Vec<u8>> = HashSet::new();
        // The gone values themselves, once each (for an index lookup).
        let mut gone_values: Vec<Vec<Datum>> = Vec::new();
        for (_, r) in old {
            if let Some(t) = row::key_tuple(r, &pcols).filter(|t| !kept.contains(t)) {
                if gone.insert(t) {
                    gone_values.push(pcols.iter().map(|&c| r[c].clone()).collect());
                }
            }
        }
        if gone.is_empty() {
            continue;
        }
        let mut referencing = Vec::new();
        // An index of the child that starts with the referencing columns finds the rows;
        // else the child is scanned.
        let index = child.indexes.iter().find(|ix| {
            ix.columns.len() >= ccols.len()
                && ix.columns.iter().zip(&ccols).all(|((c, _), k)| c == k)
        });
        let candidates: Vec<(Vec<u8>, Vec<u8>)> = match index {
            Some(ix) if gone_values.len() <= INDEX_LOOKUPS => {
                let mut keys = Vec::new();
                for values in &gone_values {
                    keys.extend(crate::index::lookup(&s.access, ix, values).await?);
                }
                keys.sort();
                keys.dedup();
                let found = s.access.get_many(&child.table, &keys).await?;
                keys.into_iter()
                    .zip(found)
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .collect()
            }
            _ => s.access.scan_all(&child.table).await?,
        };
        for (key, raw) in candidates {
            let row = row::decode_value(&child.def, &raw)?;
            if row::key_tuple(&row, &ccols).is_some_and(|t| gone.contains(&t)) {
                referencing.push((key, raw, row));
            }
        }
        // Rows of the parent itself that this change already removes do not count.
        if child.def.name == pdef.name && child.def.schema == pdef.schema {
            let removed: HashSet<&[u8]> = old.iter().map(|(k, _)| &k[..]).collect();
            referencing.retain(|(k, _, _)| !removed.contains(&k[..]));
        }
        if referencing.is_empty() {
            continue;
        }
        let action = if new.is_none() {
            fk.on_delete
        } else {
            fk.on_update
        };
        match action {
            FkAction::NoAction => {
                let (_, _, first) = &referencing[0];
                let values: Vec<String> = ccols
                    .iter()
                    .map(|&c| row::datum_text(&first[c], child.def.columns[c].ty))
                    .collect();
                return Err(SqlError::new(
                    "23503",
                    format!(
                        "update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{}\"",
                        pdef.name, fk.name, child.def.name
                    ),
                )
                .with_detail(format!(
                    "Key ({})=({}) is still referenced from table \"{}\".",
                    fk.parent_columns.join(", "),
                    values.join(", "),
                    child.def.name
                )));
            }
            _ if depth >= MAX_CASCADE_DEPTH => {
                return Err(SqlError::new(
                    "54001",
                    "foreign key actions nest too deeply",
                ))
            }
            FkAction::Cascade => delete_rows(s, &child, referencing, depth).await?,
            FkAction::SetNull => set_null(s, &child, &ccols, referencing, depth).await?,
        }
    }
    Ok(())
}

/// Delete referencing rows (ON DELETE CASCADE), with their index entries and their own
/// referencing rows.
fn delete_rows<'a>(
    s: &'a Session,
    table: &'a Resolved,
    rows: Vec<(Vec<u8>, Vec<u8>, Row)>,
    depth: usize,
) -> futures::future::BoxFuture<'a, SqlResult<()>> {
    Box::pin(async move {
        for (key, raw, _) in &rows {
            let op = KvOp {
                key: key.clone(),
                delete: true,
                condition: Condition::IfEquals as i32,
                expected: raw.clone(),
                ..Default::default()
            };
            if !s.access.write(&table.table, key, vec![op]).await? {
                return Err(crate::dml::serialization_failure());
            }
        }
        let changes: Vec<crate::index::Change> = rows
            .iter()
            .map(|(k, _, r)| (Some((&k[..], r)), None))
            .collect();
        Box::pin(crate::index::maintain(
            &s.access,
            &table.def,
            &table.indexes,
            &changes,
        ))
        .await?;
        let old: Vec<(Vec<u8>, Row)> = rows.into_iter().map(|(k, _, r)| (k, r)).collect();
        parents_changed_at(s, table, &old, None, depth + 1).await
    })
}

/// Set the referencing columns `cols` of rows to NULL (ON DELETE SET NULL).
fn set_null<'a>(
    s: &'a Session,
    table: &'a Resolved,
    cols: &'a [usize],
    rows: Vec<(Vec<u8>, Vec<u8>, Row)>,
    depth: usize,
) -> futures::future::BoxFuture<'a, SqlResult<()>> {
    Box::pin(async move {
        let mut changed = Vec::with_capacity(rows.len());
        for (key, raw, old) in rows {
            let mut new = old.clone();
            for &c in cols {
                new[c] = Datum::Null;
            }
            crate::dml::check_not_null(&table.def, &new)?;
            let op = KvOp {
                key: key.clone(),
                value: row::encode_value(&table.def, &new),
                condition: Condition::IfEquals as i32,
                expected: raw,
                ..Default::default()
            };
            if !s.access.write(&table.table, &key, vec![op]).await? {
                return Err(crate::dml::serialization_failure());
            }
            changed.push((key, old, new));
        }
        let changes: Vec<crate::index::Change> = changed
            .iter()
            .map(|(k, o, n)| (Some((&k[..], o)), Some((&k[..], n))))
            .collect();
        Box::pin(crate::index::maintain(
            &s.access,
            &table.def,
            &table.indexes,
            &changes,
        ))
        .await?;
        let old: Vec<(Vec<u8>, Row)> = changed
            .iter()
            .map(|(k, o, _)| (k.clone(), o.clone()))
            .collect();
        let new: Vec<Row> = changed.into_iter().map(|(_, _, n)| n).collect();
        parents_changed_at(s, table, &old, Some(&new), depth + 1).await
    })
}
