//! Views: `CREATE [OR REPLACE] VIEW`, `DROP VIEW`, and their expansion. A view is stored as
//! its query's SQL text and column names ([`ViewDef`], in the catalog's `views` system
//! table). Before a statement is planned, every reference to a view is replaced by its query
//! as a derived table under the view's name and column names (`FROM v` becomes
//! `FROM (SELECT ...) AS v (a, b)`), as PostgreSQL's rewriter does. Views are read-only.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, Statement, TableAlias, TableAliasColumnDef, TableFactor, VisitMut, VisitorMut,
};

use crate::catalog::ViewDef;
use crate::ddl;
use crate::error::{SqlError, SqlResult};
use crate::session::Session;

/// Views referring to views deeper than this are taken for a cycle.
const MAX_DEPTH: usize = 16;

/// Replace every reference to one of `views` in `stmt` by the view's query.
pub fn expand(stmt: &mut Statement, views: &[ViewDef]) -> SqlResult<()> {
    if views.is_empty() {
        return Ok(());
    }
    expand_at(stmt, views, 0)
}

fn expand_at<V: VisitMut>(node: &mut V, views: &[ViewDef], depth: usize) -> SqlResult<()> {
    let mut ctes = HashSet::new();
    collect_ctes(node, &mut ctes);
    let mut v = Expander {
        views,
        ctes,
        depth,
        error: None,
    };
    let _ = node.visit(&mut v);
    match v.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Names of the CTEs a statement defines: they hide views of the same name.
fn collect_ctes<V: VisitMut>(node: &mut V, out: &mut HashSet<String>) {
    struct Ctes<'a>(&'a mut HashSet<String>);
    impl VisitorMut for Ctes<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut ast::Query) -> ControlFlow<()> {
            if let Some(with) = &q.with {
                for cte in &with.cte_tables {
                    self.0.insert(cte.alias.name.value.to_ascii_lowercase());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = node.visit(&mut Ctes(out));
}

struct Expander<'a> {
    views: &'a [ViewDef],
    ctes: HashSet<String>,
    depth: usize,
    error: Option<SqlError>,
}

impl Expander<'_> {
    fn view_for(&self, name: &ast::ObjectName) -> Option<&ViewDef> {
        let (schema, table) = ddl::table_name(name).ok()?;
        if name.0.len() == 1 && self.ctes.contains(&table) {
            return None;
        }
        self.views
            .iter()
            .find(|v| v.schema == schema && v.name == table)
    }

    fn replacement(&self, view: &ViewDef, alias: Option<TableAlias>) -> SqlResult<TableFactor> {
        if self.depth >= MAX_DEPTH {
            return Err(SqlError::new(
                "42P17",
                format!(
                    "infinite recursion detected in rules for relation \"{}\"",
                    view.name
                ),
            ));
        }
        let mut query = parse_query(&view.query)?;
        expand_at(&mut query, self.views, self.depth + 1)?;
        // The view's own column names, unless the reference renames them.
        let alias = match alias {
            Some(a) if !a.columns.is_empty() => a,
            Some(a) => TableAlias {
                columns: columns(view),
                ..a
            },
            None => TableAlias {
                explicit: true,
                name: ast::Ident::new(&view.name),
                columns: columns(view),
                at: None,
            },
        };
        Ok(TableFactor::Derived {
            lateral: false,
            subquery: Box::new(query),
            alias: Some(alias),
            sample: None,
        })
    }
}

fn columns(view: &ViewDef) -> Vec<TableAliasColumnDef> {
    view.columns
        .iter()
        .map(|c| TableAliasColumnDef {
            name: ast::Ident::with_quote('"', c),
            data_type: None,
        })
        .collect()
}

impl VisitorMut for Expander<'_> {
    type Break = ();

    fn post_visit_table_factor(&mut self, tf: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name, alias, args, ..
        } = tf
        else {
            return ControlFlow::Continue(());
        };
        if args.is_some() {
            return ControlFlow::Continue(());
        }
        let Some(view) = self.view_for(name).cloned() else {
            return ControlFlow::Continue(());
        };
        match self.replacement(&view, alias.take()) {
            Ok(r) => {
                *tf = r;
                ControlFlow::Continue(())
            }
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }
}

fn parse_query(sql: &str) -> SqlResult<ast::Query> {
    match crate::session::parse(sql)?.pop() {
        Some(Statement::Query(q)) => Ok(*q),
        _ => Err(SqlError::internal(format!(
            "stored view query is not a query: {sql}"
        ))),
    }
}

