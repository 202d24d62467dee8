//! Virtual system tables that drivers and cqlsh read: `system.local`, `system.peers`,
//! `system.peers_v2`, the `system_schema` tables and the (empty) `system_virtual_schema`
//! tables, built on each query from the catalog. They go through the same SELECT pipeline
//! as user tables (projection, filtering, paging).

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Result;
use crate::exec::Engine;
use crate::schema::{self, Cell, Column, Kind, TableDef};
use crate::select::Row;
use crate::types::{self, CqlType, Value};

pub const RELEASE_VERSION: &str = "4.0.11";
pub const CQL_VERSION: &str = "3.4.5";

pub fn is_system_keyspace(ks: &str) -> bool {
    matches!(
        ks,
        "system"
            | "system_schema"
            | "system_auth"
            | "system_distributed"
            | "system_traces"
            | "system_virtual_schema"
    )
}

fn t(s: &str) -> CqlType {
    types::parse_type(s, &|_| None).unwrap_or(CqlType::Blob)
}

/// Columns of a virtual table: (name, type, kind).
fn columns(ks: &str, table: &str) -> Option<Vec<(&'static str, &'static str, Kind)>> {
    use Kind::*;
    let peers_common = [
        ("data_center", "text", Regular),
        ("host_id", "uuid", Regular),
        ("preferred_ip", "inet", Regular),
        ("rack", "text", Regular),
        ("release_version", "text", Regular),
        ("schema_version", "uuid", Regular),
        ("tokens", "set<text>", Regular),
    ];
    Some(match (ks, table) {
        ("system", "local") => vec![
            ("key", "text", PartitionKey),
            ("bootstrapped", "text", Regular),
            ("broadcast_address", "inet", Regular),
            ("broadcast_port", "int", Regular),
            ("cluster_name", "text", Regular),
            ("cql_version", "text", Regular),
            ("data_center", "text", Regular),
            ("gossip_generation", "int", Regular),
            ("host_id", "uuid", Regular),
            ("listen_address", "inet", Regular),
            ("listen_port", "int", Regular),
            ("native_protocol_version", "text", Regular),
            ("partitioner", "text", Regular),
            ("rack", "text", Regular),
            ("release_version", "text", Regular),
            ("rpc_address", "inet", Regular),
            ("rpc_port", "int", Regular),
            ("schema_version", "uuid", Regular),
            ("tokens", "set<text>", Regular),
        ],
        ("system", "peers") => {
            let mut v = vec![
                ("peer", "inet", PartitionKey),
                ("rpc_address", "inet", Regular),
            ];
            v.extend(peers_common);
            v
        }
        ("system", "peers_v2") => {
            let mut v = vec![
                ("peer", "inet", PartitionKey),
                ("peer_port", "int", Clustering),
                ("native_address", "inet", Regular),
                ("native_port", "int", Regular),
                ("preferred_port", "int", Regular),
            ];
            v.extend(peers_common);
            v
        }
        ("system_schema", "keyspaces") => vec![
            ("keyspace_name", "text", PartitionKey),
            ("durable_writes", "boolean", Regular),
            ("replication", "frozen<map<text, text>>", Regular),
        ],
        ("system_schema", "tables") => vec![
            ("keyspace_name", "text", PartitionKey),
            ("table_name", "text", Clustering),
            ("bloom_filter_fp_chance", "double", Regular),
            ("caching", "frozen<map<text, text>>", Regular),
            ("cdc", "boolean", Regular),
            ("comment", "text", Regular),
            ("compaction", "frozen<map<text, text>>", Regular),
            ("compression", "frozen<map<text, text>>", Regular),
            ("crc_check_chance", "double", Regular),
            ("dclocal_read_repair_chance", "double", Regular),
            ("default_time_to_live", "int", Regular),
            ("extensions", "frozen<map<text, blob>>", Regular),
            ("flags", "frozen<set<text>>", Regular),
            ("gc_grace_seconds", "int", Regular),
            ("id", "uuid", Regular),
            ("max_index_interval", "int", Regular),
            ("memtable_flush_period_in_ms", "int", Regular),
            ("min_index_interval", "int", Regular),
            ("read_repair_chance", "double", Regular),
            ("speculative_retry", "text", Regular),
        ],
        ("system_schema", "columns") => vec![
            ("keyspace_name", "text", PartitionKey),
            ("table_name", "text", Clustering),
            ("column_name", "text", Clustering),
            ("clustering_order", "text", Regular),
            ("column_name_bytes", "blob", Regular),
            ("kind", "text", Regular),
            ("position", "int", Regular),
            ("type", "text", Regular),
        ],
        ("system_schema", "types") => vec![
            ("keyspace_name", "text", PartitionKey),
            ("type_name", "text", Clustering),
            ("field_names", "frozen<list<text>>", Regular),
            ("field_types", "frozen<list<text>>", Regular),
        ],
        ("system_schema", "indexes") => vec![
            ("keyspace_name", "text", PartitionKey),
            ("table_name", "text", Clustering),
            ("index_name", "text", Clustering),
            ("kind", "text", Regular),
            ("options", "frozen<map<text, text>>", Regular),
        ],
        ("system_schema", "views") => vec![
            ("keyspace_name", "text", PartitionKey),
            ("view_name", "text", Clustering),
            ("base_table_id", "uuid", Regular),
            ("base_table_name", "text", Regular),
            ("include_all_columns", "boolean", Regular),
            ("where_clause", "text", Regular),
            ("id", "uuid", Regular),
        ],
        ("system_schema", "triggers") => vec![
            ("keyspace_name", "text", PartitionKey),
            ("table_name", "text", Clustering),
            ("trigger_name", "text", Clustering),
            ("options", "frozen<map<text, text>>", Regular),
        ],
        ("system_schema", "functions") => vec![
            ("keyspace_name", "text", PartitionKey),
            ("function_name", "text", Clustering),
            ("argument_types", "frozen<list<text>>", Clustering),
            ("argument_names", "frozen<list<text>>", Regular),
            ("body", "text", Regular),
            ("called_on_null_input", "boolean", Regular),
            ("language", "text", Regular),
            ("return_type", "text", Regular),
        ],
        ("system_schema", "aggregates") => vec![
            ("keyspace_name", "text", PartitionKey),
            ("aggregate_name", "text", Clustering),
            ("argument_types", "frozen<list<text>>", Clustering),
            ("final_func", "text", Regular),
            ("initcond", "text", Regular),
            ("return_type", "text", Regular),
            ("state_func", "text", Regular),
            ("state_type", "text", Regular),
        ],
        ("system_schema", "dropped_columns") => vec![
            ("keyspace_name", "text", PartitionKey),
            ("table_name", "text", Clustering),
            ("column_name", "text", Clustering),
            ("dropped_time", "timestamp", Regular),
            ("kind", "text", Regular),
            ("type", "text", Regular),
        ],
        ("system_virtual_schema", "keyspaces") => vec![("keyspace_name", "text", PartitionKey)],
        ("system_virtual_schema", "tables") => vec![
            ("keyspace_name", "text", PartitionKey),
            ("table_name", "text", Clustering),
            ("comment", "text", Regular),
        ],
        ("system_virtual_schema", "columns") => vec![
            ("keyspace_name", "text", PartitionKey),
            ("table_name", "text", Clustering),
            ("column_name", "text", Clustering),
            ("clustering_order", "text", Regular),
            ("column_name_bytes", "blob", Regular),
            ("kind", "text", Regular),
            ("position", "int", Regular),
            ("type", "text", Regular),
        ],
        ("system_auth", "roles") => vec![
            ("role", "text", PartitionKey),
            ("can_login", "boolean", Regular),
            ("is_superuser", "boolean", Regular),
            ("member_of", "set<text>", Regular),
            ("salted_hash", "text", Regular),
        ],
        ("system", "size_estimates") => vec![
            ("keyspace_name", "text", PartitionKey),
            ("table_name", "text", Clustering),
            ("range_start", "text", Clustering),
            ("range_end", "text", Clustering),
            ("mean_partition_size", "bigint", Regular),
            ("partitions_count", "bigint", Regular),
        ],
        _ => return None,
    })
}

