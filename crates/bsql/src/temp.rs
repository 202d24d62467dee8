//! Temporary tables (`CREATE TEMP TABLE`): a session's own tables, in a schema of its own
//! (`pg_temp_<id>`), found before same-named tables of other schemas (as PostgreSQL
//! searches `pg_temp` first), and dropped when the session ends.
//!
//! They are ordinary tables of the catalog under that schema: statements are rewritten so
//! that an unqualified name (or `pg_temp.name`) of a temporary table names it in the
//! session's schema. A server that dies leaves its sessions' tables behind, under
//! `pg_temp_*` schemas no session uses.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Statement};

use crate::ddl::ident;

/// The temporary tables of one session.
pub struct TempTables {
    /// The session's schema, `pg_temp_<random hex>`.
    pub schema: String,
    /// Names (folded) of the tables created and not dropped.
    names: HashSet<String>,
}

impl Default for TempTables {
    fn default() -> Self {
        TempTables {
            schema: format!(
                "pg_temp_{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
            names: HashSet::new(),
        }
    }
}

/// What a statement does to the set of temporary tables, applied once it succeeded.
pub enum Change {
    None,
    Created(String),
    Dropped(Vec<String>),
}

impl TempTables {
    /// The tables to drop at the end of the session, as schema-qualified names.
    pub fn drain(&mut self) -> Vec<String> {
        let schema = self.schema.clone();
        self.names
            .drain()
            .map(|n| format!("\"{schema}\".\"{}\"", n.replace('"', "\"\"")))
            .collect()
    }

    /// Point `stmt`'s names at the session's temporary tables; returns what the statement
    /// changes if it succeeds.
    pub fn rewrite(&self, stmt: &mut Statement) -> Change {
        let mut change = Change::None;
        match stmt {
            Statement::CreateTable(ct) if ct.temporary => {
                ct.temporary = false;
                if let Some(name) = self.own(&ct.name, true) {
                    ct.name = self.qualified(&name);
                    change = Change::Created(name);
                }
            }
            Statement::Drop {
                object_type: ast::ObjectType::Table,
                names,
                ..
            } => {
                let mut dropped = Vec::new();
                for n in names.iter_mut() {
                    if let Some(name) = self.own(n, false) {
                        *n = self.qualified(&name);
                        dropped.push(name);
                    }
                }
                change = Change::Dropped(dropped);
            }
            _ => {}
        }
        self.rewrite_names(stmt);
        change
    }

    /// Point the unqualified names of `stmt` that name a temporary table at it (a new
    /// permanent table keeps its name, as PostgreSQL creates it outside `pg_temp`).
    pub fn rewrite_names(&self, stmt: &mut Statement) {
        if self.names.is_empty() {
            return;
        }
        let created = match stmt {
            Statement::CreateTable(ct) => Some(ct.name.clone()),
            _ => None,
        };
        let _ = ast::visit_relations_mut(stmt, |n: &mut ast::ObjectName| {
            if let Some(name) = self.own(n, false) {
                *n = self.qualified(&name);
            }
            ControlFlow::<()>::Continue(())
        });
        if let (Some(name), Statement::CreateTable(ct)) = (created, stmt) {
            ct.name = name;
        }
    }

    pub fn apply(&mut self, change: Change) {
        match change {
            Change::None => {}
            Change::Created(n) => {
                self.names.insert(n);
            }
            Change::Dropped(ns) => {
                for n in ns {
                    self.names.remove(&n);
                }
            }
        }
    }

    /// The folded table name if `n` names one of ours: unqualified and known (or `create`),
    /// or qualified with `pg_temp`.
    fn own(&self, n: &ast::ObjectName, create: bool) -> Option<String> {
        let parts: Vec<&ast::Ident> = n.0.iter().filter_map(|p| p.as_ident()).collect();
        match parts.as_slice() {
            [t] => {
                let name = ident(t);
                (create || self.names.contains(&name)).then_some(name)
            }
            [s, t] if ident(s) == "pg_temp" || ident(s) == self.schema => Some(ident(t)),
            _ => None,
        }
    }

    fn qualified(&self, name: &str) -> ast::ObjectName {
        ast::ObjectName::from(vec![
            ast::Ident::with_quote('"', self.schema.clone()),
            ast::Ident::with_quote('"', name.to_owned()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(t: &TempTables, sql: &str) -> (String, Change) {
        let mut stmt = crate::session::parse(sql).unwrap().pop().unwrap();
        let change = t.rewrite(&mut stmt);
        (stmt.to_string(), change)
    }

    #[test]
    fn temporary_tables_shadow_by_name() {
        let mut t = TempTables::default();
        let s = t.schema.clone();
        let (sql, change) = rewritten(&t, "CREATE TEMP TABLE Foo (a int)");
        assert_eq!(sql, format!("CREATE TABLE \"{s}\".\"foo\" (a INT)"));
        t.apply(change);
        let (sql, _) = rewritten(&t, "SELECT * FROM foo JOIN bar ON true");
        assert_eq!(
            sql,
            format!("SELECT * FROM \"{s}\".\"foo\" JOIN bar ON true")
        );
        let (sql, change) = rewritten(&t, "DROP TABLE foo, bar");
        assert_eq!(sql, format!("DROP TABLE \"{s}\".\"foo\", bar"));
        t.apply(change);
        assert!(t.drain().is_empty());
    }
}
