//! One client connection's SQL session: its database, settings and transaction state, and
//! the dispatcher that runs a parsed statement (DDL and DML here and in [`crate::ddl`] /
//! [`crate::dml`], queries through DataFusion).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::logical_expr::{ColumnarValue, Volatility};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{self, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use client::Isolation;

use crate::access::Access;
use crate::catalog::Catalog;
use crate::error::{SqlError, SqlResult};
use crate::fast::{self, FastPlan};
use crate::provider::DbCatalog;
use crate::{ddl, dml};

/// The server version clients see (`server_version`, `version()`).
pub const SERVER_VERSION: &str = "15.2";

/// Catalog and schema of per-statement scratch tables (RETURNING input).
pub const TMP_CATALOG: &str = "__bsql_tmp";
pub const TMP_SCHEMA: &str = "t";

/// What a statement produced.
#[derive(Debug)]
pub enum Output {
    /// A result set.
    Rows {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    /// The rows of an INSERT/UPDATE/DELETE ... RETURNING; `command` is the tag before the
    /// row count (`INSERT 0`, `UPDATE`, `DELETE`).
    Returning {
        command: &'static str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    /// A command tag, e.g. `CREATE TABLE` or `INSERT 0 3`.
    Command(String),
    /// The statement opened a transaction block.
    Begin(String),
    /// The statement closed a transaction block.
    End(String),
}

impl Output {
    pub fn tag(s: &str) -> Output {
        Output::Command(s.to_owned())
    }
}

/// State of the open transaction block (its reads and writes go through
/// [`Access`], which holds the transaction itself).
#[derive(Default)]
pub struct TxnBlock {
    /// A statement failed: everything but COMMIT/ROLLBACK is refused (25P02).
    pub failed: bool,
    /// Savepoints, oldest first.
    savepoints: Vec<(String, client::Savepoint)>,
    /// `BEGIN READ ONLY` / `SET TRANSACTION READ ONLY`: writes are refused (25006).
    read_only: bool,
}

/// The access mode `modes` set, if any: true for READ ONLY.
fn read_only_of(modes: &[ast::TransactionMode]) -> Option<bool> {
    modes.iter().find_map(|m| match m {
        ast::TransactionMode::AccessMode(a) => Some(*a == ast::TransactionAccessMode::ReadOnly),
        _ => None,
    })
}

/// The name PostgreSQL gives a statement that writes, for "cannot execute X in a read-only
/// transaction"; `None` for statements that do not write.
fn write_kind(stmt: &Statement) -> Option<&'static str> {
    Some(match stmt {
        Statement::Insert(_) => "INSERT",
        Statement::Update(_) => "UPDATE",
        Statement::Delete(_) => "DELETE",
        Statement::Truncate(_) => "TRUNCATE TABLE",
        Statement::CreateTable(ct) if ct.query.is_some() => "CREATE TABLE AS",
        Statement::CreateTable(_) => "CREATE TABLE",
        Statement::AlterTable(_) => "ALTER TABLE",
        Statement::CreateIndex(_) => "CREATE INDEX",
        Statement::CreateView(_) => "CREATE VIEW",
        Statement::Drop { object_type, .. } => match object_type {
            ast::ObjectType::Table => "DROP TABLE",
            ast::ObjectType::View => "DROP VIEW",
            ast::ObjectType::Index => "DROP INDEX",
            _ => "DROP",
        },
        Statement::CreateDatabase { .. } => "CREATE DATABASE",
        Statement::CreateSchema { .. } => "CREATE SCHEMA",
        _ => return None,
    })
}

/// The isolation level a `transaction_isolation` setting names (PostgreSQL's READ
/// UNCOMMITTED behaves as READ COMMITTED).
fn isolation_named(name: &str) -> SqlResult<Isolation> {
    match name.trim().to_ascii_lowercase().as_str() {
        "read committed" | "read uncommitted" => Ok(Isolation::ReadCommitted),
        "repeatable read" => Ok(Isolation::Snapshot),
        "serializable" => Ok(Isolation::Serializable),
        other => Err(SqlError::new(
            "22023",
            format!("invalid value for parameter \"transaction_isolation\": \"{other}\""),
        )),
    }
}

fn isolation_of(modes: &[ast::TransactionMode]) -> Option<Isolation> {
    modes.iter().find_map(|m| match m {
        ast::TransactionMode::IsolationLevel(l) => Some(match l {
            ast::TransactionIsolationLevel::ReadUncommitted
            | ast::TransactionIsolationLevel::ReadCommitted => Isolation::ReadCommitted,
            ast::TransactionIsolationLevel::RepeatableRead => Isolation::Snapshot,
            _ => Isolation::Serializable,
        }),
        _ => None,
    })
}

fn isolation_setting(i: Isolation) -> &'static str {
    match i {
        Isolation::ReadCommitted => "read committed",
        Isolation::Snapshot => "repeatable read",
        Isolation::Serializable => "serializable",
    }
}

/// Maintenance commands that have nothing to do here (storage compacts itself), answered
/// with their command tag without parsing: `VACUUM`, `ANALYZE`, `CHECKPOINT`.
pub fn maintenance(sql: &str) -> Option<&'static str> {
    let first = sql.split_whitespace().next()?.trim_end_matches(';');
    ["VACUUM", "ANALYZE", "CHECKPOINT"]
        .into_iter()
        .find(|t| first.eq_ignore_ascii_case(t))
}

/// Whether a statement outside a transaction block needs a transaction of its own to be
/// atomic: every INSERT but a one-row `VALUES` without `ON CONFLICT DO UPDATE`, and every
/// UPDATE and DELETE but those of one row by its whole primary key (the point fast path,
/// one atomic write).
fn needs_statement_txn(stmt: &Statement) -> bool {
    match stmt {
        Statement::Insert(ins) => {
            let one_row = matches!(
                ins.source.as_deref().map(|q| q.body.as_ref()),
                Some(ast::SetExpr::Values(v)) if v.rows.len() == 1
            );
            let upsert = matches!(
                &ins.on,
                Some(ast::OnInsert::OnConflict(oc))
                    if matches!(oc.action, ast::OnConflictAction::DoUpdate(_))
            );
            !one_row || upsert
        }
        Statement::Update(_) | Statement::Delete(_) => crate::fast::plan(stmt).is_none(),
        _ => false,
    }
}

/// `CREATE TABLE t (a, b) AS query` (column names without types, which sqlparser does not
/// take) as `CREATE TABLE t AS SELECT * FROM (query) AS _ctas (a, b)`. Only a whole string
/// of that one statement is rewritten.
fn ctas_column_names(sql: &str) -> Option<String> {
    let t = sql.trim().trim_end_matches(';').trim_end();
    let head = "create table ";
    if !t.get(..head.len())?.eq_ignore_ascii_case(head) || t.contains(';') {
        return None;
    }
    let open = t.find('(')?;
    let close = open + t[open..].find(')')?;
    let name = t[head.len()..open].trim();
    let names: Vec<&str> = t[open + 1..close].split(',').map(str::trim).collect();
    let bare = |n: &str| {
        !n.is_empty()
            && (n.chars().all(|c| c.is_alphanumeric() || c == '_')
                || (n.len() > 2 && n.starts_with('"') && n.ends_with('"')))
    };
    if name.is_empty() || name.contains(char::is_whitespace) || !names.iter().all(|n| bare(n)) {
        return None;
    }
    let rest = t[close + 1..].trim_start();
    let query = rest
        .get(..3)
        .filter(|a| a.eq_ignore_ascii_case("as ") || a.eq_ignore_ascii_case("as\n"))
        .map(|_| rest[3..].trim())?;
    Some(format!(
        "CREATE TABLE {name} AS SELECT * FROM ({query}) AS _ctas ({})",
        names.join(", ")
    ))
}