/// `CREATE [OR REPLACE] VIEW name [(columns)] AS query`.
pub async fn create(s: &Session, cv: &ast::CreateView) -> SqlResult<()> {
    if cv.materialized || cv.temporary {
        return Err(SqlError::unsupported(
            "CREATE MATERIALIZED VIEW and CREATE TEMPORARY VIEW",
        ));
    }
    let (schema, name) = ddl::table_name(&cv.name)?;
    if s.catalog.table(&s.db, &schema, &name).await?.is_some() {
        return Err(SqlError::new(
            "42P07",
            format!("relation \"{name}\" already exists"),
        ));
    }
    // Plan the query now: unknown tables and columns are errors of the CREATE, as in
    // PostgreSQL; the plan also gives the output column names.
    let query = cv.query.as_ref().clone();
    let planned = s
        .output_columns(Statement::Query(Box::new(query.clone())))
        .await?;
    let types = planned
        .iter()
        .map(|(_, t)| crate::types::SqlType::of_arrow(t))
        .collect();
    let mut columns: Vec<String> = planned.into_iter().map(|(n, _)| n).collect();
    if cv.columns.len() > columns.len() {
        return Err(SqlError::new(
            "42601",
            "CREATE VIEW specifies more column names than columns",
        ));
    }
    for (c, given) in columns.iter_mut().zip(&cv.columns) {
        *c = crate::ddl::ident(&given.name);
    }
    let mut seen = HashSet::new();
    if let Some(dup) = columns.iter().find(|c| !seen.insert(c.as_str())) {
        return Err(SqlError::new(
            "42701",
            format!("column \"{dup}\" specified more than once"),
        ));
    }
    let def = ViewDef {
        schema,
        name: name.clone(),
        query: query.to_string(),
        columns,
        types,
    };
    if cv.or_replace {
        if let Some(old) = s.catalog.view(&s.db, &def.schema, &def.name).await? {
            // PostgreSQL lets a replacement add columns at the end, nothing else.
            if old.columns.len() > def.columns.len()
                || old.columns.iter().zip(&def.columns).any(|(a, b)| a != b)
            {
                return Err(SqlError::new(
                    "42P16",
                    "cannot drop or rename columns of a view with CREATE OR REPLACE VIEW",
                ));
            }
        }
    }
    if !s.catalog.put_view(&s.db, &def, cv.or_replace).await? && !cv.if_not_exists {
        return Err(SqlError::new(
            "42P07",
            format!("relation \"{name}\" already exists"),
        ));
    }
    Ok(())
}

/// The relations (schema, name) a view's query reads.
fn relations_of(view: &ViewDef) -> Vec<(String, String)> {
    let Ok(mut query) = parse_query(&view.query) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let _ = ast::visit_relations_mut(&mut query, |name: &mut ast::ObjectName| {
        if let Ok(r) = ddl::table_name(name) {
            out.push(r);
        }
        ControlFlow::<()>::Continue(())
    });
    out
}

/// The views that read `relations` (directly or through other views), except those in
/// `relations` themselves.
pub fn dependents(views: &[ViewDef], relations: &[(String, String)]) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    let mut frontier: Vec<(String, String)> = relations.to_vec();
    while let Some(r) = frontier.pop() {
        for v in views {
            let me = (v.schema.clone(), v.name.clone());
            if relations.contains(&me) || found.contains(&me) {
                continue;
            }
            if relations_of(v).contains(&r) {
                found.push(me.clone());
                frontier.push(me);
            }
        }
    }
    found
}

/// Refuse to drop `relations` that views depend on (2BP01), or with `cascade`, drop those
/// views first (PostgreSQL's NOTICE then says so). `kind` is "table" or "view", for the
/// message.
pub async fn drop_dependents(
    s: &mut Session,
    kind: &str,
    relations: &[(String, String)],
    cascade: bool,
) -> SqlResult<()> {
    let views = s.catalog.views(&s.db).await?;
    let deps = dependents(&views, relations);
    if deps.is_empty() {
        return Ok(());
    }
    if !cascade {
        let name = relations
            .iter()
            .find(|r| {
                views.iter().any(|v| {
                    deps.contains(&(v.schema.clone(), v.name.clone()))
                        && relations_of(v).contains(r)
                })
            })
            .map(|r| r.1.clone())
            .unwrap_or_default();
        return Err(SqlError::new(
            "2BP01",
            format!("cannot drop {kind} {name} because other objects depend on it"),
        ));
    }
    let notice = match deps.as_slice() {
        [(_, one)] => format!("drop cascades to view {one}"),
        more => format!("drop cascades to {} other objects", more.len()),
    };
    for (schema, name) in deps {
        s.catalog.drop_view(&s.db, &schema, &name).await?;
    }
    s.notices.push(("00000", notice));
    Ok(())
}

/// `DROP VIEW [IF EXISTS] names [CASCADE]`: the names of views that did not exist (skipped
/// with `IF EXISTS`).
pub async fn drop(
    s: &mut Session,
    names: &[ast::ObjectName],
    if_exists: bool,
    cascade: bool,
) -> SqlResult<Vec<String>> {
    let views = s.catalog.views(&s.db).await?;
    let mut targets = Vec::new();
    let mut missing = Vec::new();
    for n in names {
        let (schema, name) = ddl::table_name(n)?;
        if views.iter().any(|v| v.schema == schema && v.name == name) {
            targets.push((schema, name));
        } else if s.catalog.table(&s.db, &schema, &name).await?.is_some() {
            return Err(SqlError::new("42809", format!("\"{name}\" is not a view")));
        } else if if_exists {
            missing.push(name);
        } else {
            return Err(SqlError::new(
                "42P01",
                format!("view \"{name}\" does not exist"),
            ));
        }
    }
    drop_dependents(s, "view", &targets, cascade).await?;
    for (schema, name) in targets {
        s.catalog.drop_view(&s.db, &schema, &name).await?;
    }
    Ok(missing)
}
