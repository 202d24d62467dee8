//! INSERT, UPDATE, DELETE, BATCH and TRUNCATE.
//!
//! A statement becomes cell writes (`KvOp`s, see `schema` for the layout) grouped per
//! tablet; one group is one atomic tablet write, so a statement or batch that touches one
//! partition is atomic and isolated. Read-modify-write operations (counters, collection
//! appends and removals, list indexes) and lightweight transactions read the row's cells
//! and write with compare-and-set conditions on every cell read; a write that loses a race
//! is retried from the read, which makes conditional statements linearizable per row.

use std::collections::HashMap;
use std::sync::Arc;

use client::Table;
use rpc::tablet::{Condition, KvOp};

use crate::error::{CqlError, Result};
use crate::exec::{ColSpec, Ctx, Engine, Outcome, Rows};
use crate::parser::{
    self, Assign, BatchKind, Cond, Delete, Insert, Op, Rel, Stmt, Term, Update, Using,
};
use crate::schema::{self, Cell, Column, Kind, TableDef};
use crate::types::{self, CqlType, Value};
use crate::values::{self, Ev};

/// Largest TTL Cassandra accepts (20 years), in seconds.
pub const MAX_TTL: i32 = 630_720_000;
const CAS_RETRIES: usize = 64;
/// Batches larger than this fail (Cassandra's `batch_size_fail_threshold`, ScyllaDB's default).
const BATCH_SIZE_FAIL_BYTES: usize = 1024 * 1024;

/// Cell writes for one tablet.
pub struct Planned {
    /// The table's definition (its maintained indexes decide how the cells are written).
    pub def: Arc<TableDef>,
    pub table: Arc<Table>,
    pub idx: usize,
    pub ops: Vec<KvOp>,
}

/// Write time and TTL of a statement's cells.
#[derive(Clone, Copy)]
pub struct WriteOpts {
    pub writetime: i64,
    pub ttl: i32,
    pub expire_us: i64,
}

pub fn write_opts(
    def: &TableDef,
    using: &Using,
    ctx: &Ctx,
    batch_ts: Option<i64>,
) -> Result<WriteOpts> {
    let binds = ctx.binds();
    let mut ttl = def.default_ttl;
    if let Some(t) = &using.ttl {
        match values::eval(t, &CqlType::Int, &binds, "[ttl]")? {
            Ev::V(Value::Int(n)) => {
                if n < 0 {
                    return Err(CqlError::invalid(format!(
                        "A TTL must be greater or equal to 0, but was {n}"
                    )));
                }
                if n > MAX_TTL as i128 {
                    return Err(CqlError::invalid(format!(
                        "ttl is too large. requested ({n}) maximum ({MAX_TTL})"
                    )));
                }
                ttl = n as i32;
            }
            Ev::Null => ttl = 0,
            _ => {}
        }
    }
    let mut writetime = batch_ts.or(ctx.params.timestamp).unwrap_or(ctx.now_us);
    if let Some(t) = &using.timestamp {
        match values::eval(t, &CqlType::Bigint, &binds, "[timestamp]")? {
            Ev::V(Value::Int(n)) => {
                if n == i64::MIN as i128 {
                    return Err(CqlError::invalid("Out of bound timestamp"));
                }
                writetime = n as i64;
            }
            Ev::Null => return Err(CqlError::invalid("Invalid null value of timestamp")),
            _ => {}
        }
    }
    let expire_us = if ttl > 0 {
        ctx.now_us + ttl as i64 * 1_000_000
    } else {
        0
    };
    Ok(WriteOpts {
        writetime,
        ttl,
        expire_us,
    })
}

/// The key of column `col`'s cell in row `row` (0: the row marker).
pub fn cell_key(row: &[u8], col: u16) -> Vec<u8> {
    let mut k = Vec::with_capacity(row.len() + 2);
    k.extend_from_slice(row);
    k.extend_from_slice(&col.to_be_bytes());
    k
}

fn put(key: Vec<u8>, value: Vec<u8>, o: &WriteOpts) -> KvOp {
    let cell = Cell {
        writetime: o.writetime,
        expire_us: o.expire_us,
        ttl: o.ttl,
        value,
    };
    KvOp {
        key,
        value: cell.encode(),
        expire_at_us: if o.ttl > 0 { o.expire_us as u64 } else { 0 },
        ..Default::default()
    }
}

fn del(key: Vec<u8>) -> KvOp {
    KvOp {
        key,
        delete: true,
        ..Default::default()
    }
}

/// The row prefix of a column's cell: the static prefix for static columns.
fn prefix_for<'a>(c: &Column, row: &'a [u8], static_prefix: &'a [u8]) -> &'a [u8] {
    if c.kind == Kind::Static {
        static_prefix
    } else {
        row
    }
}

fn static_prefix(partition: &[u8]) -> Vec<u8> {
    let mut p = partition.to_vec();
    p.push(schema::STATIC_MARK);
    p
}

pub async fn resolve(
    engine: &Engine,
    ks: &Option<String>,
    table: &str,
    ctx: &Ctx<'_>,
) -> Result<(Arc<TableDef>, Arc<Table>)> {
    let ks = ctx.keyspace(ks)?;
    if crate::system::is_system_keyspace(ks) {
        return Err(CqlError::new(
            crate::error::code::UNAUTHORIZED,
            format!("{ks} keyspace is not user-modifiable."),
        ));
    }
    engine.catalog.table(ks, table).await
}

/// Values of the key columns pinned by `=`/`IN` relations: every combination of partition
/// key values, and of clustering values (a prefix of the clustering columns).
pub struct KeySel {
    pub partitions: Vec<Vec<Value>>,
    pub rows: Vec<Vec<Value>>,
    /// Relations on clustering columns that are not `=`/`IN` of the prefix.
    pub ck_rest: Vec<Rel>,
}

fn in_values(term: &Term, ty: &CqlType, ctx: &Ctx, col: &str) -> Result<Vec<Value>> {
    let binds = ctx.binds();
    match term {
        Term::List(items) => items
            .iter()
            .map(|t| match values::eval(t, ty, &binds, col)? {
                Ev::V(v) => Ok(v),
                _ => Err(CqlError::invalid(format!(
                    "Invalid null value in condition for column {col}"
                ))),
            })
            .collect(),
        t => match values::eval(t, &CqlType::List(Box::new(ty.clone())), &binds, col)? {
            Ev::V(Value::List(v)) => Ok(v),
            Ev::Unset => Err(CqlError::invalid(format!(
                "Invalid unset value for column {col}"
            ))),
            _ => Err(CqlError::invalid(format!(
                "Invalid null value for IN restriction on {col}"
            ))),
        },
    }
}

/// The values of an `=` or `IN` relation on a key column.
pub fn key_sel_values(c: &Column, op: Op, term: &Term, ctx: &Ctx) -> Result<Vec<Value>> {
    if op == Op::In {
        return in_values(term, &c.ty, ctx, &c.name);
    }
    match values::eval(term, &c.ty, &ctx.binds(), &c.name)? {
        Ev::V(v) => Ok(vec![v]),
        Ev::Null => Err(CqlError::invalid(format!(
            "Invalid null value in condition for column {}",
            c.name
        ))),
        Ev::Unset => Err(CqlError::invalid(format!(
            "Invalid unset value for column {}",
            c.name
        ))),
    }
}

/// Every combination of one value from each set, in order.
pub fn cartesian(sets: &[Vec<Value>]) -> Vec<Vec<Value>> {
    let mut out = vec![Vec::new()];
    for s in sets {
        let mut next = Vec::with_capacity(out.len() * s.len());
        for prefix in &out {
            for v in s {
                let mut p = prefix.clone();
                p.push(v.clone());
                next.push(p);
            }
        }
        out = next;
    }
    out
}

