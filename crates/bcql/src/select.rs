//! SELECT: analyse the WHERE clause (partition keys pinned by `=`/`IN`, clustering
//! prefixes, everything else a filter), fetch rows (narrow prefix scans of the pinned
//! partitions, or a token-ordered scan of every tablet), then filter, order, group,
//! aggregate, limit, page and project. Plain columns are copied as stored wire bytes.
//!
//! Paging state: `[0][offset u64]` for partition-restricted and aggregated queries (the
//! result is recomputed and skipped), `[1][tablet u32][rows u64][rows of the current
//! partition u32][resume key]` for scans.

use std::collections::HashMap;
use std::sync::Arc;

use crate::dml::{self, compare_op};
use crate::error::{CqlError, Result};
use crate::exec::{ColSpec, Ctx, Engine, Outcome, Rows};
use crate::parser::{Op, Rel, Select, SelectItem, Selector, Term};
use crate::schema::{self, Cell, Kind, TableDef};
use crate::types::{self, CqlType, Value};
use crate::values::{self, Ev};

/// An assembled row.
#[derive(Debug, Clone)]
pub struct Row {
    pub token: i64,
    pub pk: Vec<Value>,
    /// `None` for a partition that has only static cells.
    pub ck: Option<Vec<Value>>,
    pub cells: HashMap<u16, Cell>,
    pub statics: Arc<HashMap<u16, Cell>>,
    /// The row's key prefix (for paging).
    pub key: Vec<u8>,
    pub partition_len: usize,
}

impl Row {
    pub fn cell(&self, c: &schema::Column) -> Option<&Cell> {
        match c.kind {
            Kind::Static => self.statics.get(&c.id),
            _ => self.cells.get(&c.id),
        }
    }
    /// The value of column `c` (decoded).
    pub fn value(&self, c: &schema::Column) -> Result<Value> {
        Ok(match c.kind {
            Kind::PartitionKey => self.pk.get(c.position).cloned().unwrap_or(Value::Null),
            Kind::Clustering => self
                .ck
                .as_ref()
                .and_then(|ck| ck.get(c.position).cloned())
                .unwrap_or(Value::Null),
            _ => match self.cell(c) {
                Some(cell) => types::decode(&c.ty, &cell.value)?,
                None => Value::Null,
            },
        })
    }
    /// The stored wire bytes of column `c`.
    pub fn bytes(&self, c: &schema::Column) -> Result<Option<Vec<u8>>> {
        Ok(match c.kind {
            Kind::PartitionKey | Kind::Clustering => match self.value(c)? {
                Value::Null => None,
                v => Some(types::encode(&c.ty, &v)?),
            },
            _ => self.cell(c).map(|cell| cell.value.clone()),
        })
    }
}

/// Builds rows from a key-ordered stream of cells.
pub struct Assembler<'a> {
    def: &'a TableDef,
    partition: Vec<u8>,
    statics: HashMap<u16, Cell>,
    frozen: Option<Arc<HashMap<u16, Cell>>>,
    had_rows: bool,
    cur: Option<Row>,
    pk: Vec<Value>,
    token: i64,
    pub out: Vec<Row>,
    pub static_only_rows: bool,
}

impl<'a> Assembler<'a> {
    pub fn new(def: &'a TableDef, static_only_rows: bool) -> Self {
        Assembler {
            def,
            partition: Vec::new(),
            statics: HashMap::new(),
            frozen: None,
            had_rows: false,
            cur: None,
            pk: Vec::new(),
            token: 0,
            out: Vec::new(),
            static_only_rows,
        }
    }

    /// Seed the statics of a partition (when resuming in its middle).
    pub fn seed_statics(
        &mut self,
        partition: &[u8],
        pk: Vec<Value>,
        token: i64,
        statics: HashMap<u16, Cell>,
    ) {
        self.partition = partition.to_vec();
        self.pk = pk;
        self.token = token;
        self.statics = statics;
        self.had_rows = true;
    }

    fn flush_row(&mut self) {
        if let Some(r) = self.cur.take() {
            self.out.push(r);
        }
    }

    fn end_partition(&mut self) {
        self.flush_row();
        if !self.had_rows
            && !self.partition.is_empty()
            && self.static_only_rows
            && !self.statics.is_empty()
        {
            self.out.push(Row {
                token: self.token,
                pk: self.pk.clone(),
                ck: None,
                cells: HashMap::new(),
                statics: Arc::new(std::mem::take(&mut self.statics)),
                key: self.partition.clone(),
                partition_len: self.partition.len(),
            });
        }
        self.statics.clear();
        self.frozen = None;
        self.had_rows = false;
        self.partition.clear();
    }

    pub fn feed(&mut self, key: &[u8], value: &[u8]) {
        let Some(parts) = schema::parse_key(self.def, key) else {
            return;
        };
        let Some(cell) = Cell::decode(value) else {
            return;
        };
        if key[..parts.partition_len] != self.partition[..] {
            self.end_partition();
            self.partition = key[..parts.partition_len].to_vec();
            self.pk = parts.pk.clone();
            self.token = parts.token;
        }
        match parts.ck {
            None => {
                if self.def.col_by_id(parts.col).is_some() {
                    self.statics.insert(parts.col, cell);
                }
            }
            Some(ck) => {
                let known = parts.col == 0 || self.def.col_by_id(parts.col).is_some();
                if !known {
                    return;
                }
                let row_key = &key[..parts.row_len];
                if self.cur.as_ref().is_none_or(|r| r.key != row_key) {
                    self.flush_row();
                    let statics = self
                        .frozen
                        .get_or_insert_with(|| Arc::new(self.statics.clone()))
                        .clone();
                    self.had_rows = true;
                    self.cur = Some(Row {
                        token: parts.token,
                        pk: parts.pk,
                        ck: Some(ck),
                        cells: HashMap::new(),
                        statics,
                        key: row_key.to_vec(),
                        partition_len: parts.partition_len,
                    });
                }
                if parts.col != 0 {
                    if let Some(r) = self.cur.as_mut() {
                        r.cells.insert(parts.col, cell);
                    }
                }
            }
        }
    }

    pub fn finish(mut self) -> Vec<Row> {
        self.end_partition();
        self.out
    }
}

/// The shape of most prepared reads: plain columns of one whole row, pinned by `=` on every
/// primary-key column (no statics, limits, ordering, paging state or functions). The row's
/// cells are read by key (through the read batcher) and copied out as stored, without the
/// general path's analysis and row assembly. `None`: not that shape (or an input the general
/// path must report), so the caller takes the general path.
async fn point_select(engine: &Engine, s: &Select, ctx: &Ctx<'_>) -> Result<Option<Outcome>> {
    let plain = s
        .items
        .as_ref()
        .is_none_or(|items| items.iter().all(|i| matches!(i.sel, Selector::Col(_))));
    if !plain
        || s.json
        || s.distinct
        || !s.group_by.is_empty()
        || !s.order_by.is_empty()
        || s.per_partition_limit.is_some()
        || s.limit.is_some()
        || ctx.params.paging_state.is_some()
    {
        return Ok(None);
    }
    let Ok(ks) = ctx.keyspace(&s.ks) else {
        return Ok(None);
    };
    if crate::system::is_system_keyspace(ks) {
        return Ok(None);
    }
    let (def, table) = engine.catalog.table(ks, &s.table).await?;
    if def.has_statics() || s.wh.len() != def.pk_len() + def.ck_len() {
        return Ok(None);
    }
    let mut pk = vec![Value::Null; def.pk_len()];
    let mut ck = vec![Value::Null; def.ck_len()];
    for r in &s.wh {
        let Rel::Col {
            col,
            op: Op::Eq,
            term,
        } = r
        else {
            return Ok(None);
        };
        let Some(c) = def.col(col) else {
            return Ok(None);
        };
        let slot = match c.kind {
            Kind::PartitionKey => &mut pk[c.position],
            Kind::Clustering => &mut ck[c.position],
            _ => return Ok(None),
        };
        if *slot != Value::Null {
            return Ok(None);
        }
        match dml::key_sel_values(c, Op::Eq, term, ctx).as_deref() {
            Ok([v]) if *v != Value::Null => *slot = v.clone(),
            _ => return Ok(None),
        }
    }
    let Ok((token, row)) = schema::row_key(&def, &pk, &ck) else {
        return Ok(None);
    };
    if row.len() > MAX_POINT_KEY {
        return Ok(None);
    }
    let selected: Vec<&schema::Column> = match &s.items {
        None => def.columns.iter().collect(),
        Some(items) => {
            let mut v = Vec::with_capacity(items.len());
            for i in items {
                match &i.sel {
                    Selector::Col(n) => match def.col(n) {
                        Some(c) => v.push(c),
                        None => return Ok(None),
                    },
                    _ => return Ok(None),
                }
            }
            v
        }
    };
    let idx = table.tablet_for_hash(schema::token_hash(token));
    let mut wanted: Vec<u16> = selected
        .iter()
        .filter(|c| c.kind == Kind::Regular)
        .map(|c| c.id)
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut cells: Vec<(u16, Vec<u8>)> = Vec::with_capacity(wanted.len());
    let mut read_ht = None;
    if !wanted.is_empty() {
        let keys = wanted.iter().map(|id| dml::cell_key(&row, *id)).collect();
        let (vals, ht) = engine
            .reads
            .read(&engine.catalog.client, &table, idx, keys)
            .await?;
        read_ht = Some(ht);
        for (id, v) in wanted.iter().zip(vals) {
            if let Some(cell) = v.as_deref().and_then(Cell::decode) {
                cells.push((*id, cell.value));
            }
        }
    }
    // No selected cell is live: the row exists if its marker or another cell is.
    let exists = !cells.is_empty() || {
        let keys: Vec<Vec<u8>> = std::iter::once(0)
            .chain(
                def.columns
                    .iter()
                    .filter(|c| c.kind == Kind::Regular && !wanted.contains(&c.id))
                    .map(|c| c.id),
            )
            .map(|id| dml::cell_key(&row, id))
            .collect();
        let (vals, _) = match read_ht {
            Some(ht) => {
                engine
                    .catalog
                    .client
                    .read_tablet_at(&table, idx, &keys, Some(ht))
                    .await?
            }
            None => {
                engine
                    .reads
                    .read(&engine.catalog.client, &table, idx, keys)
                    .await?
            }
        };
        vals.iter()
            .any(|v| v.as_deref().and_then(Cell::decode).is_some())
    };
    let mut rows = Vec::new();
    if exists {
        let mut out = Vec::with_capacity(selected.len());
        for c in &selected {
            out.push(match c.kind {
                Kind::PartitionKey => Some(types::encode(&c.ty, &pk[c.position])?),
                Kind::Clustering => Some(types::encode(&c.ty, &ck[c.position])?),
                _ => cells
                    .iter()
                    .find(|(id, _)| *id == c.id)
                    .map(|(_, v)| v.clone()),
            });
        }
        rows.push(out);
    }
    Ok(Some(Outcome::Rows(Rows {
        cols: result_columns(&def, s)?,
        rows,
        paging_state: None,
    })))
}

