//! BCQL's catalog and storage layout.
//!
//! A keyspace is an mserver namespace plus a record in the KV table
//! `system_bcql.keyspaces` (its replication options); user types live in
//! `system_bcql.types`. A CQL table is an mserver table whose schema bytes are a JSON
//! [`TableDef`] (`"api": "cql"`), hash-split into tablets by Cassandra's Murmur3 token.
//!
//! Row layout (one KV per cell, so a column update is a blind write):
//! ```text
//! partition = token(8, sign-flipped big-endian) ‖ key_encode(pk1) ‖ key_encode(pk2) ...
//! static cell = partition ‖ 0x01 ‖ column id (u16)
//! row         = partition ‖ 0x10 ‖ key_encode(ck1) ‖ ... (DESC columns inverted)
//! cell        = row ‖ column id (u16); column id 0 is the row marker INSERT writes
//! value       = writetime µs (i64) ‖ expiry µs (i64, 0 = none) ‖ ttl s (i32) ‖ wire bytes
//! ```
//! The token's top 16 bits pick the tablet, so a tablet holds a token range and a scan
//! of the tablets in order returns rows in token order, as Cassandra does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use client::{Client, Table};
use rpc::mserver::{AlterTableRequest, CreateTableRequest};

use crate::error::{CqlError, Result};
use crate::types::{key_decode, key_encode, CqlType, Value};

/// Namespace of BCQL's own KV tables.
pub const META_NAMESPACE: &str = "system_bcql";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    PartitionKey,
    Clustering,
    Static,
    Regular,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::PartitionKey => "partition_key",
            Kind::Clustering => "clustering",
            Kind::Static => "static",
            Kind::Regular => "regular",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Column {
    pub name: String,
    pub id: u16,
    pub ty: CqlType,
    pub kind: Kind,
    /// Position among the partition key or clustering columns.
    pub position: usize,
    pub desc: bool,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IndexDef {
    pub name: String,
    pub column: String,
    /// values | keys | entries | full
    pub kind: String,
    /// The index's own table (see `index`); empty for an index whose queries filter a scan.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub table: String,
    /// That table's id: a table of the same name made later is another index's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub table_id: String,
    /// The table is built: queries may read it.
    #[serde(default)]
    pub ready: bool,
}

/// A CQL table definition (the mserver schema bytes of the table).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TableDef {
    pub api: String,
    pub keyspace: String,
    pub name: String,
    pub id: String,
    /// Partition key columns, clustering columns, static then regular columns by name (the
    /// order of `SELECT *`).
    pub columns: Vec<Column>,
    pub next_column_id: u16,
    pub default_ttl: i32,
    pub options: BTreeMap<String, String>,
    pub indexes: Vec<IndexDef>,
}

impl TableDef {
    pub fn col(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
    pub fn col_by_id(&self, id: u16) -> Option<&Column> {
        self.columns.iter().find(|c| c.id == id)
    }
    pub fn pk(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.kind == Kind::PartitionKey)
    }
    pub fn ck(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.kind == Kind::Clustering)
    }
    pub fn pk_len(&self) -> usize {
        self.pk().count()
    }
    pub fn ck_len(&self) -> usize {
        self.ck().count()
    }
    pub fn has_statics(&self) -> bool {
        self.columns.iter().any(|c| c.kind == Kind::Static)
    }
    pub fn is_counter_table(&self) -> bool {
        self.columns.iter().any(|c| c.ty.is_counter())
    }
    pub fn sort_columns(&mut self) {
        self.columns.sort_by(|a, b| {
            let rank = |c: &Column| match c.kind {
                Kind::PartitionKey => (0, c.position, String::new()),
                Kind::Clustering => (1, c.position, String::new()),
                Kind::Static => (2, 0, c.name.clone()),
                Kind::Regular => (3, 0, c.name.clone()),
            };
            rank(a).cmp(&rank(b))
        });
    }
}

/// A 128-bit digest of `parts` (two FNV-1a 64 hashes with different seeds): stable ids for
/// prepared statements, virtual tables and the schema version. Not cryptographic.
pub fn digest16(parts: &[&[u8]]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, seed) in [0xcbf2_9ce4_8422_2325u64, 0x8422_2325_cbf2_9ce4]
        .into_iter()
        .enumerate()
    {
        let mut h = seed;
        for b in parts.iter().flat_map(|p| p.iter()) {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        out[i * 8..i * 8 + 8].copy_from_slice(&h.to_be_bytes());
    }
    out
}

/// Sign-flip a token so that byte order is numeric order.
pub fn token_bytes(token: i64) -> [u8; 8] {
    ((token as u64) ^ (1 << 63)).to_be_bytes()
}