/// The definition of a virtual table, if `ks.table` is one.
pub fn table_def(ks: &str, table: &str) -> Option<TableDef> {
    let cols = columns(ks, table)?;
    let mut def = TableDef {
        api: "cql".into(),
        keyspace: ks.into(),
        name: table.into(),
        id: uuid_for(&format!("{ks}.{table}")),
        columns: Vec::new(),
        next_column_id: 1,
        default_ttl: 0,
        options: Default::default(),
        indexes: Vec::new(),
    };
    let (mut pk, mut ck) = (0, 0);
    for (name, ty, kind) in cols {
        let position = match kind {
            Kind::PartitionKey => {
                pk += 1;
                pk - 1
            }
            Kind::Clustering => {
                ck += 1;
                ck - 1
            }
            _ => 0,
        };
        let id = def.next_column_id;
        def.next_column_id += 1;
        def.columns.push(Column {
            name: name.into(),
            id,
            ty: t(ty),
            kind,
            position,
            desc: false,
        });
    }
    def.sort_columns();
    Some(def)
}

fn uuid_for(s: &str) -> String {
    let mut b = schema::digest16(&[s.as_bytes()]);
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}

fn uuid_value(s: &str) -> Value {
    Value::Uuid(*uuid::Uuid::parse_str(s).unwrap_or_default().as_bytes())
}