/// Most cells a pinned row read fetches by key before a prefix scan is cheaper.
const MAX_POINT_CELLS: usize = 64;
/// Longest row key read by key; longer ones take the scan, which reports keys too large
/// for storage.
const MAX_POINT_KEY: usize = 32 * 1024;

/// The row keys a query pins completely (every clustering column by `=`/`IN`, no static
/// columns), in key order. `None` when the rows are not pinned, so the partition must be
/// scanned.
fn pinned_rows(
    def: &TableDef,
    partition: &[u8],
    ck_prefix: usize,
    ck_combos: &[Vec<Value>],
) -> Result<Option<Vec<Vec<u8>>>> {
    if ck_prefix != def.ck_len() || def.has_statics() {
        return Ok(None);
    }
    let cells = def
        .columns
        .iter()
        .filter(|c| c.kind == Kind::Regular)
        .count()
        + 1;
    if ck_combos.len().max(1) * cells > MAX_POINT_CELLS {
        return Ok(None);
    }
    let mut rows = Vec::new();
    if def.ck_len() == 0 {
        rows.push(partition.to_vec());
    } else {
        for ck in ck_combos {
            let mut p = partition.to_vec();
            schema::append_clustering(def, &mut p, ck)?;
            rows.push(p);
        }
        rows.sort();
        rows.dedup();
    }
    if rows.iter().any(|p| p.len() > MAX_POINT_KEY) {
        // Near the storage key limit: the scan says which key is too large.
        return Ok(None);
    }
    Ok(Some(rows))
}

/// Feed `rows` (pinned row keys of tablet `idx`, in key order) to `asm` by point reads.
/// A row exists if any of its regular cells or its marker is live, so the markers are
/// read, in a second call at the same snapshot, only for rows without a live cell.
async fn read_pinned(
    engine: &Engine,
    def: &TableDef,
    table: &client::Table,
    idx: usize,
    rows: &[Vec<u8>],
    asm: &mut Assembler<'_>,
) -> Result<()> {
    let mut cols: Vec<u16> = def
        .columns
        .iter()
        .filter(|c| c.kind == Kind::Regular)
        .map(|c| c.id)
        .collect();
    cols.sort_unstable();
    let mut found: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![Vec::new(); rows.len()];
    let mut read_ht = None;
    if !cols.is_empty() {
        let keys: Vec<Vec<u8>> = rows
            .iter()
            .flat_map(|r| cols.iter().map(move |c| dml::cell_key(r, *c)))
            .collect();
        let (vals, ht) = engine
            .reads
            .read(&engine.catalog.client, table, idx, keys.clone())
            .await?;
        read_ht = Some(ht);
        for (i, (k, v)) in keys.into_iter().zip(vals).enumerate() {
            if let Some(v) = v {
                found[i / cols.len()].push((k, v));
            }
        }
    }
    let bare: Vec<usize> = (0..rows.len()).filter(|i| found[*i].is_empty()).collect();
    let mut markers: Vec<Option<Vec<u8>>> = vec![None; rows.len()];
    if !bare.is_empty() {
        let keys: Vec<Vec<u8>> = bare.iter().map(|i| dml::cell_key(&rows[*i], 0)).collect();
        let (vals, _) = engine
            .catalog
            .client
            .read_tablet_at(table, idx, &keys, read_ht)
            .await?;
        for (i, v) in bare.into_iter().zip(vals) {
            markers[i] = v;
        }
    }
    for (i, row) in rows.iter().enumerate() {
        if let Some(m) = &markers[i] {
            asm.feed(&dml::cell_key(row, 0), m);
        }
        for (k, v) in &found[i] {
            asm.feed(k, v);
        }
    }
    Ok(())
}

/// Output name and type of a selector.
fn sel_spec(def: &TableDef, sel: &Selector) -> Result<(String, CqlType)> {
    Ok(match sel {
        Selector::Col(c) => {
            let col = def
                .col(c)
                .ok_or_else(|| CqlError::invalid(format!("Undefined column name {c}")))?;
            (c.clone(), col.ty.clone())
        }
        Selector::Func { name, args, star } => {
            let arg_names = args
                .iter()
                .map(|a| sel_spec(def, a).map(|s| s.0))
                .collect::<Result<Vec<_>>>()?;
            let arg_ty = |i: usize| -> Result<CqlType> {
                args.get(i)
                    .map(|a| sel_spec(def, a).map(|s| s.1))
                    .unwrap_or(Err(CqlError::invalid(format!(
                        "Invalid number of arguments in call to function {name}"
                    ))))
            };
            let label = format!("system.{name}({})", arg_names.join(", "));
            match name.as_str() {
                "count"
                    if *star
                        || args.first()
                            == Some(&Selector::Term(Term::Lit(crate::parser::Lit::Int(
                                "1".into(),
                            )))) =>
                {
                    ("count".into(), CqlType::Bigint)
                }
                "count" => (label, CqlType::Bigint),
                "writetime" => {
                    check_cell_arg(def, args, name)?;
                    (
                        format!("writetime({})", arg_names.join(", ")),
                        CqlType::Bigint,
                    )
                }
                "ttl" => {
                    check_cell_arg(def, args, name)?;
                    (format!("ttl({})", arg_names.join(", ")), CqlType::Int)
                }
                "token" => (label, CqlType::Bigint),
                "min" | "max" => (label, arg_ty(0)?),
                "sum" | "avg" => {
                    let t = arg_ty(0)?;
                    if !matches!(
                        t.base(),
                        CqlType::Tinyint
                            | CqlType::Smallint
                            | CqlType::Int
                            | CqlType::Bigint
                            | CqlType::Varint
                            | CqlType::Float
                            | CqlType::Double
                            | CqlType::Decimal
                            | CqlType::Counter
                    ) {
                        return Err(CqlError::invalid(format!("Invalid call to function {name}, none of its type signatures match (argument of type {})", t.cql_name())));
                    }
                    (
                        label,
                        if matches!(t.base(), CqlType::Counter) {
                            CqlType::Bigint
                        } else {
                            t
                        },
                    )
                }
                "tojson" => (label, CqlType::Text),
                "totimestamp" | "dateof" => (label, CqlType::Timestamp),
                "todate" => (label, CqlType::Date),
                "tounixtimestamp" | "unixtimestampof" => (label, CqlType::Bigint),
                "now" | "currenttimeuuid" => (label, CqlType::Timeuuid),
                "uuid" => (label, CqlType::Uuid),
                "currenttimestamp" => (label, CqlType::Timestamp),
                "currentdate" => (label, CqlType::Date),
                n if n.starts_with("blobas") => (label, types::parse_type(&n[6..], &|_| None)?),
                n if n.ends_with("asblob") => (label, CqlType::Blob),
                _ => return Err(CqlError::invalid(format!("Unknown function '{name}'"))),
            }
        }
        Selector::Cast(inner, ty) => {
            let (n, _) = sel_spec(def, inner)?;
            (
                format!("cast({n} as {ty})"),
                types::parse_type(ty, &|_| None)?,
            )
        }
        Selector::Field(inner, f) => {
            let (n, t) = sel_spec(def, inner)?;
            match t.base() {
                CqlType::Udt { fields, .. } => {
                    let ft = fields
                        .iter()
                        .find(|(x, _)| x == f)
                        .map(|(_, t)| t.clone())
                        .ok_or_else(|| {
                            CqlError::invalid(format!(
                                "Invalid field selection: {n} of type {} has no field {f}",
                                t.cql_name()
                            ))
                        })?;
                    (format!("{n}.{f}"), ft)
                }
                _ => {
                    return Err(CqlError::invalid(format!(
                        "Invalid field selection: {n} of type {} is not a user type",
                        t.cql_name()
                    )))
                }
            }
        }
        Selector::Term(_) => {
            return Err(CqlError::invalid(
                "Literal terms are not supported as selectors",
            ))
        }
    })
}

fn check_cell_arg(def: &TableDef, args: &[Selector], name: &str) -> Result<()> {
    match args {
        [Selector::Col(c)] => {
            let col = def
                .col(c)
                .ok_or_else(|| CqlError::invalid(format!("Undefined column name {c}")))?;
            if matches!(col.kind, Kind::PartitionKey | Kind::Clustering) {
                return Err(CqlError::invalid(format!(
                    "Cannot use selection function {name} on PRIMARY KEY part {c}"
                )));
            }
            if col.ty.is_multicell() {
                return Err(CqlError::invalid(format!(
                    "Cannot use selection function {name} on non-frozen collection {c}"
                )));
            }
            Ok(())
        }
        _ => Err(CqlError::invalid(format!(
            "Invalid arguments for function {name}"
        ))),
    }
}

