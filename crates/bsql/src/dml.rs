//! INSERT, UPDATE, DELETE and TRUNCATE.
//!
//! INSERT evaluates its rows (literals directly, other expressions and INSERT ... SELECT
//! through DataFusion), fills defaults, checks NOT NULL and lengths, and writes each row
//! with an if-absent condition (a taken primary key is 23505). UPDATE and DELETE select the
//! affected rows through DataFusion from `__dml__<table>` (which adds each row's key and
//! stored bytes), then write them back with compare-and-set, so a concurrent change to the
//! same row is detected (40001) rather than overwritten.

use std::sync::Arc;

use client::{Condition, KvOp};
use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, RecordBatch};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::sql::sqlparser::ast::{self, Expr, SetExpr, Statement};
use futures::{StreamExt, TryStreamExt};

use crate::access::Access;
use crate::catalog::{Resolved, TableDef};
use crate::ddl::{self, ident};
use crate::error::{SqlError, SqlResult};
use crate::provider::{DML_PREFIX, KEY_COLUMN, VALUE_COLUMN};
use crate::row::{self, Datum, Row};
use crate::session::{parse, Output, Session, TMP_CATALOG, TMP_SCHEMA};
use crate::types::SqlType;

/// Writes in flight at once for one statement.
const WRITE_CONCURRENCY: usize = 64;
/// Ops per write request when a statement writes many rows to one tablet.
const OPS_PER_WRITE: usize = 1000;

/// Quote an identifier for SQL text we generate.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A literal's value without planning, or `None` if the expression needs evaluation.
pub fn literal(e: &Expr) -> Option<ScalarValue> {
    match e {
        Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => Some(ScalarValue::Utf8(Some(n.clone()))),
            ast::Value::SingleQuotedString(s) => Some(ScalarValue::Utf8(Some(s.clone()))),
            ast::Value::Boolean(b) => Some(ScalarValue::Boolean(Some(*b))),
            ast::Value::Null => Some(ScalarValue::Null),
            _ => None,
        },
        Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                ast::Value::Number(n, _) => Some(ScalarValue::Utf8(Some(format!("-{n}")))),
                _ => None,
            },
            _ => None,
        },
        Expr::Nested(inner) => literal(inner),
        // A bound parameter ('text'::type): the column's type decides the value.
        Expr::Cast { expr, .. } => match literal(expr)? {
            v @ (ScalarValue::Utf8(_) | ScalarValue::Null) => Some(v),
            _ => None,
        },
        _ => None,
    }
}

/// The value of a clock function (`now()`, `CURRENT_TIMESTAMP`, `LOCALTIMESTAMP`,
/// `CURRENT_DATE` ...) stored into a column of type `ty`, without planning; `None` for
/// anything else (then the planner evaluates it).
fn clock_datum(e: &Expr, ty: SqlType) -> Option<Datum> {
    let Expr::Function(f) = e else { return None };
    let no_args = match &f.args {
        ast::FunctionArguments::None => true,
        ast::FunctionArguments::List(l) => l.args.is_empty(),
        ast::FunctionArguments::Subquery(_) => false,
    };
    if !no_args || f.over.is_some() || f.filter.is_some() || f.name.0.len() != 1 {
        return None;
    }
    let name = f.name.0[0].as_ident()?.value.to_ascii_lowercase();
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_micros() as i64;
    match (name.as_str(), ty) {
        (
            "now"
            | "current_timestamp"
            | "localtimestamp"
            | "transaction_timestamp"
            | "statement_timestamp",
            SqlType::Timestamp | SqlType::TimestampTz,
        ) => Some(Datum::Int(micros)),
        ("current_date", SqlType::Date) => Some(Datum::Int(micros.div_euclid(86_400_000_000))),
        _ => None,
    }
}

fn is_default(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
}

/// Store a scalar into column `col` of `def`, checking its length limit.
pub fn to_datum(def: &TableDef, col: usize, v: &ScalarValue) -> SqlResult<Datum> {
    let c = &def.columns[col];
    if v.is_null() {
        return Ok(Datum::Null);
    }
    let d = if c.ty == SqlType::Bytea {
        match v {
            ScalarValue::Utf8(Some(s)) => Datum::Bytes(parse_bytea(s)?),
            other => row::datum_from_any_scalar(other, c.ty)?,
        }
    } else if c.ty == SqlType::Bool {
        match v {
            ScalarValue::Utf8(Some(s)) => Datum::Bool(parse_bool(s)?),
            other => row::datum_from_any_scalar(other, c.ty)?,
        }
    } else if matches!(c.ty, SqlType::Float4 | SqlType::Float8) {
        match v {
            ScalarValue::Utf8(Some(s)) => {
                let real = c.ty == SqlType::Float4;
                let f = crate::literals::parse_float(s, real)?;
                Datum::Float(if real { f64::from(f as f32) } else { f })
            }
            other => row::datum_from_any_scalar(other, c.ty)?,
        }
    } else if let Some(n) = plain_int(v).filter(|n| {
        // The common case (a bound parameter's text) without an Arrow cast; anything
        // unusual, out of range included, takes the cast and its errors.
        c.ty.int_range()
            .is_some_and(|(lo, hi)| (lo..=hi).contains(n))
    }) {
        Datum::Int(n)
    } else {
        match (c.ty, row::datum_from_any_scalar(v, c.ty)?) {
            (SqlType::Name, Datum::Text(t)) => Datum::Text(crate::types::name_in(&t)),
            (SqlType::Path, Datum::Text(t)) => Datum::Text(crate::types::path_in(&t)?),
            (_, d) => d,
        }
    };
    fit_len(def, col, d)
}

/// `v` as an integer when it is one already or text of only an optional `-` and digits.
fn plain_int(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::Int64(Some(n)) => Some(*n),
        ScalarValue::Int32(Some(n)) => Some(i64::from(*n)),
        ScalarValue::Utf8(Some(s)) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            s.parse().ok()
        }
        _ => None,
    }
}

/// A varchar(n) or char(n) value cut to its length: only trailing blanks may be cut (as
/// PostgreSQL does), anything else is 22001.
fn fit_len(def: &TableDef, col: usize, d: Datum) -> SqlResult<Datum> {
    let c = &def.columns[col];
    if let (Some(max), Datum::Text(s)) = (c.len, &d) {
        let n = s.chars().count();
        if n > max as usize && s.chars().skip(max as usize).all(|ch| ch == ' ') {
            return Ok(Datum::Text(s.chars().take(max as usize).collect()));
        }
        if n > max as usize {
            let ty = if c.ty == SqlType::Bpchar {
                "character"
            } else {
                "character varying"
            };
            return Err(SqlError::new(
                "22001",
                format!("value too long for type {ty}({max})"),
            ));
        }
    }
    Ok(d)
}

