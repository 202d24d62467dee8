//! The point fast path: a SELECT, UPDATE or DELETE that names one row by its whole primary
//! key (`WHERE k = $1 [AND k2 = $2]`) is recognized from its syntax once — per prepared
//! statement, or per simple query — and runs straight against the row's tablet, without
//! DataFusion planning. UPDATE's SET may assign values or add to / subtract from a numeric
//! column (`x = x + $1`); it is a read-modify-write with compare-and-set, retried on a race.
//!
//! [`run`] returns `None` when the statement turns out not to fit (the WHERE columns are not
//! exactly the key, a SET changes the key ...): the caller then takes the general path.

use std::sync::Arc;

use client::{Condition, KvOp};
use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, BinaryOperator, Expr, SelectItem, SetExpr, Statement};

use crate::catalog::TableDef;
use crate::ddl::ident;
use crate::dml;
use crate::error::{SqlError, SqlResult};
use crate::row::{self, Datum, Row};
use crate::session::{Output, Session};

/// Compare-and-set attempts of a point UPDATE before it reports 40001.
const RETRIES: usize = 50;

/// A value: a statement parameter (0-based) or a constant.
#[derive(Debug, Clone)]
pub enum Operand {
    Param(usize),
    Const(ScalarValue),
}

/// What a SET assigns.
#[derive(Debug, Clone)]
pub enum Assign {
    To(Operand),
    Add(Operand),
    Sub(Operand),
}

/// A recognized point statement.
#[derive(Debug, Clone)]
pub enum FastPlan {
    Get {
        table: ast::ObjectName,
        key: Vec<(String, Operand)>,
        /// Selected columns (`None`: all).
        columns: Option<Vec<String>>,
    },
    Update {
        table: ast::ObjectName,
        key: Vec<(String, Operand)>,
        sets: Vec<(String, Assign)>,
    },
    Delete {
        table: ast::ObjectName,
        key: Vec<(String, Operand)>,
    },
}

fn operand(e: &Expr) -> Option<Operand> {
    if let Expr::Value(v) = e {
        if let ast::Value::Placeholder(p) = &v.value {
            let n: usize = p.strip_prefix('$')?.parse().ok()?;
            return Some(Operand::Param(n.checked_sub(1)?));
        }
    }
    dml::literal(e).map(Operand::Const)
}

fn column(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(ident(i)),
        Expr::CompoundIdentifier(parts) => parts.last().map(ident),
        _ => None,
    }
}

/// `a = x AND b = y ...` as (column, operand) pairs.
fn key_eqs(e: &Expr, out: &mut Vec<(String, Operand)>) -> Option<()> {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            key_eqs(left, out)?;
            key_eqs(right, out)
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            let (c, v) = match (column(left), column(right)) {
                (Some(c), None) => (c, operand(right)?),
                (None, Some(c)) => (c, operand(left)?),
                _ => return None,
            };
            out.push((c, v));
            Some(())
        }
        Expr::Nested(inner) => key_eqs(inner, out),
        _ => None,
    }
}

fn single_table(from: &[ast::TableWithJoins]) -> Option<ast::ObjectName> {
    let [t] = from else { return None };
    if !t.joins.is_empty() {
        return None;
    }
    match &t.relation {
        ast::TableFactor::Table {
            name, args: None, ..
        } => Some(name.clone()),
        _ => None,
    }
}

