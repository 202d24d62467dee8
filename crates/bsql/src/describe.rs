//! psql's `\d <table>`: the catalog queries psql 15 sends to describe one relation, after it
//! has found the relation's oid (that first query runs through `pg_catalog` and
//! DataFusion). These follow-up queries lean on PostgreSQL-only syntax (`::regclass`,
//! `= any(array)`, `array(select ...)`, `pg_get_expr`, `pg_get_indexdef` ...), so they are
//! recognised by their text and answered here from our table definitions, with the columns
//! psql reads (all as text, which is how psql reads them).
//!
//! What is shown matches PostgreSQL's output for the same table: the columns with their
//! types, `not null` and defaults; the primary key index (`"<t>_pkey" PRIMARY KEY, btree
//! (cols)`); CHECK constraints. Policies, extended statistics, publications, inheritance and
//! partitions never exist here and answer with no rows.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::catalog::{Catalog, TableDef};
use crate::error::{SqlError, SqlResult};
use crate::pg_catalog::oid_of;
use crate::session::Output;
use crate::types::SqlType;

/// One of the follow-up queries of psql's `\d`.
#[derive(Debug, PartialEq)]
enum Query {
    /// relkind, relchecks, ... of the relation.
    Relation,
    /// Its columns.
    Columns,
    /// Its indexes.
    Indexes,
    /// Its CHECK constraints.
    Checks,
    /// Its FOREIGN KEY constraints.
    ForeignKeys,
    /// The foreign keys that reference it.
    ReferencedBy,
    /// A query whose answer is always empty here, with these column names.
    Empty(&'static [&'static str]),
}

/// Each query by a fragment only it has, and the quoted oid after a second fragment.
const QUERIES: &[(&str, &str, Query)] = &[
    (
        "SELECT c.relchecks, c.relkind, c.relhasindex",
        "WHERE c.oid = '",
        Query::Relation,
    ),
    (
        "FROM pg_catalog.pg_attribute a\nWHERE a.attrelid = '",
        "WHERE a.attrelid = '",
        Query::Columns,
    ),
    (
        "FROM pg_catalog.pg_class c, pg_catalog.pg_class c2, pg_catalog.pg_index i",
        "WHERE c.oid = '",
        Query::Indexes,
    ),
    (
        "AND r.contype = 'f'",
        "WHERE r.conrelid = '",
        Query::ForeignKeys,
    ),
    (
        "WHERE confrelid IN (SELECT pg_catalog.pg_partition_ancestors('",
        "pg_partition_ancestors('",
        Query::ReferencedBy,
    ),
    (
        "FROM pg_catalog.pg_constraint r\nWHERE r.conrelid = '",
        "WHERE r.conrelid = '",
        Query::Checks,
    ),
    (
        "FROM pg_catalog.pg_trigger t\nWHERE t.tgrelid = '",
        "WHERE t.tgrelid = '",
        Query::Empty(&[
            "tgname",
            "pg_get_triggerdef",
            "tgenabled",
            "tgisinternal",
            "parent",
        ]),
    ),
    (
        "FROM pg_catalog.pg_policy pol",
        "WHERE pol.polrelid = '",
        Query::Empty(&[
            "polname",
            "polpermissive",
            "array_to_string",
            "pg_get_expr",
            "pg_get_expr",
            "cmd",
        ]),
    ),
    (
        "FROM pg_catalog.pg_statistic_ext\n",
        "WHERE stxrelid = '",
        Query::Empty(&[
            "oid",
            "stxrelid",
            "nsp",
            "stxname",
            "columns",
            "ndist_enabled",
            "deps_enabled",
            "mcv_enabled",
            "stxstattarget",
        ]),
    ),
    (
        "FROM pg_catalog.pg_publication p\n",
        "WHERE pc.oid ='",
        Query::Empty(&["pubname", "?column?", "?column?"]),
    ),
    (
        "WHERE c.oid = i.inhparent AND i.inhrelid = '",
        "i.inhrelid = '",
        Query::Empty(&["oid"]),
    ),
    (
        "WHERE c.oid = i.inhrelid AND i.inhparent = '",
        "i.inhparent = '",
        Query::Empty(&["oid", "relkind", "inhdetachpending", "pg_get_expr"]),
    ),
];

/// A recognised `\d` follow-up query: which one, about which relation.
#[derive(Debug)]
pub struct Request {
    query: &'static Query,
    oid: i64,
    /// `\d+` asks for storage, compression, statistics target and description too.
    verbose: bool,
}

