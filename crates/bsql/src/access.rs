//! Where a statement's reads and writes go. Inside a transaction block they go through the
//! session's [`Transaction`]: reads at its snapshot with its own writes merged in, writes
//! buffered until COMMIT (conditions are checked against the transaction's view, and
//! concurrent changes are caught at commit: first committer wins, SQLSTATE 40001). Outside
//! a block they go straight to the tablets, each write atomic on its own.
//!
//! One [`Access`] is shared by a session and the table providers DataFusion plans with, so a
//! query inside a block sees the block's snapshot and its uncommitted rows.

use std::sync::Arc;

use client::{Client, Condition, Isolation, KvOp, Table, Transaction};

use crate::error::SqlResult;

#[derive(Clone)]
pub struct Access {
    client: Client,
    txn: Arc<tokio::sync::Mutex<Option<Transaction>>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Access")
    }
}

impl Access {
    pub fn new(client: Client) -> Access {
        Access {
            client,
            txn: Arc::default(),
        }
    }

    /// An access to the same tablets that never goes through a transaction (bulk loads).
    pub fn direct(&self) -> Access {
        Access::new(self.client.clone())
    }

    /// Open a transaction at `isolation` (replacing none: the caller checks).
    pub async fn begin(&self, isolation: Isolation) {
        *self.txn.lock().await = Some(self.client.begin(isolation));
    }

    /// The open transaction, taken out of the session (to commit or drop it).
    pub async fn take(&self) -> Option<Transaction> {
        self.txn.lock().await.take()
    }

    /// The open transaction's isolation level, if one is open.
    pub async fn isolation(&self) -> Option<Isolation> {
        self.txn.lock().await.as_ref().map(|t| t.isolation())
    }

    /// A new statement starts: under read committed it reads a fresh snapshot.
    pub async fn new_statement(&self) {
        if let Some(t) = self.txn.lock().await.as_mut() {
            t.new_statement();
        }
    }

    /// Buffered writes of the open transaction, to restore on ROLLBACK TO SAVEPOINT.
    pub async fn savepoint(&self) -> Option<client::Savepoint> {
        self.txn.lock().await.as_ref().map(|t| t.savepoint())
    }

    /// Forget the writes buffered since `sp`.
    pub async fn rollback_to(&self, sp: client::Savepoint) {
        if let Some(t) = self.txn.lock().await.as_mut() {
            t.rollback_to(sp);
        }
    }

    /// Inside a block: buffer `value` as the new version of `key`, a row just read in the
    /// block, and return true. Under READ COMMITTED, if another transaction commits a newer
    /// version first, COMMIT redoes the change on it with `reapply` instead of failing
    /// (PostgreSQL's UPDATE waits for the row and applies itself to the newest version).
    /// Outside a block: false, nothing done (the caller writes with a compare-and-set).
    pub async fn buffer_update(
        &self,
        table: &Table,
        key: &[u8],
        value: &[u8],
        reapply: impl FnOnce() -> client::Reapply,
    ) -> bool {
        match self.txn.lock().await.as_mut() {
            Some(t) => {
                t.put_reapplicable(table, key, value, reapply());
                true
            }
            None => false,
        }
    }

    /// Read one key.
    pub async fn get(&self, table: &Table, key: &[u8]) -> SqlResult<Option<Vec<u8>>> {
        match self.txn.lock().await.as_mut() {
            Some(t) => Ok(t.get(table, key).await?),
            None => Ok(self.client.get(table, key).await?),
        }
    }

    /// Every row of `table`.
    pub async fn scan_all(&self, table: &Table) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
        match self.txn.lock().await.as_mut() {
            Some(t) => Ok(t.scan_all(table).await?),
            None => Ok(self.client.scan_all(table).await?),
        }
    }

    /// The rows of one-tablet (range-partitioned) `table` with keys in `[start, end)`.
    pub async fn scan_range(
        &self,
        table: &Table,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
    ) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut from = Some(start);
        while let Some(s) = from.take() {
            let (rows, more) = match self.txn.lock().await.as_mut() {
                Some(t) => t.scan(table, 0, Some(s), end.clone(), 10_000).await?,
                None => {
                    let r = self
                        .client
                        .scan_tablet(table, 0, Some(s), end.clone(), 10_000)
                        .await?;
                    let rows = r.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
                    (rows, r.more)
                }
            };
            let last = rows.last().map(|(k, _): &(Vec<u8>, Vec<u8>)| k.clone());
            out.extend(rows);
            from = client::next_page(more, last);
        }
        Ok(out)
    }

    /// Several keys of `table` (concurrently, or together inside a transaction).
    pub async fn get_many(
        &self,
        table: &Table,
        keys: &[Vec<u8>],
    ) -> SqlResult<Vec<Option<Vec<u8>>>> {
        if let Some(t) = self.txn.lock().await.as_mut() {
            let keys: Vec<(&Table, &[u8])> = keys.iter().map(|k| (table, &k[..])).collect();
            return Ok(t.get_many(&keys).await?);
        }
        use futures::TryStreamExt;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(64) {
            let mut reads = futures::stream::FuturesOrdered::new();
            for k in chunk {
                reads.push_back(self.client.get(table, k));
            }
            while let Some(v) = reads.try_next().await? {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Apply `ops` (all in the tablet of `key`) atomically if every condition holds; false
    /// if one does not (then nothing is written).
    pub async fn write(&self, table: &Table, key: &[u8], ops: Vec<KvOp>) -> SqlResult<bool> {
        let mut guard = self.txn.lock().await;
        let Some(t) = guard.as_mut() else {
            drop(guard);
            return Ok(self.client.write(table, key, ops).await?.applied);
        };
        // The keys with conditions, read together (one round per tablet, not one per row).
        let cond = |op: &KvOp| Condition::try_from(op.condition).unwrap_or(Condition::None);
        let conditional: Vec<(&Table, &[u8])> = ops
            .iter()
            .filter(|op| cond(op) != Condition::None)
            .map(|op| (table, &op.key[..]))
            .collect();
        let mut read = if conditional.is_empty() {
            Vec::new()
        } else {
            t.get_many(&conditional).await?
        }
        .into_iter();
        // Each op's condition sees the ops before it in the same write (two rows with one
        // key in one INSERT: the second finds the first).
        let mut earlier: std::collections::HashMap<&[u8], Option<&[u8]>> = Default::default();
        for op in &ops {
            let c = cond(op);
            if c != Condition::None {
                let stored = read.next().flatten();
                let current = match earlier.get(&op.key[..]) {
                    Some(v) => v.map(|v| v.to_vec()),
                    None => stored,
                };
                let holds = match c {
                    Condition::IfAbsent => current.is_none(),
                    Condition::IfPresent => current.is_some(),
                    Condition::IfEquals => current.as_deref() == Some(&op.expected[..]),
                    _ => true,
                };
                if !holds {
                    return Ok(false);
                }
            }
            earlier.insert(&op.key[..], (!op.delete).then_some(&op.value[..]));
        }
        for op in ops {
            if op.delete {
                t.delete(table, &op.key);
            } else {
                t.put(table, &op.key, &op.value);
            }
        }
        Ok(true)
    }
}