/// PostgreSQL boolean input.
pub fn parse_bool(s: &str) -> SqlResult<bool> {
    crate::literals::parse_bool(s).ok_or_else(|| crate::literals::bad_bool(s))
}

/// PostgreSQL bytea input (`\x` hex, or the escape format's plain bytes).
pub fn parse_bytea(s: &str) -> SqlResult<Vec<u8>> {
    if let Some(hex) = s.strip_prefix("\\x") {
        let hex: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !hex.len().is_multiple_of(2) {
            return Err(SqlError::invalid_input(
                "invalid hexadecimal data: odd number of digits",
            ));
        }
        hex.chunks(2)
            .map(|p| {
                std::str::from_utf8(p)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .ok_or_else(|| SqlError::invalid_input("invalid hexadecimal digit"))
            })
            .collect()
    } else {
        Ok(s.as_bytes().to_vec())
    }
}

/// Resolve the table an INSERT/UPDATE/DELETE names.
pub async fn target(s: &Session, name: &ast::ObjectName) -> SqlResult<Arc<Resolved>> {
    let (schema, table) = ddl::table_name(name)?;
    s.catalog.require(&s.db, &schema, &table).await
}

/// Evaluate expressions (no FROM) through DataFusion; one array per expression.
async fn eval_exprs(s: &Session, exprs: &[&Expr]) -> SqlResult<Vec<ArrayRef>> {
    let sql = format!(
        "SELECT {}",
        exprs
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{e} AS \"__e{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let stmt = parse(&sql)?
        .pop()
        .ok_or_else(|| SqlError::internal("empty expression list"))?;
    let (_, batches) = s.run_datafusion(stmt).await?;
    let batch = batches
        .into_iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| SqlError::internal("expression produced no row"))?;
    Ok(batch.columns().to_vec())
}

/// Fill defaults of the columns `row` leaves unset (`given[i]` false).
async fn fill_defaults(
    s: &Session,
    def: &TableDef,
    row: &mut Row,
    given: &[bool],
) -> SqlResult<()> {
    for (i, c) in def.columns.iter().enumerate() {
        if given[i] {
            continue;
        }
        let Some(default) = &c.default else { continue };
        row[i] = if let Some(seq) = default
            .strip_prefix("nextval('")
            .and_then(|r| r.strip_suffix("')"))
        {
            Datum::Int(s.catalog.nextval(&s.db, seq).await?)
        } else {
            let e = parse(&format!("SELECT {default}"))?;
            let expr = match e.first() {
                Some(Statement::Query(q)) => match q.body.as_ref() {
                    SetExpr::Select(sel) => match sel.projection.first() {
                        Some(ast::SelectItem::UnnamedExpr(e)) => e.clone(),
                        _ => return Err(SqlError::internal("bad default")),
                    },
                    _ => return Err(SqlError::internal("bad default")),
                },
                _ => return Err(SqlError::internal("bad default")),
            };
            match literal(&expr) {
                Some(v) => to_datum(def, i, &v)?,
                None => match clock_datum(&expr, c.ty) {
                    Some(d) => d,
                    None => {
                        let arrays = eval_exprs(s, &[&expr]).await?;
                        row::datum_from_array(&arrays[0], 0, c.ty)?
                    }
                },
            }
        };
    }
    Ok(())
}

/// Check NOT NULL constraints.
pub fn check_not_null(def: &TableDef, row: &Row) -> SqlResult<()> {
    for (c, d) in def.columns.iter().zip(row) {
        if !c.nullable && d.is_null() {
            return Err(SqlError::new(
                "23502",
                format!(
                    "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                    c.name, def.name
                ),
            )
            .with_detail(failing_row(def, row)));
        }
    }
    Ok(())
}

/// PostgreSQL's DETAIL for a row that breaks a constraint: `Failing row contains (1, null).`
pub fn failing_row(def: &TableDef, row: &Row) -> String {
    let values: Vec<String> = def
        .columns
        .iter()
        .zip(row)
        .map(|(c, d)| {
            if d.is_null() {
                "null".to_owned()
            } else {
                row::datum_text(d, c.ty)
            }
        })
        .collect();
    format!("Failing row contains ({}).", values.join(", "))
}

/// The storage key of a new row (a hidden, insertion-ordered id for tables without a
/// primary key).
fn new_key(def: &TableDef, row: &Row) -> Vec<u8> {
    if def.pk.is_empty() {
        hidden_row_id()
    } else {
        row::encode_key(def, row)
    }
}

/// A hidden row id for a table without a primary key: 8 bytes of a per-process clock in
/// microseconds that never repeats or goes back, then 8 random bytes (unique across
/// servers). Such tables are one range tablet, so a scan returns rows in the order they
/// were inserted, as PostgreSQL's heap does for a table that was only appended to.
pub(crate) fn hidden_row_id() -> Vec<u8> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    let id = loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(seen) => prev = seen,
        }
    };
    let mut key = Vec::with_capacity(16);
    key.extend_from_slice(&id.to_be_bytes());
    key.extend_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
    key
}

/// 23505 for the primary key of `def`, with the key of `row` as DETAIL when it is known.
fn duplicate(def: &TableDef, row: Option<&Row>) -> SqlError {
    let e = SqlError::new(
        "23505",
        format!(
            "duplicate key value violates unique constraint \"{}_pkey\"",
            def.name
        ),
    );
    match row {
        Some(row) if !def.pk.is_empty() => e.with_detail(format!(
            "{} already exists.",
            row::key_detail(def, row, &def.pk)
        )),
        _ => e,
    }
}

/// Which of `ops` (if-absent puts of `rows`, in order) found its key taken, after a write
/// of them failed: one whose key an earlier op of the statement has, or one whose stored
/// value is not what this statement wrote (its other groups' writes may be buffered).
async fn taken_row<'a>(
    access: &Access,
    r: &Resolved,
    keys: &[Vec<u8>],
    values: &[Vec<u8>],
    rows: &'a [Row],
) -> SqlResult<Option<&'a Row>> {
    let mut seen = std::collections::HashSet::new();
    for (i, k) in keys.iter().enumerate() {
        if !seen.insert(k) {
            return Ok(rows.get(i));
        }
    }
    let stored = access.get_many(&r.table, keys).await?;
    let mut fallback = None;
    for (i, v) in stored.iter().enumerate() {
        match v {
            Some(v) if *v != values[i] => return Ok(rows.get(i)),
            Some(_) => {
                fallback.get_or_insert(i);
            }
            None => {}
        }
    }
    Ok(fallback.and_then(|i| rows.get(i)))
}

