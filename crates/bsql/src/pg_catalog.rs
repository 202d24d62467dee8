//! `pg_catalog`: the PostgreSQL system tables psql's `\dt`, `\d` (listing), `\dn` and `\l`
//! read, built on each query from our catalog, and the functions those queries call.
//! `pg_class` lists each table and its primary key's index (`<table>_pkey`), which
//! `pg_index` describes.
//!
//! Object ids are synthetic but stable: `pg_catalog` is 11 and `public` 2200 (as in
//! PostgreSQL), a table's oid is a hash of its database, schema and name above 16384 (the
//! first oid PostgreSQL gives user objects), a database's a hash of its name.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    new_null_array, ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast;

use crate::catalog::Catalog;

/// The schema's name.
pub const SCHEMA: &str = "pg_catalog";
/// Tables it has.
const TABLES: [&str; 6] = [
    "pg_namespace",
    "pg_class",
    "pg_am",
    "pg_database",
    "pg_index",
    "pg_description",
];
/// The system tables here, with their oids in PostgreSQL (rows of `pg_class`).
const SYSTEM_OIDS: [(&str, i64); 6] = [
    ("pg_namespace", 2615),
    ("pg_class", 1259),
    ("pg_am", 2601),
    ("pg_database", 1262),
    ("pg_index", 2610),
    ("pg_description", 2609),
];
/// The oid of `pg_class` in PostgreSQL (`'pg_class'::regclass`, as `classoid` in
/// `pg_description`).
const PG_CLASS_OID: i64 = 1259;
/// The owner of everything (PostgreSQL's bootstrap superuser oid).
const OWNER: i64 = 10;
/// The role that owns `public` in PostgreSQL 15.
const PG_DATABASE_OWNER: i64 = 6171;
/// Databases that always exist (see `server::database_exists`).
const BUILTIN_DATABASES: [&str; 3] = ["postgres", "template1", "yugabyte"];

/// Schemas (oid, name) every database has.
fn namespaces() -> Vec<(i64, &'static str)> {
    vec![
        (11, "pg_catalog"),
        (2200, "public"),
        (13_000, "information_schema"),
    ]
}

/// A stable oid for a named object, at or above 16384.
pub fn oid_of(parts: &[&str]) -> i64 {
    // FNV-1a over the parts, NUL-separated.
    let mut d: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parts.iter().flat_map(|p| p.bytes().chain([0])) {
        d ^= b as u64;
        d = d.wrapping_mul(0x100_0000_01b3);
    }
    16_384 + (d % (i32::MAX as u64 - 16_384)) as i64
}

/// An index of a table: name, column positions, whether it is the primary key, whether it
/// is unique.
type TableIndex = (String, Vec<usize>, bool, bool);

/// `pg_catalog` of database `db`.
#[derive(Debug)]
pub struct PgCatalog {
    pub db: String,
    pub catalog: Arc<Catalog>,
}

