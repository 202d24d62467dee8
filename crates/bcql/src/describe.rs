//! Server-side DESCRIBE, as Cassandra 4 answers it (cqlsh 6 sends DESCRIBE to the server):
//! lists (`keyspace_name, type, name`) for KEYSPACES/TABLES/TYPES, and CQL text
//! (`keyspace_name, type, name, create_statement`) that recreates a keyspace, table,
//! type or index.

use crate::error::{CqlError, Result};
use crate::exec::{ColSpec, Ctx, Engine, Outcome, Rows};
use crate::schema::{KeyspaceDef, Kind, TableDef, TypeDef};
use crate::types::CqlType;

fn quote(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn keyspace_cql(k: &KeyspaceDef) -> String {
    let repl = k
        .replication
        .iter()
        .map(|(a, b)| format!("'{a}': '{b}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "CREATE KEYSPACE {} WITH replication = {{{repl}}}  AND durable_writes = {};",
        quote(&k.name),
        k.durable_writes
    )
}

fn type_cql(t: &TypeDef) -> String {
    let fields = t
        .fields
        .iter()
        .map(|(n, ty)| format!("    {} {}", quote(n), ty.cql_name()))
        .collect::<Vec<_>>()
        .join(",\n");
    format!(
        "CREATE TYPE {}.{} (\n{fields}\n);",
        quote(&t.keyspace),
        quote(&t.name)
    )
}

pub fn table_cql(t: &TableDef) -> String {
    let mut lines: Vec<String> = t
        .columns
        .iter()
        .map(|c| {
            let mut l = format!("    {} {}", quote(&c.name), c.ty.cql_name());
            if c.kind == Kind::Static {
                l.push_str(" static");
            }
            l
        })
        .collect();
    let pk: Vec<String> = t.pk().map(|c| quote(&c.name)).collect();
    let ck: Vec<String> = t.ck().map(|c| quote(&c.name)).collect();
    let part = if pk.len() == 1 {
        pk[0].clone()
    } else {
        format!("({})", pk.join(", "))
    };
    let key = std::iter::once(part)
        .chain(ck.iter().cloned())
        .collect::<Vec<_>>()
        .join(", ");
    lines.push(format!("    PRIMARY KEY ({key})"));
    let mut opts = Vec::new();
    if !ck.is_empty() {
        let order = t
            .ck()
            .map(|c| format!("{} {}", quote(&c.name), if c.desc { "DESC" } else { "ASC" }))
            .collect::<Vec<_>>()
            .join(", ");
        opts.push(format!("CLUSTERING ORDER BY ({order})"));
    }
    opts.push(format!(
        "comment = '{}'",
        t.options
            .get("comment")
            .map(|c| c.replace('\'', "''"))
            .unwrap_or_default()
    ));
    opts.push(format!("default_time_to_live = {}", t.default_ttl));
    for (k, v) in &t.options {
        if k == "comment" || k == "default_time_to_live" {
            continue;
        }
        if v.starts_with('{') {
            let m: std::collections::BTreeMap<String, String> =
                serde_json::from_str(v).unwrap_or_default();
            let m = m
                .iter()
                .map(|(a, b)| format!("'{a}': '{b}'"))
                .collect::<Vec<_>>()
                .join(", ");
            opts.push(format!("{k} = {{{m}}}"));
        } else if v.parse::<f64>().is_ok() || v == "true" || v == "false" {
            opts.push(format!("{k} = {v}"));
        } else {
            opts.push(format!("{k} = '{v}'"));
        }
    }
    let mut out = format!(
        "CREATE TABLE {}.{} (\n{}\n) WITH {};",
        quote(&t.keyspace),
        quote(&t.name),
        lines.join(",\n"),
        opts.join("\n    AND ")
    );
    for i in &t.indexes {
        out.push_str("\n\n");
        out.push_str(&index_cql(t, i));
    }
    out
}

fn index_cql(t: &TableDef, i: &crate::schema::IndexDef) -> String {
    let target = match i.kind.as_str() {
        "values" => quote(&i.column),
        k => format!("{k}({})", quote(&i.column)),
    };
    format!(
        "CREATE INDEX {} ON {}.{} ({target});",
        quote(&i.name),
        quote(&t.keyspace),
        quote(&t.name)
    )
}

pub async fn describe(
    engine: &Engine,
    what: &str,
    name: &Option<(Option<String>, String)>,
    ctx: &Ctx<'_>,
) -> Result<Outcome> {
    let spec = |n: &str| ColSpec {
        ks: String::new(),
        table: String::new(),
        name: n.into(),
        ty: CqlType::Text,
    };
    let text = |s: &str| Some(s.as_bytes().to_vec());
    let list_cols = vec![spec("keyspace_name"), spec("type"), spec("name")];
    let elem_cols = vec![
        spec("keyspace_name"),
        spec("type"),
        spec("name"),
        spec("create_statement"),
    ];
    let user_keyspaces = engine.catalog.keyspaces().await?;
    let mut rows = Vec::new();
    match (what, name) {
        ("keyspaces", _) => {
            let mut names: Vec<String> = [
                "system",
                "system_auth",
                "system_distributed",
                "system_schema",
                "system_traces",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            names.extend(user_keyspaces.iter().map(|k| k.name.clone()));
            names.sort();
            for n in names {
                rows.push(vec![text(&n), text("keyspace"), text(&n)]);
            }
            return Ok(Outcome::Rows(Rows {
                cols: list_cols,
                rows,
                paging_state: None,
            }));
        }
        ("tables" | "columnfamilies", _) => {
            let mut tables = engine.catalog.tables_of(ctx.ks).await?;
            tables.sort_by(|a, b| (&a.keyspace, &a.name).cmp(&(&b.keyspace, &b.name)));
            for t in tables {
                rows.push(vec![text(&t.keyspace), text("table"), text(&t.name)]);
            }
            return Ok(Outcome::Rows(Rows {
                cols: list_cols,
                rows,
                paging_state: None,
            }));
        }
        ("types", _) => {
            for t in engine.catalog.types(ctx.ks).await? {
                rows.push(vec![text(&t.keyspace), text("type"), text(&t.name)]);
            }
            return Ok(Outcome::Rows(Rows {
                cols: list_cols,
                rows,
                paging_state: None,
            }));
        }
        ("functions" | "aggregates", _) => {
            return Ok(Outcome::Rows(Rows {
                cols: list_cols,
                rows,
                paging_state: None,
            }))
        }
        ("cluster", _) => {
            let cols = vec![spec("cluster"), spec("partitioner"), spec("snitch")];
            rows.push(vec![
                text(&engine.node.cluster_name),
                text("org.apache.cassandra.dht.Murmur3Partitioner"),
                text("org.apache.cassandra.locator.SimpleSnitch"),
            ]);
            return Ok(Outcome::Rows(Rows {
                cols,
                rows,
                paging_state: None,
            }));
        }
        _ => {}
    }
    let keyspace_rows = |k: &KeyspaceDef,
                         tables: &[TableDef],
                         types: &[TypeDef],
                         rows: &mut Vec<Vec<Option<Vec<u8>>>>| {
        rows.push(vec![
            text(&k.name),
            text("keyspace"),
            text(&k.name),
            text(&keyspace_cql(k)),
        ]);
        for t in types.iter().filter(|t| t.keyspace == k.name) {
            rows.push(vec![
                text(&k.name),
                text("type"),
                text(&t.name),
                text(&type_cql(t)),
            ]);
        }
        for t in tables.iter().filter(|t| t.keyspace == k.name) {
            rows.push(vec![
                text(&k.name),
                text("table"),
                text(&t.name),
                text(&table_cql(t)),
            ]);
        }
    };
    let tables = engine.catalog.tables_of(None).await?;
    let types = engine.catalog.types(None).await?;
    match (what, name) {
        ("schema", _) => {
            for k in &user_keyspaces {
                keyspace_rows(k, &tables, &types, &mut rows);
            }
        }
        ("keyspace", n) => {
            let ks = n
                .as_ref()
                .map(|(_, n)| n.as_str())
                .or(ctx.ks)
                .ok_or_else(|| {
                    CqlError::invalid("No keyspace specified and no current keyspace")
                })?;
            let k = user_keyspaces
                .iter()
                .find(|k| k.name == ks)
                .ok_or_else(|| CqlError::invalid(format!("'{ks}' not found in keyspaces")))?;
            keyspace_rows(k, &tables, &types, &mut rows);
        }
        (w, Some((ks, n))) => {
            let ks_name = ks.as_deref().or(ctx.ks);
            if w == "any" && ks.is_none() {
                if let Some(k) = user_keyspaces.iter().find(|k| &k.name == n) {
                    keyspace_rows(k, &tables, &types, &mut rows);
                    return Ok(Outcome::Rows(Rows {
                        cols: elem_cols,
                        rows,
                        paging_state: None,
                    }));
                }
            }
            let ks_name = ks_name.ok_or_else(|| {
                CqlError::invalid("No keyspace specified and no current keyspace")
            })?;
            if matches!(w, "table" | "columnfamily" | "any") {
                if let Some(t) = tables
                    .iter()
                    .find(|t| t.keyspace == ks_name && &t.name == n)
                {
                    rows.push(vec![
                        text(ks_name),
                        text("table"),
                        text(n),
                        text(&table_cql(t)),
                    ]);
                }
            }
            if rows.is_empty() && matches!(w, "type" | "any") {
                if let Some(t) = types.iter().find(|t| t.keyspace == ks_name && &t.name == n) {
                    rows.push(vec![
                        text(ks_name),
                        text("type"),
                        text(n),
                        text(&type_cql(t)),
                    ]);
                }
            }
            if rows.is_empty() && matches!(w, "index" | "any") {
                for t in tables.iter().filter(|t| t.keyspace == ks_name) {
                    if let Some(i) = t.indexes.iter().find(|i| &i.name == n) {
                        rows.push(vec![
                            text(ks_name),
                            text("index"),
                            text(n),
                            text(&index_cql(t, i)),
                        ]);
                    }
                }
            }
            if rows.is_empty() {
                return Err(CqlError::invalid(format!(
                    "'{n}' not found in keyspace '{ks_name}'"
                )));
            }
        }
        _ => return Err(CqlError::syntax("DESCRIBE what?")),
    }
    Ok(Outcome::Rows(Rows {
        cols: elem_cols,
        rows,
        paging_state: None,
    }))
}