pub fn serialization_failure() -> SqlError {
    SqlError::new(
        "40001",
        "could not serialize access due to concurrent update",
    )
}

/// INSERT.
pub async fn insert(s: &Session, ins: &ast::Insert) -> SqlResult<Output> {
    let ast::TableObject::TableName(name) = &ins.table else {
        return Err(SqlError::unsupported("INSERT into a table function"));
    };
    let r = target(s, name).await?;
    let def = r.def.clone();
    let targets: Vec<usize> = if ins.columns.is_empty() {
        (0..def.columns.len()).collect()
    } else {
        ins.columns
            .iter()
            .map(|c| {
                let n =
                    c.0.last()
                        .and_then(|p| p.as_ident())
                        .map(ident)
                        .unwrap_or_default();
                def.column(&n).ok_or_else(|| {
                    SqlError::new(
                        "42703",
                        format!("column \"{n}\" of relation \"{}\" does not exist", def.name),
                    )
                })
            })
            .collect::<SqlResult<_>>()?
    };
    let mut do_update: Option<&ast::DoUpdate> = None;
    let mut arbiter: Option<usize> = None;
    let do_nothing = match &ins.on {
        None => false,
        Some(ast::OnInsert::OnConflict(oc)) => match &oc.action {
            ast::OnConflictAction::DoNothing => true,
            ast::OnConflictAction::DoUpdate(u) => {
                arbiter = check_conflict_target(&r, oc.conflict_target.as_ref())?;
                do_update = Some(u);
                true
            }
        },
        Some(_) => return Err(SqlError::unsupported("this INSERT clause")),
    };

    // The rows, as (values, which columns were given).
    let mut rows: Vec<(Row, Vec<bool>)> = Vec::new();
    let ncols = def.columns.len();
    match ins.source.as_deref() {
        None => rows.push((vec![Datum::Null; ncols], vec![false; ncols])),
        Some(q) => match q.body.as_ref() {
            SetExpr::Values(values) if q.order_by.is_none() && q.limit_clause.is_none() => {
                for exprs in &values.rows {
                    if exprs.len() > targets.len() {
                        return Err(SqlError::syntax(
                            "INSERT has more expressions than target columns",
                        )
                        .at_node(&exprs[targets.len()]));
                    }
                    // With a column list, every listed column needs a value.
                    if exprs.len() < targets.len() && !ins.columns.is_empty() {
                        return Err(SqlError::syntax(
                            "INSERT has more target columns than expressions",
                        )
                        .at_node(&ins.columns[exprs.len()]));
                    }
                    let mut row = vec![Datum::Null; ncols];
                    let mut given = vec![false; ncols];
                    let mut pending = Vec::new();
                    for (e, &col) in exprs.iter().zip(&targets) {
                        if is_default(e) {
                            continue;
                        }
                        given[col] = true;
                        match literal(e) {
                            Some(v) => {
                                // A literal that is not valid input: PostgreSQL points at it.
                                row[col] = to_datum(&def, col, &v).map_err(|err| {
                                    if matches!(err.code, "22P02" | "22003") {
                                        err.at_node(e)
                                    } else {
                                        err
                                    }
                                })?
                            }
                            None => match clock_datum(e, def.columns[col].ty) {
                                Some(d) => row[col] = d,
                                None => pending.push((col, e)),
                            },
                        }
                    }
                    if !pending.is_empty() {
                        let exprs: Vec<&Expr> = pending.iter().map(|(_, e)| *e).collect();
                        let arrays = eval_exprs(s, &exprs).await?;
                        for ((col, _), a) in pending.iter().zip(arrays) {
                            row[*col] = cell(&def, *col, &a, 0)?;
                        }
                    }
                    rows.push((row, given));
                }
            }
            _ => {
                let (_, batches) = s
                    .run_datafusion(Statement::Query(Box::new(q.clone())))
                    .await?;
                for b in &batches {
                    if b.num_columns() > targets.len() {
                        return Err(SqlError::syntax(
                            "INSERT has more expressions than target columns",
                        ));
                    }
                    for i in 0..b.num_rows() {
                        let mut row = vec![Datum::Null; ncols];
                        let mut given = vec![false; ncols];
                        for (j, &col) in targets.iter().enumerate().take(b.num_columns()) {
                            given[col] = true;
                            row[col] = cell(&def, col, b.column(j), i)?;
                        }
                        rows.push((row, given));
                    }
                }
            }
        },
    }

    let alias = ins.table_alias.as_ref().map(|a| ident(&a.alias));
    if let Some(u) = do_update {
        // Errors in the DO UPDATE clause fail the statement before anything is written.
        upsert(s, &r, alias.clone(), &[], &[], u, arbiter, true).await?;
    }
    let (mut rows, taken) = write_new_rows_arbiter(
        s,
        &s.access,
        &r,
        rows,
        do_nothing,
        do_update.is_some(),
        arbiter,
    )
    .await?;
    if let (Some(u), false) = (do_update, taken.is_empty()) {
        rows.extend(upsert(s, &r, alias, &rows, &taken, u, arbiter, false).await?);
    }
    match &ins.returning {
        Some(items) => returning(s, &def, &rows, items, "INSERT 0").await,
        None => Ok(Output::Command(format!("INSERT 0 {}", rows.len()))),
    }
}

/// Fill defaults, check constraints and write new rows (if-absent); returns the rows
/// written and the rows whose key was taken. With `do_nothing`, those are skipped; else a
/// taken key is 23505. With `distinct_keys` (ON CONFLICT DO UPDATE), two rows with one key
/// are 21000, before anything is written.
pub async fn write_new_rows(
    s: &Session,
    access: &Access,
    r: &Arc<Resolved>,
    rows: Vec<(Row, Vec<bool>)>,
    do_nothing: bool,
    distinct_keys: bool,
) -> SqlResult<(Vec<Row>, Vec<Row>)> {
    write_new_rows_arbiter(s, access, r, rows, do_nothing, distinct_keys, None).await
}

