//! The retry filter: which writes of each client a tablet applied recently, so that a client
//! resending a write whose answer it lost (its leader crashed, an election ran mid-write) gets
//! the answer instead of a second application. Without it a resent put could land again
//! after later writes of the same key and undo them.
//!
//! Part of the replicated state: every replica runs the log through it in order, its state
//! is checkpointed with each apply round and travels in snapshots, so a new leader filters
//! exactly as the old one did. The checkpoint is two-level: each client's record under its own
//! key (`Cf::RaftMeta`, `tablet prefix ‖ "rq" ‖ client`), written every [`SAVE_EVERY`]
//! rounds or when more than [`MAX_DELTA`] clients changed, and in between the records of the
//! clients changed since then (a [`Delta`]), carried in each round's checkpoint record (the
//! tablet's part of the applied state, `TabletApp::checkpoint`). The store's state is the
//! keys overlaid with the newest record's delta; one insert per round instead of one per
//! client changed.
//!
//! A client numbers its writes (`seq`) and tells with each one the lowest number it still has
//! running on this tablet (`min_running`): anything below is answered or given up, so the
//! filter forgets it. A resend below that is stale and is not applied.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;

use serde::{Deserialize, Serialize};
use storage::{Cf, KvEngine, StorageError, WriteBatch};

/// Raw key-value pairs of the store.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Clients changed since their keys were last written: each one's encoded record, or `None`
/// if it was forgotten.
pub(crate) type Delta = Vec<([u8; 16], Option<Vec<u8>>)>;

/// Rounds between writes of the clients' own keys.
const SAVE_EVERY: u64 = 256;
/// Most clients a round's delta carries; more are written to their keys at once.
const MAX_DELTA: usize = 8;

/// Names one write of one client (the `RequestId` message).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestId {
    /// Random per client; all zero: the write is not filtered.
    #[serde(with = "client_as_u128")]
    pub client: [u8; 16],
    pub seq: u64,
    pub min_running: u64,
}

/// A client id encoded as one `u128` (little-endian) instead of a tuple of 16 `u8`s: the same
/// 16 bytes in bincode, so entries written before decode as they did, in one call instead of
/// sixteen (once per write of every Raft entry).
mod client_as_u128 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u128(u128::from_le_bytes(*v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        Ok(u128::deserialize(d)?.to_le_bytes())
    }
}

impl RequestId {
    pub fn is_set(&self) -> bool {
        self.client != [0; 16]
    }
}

/// A client that has not written for this long (in the tablet's hybrid time) is forgotten.
const IDLE_MICROS: u64 = 600_000_000;
/// Applied writes remembered per client at most (as ranges of seqs); the oldest go first.
const MAX_RANGES: usize = 10_000;

/// What the filter knows of one write.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Not applied before: apply it.
    New,
    /// Applied before: answer it as applied.
    Applied,
    /// Below what its client still has running: a leftover resend; do not apply it.
    Stale,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ClientWrites {
    /// Every seq below it is answered or given up by the client.
    min_running: u64,
    /// Applied seqs at or above `min_running`, as ranges `start → end` (exclusive).
    applied: BTreeMap<u64, u64>,
    /// When the client last wrote (µs of the tablet's hybrid time).
    last_us: u64,
}

