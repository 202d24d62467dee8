//! The catalog: namespaces, tables, tablets and their replicas, registered dbservers.
//!
//! [`Catalog`] is plain data; [`CatalogApp`] makes it the replicated state machine of the
//! `sys.catalog` Raft group. Every applied [`CatalogCmd`] rewrites the whole catalog under
//! `Cf::Meta` / `"sys.catalog"` in the same atomic batch as the applied log id (the catalog
//! checkpoints on every entry; it is small; per-object keys can come when it is not).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use consensus::StateMachineApp;
use storage::{Cf, KvEngine, StorageError, WriteBatch};

const CATALOG_KEY: &[u8] = b"sys.catalog";

/// A replica of a tablet.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Replica {
    pub server_uuid: String,
    pub node_id: u64,
    pub rpc_addr: String,
}

/// A table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableEntry {
    pub table_id: String,
    pub namespace: String,
    pub name: String,
    pub schema: Vec<u8>,
    pub range_partitioned: bool,
    pub replication_factor: u32,
    pub tablet_ids: Vec<String>,
}

/// A tablet and its placement.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TabletEntry {
    pub tablet_id: String,
    pub table_id: String,
    pub hash_start: u32,
    pub hash_end: u32,
    pub replicas: Vec<Replica>,
    pub initial_leader_uuid: String,
}

/// A registered dbserver.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerEntry {
    pub server_uuid: String,
    pub node_id: u64,
    pub rpc_addr: String,
    pub http_addr: String,
}

/// The whole catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Catalog {
    pub namespaces: BTreeSet<String>,
    pub tables: BTreeMap<String, TableEntry>,
    pub tablets: BTreeMap<String, TabletEntry>,
    pub servers: BTreeMap<String, ServerEntry>,
}

impl Catalog {
    pub fn find_table(&self, namespace: &str, name: &str) -> Option<&TableEntry> {
        self.tables
            .values()
            .find(|t| t.namespace == namespace && t.name == name)
    }
}

/// A change to the catalog (a log entry of `sys.catalog`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum CatalogCmd {
    CreateNamespace {
        name: String,
    },
    CreateTable {
        table: TableEntry,
        tablets: Vec<TabletEntry>,
    },
    DeleteTable {
        table_id: String,
    },
    RegisterServer(ServerEntry),
    /// Rename a table and/or replace its schema.
    AlterTable {
        table_id: String,
        new_name: Option<String>,
        schema: Option<Vec<u8>>,
    },
    /// Remove a namespace that holds no tables.
    DeleteNamespace {
        name: String,
    },
}