/// Analyse the WHERE clause of a modification statement.
pub fn key_sel(def: &TableDef, wh: &[Rel], ctx: &Ctx, need_full_ck: bool) -> Result<KeySel> {
    let mut pk: Vec<Option<Vec<Value>>> = vec![None; def.pk_len()];
    let mut ck: Vec<Option<Vec<Value>>> = vec![None; def.ck_len()];
    let mut ck_rest = Vec::new();
    for r in wh {
        match r {
            Rel::Col { col, op, term } => {
                let c = def.col(col).ok_or_else(|| CqlError::invalid(format!("Undefined column name {col}")))?;
                if matches!(op, Op::Contains | Op::ContainsKey)
                    && matches!(c.kind, Kind::PartitionKey | Kind::Clustering)
                {
                    return Err(CqlError::invalid(format!("Cannot use CONTAINS relation on PRIMARY KEY column {col} in DELETE or UPDATE statements")));
                }
                let vals = match op {
                    Op::Eq | Op::In => key_sel_values(c, *op, term, ctx)?,
                    _ => {
                        if c.kind == Kind::Clustering {
                            ck_rest.push(r.clone());
                            continue;
                        }
                        return Err(CqlError::invalid(format!("Only EQ and IN relation are supported on the partition key (unless you use the token() function or allow filtering) for column {col}")));
                    }
                };
                match c.kind {
                    Kind::PartitionKey => {
                        if pk[c.position].is_some() {
                            return Err(CqlError::invalid(format!("{col} cannot be restricted by more than one relation if it includes an Equal")));
                        }
                        pk[c.position] = Some(vals)
                    }
                    Kind::Clustering => {
                        if ck[c.position].is_some() {
                            return Err(CqlError::invalid(format!("{col} cannot be restricted by more than one relation if it includes an Equal")));
                        }
                        ck[c.position] = Some(vals)
                    }
                    _ => return Err(CqlError::invalid(format!("Non PRIMARY KEY columns found in where clause: {col} "))),
                }
            }
            Rel::Multi { cols: mcols, op, term } => {
                // Relations that restrict each column on its own, like `c1 = v1 AND c2 = v2`:
                // `(c) = (v)`, `(c) IN ((a), (b))`, `(c1, c2) = (a, b)`, `(c1, c2) IN ((a, b))`.
                let unwrap1 = |t: &Term| match t {
                    Term::Tuple(items) if items.len() == 1 => items[0].clone(),
                    t => t.clone(),
                };
                let per_col: Option<Vec<(Op, Term)>> = match (mcols.len(), op, term) {
                    (1, Op::Eq, t) => Some(vec![(Op::Eq, unwrap1(t))]),
                    (1, Op::In, Term::List(l)) => {
                        Some(vec![(Op::In, Term::List(l.iter().map(unwrap1).collect()))])
                    }
                    (n, Op::Eq, Term::Tuple(items)) if items.len() == n => {
                        Some(items.iter().map(|t| (Op::Eq, t.clone())).collect())
                    }
                    (n, Op::In, Term::List(l)) if l.len() == 1 => match &l[0] {
                        Term::Tuple(items) if items.len() == n => {
                            Some(items.iter().map(|t| (Op::Eq, t.clone())).collect())
                        }
                        _ => None,
                    },
                    _ => None,
                };
                let Some(per_col) = per_col else {
                    ck_rest.push(r.clone());
                    continue;
                };
                for (n, (op, t)) in mcols.iter().zip(per_col) {
                    let c = def.col(n).ok_or_else(|| CqlError::invalid(format!("Undefined column name {n}")))?;
                    if c.kind != Kind::Clustering {
                        return Err(CqlError::invalid(format!("Multi-column relations can only be applied to clustering columns but was applied to: {n}")));
                    }
                    if ck[c.position].is_some() {
                        return Err(CqlError::invalid(format!("{n} cannot be restricted by more than one relation if it includes an Equal")));
                    }
                    ck[c.position] = Some(key_sel_values(c, op, &t, ctx)?);
                }
            }
            Rel::Token { .. } => return Err(CqlError::invalid("The token function cannot be used in WHERE clauses for UPDATE and DELETE statements")),
            Rel::MapEntry { col, .. } => return Err(CqlError::invalid(format!("Non PRIMARY KEY columns found in where clause: {col} "))),
        }
    }
    let missing: Vec<&str> = def
        .pk()
        .filter(|c| pk[c.position].is_none())
        .map(|c| c.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(CqlError::invalid(format!(
            "Some partition key parts are missing: {}",
            missing.join(", ")
        )));
    }
    let prefix_len = ck.iter().take_while(|v| v.is_some()).count();
    if ck[prefix_len..].iter().any(Option::is_some) {
        let c = def
            .ck()
            .nth(prefix_len)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        return Err(CqlError::invalid(format!("PRIMARY KEY column \"{}\" cannot be restricted as preceding column \"{c}\" is not restricted", def.ck().skip(prefix_len).zip(&ck[prefix_len..]).find(|(_, v)| v.is_some()).map(|(c, _)| c.name.clone()).unwrap_or_default())));
    }
    if need_full_ck && prefix_len < def.ck_len() {
        let missing: Vec<&str> = def.ck().skip(prefix_len).map(|c| c.name.as_str()).collect();
        return Err(CqlError::invalid(format!(
            "Some clustering keys are missing: {}",
            missing.join(", ")
        )));
    }
    let pk_sets: Vec<Vec<Value>> = pk.into_iter().flatten().collect();
    let ck_sets: Vec<Vec<Value>> = ck.into_iter().take(prefix_len).flatten().collect();
    let partitions = cartesian(&pk_sets);
    let rows = cartesian(&ck_sets);
    if partitions.len() * rows.len() > 10_000 {
        return Err(CqlError::invalid(
            "IN restrictions produce too many combinations (more than 10000)",
        ));
    }
    Ok(KeySel {
        partitions,
        rows,
        ck_rest,
    })
}

/// Write planned cell groups, each group atomically; false if a condition failed.
pub async fn flush(engine: &Engine, planned: Vec<Planned>) -> Result<bool> {
    let mut groups: Vec<Planned> = Vec::new();
    for p in planned {
        match groups
            .iter_mut()
            .find(|g| g.idx == p.idx && g.table.info.table_id == p.table.info.table_id)
        {
            Some(g) => g.ops.extend(p.ops),
            None => groups.push(p),
        }
    }
    if groups.iter().any(|g| crate::index::has_maintained(&g.def)) {
        return crate::index::write(engine, &groups).await;
    }
    if groups.len() == 1 {
        let g = groups.pop().ok_or_else(|| CqlError::server("no group"))?;
        if g.ops.is_empty() {
            return Ok(true);
        }
        return Ok(engine
            .catalog
            .client
            .write_tablet(&g.table, g.idx, g.ops)
            .await?
            .applied);
    }
    let writes = groups
        .into_iter()
        .filter(|g| !g.ops.is_empty())
        .map(|g| async move {
            engine
                .catalog
                .client
                .write_tablet(&g.table, g.idx, g.ops)
                .await
        });
    let mut applied = true;
    for r in futures::future::join_all(writes).await {
        applied &= r?.applied;
    }
    Ok(applied)
}

/// Attempts of an atomic batch whose transaction met a conflicting write.
const TXN_ATTEMPTS: u32 = 8;

