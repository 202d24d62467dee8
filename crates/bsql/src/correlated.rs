//! Correlated subqueries DataFusion cannot decorrelate (`(SELECT count(*) FROM t1 AS x
//! WHERE x.b < t1.b)`: a correlation that is not an equality), evaluated as PostgreSQL
//! does, row by row.
//!
//! Only when DataFusion refuses the query, and only for a SELECT over one table without
//! grouping or aggregates of its own: the outer table's rows are read, and for each the
//! query runs with the outer table replaced by a one-row derived table of that row's
//! values and every reference to the outer row inside a subquery replaced by its value
//! (so the subqueries are no longer correlated). The results are then sorted (ORDER BY
//! items ride along as hidden columns), made DISTINCT and cut by OFFSET / LIMIT.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, Expr, SetExpr, Statement, TableFactor};

use crate::ddl::ident;
use crate::error::{SqlError, SqlResult};
use crate::session::Session;
use crate::types::SqlType;

/// Whether DataFusion's error `e` is its refusal of a correlated subquery.
pub fn refused(e: &SqlError) -> bool {
    (e.message.contains("does not support logical expression")
        && (e.message.contains("Subquery") || e.message.contains("Exists")))
        || e.message
            .contains("Correlated scalar subquery must be aggregated")
}

/// Functions that make the outer query an aggregate (then this does not apply).
const AGGREGATES: [&str; 8] = [
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "bool_and",
    "bool_or",
    "string_agg",
];