impl Catalog {
    /// Apply a command; errors leave the catalog unchanged.
    pub fn apply(&mut self, cmd: CatalogCmd) -> Result<(), String> {
        match cmd {
            CatalogCmd::CreateNamespace { name } => {
                self.namespaces.insert(name);
            }
            CatalogCmd::CreateTable { table, tablets } => {
                if !self.namespaces.contains(&table.namespace) {
                    return Err(format!("namespace {} does not exist", table.namespace));
                }
                if self.find_table(&table.namespace, &table.name).is_some() {
                    return Err(format!(
                        "table {}.{} already exists",
                        table.namespace, table.name
                    ));
                }
                for t in tablets {
                    self.tablets.insert(t.tablet_id.clone(), t);
                }
                self.tables.insert(table.table_id.clone(), table);
            }
            CatalogCmd::DeleteTable { table_id } => {
                if let Some(t) = self.tables.remove(&table_id) {
                    for id in t.tablet_ids {
                        self.tablets.remove(&id);
                    }
                }
            }
            CatalogCmd::DeleteNamespace { name } => {
                if self.tables.values().any(|t| t.namespace == name) {
                    return Err(format!("namespace {name} is not empty"));
                }
                self.namespaces.remove(&name);
            }
            CatalogCmd::RegisterServer(s) => {
                self.servers.insert(s.server_uuid.clone(), s);
            }
            CatalogCmd::AlterTable {
                table_id,
                new_name,
                schema,
            } => {
                let Some(t) = self.tables.get(&table_id) else {
                    return Err(format!("table {table_id} does not exist"));
                };
                if let Some(n) = &new_name {
                    if self.find_table(&t.namespace, n).is_some() {
                        return Err(format!("table {}.{n} already exists", t.namespace));
                    }
                }
                if let Some(t) = self.tables.get_mut(&table_id) {
                    if let Some(n) = new_name {
                        t.name = n;
                    }
                    if let Some(s) = schema {
                        t.schema = s;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The catalog as a Raft state machine.
pub struct CatalogApp {
    state: Arc<RwLock<Catalog>>,
}

impl CatalogApp {
    /// Load the catalog persisted in `engine` (empty if none).
    pub fn open(engine: Arc<dyn KvEngine>) -> Result<Self, StorageError> {
        let state = match engine.get(Cf::Meta, CATALOG_KEY)? {
            Some(raw) => bincode::deserialize(&raw).map_err(|e| StorageError::Corrupt {
                what: "catalog",
                detail: e.to_string(),
            })?,
            None => Catalog::default(),
        };
        Ok(Self {
            state: Arc::new(RwLock::new(state)),
        })
    }

    pub fn state(&self) -> Arc<RwLock<Catalog>> {
        self.state.clone()
    }

    fn persist(&self, c: &Catalog, batch: &mut WriteBatch) {
        match bincode::serialize(c) {
            Ok(raw) => batch.put(Cf::Meta, CATALOG_KEY.to_vec(), raw),
            Err(e) => tracing::error!(error = %e, "serializing the catalog"),
        }
    }
}

impl StateMachineApp for CatalogApp {
    fn apply(
        &self,
        _index: u64,
        payload: &[u8],
        batch: &mut WriteBatch,
    ) -> Result<Vec<u8>, StorageError> {
        let result: Result<(), String> = match bincode::deserialize::<CatalogCmd>(payload) {
            Ok(cmd) => {
                let mut c = self.state.write().unwrap_or_else(|e| e.into_inner());
                let r = c.apply(cmd);
                self.persist(&c, batch);
                r
            }
            Err(e) => Err(format!("undecodable catalog command: {e}")),
        };
        Ok(bincode::serialize(&result).unwrap_or_default())
    }

    fn snapshot(&self) -> Result<Vec<u8>, StorageError> {
        let c = self.state.read().unwrap_or_else(|e| e.into_inner());
        bincode::serialize(&*c).map_err(|e| StorageError::Io(e.to_string()))
    }

    fn install(&self, data: &[u8], batch: &mut WriteBatch) -> Result<(), StorageError> {
        let c: Catalog = bincode::deserialize(data).map_err(|e| StorageError::Corrupt {
            what: "catalog snapshot",
            detail: e.to_string(),
        })?;
        self.persist(&c, batch);
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = c;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_table_needs_namespace_and_unique_name() {
        let mut c = Catalog::default();
        let t = TableEntry {
            table_id: "t1".into(),
            namespace: "ns".into(),
            name: "a".into(),
            schema: vec![],
            range_partitioned: false,
            replication_factor: 1,
            tablet_ids: vec!["x".into()],
        };
        let tablet = TabletEntry {
            tablet_id: "x".into(),
            table_id: "t1".into(),
            hash_start: 0,
            hash_end: 65536,
            replicas: vec![],
            initial_leader_uuid: String::new(),
        };
        assert!(c
            .apply(CatalogCmd::CreateTable {
                table: t.clone(),
                tablets: vec![tablet.clone()]
            })
            .is_err());
        c.apply(CatalogCmd::CreateNamespace { name: "ns".into() })
            .unwrap();
        c.apply(CatalogCmd::CreateTable {
            table: t.clone(),
            tablets: vec![tablet.clone()],
        })
        .unwrap();
        assert!(c
            .apply(CatalogCmd::CreateTable {
                table: t,
                tablets: vec![tablet]
            })
            .is_err());
        assert_eq!(c.tablets.len(), 1);
        c.apply(CatalogCmd::DeleteTable {
            table_id: "t1".into(),
        })
        .unwrap();
        assert!(c.tablets.is_empty() && c.tables.is_empty());
    }
}