/// Whether `sql` is one of psql's `\d` follow-up queries (cheap: a text search).
pub fn recognise(sql: &str) -> Option<Request> {
    if !sql.contains("pg_catalog.") {
        return None;
    }
    let (_, at, query) = QUERIES.iter().find(|(mark, _, _)| sql.contains(mark))?;
    let rest = &sql[sql.find(at)? + at.len()..];
    let oid = rest[..rest.find('\'')?].parse().ok()?;
    let verbose = *query == Query::Columns && sql.contains("a.attstorage");
    Some(Request {
        query,
        oid,
        verbose,
    })
}

/// The answer to a recognised query.
pub async fn answer(catalog: &Catalog, db: &str, req: &Request) -> SqlResult<Output> {
    run(catalog, db, req.query, req.oid, req.verbose).await
}

/// The extra columns of `\d+`'s column query.
const VERBOSE_COLUMNS: [&str; 4] = [
    "attstorage",
    "attcompression",
    "attstattarget",
    "col_description",
];

async fn run(
    catalog: &Catalog,
    db: &str,
    query: &Query,
    oid: i64,
    verbose: bool,
) -> SqlResult<Output> {
    let mut columns: Vec<&str> = columns_of(query).to_vec();
    if verbose {
        columns.extend(VERBOSE_COLUMNS);
    }
    if let Query::Empty(_) = query {
        return rows(&columns, Vec::new());
    }
    let (def, view) = match table_of(catalog, db, oid).await? {
        Some(d) => (d, false),
        None => match view_of(catalog, db, oid).await? {
            Some(d) => (d, true),
            None => return rows(&columns, Vec::new()),
        },
    };
    let f = |b: bool| if b { "t" } else { "f" }.to_owned();
    let out: Vec<Vec<Option<String>>> = match query {
        // A view has no checks or indexes, a rewrite rule, replica identity "nothing" and no
        // access method; a table is a heap.
        Query::Relation => vec![vec![
            Some(def.checks.len().to_string()),
            Some(if view { "v" } else { "r" }.into()),
            Some(f(!def.all_indexes().is_empty())),
            Some(f(view)),
            // Foreign keys are triggers in PostgreSQL: psql lists them only then.
            Some(f(
                !def.foreign_keys.is_empty() || !def.referenced_by.is_empty()
            )),
            Some(f(false)),
            Some(f(false)),
            Some(f(false)),
            Some(f(false)),
            Some(String::new()),
            Some("0".into()),
            Some(String::new()),
            Some("p".into()),
            Some(if view { "n" } else { "d" }.into()),
            (!view).then(|| "heap".into()),
        ]],
        Query::Columns => def
            .columns
            .iter()
            .map(|c| {
                let mut row = vec![
                    Some(c.name.clone()),
                    Some(format_type(c.ty, c.len)),
                    c.default.as_deref().map(|d| default_expr(d, c.ty)),
                    Some(f(!c.nullable)),
                    None,
                    Some(String::new()),
                    Some(String::new()),
                ];
                if verbose {
                    row.extend([Some(storage(c.ty).into()), Some(String::new()), None, None]);
                }
                row
            })
            .collect(),
        Query::Indexes => {
            let mut out: Vec<Vec<Option<String>>> = def
                .all_indexes()
                .into_iter()
                .map(|ix| {
                    let (index, primary, is_unique) = (ix.name, ix.primary, ix.unique);
                    let is_constraint = ix.constraint;
                    let cols: Vec<String> = ix
                        .columns
                        .iter()
                        .map(|&(c, desc)| {
                            let name = &def.columns[c].name;
                            if desc {
                                format!("{name} DESC")
                            } else {
                                name.clone()
                            }
                        })
                        .collect();
                    let cols = cols.join(", ");
                    let unique = if is_unique { "UNIQUE " } else { "" };
                    let indexdef = format!(
                        "CREATE {unique}INDEX {index} ON {}.{} USING btree ({cols})",
                        def.schema, def.name
                    );
                    let constraint = |v: &str| is_constraint.then(|| v.to_owned());
                    let (condef, contype) = if primary {
                        (format!("PRIMARY KEY ({cols})"), "p")
                    } else {
                        (format!("UNIQUE ({cols})"), "u")
                    };
                    vec![
                        Some(index),
                        Some(f(primary)),
                        Some(f(is_unique)),
                        Some(f(false)),
                        Some(f(true)),
                        Some(indexdef),
                        constraint(&condef),
                        constraint(contype),
                        constraint("f"),
                        constraint("f"),
                        Some(f(false)),
                        Some("0".into()),
                    ]
                })
                .collect();
            // psql's order: the primary key first, then by name.
            out.sort_by(|a, b| (&b[1], &a[0]).cmp(&(&a[1], &b[0])));
            out
        }
        Query::ForeignKeys => {
            let mut fks: Vec<_> = def
                .foreign_keys
                .iter()
                .map(|fk| {
                    vec![
                        Some(f(true)),
                        Some(fk.name.clone()),
                        Some(foreign_key_def(&def, fk)),
                        Some(def.name.clone()),
                    ]
                })
                .collect();
            fks.sort_by(|a, b| a[1].cmp(&b[1]));
            fks
        }
        Query::ReferencedBy => {
            let mut refs = Vec::new();
            for r in &def.referenced_by {
                let Some(child) = catalog.table(db, &r.schema, &r.table).await? else {
                    continue;
                };
                if let Some(fk) = child
                    .def
                    .foreign_keys
                    .iter()
                    .find(|f| f.name == r.constraint)
                {
                    refs.push(vec![
                        Some(fk.name.clone()),
                        Some(child.def.name.clone()),
                        Some(foreign_key_def(&child.def, fk)),
                    ]);
                }
            }
            refs.sort_by(|a, b| a[0].cmp(&b[0]));
            refs
        }
        Query::Checks => {
            let mut named: Vec<(String, String)> = def
                .checks
                .iter()
                .enumerate()
                .map(|(i, text)| (check_name(&def, i), format!("CHECK ({text})")))
                .collect();
            named.sort();
            named
                .into_iter()
                .map(|(n, d)| vec![Some(n), Some(d)])
                .collect()
        }
        Query::Empty(_) => Vec::new(),
    };
    rows(&columns, out)
}