/// [`write_new_rows`] where a conflict is decided by `arbiter` (see
/// [`check_conflict_target`]; `None`: the primary key).
async fn write_new_rows_arbiter(
    s: &Session,
    access: &Access,
    r: &Arc<Resolved>,
    rows: Vec<(Row, Vec<bool>)>,
    do_nothing: bool,
    distinct_keys: bool,
    arbiter: Option<usize>,
) -> SqlResult<(Vec<Row>, Vec<Row>)> {
    let def = &r.def;
    let mut written = Vec::with_capacity(rows.len());
    let mut ops = Vec::with_capacity(rows.len());
    for (mut row, given) in rows {
        fill_defaults(s, def, &mut row, &given).await?;
        check_not_null(def, &row)?;
        let key = new_key(def, &row);
        // A hidden row id is unique: nothing to check (inside a block, a check is a read).
        let condition = if def.pk.is_empty() {
            Condition::None
        } else {
            Condition::IfAbsent
        };
        ops.push(KvOp {
            value: row::encode_value(def, &row),
            key,
            condition: condition as i32,
            ..Default::default()
        });
        written.push(row);
    }
    check_constraints(s, def, &written).await?;
    if !def.foreign_keys.is_empty() {
        let refs: Vec<&Row> = written.iter().collect();
        Box::pin(crate::foreign::check_parents(s, access, r, &refs)).await?;
    }
    if distinct_keys {
        let cols = arbiter_columns(r, arbiter);
        let mut keys: Vec<Vec<u8>> = written
            .iter()
            .filter_map(|row| row::key_tuple(row, &cols))
            .collect();
        if arbiter.is_none() {
            keys = ops.iter().map(|op| op.key.clone()).collect();
        }
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return Err(affect_twice());
        }
    }
    let applied = if !r.indexes.is_empty() {
        let conflicts = if !distinct_keys {
            Conflicts::Any
        } else {
            match arbiter {
                Some(i) => Conflicts::Index(i),
                None => Conflicts::PrimaryKey,
            }
        };
        write_indexed_rows(access, r, ops, &written, do_nothing, conflicts).await?
    } else if do_nothing {
        // Row by row, so one taken key skips only that row.
        futures::stream::iter(ops.into_iter().map(|op| {
            let r = r.clone();
            async move {
                let key = op.key.clone();
                access.write(&r.table, &key, vec![op]).await
            }
        }))
        .buffered(WRITE_CONCURRENCY)
        .try_collect::<Vec<bool>>()
        .await?
    } else {
        let keys: Vec<Vec<u8>> = ops.iter().map(|op| op.key.clone()).collect();
        let values: Vec<Vec<u8>> = ops.iter().map(|op| op.value.clone()).collect();
        if !write_grouped(access, r, ops).await? {
            let row = taken_row(access, r, &keys, &values, &written).await?;
            return Err(duplicate(def, row));
        }
        vec![true; written.len()]
    };
    let (mut new, mut taken) = (Vec::new(), Vec::new());
    for (row, a) in written.into_iter().zip(applied) {
        if a {
            new.push(row);
        } else {
            taken.push(row);
        }
    }
    Ok((new, taken))
}

/// [`write_new_rows`]' writes for a table with indexes: the rows, then their index
/// entries. With `do_nothing`, row by row, and a row whose key is taken is skipped, as is
/// one that would duplicate a unique index if `skip_index_conflicts`; returns which rows
/// were written.
async fn write_indexed_rows(
    access: &Access,
    r: &Resolved,
    ops: Vec<KvOp>,
    rows: &[Row],
    do_nothing: bool,
    conflicts: Conflicts,
) -> SqlResult<Vec<bool>> {
    if !do_nothing {
        let keys: Vec<Vec<u8>> = ops.iter().map(|op| op.key.clone()).collect();
        let values: Vec<Vec<u8>> = ops.iter().map(|op| op.value.clone()).collect();
        if !write_grouped(access, r, ops).await? {
            let row = taken_row(access, r, &keys, &values, rows).await?;
            return Err(duplicate(&r.def, row));
        }
        let changes: Vec<crate::index::Change> = keys
            .iter()
            .zip(rows)
            .map(|(k, row)| (None, Some((&k[..], row))))
            .collect();
        Box::pin(crate::index::maintain(access, &r.def, &r.indexes, &changes)).await?;
        return Ok(vec![true; rows.len()]);
    }
    let mut applied = Vec::with_capacity(rows.len());
    'rows: for (op, row) in ops.into_iter().zip(rows) {
        let key = op.key.clone();
        let value = op.value.clone();
        let sp = access.savepoint().await;
        if !access.write(&r.table, &key, vec![op]).await? {
            if matches!(conflicts, Conflicts::Index(_)) {
                let row = taken_row(access, r, &[key], &[value], std::slice::from_ref(row)).await?;
                return Err(duplicate(&r.def, row));
            }
            applied.push(false);
            continue;
        }
        let change = [(None, Some((&key[..], row)))];
        for (i, ix) in r.indexes.iter().enumerate() {
            let one = std::slice::from_ref(ix);
            match Box::pin(crate::index::maintain(access, &r.def, one, &change)).await {
                Ok(()) => {}
                Err(e)
                    if e.code == "23505"
                        && (conflicts == Conflicts::Any || conflicts == Conflicts::Index(i)) =>
                {
                    match sp {
                        Some(sp) => access.rollback_to(sp).await,
                        None => return Err(e),
                    }
                    applied.push(false);
                    continue 'rows;
                }
                Err(e) => return Err(e),
            }
        }
        applied.push(true);
    }
    Ok(applied)
}

/// Which conflicts skip a row of an `ON CONFLICT` insert (the others are errors).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Conflicts {
    /// DO NOTHING without a target: any unique constraint.
    Any,
    /// DO UPDATE on the primary key.
    PrimaryKey,
    /// DO UPDATE on the unique index at this position of `Resolved::indexes`.
    Index(usize),
}

fn affect_twice() -> SqlError {
    SqlError::new(
        "21000",
        "ON CONFLICT DO UPDATE command cannot affect row a second time",
    )
}

