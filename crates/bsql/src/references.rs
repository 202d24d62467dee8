//! Table references PostgreSQL rejects before planning, with its messages and positions:
//! `t.col` where `t` is in FROM only under an alias (`invalid reference to FROM-clause entry
//! for table "t"`, with a HINT naming the alias) or not in FROM at all (`missing FROM-clause
//! entry for table "t"`). DataFusion would only say that a column is missing.
//!
//! The check is deliberately conservative: names are collected from every scope of the
//! statement (a subquery may use an outer table), and a statement with a kind of FROM item
//! it does not understand is only checked for the aliased case.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Visit, Visitor};

use crate::error::{char_offset, SqlError, SqlResult};

fn fold(i: &ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_ascii_lowercase()
    }
}

#[derive(Default)]
struct Names {
    /// Table name → its aliases, for tables that appear only aliased (so far).
    aliased: HashMap<String, Vec<String>>,
    /// Names a qualifier may use: unaliased tables, aliases, CTEs.
    visible: HashSet<String>,
    /// A FROM item of a kind not collected here was seen.
    unknown: bool,
}

impl Visitor for Names {
    type Break = ();

    fn pre_visit_query(&mut self, q: &ast::Query) -> ControlFlow<()> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.visible.insert(fold(&cte.alias.name));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, tf: &ast::TableFactor) -> ControlFlow<()> {
        match tf {
            ast::TableFactor::Table { name, alias, .. } => {
                let Some(table) = name.0.last().and_then(|p| p.as_ident()).map(fold) else {
                    self.unknown = true;
                    return ControlFlow::Continue(());
                };
                match alias {
                    Some(a) => {
                        self.visible.insert(fold(&a.name));
                        self.aliased.entry(table).or_default().push(fold(&a.name));
                    }
                    None => {
                        self.visible.insert(table);
                    }
                }
            }
            ast::TableFactor::Derived { alias: Some(a), .. } => {
                self.visible.insert(fold(&a.name));
            }
            ast::TableFactor::NestedJoin { alias, .. } => {
                if let Some(a) = alias {
                    self.visible.insert(fold(&a.name));
                }
            }
            _ => self.unknown = true,
        }
        ControlFlow::Continue(())
    }
}

/// Check the `table.column` references of a SELECT, UPDATE or DELETE in `sql`.
pub fn check(stmt: &ast::Statement, sql: &str) -> SqlResult<()> {
    if !matches!(
        stmt,
        ast::Statement::Query(_) | ast::Statement::Update { .. } | ast::Statement::Delete(_)
    ) {
        return Ok(());
    }
    let mut names = Names::default();
    let _ = stmt.visit(&mut names);
    let mut found = None;
    let _ = ast::visit_expressions(stmt, |e: &ast::Expr| {
        if let ast::Expr::CompoundIdentifier(parts) = e {
            if let [q, _] = parts.as_slice() {
                let name = fold(q);
                if !names.visible.contains(&name) {
                    if let Some(aliases) = names.aliased.get(&name) {
                        found = Some((q.clone(), aliases.first().cloned()));
                        return ControlFlow::Break(());
                    }
                    if !names.unknown && name != "excluded" {
                        found = Some((q.clone(), None));
                        return ControlFlow::Break(());
                    }
                }
            }
        }
        ControlFlow::Continue(())
    });
    let Some((q, alias)) = found else {
        return Ok(());
    };
    let start = q.span.start;
    let mut err = match &alias {
        Some(a) => SqlError::new(
            "42P01",
            format!(
                "invalid reference to FROM-clause entry for table \"{}\"",
                q.value
            ),
        )
        .with_hint(format!(
            "Perhaps you meant to reference the table alias \"{a}\"."
        )),
        None => SqlError::new(
            "42P01",
            format!("missing FROM-clause entry for table \"{}\"", q.value),
        ),
    };
    if start.line > 0 {
        err = err.at(char_offset(sql, start.line as usize, start.column as usize));
    }
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sql: &str) -> Option<SqlError> {
        let stmt = crate::session::parse(sql).unwrap().pop().unwrap();
        check(&stmt, sql).err()
    }

    #[test]
    fn aliased_and_missing_tables_are_refused_with_positions() {
        let e = run("DELETE FROM t x WHERE t.a > 1").unwrap();
        assert_eq!(e.code, "42P01");
        assert_eq!(e.position, Some(23));
        assert_eq!(
            e.hint.as_deref(),
            Some("Perhaps you meant to reference the table alias \"x\".")
        );
        let e = run("SELECT a\n  FROM t\n WHERE u.a = 1").unwrap();
        assert_eq!(e.message, "missing FROM-clause entry for table \"u\"");
        assert_eq!(e.position, Some(26));
    }

    #[test]
    fn visible_names_pass() {
        for ok in [
            "SELECT t.a FROM t",
            "SELECT x.a FROM t x WHERE EXISTS (SELECT 1 FROM t WHERE t.a = x.a)",
            "WITH w AS (SELECT 1 AS a) SELECT w.a FROM w",
            "SELECT g.g FROM generate_series(1, 2) g",
            "SELECT s.a FROM (SELECT 1 AS a) s",
            "UPDATE t SET a = t.a + 1",
            "INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET a = excluded.a",
        ] {
            assert!(run(ok).is_none(), "{ok}");
        }
    }
}