impl ClientWrites {
    fn contains(&self, seq: u64) -> bool {
        self.applied
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, end)| seq < *end)
    }

    fn insert(&mut self, seq: u64) {
        // Most writes extend the newest range.
        if let Some(mut newest) = self.applied.last_entry() {
            if *newest.get() == seq {
                *newest.get_mut() = seq + 1;
                return;
            }
        }
        if self.contains(seq) {
            return;
        }
        let before = self
            .applied
            .range(..seq)
            .next_back()
            .filter(|(_, end)| **end == seq)
            .map(|(start, _)| *start);
        let after = self.applied.remove(&(seq + 1));
        let start = before.unwrap_or(seq);
        let end = after.unwrap_or(seq + 1);
        self.applied.insert(start, end);
        while self.applied.len() > MAX_RANGES {
            // Forget the oldest: a resend of one of them is refused as stale, never reapplied.
            if let Some((_, end)) = self.applied.pop_first() {
                self.min_running = self.min_running.max(end);
            }
        }
    }

    fn raise(&mut self, min_running: u64) {
        if min_running <= self.min_running {
            return;
        }
        self.min_running = min_running;
        let below: Vec<u64> = self
            .applied
            .range(..min_running)
            .map(|(start, _)| *start)
            .collect();
        for start in below {
            if let Some(end) = self.applied.remove(&start) {
                if end > min_running {
                    self.applied.insert(min_running, end);
                }
            }
        }
    }
}

/// Clients' ids are random: a fast hash suffices.
type IdHash = foldhash::fast::FixedState;

/// The filter of one tablet.
#[derive(Default)]
pub(crate) struct Retries {
    clients: HashMap<[u8; 16], ClientWrites, IdHash>,
    /// Clients changed since their keys were last written (in every delta since).
    dirty: HashSet<[u8; 16], IdHash>,
    /// Rounds checkpointed since the keys were last written.
    rounds: u64,
}

fn key_start(prefix: &[u8; 16]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(b"rq");
    k
}

fn client_key(prefix: &[u8; 16], client: &[u8; 16]) -> Vec<u8> {
    let mut k = key_start(prefix);
    k.extend_from_slice(client);
    k
}

fn corrupt(detail: String) -> StorageError {
    StorageError::Corrupt {
        what: "tablet retry filter",
        detail,
    }
}

impl Retries {
    /// The filter as last checkpointed: the clients' keys overlaid with `delta` (from the
    /// newest checkpoint record). The clients of the delta are written to their keys at the
    /// next checkpoint.
    pub(crate) fn load(
        engine: &dyn KvEngine,
        prefix: &[u8; 16],
        delta: &Delta,
    ) -> Result<Self, StorageError> {
        let mut r = Retries::default();
        for (k, v) in export(engine, prefix, delta)? {
            r.put_raw(&k, &v)?;
        }
        r.dirty.extend(delta.iter().map(|(client, _)| *client));
        Ok(r)
    }

    fn put_raw(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        let client = client_of(key)?;
        let c: ClientWrites = bincode::deserialize(value).map_err(|e| corrupt(e.to_string()))?;
        self.clients.insert(client, c);
        Ok(())
    }

    fn encode(&self, client: &[u8; 16]) -> Option<Vec<u8>> {
        let c = self.clients.get(client)?;
        match bincode::serialize(c) {
            Ok(v) => Some(v),
            Err(e) => {
                // Cannot happen (plain integers and maps); forgetting is the safe side.
                tracing::error!(error = %e, "encoding the retry filter");
                None
            }
        }
    }

    /// Look `id` up as of a write at `now_us`, taking its `min_running` into account.
    pub(crate) fn check(&mut self, id: &RequestId, now_us: u64) -> Seen {
        let c = self.clients.entry(id.client).or_default();
        self.dirty.insert(id.client);
        c.last_us = c.last_us.max(now_us);
        c.raise(id.min_running);
        if id.seq < c.min_running {
            Seen::Stale
        } else if c.contains(id.seq) {
            Seen::Applied
        } else {
            Seen::New
        }
    }

    /// `id` was applied.
    pub(crate) fn record(&mut self, id: &RequestId) {
        self.clients.entry(id.client).or_default().insert(id.seq);
        self.dirty.insert(id.client);
    }