/// `ON CONFLICT (...)` of a DO UPDATE must name the primary key (the one unique constraint
/// enforced), by its columns or as `ON CONSTRAINT <table>_pkey`.
/// The arbiter of an `ON CONFLICT ... DO UPDATE`: `None` for the primary key, or the
/// position in `r.indexes` of the unique index whose columns (or constraint name) the
/// target names.
fn check_conflict_target(
    r: &Resolved,
    target: Option<&ast::ConflictTarget>,
) -> SqlResult<Option<usize>> {
    let def = &r.def;
    let no_match = || {
        SqlError::new(
            "42P10",
            "there is no unique or exclusion constraint matching the ON CONFLICT specification",
        )
    };
    let sorted_names = |cols: &mut dyn Iterator<Item = usize>| {
        let mut v: Vec<String> = cols.map(|i| def.columns[i].name.clone()).collect();
        v.sort();
        v
    };
    match target {
        None => Err(SqlError::syntax(
            "ON CONFLICT DO UPDATE requires inference specification or constraint name",
        )),
        Some(ast::ConflictTarget::Columns(cols)) => {
            let mut given: Vec<String> = cols.iter().map(ident).collect();
            given.sort();
            if !def.pk.is_empty() && given == sorted_names(&mut def.pk.iter().copied()) {
                return Ok(None);
            }
            r.indexes
                .iter()
                .position(|ix| {
                    ix.def.unique && given == sorted_names(&mut ix.columns.iter().map(|(c, _)| *c))
                })
                .map(Some)
                .ok_or_else(no_match)
        }
        Some(ast::ConflictTarget::OnConstraint(name)) => {
            let n = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(ident)
                .unwrap_or_default();
            if n == format!("{}_pkey", def.name) && !def.pk.is_empty() {
                return Ok(None);
            }
            r.indexes
                .iter()
                .position(|ix| ix.def.unique && ix.def.constraint && ix.def.name == n)
                .map(Some)
                .ok_or_else(|| {
                    SqlError::new(
                        "42704",
                        format!(
                            "constraint \"{n}\" for table \"{}\" does not exist",
                            def.name
                        ),
                    )
                })
        }
    }
}

/// The columns that decide a conflict: the primary key's, or the arbiter index's.
fn arbiter_columns(r: &Resolved, arbiter: Option<usize>) -> Vec<usize> {
    match arbiter.and_then(|i| r.indexes.get(i)) {
        Some(ix) => ix.columns.iter().map(|(c, _)| *c).collect(),
        None => r.def.pk.clone(),
    }
}

/// The DO UPDATE of `INSERT ... ON CONFLICT`: the proposed rows whose key was `taken`
/// update the stored rows, run as `UPDATE t SET ... FROM excluded WHERE t.pk =
/// excluded.pk [AND cond]` over a temporary `excluded` table (so a bare column name that
/// both have is ambiguous, as in PostgreSQL). Returns the rows as updated.
#[allow(clippy::too_many_arguments)]
async fn upsert(
    s: &Session,
    r: &Arc<Resolved>,
    alias: Option<String>,
    inserted: &[Row],
    taken: &[Row],
    u: &ast::DoUpdate,
    arbiter: Option<usize>,
    plan_only: bool,
) -> SqlResult<Vec<Row>> {
    let def = &r.def;
    let arbiter_cols = arbiter_columns(r, arbiter);
    // One statement may not both insert and update a row, or update it twice.
    let mut keys: Vec<Vec<u8>> = inserted
        .iter()
        .chain(taken)
        .map(|row| match arbiter {
            None => new_key(def, row),
            Some(_) => row::key_tuple(row, &arbiter_cols).unwrap_or_else(|| new_key(def, row)),
        })
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    if keys.len() != n {
        return Err(affect_twice());
    }
    let alias = alias.unwrap_or_else(|| def.name.clone());
    let (tmp_ref, tmp_name) = register_rows(s, def, taken, "__excluded_")?;
    let mut sets = Vec::new();
    for a in &u.assignments {
        sets.push(a.to_string());
    }
    let mut cond: Vec<String> = arbiter_cols
        .iter()
        .map(|&i| {
            let c = quote(&def.columns[i].name);
            format!("{}.{c} = \"excluded\".{c}", quote(&alias))
        })
        .collect();
    if let Some(w) = &u.selection {
        cond.push(format!("({w})"));
    }
    let sql = format!(
        "UPDATE {}.{} AS {} SET {} FROM {tmp_name} AS \"excluded\" WHERE {}",
        quote(&def.schema),
        quote(&def.name),
        quote(&alias),
        sets.join(", "),
        cond.join(" AND ")
    );
    let result = async {
        let Some(Statement::Update(upd)) = parse(&sql)?.pop() else {
            return Err(SqlError::internal("ON CONFLICT DO UPDATE: no UPDATE"));
        };
        if plan_only {
            // The same names and expressions, planned over the (empty) excluded table.
            let check = format!(
                "SELECT {} FROM {}.{} AS {}, {tmp_name} AS \"excluded\" WHERE {}",
                upd.assignments
                    .iter()
                    .map(|a| format!("({})", a.value))
                    .collect::<Vec<_>>()
                    .join(", "),
                quote(&def.schema),
                quote(&def.name),
                quote(&alias),
                cond.join(" AND ")
            );
            let stmt = parse(&check)?
                .pop()
                .ok_or_else(|| SqlError::internal("empty DO UPDATE check"))?;
            s.plan_only(stmt).await?;
            return Ok(Vec::new());
        }
        Ok(update_rows(s, &upd).await?.1)
    }
    .await;
    let _ = s.ctx.deregister_table(tmp_ref);
    result
}

/// Store element `i` of `a` into column `col`.
fn cell(def: &TableDef, col: usize, a: &ArrayRef, i: usize) -> SqlResult<Datum> {
    to_datum(def, col, &ScalarValue::try_from_array(a, i)?)
}

/// Write ops grouped by tablet (each group atomically, groups concurrently); false if an
/// op's condition failed (then its group wrote nothing).
async fn write_grouped(access: &Access, r: &Resolved, ops: Vec<KvOp>) -> SqlResult<bool> {
    let mut groups: std::collections::BTreeMap<usize, Vec<KvOp>> = Default::default();
    for op in ops {
        groups
            .entry(r.table.tablet_for(&op.key))
            .or_default()
            .push(op);
    }
    let mut batches = Vec::new();
    for (_, ops) in groups {
        let mut ops = ops;
        while !ops.is_empty() {
            let rest = ops.split_off(ops.len().min(OPS_PER_WRITE));
            batches.push(std::mem::replace(&mut ops, rest));
        }
    }
    let results: Vec<bool> = futures::stream::iter(batches.into_iter().map(|ops| async move {
        let key = ops[0].key.clone();
        access.write(&r.table, &key, ops).await
    }))
    .buffer_unordered(WRITE_CONCURRENCY)
    .try_collect()
    .await?;
    Ok(results.into_iter().all(|a| a))
}

