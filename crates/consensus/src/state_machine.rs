//! [`StateMachine`]: adapts a [`StateMachineApp`] (a tablet, the catalog) to openraft.
//!
//! The adapter owns the *applied state* — the last applied log id and the last membership.
//! It is checkpointed (`Cf::RaftMeta`, `group prefix ‖ "applied"`, followed in the same value
//! by the app's own [`StateMachineApp::checkpoint`]: one memtable insert per round, not one
//! per piece) in the same atomic batch as the changes of every apply round, so the persisted
//! applied index always names exactly the entries whose effects are in the engine: after a crash nothing is applied twice. (Re-applying was tried and is wrong:
//! an entry's conditions — a transaction's "no newer version", "no intent" — would be judged
//! against the effects of *later* entries, and a write refused the first time could apply.)
//!
//! Snapshots are the app's full state ([`StateMachineApp::snapshot`]) plus the applied state;
//! they are built on demand and kept in memory (the data they copy is on disk already).

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StoredMembership,
};
use storage::{Cf, KvEngine, StorageError as KvError, WriteBatch};

use crate::{storage_err, BasicNode, NodeId, Payload, TypeConfig};

/// What a replicated state machine must provide.
pub trait StateMachineApp: Send + Sync + 'static {
    /// Apply one committed entry's payload: add the resulting changes to `batch` (written
    /// atomically with the applied state after the entries of this round) and return the
    /// reply for the proposer. Must be deterministic.
    /// An error stops the node (it must not diverge from the other replicas).
    fn apply(&self, index: u64, payload: &[u8], batch: &mut WriteBatch)
        -> Result<Vec<u8>, KvError>;
    /// Called after a batch from [`StateMachineApp::apply`] has been written.
    fn applied(&self) {}
    /// The app's own checkpoint (state that must match the applied index), called for every
    /// batch: the returned bytes are stored in the applied-state record itself (one insert
    /// per round; read back with [`checkpoint_blob`]), and anything else the app needs goes
    /// into `batch`, which is written atomically with that record.
    fn checkpoint(&self, _batch: &mut WriteBatch) -> Vec<u8> {
        Vec::new()
    }
    /// The app's full state, for a snapshot.
    fn snapshot(&self) -> Result<Vec<u8>, KvError>;
    /// Replace the app's full state with a snapshot's. Every change, deletions of the old
    /// state included, goes into `batch`, which is written atomically with the applied state.
    fn install(&self, data: &[u8], batch: &mut WriteBatch) -> Result<(), KvError>;
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct AppliedState {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotBlob {
    applied: AppliedState,
    app: Vec<u8>,
}

/// Key of group `prefix`'s applied-state record: `bincode(AppliedState) ‖ app checkpoint`.
fn applied_key(prefix: &[u8; 16]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(b"applied");
    k
}

/// Group `prefix`'s applied-state record in `engine`: the applied state and the app's part of
/// the checkpoint (empty in records written before apps stored theirs there).
fn read_record(
    engine: &dyn KvEngine,
    prefix: &[u8; 16],
) -> Result<Option<(AppliedState, Vec<u8>)>, KvError> {
    let Some(raw) = engine.get(Cf::RaftMeta, &applied_key(prefix))? else {
        return Ok(None);
    };
    let mut rest: &[u8] = &raw;
    let applied = bincode::deserialize_from(&mut rest).map_err(|e| KvError::Corrupt {
        what: "raft applied state",
        detail: e.to_string(),
    })?;
    Ok(Some((applied, rest.to_vec())))
}

/// The app's part of group `prefix`'s last checkpoint (what its
/// [`StateMachineApp::checkpoint`] returned for the newest batch in `engine`): `None` if the
/// group has no applied state yet, empty if the record was written before apps stored their
/// checkpoint there.
pub fn checkpoint_blob(
    engine: &dyn KvEngine,
    prefix: &[u8; 16],
) -> Result<Option<Vec<u8>>, KvError> {
    Ok(read_record(engine, prefix)?.map(|(_, app)| app))
}

/// The openraft state machine of one group.
#[derive(Clone)]
pub struct StateMachine {
    engine: Arc<dyn KvEngine>,
    prefix: [u8; 16],
    app: Arc<dyn StateMachineApp>,
    applied: AppliedState,
    current: Option<(SnapshotMeta<NodeId, BasicNode>, Vec<u8>)>,
    /// Held while applying and while exporting a snapshot: openraft builds snapshots on a
    /// clone of this state machine while entries keep being applied, and a snapshot's rows
    /// must be exactly those of the applied index it names.
    apply_lock: Arc<std::sync::Mutex<()>>,
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError<NodeId> {
    storage_err(ErrorSubject::StateMachine, verb, e)
}

impl StateMachine {
    /// Load the applied state of group `prefix` from `engine`.
    pub fn open(
        engine: Arc<dyn KvEngine>,
        prefix: [u8; 16],
        app: Arc<dyn StateMachineApp>,
    ) -> Result<Self, KvError> {
        let applied = read_record(engine.as_ref(), &prefix)?
            .map(|(applied, _)| applied)
            .unwrap_or_default();
        Ok(Self {
            engine,
            prefix,
            app,
            applied,
            current: None,
            apply_lock: Arc::default(),
        })
    }

    /// Write `batch` together with the applied state and the app's checkpoint.
    fn write_with_applied(&mut self, mut batch: WriteBatch) -> Result<(), StorageError<NodeId>> {
        let mut raw = bincode::serialize(&self.applied).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        raw.extend_from_slice(&self.app.checkpoint(&mut batch));
        batch.put(Cf::RaftMeta, applied_key(&self.prefix), raw);
        self.engine
            .write(batch)
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        self.app.applied();
        Ok(())
    }

    fn build(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let blob = {
            let _consistent = self.apply_lock.lock().unwrap_or_else(|e| e.into_inner());
            // This may be a clone made before later entries were applied: the persisted
            // applied state is the one that matches the rows.
            if let Some((applied, _)) = read_record(self.engine.as_ref(), &self.prefix)
                .map_err(|e| sm_err(ErrorVerb::Read, e))?
            {
                self.applied = applied;
            }
            SnapshotBlob {
                applied: self.applied.clone(),
                app: self
                    .app
                    .snapshot()
                    .map_err(|e| sm_err(ErrorVerb::Read, e))?,
            }
        };
        let data = bincode::serialize(&blob).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        let last = self.applied.last_applied;
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: self.applied.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                last.map(|l| l.leader_id.term).unwrap_or(0),
                last.map(|l| l.index).unwrap_or(0)
            ),
        };
        self.current = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        self.build()
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        Ok((self.applied.last_applied, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Payload>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let lock = self.apply_lock.clone();
        let _consistent = lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut batch = WriteBatch::new();
        let mut replies = Vec::new();
        for entry in entries {
            self.applied.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => replies.push(Payload::default()),
                EntryPayload::Normal(p) => {
                    let reply = self
                        .app
                        .apply(entry.log_id.index, &p.0, &mut batch)
                        .map_err(|e| sm_err(ErrorVerb::Write, e))?;
                    replies.push(Payload(reply));
                }
                EntryPayload::Membership(m) => {
                    self.applied.membership = StoredMembership::new(Some(entry.log_id), m);
                    replies.push(Payload::default());
                }
            }
        }
        self.write_with_applied(batch)?;
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let blob: SnapshotBlob = bincode::deserialize(&data).map_err(|e| {
            storage_err(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Read,
                e,
            )
        })?;
        let lock = self.apply_lock.clone();
        let _consistent = lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut batch = WriteBatch::new();
        self.app
            .install(&blob.app, &mut batch)
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        self.applied = AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        self.write_with_applied(batch)?;
        self.current = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        if let Some((meta, data)) = &self.current {
            return Ok(Some(Snapshot {
                meta: meta.clone(),
                snapshot: Box::new(Cursor::new(data.clone())),
            }));
        }
        if self.applied.last_applied.is_none() {
            return Ok(None);
        }
        // Nothing in memory (e.g. after a restart): the persisted state is a valid snapshot.
        self.build().map(Some)
    }
}