fn is_aggregate(sel: &Selector) -> bool {
    matches!(sel, Selector::Func { name, .. } if matches!(name.as_str(), "count" | "min" | "max" | "sum" | "avg"))
}

/// The result columns of a SELECT.
pub fn result_columns(def: &TableDef, s: &Select) -> Result<Vec<ColSpec>> {
    let spec = |name: String, ty: CqlType| ColSpec {
        ks: def.keyspace.clone(),
        table: def.name.clone(),
        name,
        ty,
    };
    if s.json {
        return Ok(vec![spec("[json]".into(), CqlType::Text)]);
    }
    match &s.items {
        None => Ok(def
            .columns
            .iter()
            .map(|c| spec(c.name.clone(), c.ty.clone()))
            .collect()),
        Some(items) => items
            .iter()
            .map(|i| {
                let (n, t) = sel_spec(def, &i.sel)?;
                Ok(spec(i.alias.clone().unwrap_or(n), t))
            })
            .collect(),
    }
}

/// Do clustering values match the clustering relations?
pub fn ck_matches(def: &TableDef, ck: &[Value], rels: &[Rel], ctx: &Ctx) -> Result<bool> {
    let binds = ctx.binds();
    for r in rels {
        match r {
            Rel::Col { col, op, term } => {
                let Some(c) = def.col(col) else { continue };
                if c.kind != Kind::Clustering {
                    continue;
                }
                let v = ck.get(c.position).cloned().unwrap_or(Value::Null);
                if !rel_matches(&c.ty, &v, *op, term, &binds, col)? {
                    return Ok(false);
                }
            }
            Rel::Multi { cols, op, term } => {
                let tys: Vec<CqlType> = cols
                    .iter()
                    .map(|n| def.col(n).map(|c| c.ty.clone()).unwrap_or(CqlType::Blob))
                    .collect();
                let cur: Vec<Value> = cols
                    .iter()
                    .map(|n| {
                        def.col(n)
                            .and_then(|c| ck.get(c.position).cloned())
                            .unwrap_or(Value::Null)
                    })
                    .collect();
                if !multi_matches(&tys, &cur, *op, term, &binds)? {
                    return Ok(false);
                }
            }
            _ => {}
        }
    }
    Ok(true)
}