    /// Forget clients idle since before `now_us - IDLE_MICROS`.
    pub(crate) fn sweep(&mut self, now_us: u64) {
        let cutoff = now_us.saturating_sub(IDLE_MICROS);
        let idle: Vec<[u8; 16]> = self
            .clients
            .iter()
            .filter(|(_, c)| c.last_us < cutoff)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            self.clients.remove(&id);
            self.dirty.insert(id);
        }
    }

    /// Checkpoint one round: the delta for the round's record, or (every [`SAVE_EVERY`]
    /// rounds, or past [`MAX_DELTA`] clients) the changed clients' keys in `batch` and an
    /// empty delta.
    pub(crate) fn checkpoint(&mut self, prefix: &[u8; 16], batch: &mut WriteBatch) -> Delta {
        self.rounds += 1;
        if self.rounds < SAVE_EVERY && self.dirty.len() <= MAX_DELTA {
            let mut delta: Delta = self.dirty.iter().map(|c| (*c, self.encode(c))).collect();
            delta.sort_unstable_by_key(|(c, _)| *c);
            return delta;
        }
        self.rounds = 0;
        for id in std::mem::take(&mut self.dirty) {
            let key = client_key(prefix, &id);
            match self.encode(&id) {
                Some(v) => batch.put(Cf::RaftMeta, key, v),
                None => batch.delete(Cf::RaftMeta, key),
            }
        }
        Vec::new()
    }

    /// Replace the filter with a snapshot's (`pairs` from [`export`]); the store's old entries
    /// are deleted and the new ones written in `batch`.
    pub(crate) fn install(
        &mut self,
        engine: &dyn KvEngine,
        prefix: &[u8; 16],
        pairs: Pairs,
        batch: &mut WriteBatch,
    ) -> Result<(), StorageError> {
        for (k, _) in export(engine, prefix, &[])? {
            batch.delete(Cf::RaftMeta, k);
        }
        self.clients.clear();
        // Every client is in its key after this batch: the next delta starts empty.
        self.dirty.clear();
        self.rounds = 0;
        for (k, v) in pairs {
            // The snapshot's keys carry the sender's prefix: the same tablet, the same prefix.
            let client = client_of(&k)?;
            self.put_raw(&k, &v)?;
            batch.put(Cf::RaftMeta, client_key(prefix, &client), v);
        }
        Ok(())
    }
}

fn client_of(key: &[u8]) -> Result<[u8; 16], StorageError> {
    key.get(18..)
        .and_then(|c| c.try_into().ok())
        .ok_or_else(|| corrupt(format!("key of {} bytes", key.len())))
}