fn utf8(v: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

fn int64(v: Vec<i64>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}

fn table(fields: Vec<(&str, DataType, bool)>, columns: Vec<ArrayRef>) -> DfResult<Arc<MemTable>> {
    let schema = Arc::new(Schema::new(
        fields
            .into_iter()
            .map(|(n, t, null)| Field::new(n, t, null))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

impl PgCatalog {
    /// (schema, table, indexes) of every table, in name order; each index is (name, column
    /// positions, primary key?), the primary key's first (`TableDef::all_indexes`).
    async fn tables(&self) -> DfResult<Vec<(String, String, Vec<TableIndex>)>> {
        let external = |e: crate::error::SqlError| DataFusionError::External(Box::new(e));
        let mut names = self.catalog.table_names(&self.db).await.map_err(external)?;
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for (schema, name) in names {
            let indexes = match self.catalog.table(&self.db, &schema, &name).await {
                Ok(Some(r)) => r
                    .def
                    .all_indexes()
                    .into_iter()
                    .map(|i| {
                        let cols = i.columns.into_iter().map(|(c, _)| c).collect();
                        (i.name, cols, i.primary, i.unique)
                    })
                    .collect(),
                _ => Vec::new(),
            };
            out.push((schema, name, indexes));
        }
        Ok(out)
    }

    async fn build(&self, name: &str) -> DfResult<Option<Arc<MemTable>>> {
        Ok(Some(match name {
            "pg_namespace" => {
                let ns = namespaces();
                let n = ns.len();
                table(
                    vec![
                        ("oid", DataType::Int64, false),
                        ("nspname", DataType::Utf8, false),
                        ("nspowner", DataType::Int64, false),
                        ("nspacl", DataType::Utf8, true),
                    ],
                    vec![
                        int64(ns.iter().map(|(o, _)| *o).collect()),
                        utf8(ns.iter().map(|(_, s)| s.to_string()).collect()),
                        int64(
                            ns.iter()
                                .map(|(_, s)| {
                                    if *s == "public" {
                                        PG_DATABASE_OWNER
                                    } else {
                                        OWNER
                                    }
                                })
                                .collect(),
                        ),
                        new_null_array(&DataType::Utf8, n),
                    ],
                )?
            }
            "pg_class" => {
                let ns_oid = |s: &str| {
                    namespaces()
                        .into_iter()
                        .find(|(_, name)| *name == s)
                        .map_or_else(|| oid_of(&[&self.db, s]), |(o, _)| o)
                };
                // (oid, name, namespace, kind, access method, has an index): each table, and
                // the index of its primary key (`<table>_pkey`, as PostgreSQL names it).
                let mut rels: Vec<(i64, String, i64, &str, i64, bool)> = SYSTEM_OIDS
                    .iter()
                    .map(|(name, oid)| (*oid, (*name).to_owned(), 11, "r", 2, true))
                    .collect();
                for (schema, name, indexes) in self.tables().await? {
                    let (schema, name) = (&schema, &name);
                    let ns = ns_oid(schema);
                    rels.push((
                        oid_of(&[&self.db, schema, name]),
                        name.clone(),
                        ns,
                        "r",
                        2,
                        !indexes.is_empty(),
                    ));
                    for (index, _, _, _) in indexes {
                        rels.push((
                            oid_of(&[&self.db, schema, &index]),
                            index,
                            ns,
                            "i",
                            403,
                            false,
                        ));
                    }
                }
                let views = self
                    .catalog
                    .views(&self.db)
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                for v in views.iter() {
                    rels.push((
                        oid_of(&[&self.db, &v.schema, &v.name]),
                        v.name.clone(),
                        ns_oid(&v.schema),
                        "v",
                        0,
                        false,
                    ));
                }
                let n = rels.len();
                table(
                    vec![
                        ("oid", DataType::Int64, false),
                        ("relname", DataType::Utf8, false),
                        ("relnamespace", DataType::Int64, false),
                        ("relkind", DataType::Utf8, false),
                        ("relowner", DataType::Int64, false),
                        ("relam", DataType::Int64, false),
                        ("relpersistence", DataType::Utf8, false),
                        ("relhasindex", DataType::Boolean, false),
                        ("relispartition", DataType::Boolean, false),
                    ],
                    vec![
                        int64(rels.iter().map(|r| r.0).collect()),
                        utf8(rels.iter().map(|r| r.1.clone()).collect()),
                        int64(rels.iter().map(|r| r.2).collect()),
                        utf8(rels.iter().map(|r| r.3.to_owned()).collect()),
                        int64(vec![OWNER; n]),
                        int64(rels.iter().map(|r| r.4).collect()),
                        utf8(vec!["p".into(); n]),
                        Arc::new(BooleanArray::from(
                            rels.iter().map(|r| r.5).collect::<Vec<_>>(),
                        )),
                        Arc::new(BooleanArray::from(vec![false; n])),
                    ],
                )?
            }
            "pg_index" => {
                // (index oid, table oid, key column numbers, primary key?, unique?)
                let mut rows: Vec<(i64, i64, String, bool, bool)> = Vec::new();
                for (schema, name, indexes) in self.tables().await? {
                    for (index, cols, primary, unique) in indexes {
                        let keys: Vec<String> = cols.iter().map(|i| (i + 1).to_string()).collect();
                        rows.push((
                            oid_of(&[&self.db, &schema, &index]),
                            oid_of(&[&self.db, &schema, &name]),
                            keys.join(" "),
                            primary,
                            unique,
                        ));
                    }
                }
                let n = rows.len();
                let yes = || -> ArrayRef { Arc::new(BooleanArray::from(vec![true; n])) };
                let no = || -> ArrayRef { Arc::new(BooleanArray::from(vec![false; n])) };
                let primary = || -> ArrayRef {
                    Arc::new(BooleanArray::from(
                        rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                    ))
                };
                table(
                    vec![
                        ("indexrelid", DataType::Int64, false),
                        ("indrelid", DataType::Int64, false),
                        ("indisprimary", DataType::Boolean, false),
                        ("indisunique", DataType::Boolean, false),
                        ("indisclustered", DataType::Boolean, false),
                        ("indisvalid", DataType::Boolean, false),
                        ("indisreplident", DataType::Boolean, false),
                        // int2vector in PostgreSQL: column numbers, space-separated.
                        ("indkey", DataType::Utf8, false),
                    ],
                    vec![
                        int64(rows.iter().map(|r| r.0).collect()),
                        int64(rows.iter().map(|r| r.1).collect()),
                        primary(),
                        Arc::new(BooleanArray::from(
                            rows.iter().map(|r| r.4).collect::<Vec<_>>(),
                        )),
                        no(),
                        yes(),
                        no(),
                        utf8(rows.iter().map(|r| r.2.clone()).collect()),
                    ],
                )?
            }
            // No comments (COMMENT ON is not supported): JDBC's getTables joins it.
            "pg_description" => table(
                vec![
                    ("objoid", DataType::Int64, false),
                    ("classoid", DataType::Int64, false),
                    ("objsubid", DataType::Int32, false),
                    ("description", DataType::Utf8, false),
                ],
                vec![
                    int64(Vec::new()),
                    int64(Vec::new()),
                    Arc::new(datafusion::arrow::array::Int32Array::from(Vec::<i32>::new())),
                    utf8(Vec::new()),
                ],
            )?,
            "pg_am" => table(
                vec![
                    ("oid", DataType::Int64, false),
                    ("amname", DataType::Utf8, false),
                    ("amtype", DataType::Utf8, false),
                ],
                vec![
                    int64(vec![2, 403]),
                    utf8(vec!["heap".into(), "btree".into()]),
                    utf8(vec!["t".into(), "i".into()]),
                ],
            )?,
            "pg_database" => {
                let resp = self
                    .catalog
                    .client
                    .list_tables()
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                let mut dbs: Vec<String> =
                    BUILTIN_DATABASES.iter().map(|s| s.to_string()).collect();
                dbs.extend(
                    resp.namespaces
                        .iter()
                        .filter(|n| !n.starts_with("system"))
                        .cloned(),
                );
                dbs.sort();
                dbs.dedup();
                let n = dbs.len();
                let acl = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
                table(
                    vec![
                        ("oid", DataType::Int64, false),
                        ("datname", DataType::Utf8, false),
                        ("datdba", DataType::Int64, false),
                        ("encoding", DataType::Int32, false),
                        ("datlocprovider", DataType::Utf8, false),
                        ("datistemplate", DataType::Boolean, false),
                        ("datallowconn", DataType::Boolean, false),
                        ("datcollate", DataType::Utf8, false),
                        ("datctype", DataType::Utf8, false),
                        ("daticulocale", DataType::Utf8, true),
                        ("datacl", acl.clone(), true),
                    ],
                    vec![
                        int64(dbs.iter().map(|d| oid_of(&[d])).collect()),
                        utf8(dbs.clone()),
                        int64(vec![OWNER; n]),
                        Arc::new(Int32Array::from(vec![6; n])),
                        utf8(vec!["c".into(); n]),
                        Arc::new(BooleanArray::from(
                            dbs.iter().map(|d| d == "template1").collect::<Vec<_>>(),
                        )),
                        Arc::new(BooleanArray::from(vec![true; n])),
                        utf8(vec!["C.UTF-8".into(); n]),
                        utf8(vec!["C.UTF-8".into(); n]),
                        new_null_array(&DataType::Utf8, n),
                        new_null_array(&acl, n),
                    ],
                )?
            }
            _ => return Ok(None),
        }))
    }
}

#[async_trait]
impl SchemaProvider for PgCatalog {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(self.build(name).await?.map(|t| t as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name)
    }
}

/// Rewrite what psql's catalog queries say in ways DataFusion does not take:
/// `pg_catalog.f(...)` is `f(...)`, `OPERATOR(pg_catalog.~)` is `~`, and `COLLATE
/// pg_catalog.default` is dropped. Also `FROM generate_series(1, 3) g`: as in PostgreSQL, the
/// alias of a function returning one column names that column too, and without an alias the
/// function's name does (`generate_series`).
pub fn rewrite(stmt: &mut ast::Statement) {
    struct ScalarFunctionAliases;
    impl ast::VisitorMut for ScalarFunctionAliases {
        type Break = ();
        fn pre_visit_table_factor(
            &mut self,
            tf: &mut ast::TableFactor,
        ) -> std::ops::ControlFlow<()> {
            if let ast::TableFactor::Table {
                name,
                args: Some(_),
                alias,
                with_ordinality: false,
                ..
            } = tf
            {
                let single_column = name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map(|i| i.value.to_ascii_lowercase())
                    .filter(|f| ["generate_series", "unnest"].contains(&f.as_str()));
                if let Some(function) = single_column {
                    let alias = alias.get_or_insert_with(|| ast::TableAlias {
                        explicit: true,
                        name: ast::Ident::new(&function),
                        columns: vec![],
                        at: None,
                    });
                    if alias.columns.is_empty() {
                        alias.columns.push(ast::TableAliasColumnDef {
                            name: alias.name.clone(),
                            data_type: None,
                        });
                    }
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = ast::VisitMut::visit(stmt, &mut ScalarFunctionAliases);
    let _ = ast::visit_expressions_mut(stmt, |e: &mut ast::Expr| {
        match e {
            ast::Expr::Function(f) if f.name.0.len() == 2 => {
                let qualified = f.name.0[0]
                    .as_ident()
                    .is_some_and(|i| i.value.eq_ignore_ascii_case(SCHEMA));
                if qualified {
                    f.name.0.remove(0);
                }
            }
            ast::Expr::BinaryOp { op, .. } => {
                if let ast::BinaryOperator::PGCustomBinaryOperator(parts) = op {
                    let plain = match parts.as_slice() {
                        [schema, o] if schema.eq_ignore_ascii_case(SCHEMA) => Some(o.as_str()),
                        [o] => Some(o.as_str()),
                        _ => None,
                    };
                    let replaced = match plain {
                        Some("~") => Some(ast::BinaryOperator::PGRegexMatch),
                        Some("~*") => Some(ast::BinaryOperator::PGRegexIMatch),
                        Some("!~") => Some(ast::BinaryOperator::PGRegexNotMatch),
                        Some("!~*") => Some(ast::BinaryOperator::PGRegexNotIMatch),
                        Some("=") => Some(ast::BinaryOperator::Eq),
                        Some("<>") => Some(ast::BinaryOperator::NotEq),
                        _ => None,
                    };
                    if let Some(r) = replaced {
                        *op = r;
                    }
                }
            }
            // PostgreSQL's prefix operators `@ x`, `|/ x`, `||/ x`: abs, sqrt, cbrt.
            ast::Expr::UnaryOp { op, expr }
                if matches!(
                    op,
                    ast::UnaryOperator::PGAbs
                        | ast::UnaryOperator::PGSquareRoot
                        | ast::UnaryOperator::PGCubeRoot
                ) =>
            {
                let name = match op {
                    ast::UnaryOperator::PGAbs => "abs",
                    ast::UnaryOperator::PGSquareRoot => "sqrt",
                    _ => "cbrt",
                };
                *e = call(name, ast::Expr::Nested(expr.clone()));
            }
            // 'pg_class'::regclass (JDBC's metadata queries).
            ast::Expr::Cast {
                expr, data_type, ..
            } if data_type.to_string().eq_ignore_ascii_case("regclass")
                && matches!(expr.as_ref(), ast::Expr::Value(v)
                    if matches!(&v.value, ast::Value::SingleQuotedString(n) if n == "pg_class")) =>
            {
                *e = ast::Expr::Value(ast::Value::Number(PG_CLASS_OID.to_string(), false).into());
            }
            // `x::oid`: a bigint in 0..2^32 here.
            ast::Expr::Cast {
                expr, data_type, ..
            } if data_type.to_string().eq_ignore_ascii_case("oid") => {
                *e = call("to_oid", ast::Expr::Nested(expr.clone()));
            }
            ast::Expr::Collate { expr, collation } => {
                let is_default = collation
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .is_some_and(|i| i.value.eq_ignore_ascii_case("default"));
                if is_default {
                    *e = (**expr).clone();
                }
            }
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// `name(arg)`.
fn call(name: &str, arg: ast::Expr) -> ast::Expr {
    ast::Expr::Function(ast::Function {
        name: ast::ObjectName::from(vec![ast::Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: ast::FunctionArguments::None,
        args: ast::FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(arg))],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// A one-argument function that ignores its argument and answers `value`.
fn constant_of_one(name: &str, arg: DataType, value: ScalarValue) -> ScalarUDF {
    let ty = value.data_type();
    let f = move |_args: &[ColumnarValue]| Ok(ColumnarValue::Scalar(value.clone()));
    datafusion::logical_expr::create_udf(name, vec![arg], ty, Volatility::Stable, Arc::new(f))
}

/// The catalog functions psql's queries call.
pub fn register_functions(ctx: &SessionContext, user: &str) {
    // Every object is owned by the session's user (there are no other roles yet), except
    // `public`, owned by pg_database_owner as in PostgreSQL 15.
    let user = user.to_owned();
    let name_of = move |oid: Option<i64>| {
        oid.map(|o| match o {
            PG_DATABASE_OWNER => "pg_database_owner".to_owned(),
            _ => user.clone(),
        })
    };
    let userbyid = move |args: &[ColumnarValue]| -> DfResult<ColumnarValue> {
        Ok(match args.first() {
            Some(ColumnarValue::Scalar(v)) => {
                let oid = match v {
                    ScalarValue::Int64(o) => *o,
                    _ => None,
                };
                ColumnarValue::Scalar(ScalarValue::Utf8(name_of(oid)))
            }
            Some(ColumnarValue::Array(a)) => {
                let ints = a
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or_else(|| DataFusionError::Internal("pg_get_userbyid: not int8".into()))?;
                ColumnarValue::Array(Arc::new(ints.iter().map(&name_of).collect::<StringArray>()))
            }
            None => ColumnarValue::Scalar(ScalarValue::Utf8(None)),
        })
    };
    ctx.register_udf(datafusion::logical_expr::create_udf(
        "pg_get_userbyid",
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(userbyid),
    ));
    // Every table is in `public`, which is on the search path.
    ctx.register_udf(constant_of_one(
        "pg_table_is_visible",
        DataType::Int64,
        ScalarValue::Boolean(Some(true)),
    ));
    let to_oid = |args: &[ColumnarValue]| -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let Some(a) = arrays.first() else {
            return Err(DataFusionError::Internal(
                "to_oid takes one argument".into(),
            ));
        };
        let ints = datafusion::arrow::compute::cast(a, &DataType::Int64)?;
        let ints = ints
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| DataFusionError::Internal("to_oid: not int8".into()))?;
        if ints
            .iter()
            .flatten()
            .any(|v| !(0..=i64::from(u32::MAX)).contains(&v))
        {
            return Err(DataFusionError::External(Box::new(
                crate::error::SqlError::new("22003", "OID out of range"),
            )));
        }
        Ok(ColumnarValue::Array(Arc::new(ints.clone())))
    };
    ctx.register_udf(datafusion::logical_expr::create_udf(
        "to_oid",
        vec![DataType::Int64],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(to_oid),
    ));
    ctx.register_udf(constant_of_one(
        "pg_encoding_to_char",
        DataType::Int32,
        ScalarValue::Utf8(Some("UTF8".to_owned())),
    ));
}

#[cfg(test)]
mod tests {
    #[test]
    fn psql_catalog_syntax_is_rewritten() {
        let sql = "SELECT pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c \
                   WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default";
        let stmts = crate::session::parse(sql).unwrap();
        assert_eq!(
            stmts[0].to_string(),
            "SELECT pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c \
             WHERE c.relname ~ '^(t)$'"
        );
        // Other collations are left alone.
        let stmts = crate::session::parse("SELECT upper(x) COLLATE \"C\" FROM t").unwrap();
        assert_eq!(stmts[0].to_string(), "SELECT upper(x) COLLATE \"C\" FROM t");
    }
}