fn multi_matches(
    tys: &[CqlType],
    cur: &[Value],
    op: Op,
    term: &Term,
    binds: &values::Binds,
) -> Result<bool> {
    let tup = CqlType::Tuple(tys.to_vec());
    let cmp = |rhs: &Value| -> std::cmp::Ordering {
        let Value::Tuple(r) = rhs else {
            return std::cmp::Ordering::Equal;
        };
        for (i, (a, b)) in cur.iter().zip(r).enumerate() {
            // Tuples compare component by component in each type's natural order
            // (whatever the clustering order), as Cassandra does.
            let o = types::compare(&tys[i], a, b);
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    };
    if op == Op::In {
        let opts = match term {
            Term::List(items) => items
                .iter()
                .map(|t| values::eval(t, &tup, binds, "tuple"))
                .collect::<Result<Vec<_>>>()?,
            t => match values::eval(t, &CqlType::List(Box::new(tup.clone())), binds, "tuple")? {
                Ev::V(Value::List(v)) => v.into_iter().map(Ev::V).collect(),
                _ => vec![],
            },
        };
        return Ok(opts.iter().any(|o| matches!(o, Ev::V(v) if cmp(v).is_eq())));
    }
    let Ev::V(rhs) = values::eval(term, &tup, binds, "tuple")? else {
        return Err(CqlError::invalid(
            "Invalid null value in multi-column relation",
        ));
    };
    // Multi-column slices compare in clustering order (as stored).
    let o = cmp(&rhs);
    Ok(match op {
        Op::Eq => o.is_eq(),
        Op::Lt => o.is_lt(),
        Op::Le => o.is_le(),
        Op::Gt => o.is_gt(),
        Op::Ge => o.is_ge(),
        Op::Ne => !o.is_eq(),
        _ => false,
    })
}

fn rel_matches(
    ty: &CqlType,
    v: &Value,
    op: Op,
    term: &Term,
    binds: &values::Binds,
    col: &str,
) -> Result<bool> {
    match op {
        Op::In => {
            let opts = match term {
                Term::List(items) => items
                    .iter()
                    .map(|t| values::eval(t, ty, binds, col))
                    .collect::<Result<Vec<_>>>()?,
                t => match values::eval(t, &CqlType::List(Box::new(ty.clone())), binds, col)? {
                    Ev::V(Value::List(v)) => v.into_iter().map(Ev::V).collect(),
                    _ => vec![],
                },
            };
            Ok(opts.iter().any(
                |o| matches!(o, Ev::V(x) if *v != Value::Null && types::compare(ty, v, x).is_eq()),
            ))
        }
        Op::IsNotNull => Ok(*v != Value::Null),
        Op::Contains | Op::ContainsKey => {
            let et = match (op, ty.base()) {
                (Op::Contains, CqlType::List(e) | CqlType::Set(e)) => e.as_ref().clone(),
                (Op::Contains, CqlType::Map(_, e)) => e.as_ref().clone(),
                (Op::ContainsKey, CqlType::Map(k, _)) => k.as_ref().clone(),
                _ => {
                    return Err(CqlError::invalid(format!(
                        "Cannot use CONTAINS on non-collection column {col}"
                    )))
                }
            };
            let x = match values::eval(term, &et, binds, col)? {
                Ev::V(x) => x,
                Ev::Unset => {
                    return Err(CqlError::invalid(format!(
                        "Invalid unset value for column {col}"
                    )))
                }
                Ev::Null => {
                    return Err(CqlError::invalid(format!(
                        "Invalid null value for column {col}"
                    )))
                }
            };
            compare_op(ty, v, op, &x)
        }
        _ => {
            let rhs = match values::eval(term, ty, binds, col)? {
                Ev::V(x) => x,
                Ev::Null => {
                    return Err(CqlError::invalid(format!(
                        "Invalid null value in condition for column {col}"
                    )))
                }
                Ev::Unset => {
                    return Err(CqlError::invalid(format!(
                        "Invalid unset value for column {col}"
                    )))
                }
            };
            if *v == Value::Null {
                return Ok(false);
            }
            compare_op(ty, v, op, &rhs)
        }
    }
}

fn filtering_error() -> CqlError {
    CqlError::invalid("Cannot execute this query as it might involve data filtering and thus may have unpredictable performance. If you want to execute this query despite the performance unpredictability, use ALLOW FILTERING")
}

fn int_term(t: &Option<Term>, ctx: &Ctx, what: &str) -> Result<Option<usize>> {
    let Some(t) = t else { return Ok(None) };
    match values::eval(t, &CqlType::Int, &ctx.binds(), what)? {
        Ev::V(Value::Int(n)) if n > 0 => Ok(Some(n as usize)),
        Ev::V(Value::Int(_)) => Err(CqlError::invalid(format!(
            "{} must be strictly positive",
            if what == "[limit]" {
                "LIMIT"
            } else {
                "PER PARTITION LIMIT"
            }
        ))),
        Ev::Unset => Ok(None),
        _ => Err(CqlError::invalid(format!("Invalid null value of {what}"))),
    }
}

pub async fn select(engine: &Engine, s: &Select, ctx: &Ctx<'_>) -> Result<Outcome> {
    if let Some(out) = point_select(engine, s, ctx).await? {
        return Ok(out);
    }
    let ks = ctx.keyspace(&s.ks)?.to_owned();
    let virtual_def = crate::system::table_def(&ks, &s.table);
    let (def, table) = match virtual_def {
        Some(d) => (Arc::new(d), None),
        None => {
            if crate::system::is_system_keyspace(&ks) {
                return Err(CqlError::invalid(format!("unconfigured table {}", s.table)));
            }
            let (d, t) = engine.catalog.table(&ks, &s.table).await?;
            (d, Some(t))
        }
    };
    let cols = result_columns(&def, s)?;
    let binds = ctx.binds();

    // Analyse the WHERE clause.
    let mut pk_vals: Vec<Option<Vec<Value>>> = vec![None; def.pk_len()];
    let mut pk_other = false;
    let mut ck_vals: Vec<Option<Vec<Value>>> = vec![None; def.ck_len()];
    let mut ck_rels: Vec<Rel> = Vec::new();
    let mut filters: Vec<Rel> = Vec::new();
    let mut token_rels: Vec<(Op, i64)> = Vec::new();
    let mut needs_filtering = false;
    let mut index_used = false;
    // An index table to read, and the value (wire bytes) to look up.
    let mut ix_lookup: Option<(Arc<client::Table>, Vec<u8>)> = None;
    for r in &s.wh {
        let ne = match r {
            Rel::Col {
                col, op: Op::Ne, ..
            } => Some(col.clone()),
            Rel::Token { op: Op::Ne, .. } => Some("token(...)".to_owned()),
            Rel::Multi { op: Op::Ne, .. } => Some("(...)".to_owned()),
            _ => None,
        };
        if let Some(what) = ne {
            return Err(CqlError::invalid(format!(
                "Unsupported \"!=\" relation: {what} != ..."
            )));
        }
        match r {
            Rel::Col { col, op, term } => {
                let c = def
                    .col(col)
                    .ok_or_else(|| CqlError::invalid(format!("Undefined column name {col}")))?;
                if matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge) {
                    if let Some(what) = duration_kind(&c.ty) {
                        return Err(CqlError::invalid(format!(
                            "Slice restrictions are not supported on {what}"
                        )));
                    }
                }
                match (c.kind, op) {
                    (Kind::PartitionKey, Op::Eq | Op::In) if pk_vals[c.position].is_none() => {
                        let vals = crate::dml::key_sel_values(c, *op, term, ctx)?;
                        pk_vals[c.position] = Some(vals);
                    }
                    (Kind::PartitionKey, _) => {
                        pk_other = true;
                        filters.push(r.clone());
                    }
                    (Kind::Clustering, Op::Eq | Op::In)
                        if ck_vals[c.position].is_none()
                            && c.position == ck_vals.iter().take_while(|v| v.is_some()).count()
                            && ck_rels.is_empty() =>
                    {
                        let vals = crate::dml::key_sel_values(c, *op, term, ctx)?;
                        ck_vals[c.position] = Some(vals);
                    }
                    (Kind::Clustering, _) => ck_rels.push(r.clone()),
                    (_, _) => {
                        // One relation may be answered by an index of the matching kind;
                        // any other needs filtering.
                        let indexed = !index_used
                            && def
                                .indexes
                                .iter()
                                .any(|i| &i.column == col && index_serves(&i.kind, &c.ty, *op));
                        if indexed {
                            index_used = true;
                            // An index with a table of its own answers `=` by lookup.
                            let backed = def
                                .indexes
                                .iter()
                                .find(|i| &i.column == col && i.ready && !i.table.is_empty());
                            if let (Some(i), Op::Eq, Some(_)) = (backed, op, &table) {
                                if let Ev::V(v) = values::eval(term, &c.ty, &binds, col)? {
                                    let wire = types::encode(&c.ty, &v)?;
                                    if wire.len() > 65_535 {
                                        return Err(CqlError::invalid(
                                            "Index expression values may not be larger than 64K",
                                        ));
                                    }
                                    if let Some(ixt) = engine.catalog.index_table(&ks, i).await? {
                                        ix_lookup = Some((ixt, wire));
                                    }
                                }
                            }
                        } else {
                            needs_filtering = true;
                        }
                        if matches!(op, Op::Contains | Op::ContainsKey) && !c.ty.is_collection() {
                            return Err(CqlError::invalid(format!(
                                "Cannot use CONTAINS on non-collection column {col}"
                            )));
                        }
                        filters.push(r.clone());
                    }
                }
            }
            Rel::Token {
                cols: tcols,
                op,
                term,
            } => {
                let pk_names: Vec<&str> = def.pk().map(|c| c.name.as_str()).collect();
                let given: Vec<&str> = tcols.iter().map(String::as_str).collect();
                if given != pk_names {
                    let mut sorted = given.clone();
                    sorted.sort_unstable();
                    let distinct = sorted.windows(2).all(|w| w[0] != w[1]);
                    let mut want = pk_names.clone();
                    want.sort_unstable();
                    return Err(CqlError::invalid(if !distinct {
                        "The token() function contains duplicate partition key components"
                            .to_owned()
                    } else if sorted == want {
                        format!(
                            "The token function arguments must be in the partition key order: {}",
                            pk_names.join(", ")
                        )
                    } else if given.len() != pk_names.len()
                        && given.iter().all(|g| pk_names.contains(g))
                    {
                        format!("Invalid number of arguments in call to function token: {} required but {} provided", pk_names.len(), given.len())
                    } else {
                        "The token() function must be applied to all partition key components or none of them".to_owned()
                    }));
                }
                let t = match term {
                    Term::Func(f, args) if f == "token" => {
                        let mut pk = Vec::new();
                        for (c, a) in def.pk().zip(args) {
                            match values::eval(a, &c.ty, &binds, &c.name)? {
                                Ev::V(v) => pk.push(v),
                                _ => {
                                    return Err(CqlError::invalid(
                                        "Invalid null value for partition key token",
                                    ))
                                }
                            }
                        }
                        if pk.len() != def.pk_len() || args.len() != def.pk_len() {
                            return Err(CqlError::invalid(
                                "Invalid number of arguments in call to function token",
                            ));
                        }
                        schema::partition_key(&def, &pk)?.0 as i128
                    }
                    term => {
                        match values::eval(term, &CqlType::Bigint, &binds, "partition key token")? {
                            Ev::V(Value::Int(t)) => t,
                            Ev::Unset => {
                                return Err(CqlError::invalid(
                                    "Invalid unset value for partition key token",
                                ))
                            }
                            _ => {
                                return Err(CqlError::invalid(
                                    "Invalid null value for partition key token",
                                ))
                            }
                        }
                    }
                };
                token_rels.push((*op, t as i64));
            }
            Rel::Multi { cols: mcols, .. } => {
                for (i, n) in mcols.iter().enumerate() {
                    let c = def
                        .col(n)
                        .ok_or_else(|| CqlError::invalid(format!("Undefined column name {n}")))?;
                    if c.kind != Kind::Clustering {
                        return Err(CqlError::invalid(format!("Multi-column relations can only be applied to clustering columns but was applied to: {n}")));
                    }
                    if c.position != i {
                        return Err(CqlError::invalid("Clustering columns must appear in the PRIMARY KEY order in multi-column relations"));
                    }
                }
                ck_rels.push(r.clone());
            }
            Rel::MapEntry { col, .. } => {
                // `m[k] = v` is answered by an entries() index.
                let indexed = !index_used
                    && def
                        .indexes
                        .iter()
                        .any(|i| &i.column == col && i.kind == "entries");
                if indexed {
                    index_used = true;
                } else {
                    needs_filtering = true;
                }
                filters.push(r.clone());
            }
        }
    }
    let pk_full = pk_vals.iter().all(Option::is_some);
    if pk_full {
        ix_lookup = None;
    }
    let pk_some = pk_vals.iter().any(Option::is_some);
    // An equality on an indexed partition key component is answered by its index.
    let pk_indexed = !index_used
        && def.pk().zip(&pk_vals).any(|(c, v)| {
            v.as_ref().is_some_and(|v| v.len() == 1)
                && def.indexes.iter().any(|i| i.column == c.name)
        });
    if (pk_some && !pk_full) || pk_other || table.is_none() {
        if !(pk_indexed && !pk_other && table.is_some()) {
            needs_filtering = true;
        }
        for (c, v) in def.pk().zip(&pk_vals) {
            if let Some(v) = v {
                filters.push(Rel::Col {
                    col: c.name.clone(),
                    op: Op::In,
                    term: Term::List(
                        v.iter()
                            .map(|x| Ok(Term::Encoded(types::encode(&c.ty, x)?)))
                            .collect::<Result<Vec<_>>>()?,
                    ),
                });
            }
        }
    }
    let ck_prefix = ck_vals.iter().take_while(|v| v.is_some()).count();
    // One `=` on an indexed clustering column is answered by its index.
    let ck_restrictions = ck_vals.iter().filter(|v| v.is_some()).count() + ck_rels.len();
    let ck_indexed = !index_used
        && ck_restrictions == 1
        && s.wh.iter().any(|r| {
            matches!(r, Rel::Col { col, op: Op::Eq, .. }
                if def.col(col).is_some_and(|c| c.kind == Kind::Clustering)
                    && def.indexes.iter().any(|i| &i.column == col && i.kind == "values"))
        });
    if (ck_prefix > 0 || !ck_rels.is_empty()) && !pk_full && !ck_indexed {
        needs_filtering = true;
    }
    // A clustering slice may only be on the column after the equality prefix.
    let mut sliced = false;
    for r in &ck_rels {
        if let Rel::Col { col, op, .. } = r {
            if let Some(c) = def.col(col) {
                if c.position > ck_prefix {
                    needs_filtering = true;
                    if pk_full && !s.allow_filtering && table.is_some() {
                        let prev = def
                            .ck()
                            .nth(c.position - 1)
                            .map(|p| p.name.clone())
                            .unwrap_or_default();
                        let prev_restricted = ck_rels
                            .iter()
                            .any(|r| matches!(r, Rel::Col { col, .. } if *col == prev));
                        return Err(CqlError::invalid(if prev_restricted || sliced {
                            format!("Clustering column \"{col}\" cannot be restricted (preceding column \"{prev}\" is restricted by a non-EQ relation)")
                        } else {
                            format!("PRIMARY KEY column \"{col}\" cannot be restricted as preceding column \"{prev}\" is not restricted")
                        }));
                    }
                } else if !matches!(op, Op::Eq | Op::In) {
                    sliced = true;
                }
            }
        }
    }
    if table.is_none() {
        needs_filtering = false;
    }
    if needs_filtering && !s.allow_filtering {
        return Err(filtering_error());
    }
    if !pk_full || table.is_none() {
        // Pinned clustering values become filters for scans.
        for (c, v) in def.ck().zip(&ck_vals) {
            if let Some(v) = v {
                ck_rels.push(Rel::Col {
                    col: c.name.clone(),
                    op: Op::In,
                    term: Term::List(
                        v.iter()
                            .map(|x| Ok(Term::Encoded(types::encode(&c.ty, x)?)))
                            .collect::<Result<Vec<_>>>()?,
                    ),
                });
            }
        }
    }

    // ORDER BY.
    let mut reverse = false;
    if !s.order_by.is_empty() {
        if !pk_full {
            return Err(CqlError::invalid("ORDER BY is only supported when the partition key is restricted by an EQ or an IN."));
        }
        let mut dir = None;
        for (i, (n, desc)) in s.order_by.iter().enumerate() {
            let c = def
                .col(n)
                .ok_or_else(|| CqlError::invalid(format!("Undefined column name {n}")))?;
            if c.kind != Kind::Clustering {
                return Err(CqlError::invalid(format!("Order by is currently only supported on the clustered columns of the PRIMARY KEY, got {n}")));
            }
            if c.position != i
                && !(c.position > i
                    && def
                        .ck()
                        .take(c.position)
                        .skip(i)
                        .all(|p| ck_vals[p.position].as_ref().is_some_and(|v| v.len() == 1)))
            {
                return Err(CqlError::invalid("Order by currently only supports the ordering of columns following their declared order in the PRIMARY KEY"));
            }
            let rev = *desc != c.desc;
            if dir.is_some_and(|d| d != rev) {
                return Err(CqlError::invalid("Unsupported order by relation"));
            }
            dir = Some(rev);
        }
        reverse = dir.unwrap_or(false);
    }

    let page_size = ctx.params.page_size.filter(|p| *p > 0).map(|p| p as usize);
    let limit = int_term(&s.limit, ctx, "[limit]")?;
    let ppl = int_term(&s.per_partition_limit, ctx, "[per_partition_limit]")?;
    let aggregate = s
        .items
        .as_ref()
        .is_some_and(|items| items.iter().any(|i| is_aggregate(&i.sel)));
    if !s.group_by.is_empty() {
        let keys: Vec<&str> = def.pk().chain(def.ck()).map(|c| c.name.as_str()).collect();
        for (i, g) in s.group_by.iter().enumerate() {
            if def.col(g).is_none() {
                return Err(CqlError::invalid(format!("Undefined column name {g}")));
            }
            if keys.get(i) != Some(&g.as_str()) {
                return Err(CqlError::invalid(format!("Group by is currently only supported on the columns of the PRIMARY KEY, got {g}")));
            }
        }
    }
    if s.distinct {
        if let Some(items) = &s.items {
            for i in items {
                if let Selector::Col(c) = &i.sel {
                    if def
                        .col(c)
                        .is_some_and(|c| !matches!(c.kind, Kind::PartitionKey | Kind::Static))
                    {
                        return Err(CqlError::invalid(format!("SELECT DISTINCT queries must only request partition key columns and/or static columns (not {c})")));
                    }
                }
            }
            // A scan of partitions (not pinned ones) must return whole partition keys.
            if !pk_full && items.iter().all(|i| matches!(i.sel, Selector::Col(_))) {
                if let Some(missing) = def.pk().find(|c| {
                    !items
                        .iter()
                        .any(|i| matches!(&i.sel, Selector::Col(n) if *n == c.name))
                }) {
                    return Err(CqlError::invalid(format!(
                        "SELECT DISTINCT queries must request all the partition key columns (missing {})",
                        missing.name
                    )));
                }
            }
        }
        let restricts_rows = s.wh.iter().any(|r| match r {
            Rel::Col { col, .. } | Rel::MapEntry { col, .. } => def
                .col(col)
                .is_some_and(|c| matches!(c.kind, Kind::Clustering | Kind::Regular)),
            Rel::Multi { .. } => true,
            Rel::Token { .. } => false,
        });
        if restricts_rows {
            return Err(CqlError::invalid("SELECT DISTINCT with WHERE clause only supports restriction by partition key and/or static columns."));
        }
    }
    let static_only = ck_prefix == 0 && ck_rels.is_empty() && !filters.iter().any(|f| matches!(f, Rel::Col { col, .. } if def.col(col).is_some_and(|c| c.kind == Kind::Regular)));
    let scan_mode =
        !pk_full && table.is_some() && !aggregate && s.group_by.is_empty() && !s.distinct;

    // Paging state.
    let (mut offset, mut resume): (usize, Option<(usize, u64, Vec<u8>)>) = (0, None);
    let mut resume_pp = 0usize;
    if let Some(ps) = &ctx.params.paging_state {
        match ps.first() {
            Some(0) if ps.len() == 9 => {
                offset = u64::from_be_bytes(ps[1..9].try_into().unwrap_or([0; 8])) as usize
            }
            // 1: a scan's (tablet, rows done, rows of the last partition, next key);
            // 2: an index lookup's (0, rows done, rows of the last partition, last entry).
            Some(&tag @ (1 | 2)) if ps.len() >= 17 && (tag == 1 || ix_lookup.is_some()) => {
                if tag == 1 {
                    // Paging a query begun by a scan, before the index was ready.
                    ix_lookup = None;
                }
                let idx = u32::from_be_bytes(ps[1..5].try_into().unwrap_or([0; 4])) as usize;
                let done = u64::from_be_bytes(ps[5..13].try_into().unwrap_or([0; 8]));
                resume_pp = u32::from_be_bytes(ps[13..17].try_into().unwrap_or([0; 4])) as usize;
                resume = Some((idx, done, ps[17..].to_vec()));
            }
            _ => return Err(CqlError::protocol("Invalid value for the paging state")),
        }
    }

    let keep = |row: &Row| -> Result<bool> {
        if let Some(ck) = &row.ck {
            if !ck_matches(&def, ck, &ck_rels, ctx)? {
                return Ok(false);
            }
        } else if !ck_rels.is_empty() || ck_prefix > 0 {
            return Ok(false);
        }
        for (op, t) in &token_rels {
            let ok = match op {
                Op::Gt => row.token > *t,
                Op::Ge => row.token >= *t,
                Op::Lt => row.token < *t,
                Op::Le => row.token <= *t,
                Op::Eq => row.token == *t,
                _ => {
                    return Err(CqlError::invalid(
                        "Only EQ, IN and slice relations are supported on token()",
                    ))
                }
            };
            if !ok {
                return Ok(false);
            }
        }
        for f in &filters {
            match f {
                Rel::Col { col, op, term } => {
                    let Some(c) = def.col(col) else { continue };
                    let v = row.value(c)?;
                    if !rel_matches(&c.ty, &v, *op, term, &binds, col)? {
                        return Ok(false);
                    }
                }
                Rel::MapEntry { col, key, term } => {
                    let Some(c) = def.col(col) else { continue };
                    let CqlType::Map(kt, vt) = c.ty.base() else {
                        return Err(CqlError::invalid(format!("Column {col} is not a map")));
                    };
                    let Ev::V(k) = values::eval(key, kt, &binds, col)? else {
                        return Ok(false);
                    };
                    let Ev::V(want) = values::eval(term, vt, &binds, col)? else {
                        return Ok(false);
                    };
                    let ok = match row.value(c)? {
                        Value::Map(pairs) => pairs.iter().any(|(a, b)| {
                            types::compare(kt, a, &k).is_eq()
                                && types::compare(vt, b, &want).is_eq()
                        }),
                        _ => false,
                    };
                    if !ok {
                        return Ok(false);
                    }
                }
                _ => {}
            }
        }
        Ok(true)
    };

    let mut rows: Vec<Row>;
    let mut next_state: Option<Vec<u8>> = None;
    if let (true, Some(table), Some((ixt, wire))) = (scan_mode, &table, &ix_lookup) {
        // Index lookup: the rows its entries point at, paged by entry key.
        let (mut done, mut after) = match resume {
            Some((_, d, k)) => (d, Some(k)),
            None => (0, None),
        };
        let want = page_size.unwrap_or(usize::MAX).min(
            limit
                .map(|l| l.saturating_sub(done as usize))
                .unwrap_or(usize::MAX),
        );
        rows = Vec::new();
        let mut per_partition: (Vec<u8>, usize) = match &after {
            Some(e) => {
                let base = crate::index::base_key(e, crate::index::value_prefix(wire).1.len());
                match schema::parse_key(&def, &[base, &[0, 0]].concat()) {
                    Some(p) => (base[..p.partition_len].to_vec(), resume_pp),
                    None => (Vec::new(), 0),
                }
            }
            None => (Vec::new(), 0),
        };
        'entries: loop {
            let (batch, more) = index_page(
                engine,
                &def,
                table,
                ixt,
                wire,
                after.as_deref(),
                static_only,
            )
            .await?;
            let exhausted = !more || batch.is_empty();
            for (entry, found) in batch {
                for r in found {
                    if !keep(&r)? {
                        continue;
                    }
                    if beyond_partition_limit(ppl, &mut per_partition, &r) {
                        continue;
                    }
                    rows.push(r);
                }
                after = Some(entry.clone());
                if rows.len() >= want {
                    // A page ends between entries (a static column's entry brings its whole
                    // partition); a LIMIT cuts exactly.
                    if limit.is_some_and(|l| done as usize + rows.len() >= l) {
                        rows.truncate(want);
                    }
                    done += rows.len() as u64;
                    if limit.is_none_or(|l| (done as usize) < l) {
                        let mut st = vec![2u8];
                        st.extend_from_slice(&0u32.to_be_bytes());
                        st.extend_from_slice(&done.to_be_bytes());
                        st.extend_from_slice(&(per_partition.1 as u32).to_be_bytes());
                        st.extend_from_slice(&entry);
                        next_state = Some(st);
                    }
                    break 'entries;
                }
            }
            if exhausted {
                break;
            }
        }
    } else if let (true, Some(table)) = (scan_mode, &table) {
        // Token-ordered scan, paged by key.
        let (mut idx, mut done, mut start) = match resume {
            Some((i, d, k)) => (i, d, Some(k)),
            None => (0, 0, None),
        };
        let want = page_size.unwrap_or(usize::MAX).min(
            limit
                .map(|l| l.saturating_sub(done as usize))
                .unwrap_or(usize::MAX),
        );
        rows = Vec::new();
        // Rows returned so far from the partition the previous page ended in.
        let mut per_partition: (Vec<u8>, usize) = match &start {
            Some(k) => match schema::parse_key(&def, &[k.as_slice(), &[0, 0]].concat()) {
                Some(p) => (k[..p.partition_len].to_vec(), resume_pp),
                None => (Vec::new(), 0),
            },
            None => (Vec::new(), 0),
        };
        'tablets: while idx < table.tablets.len() && rows.len() < want {
            let mut asm = Assembler::new(&def, static_only);
            if let (Some(k), true) = (&start, def.has_statics()) {
                if let Some(parts) = schema::parse_key(&def, &[k.as_slice(), &[0, 0]].concat())
                    .or_else(|| schema::parse_key(&def, k))
                {
                    let part = &k[..parts.partition_len.min(k.len())];
                    let mut sp = part.to_vec();
                    sp.push(schema::STATIC_MARK);
                    let mut st = HashMap::new();
                    for (sk, sv) in
                        dml::scan_range(engine, table, idx, sp.clone(), dml::prefix_end(&sp))
                            .await?
                    {
                        if let (Some(p), Some(c)) =
                            (schema::parse_key(&def, &sk), Cell::decode(&sv))
                        {
                            st.insert(p.col, c);
                        }
                    }
                    asm.seed_statics(part, parts.pk, parts.token, st);
                }
            }
            let mut from = start.take();
            loop {
                let resp = engine
                    .catalog
                    .client
                    .scan_tablet(table, idx, from.clone(), None, 2000)
                    .await?;
                let more = resp.more;
                let last = resp.kvs.last().map(|kv| kv.key.clone());
                for kv in &resp.kvs {
                    asm.feed(&kv.key, &kv.value);
                }
                let ready: Vec<Row> = if more {
                    std::mem::take(&mut asm.out)
                } else {
                    std::mem::replace(&mut asm, Assembler::new(&def, static_only)).finish()
                };
                for r in ready {
                    if !keep(&r)? {
                        continue;
                    }
                    if beyond_partition_limit(ppl, &mut per_partition, &r) {
                        continue;
                    }
                    rows.push(r);
                    if rows.len() >= want {
                        done += rows.len() as u64;
                        let more_wanted = limit.is_none_or(|l| (done as usize) < l);
                        if more_wanted {
                            // Resume after the last row returned.
                            if let Some(k) = rows.last().and_then(|r| dml::prefix_end(&r.key)) {
                                let mut st = vec![1u8];
                                st.extend_from_slice(&(idx as u32).to_be_bytes());
                                st.extend_from_slice(&done.to_be_bytes());
                                st.extend_from_slice(&(per_partition.1 as u32).to_be_bytes());
                                st.extend_from_slice(&k);
                                next_state = Some(st);
                            }
                        }
                        break 'tablets;
                    }
                }
                match (more, last) {
                    (true, Some(mut k)) => {
                        k.push(0);
                        from = Some(k);
                    }
                    _ => break,
                }
            }
            idx += 1;
        }
    } else {
        // Materialize: virtual tables, pinned partitions, aggregates.
        rows = match &table {
            None => crate::system::rows(engine, &def).await?,
            Some(table) if pk_full => {
                // Partitions of an IN come back in the order of their key values, each once.
                let mut keyed = Vec::new();
                for pk in dml::cartesian(&pk_vals.iter().flatten().cloned().collect::<Vec<_>>()) {
                    let part = schema::partition_key(&def, &pk)?;
                    keyed.push((pk, part));
                }
                keyed.sort_by(|(a, _), (b, _)| {
                    def.pk()
                        .zip(a.iter().zip(b))
                        .map(|(c, (x, y))| types::compare(&c.ty, x, y))
                        .find(|o| o.is_ne())
                        .unwrap_or(std::cmp::Ordering::Equal)
                });
                keyed.dedup_by(|a, b| a.1 .1 == b.1 .1);
                let parts: Vec<_> = keyed.into_iter().map(|(_, part)| part).collect();
                let ck_sets: Vec<Vec<Value>> =
                    ck_vals.iter().take(ck_prefix).flatten().cloned().collect();
                let ck_combos = dml::cartesian(&ck_sets);
                let mut out = Vec::new();
                for (token, partition) in parts {
                    let idx = table.tablet_for_hash(schema::token_hash(token));
                    let mut asm = Assembler::new(&def, static_only);
                    if let Some(rows) = pinned_rows(&def, &partition, ck_prefix, &ck_combos)? {
                        // Whole rows pinned: read their cells by key (cache-served) instead
                        // of scanning the partition.
                        read_pinned(engine, &def, table, idx, &rows, &mut asm).await?;
                    } else if ck_prefix == 0 {
                        for (k, v) in dml::scan_range(
                            engine,
                            table,
                            idx,
                            partition.clone(),
                            dml::prefix_end(&partition),
                        )
                        .await?
                        {
                            asm.feed(&k, &v);
                        }
                    } else {
                        if def.has_statics() {
                            let mut sp = partition.clone();
                            sp.push(schema::STATIC_MARK);
                            for (k, v) in dml::scan_range(
                                engine,
                                table,
                                idx,
                                sp.clone(),
                                dml::prefix_end(&sp),
                            )
                            .await?
                            {
                                asm.feed(&k, &v);
                            }
                        }
                        let mut prefixes = Vec::new();
                        for ck in &ck_combos {
                            let mut p = partition.clone();
                            schema::append_clustering(&def, &mut p, ck)?;
                            prefixes.push(p);
                        }
                        prefixes.sort();
                        prefixes.dedup();
                        for p in prefixes {
                            for (k, v) in
                                dml::scan_range(engine, table, idx, p.clone(), dml::prefix_end(&p))
                                    .await?
                            {
                                asm.feed(&k, &v);
                            }
                        }
                    }
                    out.extend(asm.finish());
                }
                out
            }
            Some(table) if ix_lookup.is_some() => {
                let mut out = Vec::new();
                if let Some((ixt, wire)) = &ix_lookup {
                    let mut after: Option<Vec<u8>> = None;
                    loop {
                        let (batch, more) = index_page(
                            engine,
                            &def,
                            table,
                            ixt,
                            wire,
                            after.as_deref(),
                            static_only,
                        )
                        .await?;
                        after = batch.last().map(|(e, _)| e.clone());
                        out.extend(batch.into_iter().flat_map(|(_, rows)| rows));
                        if !more || after.is_none() {
                            break;
                        }
                    }
                }
                out
            }
            Some(table) => {
                let mut out = Vec::new();
                for idx in 0..table.tablets.len() {
                    let mut asm = Assembler::new(&def, static_only);
                    for (k, v) in dml::scan_range(engine, table, idx, Vec::new(), None).await? {
                        asm.feed(&k, &v);
                    }
                    out.extend(asm.finish());
                }
                out
            }
        };
        let mut kept = Vec::with_capacity(rows.len());
        for r in rows {
            if keep(&r)? {
                kept.push(r);
            }
        }
        rows = kept;
        if reverse
            || (!s.order_by.is_empty()
                && pk_vals.iter().flatten().map(|v| v.len()).product::<usize>() > 1)
        {
            // The whole clustering key in its declared order (a row without one, static
            // only, first), then reversed if the ORDER BY asks for the opposite direction.
            use std::cmp::Ordering;
            let order: Vec<(bool, CqlType)> = def.ck().map(|c| (c.desc, c.ty.clone())).collect();
            rows.sort_by(|a, b| {
                let o = match (&a.ck, &b.ck) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(x), Some(y)) => order
                        .iter()
                        .enumerate()
                        .map(|(p, (desc, ty))| {
                            let o = types::compare(ty, &x[p], &y[p]);
                            if *desc {
                                o.reverse()
                            } else {
                                o
                            }
                        })
                        .find(|o| o.is_ne())
                        .unwrap_or(Ordering::Equal),
                };
                if reverse {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        if let Some(ppl) = ppl {
            let mut last: Vec<u8> = Vec::new();
            let mut n = 0;
            rows.retain(|r| {
                let p = &r.key[..r.partition_len];
                if p == last.as_slice() {
                    n += 1;
                } else {
                    last = p.to_vec();
                    n = 1;
                }
                n <= ppl
            });
        }
        if s.distinct {
            let mut seen: Vec<u8> = Vec::new();
            rows.retain(|r| {
                let p = &r.key[..r.partition_len];
                if p == seen.as_slice() {
                    false
                } else {
                    seen = p.to_vec();
                    true
                }
            });
        }
    }

    // Project.
    let mut out_rows: Vec<Vec<Option<Vec<u8>>>> = Vec::new();
    if aggregate || !s.group_by.is_empty() {
        let items = s.items.clone().unwrap_or_else(|| {
            def.columns
                .iter()
                .map(|c| SelectItem {
                    sel: Selector::Col(c.name.clone()),
                    alias: None,
                })
                .collect()
        });
        let group_len = s.group_by.len();
        let mut groups: Vec<Vec<&Row>> = Vec::new();
        for r in &rows {
            let same = groups.last().and_then(|g| g.first()).is_some_and(|f| {
                (0..group_len).all(|i| {
                    let c = &def.columns[i];
                    f.value(c).ok() == r.value(c).ok()
                })
            });
            if same && group_len > 0 || (group_len == 0 && !groups.is_empty()) {
                if let Some(g) = groups.last_mut() {
                    g.push(r);
                }
            } else {
                groups.push(vec![r]);
            }
        }
        if groups.is_empty() && group_len == 0 {
            groups.push(Vec::new());
        }
        for g in groups {
            let mut out = Vec::new();
            for i in &items {
                out.push(aggregate_item(&def, &i.sel, &g, ctx)?);
            }
            out_rows.push(out);
        }
        if let Some(l) = limit {
            out_rows.truncate(l);
        }
    } else {
        if !scan_mode {
            if let Some(l) = limit {
                rows.truncate(l);
            }
        }
        for r in &rows {
            out_rows.push(project(&def, s, r, ctx)?);
        }
    }
    if s.json {
        out_rows = out_rows
            .into_iter()
            .map(|r| {
                let mut m: Vec<String> = Vec::new();
                let specs = result_columns(
                    &def,
                    &Select {
                        json: false,
                        ..s.clone()
                    },
                )?;
                for (spec, cell) in specs.iter().zip(r) {
                    let v = match cell {
                        Some(b) => values::value_to_json(&spec.ty, &types::decode(&spec.ty, &b)?),
                        None => serde_json::Value::Null,
                    };
                    let key = if spec
                        .name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    {
                        spec.name.clone()
                    } else {
                        format!("\"{}\"", spec.name)
                    };
                    m.push(format!(
                        "{}: {}",
                        serde_json::Value::String(key),
                        values::json_text(&v)
                    ));
                }
                Ok(vec![Some(format!("{{{}}}", m.join(", ")).into_bytes())])
            })
            .collect::<Result<_>>()?;
    }
    if !scan_mode {
        if let Some(ps) = page_size {
            let total = out_rows.len();
            let end = (offset + ps).min(total);
            out_rows = if offset < total {
                out_rows.drain(offset..end).collect()
            } else {
                Vec::new()
            };
            // A full page carries a paging state even when nothing follows (as Cassandra's
            // does): clients read until a page comes back short.
            if end < total || (end > offset && end - offset == ps) {
                let mut st = vec![0u8];
                st.extend_from_slice(&(end as u64).to_be_bytes());
                next_state = Some(st);
            }
        }
    }
    Ok(Outcome::Rows(Rows {
        cols,
        rows: out_rows,
        paging_state: next_state,
    }))
}

/// Whether row `r` is past PER PARTITION LIMIT `ppl`, counting in `per_partition` (the
/// current partition's key and its rows so far).
fn beyond_partition_limit(
    ppl: Option<usize>,
    per_partition: &mut (Vec<u8>, usize),
    r: &Row,
) -> bool {
    let Some(ppl) = ppl else { return false };
    if r.key[..r.partition_len] == per_partition.0[..] {
        per_partition.1 += 1;
    } else {
        *per_partition = (r.key[..r.partition_len].to_vec(), 1);
    }
    per_partition.1 > ppl
}

/// Entries of an index lookup from entry `after` on (a page of 256), each with the rows it
/// points at (read concurrently); and whether more entries may follow.
async fn index_page(
    engine: &Engine,
    def: &TableDef,
    table: &client::Table,
    ixt: &client::Table,
    wire: &[u8],
    after: Option<&[u8]>,
    static_only: bool,
) -> Result<(Vec<(Vec<u8>, Vec<Row>)>, bool)> {
    let (batch, more) = crate::index::entries(engine, ixt, wire, after, 256).await?;
    let fetched = futures::future::join_all(
        batch
            .iter()
            .map(|(_, base)| entry_rows(engine, def, table, base, static_only)),
    )
    .await;
    let mut out = Vec::with_capacity(batch.len());
    for ((entry, _), rows) in batch.into_iter().zip(fetched) {
        out.push((entry, rows?));
    }
    Ok((out, more))
}

/// The rows an index entry points at (base row key `base`): its row, or every row of the
/// partition for an entry of a static column.
async fn entry_rows(
    engine: &Engine,
    def: &TableDef,
    table: &client::Table,
    base: &[u8],
    static_only: bool,
) -> Result<Vec<Row>> {
    let Some(parts) = schema::parse_key(def, &[base, &[0, 0]].concat()) else {
        return Ok(Vec::new());
    };
    let idx = table.tablet_for_hash(schema::token_hash(parts.token));
    let partition = &base[..parts.partition_len];
    let mut ranges = Vec::new();
    if parts.ck.is_none() {
        ranges.push(partition.to_vec());
    } else {
        if def.has_statics() {
            let mut sp = partition.to_vec();
            sp.push(schema::STATIC_MARK);
            ranges.push(sp);
        }
        ranges.push(base.to_vec());
    }
    let mut asm = Assembler::new(def, static_only);
    for r in ranges {
        let end = dml::prefix_end(&r);
        for (k, v) in dml::scan_range(engine, table, idx, r, end).await? {
            asm.feed(&k, &v);
        }
    }
    Ok(asm.finish())
}

fn project(def: &TableDef, s: &Select, r: &Row, ctx: &Ctx) -> Result<Vec<Option<Vec<u8>>>> {
    match &s.items {
        None => def.columns.iter().map(|c| r.bytes(c)).collect(),
        Some(items) => items
            .iter()
            .map(|i| sel_value(def, &i.sel, r, ctx))
            .collect(),
    }
}

fn sel_value(def: &TableDef, sel: &Selector, r: &Row, ctx: &Ctx) -> Result<Option<Vec<u8>>> {
    Ok(match sel {
        Selector::Col(c) => {
            let col = def
                .col(c)
                .ok_or_else(|| CqlError::invalid(format!("Undefined column name {c}")))?;
            r.bytes(col)?
        }
        Selector::Func { name, args, .. } => {
            let col_of = |i: usize| -> Result<&schema::Column> {
                match args.get(i) {
                    Some(Selector::Col(c)) => def
                        .col(c)
                        .ok_or_else(|| CqlError::invalid(format!("Undefined column name {c}"))),
                    _ => Err(CqlError::invalid(format!(
                        "Invalid arguments for function {name}"
                    ))),
                }
            };
            match name.as_str() {
                "writetime" => r
                    .cell(col_of(0)?)
                    .map(|c| c.writetime.to_be_bytes().to_vec()),
                "ttl" => r.cell(col_of(0)?).and_then(|c| {
                    (c.ttl > 0 && c.expire_us > 0).then(|| {
                        let left = ((c.expire_us - ctx.now_us) as f64 / 1e6).ceil().max(0.0) as i32;
                        left.to_be_bytes().to_vec()
                    })
                }),
                "token" => Some(r.token.to_be_bytes().to_vec()),
                "tojson" => {
                    let (_, ty) = sel_spec(def, &args[0])?;
                    let v = match sel_value(def, &args[0], r, ctx)? {
                        Some(b) => values::value_to_json(&ty, &types::decode(&ty, &b)?),
                        None => serde_json::Value::Null,
                    };
                    Some(values::json_text(&v).into_bytes())
                }
                _ => {
                    let (_, out_ty) = sel_spec(def, sel)?;
                    let mut vals = Vec::new();
                    for a in args {
                        let (_, t) = sel_spec(def, a)?;
                        vals.push(match sel_value(def, a, r, ctx)? {
                            Some(b) => types::decode(&t, &b)?,
                            None => Value::Null,
                        });
                    }
                    let v = scalar(name, &vals, ctx)?;
                    if v == Value::Null {
                        None
                    } else {
                        Some(types::encode(&out_ty, &v)?)
                    }
                }
            }
        }
        Selector::Cast(inner, ty) => {
            let (_, from) = sel_spec(def, inner)?;
            let to = types::parse_type(ty, &|_| None)?;
            match sel_value(def, inner, r, ctx)? {
                None => None,
                Some(b) => {
                    let v = types::decode(&from, &b)?;
                    Some(types::encode(&to, &cast(&from, &v, &to)?)?)
                }
            }
        }
        Selector::Field(inner, f) => {
            let (_, t) = sel_spec(def, inner)?;
            match (t.base(), sel_value(def, inner, r, ctx)?) {
                (CqlType::Udt { fields, .. }, Some(b)) => {
                    let i = fields
                        .iter()
                        .position(|(n, _)| n == f)
                        .unwrap_or(usize::MAX);
                    match types::decode(&t, &b)? {
                        Value::Tuple(items) => match items.get(i) {
                            Some(Value::Null) | None => None,
                            Some(v) => Some(types::encode(&fields[i].1, v)?),
                        },
                        _ => None,
                    }
                }
                _ => None,
            }
        }
        Selector::Term(_) => {
            return Err(CqlError::invalid(
                "Literal terms are not supported as selectors",
            ))
        }
    })
}

fn scalar(name: &str, args: &[Value], ctx: &Ctx) -> Result<Value> {
    let ms = |v: &Value| -> Option<i64> {
        match v {
            Value::Uuid(u) => Some(types::uuid_millis(u)),
            Value::Timestamp(t) => Some(*t),
            Value::Date(d) => Some((*d as i64 - values::DATE_EPOCH) * 86_400_000),
            _ => None,
        }
    };
    Ok(match name {
        "totimestamp" | "dateof" => args
            .first()
            .and_then(ms)
            .map(Value::Timestamp)
            .unwrap_or(Value::Null),
        "todate" => args
            .first()
            .and_then(ms)
            .map(|m| Value::Date((m.div_euclid(86_400_000) + values::DATE_EPOCH) as u32))
            .unwrap_or(Value::Null),
        "tounixtimestamp" | "unixtimestampof" => args
            .first()
            .and_then(ms)
            .map(|m| Value::Int(m as i128))
            .unwrap_or(Value::Null),
        "now" | "currenttimeuuid" => Value::Uuid(types::timeuuid_at(ctx.now_ms, 0, None)),
        "uuid" => Value::Uuid(*uuid::Uuid::new_v4().as_bytes()),
        "currenttimestamp" => Value::Timestamp(ctx.now_ms),
        "currentdate" => {
            Value::Date((ctx.now_ms.div_euclid(86_400_000) + values::DATE_EPOCH) as u32)
        }
        n if n.starts_with("blobas") => match args.first() {
            Some(Value::Blob(b)) => types::decode(&types::parse_type(&n[6..], &|_| None)?, b)?,
            _ => Value::Null,
        },
        n if n.ends_with("asblob") => match args.first() {
            Some(Value::Null) | None => Value::Null,
            Some(v) => Value::Blob(types::encode(
                &types::parse_type(&n[..n.len() - 6], &|_| None)?,
                v,
            )?),
        },
        _ => return Err(CqlError::invalid(format!("Unknown function '{name}'"))),
    })
}

fn cast(from: &CqlType, v: &Value, to: &CqlType) -> Result<Value> {
    use CqlType as T;
    Ok(match (v, to.base()) {
        (Value::Null, _) => Value::Null,
        (v, T::Text | T::Ascii) => Value::Text(match v {
            Value::Text(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Double(f) => f.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Timestamp(ms) => values::format_timestamp(*ms),
            Value::Date(d) => values::format_date(*d),
            Value::Time(ns) => values::format_time(*ns),
            Value::Uuid(u) => uuid::Uuid::from_bytes(*u).to_string(),
            Value::Decimal { unscaled, scale } => values::decimal_string(*unscaled, *scale),
            Value::Inet(ip) => ip.to_string(),
            Value::Blob(b) => values::hex(b),
            v => values::value_to_json(from, v).to_string(),
        }),
        (Value::Int(i), T::Float) => Value::Float(*i as f32),
        (Value::Int(i), T::Double) => Value::Double(*i as f64),
        (Value::Int(i), T::Decimal) => Value::Decimal {
            unscaled: *i,
            scale: 0,
        },
        (Value::Int(i), T::Tinyint | T::Smallint | T::Int | T::Bigint | T::Varint) => {
            Value::Int(wrap_int(*i, to))
        }
        (Value::Float(f), T::Double) => Value::Double(*f as f64),
        (Value::Double(f), T::Float) => Value::Float(*f as f32),
        (Value::Float(f), T::Tinyint | T::Smallint | T::Int | T::Bigint | T::Varint) => {
            Value::Int(wrap_int(*f as i128, to))
        }
        (Value::Double(f), T::Tinyint | T::Smallint | T::Int | T::Bigint | T::Varint) => {
            Value::Int(wrap_int(*f as i128, to))
        }
        (Value::Decimal { unscaled, scale }, T::Double) => {
            Value::Double(*unscaled as f64 / 10f64.powi(*scale))
        }
        (Value::Decimal { unscaled, scale }, T::Float) => {
            Value::Float((*unscaled as f64 / 10f64.powi(*scale)) as f32)
        }
        (
            Value::Decimal { unscaled, scale },
            T::Int | T::Bigint | T::Smallint | T::Tinyint | T::Varint,
        ) => Value::Int(wrap_int(
            unscaled
                .checked_div(
                    10i128
                        .checked_pow((*scale).max(0) as u32)
                        .unwrap_or(i128::MAX),
                )
                .unwrap_or(0),
            to,
        )),
        (Value::Float(f), T::Decimal) => {
            let (u, s) = values::parse_decimal(&f.to_string()).unwrap_or((0, 0));
            Value::Decimal {
                unscaled: u,
                scale: s,
            }
        }
        (Value::Double(f), T::Decimal) => {
            let (u, s) = values::parse_decimal(&f.to_string()).unwrap_or((0, 0));
            Value::Decimal {
                unscaled: u,
                scale: s,
            }
        }
        (Value::Uuid(u), T::Timestamp) => Value::Timestamp(types::uuid_millis(u)),
        (Value::Uuid(u), T::Date) => {
            Value::Date((types::uuid_millis(u).div_euclid(86_400_000) + values::DATE_EPOCH) as u32)
        }
        (Value::Timestamp(ms), T::Date) => {
            Value::Date((ms.div_euclid(86_400_000) + values::DATE_EPOCH) as u32)
        }
        (Value::Date(d), T::Timestamp) => {
            Value::Timestamp((*d as i64 - values::DATE_EPOCH) * 86_400_000)
        }
        (v, t) if std::mem::discriminant(from.base()) == std::mem::discriminant(t) => v.clone(),
        _ => {
            return Err(CqlError::invalid(format!(
                "{} cannot be cast to {}",
                from.cql_name(),
                to.cql_name()
            )))
        }
    })
}

fn wrap_int(i: i128, to: &CqlType) -> i128 {
    match to.base() {
        CqlType::Tinyint => i as i8 as i128,
        CqlType::Smallint => i as i16 as i128,
        CqlType::Int => i as i32 as i128,
        CqlType::Bigint | CqlType::Counter => i as i64 as i128,
        _ => i,
    }
}

fn aggregate_item(
    def: &TableDef,
    sel: &Selector,
    rows: &[&Row],
    ctx: &Ctx,
) -> Result<Option<Vec<u8>>> {
    let Selector::Func { name, args, star } = sel else {
        return match rows.first() {
            Some(r) => sel_value(def, sel, r, ctx),
            None => Ok(None),
        };
    };
    if !is_aggregate(sel) {
        return match rows.first() {
            Some(r) => sel_value(def, sel, r, ctx),
            None => Ok(None),
        };
    }
    if name == "count" && (*star || matches!(args.first(), Some(Selector::Term(_)))) {
        return Ok(Some((rows.len() as i64).to_be_bytes().to_vec()));
    }
    let arg = args.first().ok_or_else(|| {
        CqlError::invalid(format!(
            "Invalid number of arguments in call to function {name}"
        ))
    })?;
    let (_, ty) = sel_spec(def, arg)?;
    let mut vals = Vec::new();
    for r in rows {
        if let Some(b) = sel_value(def, arg, r, ctx)? {
            vals.push(types::decode(&ty, &b)?);
        }
    }
    let out_ty = if matches!(ty.base(), CqlType::Counter) {
        CqlType::Bigint
    } else {
        ty.clone()
    };
    let v = match name.as_str() {
        "count" => return Ok(Some((vals.len() as i64).to_be_bytes().to_vec())),
        "min" => vals
            .into_iter()
            .min_by(|a, b| types::compare(&ty, a, b))
            .unwrap_or(Value::Null),
        "max" => vals
            .into_iter()
            .max_by(|a, b| types::compare(&ty, a, b))
            .unwrap_or(Value::Null),
        "sum" | "avg" => {
            let n = vals.len();
            let mut v = match ty.base() {
                CqlType::Float | CqlType::Double => {
                    let s: f64 = vals
                        .iter()
                        .map(|v| match v {
                            Value::Float(f) => *f as f64,
                            Value::Double(f) => *f,
                            _ => 0.0,
                        })
                        .sum();
                    let s = if name == "avg" {
                        if n == 0 {
                            0.0
                        } else {
                            s / n as f64
                        }
                    } else {
                        s
                    };
                    if matches!(ty.base(), CqlType::Float) {
                        Value::Float(s as f32)
                    } else {
                        Value::Double(s)
                    }
                }
                CqlType::Decimal => {
                    let (mut acc, mut scale) = (0i128, 0i32);
                    for v in &vals {
                        if let Value::Decimal { unscaled, scale: s } = v {
                            if *s > scale {
                                acc = acc.saturating_mul(
                                    10i128
                                        .checked_pow(
                                            u32::try_from(*s as i64 - scale as i64)
                                                .unwrap_or(u32::MAX),
                                        )
                                        .unwrap_or(i128::MAX),
                                );
                                scale = *s;
                            }
                            acc = acc.saturating_add(
                                unscaled.saturating_mul(
                                    10i128
                                        .checked_pow(
                                            u32::try_from(scale as i64 - *s as i64)
                                                .unwrap_or(u32::MAX),
                                        )
                                        .unwrap_or(i128::MAX),
                                ),
                            );
                        }
                    }
                    if name == "avg" && n > 0 {
                        let f = acc as f64 / 10f64.powi(scale) / n as f64;
                        let (u, s) = values::parse_decimal(&f.to_string()).unwrap_or((0, 0));
                        Value::Decimal {
                            unscaled: u,
                            scale: s,
                        }
                    } else {
                        Value::Decimal {
                            unscaled: acc,
                            scale,
                        }
                    }
                }
                _ => {
                    let s: i128 = vals
                        .iter()
                        .map(|v| match v {
                            Value::Int(i) => *i,
                            _ => 0,
                        })
                        .fold(0i128, |a, b| a.wrapping_add(b));
                    let s = if name == "avg" {
                        if n == 0 {
                            0
                        } else {
                            s / n as i128
                        }
                    } else {
                        s
                    };
                    Value::Int(wrap_int(s, &out_ty))
                }
            };
            if n == 0 && name == "sum" {
                v = match ty.base() {
                    CqlType::Float => Value::Float(0.0),
                    CqlType::Double => Value::Double(0.0),
                    CqlType::Decimal => Value::Decimal {
                        unscaled: 0,
                        scale: 0,
                    },
                    _ => Value::Int(0),
                };
            }
            v
        }
        _ => Value::Null,
    };
    Ok(if v == Value::Null {
        None
    } else {
        Some(types::encode(&out_ty, &v)?)
    })
}

/// What a slice restriction on a column of type `ty` would compare that CQL cannot order:
/// durations, alone or inside a collection, tuple or UDT.
fn duration_kind(ty: &CqlType) -> Option<&'static str> {
    fn has(ty: &CqlType) -> bool {
        match ty.base() {
            CqlType::Duration => true,
            CqlType::List(t) | CqlType::Set(t) => has(t),
            CqlType::Map(k, v) => has(k) || has(v),
            CqlType::Tuple(ts) => ts.iter().any(has),
            CqlType::Udt { fields, .. } => fields.iter().any(|(_, t)| has(t)),
            _ => false,
        }
    }
    match ty.base() {
        CqlType::Duration => Some("duration columns"),
        t if !has(t) => None,
        CqlType::Tuple(_) => Some("tuples containing durations"),
        CqlType::Udt { .. } => Some("UDTs containing durations"),
        _ => Some("collections containing durations"),
    }
}

/// Whether a secondary index of `kind` on a column of type `ty` answers `op`.
fn index_serves(kind: &str, ty: &CqlType, op: Op) -> bool {
    match op {
        Op::Eq => kind == "full" || (kind == "values" && !ty.is_multicell()),
        Op::Contains => kind == "values" && ty.is_collection(),
        Op::ContainsKey => kind == "keys",
        _ => false,
    }
}