/// Write planned cell groups all or nothing: one tablet's cells in one write, several
/// tablets' in one distributed transaction (logged batches, `BEGIN TRANSACTION`), retried
/// when a concurrent write to the same cells conflicts with it.
pub async fn flush_atomic(engine: &Engine, planned: Vec<Planned>, now_us: i64) -> Result<()> {
    let mut tablets: Vec<(&str, usize)> = planned
        .iter()
        .filter(|p| !p.ops.is_empty())
        .map(|p| (p.table.info.table_id.as_str(), p.idx))
        .collect();
    tablets.sort_unstable();
    tablets.dedup();
    if tablets.len() <= 1 || planned.iter().any(|p| crate::index::has_maintained(&p.def)) {
        flush(engine, planned).await?;
        return Ok(());
    }
    let client = &engine.catalog.client;
    let mut attempt = 0;
    loop {
        let mut txn = client.begin(client::Isolation::Snapshot);
        for p in &planned {
            for op in &p.ops {
                // Cells carry an absolute expiry; the transaction takes one relative to now.
                let ttl_ms = if op.expire_at_us > 0 {
                    (op.expire_at_us.saturating_sub(now_us.max(0) as u64) / 1000).max(1)
                } else {
                    op.ttl_ms
                };
                let value = (!op.delete).then(|| op.value.clone());
                txn.put_with_ttl(&p.table, p.idx, &op.key, value, ttl_ms);
            }
        }
        match txn.commit().await {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == common::StatusCode::TxnConflict && attempt + 1 < TXN_ATTEMPTS => {
                attempt += 1;
                let jitter = rand::random::<u64>() % (5 << attempt);
                tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Write `ops` (some conditional) to tablet `idx` of `table` atomically; false if a
/// condition failed. Through a transaction when the table has maintained indexes.
async fn write_checked(
    engine: &Engine,
    def: &Arc<TableDef>,
    table: &Arc<Table>,
    idx: usize,
    ops: Vec<KvOp>,
) -> Result<bool> {
    if crate::index::has_maintained(def) {
        let g = Planned {
            def: def.clone(),
            table: table.clone(),
            idx,
            ops,
        };
        return crate::index::write(engine, &[g]).await;
    }
    Ok(engine
        .catalog
        .client
        .write_tablet(table, idx, ops)
        .await?
        .applied)
}

/// Read cells of one tablet (raw stored values).
async fn read_cells(
    engine: &Engine,
    table: &Table,
    idx: usize,
    keys: &[Vec<u8>],
) -> Result<Vec<Option<Vec<u8>>>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    Ok(engine
        .catalog
        .client
        .read_tablet(table, idx, keys, None)
        .await?)
}

/// Conditions asserting that the cells read are unchanged.
fn unchanged(keys: &[Vec<u8>], raw: &[Option<Vec<u8>>]) -> Vec<KvOp> {
    keys.iter()
        .zip(raw)
        .map(|(k, v)| match v {
            // The op also rewrites the cell as it is (with its expiry): a write op cannot be
            // a pure check. The statement's own ops follow and win.
            Some(v) => KvOp {
                key: k.clone(),
                condition: Condition::IfEquals as i32,
                expected: v.clone(),
                value: v.clone(),
                expire_at_us: Cell::decode(v)
                    .map(|c| c.expire_us.max(0) as u64)
                    .unwrap_or(0),
                ..Default::default()
            },
            None => KvOp {
                key: k.clone(),
                condition: Condition::IfAbsent as i32,
                delete: true,
                ..Default::default()
            },
        })
        .collect()
}

fn tablet_of(table: &Table, token: i64) -> usize {
    table.tablet_for_hash(schema::token_hash(token))
}

/// The current row state for conditions and read-modify-write: every cell of the row
/// (marker, regular and static columns), by column id.
struct RowState {
    keys: Vec<Vec<u8>>,
    raw: Vec<Option<Vec<u8>>>,
    ids: Vec<u16>,
}

impl RowState {
    fn cell(&self, id: u16) -> Option<Cell> {
        let i = self.ids.iter().position(|x| *x == id)?;
        self.raw[i].as_deref().and_then(Cell::decode)
    }
    fn value(&self, c: &Column) -> Result<Value> {
        match self.cell(c.id) {
            Some(cell) => types::decode(&c.ty, &cell.value),
            None => Ok(Value::Null),
        }
    }
    fn row_exists(&self, def: &TableDef) -> bool {
        self.ids.iter().zip(&self.raw).any(|(id, v)| {
            v.is_some() && (*id == 0 || def.col_by_id(*id).is_some_and(|c| c.kind == Kind::Regular))
        })
    }
}

async fn row_state(
    engine: &Engine,
    def: &TableDef,
    table: &Table,
    idx: usize,
    row: &[u8],
    stat: &[u8],
    has_row: bool,
) -> Result<RowState> {
    let mut keys = Vec::new();
    let mut ids = Vec::new();
    if has_row {
        keys.push(cell_key(row, 0));
        ids.push(0);
    }
    for c in &def.columns {
        match c.kind {
            Kind::Regular if has_row => {
                keys.push(cell_key(row, c.id));
                ids.push(c.id);
            }
            Kind::Static => {
                keys.push(cell_key(stat, c.id));
                ids.push(c.id);
            }
            _ => {}
        }
    }
    let raw = read_cells(engine, table, idx, &keys).await?;
    Ok(RowState { keys, raw, ids })
}

/// The row (`[applied]` plus columns) a conditional statement answers with.
fn lwt_result(
    def: &TableDef,
    applied: bool,
    pk: &[Value],
    ck: &[Value],
    state: Option<&RowState>,
) -> Result<Outcome> {
    let spec = |name: &str, ty: CqlType| ColSpec {
        ks: def.keyspace.clone(),
        table: def.name.clone(),
        name: name.into(),
        ty,
    };
    let mut cols = vec![spec("[applied]", CqlType::Boolean)];
    let mut row = vec![Some(vec![applied as u8])];
    if let (false, Some(state)) = (applied, state) {
        if state.row_exists(def) || def.has_statics() && state.raw.iter().any(Option::is_some) {
            for c in &def.columns {
                cols.push(spec(&c.name, c.ty.clone()));
                let v = match c.kind {
                    Kind::PartitionKey => pk.get(c.position).cloned().unwrap_or(Value::Null),
                    Kind::Clustering => ck.get(c.position).cloned().unwrap_or(Value::Null),
                    _ => state.value(c)?,
                };
                row.push(if v == Value::Null {
                    None
                } else {
                    Some(types::encode(&c.ty, &v)?)
                });
            }
        }
    }
    Ok(Outcome::Rows(Rows {
        cols,
        rows: vec![row],
        paging_state: None,
    }))
}

fn check_conditions(def: &TableDef, cond: &Cond, state: &RowState, ctx: &Ctx) -> Result<bool> {
    Ok(match cond {
        Cond::None => true,
        Cond::Exists => state.row_exists(def),
        Cond::NotExists => !state.row_exists(def),
        Cond::Conds(cs) => {
            let binds = ctx.binds();
            for c in cs {
                let col = def
                    .col(&c.col)
                    .ok_or_else(|| CqlError::invalid(format!("Undefined column name {}", c.col)))?;
                if matches!(col.kind, Kind::PartitionKey | Kind::Clustering) {
                    return Err(CqlError::invalid(format!(
                        "PRIMARY KEY column '{}' cannot have IF conditions",
                        c.col
                    )));
                }
                let mut cur = state.value(col)?;
                let mut ty = col.ty.clone();
                if let Some(e) = &c.elem {
                    match (col.ty.base(), cur.clone()) {
                        (CqlType::Map(kt, vt), cur_v) => {
                            let Ev::V(k) = values::eval(e, kt, &binds, &c.col)? else {
                                return Err(CqlError::invalid(
                                    "Invalid null value for map element access",
                                ));
                            };
                            cur = match cur_v {
                                Value::Map(pairs) => pairs
                                    .iter()
                                    .find(|(a, _)| types::compare(kt, a, &k).is_eq())
                                    .map(|(_, v)| v.clone())
                                    .unwrap_or(Value::Null),
                                _ => Value::Null,
                            };
                            ty = vt.as_ref().clone();
                        }
                        (CqlType::List(et), cur_v) => {
                            let Ev::V(Value::Int(i)) =
                                values::eval(e, &CqlType::Int, &binds, &c.col)?
                            else {
                                return Err(CqlError::invalid("Invalid null value for list index"));
                            };
                            cur = match cur_v {
                                Value::List(items) => {
                                    items.get(i as usize).cloned().unwrap_or(Value::Null)
                                }
                                _ => Value::Null,
                            };
                            ty = et.as_ref().clone();
                        }
                        _ => {
                            return Err(CqlError::invalid(format!(
                                "Invalid element access on column {}",
                                c.col
                            )))
                        }
                    }
                }
                if let Some(f) = &c.field {
                    if let (CqlType::Udt { fields, .. }, Value::Tuple(items)) =
                        (col.ty.base(), &cur)
                    {
                        let i = fields
                            .iter()
                            .position(|(n, _)| n == f)
                            .ok_or_else(|| CqlError::invalid(format!("Unknown field {f}")))?;
                        ty = fields[i].1.clone();
                        cur = items.get(i).cloned().unwrap_or(Value::Null);
                    } else {
                        cur = Value::Null;
                    }
                }
                let ok = if c.op == Op::In {
                    let opts = match &c.term {
                        Term::List(items) => items
                            .iter()
                            .map(|t| values::eval(t, &ty, &binds, &c.col))
                            .collect::<Result<Vec<_>>>()?,
                        t => match values::eval(
                            t,
                            &CqlType::List(Box::new(ty.clone())),
                            &binds,
                            &c.col,
                        )? {
                            Ev::V(Value::List(v)) => v.into_iter().map(Ev::V).collect(),
                            _ => vec![],
                        },
                    };
                    opts.iter().any(|o| match o {
                        Ev::V(v) => types::compare(&ty, &cur, v).is_eq() && cur != Value::Null,
                        _ => cur == Value::Null,
                    })
                } else {
                    let rhs = match values::eval(&c.term, &ty, &binds, &c.col)? {
                        Ev::V(v) => v,
                        Ev::Null => Value::Null,
                        Ev::Unset => {
                            return Err(CqlError::invalid(format!(
                                "Invalid 'unset' value in condition on {}",
                                c.col
                            )))
                        }
                    };
                    compare_op(&ty, &cur, c.op, &rhs)?
                };
                if !ok {
                    return Ok(false);
                }
            }
            true
        }
    })
}

/// `a op b` as CQL conditions and filters evaluate it (null compares only with = and !=).
pub fn compare_op(ty: &CqlType, a: &Value, op: Op, b: &Value) -> Result<bool> {
    if *a == Value::Null || *b == Value::Null {
        return Ok(match op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            _ if *b == Value::Null => {
                return Err(CqlError::invalid(
                    "Invalid comparison with null for operator",
                ))
            }
            _ => false,
        });
    }
    let ord = types::compare(ty, a, b);
    Ok(match op {
        Op::Eq => ord.is_eq(),
        Op::Ne => !ord.is_eq(),
        Op::Lt => ord.is_lt(),
        Op::Le => ord.is_le(),
        Op::Gt => ord.is_gt(),
        Op::Ge => ord.is_ge(),
        Op::Contains => match a {
            Value::List(items) | Value::Set(items) => {
                let et = match ty.base() {
                    CqlType::List(e) | CqlType::Set(e) => e.as_ref().clone(),
                    _ => CqlType::Blob,
                };
                items.iter().any(|i| types::compare(&et, i, b).is_eq())
            }
            Value::Map(pairs) => {
                let vt = match ty.base() {
                    CqlType::Map(_, v) => v.as_ref().clone(),
                    _ => CqlType::Blob,
                };
                pairs.iter().any(|(_, v)| types::compare(&vt, v, b).is_eq())
            }
            _ => false,
        },
        Op::ContainsKey => match a {
            Value::Map(pairs) => {
                let kt = match ty.base() {
                    CqlType::Map(k, _) => k.as_ref().clone(),
                    _ => CqlType::Blob,
                };
                pairs.iter().any(|(k, _)| types::compare(&kt, k, b).is_eq())
            }
            _ => false,
        },
        Op::Like => match (a, b) {
            (Value::Text(s), Value::Text(p)) => like(s, p),
            _ => false,
        },
        Op::In | Op::IsNotNull => true,
    })
}

fn like(s: &str, p: &str) -> bool {
    match (p.starts_with('%') && p.len() > 1, p.ends_with('%')) {
        (true, true) => s.contains(&p[1..p.len() - 1]),
        (true, false) => s.ends_with(&p[1..]),
        (false, true) => s.starts_with(&p[..p.len() - 1]),
        _ => s == p,
    }
}

fn value_bytes(c: &Column, v: &Value) -> Result<Option<Vec<u8>>> {
    Ok(match v {
        Value::Null => None,
        Value::List(x) | Value::Set(x) if x.is_empty() && c.ty.is_multicell() => None,
        Value::Map(x) if x.is_empty() && c.ty.is_multicell() => None,
        v => Some(types::encode(&c.ty, v)?),
    })
}

pub async fn insert(
    engine: &Engine,
    s: &Insert,
    ctx: &Ctx<'_>,
    sink: Option<&mut Vec<Planned>>,
) -> Result<Outcome> {
    let (def, table) = resolve(engine, &s.ks, &s.table, ctx).await?;
    let binds = ctx.binds();
    let mut vals: Vec<(&Column, Ev)> = Vec::new();
    if let Some(j) = &s.json {
        let Ev::V(Value::Text(text)) = values::eval(j, &CqlType::Text, &binds, "[json]")? else {
            return Err(CqlError::invalid("Got null for INSERT JSON values"));
        };
        let obj: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            CqlError::invalid(format!(
                "Could not decode JSON string as a map: {e}. (String was: {text})"
            ))
        })?;
        let serde_json::Value::Object(m) = obj else {
            return Err(CqlError::invalid(format!(
                "Could not decode JSON string as a map: {text}"
            )));
        };
        for k in m.keys() {
            let name = if k.starts_with('"') {
                k.trim_matches('"').to_owned()
            } else {
                k.to_lowercase()
            };
            if def.col(&name).is_none() {
                return Err(CqlError::invalid(format!(
                    "JSON values map contains unrecognized column: {k}"
                )));
            }
        }
        for c in &def.columns {
            let j = m
                .iter()
                .find(|(k, _)| {
                    (k.starts_with('"') && k.trim_matches('"') == c.name)
                        || k.to_lowercase() == c.name
                })
                .map(|(_, v)| v);
            let ev = match j {
                Some(j) => match values::json_to_value(&c.ty, j).map_err(|e| {
                    CqlError::invalid(format!(
                        "Error decoding JSON value for {}: {}",
                        c.name, e.message
                    ))
                })? {
                    Value::Null => Ev::Null,
                    v => Ev::V(v),
                },
                None if s.json_default_unset => Ev::Unset,
                None => Ev::Null,
            };
            vals.push((c, ev));
        }
    } else {
        if s.cols.len() != s.values.len() {
            return Err(CqlError::invalid(format!(
                "Unmatched column names/values: {} columns, {} values",
                s.cols.len(),
                s.values.len()
            )));
        }
        for (name, t) in s.cols.iter().zip(&s.values) {
            let c = def
                .col(name)
                .ok_or_else(|| CqlError::invalid(format!("Undefined column name {name}")))?;
            if vals.iter().any(|(x, _)| x.name == *name) {
                return Err(CqlError::invalid(format!(
                    "Multiple definitions found for column {name}"
                )));
            }
            vals.push((c, values::eval(t, &c.ty, &binds, name)?));
        }
    }
    let mut pk = vec![Value::Null; def.pk_len()];
    let mut ck = vec![Value::Null; def.ck_len()];
    let mut has_regular = false;
    for (c, ev) in &vals {
        match c.kind {
            Kind::PartitionKey | Kind::Clustering => {
                let v = match ev {
                    Ev::V(v) => v.clone(),
                    Ev::Null => {
                        return Err(CqlError::invalid(format!(
                            "Invalid null value in condition for column {}",
                            c.name
                        )))
                    }
                    Ev::Unset => {
                        return Err(CqlError::invalid(format!(
                            "Invalid unset value for column {}",
                            c.name
                        )))
                    }
                };
                if c.kind == Kind::PartitionKey {
                    pk[c.position] = v
                } else {
                    ck[c.position] = v
                }
            }
            _ => {
                if c.ty.is_counter() {
                    return Err(CqlError::invalid(format!("Cannot set the value of counter column {} (counters can only be incremented/decremented, not set)", c.name)));
                }
                has_regular |= c.kind == Kind::Regular;
            }
        }
    }
    if def.is_counter_table() {
        return Err(CqlError::invalid(
            "INSERT statements are not allowed on counter tables, use UPDATE instead",
        ));
    }
    let missing: Vec<&str> = def
        .pk()
        .filter(|c| pk[c.position] == Value::Null)
        .map(|c| c.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(CqlError::invalid(format!(
            "Some partition key parts are missing: {}",
            missing.join(", ")
        )));
    }
    let only_static = !has_regular
        && def.ck().all(|c| ck[c.position] == Value::Null)
        && vals.iter().any(|(c, _)| c.kind == Kind::Static);
    let missing: Vec<&str> = def
        .ck()
        .filter(|c| ck[c.position] == Value::Null)
        .map(|c| c.name.as_str())
        .collect();
    if !missing.is_empty() && !only_static {
        return Err(CqlError::invalid(format!(
            "Some clustering keys are missing: {}",
            missing.join(", ")
        )));
    }
    let o = write_opts(&def, &s.using, ctx, None)?;
    let (token, partition) = schema::partition_key(&def, &pk)?;
    let stat = static_prefix(&partition);
    let row = if only_static {
        Vec::new()
    } else if def.ck_len() > 0 {
        let mut r = partition.clone();
        schema::append_clustering(&def, &mut r, &ck)?;
        r
    } else {
        partition.clone()
    };
    let idx = tablet_of(&table, token);
    let mut ops = Vec::with_capacity(vals.len() + 1);
    if !only_static {
        ops.push(put(cell_key(&row, 0), Vec::new(), &o));
    }
    for (c, ev) in &vals {
        if matches!(c.kind, Kind::PartitionKey | Kind::Clustering) {
            continue;
        }
        let key = cell_key(prefix_for(c, &row, &stat), c.id);
        match ev {
            Ev::Unset => {}
            Ev::Null => ops.push(del(key)),
            Ev::V(v) => match value_bytes(c, v)? {
                Some(b) => ops.push(put(key, b, &o)),
                None => ops.push(del(key)),
            },
        }
    }
    if s.if_not_exists {
        if sink.is_some() {
            return Err(CqlError::invalid(
                "Conditional statements in batches are only supported on a single statement",
            ));
        }
        for _ in 0..CAS_RETRIES {
            let state = row_state(engine, &def, &table, idx, &row, &stat, !only_static).await?;
            if !check_conditions(&def, &Cond::NotExists, &state, ctx)? {
                return lwt_result(&def, false, &pk, &ck, Some(&state));
            }
            let mut all = unchanged(&state.keys, &state.raw);
            all.extend(ops.iter().cloned());
            if write_checked(engine, &def, &table, idx, all).await? {
                return lwt_result(&def, true, &pk, &ck, None);
            }
        }
        return Err(CqlError::new(
            crate::error::code::WRITE_TIMEOUT,
            "Operation timed out - contention on conditional write",
        ));
    }
    let planned = Planned {
        def: def.clone(),
        table,
        idx,
        ops,
    };
    match sink {
        Some(sink) => sink.push(planned),
        None => {
            flush(engine, vec![planned]).await?;
        }
    }
    Ok(Outcome::Void)
}