/// Run `stmt` row by row, or `None` if its shape is not one this handles.
pub async fn run(
    s: &Session,
    stmt: &Statement,
) -> SqlResult<Option<(SchemaRef, Vec<RecordBatch>)>> {
    let Statement::Query(q) = stmt else {
        return Ok(None);
    };
    if q.with.is_some() || q.fetch.is_some() {
        return Ok(None);
    }
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return Ok(None);
    };
    let [from] = sel.from.as_slice() else {
        return Ok(None);
    };
    let TableFactor::Table { name, alias, .. } = &from.relation else {
        return Ok(None);
    };
    let grouped = match &sel.group_by {
        ast::GroupByExpr::Expressions(e, _) => !e.is_empty(),
        ast::GroupByExpr::All(_) => true,
    };
    if !from.joins.is_empty() || grouped || sel.having.is_some() || outer_aggregate(sel) {
        return Ok(None);
    }
    let (schema_name, table) = crate::ddl::table_name(name)?;
    let Some(r) = s.catalog.table(&s.db, &schema_name, &table).await? else {
        return Ok(None);
    };
    let outer = alias
        .as_ref()
        .map(|a| ident(&a.name))
        .unwrap_or_else(|| table.clone());
    let def = r.def.clone();

    // ORDER BY: positions of the select list, or expressions carried as hidden columns.
    let visible = sel.projection.len();
    let mut order: Vec<(usize, bool, Option<bool>)> = Vec::new();
    let mut hidden: Vec<ast::SelectItem> = Vec::new();
    if let Some(ob) = &q.order_by {
        let ast::OrderByKind::Expressions(items) = &ob.kind else {
            return Ok(None);
        };
        for item in items {
            let asc = item.options.asc.unwrap_or(true);
            let nulls_first = item.options.nulls_first;
            let pos = match &item.expr {
                Expr::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => match n.parse::<usize>() {
                        Ok(p) if p >= 1 && p <= visible => p - 1,
                        _ => return Ok(None),
                    },
                    _ => return Ok(None),
                },
                e => {
                    hidden.push(ast::SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: ast::Ident::new(format!("__order_{}", hidden.len())),
                    });
                    visible + hidden.len() - 1
                }
            };
            order.push((pos, asc, nulls_first));
        }
    }
    let (limit, offset) = match &q.limit_clause {
        None => (None, 0),
        Some(ast::LimitClause::LimitOffset { limit, offset, .. }) => {
            let n = |e: &Expr| match e {
                Expr::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => n.parse::<usize>().ok(),
                    _ => None,
                },
                _ => None,
            };
            let limit = match limit {
                Some(e) => match n(e) {
                    Some(l) => Some(l),
                    None => return Ok(None),
                },
                None => None,
            };
            let offset = match offset {
                Some(o) => match n(&o.value) {
                    Some(o) => o,
                    None => return Ok(None),
                },
                None => 0,
            };
            (limit, offset)
        }
        Some(_) => return Ok(None),
    };

    // The outer rows.
    let all = format!(
        "SELECT * FROM {}.{}",
        crate::dml::quote(&schema_name),
        crate::dml::quote(&table)
    );
    let Some(all) = crate::session::parse(&all)?.pop() else {
        return Ok(None);
    };
    let (_, batches) = s.run_datafusion(all).await?;
    let mut rows: Vec<Vec<ScalarValue>> = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .map(|c| ScalarValue::try_from_array(c, i))
                    .collect::<Result<_, _>>()?,
            );
        }
    }
    let columns: Vec<(String, SqlType)> =
        def.columns.iter().map(|c| (c.name.clone(), c.ty)).collect();

    let mut result_schema: Option<SchemaRef> = None;
    let mut out: Vec<Vec<ScalarValue>> = Vec::new();
    let null_row: Vec<ScalarValue> = vec![ScalarValue::Null; columns.len()];
    let probe = rows.is_empty();
    for values in rows.iter().chain(probe.then_some(&null_row)) {
        let mut one = sel.as_ref().clone();
        one.projection.extend(hidden.iter().cloned());
        let literals: Vec<Expr> = columns
            .iter()
            .zip(values)
            .map(|((_, ty), v)| literal(v, *ty))
            .collect::<SqlResult<_>>()?;
        let items = columns
            .iter()
            .zip(&literals)
            .map(|((n, _), e)| format!("{e} AS {}", crate::dml::quote(n)))
            .collect::<Vec<_>>()
            .join(", ");
        let derived = format!(
            "SELECT * FROM (SELECT {items}) AS {}",
            crate::dml::quote(&outer)
        );
        let Some(Statement::Query(dq)) = crate::session::parse(&derived)?.pop() else {
            return Ok(None);
        };
        let SetExpr::Select(dsel) = *dq.body else {
            return Ok(None);
        };
        one.from = dsel.from;
        // Outer references inside subqueries become the row's values.
        let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
        substitute(&mut one, &outer, &names, &literals);
        nullable_subqueries(&mut one);
        if probe {
            one.selection = Some(Expr::Value(ast::Value::Boolean(false).into()));
        }
        let query = ast::Query {
            body: Box::new(SetExpr::Select(Box::new(one))),
            order_by: None,
            limit_clause: None,
            ..(**q).clone()
        };
        let (schema, batches) = s.run_datafusion(Statement::Query(Box::new(query))).await?;
        result_schema.get_or_insert(schema);
        for b in &batches {
            for i in 0..b.num_rows() {
                out.push(
                    b.columns()
                        .iter()
                        .map(|c| ScalarValue::try_from_array(c, i))
                        .collect::<Result<_, _>>()?,
                );
            }
        }
    }
    let Some(schema) = result_schema else {
        return Ok(None);
    };

    // ORDER BY, DISTINCT, OFFSET, LIMIT over all the rows.
    if !order.is_empty() {
        out.sort_by(|a, b| {
            for &(pos, asc, nulls_first) in &order {
                let (x, y) = (&a[pos], &b[pos]);
                let nulls_first = nulls_first.unwrap_or(!asc);
                let o = match (x.is_null(), y.is_null()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) if nulls_first => std::cmp::Ordering::Less,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) if nulls_first => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ => {
                        let o = x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal);
                        if asc {
                            o
                        } else {
                            o.reverse()
                        }
                    }
                };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    for row in &mut out {
        row.truncate(visible);
    }
    if sel.distinct.is_some() {
        let mut seen = HashSet::new();
        out.retain(|r| seen.insert(format!("{r:?}")));
    }
    let out: Vec<Vec<ScalarValue>> = out
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .take(visible)
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let mut arrays = Vec::with_capacity(visible);
    for (c, f) in schema.fields().iter().enumerate() {
        // Each row's query typed its values on its own (constants fold differently).
        let column: Vec<ScalarValue> = out
            .iter()
            .map(|r| r[c].cast_to(f.data_type()))
            .collect::<Result<_, _>>()?;
        arrays.push(if column.is_empty() {
            datafusion::arrow::array::new_empty_array(f.data_type())
        } else {
            ScalarValue::iter_to_array(column)?
        });
    }
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    Ok(Some((schema, vec![batch])))
}