/// The table's CHECK constraints over new `rows` (full rows of `def`): one that is false
/// for a row (NULL passes, as in PostgreSQL) is 23514, naming the constraint. Evaluated by
/// DataFusion over the rows as a temporary table, one query for all constraints and rows.
pub async fn check_constraints(s: &Session, def: &TableDef, rows: &[Row]) -> SqlResult<()> {
    if def.checks.is_empty() || rows.is_empty() {
        return Ok(());
    }
    let (tmp_ref, tmp_name) = register_rows(s, def, rows, "__check_")?;
    let items: Vec<String> = def
        .checks
        .iter()
        .enumerate()
        .map(|(i, c)| format!("bool_or(({c}) IS FALSE) AS \"c{i}\""))
        .collect();
    let sql = format!(
        "SELECT {} FROM {tmp_name} AS {}",
        items.join(", "),
        quote(&def.name)
    );
    let result = async {
        let stmt = parse(&sql)?
            .pop()
            .ok_or_else(|| SqlError::internal("empty CHECK query"))?;
        s.run_datafusion(stmt).await
    }
    .await;
    let _ = s.ctx.deregister_table(tmp_ref);
    // A constraint DataFusion cannot evaluate (a function it lacks) is not enforced rather
    // than failing every write; tables made before CHECKs were enforced may hold such.
    let batches = match result {
        Ok((_, batches)) => batches,
        // A data exception (division by zero ...) is the row's fault, as in PostgreSQL.
        Err(e) if e.code.starts_with("22") => return Err(e),
        Err(e) => {
            tracing::warn!(table = %def.name, error = %e.message, "CHECK constraints not evaluated");
            return Ok(());
        }
    };
    for b in &batches {
        for i in 0..b.num_columns() {
            let col = b.column(i);
            let failed = col
                .as_any()
                .downcast_ref::<datafusion::arrow::array::BooleanArray>()
                .is_some_and(|a| (0..a.len()).any(|j| a.is_valid(j) && a.value(j)));
            if failed {
                let err = SqlError::new(
                    "23514",
                    format!(
                        "new row for relation \"{}\" violates check constraint \"{}\"",
                        def.name,
                        crate::describe::check_name(def, i)
                    ),
                );
                // The check runs over all rows at once: the failing one is known when
                // there is one.
                return Err(match rows {
                    [row] => err.with_detail(failing_row(def, row)),
                    _ => err,
                });
            }
        }
    }
    Ok(())
}

/// Register `rows` (full rows of `def`) as a temporary table named `<prefix><uuid>`; its
/// reference (to deregister it) and its quoted full name (for SQL text).
fn register_rows(
    s: &Session,
    def: &TableDef,
    rows: &[Row],
    prefix: &str,
) -> SqlResult<(datafusion::common::TableReference, String)> {
    let schema = def.arrow_schema();
    let columns: Vec<ArrayRef> = def
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| row::build_array(c.ty, rows.iter().map(|r| &r[i])))
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let tmp = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
    let mem = MemTable::try_new(schema, vec![vec![batch]])?;
    let tmp_ref = datafusion::common::TableReference::full(TMP_CATALOG, TMP_SCHEMA, tmp.as_str());
    s.ctx.register_table(tmp_ref.clone(), Arc::new(mem))?;
    let name = format!(
        "{}.{}.{}",
        quote(TMP_CATALOG),
        quote(TMP_SCHEMA),
        quote(&tmp)
    );
    Ok((tmp_ref, name))
}

/// Answer RETURNING items over `rows` (full rows of `def`).
async fn returning(
    s: &Session,
    def: &TableDef,
    rows: &[Row],
    items: &[ast::SelectItem],
    command: &'static str,
) -> SqlResult<Output> {
    let (tmp_ref, tmp_name) = register_rows(s, def, rows, "__returning_")?;
    let sql = format!(
        "SELECT {} FROM {tmp_name} AS {}",
        items
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        quote(&def.name)
    );
    let result = async {
        let stmt = parse(&sql)?
            .pop()
            .ok_or_else(|| SqlError::internal("empty RETURNING"))?;
        match s.query(stmt).await? {
            Output::Rows { schema, batches } => Ok(Output::Returning {
                command,
                schema,
                batches,
            }),
            other => Ok(other),
        }
    }
    .await;
    let _ = s.ctx.deregister_table(tmp_ref);
    result
}

/// SQL text selecting the affected rows of an UPDATE/DELETE from `__dml__<table>`.
fn dml_select(
    def: &TableDef,
    alias: Option<&ast::TableAlias>,
    extra: &[String],
    from: &[ast::TableWithJoins],
    selection: Option<&Expr>,
) -> String {
    let alias = alias
        .map(|a| ident(&a.name))
        .unwrap_or_else(|| def.name.clone());
    let mut sql = format!("SELECT {}.*", quote(&alias));
    for e in extra {
        sql.push_str(", ");
        sql.push_str(e);
    }
    sql.push_str(&format!(
        " FROM {}.{} AS {}",
        quote(&def.schema),
        quote(&format!("{DML_PREFIX}{}", def.name)),
        quote(&alias)
    ));
    for f in from {
        sql.push_str(&format!(", {f}"));
    }
    if let Some(w) = selection {
        sql.push_str(&format!(" WHERE {w}"));
    }
    sql
}

/// Rows selected by [`dml_select`]: (old row, key, stored value, extra columns' arrays & index).
struct Selected {
    rows: Vec<(Row, Vec<u8>, Vec<u8>)>,
    extras: Vec<(Vec<ArrayRef>, usize)>,
}

async fn select_affected(
    s: &Session,
    def: &TableDef,
    sql: &str,
    n_extra: usize,
) -> SqlResult<Selected> {
    let stmt = parse(sql)?
        .pop()
        .ok_or_else(|| SqlError::internal("empty DML select"))?;
    let (_, batches) = s.run_datafusion(stmt).await?;
    let ncols = def.columns.len();
    let mut out = Selected {
        rows: Vec::new(),
        extras: Vec::new(),
    };
    for b in &batches {
        let keys = b
            .column(ncols)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .ok_or_else(|| SqlError::internal(format!("{KEY_COLUMN} is not binary")))?;
        let values = b
            .column(ncols + 1)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .ok_or_else(|| SqlError::internal(format!("{VALUE_COLUMN} is not binary")))?;
        let extra: Vec<ArrayRef> = (0..n_extra)
            .map(|j| b.column(ncols + 2 + j).clone())
            .collect();
        for i in 0..b.num_rows() {
            let mut row = Vec::with_capacity(ncols);
            for (c, col) in def.columns.iter().enumerate() {
                row.push(row::datum_from_array(b.column(c), i, col.ty)?);
            }
            out.rows
                .push((row, keys.value(i).to_vec(), values.value(i).to_vec()));
            out.extras.push((extra.clone(), i));
        }
    }
    Ok(out)
}