/// PostgreSQL's storage strategy of a type (`typstorage`): plain for fixed-size types,
/// main for numeric, extended for the other variable-length ones.
fn storage(ty: SqlType) -> &'static str {
    match ty {
        SqlType::Numeric { .. } => "m",
        SqlType::Text
        | SqlType::Varchar
        | SqlType::Bpchar
        | SqlType::Bytea
        | SqlType::Json
        | SqlType::Jsonb
        | SqlType::Path
        | SqlType::Array(_) => "x",
        _ => "p",
    }
}

/// A foreign key as `pg_get_constraintdef` prints it.
fn foreign_key_def(def: &TableDef, fk: &crate::catalog::ForeignKeyDef) -> String {
    let cols: Vec<&str> = fk
        .columns
        .iter()
        .filter_map(|id| def.columns.iter().find(|c| c.id == *id))
        .map(|c| c.name.as_str())
        .collect();
    let parent = if fk.parent_schema == "public" {
        fk.parent_table.clone()
    } else {
        format!("{}.{}", fk.parent_schema, fk.parent_table)
    };
    let action = match fk.on_delete {
        crate::catalog::FkAction::NoAction => "",
        crate::catalog::FkAction::Cascade => " ON DELETE CASCADE",
        crate::catalog::FkAction::SetNull => " ON DELETE SET NULL",
    };
    format!(
        "FOREIGN KEY ({}) REFERENCES {parent}({}){action}",
        cols.join(", "),
        fk.parent_columns.join(", ")
    )
}

/// The column names psql's query selects.
fn columns_of(query: &Query) -> &'static [&'static str] {
    match query {
        Query::Relation => &[
            "relchecks",
            "relkind",
            "relhasindex",
            "relhasrules",
            "relhastriggers",
            "relrowsecurity",
            "relforcerowsecurity",
            "relhasoids",
            "relispartition",
            "?column?",
            "reltablespace",
            "reloftype",
            "relpersistence",
            "relreplident",
            "amname",
        ],
        Query::Columns => &[
            "attname",
            "format_type",
            "pg_get_expr",
            "attnotnull",
            "attcollation",
            "attidentity",
            "attgenerated",
        ],
        Query::Indexes => &[
            "relname",
            "indisprimary",
            "indisunique",
            "indisclustered",
            "indisvalid",
            "pg_get_indexdef",
            "pg_get_constraintdef",
            "contype",
            "condeferrable",
            "condeferred",
            "indisreplident",
            "reltablespace",
        ],
        Query::Checks => &["conname", "pg_get_constraintdef"],
        Query::ForeignKeys => &["sametable", "conname", "condef", "ontable"],
        Query::ReferencedBy => &["conname", "ontable", "condef"],
        Query::Empty(c) => c,
    }
}

/// A result set of text columns.
fn rows(columns: &[&str], data: Vec<Vec<Option<String>>>) -> SqlResult<Output> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = (0..columns.len())
        .map(|i| {
            Arc::new(StringArray::from(
                data.iter()
                    .map(|r| r.get(i).cloned().flatten())
                    .collect::<Vec<_>>(),
            )) as ArrayRef
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|e| SqlError::new("XX000", format!("describing a table: {e}")))?;
    Ok(Output::Rows {
        schema,
        batches: vec![batch],
    })
}