/// Apply an element-wise assignment to the current value of a column.
fn modify(c: &Column, a: &Assign, cur: Value, ctx: &Ctx) -> Result<Value> {
    let binds = ctx.binds();
    let name = &c.name;
    let frozen_err = || {
        CqlError::invalid(format!(
            "Invalid operation ({name} = {name} + ?) for frozen collection column {name}"
        ))
    };
    Ok(match (a, c.ty.base()) {
        (Assign::Add(_, t) | Assign::Sub(_, t), CqlType::Counter) => {
            let d = values::eval(t, &CqlType::Bigint, &binds, name)?;
            if d == Ev::Unset {
                return Ok(cur);
            }
            let Ev::V(Value::Int(d)) = d else {
                return Err(CqlError::invalid(format!(
                    "Invalid null value for counter increment on {name}"
                )));
            };
            let base = match cur {
                Value::Int(i) => i,
                _ => 0,
            };
            let n = if matches!(a, Assign::Add(..)) {
                base.wrapping_add(d)
            } else {
                base.wrapping_sub(d)
            };
            Value::Int(n as i64 as i128)
        }
        (_, _) if matches!(c.ty, CqlType::Frozen(_)) && !matches!(a, Assign::Set(..)) => {
            return Err(frozen_err())
        }
        (Assign::Add(_, t) | Assign::Prepend(_, t), CqlType::List(_)) => {
            let add = match values::eval(t, &c.ty, &binds, name)? {
                Ev::V(Value::List(v)) => v,
                _ => vec![],
            };
            let old = match cur {
                Value::List(v) => v,
                _ => vec![],
            };
            if matches!(a, Assign::Add(..)) {
                Value::List(old.into_iter().chain(add).collect())
            } else {
                Value::List(add.into_iter().chain(old).collect())
            }
        }
        (Assign::Sub(_, t), CqlType::List(e)) => {
            let rm = match values::eval(t, &c.ty, &binds, name)? {
                Ev::V(Value::List(v)) => v,
                _ => vec![],
            };
            let old = match cur {
                Value::List(v) => v,
                _ => vec![],
            };
            Value::List(
                old.into_iter()
                    .filter(|x| !rm.iter().any(|r| types::compare(e, x, r).is_eq()))
                    .collect(),
            )
        }
        (Assign::Add(_, t), CqlType::Set(e)) => {
            let add = match values::eval(t, &c.ty, &binds, name)? {
                Ev::V(Value::Set(v) | Value::List(v)) => v,
                _ => vec![],
            };
            let mut all = match cur {
                Value::Set(v) => v,
                _ => vec![],
            };
            all.extend(add);
            types::sort_dedup(e, &mut all);
            Value::Set(all)
        }
        (Assign::Sub(_, t), CqlType::Set(e)) => {
            let rm = match values::eval(t, &c.ty, &binds, name)? {
                Ev::V(Value::Set(v) | Value::List(v)) => v,
                _ => vec![],
            };
            let old = match cur {
                Value::Set(v) => v,
                _ => vec![],
            };
            Value::Set(
                old.into_iter()
                    .filter(|x| !rm.iter().any(|r| types::compare(e, x, r).is_eq()))
                    .collect(),
            )
        }
        (Assign::Add(_, t), CqlType::Map(k, _)) => {
            let add = match values::eval(t, &c.ty, &binds, name)? {
                Ev::V(Value::Map(v)) => v,
                _ => vec![],
            };
            let mut old = match cur {
                Value::Map(v) => v,
                _ => vec![],
            };
            for (kk, vv) in add {
                old.retain(|(x, _)| !types::compare(k, x, &kk).is_eq());
                old.push((kk, vv));
            }
            old.sort_by(|a, b| types::compare(k, &a.0, &b.0));
            Value::Map(old)
        }
        (Assign::Sub(_, t), CqlType::Map(k, _)) => {
            let rm = match values::eval(t, &CqlType::Set(k.clone()), &binds, name)? {
                Ev::V(Value::Set(v) | Value::List(v)) => v,
                _ => vec![],
            };
            let old = match cur {
                Value::Map(v) => v,
                _ => vec![],
            };
            Value::Map(
                old.into_iter()
                    .filter(|(x, _)| !rm.iter().any(|r| types::compare(k, x, r).is_eq()))
                    .collect(),
            )
        }
        (Assign::Elem(_, kt, vt), CqlType::Map(k, v)) => {
            let Ev::V(key) = values::eval(kt, k, &binds, name)? else {
                return Err(CqlError::invalid("Invalid null value for map key"));
            };
            let val = values::eval(vt, v, &binds, name)?;
            let mut old = match cur {
                Value::Map(v) => v,
                _ => vec![],
            };
            old.retain(|(x, _)| !types::compare(k, x, &key).is_eq());
            if let Ev::V(val) = val {
                old.push((key, val));
            }
            old.sort_by(|a, b| types::compare(k, &a.0, &b.0));
            Value::Map(old)
        }
        (Assign::Elem(_, it, vt), CqlType::List(e)) => {
            let Ev::V(Value::Int(i)) = values::eval(it, &CqlType::Int, &binds, name)? else {
                return Err(CqlError::invalid("Invalid null value for list index"));
            };
            let mut old = match cur {
                Value::List(v) => v,
                _ => vec![],
            };
            if i < 0 || i as usize >= old.len() {
                return Err(CqlError::invalid(format!(
                    "List index {i} out of bound, list has size {}",
                    old.len()
                )));
            }
            match values::eval(vt, e, &binds, name)? {
                Ev::V(v) => old[i as usize] = v,
                _ => {
                    old.remove(i as usize);
                }
            }
            Value::List(old)
        }
        (Assign::Field(_, f, t), CqlType::Udt { fields, .. }) => {
            let i = fields.iter().position(|(n, _)| n == f).ok_or_else(|| {
                CqlError::invalid(format!("UDT column {name} does not have a field named {f}"))
            })?;
            let mut items = match cur {
                Value::Tuple(v) => v,
                _ => vec![Value::Null; fields.len()],
            };
            items.resize(fields.len(), Value::Null);
            items[i] = match values::eval(t, &fields[i].1, &binds, name)? {
                Ev::V(v) => v,
                _ => Value::Null,
            };
            Value::Tuple(items)
        }
        _ => {
            return Err(CqlError::invalid(format!(
                "Invalid operation for column {name} of type {}",
                c.ty.cql_name()
            )))
        }
    })
}