/// `CREATE [TEMP] TABLE t AS EXECUTE name (args) [WITH [NO] DATA]`, which sqlparser does
/// not take: a CREATE TABLE whose query carries the EXECUTE statement (as the body of an
/// `INSERT` set expression, which no query of a client's can have), bound to the prepared
/// statement when it runs ([`Session::bind_ctas_execute`]); `WITH NO DATA` is `LIMIT 0`.
/// `None`: `sql` is not one such statement.
fn ctas_execute(sql: &str) -> Option<SqlResult<Statement>> {
    let t = sql.trim().trim_end_matches(';').trim_end();
    let lower = t.to_ascii_lowercase();
    if !lower.starts_with("create ") || t.contains(';') {
        return None;
    }
    let at = lower.find(" as execute ")?;
    let (head, tail) = (&t[..at], &t[at + " as ".len()..]);
    let tail_lower = tail.to_ascii_lowercase();
    let (execute, no_data) = if tail_lower.ends_with("with no data") {
        (&tail[..tail.len() - "with no data".len()], true)
    } else if tail_lower.ends_with("with data") {
        (&tail[..tail.len() - "with data".len()], false)
    } else {
        (tail, false)
    };
    Some((|| {
        let mut create = Parser::parse_sql(&PostgreSqlDialect {}, &format!("{head} AS SELECT 1"))
            .map_err(|e| SqlError::from_parser(sql, &e.to_string()))?;
        let exec = Parser::parse_sql(&PostgreSqlDialect {}, execute.trim())
            .map_err(|e| SqlError::from_parser(sql, &e.to_string()))?;
        let (Some(Statement::CreateTable(mut ct)), Some(exec @ Statement::Execute { .. })) =
            (create.pop(), exec.into_iter().next())
        else {
            return Err(SqlError::syntax("syntax error at or near \"EXECUTE\""));
        };
        let Some(q) = ct.query.as_mut() else {
            return Err(SqlError::syntax("syntax error at or near \"EXECUTE\""));
        };
        *q.body = ast::SetExpr::Insert(exec);
        if no_data {
            q.limit_clause = Some(ast::LimitClause::LimitOffset {
                limit: Some(ast::Expr::value(ast::Value::Number("0".into(), false))),
                offset: None,
                limit_by: vec![],
            });
        }
        Ok(Statement::CreateTable(ct))
    })())
}

/// `TABLE t` (a query) spelled `SELECT * FROM t`, where a query may start: sqlparser
/// reads three tokens after `TABLE`, so `(TABLE t) AS s` and `TABLE t; ...` fail to parse.
/// `None`: no such `TABLE` in `sql`.
fn table_queries(sql: &str) -> Option<String> {
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if !sql.to_ascii_lowercase().contains("table") {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let mut starts = Vec::new();
    let mut prev: Option<&Token> = None;
    for (i, t) in tokens.iter().enumerate() {
        if matches!(t.token, Token::Whitespace(_)) {
            continue;
        }
        let is_table = matches!(&t.token, Token::Word(w) if w.keyword == Keyword::TABLE);
        let query_may_start = match prev {
            None | Some(Token::SemiColon) | Some(Token::LParen) => true,
            Some(Token::Word(w)) => matches!(
                w.keyword,
                Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT | Keyword::ALL
            ),
            _ => false,
        };
        let next_is_name = tokens[i + 1..]
            .iter()
            .find(|n| !matches!(n.token, Token::Whitespace(_)))
            .is_some_and(|n| matches!(n.token, Token::Word(_)));
        if is_table && query_may_start && next_is_name {
            starts.push(t.span.start);
        }
        prev = Some(&t.token);
    }
    replace_tokens(sql, &starts, "TABLE".len(), "SELECT * FROM")
}

/// `sql` with the `len` bytes at each token start (as the tokenizer located them) replaced
/// by `with`; `None` if there are none (or a location is not in `sql`).
pub(crate) fn replace_tokens(
    sql: &str,
    starts: &[datafusion::sql::sqlparser::tokenizer::Location],
    len: usize,
    with: &str,
) -> Option<String> {
    if starts.is_empty() {
        return None;
    }
    // Replace from the end, so earlier offsets stay valid.
    let mut out = sql.to_owned();
    for at in starts.iter().rev() {
        let chars = crate::error::char_offset(sql, at.line as usize, at.column as usize) - 1;
        let byte = sql.char_indices().nth(chars).map(|(b, _)| b)?;
        out.replace_range(byte..byte + len, with);
    }
    Some(out)
}

/// Parse SQL text into statements (PostgreSQL dialect).
pub fn parse(sql: &str) -> SqlResult<Vec<Statement>> {
    let (sql, create_user) = crate::auth::user_as_role(sql);
    let sql = match ctas_column_names(&sql) {
        Some(rewritten) => std::borrow::Cow::Owned(rewritten),
        None => sql,
    };
    let sql = match table_queries(&sql) {
        Some(rewritten) => std::borrow::Cow::Owned(rewritten),
        None => sql,
    };
    let sql = match crate::strings::variadic_marks(&sql) {
        Some(rewritten) => std::borrow::Cow::Owned(rewritten),
        None => sql,
    };
    if let Some(fetch) = crate::cursor::parse(&sql) {
        return Ok(vec![fetch?]);
    }
    if let Some(ctas) = ctas_execute(&sql) {
        return Ok(vec![ctas?]);
    }
    // ABORT [WORK | TRANSACTION]: PostgreSQL's ROLLBACK, which sqlparser does not know.
    let words: Vec<String> = sql
        .trim()
        .trim_end_matches(';')
        .split_ascii_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    if matches!(
        words
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["abort"] | ["abort", "work" | "transaction"]
    ) {
        return parse("ROLLBACK");
    }
    let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, &sql)
        .map_err(|e| SqlError::from_parser(&sql, &e.to_string()))?;
    // Only the statement that began with CREATE USER.
    if let (Some(Statement::CreateRole(c)), true) = (stmts.first_mut(), create_user) {
        c.login.get_or_insert(true);
    }
    for s in &mut stmts {
        crate::pg_catalog::rewrite(s);
        crate::strings::rename_variadic(s);
        crate::types::array_literals(s);
        crate::types::bitwise_not(s);
        crate::types::type_integer_literals(s);
        crate::types::numeric_literal_scales(s);
        crate::types::quoted_numbers_in_arithmetic(s);
        crate::types::unique_select_items(s);
    }
    Ok(stmts)
}

/// The n of a `$n` parameter.
fn placeholder(e: &ast::Expr) -> Option<usize> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok().filter(|n| *n > 0),
            _ => None,
        },
        _ => None,
    }
}

fn no_prepared(name: &str) -> SqlError {
    SqlError::new(
        "26000",
        format!("prepared statement \"{name}\" does not exist"),
    )
}

/// A statement prepared with `PREPARE name [(types)] AS ...`.
struct SqlPrepared {
    /// Declared parameter types (`None`: not declared, or `unknown`).
    types: Vec<Option<ast::DataType>>,
    stmt: Statement,
    /// The query string that prepared it.
    source: String,
    /// Each parameter's type as `pg_prepared_statements` names it (declared or inferred):
    /// one per parameter, declared or used (`$n`), so also their count.
    shown: Vec<String>,
    prepared_at: i64,
}

/// A connection's session.
pub struct Session {
    pub db: String,
    pub user: String,
    pub catalog: Arc<Catalog>,
    pub ctx: SessionContext,
    settings: BTreeMap<String, String>,
    pub txn: Option<TxnBlock>,
    /// Where reads and writes go (the open transaction, if any).
    pub access: Access,
    /// SQL-level prepared statements (`PREPARE name AS ...`).
    prepared: HashMap<String, SqlPrepared>,
    /// The text of the query string being run (`pg_prepared_statements.statement`).
    pub source: String,
    /// NOTICEs the last statements raised (SQLSTATE, message), for the server to send.
    pub notices: Vec<(&'static str, String)>,
    /// The session's temporary tables.
    pub temp: crate::temp::TempTables,
    /// Open cursors (`DECLARE`).
    cursors: crate::cursor::Cursors,
    /// How values are written (from `extra_float_digits` and `DateStyle`), shared with the
    /// functions that print values.
    style: Arc<crate::pgtext::SharedStyle>,
}

impl Session {
    pub fn new(catalog: Arc<Catalog>, db: &str, user: &str) -> Session {
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(db, "public")
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true);
        config.options_mut().sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
        let ctx = SessionContext::new_with_config(config);
        ctx.add_analyzer_rule(Arc::new(crate::checked::PgArithmetic));
        let access = Access::new(catalog.client.clone());
        ctx.register_catalog(
            db,
            Arc::new(DbCatalog {
                db: db.to_owned(),
                catalog: catalog.clone(),
                access: access.clone(),
            }),
        );
        let tmp = datafusion::catalog::MemoryCatalogProvider::new();
        // Registering a schema in a fresh memory catalog cannot fail.
        let _ = datafusion::catalog::CatalogProvider::register_schema(
            &tmp,
            TMP_SCHEMA,
            Arc::new(datafusion::catalog::MemorySchemaProvider::new()),
        );
        ctx.register_catalog(TMP_CATALOG, Arc::new(tmp));
        register_functions(&ctx, db, user);
        crate::pg_catalog::register_functions(&ctx, user);
        crate::checked::register_type_functions(&ctx);
        crate::arrays::register(&ctx);
        let style = Arc::new(crate::pgtext::SharedStyle::default());
        crate::strings::register(&ctx, &style);
        let settings = default_settings();
        Session {
            db: db.to_owned(),
            user: user.to_owned(),
            catalog,
            ctx,
            settings,
            txn: None,
            notices: Vec::new(),
            access,
            prepared: HashMap::new(),
            source: String::new(),
            temp: Default::default(),
            cursors: Default::default(),
            style,
        }
    }