/// The checkpointed filter of a tablet as raw pairs (for snapshots): the clients' keys
/// overlaid with `delta`, the newest checkpoint record's.
pub(crate) fn export(
    engine: &dyn KvEngine,
    prefix: &[u8; 16],
    delta: &[([u8; 16], Option<Vec<u8>>)],
) -> Result<Pairs, StorageError> {
    let start = key_start(prefix);
    let mut end = start.clone();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let mut pairs: BTreeMap<Vec<u8>, Vec<u8>> = engine
        .scan(
            Cf::RaftMeta,
            Bound::Included(start),
            Bound::Excluded(end),
            false,
        )
        .collect::<Result<_, _>>()?;
    for (client, record) in delta {
        let key = client_key(prefix, client);
        match record {
            Some(v) => pairs.insert(key, v.clone()),
            None => pairs.remove(&key),
        };
    }
    Ok(pairs.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seq: u64, min_running: u64) -> RequestId {
        RequestId {
            client: [7; 16],
            seq,
            min_running,
        }
    }

    #[test]
    fn resends_are_answered_stale_ones_refused() {
        let mut r = Retries::default();
        assert_eq!(r.check(&id(1, 1), 10), Seen::New);
        r.record(&id(1, 1));
        assert_eq!(r.check(&id(1, 1), 11), Seen::Applied);
        for s in [3, 2, 5] {
            assert_eq!(r.check(&id(s, 1), 12), Seen::New);
            r.record(&id(s, 1));
        }
        // 1..=3 merged, 5 alone; 4 never applied.
        let c = &r.clients[&[7; 16]];
        assert_eq!(
            c.applied.iter().collect::<Vec<_>>(),
            vec![(&1, &4), (&5, &6)]
        );
        assert_eq!(r.check(&id(4, 1), 13), Seen::New);
        // The client says everything below 3 is done: 1 and 2 are forgotten, stale if resent.
        assert_eq!(r.check(&id(3, 3), 14), Seen::Applied);
        assert_eq!(r.check(&id(2, 3), 14), Seen::Stale);
        let c = &r.clients[&[7; 16]];
        assert_eq!(
            c.applied.iter().collect::<Vec<_>>(),
            vec![(&3, &4), (&5, &6)]
        );
        // Idle clients are forgotten (and deleted at the next checkpoint).
        r.sweep(14 + IDLE_MICROS + 1);
        assert!(r.clients.is_empty());
        // The forgotten client rides in the round's delta as removed.
        let mut b = WriteBatch::new();
        assert_eq!(r.checkpoint(&[1; 16], &mut b), vec![([7; 16], None)]);
        assert!(b.is_empty());
    }

    /// The ranges hold exactly the inserted seqs, merged, whatever the order (mostly
    /// ascending, as clients number their writes, with gaps and late ones).
    #[test]
    fn ranges_match_the_inserted_seqs() {
        let mut c = ClientWrites::default();
        let mut model = std::collections::BTreeSet::new();
        let mut rng = common::fuzz::XorShift::new(0x9e37_79b9_7f4a_7c15);
        for n in 0..2_000u64 {
            let x = rng.next_u64();
            let seq = match x % 4 {
                0 => x % 3_000,
                _ => n + x % 3,
            };
            c.insert(seq);
            model.insert(seq);
        }
        for seq in 0..3_100 {
            assert_eq!(c.contains(seq), model.contains(&seq), "seq {seq}");
        }
        let mut prev_end = None;
        for (start, end) in &c.applied {
            assert!(
                start < end && prev_end.is_none_or(|p| p < *start),
                "unmerged or empty"
            );
            prev_end = Some(*end);
        }
    }

    #[test]
    fn survives_a_checkpoint() {
        let engine = storage::MemEngine::new();
        let prefix = [3; 16];
        let mut r = Retries::default();
        r.check(&id(9, 9), 1);
        r.record(&id(9, 9));
        // A round's checkpoint: the change is in the delta only.
        let mut b = WriteBatch::new();
        let delta = r.checkpoint(&prefix, &mut b);
        assert_eq!(delta.len(), 1);
        engine.write(b).unwrap();
        assert!(export(&engine, &prefix, &[]).unwrap().is_empty());
        let mut loaded = Retries::load(&engine, &prefix, &delta).unwrap();
        assert_eq!(loaded.check(&id(9, 9), 2), Seen::Applied);
        assert_eq!(export(&engine, &prefix, &delta).unwrap().len(), 1);
        // After SAVE_EVERY rounds the keys are written and the delta is empty; the loaded
        // filter then has its client in its key too.
        let mut delta = Vec::new();
        for _ in 0..SAVE_EVERY {
            let mut b = WriteBatch::new();
            delta = loaded.checkpoint(&prefix, &mut b);
            engine.write(b).unwrap();
        }
        assert!(delta.is_empty());
        assert_eq!(export(&engine, &prefix, &[]).unwrap().len(), 1);
        let mut again = Retries::load(&engine, &prefix, &delta).unwrap();
        assert_eq!(again.check(&id(9, 9), 3), Seen::Applied);
        // Too many clients changed at once: written to their keys at once.
        for c in 0..=MAX_DELTA as u8 {
            let w = RequestId {
                client: [c + 100; 16],
                seq: 1,
                min_running: 1,
            };
            again.check(&w, 4);
            again.record(&w);
        }
        let mut b = WriteBatch::new();
        assert!(again.checkpoint(&prefix, &mut b).is_empty());
        engine.write(b).unwrap();
        assert_eq!(export(&engine, &prefix, &[]).unwrap().len(), MAX_DELTA + 2);
    }
}