pub async fn update(
    engine: &Engine,
    s: &Update,
    ctx: &Ctx<'_>,
    sink: Option<&mut Vec<Planned>>,
) -> Result<Outcome> {
    let (def, table) = resolve(engine, &s.ks, &s.table, ctx).await?;
    let binds = ctx.binds();
    let mut only_static = true;
    let mut rmw = s.cond != Cond::None;
    for a in &s.assigns {
        let name = match a {
            Assign::Set(c, _)
            | Assign::Add(c, _)
            | Assign::Sub(c, _)
            | Assign::Prepend(c, _)
            | Assign::Elem(c, _, _)
            | Assign::Field(c, _, _) => c,
        };
        let c = def
            .col(name)
            .ok_or_else(|| CqlError::invalid(format!("Undefined column name {name}")))?;
        if matches!(c.kind, Kind::PartitionKey | Kind::Clustering) {
            return Err(CqlError::invalid(format!(
                "PRIMARY KEY part {name} found in SET part"
            )));
        }
        only_static &= c.kind == Kind::Static;
        match a {
            Assign::Set(..) if c.ty.is_counter() => return Err(CqlError::invalid(format!("Cannot set the value of counter column {name} (counters can only be incremented/decremented, not set)"))),
            Assign::Set(..) => {}
            Assign::Add(..) | Assign::Sub(..) if !c.ty.is_counter() && !c.ty.is_collection() => {
                return Err(CqlError::invalid(format!("Invalid operation ({name} = {name} + ?) for non counter column {name}")))
            }
            _ => rmw = true,
        }
    }
    let ks = key_sel(&def, &s.wh, ctx, !only_static)?;
    if only_static && ks.rows.first().is_some_and(|r| !r.is_empty()) {
        return Err(CqlError::invalid(
            "Invalid restrictions on clustering columns since the UPDATE statement modifies only static columns",
        ));
    }
    if !ks.ck_rest.is_empty() {
        return Err(CqlError::invalid(
            "Slice restrictions are not supported on the clustering columns in UPDATE statements",
        ));
    }
    if s.cond != Cond::None && (ks.partitions.len() > 1 || ks.rows.len() > 1) {
        return Err(CqlError::invalid(
            "IN on the clustering key columns is not supported with conditional updates",
        ));
    }
    let o = write_opts(&def, &s.using, ctx, None)?;
    let mut planned = Vec::new();
    for pk in &ks.partitions {
        let (token, partition) = schema::partition_key(&def, pk)?;
        let idx = tablet_of(&table, token);
        let stat = static_prefix(&partition);
        let rows: Vec<(Vec<Value>, Vec<u8>)> =
            if only_static && ks.rows.iter().all(|r| r.len() < def.ck_len()) {
                vec![(Vec::new(), Vec::new())]
            } else {
                ks.rows
                    .iter()
                    .map(|ck| {
                        let mut r = partition.clone();
                        if def.ck_len() > 0 {
                            schema::append_clustering(&def, &mut r, ck)?;
                        }
                        Ok((ck.clone(), r))
                    })
                    .collect::<Result<_>>()?
            };
        for (ck, row) in rows {
            let has_row = !row.is_empty();
            for attempt in 0..CAS_RETRIES {
                let state = if rmw {
                    Some(row_state(engine, &def, &table, idx, &row, &stat, has_row).await?)
                } else {
                    None
                };
                if let Some(st) = &state {
                    if !check_conditions(&def, &s.cond, st, ctx)? {
                        return lwt_result(&def, false, pk, &ck, Some(st));
                    }
                }
                let mut ops = Vec::new();
                let mut cur: HashMap<u16, Value> = HashMap::new();
                for a in &s.assigns {
                    let name = match a {
                        Assign::Set(c, _)
                        | Assign::Add(c, _)
                        | Assign::Sub(c, _)
                        | Assign::Prepend(c, _)
                        | Assign::Elem(c, _, _)
                        | Assign::Field(c, _, _) => c,
                    };
                    let c = def.col(name).ok_or_else(|| {
                        CqlError::invalid(format!("Undefined column name {name}"))
                    })?;
                    let key = cell_key(prefix_for(c, &row, &stat), c.id);
                    let new = match a {
                        Assign::Set(_, t) => match values::eval(t, &c.ty, &binds, name)? {
                            Ev::Unset => continue,
                            Ev::Null => Value::Null,
                            Ev::V(v) => v,
                        },
                        _ => {
                            let old = match cur.remove(&c.id) {
                                Some(v) => v,
                                None => state
                                    .as_ref()
                                    .map(|st| st.value(c))
                                    .transpose()?
                                    .unwrap_or(Value::Null),
                            };
                            modify(c, a, old, ctx)?
                        }
                    };
                    cur.insert(c.id, new.clone());
                    ops.retain(|op: &KvOp| op.key != key);
                    let o2 = if c.ty.is_counter() {
                        WriteOpts {
                            ttl: 0,
                            expire_us: 0,
                            ..o
                        }
                    } else {
                        o
                    };
                    match value_bytes(c, &new)? {
                        Some(b) => ops.push(put(key, b, &o2)),
                        None => ops.push(del(key)),
                    }
                }
                let mut all = match &state {
                    Some(st) => unchanged(&st.keys, &st.raw),
                    None => Vec::new(),
                };
                all.extend(ops);
                if state.is_none() {
                    planned.push(Planned {
                        def: def.clone(),
                        table: table.clone(),
                        idx,
                        ops: all,
                    });
                    break;
                }
                if write_checked(engine, &def, &table, idx, all).await? {
                    if s.cond != Cond::None {
                        return lwt_result(&def, true, pk, &ck, None);
                    }
                    break;
                }
                if attempt + 1 == CAS_RETRIES {
                    return Err(CqlError::new(
                        crate::error::code::WRITE_TIMEOUT,
                        "Operation timed out - contention on read-modify-write",
                    ));
                }
            }
        }
    }
    match sink {
        Some(sink) => sink.extend(planned),
        None => {
            flush(engine, planned).await?;
        }
    }
    Ok(Outcome::Void)
}