    /// The session ends: drop its temporary tables.
    pub async fn close(&mut self) {
        for name in self.temp.drain() {
            let sql = format!("DROP TABLE IF EXISTS {name}");
            let Ok(Some(stmt)) = parse(&sql).map(|mut v| v.pop()) else {
                continue;
            };
            if let Err(e) = Box::pin(self.execute_inner(stmt)).await {
                tracing::warn!("dropping temporary table {name}: {e}");
            }
        }
    }

    /// Run a point statement on the fast path; `None` if it does not fit after all.
    pub async fn execute_fast(
        &mut self,
        plan: &FastPlan,
        params: &[Option<String>],
    ) -> SqlResult<Option<Output>> {
        self.statement_starts().await?;
        let r = fast::run(self, plan, params).await;
        self.statement_ended(r)
    }

    /// Before a statement of a transaction block: refuse it if the block failed, else give
    /// it its snapshot.
    async fn statement_starts(&mut self) -> SqlResult<()> {
        match &self.txn {
            Some(t) if t.failed => Err(SqlError::new(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            )),
            Some(_) => {
                self.access.new_statement().await;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// After a statement: an error fails the open block.
    fn statement_ended<T>(&mut self, r: SqlResult<T>) -> SqlResult<T> {
        if r.is_err() {
            if let Some(t) = &mut self.txn {
                t.failed = true;
            }
        }
        r
    }

    /// Run one statement.
    pub async fn execute(&mut self, mut stmt: Statement) -> SqlResult<Output> {
        let ends_block = matches!(stmt, Statement::Commit { .. } | Statement::Rollback { .. });
        if !ends_block {
            self.statement_starts().await?;
        }
        let read_only = match &self.txn {
            Some(t) => t.read_only,
            None => self.setting_on("default_transaction_read_only"),
        };
        if let (true, Some(kind)) = (read_only, write_kind(&stmt)) {
            return self.statement_ended(Err(SqlError::new(
                "25006",
                format!("cannot execute {kind} in a read-only transaction"),
            )));
        }
        let temp_change = self.temp.rewrite(&mut stmt);
        let r = if self.txn.is_none()
            && (needs_statement_txn(&stmt) || self.writes_indexed_table(&stmt).await)
        {
            self.execute_atomically(stmt).await
        } else {
            self.execute_inner(stmt).await
        };
        if r.is_ok() {
            self.temp.apply(temp_change);
        }
        if ends_block {
            return r;
        }
        self.statement_ended(r)
    }

    /// Whether `stmt` writes a table with indexes or foreign keys (then its rows, their index
    /// entries and the foreign-key checks run in one transaction).
    async fn writes_indexed_table(&self, stmt: &Statement) -> bool {
        let name = match stmt {
            Statement::Insert(ins) => match &ins.table {
                ast::TableObject::TableName(n) => n,
                _ => return false,
            },
            Statement::Update(upd) => match &upd.table.relation {
                ast::TableFactor::Table { name, .. } => name,
                _ => return false,
            },
            Statement::Delete(del) => {
                let (ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t)) =
                    &del.from;
                match t.first().map(|t| &t.relation) {
                    Some(ast::TableFactor::Table { name, .. }) => name,
                    _ => return false,
                }
            }
            _ => return false,
        };
        let Ok((schema, table)) = crate::ddl::table_name(name) else {
            return false;
        };
        matches!(
            self.catalog.table(&self.db, &schema, &table).await,
            Ok(Some(r)) if !r.indexes.is_empty()
                || !r.def.foreign_keys.is_empty()
                || !r.def.referenced_by.is_empty()
        )
    }

    /// Run a data-changing statement outside a transaction block as one transaction of its
    /// own, so it is atomic (PostgreSQL's statements are: a duplicate key in row 3 of an
    /// INSERT leaves rows 1 and 2 unwritten). Nothing reaches the tablets before the commit,
    /// so a statement that lost a race (40001) is simply run again on a fresh snapshot, as
    /// PostgreSQL's READ COMMITTED re-reads a row a concurrent transaction changed.
    async fn execute_atomically(&mut self, stmt: Statement) -> SqlResult<Output> {
        const ATTEMPTS: u32 = 20;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.access.begin(Isolation::Snapshot).await;
            let r = self.execute_inner(stmt.clone()).await;
            let txn = self.access.take().await;
            let r = match (r, txn) {
                (Ok(out), Some(t)) => t.commit().await.map(|_| out).map_err(SqlError::from),
                (r, _) => r,
            };
            match r {
                Err(e) if e.code == "40001" && attempt < ATTEMPTS => {
                    let ms = (5u64 << attempt.min(6)).min(200);
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                }
                r => return r,
            }
        }
    }

    /// The statement `EXECUTE name (args)` runs: the prepared one with each `$n` replaced
    /// by argument n (cast to the declared parameter type, if any).
    fn bind_prepared(&self, name: &ast::ObjectName, args: &[ast::Expr]) -> SqlResult<Statement> {
        let n = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(crate::ddl::ident)
            .unwrap_or_default();
        let p = self.prepared.get(&n).ok_or_else(|| no_prepared(&n))?;
        let (types, mut stmt) = (&p.types, p.stmt.clone());
        let highest = p.shown.len();
        if args.len() != highest {
            return Err(SqlError::new(
                "42601",
                format!("wrong number of parameters for prepared statement \"{n}\""),
            )
            .with_detail(format!(
                "Expected {highest} parameters but got {}.",
                args.len()
            )));
        }
        for (i, arg) in args.iter().enumerate() {
            let target = types
                .get(i)
                .and_then(Option::as_ref)
                .and_then(|t| crate::types::SqlType::from_ast(t).ok())
                .map(|(t, _)| t);
            if let (Some(to), Some(from)) = (target, crate::types::known_type(arg)) {
                if !crate::types::assignable(from, to) {
                    return Err(SqlError::new(
                        "42804",
                        format!(
                            "parameter ${} of type {} cannot be coerced to the expected type {}",
                            i + 1,
                            from.name(),
                            to.name()
                        ),
                    )
                    .with_hint("You will need to rewrite or cast the expression.")
                    .at_node(arg));
                }
            }
        }
        let _ = ast::visit_expressions_mut(&mut stmt, |e: &mut ast::Expr| {
            if let Some(i) = placeholder(e) {
                let arg = ast::Expr::Nested(Box::new(args[i - 1].clone()));
                *e = match types.get(i - 1).and_then(Option::as_ref) {
                    Some(t) => ast::Expr::Cast {
                        kind: ast::CastKind::DoubleColon,
                        expr: Box::new(arg),
                        data_type: t.clone(),
                        array: false,
                        format: None,
                    },
                    None => arg,
                };
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        Ok(stmt)
    }

    /// A `CREATE TABLE ... AS EXECUTE` ([`ctas_execute`]) given the prepared query, bound
    /// to its arguments; other statements are left alone.
    fn bind_ctas_execute(&self, ct: &mut ast::CreateTable) -> SqlResult<()> {
        let Some(q) = ct.query.as_mut() else {
            return Ok(());
        };
        let ast::SetExpr::Insert(Statement::Execute {
            name: Some(name),
            parameters,
            ..
        }) = q.body.as_ref()
        else {
            return Ok(());
        };
        let Statement::Query(bound) = self.bind_prepared(name, parameters)? else {
            return Err(SqlError::new("42809", "prepared statement is not a SELECT"));
        };
        if q.limit_clause.is_some() {
            // WITH NO DATA: the columns, no rows.
            let sql = format!("SELECT * FROM ({bound}) AS _execute LIMIT 0");
            let Some(Statement::Query(empty)) = parse(&sql)?.pop() else {
                return Err(SqlError::internal("WITH NO DATA"));
            };
            *q = empty;
        } else {
            *q = bound;
        }
        Ok(())
    }

    /// `PREPARE`: the declared types checked (`unknown` leaves one to inference), and each
    /// parameter's type named, declared or inferred from the column it is compared with.
    async fn prepare_sql(
        &self,
        data_types: Vec<ast::DataType>,
        stmt: Statement,
    ) -> SqlResult<SqlPrepared> {
        let mut types = Vec::with_capacity(data_types.len());
        for t in data_types {
            if t.to_string().eq_ignore_ascii_case("unknown") {
                types.push(None);
                continue;
            }
            crate::types::SqlType::from_ast(&t).map_err(|e| {
                let name = t.to_string().to_ascii_lowercase();
                match self.source.to_ascii_lowercase().find(&name) {
                    Some(at) => e.at(self.source[..at].chars().count() + 1),
                    None => e,
                }
            })?;
            types.push(Some(t));
        }
        let mut highest = types.len();
        let _ = ast::visit_expressions(&stmt, |e: &ast::Expr| {
            if let Some(i) = placeholder(e) {
                highest = highest.max(i);
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        let inferred = self.infer_parameters(&stmt).await;
        let shown = (1..=highest)
            .map(|i| {
                let declared = types
                    .get(i - 1)
                    .and_then(Option::as_ref)
                    .and_then(|t| crate::types::SqlType::from_ast(t).ok())
                    .map(|(t, _)| t);
                declared
                    .or_else(|| inferred.get(&i).copied())
                    .map_or_else(|| "unknown".to_owned(), |t| t.name())
            })
            .collect();
        Ok(SqlPrepared {
            types,
            stmt,
            source: self.source.clone(),
            shown,
            prepared_at: chrono::Utc::now().timestamp_micros(),
        })
    }

    /// Parameter types read from the columns they are compared with (`col = $1`), for the
    /// tables of `public` the statement names.
    async fn infer_parameters(&self, stmt: &Statement) -> HashMap<usize, crate::types::SqlType> {
        let mut tables = Vec::new();
        let _ = ast::visit_relations(stmt, |r: &ast::ObjectName| {
            if let [ast::ObjectNamePart::Identifier(id)] = r.0.as_slice() {
                tables.push(crate::ddl::ident(id));
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        let mut columns: HashMap<String, crate::types::SqlType> = HashMap::new();
        for t in tables {
            if let Ok(Some(r)) = self.catalog.table(&self.db, "public", &t).await {
                for c in &r.def.columns {
                    columns.entry(c.name.clone()).or_insert(c.ty);
                }
            }
        }
        let mut out = HashMap::new();
        let _ = ast::visit_expressions(stmt, |e: &ast::Expr| {
            if let ast::Expr::BinaryOp { left, right, .. } = e {
                for (a, b) in [(left, right), (right, left)] {
                    let col = match a.as_ref() {
                        ast::Expr::Identifier(i) => Some(crate::ddl::ident(i)),
                        ast::Expr::CompoundIdentifier(p) => p.last().map(crate::ddl::ident),
                        _ => None,
                    };
                    if let (Some(c), Some(i)) = (col, placeholder(b)) {
                        if let Some(ty) = columns.get(&c) {
                            out.entry(i).or_insert(*ty);
                        }
                    }
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        out
    }

    /// `pg_prepared_statements`: this session's SQL-level prepared statements, as a table
    /// registered for the query that reads it (which is pointed at it).
    fn prepared_statements_table(&self, stmt: &mut Statement) -> SqlResult<()> {
        let mut reads = false;
        let _ = ast::visit_relations_mut(stmt, |r: &mut ast::ObjectName| {
            let last = r.0.last().and_then(|p| p.as_ident()).map(crate::ddl::ident);
            let schema_ok = r.0.len() == 1
                || (r.0.len() == 2
                    && r.0[0]
                        .as_ident()
                        .is_some_and(|i| crate::ddl::ident(i) == "pg_catalog"));
            if schema_ok && last.as_deref() == Some("pg_prepared_statements") {
                reads = true;
                *r = ast::ObjectName::from(vec![
                    ast::Ident::new(TMP_CATALOG),
                    ast::Ident::new(TMP_SCHEMA),
                    ast::Ident::new("pg_prepared_statements"),
                ]);
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        if !reads {
            return Ok(());
        }
        let mut rows: Vec<(&String, &SqlPrepared)> = self.prepared.iter().collect();
        rows.sort_by_key(|(_, p)| p.prepared_at);
        let array = |types: &[String]| {
            let items: Vec<String> = types
                .iter()
                .map(|t| {
                    if t.contains(' ') {
                        format!("\"{t}\"")
                    } else {
                        t.clone()
                    }
                })
                .collect();
            format!("{{{}}}", items.join(","))
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("statement", DataType::Utf8, false),
            Field::new(
                "prepare_time",
                DataType::Timestamp(
                    datafusion::arrow::datatypes::TimeUnit::Microsecond,
                    Some(Arc::from(crate::types::UTC)),
                ),
                false,
            ),
            Field::new("parameter_types", DataType::Utf8, false),
            Field::new("from_sql", DataType::Boolean, false),
            Field::new("generic_plans", DataType::Int64, false),
            Field::new("custom_plans", DataType::Int64, false),
        ]));
        let n = rows.len();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef,
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.1.source.as_str()),
                )),
                Arc::new(
                    datafusion::arrow::array::TimestampMicrosecondArray::from_iter_values(
                        rows.iter().map(|r| r.1.prepared_at),
                    )
                    .with_timezone(crate::types::UTC),
                ),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| array(&r.1.shown)),
                )),
                Arc::new(datafusion::arrow::array::BooleanArray::from(vec![true; n])),
                Arc::new(datafusion::arrow::array::Int64Array::from(vec![0; n])),
                Arc::new(datafusion::arrow::array::Int64Array::from(vec![0; n])),
            ],
        )?;
        let table = datafusion::datasource::MemTable::try_new(schema, vec![vec![batch]])?;
        let name = datafusion::common::TableReference::full(
            TMP_CATALOG,
            TMP_SCHEMA,
            "pg_prepared_statements",
        );
        let _ = self.ctx.deregister_table(name.clone());
        self.ctx.register_table(name, Arc::new(table))?;
        Ok(())
    }

    async fn execute_inner(&mut self, stmt: Statement) -> SqlResult<Output> {
        if let Some(out) = Box::pin(crate::auth::execute(self, &stmt)).await {
            return out;
        }
        if let Some(plan) = fast::plan(&stmt) {
            if let Some(out) = Box::pin(fast::run(self, &plan, &[])).await? {
                return Ok(out);
            }
        }
        match stmt {
            Statement::Query(_) => Box::pin(self.query(stmt)).await,
            Statement::Explain { .. } => Box::pin(self.query(stmt)).await,
            Statement::Insert(ins) => Box::pin(dml::insert(self, &ins)).await,
            Statement::Update(upd) => Box::pin(dml::update(self, &upd)).await,
            Statement::Delete(del) => Box::pin(dml::delete(self, &del)).await,
            Statement::Truncate(t) => Box::pin(dml::truncate(self, &t)).await,
            Statement::CreateTable(mut ct) if ct.query.is_some() => {
                self.bind_ctas_execute(&mut ct)?;
                match Box::pin(dml::create_table_as(self, &ct)).await? {
                    Some(n) => Ok(Output::Command(format!("SELECT {n}"))),
                    None => {
                        let (_, name) = ddl::table_name(&ct.name)?;
                        let msg = format!("relation \"{name}\" already exists, skipping");
                        self.notices.push(("42P07", msg));
                        Ok(Output::tag("CREATE TABLE AS"))
                    }
                }
            }
            Statement::CreateTable(ct) => {
                if !Box::pin(ddl::create_table(&self.catalog, &self.db, &ct)).await? {
                    let (_, name) = ddl::table_name(&ct.name)?;
                    let msg = format!("relation \"{name}\" already exists, skipping");
                    self.notices.push(("42P07", msg));
                }
                Ok(Output::tag("CREATE TABLE"))
            }
            Statement::AlterTable(at) => {
                Box::pin(ddl::alter_table(&self.catalog, &self.db, &at)).await?;
                Ok(Output::tag("ALTER TABLE"))
            }
            Statement::CreateView(cv) => {
                Box::pin(crate::views::create(self, &cv)).await?;
                Ok(Output::tag("CREATE VIEW"))
            }
            Statement::CreateIndex(ci) => {
                if let Some(name) =
                    Box::pin(ddl::create_index(&self.catalog, &self.db, &ci)).await?
                {
                    let msg = format!("relation \"{name}\" already exists, skipping");
                    self.notices.push(("42P07", msg));
                }
                Ok(Output::tag("CREATE INDEX"))
            }
            Statement::Drop {
                object_type,
                if_exists,
                names,
                cascade,
                ..
            } => match object_type {
                ast::ObjectType::Table => {
                    let relations = names
                        .iter()
                        .map(ddl::table_name)
                        .collect::<SqlResult<Vec<_>>>()?;
                    Box::pin(crate::views::drop_dependents(
                        self, "table", &relations, cascade,
                    ))
                    .await?;
                    for name in Box::pin(ddl::drop_tables(
                        &self.catalog,
                        &self.db,
                        &names,
                        if_exists,
                        cascade,
                    ))
                    .await?
                    {
                        let msg = format!("table \"{name}\" does not exist, skipping");
                        self.notices.push(("00000", msg));
                    }
                    Ok(Output::tag("DROP TABLE"))
                }
                ast::ObjectType::Index => {
                    for name in Box::pin(ddl::drop_indexes(
                        &self.catalog,
                        &self.db,
                        &names,
                        if_exists,
                    ))
                    .await?
                    {
                        let msg = format!("index \"{name}\" does not exist, skipping");
                        self.notices.push(("00000", msg));
                    }
                    Ok(Output::tag("DROP INDEX"))
                }
                ast::ObjectType::View => {
                    for name in
                        Box::pin(crate::views::drop(self, &names, if_exists, cascade)).await?
                    {
                        let msg = format!("view \"{name}\" does not exist, skipping");
                        self.notices.push(("00000", msg));
                    }
                    Ok(Output::tag("DROP VIEW"))
                }
                ast::ObjectType::Database => {
                    for n in &names {
                        let (_, db) = ddl::table_name(n)?;
                        if db == self.db {
                            return Err(SqlError::new(
                                "55006",
                                "cannot drop the currently open database",
                            ));
                        }
                        if db.starts_with("template") || db.starts_with("system") {
                            return Err(SqlError::new(
                                "55006",
                                format!("cannot drop database \"{db}\": it is a template or system database"),
                            ));
                        }
                        if !Box::pin(self.catalog.drop_database(&db)).await? {
                            if !if_exists {
                                return Err(SqlError::new(
                                    "3D000",
                                    format!("database \"{db}\" does not exist"),
                                ));
                            }
                            let msg = format!("database \"{db}\" does not exist, skipping");
                            self.notices.push(("00000", msg));
                        }
                    }
                    Ok(Output::tag("DROP DATABASE"))
                }
                ast::ObjectType::Schema if if_exists => Ok(Output::tag("DROP SCHEMA")),
                other => Err(SqlError::unsupported(format!("DROP {other}"))),
            },
            Statement::CreateDatabase {
                db_name,
                if_not_exists,
                ..
            } => {
                let (_, name) = ddl::table_name(&db_name)?;
                self.catalog.create_database(&name, if_not_exists).await?;
                Ok(Output::tag("CREATE DATABASE"))
            }
            Statement::CreateSchema { .. } => Ok(Output::tag("CREATE SCHEMA")),
            Statement::StartTransaction { modes, .. } => {
                if self.txn.is_some() {
                    // PostgreSQL warns and stays in the block.
                    return Ok(Output::Begin("BEGIN".into()));
                }
                let isolation = match isolation_of(&modes) {
                    Some(i) => i,
                    None => isolation_named(
                        &self
                            .setting("default_transaction_isolation")
                            .unwrap_or_default(),
                    )?,
                };
                self.access.begin(isolation).await;
                self.settings.insert(
                    "transaction_isolation".into(),
                    isolation_setting(isolation).into(),
                );
                let read_only = read_only_of(&modes)
                    .unwrap_or_else(|| self.setting_on("default_transaction_read_only"));
                self.set_read_only(read_only);
                self.txn = Some(TxnBlock {
                    read_only,
                    ..Default::default()
                });
                Ok(Output::Begin("BEGIN".into()))
            }
            Statement::Set(ast::Set::SetTransaction {
                modes,
                session: true,
                ..
            }) => {
                if let Some(ro) = read_only_of(&modes) {
                    let v = if ro { "on" } else { "off" };
                    self.settings
                        .insert("default_transaction_read_only".into(), v.into());
                }
                if let Some(i) = isolation_of(&modes) {
                    self.settings.insert(
                        "default_transaction_isolation".into(),
                        isolation_setting(i).into(),
                    );
                    if self.txn.is_none() {
                        self.settings
                            .insert("transaction_isolation".into(), isolation_setting(i).into());
                    }
                }
                Ok(Output::tag("SET"))
            }
            Statement::Set(ast::Set::SetTransaction { modes, .. }) => {
                if let (Some(ro), Some(t)) = (read_only_of(&modes), &mut self.txn) {
                    t.read_only = ro;
                    self.set_read_only(ro);
                }
                if let (Some(i), Some(_)) = (isolation_of(&modes), &self.txn) {
                    // Before anything is read or written the block may change its level.
                    if self.access.isolation().await != Some(i) {
                        self.access.begin(i).await;
                    }
                    self.settings
                        .insert("transaction_isolation".into(), isolation_setting(i).into());
                }
                Ok(Output::tag("SET"))
            }
            Statement::Declare { stmts } => {
                for d in stmts {
                    let (Some(ast::DeclareType::Cursor), Some(q), [name]) =
                        (&d.declare_type, d.for_query, d.names.as_slice())
                    else {
                        return Err(SqlError::unsupported("this DECLARE"));
                    };
                    let hold = d.hold == Some(true);
                    if !hold && self.txn.is_none() {
                        return Err(SqlError::new(
                            "25P01",
                            "DECLARE CURSOR can only be used in transaction blocks",
                        ));
                    }
                    let name = ddl::ident(name);
                    let Output::Rows { schema, batches } =
                        Box::pin(self.query(Statement::Query(q))).await?
                    else {
                        return Err(SqlError::internal("a cursor's query returned no rows"));
                    };
                    let scroll = d.scroll != Some(false);
                    let cursor = crate::cursor::Cursor::new(schema, &batches, scroll, hold)?;
                    self.cursors.declare(name, cursor)?;
                }
                Ok(Output::tag("DECLARE CURSOR"))
            }
            Statement::Fetch {
                name,
                direction,
                into,
                ..
            } => {
                let (schema, batches) = self.cursors.get(&ddl::ident(&name))?.fetch(&direction)?;
                if into.is_some_and(|i| i.to_string() == crate::cursor::MOVE_MARKER) {
                    let n: usize = batches.iter().map(|b| b.num_rows()).sum();
                    return Ok(Output::Command(format!("MOVE {n}")));
                }
                Ok(Output::Returning {
                    command: "FETCH",
                    schema,
                    batches,
                })
            }
            Statement::Close { cursor } => {
                match cursor {
                    ast::CloseCursor::All => self.cursors.close(None)?,
                    ast::CloseCursor::Specific { name } => {
                        self.cursors.close(Some(&ddl::ident(&name)))?
                    }
                }
                Ok(Output::tag("CLOSE CURSOR"))
            }
            Statement::Commit { .. } => self.commit().await,
            Statement::Rollback { savepoint, .. } => match savepoint {
                Some(name) => self.rollback_to(&name.value).await,
                None => {
                    self.end_block().await;
                    Ok(Output::End("ROLLBACK".into()))
                }
            },
            Statement::Savepoint { name } => {
                let Some(sp) = self.access.savepoint().await else {
                    return Err(SqlError::new(
                        "25P01",
                        "SAVEPOINT can only be used in transaction blocks",
                    ));
                };
                if let Some(t) = &mut self.txn {
                    t.savepoints.push((name.value.clone(), sp));
                }
                Ok(Output::tag("SAVEPOINT"))
            }
            Statement::ReleaseSavepoint { name } => {
                let Some(t) = &mut self.txn else {
                    return Err(SqlError::new(
                        "25P01",
                        "RELEASE SAVEPOINT can only be used in transaction blocks",
                    ));
                };
                match t.savepoints.iter().rposition(|(n, _)| *n == name.value) {
                    Some(i) => t.savepoints.truncate(i),
                    None => {
                        return Err(SqlError::new(
                            "3B001",
                            format!("savepoint \"{}\" does not exist", name.value),
                        ))
                    }
                }
                Ok(Output::tag("RELEASE"))
            }
            Statement::Set(set) => self.set(set),
            Statement::ShowVariable { variable } => self.show(&variable),
            Statement::Vacuum(_) => Ok(Output::tag("VACUUM")),
            Statement::Analyze(_) => Ok(Output::tag("ANALYZE")),
            Statement::Discard { .. } => {
                self.prepared.clear();
                Ok(Output::tag("DISCARD ALL"))
            }
            Statement::Prepare {
                name,
                data_types,
                statement,
            } => {
                let name = crate::ddl::ident(&name);
                if self.prepared.contains_key(&name) {
                    return Err(SqlError::new(
                        "42P05",
                        format!("prepared statement \"{name}\" already exists"),
                    ));
                }
                let p = self.prepare_sql(data_types, *statement).await?;
                self.prepared.insert(name, p);
                Ok(Output::tag("PREPARE"))
            }
            Statement::Execute {
                name: Some(name),
                parameters,
                immediate: false,
                ..
            } => {
                let stmt = self.bind_prepared(&name, &parameters)?;
                Box::pin(self.execute_inner(stmt)).await
            }
            Statement::Deallocate { name, .. } => {
                let n = crate::ddl::ident(&name);
                if n == "all" && name.quote_style.is_none() {
                    self.prepared.clear();
                    return Ok(Output::tag("DEALLOCATE ALL"));
                }
                if self.prepared.remove(&n).is_none() {
                    return Err(no_prepared(&n));
                }
                Ok(Output::tag("DEALLOCATE"))
            }
            Statement::Reset(r) => {
                let defaults = default_settings();
                match r.reset {
                    ast::Reset::ALL => {
                        // The transaction's own settings stay as they are.
                        for (k, v) in defaults {
                            if !k.starts_with("transaction_") {
                                self.settings.insert(k, v);
                            }
                        }
                    }
                    ast::Reset::ConfigurationParameter(name) => {
                        let name = name.to_string().to_ascii_lowercase();
                        match defaults.get(&name) {
                            Some(v) => {
                                self.settings.insert(name, v.clone());
                            }
                            None => {
                                self.settings.remove(&name);
                            }
                        }
                    }
                }
                self.sync_style();
                Ok(Output::tag("RESET"))
            }
            other => {
                let text = other.to_string();
                let head: String = text
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                Err(SqlError::unsupported(head))
            }
        }
    }

    /// COMMIT: all the block's writes become visible at once, or (a conflict: 40001) none.
    async fn commit(&mut self) -> SqlResult<Output> {
        let failed = self.txn.as_ref().is_some_and(|t| t.failed);
        let txn = self.access.take().await;
        self.end_block().await;
        match txn {
            // PostgreSQL answers COMMIT of a failed block with ROLLBACK.
            Some(_) if failed => Ok(Output::End("ROLLBACK".into())),
            Some(t) => {
                t.commit().await?;
                Ok(Output::End("COMMIT".into()))
            }
            None => Ok(Output::End("COMMIT".into())),
        }
    }

    /// Leave the transaction block (its buffered writes are dropped).
    /// Whether boolean setting `name` is on (`on`, `true`, `yes`, `1`).
    fn setting_on(&self, name: &str) -> bool {
        self.setting(name).is_some_and(|v| {
            matches!(
                v.trim().trim_matches('\'').to_ascii_lowercase().as_str(),
                "on" | "true" | "yes" | "1"
            )
        })
    }

    /// `transaction_read_only` as SHOW reports it.
    fn set_read_only(&mut self, read_only: bool) {
        let v = if read_only { "on" } else { "off" };
        self.settings
            .insert("transaction_read_only".into(), v.into());
    }

    async fn end_block(&mut self) {
        drop(self.access.take().await);
        self.txn = None;
        let default_ro = self.setting_on("default_transaction_read_only");
        self.set_read_only(default_ro);
        self.cursors.end_of_block();
        let default = self
            .setting("default_transaction_isolation")
            .unwrap_or_else(|| "read committed".into());
        self.settings
            .insert("transaction_isolation".into(), default);
    }

    /// ROLLBACK TO SAVEPOINT: forget the writes since it; the block is usable again.
    async fn rollback_to(&mut self, name: &str) -> SqlResult<Output> {
        let Some(t) = &mut self.txn else {
            return Err(SqlError::new(
                "25P01",
                "ROLLBACK TO SAVEPOINT can only be used in transaction blocks",
            ));
        };
        let Some(i) = t.savepoints.iter().rposition(|(n, _)| n == name) else {
            t.failed = true;
            return Err(SqlError::new(
                "3B001",
                format!("savepoint \"{name}\" does not exist"),
            ));
        };
        t.savepoints.truncate(i + 1);
        t.failed = false;
        let sp = t.savepoints[i].1.clone();
        self.access.rollback_to(sp).await;
        Ok(Output::tag("ROLLBACK"))
    }

    /// Plan and run a query with DataFusion; result columns get PostgreSQL's names.
    pub async fn query(&self, mut stmt: Statement) -> SqlResult<Output> {
        self.prepared_statements_table(&mut stmt)?;
        let names = match &stmt {
            Statement::Query(q) => output_names(q),
            _ => None,
        };
        let (schema, batches) = match self.run_datafusion(stmt.clone()).await {
            Err(e) if crate::correlated::refused(&e) => {
                match Box::pin(crate::correlated::run(self, &stmt)).await? {
                    Some(result) => result,
                    None => return Err(e),
                }
            }
            Err(e) if crate::correlated::null_subquery(&e) => {
                let mut again = stmt.clone();
                crate::correlated::nullable_subqueries(&mut again);
                self.run_datafusion(again).await?
            }
            r => r?,
        };
        let schema = rename(&schema, names);
        let batches = batches
            .into_iter()
            .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Output::Rows { schema, batches })
    }

    /// The names of a query's output columns, as PostgreSQL names them (the query is
    /// planned, not run: unknown tables and columns are errors).
    pub async fn output_columns(&self, mut stmt: Statement) -> SqlResult<Vec<(String, DataType)>> {
        let names = match &stmt {
            Statement::Query(q) => output_names(q),
            _ => None,
        };
        crate::views::expand(&mut stmt, &self.catalog.views(&self.db).await?)?;
        let plan = self
            .ctx
            .state()
            .statement_to_plan(DfStatement::Statement(Box::new(stmt)))
            .await?;
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        Ok(rename(&schema, names)
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect())
    }

    /// Run a read-only statement through DataFusion and collect its result.
    /// Plan a query without running it: name resolution and type errors surface.
    pub async fn plan_only(&self, mut stmt: Statement) -> SqlResult<()> {
        crate::views::expand(&mut stmt, &self.catalog.views(&self.db).await?)?;
        let state = self.ctx.state();
        state
            .statement_to_plan(DfStatement::Statement(Box::new(stmt)))
            .await?;
        Ok(())
    }

    pub async fn run_datafusion(
        &self,
        mut stmt: Statement,
    ) -> SqlResult<(SchemaRef, Vec<RecordBatch>)> {
        // information_schema lists from the cached names: refresh them.
        self.catalog.table_names(&self.db).await?;
        crate::views::expand(&mut stmt, &self.catalog.views(&self.db).await?)?;
        let state = self.ctx.state();
        let aliases = column_aliases(&stmt);
        let plan = state
            .statement_to_plan(DfStatement::Statement(Box::new(stmt)))
            .await
            .map_err(|e| alias_count_error(SqlError::from(e), &aliases))?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)?;
        let df = self.ctx.execute_logical_plan(plan).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        Ok((schema, batches))
    }

    fn set(&mut self, set: ast::Set) -> SqlResult<Output> {
        match set {
            ast::Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = variable.to_string().to_ascii_lowercase();
                let value = values
                    .iter()
                    .map(|v| match v {
                        ast::Expr::Value(v) => match &v.value {
                            ast::Value::SingleQuotedString(s) => s.clone(),
                            other => other.to_string(),
                        },
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                self.set_setting(name, value)?;
            }
            ast::Set::SetTimeZone { value, .. } => {
                let v = match &value {
                    ast::Expr::Value(v) => match &v.value {
                        ast::Value::SingleQuotedString(s) => s.clone(),
                        other => other.to_string(),
                    },
                    other => other.to_string(),
                };
                self.settings.insert("timezone".into(), v);
            }
            _ => {}
        }
        Ok(Output::tag("SET"))
    }

    /// Set one setting (by `SET`, or from the startup packet). `DateStyle` keeps the part
    /// not named (`SET DateStyle = 'Postgres'` keeps `MDY`) and refuses what is not one.
    pub fn set_setting(&mut self, name: String, value: String) -> SqlResult<()> {
        let value = if name == "datestyle" {
            let style = self.text_style().with_datestyle(&value).ok_or_else(|| {
                let word = value
                    .split(',')
                    .map(str::trim)
                    .find(|w| crate::pgtext::Style::default().with_datestyle(w).is_none())
                    .unwrap_or(&value);
                SqlError::new(
                    "22023",
                    format!("invalid value for parameter \"DateStyle\": \"{value}\""),
                )
                .with_detail(format!("Unrecognized key word: \"{word}\"."))
            })?;
            style.datestyle()
        } else {
            value
        };
        self.settings.insert(name, value);
        self.sync_style();
        Ok(())
    }

    /// The startup packet's settings (`DateStyle`, `TimeZone`, `extra_float_digits`,
    /// `application_name` ..., and `-c name=value` in `options`), as libpq sends them from
    /// `PGDATESTYLE`, `PGTZ` and `PGOPTIONS`. Unknown names and bad values are ignored.
    pub fn apply_startup<'a>(
        &mut self,
        params: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) {
        let known = default_settings();
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in params {
            let k = k.to_ascii_lowercase();
            if k == "options" {
                let mut words = v.split_ascii_whitespace();
                while let Some(w) = words.next() {
                    let kv = match w {
                        "-c" => words.next().unwrap_or_default(),
                        w => w
                            .strip_prefix("-c")
                            .or_else(|| w.strip_prefix("--"))
                            .unwrap_or_default(),
                    };
                    if let Some((k, v)) = kv.split_once('=') {
                        pairs.push((k.to_ascii_lowercase().replace('-', "_"), v.to_owned()));
                    }
                }
            } else {
                pairs.push((k, v.clone()));
            }
        }
        for (k, v) in pairs {
            let settable = known.contains_key(&k)
                && !k.starts_with("server_")
                && !k.starts_with("transaction_")
                && k != "integer_datetimes";
            if settable {
                let _ = self.set_setting(k, v);
            }
        }
    }

    /// How values are written now.
    pub fn text_style(&self) -> crate::pgtext::Style {
        self.style.get()
    }

    /// Recompute how values are written from the settings.
    fn sync_style(&self) {
        let base = crate::pgtext::Style {
            float_digits: self.extra_float_digits(),
            ..Default::default()
        };
        let style = self
            .setting("datestyle")
            .and_then(|d| base.with_datestyle(&d))
            .unwrap_or(base);
        self.style.set(style);
    }

    /// Current value of a setting, as `SHOW` prints it.
    /// `extra_float_digits` (default 1): how floats are written in results.
    pub fn extra_float_digits(&self) -> i32 {
        self.setting("extra_float_digits")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(1)
            .clamp(-15, 3)
    }

    pub fn setting(&self, name: &str) -> Option<String> {
        self.settings.get(&name.to_ascii_lowercase()).cloned()
    }

    fn show(&self, variable: &[ast::Ident]) -> SqlResult<Output> {
        let name = variable
            .iter()
            .map(|i| i.value.clone())
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase();
        let (col, value) = match name.as_str() {
            "all" => {
                let names: Vec<&str> = self.settings.keys().map(|s| s.as_str()).collect();
                let values: Vec<&str> = self.settings.values().map(|s| s.as_str()).collect();
                let schema = Arc::new(Schema::new(vec![
                    Field::new("name", DataType::Utf8, false),
                    Field::new("setting", DataType::Utf8, false),
                ]));
                let batch = RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from(names)) as ArrayRef,
                        Arc::new(StringArray::from(values)),
                    ],
                )?;
                return Ok(Output::Rows {
                    schema,
                    batches: vec![batch],
                });
            }
            "transaction isolation level" => (
                "transaction_isolation".to_owned(),
                self.setting("transaction_isolation"),
            ),
            // The names PostgreSQL spells in mixed case are shown so.
            "datestyle" => ("DateStyle".to_owned(), self.setting(&name)),
            "timezone" => ("TimeZone".to_owned(), self.setting(&name)),
            "intervalstyle" => ("IntervalStyle".to_owned(), self.setting(&name)),
            n => (n.to_owned(), self.setting(n)),
        };
        let value = value.ok_or_else(|| {
            SqlError::new(
                "42704",
                format!("unrecognized configuration parameter \"{name}\""),
            )
        })?;
        let schema = Arc::new(Schema::new(vec![Field::new(col, DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![value])) as ArrayRef],
        )?;
        Ok(Output::Rows {
            schema,
            batches: vec![batch],
        })
    }
}

/// `schema` (a query's DataFusion result schema) with the column names PostgreSQL gives
/// `stmt`'s results.
pub fn pg_schema(stmt: &Statement, schema: &SchemaRef) -> SchemaRef {
    let names = match stmt {
        Statement::Query(q) => output_names(q),
        _ => None,
    };
    rename(schema, names)
}

/// The column names PostgreSQL gives a query's results, when every item can be named
/// (no wildcards): an alias, a column's name, a function's name, else `?column?`.
fn output_names(q: &ast::Query) -> Option<Vec<String>> {
    let mut body = q.body.as_ref();
    while let ast::SetExpr::SetOperation { left, .. } = body {
        body = left.as_ref();
    }
    let ast::SetExpr::Select(sel) = body else {
        return None;
    };
    sel.projection
        .iter()
        .map(|item| match item {
            ast::SelectItem::ExprWithAlias { alias, expr }
                if alias.value.starts_with(crate::types::DUPLICATE_ALIAS) =>
            {
                Some(expr_name(expr))
            }
            ast::SelectItem::ExprWithAlias { alias, .. } => Some(ddl::ident(alias)),
            ast::SelectItem::UnnamedExpr(e) => Some(expr_name(e)),
            _ => None,
        })
        .collect()
}

fn expr_name(e: &ast::Expr) -> String {
    figure_colname(e).0
}

/// PostgreSQL's `FigureColname`: a result column's name and how strongly the expression
/// suggests it (2: a column or function name; 1: a fallback such as `case`; 0: none, so
/// `?column?`). A cast of a weakly named expression is named for its type.
fn figure_colname(e: &ast::Expr) -> (String, u8) {
    use ast::Expr as E;
    let none = || ("?column?".to_owned(), 0);
    match e {
        E::Identifier(i) => (ddl::ident(i), 2),
        E::CompoundIdentifier(parts) => (parts.last().map(ddl::ident).unwrap_or_default(), 2),
        E::Function(f) => f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| (crate::strings::shown_name(&ddl::ident(i)).to_owned(), 2))
            .unwrap_or_else(none),
        e if crate::types::is_typed_literal(e) => none(),
        E::TypedString(ts) => type_colname(&ts.data_type).unwrap_or_else(none),
        E::Cast {
            expr, data_type, ..
        } => {
            let inner = figure_colname(expr);
            if inner.1 > 1 {
                return inner;
            }
            type_colname(data_type).unwrap_or(inner)
        }
        E::Nested(inner) => figure_colname(inner),
        // `a[1]` is named for its array.
        E::CompoundFieldAccess { root, access_chain }
            if access_chain
                .iter()
                .all(|a| matches!(a, ast::AccessExpr::Subscript(_))) =>
        {
            figure_colname(root)
        }
        E::Collate { expr, .. } => figure_colname(expr),
        E::Case { .. } => ("case".into(), 1),
        E::Exists { .. } => ("exists".into(), 2),
        E::Subquery(q) => output_names(q)
            .and_then(|n| n.into_iter().next())
            .map(|n| (n, 2))
            .unwrap_or_else(none),
        E::Extract { field, .. } => (field.to_string().to_lowercase(), 2),
        E::Substring { .. } => ("substring".into(), 2),
        E::Trim { .. } => ("btrim".into(), 2),
        E::Position { .. } => ("position".into(), 2),
        E::Ceil { .. } => ("ceil".into(), 2),
        E::Floor { .. } => ("floor".into(), 2),
        // `'{1,2}'::int[]` is an unnamed array here (see `types::array_literals`).
        E::Array(a) if a.named => ("array".into(), 2),
        _ => none(),
    }
}

/// The name PostgreSQL gives a value cast to `ty` (`int4`; an array: its element's).
fn type_colname(ty: &ast::DataType) -> Option<(String, u8)> {
    let ty = match ty {
        ast::DataType::Array(
            ast::ArrayElemTypeDef::SquareBracket(t, _) | ast::ArrayElemTypeDef::AngleBracket(t),
        ) => t.as_ref(),
        t => t,
    };
    crate::types::SqlType::from_ast(ty)
        .ok()
        .map(|(t, _)| (t.pg().name().to_owned(), 1))
}

/// `schema` with its columns renamed to `names` (when the counts match), and DataFusion's
/// qualifiers (`t.col`) dropped either way.
fn rename(schema: &SchemaRef, names: Option<Vec<String>>) -> SchemaRef {
    let names = names.filter(|n| n.len() == schema.fields().len());
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let name = match &names {
                Some(n) => n[i].clone(),
                None => f.name().rsplit('.').next().unwrap_or(f.name()).to_owned(),
            };
            Field::new(name, f.data_type().clone(), true).with_metadata(f.metadata().clone())
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Settings a new session starts with (those `SHOW` knows).
fn default_settings() -> BTreeMap<String, String> {
    [
        ("server_version", SERVER_VERSION),
        ("server_version_num", "150002"),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("datestyle", "ISO, MDY"),
        ("timezone", "UTC"),
        ("intervalstyle", "postgres"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("search_path", "\"$user\", public"),
        ("transaction_isolation", "read committed"),
        ("default_transaction_isolation", "read committed"),
        ("transaction_read_only", "off"),
        ("default_transaction_read_only", "off"),
        ("max_identifier_length", "63"),
        ("application_name", ""),
        ("extra_float_digits", "1"),
        ("statement_timeout", "0"),
        ("lc_messages", "C"),
        ("lc_collate", "C"),
        ("lc_ctype", "C"),
        ("is_superuser", "on"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The FROM items of `stmt` given column aliases: (alias, how many columns it names).
fn column_aliases(stmt: &Statement) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let _ = ast::Visit::visit(stmt, &mut AliasCollector { out: &mut out });
    out
}

struct AliasCollector<'a> {
    out: &'a mut Vec<(String, usize)>,
}

impl ast::Visitor for AliasCollector<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, tf: &ast::TableFactor) -> std::ops::ControlFlow<()> {
        let alias = match tf {
            ast::TableFactor::Table { alias, .. }
            | ast::TableFactor::Derived { alias, .. }
            | ast::TableFactor::Function { alias, .. }
            | ast::TableFactor::TableFunction { alias, .. } => alias.as_ref(),
            _ => None,
        };
        if let Some(a) = alias.filter(|a| !a.columns.is_empty()) {
            self.out.push((ddl::ident(&a.name), a.columns.len()));
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// DataFusion's "Source table contains 1 columns but only 2 names given as column alias"
/// in PostgreSQL's words, naming the alias.
fn alias_count_error(e: SqlError, aliases: &[(String, usize)]) -> SqlError {
    let Some(rest) = e.message.strip_prefix("Source table contains ") else {
        return e;
    };
    let nums: Vec<usize> = rest.split(' ').filter_map(|w| w.parse().ok()).collect();
    let [have, given] = nums[..] else {
        return e;
    };
    match aliases.iter().find(|(_, n)| *n == given) {
        Some((name, _)) => SqlError::new(
            "42P10",
            format!("table \"{name}\" has {have} columns available but {given} columns specified"),
        ),
        None => e,
    }
}

/// PostgreSQL functions DataFusion lacks or names differently.
fn register_functions(ctx: &SessionContext, db: &str, user: &str) {
    let constant = |name: &str, value: String| {
        let f = move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::Utf8(Some(value.clone())),
            ))
        };
        datafusion::logical_expr::create_udf(
            name,
            vec![],
            DataType::Utf8,
            Volatility::Stable,
            Arc::new(f),
        )
    };
    let version = format!(
        "PostgreSQL {SERVER_VERSION} (AiSQL {}) on x86_64-pc-linux-gnu, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION")
    );
    ctx.register_udf(constant("version", version));
    ctx.register_udf(constant("current_database", db.to_owned()));
    ctx.register_udf(constant("current_schema", "public".to_owned()));
    ctx.register_udf(constant("current_user", user.to_owned()));
    ctx.register_udf(constant("session_user", user.to_owned()));
    // PostgreSQL's names for functions DataFusion has under others.
    for (name, alias) in [("ceil", "ceiling"), ("signum", "sign")] {
        if let Ok(f) = datafusion::execution::FunctionRegistry::udf(ctx, name) {
            ctx.register_udf(f.as_ref().clone().with_aliases([alias]));
        }
    }
    // booleq(a, b) and boolne(a, b): the functions behind boolean `=` and `<>`.
    for (name, ne) in [("booleq", false), ("boolne", true)] {
        let f = move |args: &[ColumnarValue]| {
            use datafusion::arrow::compute::kernels::cmp;
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let [a, b] = arrays.as_slice() else {
                return datafusion::common::exec_err!("{name} takes two arguments");
            };
            let out = if ne { cmp::neq(a, b) } else { cmp::eq(a, b) }?;
            Ok(ColumnarValue::Array(Arc::new(out)))
        };
        ctx.register_udf(datafusion::logical_expr::create_udf(
            name,
            vec![DataType::Boolean, DataType::Boolean],
            DataType::Boolean,
            Volatility::Immutable,
            Arc::new(f),
        ));
    }
    ctx.register_udf(
        datafusion::logical_expr::async_udf::AsyncScalarUDF::new(Arc::new(PgSleep::new()))
            .into_scalar_udf(),
    );
}

/// `pg_sleep(seconds)`: an async function, so the wait holds no thread and a CancelRequest
/// (which drops the running statement) ends it at once.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgSleep {
    signature: datafusion::logical_expr::Signature,
}