fn single_table(
    t: &ast::TableWithJoins,
) -> SqlResult<(&ast::ObjectName, Option<&ast::TableAlias>)> {
    if !t.joins.is_empty() {
        return Err(SqlError::unsupported("JOIN in UPDATE/DELETE target"));
    }
    match &t.relation {
        ast::TableFactor::Table { name, alias, .. } => Ok((name, alias.as_ref())),
        _ => Err(SqlError::unsupported("this UPDATE/DELETE target")),
    }
}

/// Attempts of an UPDATE that found its one row changed under it.
const UPDATE_RETRIES: usize = 20;

/// UPDATE. A statement that changes one row and lost a race for it (someone changed the
/// row between read and write) runs again, as PostgreSQL re-evaluates the row in READ
/// COMMITTED; one that changes several rows fails with 40001 instead, since some of its
/// rows are already written.
pub async fn update(s: &Session, upd: &ast::Update) -> SqlResult<Output> {
    let (def, rows) = update_rows(s, upd).await?;
    Ok(match &upd.returning {
        Some(items) => returning(s, &def, &rows, items, "UPDATE").await?,
        None => Output::Command(format!("UPDATE {}", rows.len())),
    })
}

/// Run an UPDATE (with its retries): the table's definition and the rows as updated.
async fn update_rows(s: &Session, upd: &ast::Update) -> SqlResult<(Arc<TableDef>, Vec<Row>)> {
    let mut attempt = 0;
    loop {
        match update_once(s, upd).await {
            Err(Retry::Again) if attempt < UPDATE_RETRIES => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_micros(200 << attempt.min(6))).await;
            }
            Err(Retry::Again) => return Err(serialization_failure()),
            Err(Retry::Fail(e)) => return Err(e),
            Ok(out) => return Ok(out),
        }
    }
}

/// Why an UPDATE attempt did not finish.
enum Retry {
    /// Its single row changed meanwhile: nothing was written, run it again.
    Again,
    Fail(SqlError),
}

impl From<SqlError> for Retry {
    fn from(e: SqlError) -> Self {
        Retry::Fail(e)
    }
}

async fn update_once(s: &Session, upd: &ast::Update) -> Result<(Arc<TableDef>, Vec<Row>), Retry> {
    let (name, alias) = single_table(&upd.table)?;
    let r = target(s, name).await?;
    let def = r.def.clone();
    let mut assigned: Vec<usize> = Vec::new();
    let mut exprs: Vec<String> = Vec::new();
    for a in &upd.assignments {
        let ast::AssignmentTarget::ColumnName(col) = &a.target else {
            return Err(SqlError::unsupported("tuple assignment in UPDATE").into());
        };
        let n = col
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(ident)
            .unwrap_or_default();
        let i = def.column(&n).ok_or_else(|| {
            SqlError::new(
                "42703",
                format!("column \"{n}\" of relation \"{}\" does not exist", def.name),
            )
        })?;
        assigned.push(i);
        // SET c = DEFAULT: the column's default expression, or NULL.
        let value = if is_default(&a.value) {
            match &def.columns[i].default {
                Some(d) if d.starts_with("nextval(") => {
                    return Err(
                        SqlError::unsupported("SET col = DEFAULT of a serial column").into(),
                    );
                }
                Some(d) => format!("({d})"),
                None => "NULL".into(),
            }
        } else {
            format!("({})", a.value)
        };
        exprs.push(value);
    }
    let from: Vec<ast::TableWithJoins> = match &upd.from {
        Some(ast::UpdateTableFromKind::BeforeSet(f) | ast::UpdateTableFromKind::AfterSet(f)) => {
            f.clone()
        }
        None => Vec::new(),
    };
    let sql = dml_select(&def, alias, &exprs, &from, upd.selection.as_ref());
    let selected = select_affected(s, &def, &sql, exprs.len()).await?;
    let mut changes = Vec::with_capacity(selected.rows.len());
    // For the indexes: (old key, old row, new key, new row).
    let mut index_changes = Vec::new();
    // For the foreign keys that reference this table: (key, old row).
    let mut olds = Vec::new();
    for ((old, key, raw), (arrays, i)) in selected.rows.into_iter().zip(selected.extras) {
        let mut new = old.clone();
        for (j, &col) in assigned.iter().enumerate() {
            new[col] = cell(&def, col, &arrays[j], i)?;
        }
        check_not_null(&def, &new)?;
        if !def.referenced_by.is_empty() {
            olds.push((key.clone(), old.clone()));
        }
        if !r.indexes.is_empty() {
            let new_key = if def.pk.is_empty() {
                key.clone()
            } else {
                row::encode_key(&def, &new)
            };
            index_changes.push((key.clone(), old, new_key, new.clone()));
        }
        changes.push((new, key, raw));
    }
    let n = changes.len();
    let single = n == 1;
    let new_rows: Vec<Row> = changes.iter().map(|(n, _, _)| n.clone()).collect();
    check_constraints(s, &def, &new_rows).await?;
    if !def.foreign_keys.is_empty() {
        let refs: Vec<&Row> = new_rows.iter().collect();
        Box::pin(crate::foreign::check_parents(s, &s.access, &r, &refs)).await?;
    }
    futures::stream::iter(changes.into_iter().map(|(new, key, raw)| {
        let r = r.clone();
        let def = def.clone();
        async move {
            let new_key = if def.pk.is_empty() {
                key.clone()
            } else {
                row::encode_key(&def, &new)
            };
            let value = row::encode_value(&def, &new);
            let access = &s.access;
            if new_key == key {
                let op = KvOp {
                    key: key.clone(),
                    value,
                    condition: Condition::IfEquals as i32,
                    expected: raw,
                    ..Default::default()
                };
                if !access.write(&r.table, &key, vec![op]).await? {
                    return Err(serialization_failure());
                }
            } else {
                // The key changed: insert the new row, then remove the old one.
                let put = KvOp {
                    key: new_key.clone(),
                    value,
                    condition: Condition::IfAbsent as i32,
                    ..Default::default()
                };
                if !access.write(&r.table, &new_key, vec![put]).await? {
                    return Err(duplicate(&def, Some(&new)));
                }
                let del = KvOp {
                    key: key.clone(),
                    delete: true,
                    condition: Condition::IfEquals as i32,
                    expected: raw,
                    ..Default::default()
                };
                if !access.write(&r.table, &key, vec![del]).await? {
                    return Err(serialization_failure());
                }
            }
            Ok::<_, SqlError>(())
        }
    }))
    .buffer_unordered(WRITE_CONCURRENCY)
    .try_collect::<Vec<()>>()
    .await
    .map_err(|e| {
        if single && e.code == "40001" {
            Retry::Again
        } else {
            Retry::Fail(e)
        }
    })?;
    let index_changes: Vec<crate::index::Change> = index_changes
        .iter()
        .map(|(ok, o, nk, n)| (Some((&ok[..], o)), Some((&nk[..], n))))
        .collect();
    Box::pin(crate::index::maintain(
        &s.access,
        &r.def,
        &r.indexes,
        &index_changes,
    ))
    .await?;
    if !olds.is_empty() {
        Box::pin(crate::foreign::parents_changed(
            s,
            &r,
            &olds,
            Some(&new_rows),
        ))
        .await?;
    }
    Ok((def, new_rows))
}

