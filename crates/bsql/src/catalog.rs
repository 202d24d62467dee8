//! The SQL catalog: table definitions (columns, types, primary key, defaults) stored as the
//! `schema` of the mserver's table entry, a per-server cache of them, and sequences.
//!
//! A database is an mserver namespace; table `s.t` of database `d` is the mserver table
//! `s.t` in namespace `d`. Cached definitions are re-read from the mserver once they are
//! older than [`CACHE_TTL`], so DDL on another server is seen within that time.
//!
//! Views ([`ViewDef`]) and sequences live in BSQL's own system tables (namespace
//! `system_bsql`), one row each keyed by database, schema and name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use client::{Client, Condition, KvOp, Table};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::error::{SqlError, SqlResult};
use crate::index::IndexTable;
use crate::types::SqlType;

/// How long a cached table definition is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// Namespace of BSQL's own system tables.
const SYSTEM_NAMESPACE: &str = "system_bsql";
/// Sequence values a server reserves at a time (as YugabyteDB's sequence cache).
const SEQUENCE_CACHE: i64 = 100;

/// One column.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Stable id (values are stored by id, so columns can be renamed and dropped).
    pub id: u32,
    pub name: String,
    pub ty: SqlType,
    /// Length limit of varchar(n) / char(n).
    #[serde(default)]
    pub len: Option<u32>,
    pub nullable: bool,
    /// Default expression, as SQL text.
    #[serde(default)]
    pub default: Option<String>,
}

/// One table.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TableDef {
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Primary key columns (indexes into `columns`); empty: rows are keyed by a hidden id.
    pub pk: Vec<usize>,
    pub next_column_id: u32,
    /// CHECK constraints, as SQL text.
    #[serde(default)]
    pub checks: Vec<String>,
    /// The names given to `checks` (`CONSTRAINT name CHECK ...`), by position; missing or
    /// `None`: PostgreSQL's default name (see `describe`). Tables made before names were kept
    /// have none.
    #[serde(default)]
    pub check_names: Vec<Option<String>>,
    /// Secondary indexes (`CREATE INDEX`), in creation order.
    #[serde(default)]
    pub indexes: Vec<IndexDef>,
    /// FOREIGN KEY constraints of this table (see [`crate::foreign`]).
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKeyDef>,
    /// The foreign keys of other tables (or this one) that reference this table.
    #[serde(default)]
    pub referenced_by: Vec<Reference>,
}

/// A FOREIGN KEY constraint: `columns` of this table reference `parent_columns` of table
/// `parent_schema.parent_table` (its primary key or a unique index).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForeignKeyDef {
    pub name: String,
    /// Referencing columns, by column id.
    pub columns: Vec<u32>,
    pub parent_schema: String,
    pub parent_table: String,
    /// Referenced columns, by name.
    pub parent_columns: Vec<String>,
    pub on_delete: FkAction,
    pub on_update: FkAction,
}

/// What deleting or updating a referenced row does to the rows referencing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FkAction {
    /// Refuse (23503): NO ACTION and RESTRICT (checked at once, not deferred).
    NoAction,
    Cascade,
    SetNull,
}

/// A foreign key of table `schema.table`, named `constraint`, that references this table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    pub schema: String,
    pub table: String,
    pub constraint: String,
}

/// A secondary index, recorded in the table's definition (so psql, `pg_class` and DROP
/// INDEX see it) and kept in its index table (see [`crate::index`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexDef {
    pub name: String,
    /// Indexed columns by column id, each with whether it is descending.
    pub columns: Vec<(u32, bool)>,
    /// No two rows with the same non-null values.
    #[serde(default)]
    pub unique: bool,
    /// Made by a UNIQUE constraint (`\d` shows it as one; DROP INDEX refuses it).
    #[serde(default)]
    pub constraint: bool,
    /// The mserver table holding its entries. Indexes made before indexes had tables have
    /// none: they are names only.
    #[serde(default)]
    pub storage: Option<String>,
}

/// Mark of an index table's mserver name (`<schema>.\u{1}<table>\u{1}<index>\u{1}<tag>`),
/// which no listing of tables shows.
pub const INDEX_MARK: char = '\u{1}';

/// A new mserver name for an index table of index `index` on `schema.table` (unique even
/// if a renamed table's index kept the same names).
pub fn index_storage_name(schema: &str, table: &str, index: &str) -> String {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{schema}.{INDEX_MARK}{table}{INDEX_MARK}{index}{INDEX_MARK}{}",
        &tag[..8]
    )
}