/// The 16-bit partition hash (tablet routing) of a token.
pub fn token_hash(token: i64) -> u16 {
    (((token as u64) ^ (1 << 63)) >> 48) as u16
}

/// The key prefix of a partition and its token, from the partition key values.
pub fn partition_key(def: &TableDef, pk: &[Value]) -> Result<(i64, Vec<u8>)> {
    let mut parts = Vec::with_capacity(pk.len());
    for (c, v) in def.pk().zip(pk) {
        if *v == Value::Null {
            return Err(CqlError::invalid(format!(
                "Invalid null value in condition for column {}",
                c.name
            )));
        }
        parts.push(crate::types::encode(&c.ty, v)?);
    }
    let serialized =
        crate::token::serialize_partition_key(&parts.iter().map(|p| &p[..]).collect::<Vec<_>>());
    if serialized.len() > 65535 {
        return Err(CqlError::invalid(format!(
            "Key length of {} is longer than maximum of 65535",
            serialized.len()
        )));
    }
    let token = crate::token::token(&serialized);
    let mut key = token_bytes(token).to_vec();
    for (c, v) in def.pk().zip(pk) {
        key_encode(&c.ty, v, false, &mut key)?;
    }
    Ok((token, key))
}

pub const STATIC_MARK: u8 = 0x01;
pub const ROW_MARK: u8 = 0x10;

/// Append clustering values (a prefix of the clustering columns) to a partition key.
pub fn append_clustering(def: &TableDef, key: &mut Vec<u8>, ck: &[Value]) -> Result<()> {
    key.push(ROW_MARK);
    for (c, v) in def.ck().zip(ck) {
        if *v == Value::Null {
            return Err(CqlError::invalid(format!(
                "Invalid null value in condition for column {}",
                c.name
            )));
        }
        key_encode(&c.ty, v, c.desc, key)?;
    }
    Ok(())
}

/// A decoded storage key.
#[derive(Debug)]
pub struct KeyParts {
    pub token: i64,
    /// Length of the partition prefix within the key.
    pub partition_len: usize,
    pub pk: Vec<Value>,
    /// `None` for a static cell.
    pub ck: Option<Vec<Value>>,
    /// Length of the row prefix (everything before the column id).
    pub row_len: usize,
    pub col: u16,
}

pub fn parse_key(def: &TableDef, key: &[u8]) -> Option<KeyParts> {
    let tb: [u8; 8] = key.get(..8)?.try_into().ok()?;
    let token = (u64::from_be_bytes(tb) ^ (1 << 63)) as i64;
    let mut rest = &key[8..];
    let mut pk = Vec::new();
    for c in def.pk() {
        let (v, r) = key_decode(&c.ty, rest, false)?;
        pk.push(v);
        rest = r;
    }
    let partition_len = key.len() - rest.len();
    let has_ck = def.ck_len() > 0;
    let ck = if has_ck {
        match *rest.first()? {
            STATIC_MARK => {
                rest = &rest[1..];
                None
            }
            ROW_MARK => {
                rest = &rest[1..];
                let mut ck = Vec::new();
                for c in def.ck() {
                    let (v, r) = key_decode(&c.ty, rest, c.desc)?;
                    ck.push(v);
                    rest = r;
                }
                Some(ck)
            }
            _ => return None,
        }
    } else {
        Some(Vec::new())
    };
    if rest.len() != 2 {
        return None;
    }
    Some(KeyParts {
        token,
        partition_len,
        pk,
        ck,
        row_len: key.len() - 2,
        col: u16::from_be_bytes([rest[0], rest[1]]),
    })
}

/// The row key of a table without clustering columns is the partition key itself; with
/// clustering columns, `partition ‖ 0x10 ‖ ck...`.
pub fn row_key(def: &TableDef, pk: &[Value], ck: &[Value]) -> Result<(i64, Vec<u8>)> {
    let (token, mut key) = partition_key(def, pk)?;
    if def.ck_len() > 0 {
        append_clustering(def, &mut key, ck)?;
    }
    Ok((token, key))
}

/// A stored cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub writetime: i64,
    pub expire_us: i64,
    pub ttl: i32,
    pub value: Vec<u8>,
}

impl Cell {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.value.len());
        out.extend_from_slice(&self.writetime.to_be_bytes());
        out.extend_from_slice(&self.expire_us.to_be_bytes());
        out.extend_from_slice(&self.ttl.to_be_bytes());
        out.extend_from_slice(&self.value);
        out
    }
    pub fn decode(b: &[u8]) -> Option<Cell> {
        if b.len() < 20 {
            return None;
        }
        Some(Cell {
            writetime: i64::from_be_bytes(b[..8].try_into().ok()?),
            expire_us: i64::from_be_bytes(b[8..16].try_into().ok()?),
            ttl: i32::from_be_bytes(b[16..20].try_into().ok()?),
            value: b[20..].to_vec(),
        })
    }
}