/// Whether the select list or WHERE uses an aggregate outside any subquery.
fn outer_aggregate(sel: &ast::Select) -> bool {
    let mut found = false;
    let mut check = |e: &Expr| {
        let _ = ast::visit_expressions(e, |x: &Expr| {
            match x {
                Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                    return ControlFlow::Break(());
                }
                Expr::Function(f) => {
                    let n = f.name.to_string().to_ascii_lowercase();
                    if AGGREGATES.contains(&n.as_str()) || f.over.is_some() {
                        found = true;
                    }
                }
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
    };
    for item in &sel.projection {
        match item {
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                check(e)
            }
            _ => {}
        }
    }
    found
}

/// A value as a typed SQL literal.
fn literal(v: &ScalarValue, ty: SqlType) -> SqlResult<Expr> {
    let text = if v.is_null() {
        "NULL".to_owned()
    } else {
        match v {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => {
                format!("'{}'", s.replace('\'', "''"))
            }
            ScalarValue::Boolean(Some(b)) => b.to_string(),
            ScalarValue::Float32(Some(f)) => format!("{f:?}"),
            ScalarValue::Float64(Some(f)) => format!("{f:?}"),
            v if v.data_type().is_integer() || v.data_type().is_floating() => v.to_string(),
            v => format!("'{}'", v.to_string().replace('\'', "''")),
        }
    };
    let sql = format!("SELECT CAST({text} AS {})", ty.name());
    match crate::session::parse(&sql)?.pop() {
        Some(Statement::Query(q)) => match *q.body {
            SetExpr::Select(sel) => match sel.projection.into_iter().next() {
                Some(ast::SelectItem::UnnamedExpr(e)) => Ok(e),
                _ => Err(SqlError::internal("literal")),
            },
            _ => Err(SqlError::internal("literal")),
        },
        _ => Err(SqlError::internal("literal")),
    }
}

/// Replace `outer.col` references inside the subqueries of `sel` (those whose FROM does not
/// itself name `outer`) by the values `literals` of columns `names`.
fn substitute(sel: &mut ast::Select, outer: &str, names: &[String], literals: &[Expr]) {
    let _ = ast::visit_expressions_mut(sel, |e: &mut Expr| {
        let q = match e {
            Expr::Subquery(q) => q,
            Expr::Exists { subquery, .. } => subquery,
            Expr::InSubquery { subquery, .. } => subquery,
            _ => return ControlFlow::<()>::Continue(()),
        };
        if !names_relation(q, outer) {
            let _ = ast::visit_expressions_mut(q.as_mut(), |x: &mut Expr| {
                if let Expr::CompoundIdentifier(parts) = x {
                    if let [t, c] = parts.as_slice() {
                        if ident(t) == outer {
                            if let Some(i) = names.iter().position(|n| *n == ident(c)) {
                                *x = literals[i].clone();
                            }
                        }
                    }
                }
                ControlFlow::<()>::Continue(())
            });
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Whether DataFusion failed on the NULL of a scalar subquery that returned no row: it
/// types `(SELECT 1 FROM t WHERE false)` as never NULL.
pub fn null_subquery(e: &SqlError) -> bool {
    e.message
        .contains("declared as non-nullable but contains null values")
}

/// Make every scalar subquery's result nullable for DataFusion: its select items become
/// `CASE WHEN random() >= 0 THEN item END` (always the item, but neither folded away nor
/// typed as never NULL). See [`null_subquery`].
pub fn nullable_subqueries<V: ast::VisitMut>(stmt: &mut V) {
    let _ = ast::visit_expressions_mut(stmt, |x: &mut Expr| {
        if let Expr::Subquery(q) = x {
            if let SetExpr::Select(sel) = q.body.as_mut() {
                for item in &mut sel.projection {
                    let e = match item {
                        ast::SelectItem::UnnamedExpr(e)
                        | ast::SelectItem::ExprWithAlias { expr: e, .. } => e,
                        _ => continue,
                    };
                    let inner = std::mem::replace(e, Expr::Value(ast::Value::Null.into()));
                    let always = "random() >= 0";
                    let Ok(Some(Statement::Query(cq))) =
                        crate::session::parse(&format!("SELECT {always}")).map(|mut v| v.pop())
                    else {
                        *e = inner;
                        continue;
                    };
                    let condition = match *cq.body {
                        SetExpr::Select(s) => match s.projection.into_iter().next() {
                            Some(ast::SelectItem::UnnamedExpr(c)) => c,
                            _ => Expr::Value(ast::Value::Boolean(true).into()),
                        },
                        _ => Expr::Value(ast::Value::Boolean(true).into()),
                    };
                    *e = Expr::Case {
                        case_token: ast::helpers::attached_token::AttachedToken::empty(),
                        end_token: ast::helpers::attached_token::AttachedToken::empty(),
                        operand: None,
                        conditions: vec![ast::CaseWhen {
                            condition,
                            result: inner,
                        }],
                        else_result: None,
                    };
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Whether a subquery's own FROM names a relation (or alias) `name`.
fn names_relation(q: &ast::Query, name: &str) -> bool {
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return true; // not understood: leave it alone
    };
    sel.from.iter().any(|f| {
        std::iter::once(&f.relation)
            .chain(f.joins.iter().map(|j| &j.relation))
            .any(|r| match r {
                TableFactor::Table { name: n, alias, .. } => match alias {
                    Some(a) => ident(&a.name) == name,
                    None => {
                        n.0.last()
                            .and_then(|p| p.as_ident())
                            .is_some_and(|i| ident(i) == name)
                    }
                },
                TableFactor::Derived { alias, .. } => {
                    alias.as_ref().is_some_and(|a| ident(&a.name) == name)
                }
                _ => true,
            })
    })
}