/// DELETE.
pub async fn delete(s: &Session, del: &ast::Delete) -> SqlResult<Output> {
    let tables = match &del.from {
        ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
    };
    let [t] = tables.as_slice() else {
        return Err(SqlError::unsupported("DELETE from several tables"));
    };
    let (name, alias) = single_table(t)?;
    let r = target(s, name).await?;
    let def = r.def.clone();
    let using = del.using.clone().unwrap_or_default();
    let sql = dml_select(&def, alias, &[], &using, del.selection.as_ref());
    let selected = select_affected(s, &def, &sql, 0).await?;
    let n = selected.rows.len();
    let mut ops = Vec::with_capacity(n);
    let mut rows = Vec::with_capacity(n);
    for (row, key, raw) in selected.rows {
        ops.push(KvOp {
            key,
            delete: true,
            condition: Condition::IfEquals as i32,
            expected: raw,
            ..Default::default()
        });
        rows.push(row);
    }
    let keys: Vec<Vec<u8>> = ops.iter().map(|op| op.key.clone()).collect();
    if !write_grouped(&s.access, &r, ops).await? {
        return Err(serialization_failure());
    }
    let changes: Vec<crate::index::Change> = keys
        .iter()
        .zip(&rows)
        .map(|(k, row)| (Some((&k[..], row)), None))
        .collect();
    Box::pin(crate::index::maintain(
        &s.access, &r.def, &r.indexes, &changes,
    ))
    .await?;
    if !def.referenced_by.is_empty() {
        let old: Vec<(Vec<u8>, Row)> = keys.into_iter().zip(rows.iter().cloned()).collect();
        Box::pin(crate::foreign::parents_changed(s, &r, &old, None)).await?;
    }
    match &del.returning {
        Some(items) => returning(s, &def, &rows, items, "DELETE").await,
        None => Ok(Output::Command(format!("DELETE {n}"))),
    }
}

/// CREATE TABLE ... AS query: a table (without a primary key) with the query's columns and
/// types, filled with its rows. Returns the row count, or `None` if IF NOT EXISTS found the
/// name taken.
pub async fn create_table_as(s: &Session, ct: &ast::CreateTable) -> SqlResult<Option<usize>> {
    let Some(q) = &ct.query else {
        return Err(SqlError::internal("CREATE TABLE AS without a query"));
    };
    let (schema, name) = ddl::table_name(&ct.name)?;
    if s.catalog.view(&s.db, &schema, &name).await?.is_some()
        || s.catalog.table(&s.db, &schema, &name).await?.is_some()
    {
        if ct.if_not_exists {
            return Ok(None);
        }
        return Err(SqlError::new(
            "42P07",
            format!("relation \"{name}\" already exists"),
        ));
    }
    let (result, batches) = s.run_datafusion(Statement::Query(q.clone())).await?;
    if ct.columns.len() > result.fields().len() {
        return Err(SqlError::syntax("too many column names were specified"));
    }
    let mut def = TableDef {
        schema,
        name: name.clone(),
        next_column_id: 1,
        ..Default::default()
    };
    for (i, f) in result.fields().iter().enumerate() {
        let cname = ct
            .columns
            .get(i)
            .map(|c| ident(&c.name))
            .unwrap_or_else(|| f.name().clone());
        if def.column(&cname).is_some() {
            return Err(SqlError::new(
                "42701",
                format!("column \"{cname}\" specified more than once"),
            ));
        }
        def.columns.push(crate::catalog::ColumnDef {
            id: def.next_column_id,
            name: cname,
            ty: SqlType::of_arrow(f.data_type()),
            len: None,
            nullable: true,
            default: None,
        });
        def.next_column_id += 1;
    }
    if !s
        .catalog
        .create_table(&s.db, &def, false, ct.if_not_exists)
        .await?
    {
        return Ok(None);
    }
    let r = s.catalog.require(&s.db, &def.schema, &name).await?;
    let ncols = def.columns.len();
    let mut rows = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            let mut row = Vec::with_capacity(ncols);
            for col in 0..ncols {
                row.push(cell(&r.def, col, b.column(col), i)?);
            }
            rows.push((row, vec![true; ncols]));
        }
    }
    let n = rows.len();
    for chunk in rows.chunks(OPS_PER_WRITE * 4) {
        write_new_rows(s, &s.access, &r, chunk.to_vec(), false, false).await?;
    }
    Ok(Some(n))
}

/// TRUNCATE a, b.
pub async fn truncate(s: &Session, t: &ast::Truncate) -> SqlResult<Output> {
    for target_name in &t.table_names {
        let r = target(s, &target_name.name).await?;
        if r.def.referenced_by.iter().any(|x| x.table != r.def.name) {
            return Err(SqlError::new(
                "0A000",
                format!(
                    "cannot truncate a table referenced in a foreign key constraint (table \"{}\")",
                    r.def.name
                ),
            ));
        }
        let kvs = s.access.scan_all(&r.table).await?;
        let ops = kvs
            .into_iter()
            .map(|(key, _)| KvOp {
                key,
                delete: true,
                ..Default::default()
            })
            .collect();
        write_grouped(&s.access, &r, ops).await?;
        for ix in &r.indexes {
            let entries = s.access.scan_all(&ix.table).await?;
            for chunk in entries.chunks(OPS_PER_WRITE) {
                let ops = chunk
                    .iter()
                    .map(|(key, _)| KvOp {
                        key: key.clone(),
                        delete: true,
                        ..Default::default()
                    })
                    .collect();
                s.access.write(&ix.table, &chunk[0].0, ops).await?;
            }
        }
    }
    Ok(Output::tag("TRUNCATE TABLE"))
}