/// Every key of `[start, end)` in tablet `idx`.
pub async fn scan_range(
    engine: &Engine,
    table: &Table,
    idx: usize,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut from = start;
    loop {
        let resp = engine
            .catalog
            .client
            .scan_tablet(table, idx, Some(from.clone()), end.clone(), 5000)
            .await?;
        let more = resp.more;
        let mut last = None;
        for kv in resp.kvs {
            last = Some(kv.key.clone());
            out.push((kv.key, kv.value));
        }
        match (more, last) {
            (true, Some(mut k)) => {
                k.push(0);
                from = k;
            }
            _ => return Ok(out),
        }
    }
}

/// The exclusive end of every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xFF {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

pub async fn delete(
    engine: &Engine,
    s: &Delete,
    ctx: &Ctx<'_>,
    sink: Option<&mut Vec<Planned>>,
) -> Result<Outcome> {
    let (def, table) = resolve(engine, &s.ks, &s.table, ctx).await?;
    let mut cols = Vec::new();
    let mut only_static = !s.cols.is_empty();
    for (name, elem) in &s.cols {
        let c = def
            .col(name)
            .ok_or_else(|| CqlError::invalid(format!("Undefined column name {name}")))?;
        if matches!(c.kind, Kind::PartitionKey | Kind::Clustering) {
            return Err(CqlError::invalid(format!(
                "Invalid identifier {name} for deletion (should not be a PRIMARY KEY part)"
            )));
        }
        only_static &= c.kind == Kind::Static;
        cols.push((c, elem));
    }
    if !cols.is_empty() && !only_static {
        let ranged = s.wh.iter().any(|r| match r {
            Rel::Col { col, op, .. } => {
                matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge)
                    && def.col(col).is_some_and(|c| c.kind == Kind::Clustering)
            }
            Rel::Multi { op, .. } => matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge),
            _ => false,
        });
        if ranged {
            return Err(CqlError::invalid(
                "Range deletions are not supported for specific columns",
            ));
        }
    }
    let ks = key_sel(&def, &s.wh, ctx, !cols.is_empty() && !only_static)?;
    if s.using.ttl.is_some() {
        return Err(CqlError::invalid(
            "Cannot provide custom TTL for DELETE statements",
        ));
    }
    let o = write_opts(&def, &s.using, ctx, None)?;
    if s.cond != Cond::None
        && (ks.partitions.len() > 1
            || ks.rows.len() > 1
            || ks.rows.first().is_some_and(|r| r.len() < def.ck_len()) && !only_static)
    {
        return Err(CqlError::invalid("DELETE statements must restrict all PRIMARY KEY columns with equality relations in order to use IF conditions"));
    }
    let mut planned = Vec::new();
    for pk in &ks.partitions {
        let (token, partition) = schema::partition_key(&def, pk)?;
        let idx = tablet_of(&table, token);
        let stat = static_prefix(&partition);
        if cols.is_empty() {
            // Whole rows: every cell under each selected prefix.
            let full_row = ks.rows.first().is_some_and(|r| r.len() == def.ck_len());
            if s.cond != Cond::None {
                let ck = ks.rows.first().cloned().unwrap_or_default();
                let mut row = partition.clone();
                if def.ck_len() > 0 {
                    schema::append_clustering(&def, &mut row, &ck)?;
                }
                for _ in 0..CAS_RETRIES {
                    let state = row_state(engine, &def, &table, idx, &row, &stat, true).await?;
                    if !check_conditions(&def, &s.cond, &state, ctx)? {
                        return lwt_result(&def, false, pk, &ck, Some(&state));
                    }
                    let mut all = unchanged(&state.keys, &state.raw);
                    all.extend(
                        state
                            .keys
                            .iter()
                            .zip(&state.raw)
                            .filter(|(k, v)| {
                                v.is_some()
                                    && k.starts_with(&row)
                                    && (def.ck_len() == 0 || !k.starts_with(&stat))
                            })
                            .map(|(k, _)| del(k.clone())),
                    );
                    if write_checked(engine, &def, &table, idx, all).await? {
                        return lwt_result(&def, true, pk, &ck, None);
                    }
                }
                return Err(CqlError::new(
                    crate::error::code::WRITE_TIMEOUT,
                    "Operation timed out - contention on conditional delete",
                ));
            }
            let mut ops = Vec::new();
            for ck in &ks.rows {
                let prefix = if def.ck_len() == 0 || (ck.is_empty() && ks.ck_rest.is_empty()) {
                    partition.clone()
                } else {
                    let mut r = partition.clone();
                    schema::append_clustering(&def, &mut r, ck)?;
                    r
                };
                let end = prefix_end(&prefix);
                for (k, _) in scan_range(engine, &table, idx, prefix.clone(), end).await? {
                    if !ks.ck_rest.is_empty() || (full_row && def.ck_len() > 0) {
                        let Some(parts) = schema::parse_key(&def, &k) else {
                            continue;
                        };
                        let Some(ckv) = &parts.ck else { continue };
                        if !crate::select::ck_matches(&def, ckv, &ks.ck_rest, ctx)? {
                            continue;
                        }
                    }
                    ops.push(del(k));
                }
            }
            planned.push(Planned {
                def: def.clone(),
                table: table.clone(),
                idx,
                ops,
            });
            continue;
        }
        let rows: Vec<(Vec<Value>, Vec<u8>)> = if only_static {
            vec![(Vec::new(), Vec::new())]
        } else {
            ks.rows
                .iter()
                .map(|ck| {
                    let mut r = partition.clone();
                    if def.ck_len() > 0 {
                        schema::append_clustering(&def, &mut r, ck)?;
                    }
                    Ok((ck.clone(), r))
                })
                .collect::<Result<_>>()?
        };
        for (ck, row) in rows {
            let rmw = s.cond != Cond::None || cols.iter().any(|(_, e)| e.is_some());
            for attempt in 0..CAS_RETRIES {
                let state = if rmw {
                    Some(row_state(engine, &def, &table, idx, &row, &stat, !row.is_empty()).await?)
                } else {
                    None
                };
                if let Some(st) = &state {
                    if !check_conditions(&def, &s.cond, st, ctx)? {
                        return lwt_result(&def, false, pk, &ck, Some(st));
                    }
                }
                let mut ops = Vec::new();
                for (c, elem) in &cols {
                    let key = cell_key(prefix_for(c, &row, &stat), c.id);
                    match elem {
                        None => ops.push(del(key)),
                        Some(e) => {
                            let cur = state
                                .as_ref()
                                .map(|st| st.value(c))
                                .transpose()?
                                .unwrap_or(Value::Null);
                            let binds = ctx.binds();
                            let new = match (c.ty.base(), cur) {
                                (CqlType::Map(kt, _), Value::Map(mut pairs)) => {
                                    let Ev::V(k) = values::eval(e, kt, &binds, &c.name)? else {
                                        return Err(CqlError::invalid(
                                            "Invalid null value for map key",
                                        ));
                                    };
                                    pairs.retain(|(x, _)| !types::compare(kt, x, &k).is_eq());
                                    Value::Map(pairs)
                                }
                                (CqlType::Set(et), Value::Set(mut items)) => {
                                    let Ev::V(k) = values::eval(e, et, &binds, &c.name)? else {
                                        return Err(CqlError::invalid(
                                            "Invalid null value for set element",
                                        ));
                                    };
                                    items.retain(|x| !types::compare(et, x, &k).is_eq());
                                    Value::Set(items)
                                }
                                (CqlType::List(_), Value::List(mut items)) => {
                                    let Ev::V(Value::Int(i)) =
                                        values::eval(e, &CqlType::Int, &binds, &c.name)?
                                    else {
                                        return Err(CqlError::invalid(
                                            "Invalid null value for list index",
                                        ));
                                    };
                                    if i < 0 || i as usize >= items.len() {
                                        return Err(CqlError::invalid(format!(
                                            "List index {i} out of bound, list has size {}",
                                            items.len()
                                        )));
                                    }
                                    items.remove(i as usize);
                                    Value::List(items)
                                }
                                (CqlType::List(_), Value::Null) => {
                                    return Err(CqlError::invalid(
                                        "Attempted to delete an element from a list which is null",
                                    ))
                                }
                                (_, Value::Null) => Value::Null,
                                _ => {
                                    return Err(CqlError::invalid(format!(
                                        "Invalid element deletion on column {}",
                                        c.name
                                    )))
                                }
                            };
                            match value_bytes(c, &new)? {
                                Some(b) => ops.push(put(key, b, &o)),
                                None => ops.push(del(key)),
                            }
                        }
                    }
                }
                let Some(st) = &state else {
                    planned.push(Planned {
                        def: def.clone(),
                        table: table.clone(),
                        idx,
                        ops,
                    });
                    break;
                };
                let mut all = unchanged(&st.keys, &st.raw);
                all.extend(ops);
                if write_checked(engine, &def, &table, idx, all).await? {
                    if s.cond != Cond::None {
                        return lwt_result(&def, true, pk, &ck, None);
                    }
                    break;
                }
                if attempt + 1 == CAS_RETRIES {
                    return Err(CqlError::new(
                        crate::error::code::WRITE_TIMEOUT,
                        "Operation timed out - contention on read-modify-write",
                    ));
                }
            }
        }
    }
    match sink {
        Some(sink) => sink.extend(planned),
        None => {
            flush(engine, planned).await?;
        }
    }
    Ok(Outcome::Void)
}