/// A keyspace's options.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct KeyspaceDef {
    pub name: String,
    pub replication: BTreeMap<String, String>,
    pub durable_writes: bool,
}

/// A user-defined type.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TypeDef {
    pub keyspace: String,
    pub name: String,
    pub fields: Vec<(String, CqlType)>,
}

/// How long a table definition is served from the cache: a schema change reaches every
/// server within this.
pub const CACHE_TTL: Duration = Duration::from_secs(2);

type Cached = (Arc<TableDef>, Arc<Table>, Instant);

/// The catalog cache over the mserver and the meta tables.
pub struct Catalog {
    pub client: Client,
    num_tablets: u32,
    tables: RwLock<HashMap<(String, String), Cached>>,
    /// Index tables by (keyspace, table name); their tablets never change.
    index_tables: RwLock<HashMap<(String, String), Arc<Table>>>,
    meta: tokio::sync::OnceCell<(Arc<Table>, Arc<Table>)>,
}

fn parse_def(schema: &[u8]) -> Option<TableDef> {
    let def: TableDef = serde_json::from_slice(schema).ok()?;
    (def.api == "cql").then_some(def)
}

impl Catalog {
    pub fn new(client: Client, num_tablets: u32) -> Self {
        Catalog {
            client,
            num_tablets: num_tablets.max(1),
            tables: RwLock::new(HashMap::new()),
            index_tables: RwLock::new(HashMap::new()),
            meta: tokio::sync::OnceCell::new(),
        }
    }

    /// The (keyspaces, types) meta tables, created on first use.
    async fn meta(&self) -> Result<&(Arc<Table>, Arc<Table>)> {
        self.meta
            .get_or_try_init(|| async {
                Ok::<_, CqlError>((
                    self.meta_table("keyspaces").await?,
                    self.meta_table("types").await?,
                ))
            })
            .await
    }

    /// A key-value table of BCQL's own (one range tablet), created if missing.
    pub(crate) async fn meta_table(&self, name: &str) -> Result<Arc<Table>> {
        self.client.create_namespace(META_NAMESPACE, true).await?;
        let t = match self.client.open_table(META_NAMESPACE, name).await {
            Ok(t) if !t.tablets.is_empty() => t,
            _ => {
                let r = self
                    .client
                    .create_table(CreateTableRequest {
                        namespace_name: META_NAMESPACE.into(),
                        name: name.into(),
                        schema: b"{}".to_vec(),
                        num_tablets: 1,
                        range_partitioned: true,
                        replication_factor: 0,
                        if_not_exists: true,
                    })
                    .await;
                if let Err(e) = r {
                    tracing::debug!("create {META_NAMESPACE}.{name}: {e}");
                }
                self.client.open_table(META_NAMESPACE, name).await?
            }
        };
        self.client.wait_for_leaders(&t).await?;
        Ok(Arc::new(t))
    }

