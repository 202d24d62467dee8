//! [`TabletMeta`]: the descriptor of a tablet replica, persisted in `Cf::Meta` under
//! `"tablet/" ‖ tablet id` so a restarted dbserver reopens its tablets.

use std::ops::Bound;

use storage::{Cf, KvEngine, StorageError, WriteBatch};

/// A member of a tablet's Raft group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerMeta {
    pub server_uuid: String,
    pub node_id: u64,
    pub rpc_addr: String,
}

/// Everything a dbserver needs to reopen a tablet replica.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TabletMeta {
    pub tablet_id: String,
    pub table_id: String,
    pub table_name: String,
    pub hash_start: u32,
    pub hash_end: u32,
    pub peers: Vec<PeerMeta>,
    pub initial_leader_uuid: String,
}

const PREFIX: &[u8] = b"tablet/";

fn key(id: &str) -> Vec<u8> {
    [PREFIX, id.as_bytes()].concat()
}

impl TabletMeta {
    /// Persist durably (synced before returning).
    pub fn save(&self, engine: &dyn KvEngine) -> Result<(), StorageError> {
        let raw = bincode::serialize(self).map_err(|e| StorageError::Io(e.to_string()))?;
        let mut b = WriteBatch::new();
        b.put(Cf::Meta, key(&self.tablet_id), raw);
        engine.write(b)?;
        engine.sync()
    }

    pub fn remove(engine: &dyn KvEngine, id: &str) -> Result<(), StorageError> {
        let mut b = WriteBatch::new();
        b.delete(Cf::Meta, key(id));
        engine.write(b)?;
        engine.sync()
    }

    /// Every tablet descriptor on this server.
    pub fn load_all(engine: &dyn KvEngine) -> Result<Vec<TabletMeta>, StorageError> {
        let mut out = Vec::new();
        for kv in engine.scan(
            Cf::Meta,
            Bound::Included(PREFIX.to_vec()),
            storage::prefix_end(PREFIX),
            false,
        ) {
            let (k, v) = kv?;
            let meta: TabletMeta = bincode::deserialize(&v).map_err(|e| StorageError::Corrupt {
                what: "tablet descriptor",
                detail: format!("{}: {e}", String::from_utf8_lossy(&k)),
            })?;
            out.push(meta);
        }
        Ok(out)
    }
}