/// A batch: each statement with its own bind values.
pub async fn batch(
    engine: &Engine,
    kind: BatchKind,
    using: &Using,
    stmts: &[(&Stmt, &[crate::frame::Bound])],
    ctx: &Ctx<'_>,
) -> Result<Outcome> {
    if using.ttl.is_some() {
        return Err(CqlError::invalid(
            "Global TTL on the BATCH statement is not supported.",
        ));
    }
    let ts = match &using.timestamp {
        Some(t) => match values::eval(t, &CqlType::Bigint, &ctx.binds(), "[timestamp]")? {
            Ev::V(Value::Int(n)) => Some(n as i64),
            _ => None,
        },
        None => ctx.params.timestamp,
    };
    let mut planned = Vec::new();
    let conditional: Vec<&(&Stmt, &[crate::frame::Bound])> = stmts
        .iter()
        .filter(|(s, _)| match s {
            Stmt::Insert(i) => i.if_not_exists,
            Stmt::Update(u) => u.cond != Cond::None,
            Stmt::Delete(d) => d.cond != Cond::None,
            _ => false,
        })
        .collect();
    if kind == BatchKind::Transaction && !conditional.is_empty() {
        return Err(CqlError::invalid(
            "Conditional statements are not supported in a transaction",
        ));
    }
    if conditional.len() == 1 && stmts.len() == 1 {
        let (stmt, values) = conditional[0];
        let sub = Ctx {
            ks: ctx.ks,
            params: ctx.params,
            values,
            now_ms: ctx.now_ms,
            now_us: ctx.now_us,
            user: ctx.user,
        };
        return Box::pin(engine.execute(stmt, &sub)).await;
    }
    if !conditional.is_empty() {
        return conditional_batch(engine, stmts, ctx).await;
    }
    for (s, values) in stmts {
        let sub = Ctx {
            ks: ctx.ks,
            params: ctx.params,
            values,
            now_ms: ctx.now_ms,
            now_us: ctx.now_us,
            user: ctx.user,
        };
        let is_counter = match s {
            Stmt::Update(u) => resolve(engine, &u.ks, &u.table, ctx)
                .await?
                .0
                .is_counter_table(),
            Stmt::Insert(i) => resolve(engine, &i.ks, &i.table, ctx)
                .await?
                .0
                .is_counter_table(),
            Stmt::Delete(d) => resolve(engine, &d.ks, &d.table, ctx)
                .await?
                .0
                .is_counter_table(),
            _ => false,
        };
        match (kind, is_counter) {
            (BatchKind::Counter, false) => {
                return Err(CqlError::invalid(
                    "Only counter mutations are allowed in COUNTER batches",
                ))
            }
            (BatchKind::Logged | BatchKind::Unlogged, true) => {
                return Err(CqlError::invalid(
                    "Counter mutations are only allowed in COUNTER batches",
                ))
            }
            (BatchKind::Transaction, true) => {
                return Err(CqlError::invalid(
                    "Counter mutations are not supported in a transaction",
                ))
            }
            _ => {}
        }
        let with_ts = |u: &Using| {
            let mut u = u.clone();
            if u.timestamp.is_none() {
                if let Some(t) = ts {
                    u.timestamp = Some(Term::Lit(parser::Lit::Int(t.to_string())));
                }
            } else if ts.is_some() {
                return Err(CqlError::invalid(
                    "Timestamp must be set either on BATCH or individual statements",
                ));
            }
            Ok(u)
        };
        match s {
            Stmt::Insert(i) => {
                let mut i = (**i).clone();
                i.using = with_ts(&i.using)?;
                insert(engine, &i, &sub, Some(&mut planned)).await?;
            }
            Stmt::Update(u) => {
                let mut u = (**u).clone();
                u.using = with_ts(&u.using)?;
                update(engine, &u, &sub, Some(&mut planned)).await?;
            }
            Stmt::Delete(d) => {
                let mut d = (**d).clone();
                d.using = with_ts(&d.using)?;
                delete(engine, &d, &sub, Some(&mut planned)).await?;
            }
            _ => {
                return Err(CqlError::invalid(
                    "Only INSERT, UPDATE and DELETE are allowed in a BATCH",
                ))
            }
        }
    }
    let atomic = matches!(kind, BatchKind::Logged | BatchKind::Transaction);
    let size: usize = planned
        .iter()
        .flat_map(|p| &p.ops)
        .map(|o| o.key.len() + o.value.len())
        .sum();
    if size > BATCH_SIZE_FAIL_BYTES {
        return Err(CqlError::invalid(format!(
            "Batch too large: {} KiB, the limit is {} KiB",
            size / 1024,
            BATCH_SIZE_FAIL_BYTES / 1024
        )));
    }
    if atomic {
        flush_atomic(engine, planned, ctx.now_us).await?;
    } else {
        flush(engine, planned).await?;
    }
    Ok(Outcome::Void)
}