impl PgSleep {
    fn new() -> Self {
        PgSleep {
            signature: datafusion::logical_expr::Signature::uniform(
                1,
                vec![DataType::Float64],
                Volatility::Volatile,
            ),
        }
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for PgSleep {
    fn name(&self) -> &str {
        "pg_sleep"
    }
    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> datafusion::common::Result<DataType> {
        // PostgreSQL's void: shown as an empty value.
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(
        &self,
        _args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        datafusion::common::not_impl_err!("pg_sleep runs asynchronously")
    }
}

#[async_trait::async_trait]
impl datafusion::logical_expr::async_udf::AsyncScalarUDFImpl for PgSleep {
    async fn invoke_async_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        use datafusion::common::ScalarValue;
        let rows = args.number_rows;
        let secs: f64 = match args.args.first() {
            Some(ColumnarValue::Scalar(ScalarValue::Float64(Some(s)))) => s * rows as f64,
            Some(ColumnarValue::Array(a)) => a
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Float64Array>()
                .map(|a| a.iter().flatten().sum())
                .unwrap_or(0.0),
            _ => 0.0,
        };
        // At most a day, as a guard against absurd arguments.
        let secs = if secs.is_finite() {
            secs.clamp(0.0, 86_400.0)
        } else {
            0.0
        };
        tokio::time::sleep(std::time::Duration::from_secs_f64(secs)).await;
        Ok(ColumnarValue::Array(
            ScalarValue::Utf8(None).to_array_of_size(rows)?,
        ))
    }
}

/// The statement type metrics label `stmt` with (a closed set, lower case).
pub fn statement_kind(stmt: &Statement) -> &'static str {
    match stmt {
        Statement::Query(_) => "select",
        Statement::Explain { .. } => "explain",
        Statement::Insert(_) => "insert",
        Statement::Update(_) => "update",
        Statement::Delete(_) => "delete",
        Statement::Truncate(_) => "truncate",
        Statement::CreateTable(_) => "create_table",
        Statement::AlterTable(_) => "alter_table",
        Statement::CreateIndex(_) => "create_index",
        Statement::Drop { .. } => "drop",
        Statement::CreateDatabase { .. } => "create_database",
        Statement::CreateSchema { .. } => "create_schema",
        Statement::StartTransaction { .. } => "begin",
        Statement::Commit { .. } => "commit",
        Statement::Rollback { .. } => "rollback",
        Statement::Savepoint { .. } | Statement::ReleaseSavepoint { .. } => "savepoint",
        Statement::Set(_) => "set",
        Statement::ShowVariable { .. } => "show",
        Statement::Vacuum(_) | Statement::Analyze(_) => "maintenance",
        Statement::Discard { .. } | Statement::Reset(_) => "reset",
        _ => "other",
    }
}

#[cfg(test)]
mod ctas_tests {
    use super::{ctas_column_names, table_queries};

    #[test]
    fn table_queries_become_selects() {
        assert_eq!(
            table_queries("SELECT * FROM (TABLE t) AS s (a, b); TABLE u").as_deref(),
            Some("SELECT * FROM (SELECT * FROM t) AS s (a, b); SELECT * FROM u")
        );
        assert_eq!(table_queries("CREATE TABLE t (a int); DROP TABLE t"), None);
        assert_eq!(table_queries("SELECT 'TABLE x'"), None);
    }

    #[test]
    fn column_names_without_types_become_a_derived_table_alias() {
        assert_eq!(
            ctas_column_names("CREATE TABLE t (a, \"B\") AS SELECT 1, 2;").as_deref(),
            Some("CREATE TABLE t AS SELECT * FROM (SELECT 1, 2) AS _ctas (a, \"B\")")
        );
        for untouched in [
            "CREATE TABLE t (a int, b text)",
            "CREATE TABLE t AS SELECT 1",
            "CREATE TABLE t (a, b) AS SELECT 1, 2; SELECT 1",
            "SELECT 1",
        ] {
            assert_eq!(ctas_column_names(untouched), None, "{untouched}");
        }
    }
}