impl TableDef {
    /// Add a CHECK constraint (`name`: the one given in the DDL, if any).
    pub fn add_check(&mut self, expr: String, name: Option<String>) {
        self.check_names.resize(self.checks.len(), None);
        self.checks.push(expr);
        self.check_names.push(name);
    }

    /// Drop what depends on column `name` (as PostgreSQL's DROP COLUMN does): the indexes
    /// on it and the CHECK constraints that use it.
    pub fn drop_dependents_of(&mut self, name: &str) {
        if let Some(id) = self.columns.iter().find(|c| c.name == name).map(|c| c.id) {
            self.indexes
                .retain(|ix| ix.columns.iter().all(|(c, _)| *c != id));
        }
        self.check_names.resize(self.checks.len(), None);
        let (checks, names) = std::mem::take(&mut self.checks)
            .into_iter()
            .zip(std::mem::take(&mut self.check_names))
            .filter(|(check, _)| !mentions(check, name))
            .unzip();
        self.checks = checks;
        self.check_names = names;
    }
}

/// Whether SQL text `text` names the identifier `name` as a whole word (which CHECK
/// expressions use which columns).
pub fn mentions(text: &str, name: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// An index of a table as the catalog views show it.
#[derive(Clone, Debug)]
pub struct IndexInfo {
    pub name: String,
    /// Column positions in `TableDef::columns`, each with whether it is descending.
    pub columns: Vec<(usize, bool)>,
    /// The primary key's index.
    pub primary: bool,
    /// A unique index (the primary key's is).
    pub unique: bool,
    /// Made by a constraint (PRIMARY KEY, UNIQUE).
    pub constraint: bool,
}

impl TableDef {
    /// Whether the table has a relation (itself or an index) named `name`.
    pub fn owns_relation(&self, name: &str) -> bool {
        self.name == name || self.all_indexes().iter().any(|i| i.name == name)
    }

    /// Every index of the table, the primary key's (`<table>_pkey`) first.
    pub fn all_indexes(&self) -> Vec<IndexInfo> {
        let mut out = Vec::new();
        if !self.pk.is_empty() {
            let cols = self.pk.iter().map(|&i| (i, false)).collect();
            out.push(IndexInfo {
                name: format!("{}_pkey", self.name),
                columns: cols,
                primary: true,
                unique: true,
                constraint: true,
            });
        }
        for ix in &self.indexes {
            let cols = ix
                .columns
                .iter()
                .filter_map(|(id, desc)| self.position_of(*id).map(|p| (p, *desc)))
                .collect();
            out.push(IndexInfo {
                name: ix.name.clone(),
                columns: cols,
                primary: false,
                unique: ix.unique,
                constraint: ix.constraint,
            });
        }
        out
    }

    /// Position in `columns` of the column with id `id`.
    pub fn position_of(&self, id: u32) -> Option<usize> {
        self.columns.iter().position(|c| c.id == id)
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The Arrow schema DataFusion sees.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.ty.arrow(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    /// The mserver table name of this definition.
    pub fn storage_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// A table ready to use: its definition and where its tablets are.
/// A view: its defining query, as SQL text, and the names of its columns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewDef {
    pub schema: String,
    pub name: String,
    pub query: String,
    pub columns: Vec<String>,
    /// The columns' types as planned at creation (for `\d`).
    #[serde(default)]
    pub types: Vec<SqlType>,
}

#[derive(Debug)]
pub struct Resolved {
    pub def: Arc<TableDef>,
    pub table: Arc<Table>,
    pub schema: SchemaRef,
    /// The indexes with index tables.
    pub indexes: Vec<IndexTable>,
    loaded: Instant,
}

type TableKey = (String, String, String);
/// When a database's views were listed, and the views.
type ListedViews = (Instant, Arc<Vec<ViewDef>>);
/// When a database's `(schema, table)` names were listed, and the names.
type Listed = (Instant, Vec<(String, String)>);

/// The per-server catalog cache.
pub struct Catalog {
    pub client: Client,
    num_tablets: u32,
    tables: RwLock<HashMap<TableKey, Arc<Resolved>>>,
    /// Table names per database, with when they were listed.
    names: RwLock<HashMap<String, Listed>>,
    sequences: Mutex<HashMap<String, (i64, i64)>>,
    seq_table: tokio::sync::OnceCell<Arc<Table>>,
    view_table: tokio::sync::OnceCell<Arc<Table>>,
    role_table: tokio::sync::OnceCell<Arc<Table>>,
    /// Views per database, with when they were listed.
    views: RwLock<HashMap<String, ListedViews>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Catalog")
    }
}

impl Catalog {
    pub fn new(client: Client, num_tablets: u32) -> Self {
        Catalog {
            client,
            num_tablets,
            tables: RwLock::default(),
            names: RwLock::default(),
            sequences: Mutex::default(),
            seq_table: tokio::sync::OnceCell::new(),
            view_table: tokio::sync::OnceCell::new(),
            role_table: tokio::sync::OnceCell::new(),
            views: RwLock::default(),
        }
    }

    /// Look a table up; `None` if it does not exist.
    pub async fn table(
        &self,
        db: &str,
        schema: &str,
        name: &str,
    ) -> SqlResult<Option<Arc<Resolved>>> {
        let key = (db.to_owned(), schema.to_owned(), name.to_owned());
        if let Some(r) = self
            .tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            if r.loaded.elapsed() < CACHE_TTL {
                return Ok(Some(r.clone()));
            }
        }
        let table = match self
            .client
            .open_table(db, &format!("{schema}.{name}"))
            .await
        {
            Ok(t) => t,
            Err(e) if e.code() == common::StatusCode::NotFound => {
                self.tables
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let def: TableDef = serde_json::from_slice(&table.info.schema).map_err(|e| {
            SqlError::internal(format!("table {schema}.{name} has no SQL definition: {e}"))
        })?;
        let mut indexes = Vec::new();
        for ix in &def.indexes {
            if let Some(storage) = &ix.storage {
                let t = self.client.open_table(db, storage).await?;
                indexes.push(IndexTable::new(&def, ix.clone(), t));
            }
        }
        let def = Arc::new(def);
        let resolved = Arc::new(Resolved {
            schema: def.arrow_schema(),
            def,
            table: Arc::new(table),
            indexes,
            loaded: Instant::now(),
        });
        self.tables
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, resolved.clone());
        Ok(Some(resolved))
    }

    /// Like [`Catalog::table`], but a missing table is error 42P01.
    pub async fn require(&self, db: &str, schema: &str, name: &str) -> SqlResult<Arc<Resolved>> {
        self.table(db, schema, name)
            .await?
            .ok_or_else(|| SqlError::no_table(name))
    }

    /// `(schema, table)` names of database `db` (cached briefly).
    pub async fn table_names(&self, db: &str) -> SqlResult<Vec<(String, String)>> {
        if let Some((at, names)) = self.names.read().unwrap_or_else(|e| e.into_inner()).get(db) {
            if at.elapsed() < CACHE_TTL {
                return Ok(names.clone());
            }
        }
        let resp = self.client.list_tables().await?;
        let names: Vec<(String, String)> = resp
            .tables
            .iter()
            .filter(|t| t.namespace_name == db)
            .filter(|t| !t.name.contains(INDEX_MARK))
            .filter_map(|t| {
                t.name
                    .split_once('.')
                    .map(|(s, n)| (s.to_owned(), n.to_owned()))
            })
            .collect();
        self.names
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(db.to_owned(), (Instant::now(), names.clone()));
        Ok(names)
    }

    /// Cached `(schema, table)` names, without asking the mserver.
    pub fn cached_names(&self, db: &str) -> Vec<(String, String)> {
        self.names
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(db)
            .map(|(_, n)| n.clone())
            .unwrap_or_default()
    }

    /// Forget what is cached about database `db`.
    pub fn invalidate(&self, db: &str) {
        self.names
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(db);
        self.tables
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| k.0 != db);
    }

    /// Create database `db` (an mserver namespace).
    pub async fn create_database(&self, db: &str, if_not_exists: bool) -> SqlResult<()> {
        self.client
            .create_namespace(db, if_not_exists)
            .await
            .map_err(|e| match e.code() {
                common::StatusCode::AlreadyExists => {
                    SqlError::new("42P04", format!("database \"{db}\" already exists"))
                }
                _ => e.into(),
            })
    }

    /// Drop database `db` with everything in it: its tables (with their index tables) and
    /// views, then its namespace. False if it does not exist.
    pub async fn drop_database(&self, db: &str) -> SqlResult<bool> {
        let listed = self.client.list_tables().await?;
        if !listed.namespaces.iter().any(|n| n == db) {
            return Ok(false);
        }
        for t in listed.tables.iter().filter(|t| t.namespace_name == db) {
            match self.client.delete_table(db, &t.name).await {
                Ok(()) => {}
                Err(e) if e.code() == common::StatusCode::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        for v in self.views(db).await?.iter() {
            self.drop_view(db, &v.schema, &v.name).await?;
        }
        self.invalidate(db);
        self.client.delete_namespace(db, true).await?;
        Ok(true)
    }

    /// Create a table; false if it existed and `if_not_exists` was given.
    pub async fn create_table(
        &self,
        db: &str,
        def: &TableDef,
        range: bool,
        if_not_exists: bool,
    ) -> SqlResult<bool> {
        self.create_table_as(db, def, &def.storage_name(), range, if_not_exists)
            .await
    }

    /// Create a table stored under `storage_name` (a rewrite's scratch name).
    pub async fn create_table_as(
        &self,
        db: &str,
        def: &TableDef,
        storage_name: &str,
        range: bool,
        if_not_exists: bool,
    ) -> SqlResult<bool> {
        let schema = serde_json::to_vec(def)
            .map_err(|e| SqlError::internal(format!("encoding table: {e}")))?;
        // Without a primary key, rows are keyed by insertion-ordered hidden ids: one range
        // tablet keeps a scan in insertion order.
        let range = range || def.pk.is_empty();
        let req = rpc::mserver::CreateTableRequest {
            namespace_name: db.to_owned(),
            name: storage_name.to_owned(),
            schema,
            num_tablets: if range { 1 } else { self.num_tablets },
            range_partitioned: range,
            replication_factor: 0,
            if_not_exists: false,
        };
        let created = match self.client.create_table(req).await {
            Ok(_) => true,
            Err(e) if e.code() == common::StatusCode::AlreadyExists => {
                if if_not_exists {
                    false
                } else {
                    return Err(SqlError::new(
                        "42P07",
                        format!("relation \"{}\" already exists", def.name),
                    ));
                }
            }
            Err(e) => return Err(e.into()),
        };
        self.invalidate(db);
        if created {
            let t = self.client.open_table(db, storage_name).await?;
            self.client.wait_for_leaders(&t).await?;
        }
        Ok(created)
    }

    /// Create the (empty, one-tablet, range-partitioned) index table `storage`.
    pub async fn create_index_table(&self, db: &str, storage: &str) -> SqlResult<()> {
        let req = rpc::mserver::CreateTableRequest {
            namespace_name: db.to_owned(),
            name: storage.to_owned(),
            schema: b"{\"index\":true}".to_vec(),
            num_tablets: 1,
            range_partitioned: true,
            replication_factor: 0,
            if_not_exists: false,
        };
        self.client.create_table(req).await?;
        let t = self.client.open_table(db, storage).await?;
        self.client.wait_for_leaders(&t).await?;
        Ok(())
    }

    /// Drop the index tables of `indexes` (those that have one).
    pub async fn drop_index_tables(&self, db: &str, indexes: &[IndexDef]) -> SqlResult<()> {
        for ix in indexes {
            if let Some(storage) = &ix.storage {
                match self.client.delete_table(db, storage).await {
                    Ok(()) => {}
                    Err(e) if e.code() == common::StatusCode::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// Drop a table; false if it did not exist.
    pub async fn drop_table(&self, db: &str, schema: &str, name: &str) -> SqlResult<bool> {
        let r = self
            .client
            .delete_table(db, &format!("{schema}.{name}"))
            .await;
        self.invalidate(db);
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.code() == common::StatusCode::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Rename table `schema.name` of `db` and/or replace its definition; `expected` is the
    /// stored definition the change was computed from (a concurrent ALTER fails it).
    pub async fn alter(
        &self,
        db: &str,
        storage_name: &str,
        new_storage_name: Option<String>,
        def: Option<&TableDef>,
        expected: Option<Vec<u8>>,
    ) -> SqlResult<()> {
        let schema = match def {
            Some(d) => serde_json::to_vec(d)
                .map_err(|e| SqlError::internal(format!("encoding table: {e}")))?,
            None => Vec::new(),
        };
        let req = rpc::mserver::AlterTableRequest {
            namespace_name: db.to_owned(),
            name: storage_name.to_owned(),
            new_name: new_storage_name.unwrap_or_default(),
            set_schema: def.is_some(),
            schema,
            expected_schema: expected.unwrap_or_default(),
        };
        let r = self.client.alter_table(req).await;
        self.invalidate(db);
        r.map_err(|e| match e.code() {
            common::StatusCode::AlreadyExists => SqlError::new("42P07", e.to_string()),
            common::StatusCode::InvalidArgument => SqlError::new("40001", e.to_string()),
            _ => e.into(),
        })
    }

    /// Replace the definition of table `r` with `def` (compare-and-set against the stored
    /// definition `r` was read from: a concurrent ALTER fails it with 40001).
    pub async fn replace_def(&self, db: &str, r: &Resolved, def: &TableDef) -> SqlResult<()> {
        self.alter(
            db,
            &r.def.storage_name(),
            None,
            Some(def),
            Some(r.table.info.schema.clone()),
        )
        .await
    }

    async fn sequence_table(&self) -> SqlResult<Arc<Table>> {
        self.system_table(&self.seq_table, "sequences").await
    }

    /// BSQL's system table `name` (one tablet), created on first use.
    async fn system_table(
        &self,
        cell: &tokio::sync::OnceCell<Arc<Table>>,
        name: &str,
    ) -> SqlResult<Arc<Table>> {
        cell.get_or_try_init(|| async {
            self.client.create_namespace(SYSTEM_NAMESPACE, true).await?;
            let req = rpc::mserver::CreateTableRequest {
                namespace_name: SYSTEM_NAMESPACE.to_owned(),
                name: name.to_owned(),
                num_tablets: 1,
                if_not_exists: true,
                ..Default::default()
            };
            self.client.create_table(req).await?;
            let t = self.client.open_table(SYSTEM_NAMESPACE, name).await?;
            self.client.wait_for_leaders(&t).await?;
            Ok::<_, SqlError>(Arc::new(t))
        })
        .await
        .cloned()
    }

    fn view_key(db: &str, schema: &str, name: &str) -> Vec<u8> {
        format!("{db}\0{schema}\0{name}").into_bytes()
    }

    /// The views of database `db` (cached briefly, like table definitions).
    pub async fn views(&self, db: &str) -> SqlResult<Arc<Vec<ViewDef>>> {
        if let Some((at, v)) = self.views.read().unwrap_or_else(|e| e.into_inner()).get(db) {
            if at.elapsed() < CACHE_TTL {
                return Ok(v.clone());
            }
        }
        // Reading does not create the table (the first query of a fresh cluster would wait
        // for it): no table, no views.
        let t = self
            .existing_system_table(&self.view_table, "views")
            .await?;
        let prefix = format!("{db}\0").into_bytes();
        let mut list = Vec::new();
        let rows = match &t {
            Some(t) => self.client.scan_all(t).await?,
            None => Vec::new(),
        };
        for (k, v) in rows {
            if !k.starts_with(&prefix) {
                continue;
            }
            let def: ViewDef = serde_json::from_slice(&v)
                .map_err(|e| SqlError::internal(format!("undecodable view definition: {e}")))?;
            list.push(def);
        }
        let list = Arc::new(list);
        self.views
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(db.to_owned(), (Instant::now(), list.clone()));
        Ok(list)
    }

    /// BSQL's system table `name` if it exists (reading never creates one).
    async fn existing_system_table(
        &self,
        cell: &tokio::sync::OnceCell<Arc<Table>>,
        name: &str,
    ) -> SqlResult<Option<Arc<Table>>> {
        if let Some(t) = cell.get() {
            return Ok(Some(t.clone()));
        }
        match self.client.open_table(SYSTEM_NAMESPACE, name).await {
            Ok(t) => Ok(Some(Arc::new(t))),
            Err(e) if e.code() == common::StatusCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Role `name` as stored (the default role `yugabyte` is not, until changed).
    pub async fn role(&self, name: &str) -> SqlResult<Option<crate::auth::RoleDef>> {
        let Some(t) = self
            .existing_system_table(&self.role_table, "roles")
            .await?
        else {
            return Ok(None);
        };
        match self.client.get(&t, name.as_bytes()).await? {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| SqlError::internal(format!("undecodable role {name}: {e}"))),
            None => Ok(None),
        }
    }

    /// Store `role`; unless `replace`, only if no role of that name is stored (false if one
    /// was).
    pub async fn put_role(&self, role: &crate::auth::RoleDef, replace: bool) -> SqlResult<bool> {
        let t = self.system_table(&self.role_table, "roles").await?;
        self.put_json(&t, role.name.as_bytes().to_vec(), role, replace)
            .await
    }

    /// Remove role `name`; false if none was stored.
    pub async fn drop_role(&self, name: &str) -> SqlResult<bool> {
        match self
            .existing_system_table(&self.role_table, "roles")
            .await?
        {
            Some(t) => self.delete_present(&t, name.as_bytes().to_vec()).await,
            None => Ok(false),
        }
    }

    /// View `schema.name` of database `db`, if there is one.
    pub async fn view(&self, db: &str, schema: &str, name: &str) -> SqlResult<Option<ViewDef>> {
        Ok(self
            .views(db)
            .await?
            .iter()
            .find(|v| v.schema == schema && v.name == name)
            .cloned())
    }

    /// Store view `def` of database `db`; with `replace`, over an existing one. False if one
    /// existed and `replace` was not given.
    pub async fn put_view(&self, db: &str, def: &ViewDef, replace: bool) -> SqlResult<bool> {
        let t = self.system_table(&self.view_table, "views").await?;
        let key = Self::view_key(db, &def.schema, &def.name);
        let applied = self.put_json(&t, key, def, replace).await;
        self.forget_views(db);
        applied
    }

    /// Remove view `schema.name` of database `db`; false if there was none.
    pub async fn drop_view(&self, db: &str, schema: &str, name: &str) -> SqlResult<bool> {
        let t = self.system_table(&self.view_table, "views").await?;
        let applied = self
            .delete_present(&t, Self::view_key(db, schema, name))
            .await;
        self.forget_views(db);
        applied
    }

    fn forget_views(&self, db: &str) {
        self.views
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(db);
    }

    /// Write `value` as JSON under `key` of system table `t`: over what is there with
    /// `replace`, else only if nothing is (false if something was).
    async fn put_json<T: Serialize>(
        &self,
        t: &Table,
        key: Vec<u8>,
        value: &T,
        replace: bool,
    ) -> SqlResult<bool> {
        let value = serde_json::to_vec(value)
            .map_err(|e| SqlError::internal(format!("encoding a catalog row: {e}")))?;
        let condition = if replace {
            Condition::None
        } else {
            Condition::IfAbsent
        };
        let op = KvOp {
            key: key.clone(),
            value,
            condition: condition as i32,
            ..Default::default()
        };
        Ok(self.client.write(t, &key, vec![op]).await?.applied)
    }

    /// Delete `key` of system table `t`; false if it was not there.
    async fn delete_present(&self, t: &Table, key: Vec<u8>) -> SqlResult<bool> {
        let op = KvOp {
            key: key.clone(),
            delete: true,
            condition: Condition::IfPresent as i32,
            ..Default::default()
        };
        Ok(self.client.write(t, &key, vec![op]).await?.applied)
    }

    /// The next value of sequence `name` of database `db` (values are reserved
    /// [`SEQUENCE_CACHE`] at a time per server, so they are unique but may have gaps).
    pub async fn nextval(&self, db: &str, name: &str) -> SqlResult<i64> {
        let key = format!("{db}\0{name}");
        {
            let mut seqs = self.sequences.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((next, end)) = seqs.get_mut(&key) {
                if *next < *end {
                    *next += 1;
                    return Ok(*next - 1);
                }
            }
        }
        let t = self.sequence_table().await?;
        loop {
            let current = self.client.get(&t, key.as_bytes()).await?;
            let last = match &current {
                Some(v) if v.len() == 8 => {
                    i64::from_be_bytes(v[..8].try_into().unwrap_or_default())
                }
                _ => 0,
            };
            let end = last + SEQUENCE_CACHE;
            let (condition, expected) = match current {
                Some(v) => (Condition::IfEquals, v),
                None => (Condition::IfAbsent, Vec::new()),
            };
            let op = KvOp {
                key: key.as_bytes().to_vec(),
                value: end.to_be_bytes().to_vec(),
                condition: condition as i32,
                expected,
                ..Default::default()
            };
            if self
                .client
                .write(&t, key.as_bytes(), vec![op])
                .await?
                .applied
            {
                let mut seqs = self.sequences.lock().unwrap_or_else(|e| e.into_inner());
                seqs.insert(key, (last + 2, end + 1));
                return Ok(last + 1);
            }
        }
    }
}