/// The row a conditional statement checks: table, tablet, row and static prefixes, key
/// values, and its condition.
struct CondTarget {
    def: Arc<TableDef>,
    table: Arc<Table>,
    idx: usize,
    row: Vec<u8>,
    stat: Vec<u8>,
    pk: Vec<Value>,
    ck: Vec<Value>,
    cond: Cond,
}

async fn cond_target(engine: &Engine, stmt: &Stmt, ctx: &Ctx<'_>) -> Result<Option<CondTarget>> {
    let (ks, table, wh, cond) = match stmt {
        Stmt::Insert(i) => {
            if !i.if_not_exists {
                return Ok(None);
            }
            let (def, table) = resolve(engine, &i.ks, &i.table, ctx).await?;
            let mut pk = vec![Value::Null; def.pk_len()];
            let mut ck = vec![Value::Null; def.ck_len()];
            for (name, t) in i.cols.iter().zip(&i.values) {
                let Some(c) = def.col(name) else { continue };
                if let (Kind::PartitionKey | Kind::Clustering, Ev::V(v)) =
                    (c.kind, values::eval(t, &c.ty, &ctx.binds(), name)?)
                {
                    if c.kind == Kind::PartitionKey {
                        pk[c.position] = v
                    } else {
                        ck[c.position] = v
                    }
                }
            }
            let (token, partition) = schema::partition_key(&def, &pk)?;
            let (_, row) = schema::row_key(&def, &pk, &ck)?;
            let idx = tablet_of(&table, token);
            return Ok(Some(CondTarget {
                def,
                table,
                idx,
                row,
                stat: static_prefix(&partition),
                pk,
                ck,
                cond: Cond::NotExists,
            }));
        }
        Stmt::Update(u) if u.cond != Cond::None => (&u.ks, &u.table, &u.wh, u.cond.clone()),
        Stmt::Delete(d) if d.cond != Cond::None => (&d.ks, &d.table, &d.wh, d.cond.clone()),
        _ => return Ok(None),
    };
    let (def, table) = resolve(engine, ks, table, ctx).await?;
    let sel = key_sel(&def, wh, ctx, false)?;
    let (Some(pk), true) = (
        sel.partitions.first(),
        sel.partitions.len() == 1 && sel.rows.len() == 1,
    ) else {
        return Err(CqlError::invalid("IN on the partition key or clustering columns is not supported with conditional updates"));
    };
    let ck = sel.rows[0].clone();
    let (token, partition) = schema::partition_key(&def, pk)?;
    let mut row = partition.clone();
    if def.ck_len() > 0 {
        schema::append_clustering(&def, &mut row, &ck)?;
    }
    let idx = tablet_of(&table, token);
    Ok(Some(CondTarget {
        def,
        table,
        idx,
        row,
        stat: static_prefix(&partition),
        pk: pk.clone(),
        ck,
        cond,
    }))
}

/// A batch with conditions: every statement on one partition; all conditions are checked
/// and all writes applied in one atomic tablet write (retried if a checked cell changed).
async fn conditional_batch(
    engine: &Engine,
    stmts: &[(&Stmt, &[crate::frame::Bound])],
    ctx: &Ctx<'_>,
) -> Result<Outcome> {
    for _ in 0..CAS_RETRIES {
        let mut checks = Vec::new();
        let mut place: Option<(String, usize)> = None;
        let mut first: Option<CondTarget> = None;
        for (stmt, values) in stmts {
            let sub = Ctx {
                ks: ctx.ks,
                params: ctx.params,
                values,
                now_ms: ctx.now_ms,
                now_us: ctx.now_us,
                user: ctx.user,
            };
            let Some(t) = cond_target(engine, stmt, &sub).await? else {
                continue;
            };
            let here = (t.table.info.table_id.clone(), t.idx);
            if place.as_ref().is_some_and(|p| *p != here) {
                return Err(CqlError::invalid(
                    "Batch with conditions cannot span multiple tables or partitions",
                ));
            }
            place = Some(here);
            let state = row_state(engine, &t.def, &t.table, t.idx, &t.row, &t.stat, true).await?;
            if !check_conditions(&t.def, &t.cond, &state, &sub)? {
                return lwt_result(&t.def, false, &t.pk, &t.ck, Some(&state));
            }
            checks.extend(unchanged(&state.keys, &state.raw));
            first.get_or_insert(t);
        }
        let Some(t) = first else {
            return Err(CqlError::server("conditional batch without conditions"));
        };
        let mut planned = Vec::new();
        for (stmt, values) in stmts {
            let sub = Ctx {
                ks: ctx.ks,
                params: ctx.params,
                values,
                now_ms: ctx.now_ms,
                now_us: ctx.now_us,
                user: ctx.user,
            };
            match stmt {
                Stmt::Insert(i) => {
                    let mut i = (**i).clone();
                    i.if_not_exists = false;
                    insert(engine, &i, &sub, Some(&mut planned)).await?;
                }
                Stmt::Update(u) => {
                    let mut u = (**u).clone();
                    u.cond = Cond::None;
                    update(engine, &u, &sub, Some(&mut planned)).await?;
                }
                Stmt::Delete(d) => {
                    let mut d = (**d).clone();
                    d.cond = Cond::None;
                    delete(engine, &d, &sub, Some(&mut planned)).await?;
                }
                _ => {
                    return Err(CqlError::invalid(
                        "Only INSERT, UPDATE and DELETE are allowed in a BATCH",
                    ))
                }
            }
        }
        let mut ops = checks;
        for p in planned {
            if p.idx != t.idx || p.table.info.table_id != t.table.info.table_id {
                return Err(CqlError::invalid(
                    "Batch with conditions cannot span multiple tables or partitions",
                ));
            }
            ops.extend(p.ops);
        }
        if write_checked(engine, &t.def, &t.table, t.idx, ops).await? {
            return lwt_result(&t.def, true, &t.pk, &t.ck, None);
        }
    }
    Err(CqlError::new(
        crate::error::code::WRITE_TIMEOUT,
        "Operation timed out - contention on conditional batch",
    ))
}

/// Delete every row of a table.
pub async fn truncate(engine: &Engine, table: &Table) -> Result<()> {
    for idx in 0..table.tablets.len() {
        let rows = scan_range(engine, table, idx, Vec::new(), None).await?;
        for chunk in rows.chunks(1000) {
            let ops = chunk.iter().map(|(k, _)| del(k.clone())).collect();
            engine.catalog.client.write_tablet(table, idx, ops).await?;
        }
    }
    Ok(())
}