/// Recognize a point statement from its syntax alone.
pub fn plan(stmt: &Statement) -> Option<FastPlan> {
    match stmt {
        Statement::Query(q) => {
            if q.with.is_some()
                || q.order_by.is_some()
                || q.limit_clause.is_some()
                || q.fetch.is_some()
                || !q.locks.is_empty()
            {
                return None;
            }
            let SetExpr::Select(sel) = q.body.as_ref() else {
                return None;
            };
            if sel.distinct.is_some()
                || sel.having.is_some()
                || !matches!(&sel.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
                || sel.into.is_some()
                || !sel.lateral_views.is_empty()
            {
                return None;
            }
            let table = single_table(&sel.from)?;
            let columns = match sel.projection.as_slice() {
                [SelectItem::Wildcard(_)] => None,
                items => Some(
                    items
                        .iter()
                        .map(|i| match i {
                            SelectItem::UnnamedExpr(e) => column(e),
                            _ => None,
                        })
                        .collect::<Option<Vec<_>>>()?,
                ),
            };
            let mut key = Vec::new();
            key_eqs(sel.selection.as_ref()?, &mut key)?;
            Some(FastPlan::Get {
                table,
                key,
                columns,
            })
        }
        Statement::Update(u) => {
            if u.from.is_some() || u.returning.is_some() || u.limit.is_some() {
                return None;
            }
            let table = single_table(std::slice::from_ref(&u.table))?;
            let mut sets = Vec::new();
            for a in &u.assignments {
                let ast::AssignmentTarget::ColumnName(c) = &a.target else {
                    return None;
                };
                let col = c.0.last()?.as_ident().map(ident)?;
                let assign = match &a.value {
                    Expr::BinaryOp { left, op, right }
                        if column(left).as_deref() == Some(col.as_str()) =>
                    {
                        match op {
                            BinaryOperator::Plus => Assign::Add(operand(right)?),
                            BinaryOperator::Minus => Assign::Sub(operand(right)?),
                            _ => return None,
                        }
                    }
                    e => Assign::To(operand(e)?),
                };
                sets.push((col, assign));
            }
            let mut key = Vec::new();
            key_eqs(u.selection.as_ref()?, &mut key)?;
            Some(FastPlan::Update { table, key, sets })
        }
        Statement::Delete(d) => {
            if d.using.is_some() || d.returning.is_some() || d.limit.is_some() {
                return None;
            }
            let tables = match &d.from {
                ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
            };
            let table = single_table(tables)?;
            let mut key = Vec::new();
            key_eqs(d.selection.as_ref()?, &mut key)?;
            Some(FastPlan::Delete { table, key })
        }
        _ => None,
    }
}

/// The value of an operand given the statement's parameters (as text; `None` is NULL).
fn value(op: &Operand, params: &[Option<String>]) -> SqlResult<ScalarValue> {
    match op {
        Operand::Const(v) => Ok(v.clone()),
        Operand::Param(i) => match params.get(*i) {
            Some(Some(t)) => Ok(ScalarValue::Utf8(Some(t.clone()))),
            Some(None) => Ok(ScalarValue::Null),
            None => Err(SqlError::new(
                "08P01",
                format!("there is no parameter ${}", i + 1),
            )),
        },
    }
}

/// The storage key, if the pairs name exactly the primary key; `Some(None)` if a key
/// value is NULL (no row can match).
fn key_of(
    def: &TableDef,
    pairs: &[(String, Operand)],
    params: &[Option<String>],
) -> SqlResult<Option<Option<Vec<u8>>>> {
    if def.pk.is_empty() || pairs.len() != def.pk.len() {
        return Ok(None);
    }
    let mut row: Row = vec![Datum::Null; def.columns.len()];
    let mut seen = vec![false; def.columns.len()];
    for (c, op) in pairs {
        let Some(i) = def.column(c) else {
            return Ok(None);
        };
        if !def.pk.contains(&i) || seen[i] {
            return Ok(None);
        }
        seen[i] = true;
        let d = dml::to_datum(def, i, &value(op, params)?)?;
        if d.is_null() {
            return Ok(Some(None));
        }
        row[i] = d;
    }
    Ok(Some(Some(row::encode_key(def, &row))))
}

/// Run a recognized statement; `None` if it does not fit the fast path after all.
pub async fn run(
    s: &Session,
    plan: &FastPlan,
    params: &[Option<String>],
) -> SqlResult<Option<Output>> {
    match plan {
        FastPlan::Get {
            table,
            key,
            columns,
        } => {
            // Not a table (a view, or nothing): the general path expands or reports it.
            let (schema, name) = crate::ddl::table_name(table)?;
            let Some(r) = s.catalog.table(&s.db, &schema, &name).await? else {
                return Ok(None);
            };
            let def = &r.def;
            let cols: Vec<usize> = match columns {
                None => (0..def.columns.len()).collect(),
                Some(names) => {
                    let mut v = Vec::with_capacity(names.len());
                    for n in names {
                        match def.column(n) {
                            Some(i) => v.push(i),
                            None => return Ok(None),
                        }
                    }
                    v
                }
            };
            let Some(key) = key_of(def, key, params)? else {
                return Ok(None);
            };
            let found = match key {
                Some(k) => s.access.get(&r.table, &k).await?,
                None => None,
            };
            let rows = match found {
                Some(v) => vec![row::decode_value(def, &v)?],
                None => Vec::new(),
            };
            let fields: Vec<Field> = cols
                .iter()
                .map(|&i| Field::new(&def.columns[i].name, def.columns[i].ty.arrow(), true))
                .collect();
            let arrays: Vec<ArrayRef> = cols
                .iter()
                .map(|&i| row::build_array(def.columns[i].ty, rows.iter().map(|r| &r[i])))
                .collect();
            let schema = Arc::new(Schema::new(fields));
            let batch = RecordBatch::try_new(schema.clone(), arrays)?;
            Ok(Some(Output::Rows {
                schema,
                batches: vec![batch],
            }))
        }
        FastPlan::Update { table, key, sets } => {
            let r = dml::target(s, table).await?;
            let def = &r.def;
            let mut targets = Vec::with_capacity(sets.len());
            for (c, a) in sets {
                match def.column(c) {
                    Some(i) if !def.pk.contains(&i) => targets.push((i, a)),
                    _ => return Ok(None),
                }
            }
            // An indexed column changes: its entries too (the general path), as do foreign
            // keys.
            if !def.foreign_keys.is_empty() || !def.referenced_by.is_empty() {
                return Ok(None);
            }
            if r.indexes.iter().any(|ix| {
                ix.columns
                    .iter()
                    .any(|(c, _)| targets.iter().any(|(i, _)| i == c))
            }) {
                return Ok(None);
            }
            let Some(key) = key_of(def, key, params)? else {
                return Ok(None);
            };
            let Some(key) = key else {
                return Ok(Some(Output::Command("UPDATE 0".into())));
            };
            for attempt in 0..RETRIES {
                let Some(raw) = s.access.get(&r.table, &key).await? else {
                    return Ok(Some(Output::Command("UPDATE 0".into())));
                };
                let mut row = row::decode_value(def, &raw)?;
                for (i, a) in &targets {
                    row[*i] = assign(def, *i, &row[*i], a, params)?;
                }
                dml::check_not_null(def, &row)?;
                dml::check_constraints(s, def, std::slice::from_ref(&row)).await?;
                let value = row::encode_value(def, &row);
                // In a block, buffered; redone on a newer version at COMMIT under READ
                // COMMITTED (CHECK constraints need the planner: those tables fail instead).
                let redo = || -> client::Reapply {
                    let (def, targets, params) = (r.def.clone(), owned(&targets), params.to_vec());
                    std::sync::Arc::new(move |newest: &[u8]| {
                        if !def.checks.is_empty() {
                            return None;
                        }
                        let mut row = row::decode_value(&def, newest).ok()?;
                        for (i, a) in &targets {
                            row[*i] = assign(&def, *i, &row[*i], a, &params).ok()?;
                        }
                        dml::check_not_null(&def, &row).ok()?;
                        Some(row::encode_value(&def, &row))
                    })
                };
                if s.access.buffer_update(&r.table, &key, &value, redo).await {
                    return Ok(Some(Output::Command("UPDATE 1".into())));
                }
                let op = KvOp {
                    key: key.clone(),
                    value,
                    condition: Condition::IfEquals as i32,
                    expected: raw,
                    ..Default::default()
                };
                if s.access.write(&r.table, &key, vec![op]).await? {
                    return Ok(Some(Output::Command("UPDATE 1".into())));
                }
                tokio::time::sleep(std::time::Duration::from_micros(100 << attempt.min(6))).await;
            }
            Err(dml::serialization_failure())
        }
        FastPlan::Delete { table, key } => {
            let r = dml::target(s, table).await?;
            if !r.indexes.is_empty() || !r.def.referenced_by.is_empty() {
                return Ok(None);
            }
            let Some(key) = key_of(&r.def, key, params)? else {
                return Ok(None);
            };
            let Some(key) = key else {
                return Ok(Some(Output::Command("DELETE 0".into())));
            };
            let op = KvOp {
                key: key.clone(),
                delete: true,
                condition: Condition::IfPresent as i32,
                ..Default::default()
            };
            let applied = s.access.write(&r.table, &key, vec![op]).await?;
            Ok(Some(Output::Command(format!("DELETE {}", applied as u8))))
        }
    }
}

/// The SET targets with their assignments owned (for a [`client::Reapply`]).
fn owned(targets: &[(usize, &Assign)]) -> Vec<(usize, Assign)> {
    targets.iter().map(|(i, a)| (*i, (*a).clone())).collect()
}

/// Apply one SET to the current value of column `i`.
fn assign(
    def: &TableDef,
    i: usize,
    cur: &Datum,
    a: &Assign,
    params: &[Option<String>],
) -> SqlResult<Datum> {
    let (op, sign) = match a {
        Assign::To(op) => return dml::to_datum(def, i, &value(op, params)?),
        Assign::Add(op) => (op, 1),
        Assign::Sub(op) => (op, -1),
    };
    let delta = dml::to_datum(def, i, &value(op, params)?)?;
    let overflow = || {
        SqlError::new(
            "22003",
            format!("{} out of range", def.columns[i].ty.name()),
        )
    };
    Ok(match (cur, delta) {
        (Datum::Null, _) | (_, Datum::Null) => Datum::Null,
        (Datum::Int(a), Datum::Int(b)) => {
            let v = if sign > 0 {
                a.checked_add(b)
            } else {
                a.checked_sub(b)
            }
            .ok_or_else(overflow)?;
            let (lo, hi) = def.columns[i]
                .ty
                .int_range()
                .unwrap_or((i64::MIN, i64::MAX));
            if v < lo || v > hi {
                return Err(overflow());
            }
            Datum::Int(v)
        }
        (Datum::Float(a), Datum::Float(b)) => Datum::Float(a + sign as f64 * b),
        (Datum::Decimal(a), Datum::Decimal(b)) => Datum::Decimal(
            if sign > 0 {
                a.checked_add(b)
            } else {
                a.checked_sub(b)
            }
            .ok_or_else(overflow)?,
        ),
        _ => {
            return Err(SqlError::new(
                "42883",
                format!(
                    "operator does not exist for type {}",
                    def.columns[i].ty.name()
                ),
            ))
        }
    })
}