    pub async fn keyspaces(&self) -> Result<Vec<KeyspaceDef>> {
        let (ks, _) = self.meta().await?;
        let rows = self.client.scan_all(ks).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect())
    }

    pub async fn keyspace(&self, name: &str) -> Result<Option<KeyspaceDef>> {
        if crate::system::is_system_keyspace(name) {
            return Ok(Some(KeyspaceDef {
                name: name.into(),
                replication: [(
                    "class".to_owned(),
                    "org.apache.cassandra.locator.LocalStrategy".to_owned(),
                )]
                .into(),
                durable_writes: true,
            }));
        }
        let (ks, _) = self.meta().await?;
        Ok(self
            .client
            .get(ks, name.as_bytes())
            .await?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    pub async fn put_keyspace(&self, def: &KeyspaceDef) -> Result<()> {
        let (ks, _) = self.meta().await?;
        self.put_meta_row(ks, def.name.as_bytes(), def, false)
            .await?;
        Ok(())
    }

    /// Create a keyspace; false if it existed.
    pub async fn create_keyspace(&self, def: &KeyspaceDef) -> Result<bool> {
        let (ks, _) = self.meta().await?;
        self.client.create_namespace(&def.name, true).await?;
        self.put_meta_row(ks, def.name.as_bytes(), def, true).await
    }

    /// Store `value` as JSON under `key` of meta table `t`; with `if_absent`, only if the key
    /// is free (false if it was not).
    pub(crate) async fn put_meta_row<T: serde::Serialize>(
        &self,
        t: &Table,
        key: &[u8],
        value: &T,
        if_absent: bool,
    ) -> Result<bool> {
        let v = serde_json::to_vec(value).map_err(|e| CqlError::server(e.to_string()))?;
        let r = self
            .client
            .write(
                t,
                key,
                vec![rpc::tablet::KvOp {
                    key: key.to_vec(),
                    value: v,
                    condition: if if_absent {
                        rpc::tablet::Condition::IfAbsent as i32
                    } else {
                        0
                    },
                    ..Default::default()
                }],
            )
            .await?;
        Ok(r.applied)
    }

    pub async fn drop_keyspace(&self, name: &str) -> Result<()> {
        for t in self.tables_of(Some(name)).await? {
            self.drop_table(name, &t.name).await?;
        }
        let (ks, types) = self.meta().await?;
        for (k, _) in self.client.scan_all(types).await? {
            if k.starts_with(format!("{name}\0").as_bytes()) {
                self.client.delete(types, &k).await?;
            }
        }
        self.client.delete(ks, name.as_bytes()).await?;
        // The namespace may hold other APIs' tables; only drop it when empty.
        let _ = self.client.delete_namespace(name, true).await;
        Ok(())
    }

    /// Every CQL table (of one keyspace, or all).
    pub async fn tables_of(&self, ks: Option<&str>) -> Result<Vec<TableDef>> {
        let resp = self.client.list_tables().await?;
        Ok(resp
            .tables
            .iter()
            .filter(|t| ks.is_none_or(|k| t.namespace_name == k))
            .filter_map(|t| parse_def(&t.schema))
            .collect())
    }

    pub async fn types(&self, ks: Option<&str>) -> Result<Vec<TypeDef>> {
        let (_, types) = self.meta().await?;
        let rows = self.client.scan_all(types).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice::<TypeDef>(&v).ok())
            .filter(|t| ks.is_none_or(|k| t.keyspace == k))
            .collect())
    }

    pub async fn put_type(&self, def: &TypeDef, if_absent: bool) -> Result<bool> {
        let (_, types) = self.meta().await?;
        let key = format!("{}\0{}", def.keyspace, def.name).into_bytes();
        self.put_meta_row(types, &key, def, if_absent).await
    }

    pub async fn drop_type(&self, ks: &str, name: &str) -> Result<()> {
        let (_, types) = self.meta().await?;
        self.client
            .delete(types, format!("{ks}\0{name}").as_bytes())
            .await?;
        Ok(())
    }

    /// A table's definition and tablets (cached for a short while).
    pub async fn table(&self, ks: &str, name: &str) -> Result<(Arc<TableDef>, Arc<Table>)> {
        let key = (ks.to_owned(), name.to_owned());
        if let Some((d, t, at)) = self
            .tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            if at.elapsed() < CACHE_TTL {
                return Ok((d.clone(), t.clone()));
            }
        }
        let t = match self.client.open_table(ks, name).await {
            Ok(t) => t,
            Err(e) if e.code() == common::StatusCode::NotFound => {
                return Err(self.missing(ks, name).await)
            }
            Err(e) => return Err(e.into()),
        };
        let Some(def) = parse_def(&t.info.schema) else {
            return Err(self.missing(ks, name).await);
        };
        let (d, t) = (Arc::new(def), Arc::new(t));
        self.tables
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (d.clone(), t.clone(), Instant::now()));
        Ok((d, t))
    }

    /// A table's definition read from the mserver now, not from the cache: for DDL, which
    /// must start from the latest definition (another server may have changed it).
    pub async fn table_fresh(&self, ks: &str, name: &str) -> Result<(Arc<TableDef>, Arc<Table>)> {
        self.forget(ks, name);
        self.table(ks, name).await
    }

    async fn missing(&self, ks: &str, name: &str) -> CqlError {
        match self.keyspace(ks).await {
            Ok(None) => CqlError::invalid(format!("Keyspace {ks} does not exist")),
            _ => CqlError::invalid(format!("unconfigured table {name}")),
        }
    }

    pub fn forget(&self, ks: &str, name: &str) {
        self.tables
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(ks.to_owned(), name.to_owned()));
    }

    /// An index's table (see `index`); `None` when it is gone or was made anew since the
    /// definition `ix` was read (a stale definition of a dropped index).
    pub async fn index_table(&self, ks: &str, ix: &IndexDef) -> Result<Option<Arc<Table>>> {
        let key = (ks.to_owned(), ix.table.clone());
        if let Some(t) = self
            .index_tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            if t.info.table_id == ix.table_id {
                return Ok(Some(t.clone()));
            }
        }
        let t = match self.client.open_table(ks, &ix.table).await {
            Ok(t) => Arc::new(t),
            Err(e) if e.code() == common::StatusCode::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if t.info.table_id != ix.table_id {
            return Ok(None);
        }
        self.index_tables
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, t.clone());
        Ok(Some(t))
    }

    /// Create the table of an index on table `base` (replacing a leftover of the same name);
    /// returns its id.
    pub async fn create_index_table(&self, ks: &str, name: &str, base: &str) -> Result<String> {
        self.drop_index_table(ks, name).await?;
        let schema = serde_json::json!({ "api": "cql-index", "base": base });
        let info = self
            .client
            .create_table(CreateTableRequest {
                namespace_name: ks.to_owned(),
                name: name.to_owned(),
                schema: schema.to_string().into_bytes(),
                num_tablets: self.num_tablets,
                range_partitioned: false,
                replication_factor: 0,
                if_not_exists: false,
            })
            .await?;
        let t = self.client.open_table(ks, name).await?;
        self.client.wait_for_leaders(&t).await?;
        Ok(info.table_id)
    }

    /// Drop an index's table if it exists.
    pub async fn drop_index_table(&self, ks: &str, name: &str) -> Result<()> {
        self.index_tables
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(ks.to_owned(), name.to_owned()));
        match self.client.delete_table(ks, name).await {
            Err(e) if e.code() != common::StatusCode::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Create a table; false if it existed.
    pub async fn create_table(&self, def: &TableDef) -> Result<bool> {
        let schema = serde_json::to_vec(def).map_err(|e| CqlError::server(e.to_string()))?;
        let r = self
            .client
            .create_table(CreateTableRequest {
                namespace_name: def.keyspace.clone(),
                name: def.name.clone(),
                schema,
                num_tablets: self.num_tablets,
                range_partitioned: false,
                replication_factor: 0,
                if_not_exists: false,
            })
            .await;
        match r {
            Ok(_) => {}
            Err(e) if e.code() == common::StatusCode::AlreadyExists => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let t = self.client.open_table(&def.keyspace, &def.name).await?;
        self.client.wait_for_leaders(&t).await?;
        self.forget(&def.keyspace, &def.name);
        Ok(true)
    }

    /// Replace a table's definition (and optionally rename nothing: CQL cannot rename).
    pub async fn alter_table(&self, old: &TableDef, new: &TableDef) -> Result<()> {
        let schema = serde_json::to_vec(new).map_err(|e| CqlError::server(e.to_string()))?;
        let (_, t) = self.table(&old.keyspace, &old.name).await?;
        self.client
            .alter_table(AlterTableRequest {
                namespace_name: old.keyspace.clone(),
                name: old.name.clone(),
                new_name: String::new(),
                set_schema: true,
                schema,
                expected_schema: t.info.schema.clone(),
            })
            .await?;
        self.forget(&old.keyspace, &old.name);
        Ok(())
    }

    /// Drop a table and its indexes' tables.
    pub async fn drop_table(&self, ks: &str, name: &str) -> Result<()> {
        let indexes = match self.table(ks, name).await {
            Ok((def, _)) => def.indexes.clone(),
            Err(_) => Vec::new(),
        };
        self.client.delete_table(ks, name).await?;
        self.forget(ks, name);
        for i in indexes.iter().filter(|i| !i.table.is_empty()) {
            self.drop_index_table(ks, &i.table).await?;
        }
        Ok(())
    }

    /// A stable digest of the whole CQL schema (`schema_version`).
    pub async fn schema_version(&self) -> Result<[u8; 16]> {
        let resp = self.client.list_tables().await?;
        let mut tables: Vec<_> = resp.tables.iter().collect();
        tables.sort_by(|a, b| a.table_id.cmp(&b.table_id));
        let mut parts: Vec<Vec<u8>> = Vec::new();
        for t in tables {
            parts.push(t.table_id.clone().into_bytes());
            parts.push(t.schema.clone());
        }
        for ks in self.keyspaces().await? {
            parts.push(ks.name.into_bytes());
        }
        for t in self.types(None).await? {
            parts.push(t.name.into_bytes());
            parts.push(format!("{:?}", t.fields).into_bytes());
        }
        let mut u = digest16(&parts.iter().map(|p| &p[..]).collect::<Vec<_>>());
        u[6] = (u[6] & 0x0F) | 0x30;
        u[8] = (u[8] & 0x3F) | 0x80;
        Ok(u)
    }
}