/// A keyspace row: name, replication options, durable_writes.
type KeyspaceRow = (String, Vec<(String, String)>, bool);

/// The token of the only node of a one-node ring.
const FIRST_TOKEN: i64 = i64::MIN + 1;

/// A dbserver serving BCQL, as drivers see it.
struct Member {
    host_id: [u8; 16],
    addr: std::net::SocketAddr,
    /// The start of its share of the token ring.
    token: i64,
}

/// The live dbservers that serve BCQL (this one included), from the mservers, each with
/// an equal share of the token ring in host-id order, so every node describes the same
/// ring. Any node serves any token (requests go to tablet leaders), so the ring only
/// spreads drivers' load. Without the mservers: this node alone.
async fn ring(engine: &Engine) -> Vec<Member> {
    let me = Member {
        host_id: engine.node.host_id,
        addr: engine.node.cql_addr,
        token: FIRST_TOKEN,
    };
    let Ok(list) = engine.catalog.client.list_servers().await else {
        return vec![me];
    };
    let mut members: Vec<Member> = list
        .servers
        .iter()
        .filter(|s| s.alive)
        .filter_map(|s| {
            Some(Member {
                host_id: *uuid::Uuid::parse_str(&s.server_uuid).ok()?.as_bytes(),
                addr: s.cql_addr.parse().ok()?,
                token: 0,
            })
        })
        .filter(|m| m.host_id != me.host_id)
        .collect();
    members.push(me);
    members.sort_by_key(|m| m.host_id);
    let share = u64::MAX / members.len() as u64;
    for (i, m) in members.iter_mut().enumerate() {
        m.token = FIRST_TOKEN.wrapping_add((share * i as u64) as i64);
    }
    members
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn text_map(m: &[(String, String)]) -> Value {
    Value::Map(m.iter().map(|(k, v)| (text(k), text(v))).collect())
}

/// Build a row of a virtual table from (column, value) pairs.
fn row(def: &TableDef, vals: Vec<(&str, Value)>) -> Result<Row> {
    let mut pk = vec![Value::Null; def.pk_len()];
    let mut ck = vec![Value::Null; def.ck_len()];
    let mut cells = HashMap::new();
    for (name, v) in vals {
        let Some(c) = def.col(name) else { continue };
        match c.kind {
            Kind::PartitionKey => pk[c.position] = v,
            Kind::Clustering => ck[c.position] = v,
            _ => {
                if v != Value::Null {
                    cells.insert(
                        c.id,
                        Cell {
                            writetime: 0,
                            expire_us: 0,
                            ttl: 0,
                            value: types::encode(&c.ty, &v)?,
                        },
                    );
                }
            }
        }
    }
    let (token, key) = schema::row_key(def, &pk, &ck)?;
    let partition_len = schema::partition_key(def, &pk)?.1.len();
    Ok(Row {
        token,
        pk,
        ck: Some(ck),
        cells,
        statics: Arc::new(HashMap::new()),
        key,
        partition_len,
    })
}

/// The rows of a virtual table.
pub async fn rows(engine: &Engine, def: &TableDef) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    match (def.keyspace.as_str(), def.name.as_str()) {
        ("system", "local") => {
            let node = &engine.node;
            let schema_version = engine.catalog.schema_version().await?;
            let ip = Value::Inet(node.cql_addr.ip());
            let token = ring(engine)
                .await
                .into_iter()
                .find(|m| m.host_id == node.host_id)
                .map_or(FIRST_TOKEN, |m| m.token);
            out.push(row(
                def,
                vec![
                    ("key", text("local")),
                    ("bootstrapped", text("COMPLETED")),
                    ("broadcast_address", ip.clone()),
                    ("broadcast_port", Value::Int(7000)),
                    ("cluster_name", text(&node.cluster_name)),
                    ("cql_version", text(CQL_VERSION)),
                    ("data_center", text("datacenter1")),
                    ("gossip_generation", Value::Int(1)),
                    ("host_id", Value::Uuid(node.host_id)),
                    ("listen_address", ip.clone()),
                    ("listen_port", Value::Int(7000)),
                    ("native_protocol_version", text("4")),
                    (
                        "partitioner",
                        text("org.apache.cassandra.dht.Murmur3Partitioner"),
                    ),
                    ("rack", text("rack1")),
                    ("release_version", text(RELEASE_VERSION)),
                    ("rpc_address", ip),
                    ("rpc_port", Value::Int(node.cql_addr.port() as i128)),
                    ("schema_version", Value::Uuid(schema_version)),
                    ("tokens", Value::Set(vec![text(&token.to_string())])),
                ],
            )?);
        }
        ("system", "peers" | "peers_v2") => {
            let schema_version = engine.catalog.schema_version().await?;
            for m in ring(engine).await {
                if m.host_id == engine.node.host_id {
                    continue;
                }
                let ip = Value::Inet(m.addr.ip());
                out.push(row(
                    def,
                    vec![
                        ("peer", ip.clone()),
                        ("peer_port", Value::Int(7000)),
                        ("rpc_address", ip.clone()),
                        ("native_address", ip.clone()),
                        ("native_port", Value::Int(m.addr.port() as i128)),
                        ("preferred_ip", ip),
                        ("preferred_port", Value::Int(7000)),
                        ("data_center", text("datacenter1")),
                        ("rack", text("rack1")),
                        ("host_id", Value::Uuid(m.host_id)),
                        ("release_version", text(RELEASE_VERSION)),
                        ("schema_version", Value::Uuid(schema_version)),
                        ("tokens", Value::Set(vec![text(&m.token.to_string())])),
                    ],
                )?);
            }
        }
        ("system_schema", "keyspaces") => {
            let mut all: Vec<KeyspaceRow> = vec![];
            for ks in [
                "system",
                "system_schema",
                "system_auth",
                "system_distributed",
                "system_traces",
            ] {
                all.push((
                    ks.to_owned(),
                    vec![(
                        "class".to_owned(),
                        "org.apache.cassandra.locator.LocalStrategy".to_owned(),
                    )],
                    true,
                ));
            }
            for k in engine.catalog.keyspaces().await? {
                all.push((
                    k.name,
                    k.replication.into_iter().collect(),
                    k.durable_writes,
                ));
            }
            for (name, repl, dw) in all {
                out.push(row(
                    def,
                    vec![
                        ("keyspace_name", text(&name)),
                        ("durable_writes", Value::Bool(dw)),
                        ("replication", text_map(&repl)),
                    ],
                )?);
            }
        }
        ("system_schema", "tables" | "columns" | "indexes") => {
            let mut tables = engine.catalog.tables_of(None).await?;
            if def.name == "columns" || def.name == "tables" {
                for (ks, t) in system_tables() {
                    if let Some(d) = table_def(ks, t) {
                        tables.push(d);
                    }
                }
            }
            for t in tables {
                match def.name.as_str() {
                    "tables" => out.push(row(def, table_row(&t))?),
                    "columns" => {
                        for c in &t.columns {
                            out.push(row(
                                def,
                                vec![
                                    ("keyspace_name", text(&t.keyspace)),
                                    ("table_name", text(&t.name)),
                                    ("column_name", text(&c.name)),
                                    (
                                        "clustering_order",
                                        text(match (c.kind, c.desc) {
                                            (Kind::Clustering, true) => "desc",
                                            (Kind::Clustering, false) => "asc",
                                            _ => "none",
                                        }),
                                    ),
                                    ("column_name_bytes", Value::Blob(c.name.as_bytes().to_vec())),
                                    ("kind", text(c.kind.name())),
                                    (
                                        "position",
                                        Value::Int(match c.kind {
                                            Kind::PartitionKey | Kind::Clustering => {
                                                c.position as i128
                                            }
                                            _ => -1,
                                        }),
                                    ),
                                    ("type", text(&c.ty.cql_name())),
                                ],
                            )?);
                        }
                    }
                    _ => {
                        for i in &t.indexes {
                            let target = match i.kind.as_str() {
                                "values" => i.column.clone(),
                                k => format!("{k}({})", i.column),
                            };
                            out.push(row(
                                def,
                                vec![
                                    ("keyspace_name", text(&t.keyspace)),
                                    ("table_name", text(&t.name)),
                                    ("index_name", text(&i.name)),
                                    ("kind", text("COMPOSITES")),
                                    ("options", text_map(&[("target".to_owned(), target)])),
                                ],
                            )?);
                        }
                    }
                }
            }
        }
        ("system_schema", "types") => {
            for ty in engine.catalog.types(None).await? {
                out.push(row(
                    def,
                    vec![
                        ("keyspace_name", text(&ty.keyspace)),
                        ("type_name", text(&ty.name)),
                        (
                            "field_names",
                            Value::List(ty.fields.iter().map(|(n, _)| text(n)).collect()),
                        ),
                        (
                            "field_types",
                            Value::List(
                                ty.fields.iter().map(|(_, t)| text(&t.cql_name())).collect(),
                            ),
                        ),
                    ],
                )?);
            }
        }
        ("system_auth", "roles") => {
            out.push(row(
                def,
                vec![
                    ("role", text("cassandra")),
                    ("can_login", Value::Bool(true)),
                    ("is_superuser", Value::Bool(true)),
                ],
            )?);
        }
        _ => {}
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

fn system_tables() -> Vec<(&'static str, &'static str)> {
    vec![
        ("system", "local"),
        ("system", "peers"),
        ("system", "peers_v2"),
        ("system_schema", "keyspaces"),
        ("system_schema", "tables"),
        ("system_schema", "columns"),
        ("system_schema", "types"),
        ("system_schema", "indexes"),
        ("system_schema", "views"),
        ("system_schema", "triggers"),
        ("system_schema", "functions"),
        ("system_schema", "aggregates"),
    ]
}

fn table_row(t: &TableDef) -> Vec<(&'static str, Value)> {
    let opt = |k: &str| t.options.get(k).cloned();
    let map_opt = |k: &str, default: &[(&str, &str)]| -> Value {
        match opt(k).and_then(|s| {
            serde_json::from_str::<std::collections::BTreeMap<String, String>>(&s).ok()
        }) {
            Some(m) => Value::Map(m.into_iter().map(|(a, b)| (text(&a), text(&b))).collect()),
            None => Value::Map(default.iter().map(|(a, b)| (text(a), text(b))).collect()),
        }
    };
    let num = |k: &str, d: f64| Value::Double(opt(k).and_then(|s| s.parse().ok()).unwrap_or(d));
    let int = |k: &str, d: i128| Value::Int(opt(k).and_then(|s| s.parse().ok()).unwrap_or(d));
    vec![
        ("keyspace_name", text(&t.keyspace)),
        ("table_name", text(&t.name)),
        (
            "bloom_filter_fp_chance",
            num("bloom_filter_fp_chance", 0.01),
        ),
        (
            "caching",
            map_opt(
                "caching",
                &[("keys", "ALL"), ("rows_per_partition", "NONE")],
            ),
        ),
        ("cdc", Value::Bool(opt("cdc").is_some_and(|s| s == "true"))),
        ("comment", text(&opt("comment").unwrap_or_default())),
        (
            "compaction",
            map_opt(
                "compaction",
                &[
                    (
                        "class",
                        "org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy",
                    ),
                    ("max_threshold", "32"),
                    ("min_threshold", "4"),
                ],
            ),
        ),
        (
            "compression",
            map_opt(
                "compression",
                &[
                    ("chunk_length_in_kb", "16"),
                    ("class", "org.apache.cassandra.io.compress.LZ4Compressor"),
                ],
            ),
        ),
        ("crc_check_chance", num("crc_check_chance", 1.0)),
        (
            "dclocal_read_repair_chance",
            num("dclocal_read_repair_chance", 0.0),
        ),
        ("default_time_to_live", Value::Int(t.default_ttl as i128)),
        ("extensions", Value::Map(vec![])),
        (
            "flags",
            Value::Set(vec![text(if t.is_counter_table() {
                "counter"
            } else {
                "compound"
            })]),
        ),
        ("gc_grace_seconds", int("gc_grace_seconds", 864000)),
        ("id", uuid_value(&t.id)),
        ("max_index_interval", int("max_index_interval", 2048)),
        (
            "memtable_flush_period_in_ms",
            int("memtable_flush_period_in_ms", 0),
        ),
        ("min_index_interval", int("min_index_interval", 128)),
        ("read_repair_chance", num("read_repair_chance", 0.0)),
        (
            "speculative_retry",
            text(&opt("speculative_retry").unwrap_or_else(|| "99p".into())),
        ),
    ]
}