/// The table of database `db` whose oid (see [`oid_of`]) is `oid`.
async fn table_of(catalog: &Catalog, db: &str, oid: i64) -> SqlResult<Option<TableDef>> {
    for (schema, name) in catalog.table_names(db).await? {
        if oid_of(&[db, &schema, &name]) == oid {
            return Ok(catalog
                .table(db, &schema, &name)
                .await?
                .map(|r| r.def.as_ref().clone()));
        }
    }
    Ok(None)
}

/// A view with this oid, as a definition with its columns only (nullable, no default).
async fn view_of(catalog: &Catalog, db: &str, oid: i64) -> SqlResult<Option<TableDef>> {
    let views = catalog.views(db).await?;
    let Some(v) = views
        .iter()
        .find(|v| oid_of(&[db, &v.schema, &v.name]) == oid)
    else {
        return Ok(None);
    };
    let columns = v
        .columns
        .iter()
        .enumerate()
        .map(|(i, name)| crate::catalog::ColumnDef {
            id: i as u32 + 1,
            name: name.clone(),
            ty: v.types.get(i).copied().unwrap_or(SqlType::Text),
            len: None,
            nullable: true,
            default: None,
        })
        .collect();
    Ok(Some(TableDef {
        schema: v.schema.clone(),
        name: v.name.clone(),
        columns,
        pk: Vec::new(),
        next_column_id: v.columns.len() as u32 + 1,
        checks: Vec::new(),
        check_names: Vec::new(),
        indexes: Vec::new(),
        ..Default::default()
    }))
}

/// `format_type`: the type as PostgreSQL prints it, with its length if it has one.
fn format_type(ty: SqlType, len: Option<u32>) -> String {
    match (ty, len) {
        (SqlType::Varchar | SqlType::Bpchar, Some(n)) => format!("{}({n})", ty.name()),
        (SqlType::Array(a), Some(n)) => format!("{}[]", format_type(a.elem(), Some(n))),
        _ => ty.name(),
    }
}

/// A default as PostgreSQL prints it: string literals carry a cast to the column's type
/// (`'x'::text`), and `nextval` names its sequence as a `regclass`.
fn default_expr(text: &str, ty: SqlType) -> String {
    let t = text.trim();
    if let Some(seq) = t
        .strip_prefix("nextval('")
        .and_then(|r| r.strip_suffix("')"))
    {
        return format!("nextval('{seq}'::regclass)");
    }
    let quoted = t.len() >= 2 && t.starts_with('\'') && t.ends_with('\'');
    if quoted && !t[1..t.len() - 1].contains('\'') {
        return format!("{t}::{}", ty.name());
    }
    t.to_owned()
}

/// The name PostgreSQL gives the `i`th CHECK of `def` when it has none: `<table>_<column>_check`
/// for a check on one column, `<table>_check` otherwise; later duplicates get 1, 2, ...
pub(crate) fn check_name(def: &TableDef, i: usize) -> String {
    let base = |j: usize| {
        let text = &def.checks[j];
        let mentioned: Vec<&str> = def
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .filter(|c| crate::catalog::mentions(text, c))
            .collect();
        match mentioned.as_slice() {
            [one] => format!("{}_{one}_check", def.name),
            _ => format!("{}_check", def.name),
        }
    };
    if let Some(Some(given)) = def.check_names.get(i) {
        return given.clone();
    }
    let mine = base(i);
    let unnamed = |j: &usize| !matches!(def.check_names.get(*j), Some(Some(_)));
    let before = (0..i).filter(unnamed).filter(|&j| base(j) == mine).count();
    if before == 0 {
        mine
    } else {
        format!("{mine}{before}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_names_print_as_postgresql_does() {
        assert_eq!(default_expr("'x'", SqlType::Text), "'x'::text");
        assert_eq!(
            default_expr("'q'", SqlType::Varchar),
            "'q'::character varying"
        );
        assert_eq!(default_expr("0", SqlType::Int4), "0");
        assert_eq!(
            default_expr("nextval('t_id_seq')", SqlType::Int8),
            "nextval('t_id_seq'::regclass)"
        );
        assert_eq!(
            format_type(SqlType::Varchar, Some(10)),
            "character varying(10)"
        );
        assert!(
            crate::catalog::mentions("k < 100", "k") && !crate::catalog::mentions("kk < 100", "k")
        );
    }

    #[test]
    fn queries_are_recognised_with_their_oid() {
        let q = "SELECT a.attname,\n  pg_catalog.format_type(a.atttypid, a.atttypmod)\nFROM pg_catalog.pg_attribute a\nWHERE a.attrelid = '16385' AND a.attnum > 0";
        let req = recognise(q).unwrap();
        assert_eq!(
            (req.query, req.oid, req.verbose),
            (&Query::Columns, 16385, false)
        );
        assert!(recognise("select 1").is_none());
    }
}
