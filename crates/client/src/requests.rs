//! [`Requests`]: names a client's writes for the tablets' retry filters. Every write gets a
//! number (`seq`, unique per client) that stays the same when the write is resent, and
//! carries the lowest number the client still has running on that tablet (`min_running`), so
//! the tablet can forget older ones. See `tablet::retries`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rpc::tablet::RequestId;

/// The numbering of one client (shared by its clones).
pub(crate) struct Requests {
    client: [u8; 16],
    next: AtomicU64,
    /// Per tablet id, the numbers of writes still running: ranges `first → end` (exclusive),
    /// each started and finished as one.
    running: Mutex<HashMap<String, BTreeMap<u64, u64>>>,
}

impl Requests {
    pub(crate) fn new() -> Self {
        Requests {
            client: txn::new_id(),
            next: AtomicU64::new(1),
            running: Mutex::default(),
        }
    }

    /// Number a new write to `tablet`; it counts as running until the guard is dropped.
    pub(crate) fn start(&self, tablet: &str) -> Running<'_> {
        let (seq, _) = self.number(tablet, 1);
        Running {
            requests: self,
            tablet: tablet.to_owned(),
            seq,
        }
    }

    /// Number `n` writes to `tablet` at once (consecutive numbers, one lock); they count as
    /// running until the guard is dropped.
    pub(crate) fn start_many(&self, tablet: &str, n: usize) -> RunningMany<'_> {
        let (first, min_running) = self.number(tablet, n as u64);
        RunningMany {
            requests: self,
            tablet: tablet.to_owned(),
            seqs: first..first + n as u64,
            min_running,
        }
    }

    /// Hand out `n` consecutive numbers on `tablet` and mark them running; returns the first
    /// and the tablet's lowest running number. Numbered under the lock: a number handed out
    /// but not yet running could be below the `min_running` another write reports, and its
    /// tablet would drop it as stale.
    fn number(&self, tablet: &str, n: u64) -> (u64, u64) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let first = self.next.fetch_add(n, Ordering::Relaxed);
        let ranges = match running.get_mut(tablet) {
            Some(r) => r,
            None => running.entry(tablet.to_owned()).or_default(),
        };
        if n > 0 {
            ranges.insert(first, first + n);
        }
        (first, lowest(ranges).unwrap_or(first))
    }

    /// The writes `seqs` on `tablet` ended.
    fn finish(&self, tablet: &str, seqs: std::ops::Range<u64>) {
        if seqs.is_empty() {
            return; // never marked running (and its start may be another range's)
        }
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ranges) = running.get_mut(tablet) {
            ranges.remove(&seqs.start);
            if ranges.is_empty() {
                running.remove(tablet);
            }
        }
    }
}

/// The lowest number in `ranges`.
fn lowest(ranges: &BTreeMap<u64, u64>) -> Option<u64> {
    ranges.first_key_value().map(|(first, _)| *first)
}

/// Numbered writes in flight, started together.
pub(crate) struct RunningMany<'a> {
    requests: &'a Requests,
    tablet: String,
    seqs: std::ops::Range<u64>,
    min_running: u64,
}

impl RunningMany<'_> {
    /// The writes' names, in order (the lowest running number as of their start).
    pub(crate) fn ids(&self) -> impl Iterator<Item = RequestId> + '_ {
        self.seqs.clone().map(|seq| RequestId {
            client: self.requests.client.to_vec(),
            seq,
            min_running: self.min_running.min(seq),
        })
    }
}

impl Drop for RunningMany<'_> {
    fn drop(&mut self) {
        self.requests.finish(&self.tablet, self.seqs.clone());
    }
}

/// A numbered write in flight.
pub(crate) struct Running<'a> {
    requests: &'a Requests,
    tablet: String,
    seq: u64,
}

impl Running<'_> {
    /// The write's name, with the client's current lowest running number on its tablet.
    pub(crate) fn id(&self) -> RequestId {
        let min_running = self
            .requests
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&self.tablet)
            .and_then(lowest)
            .unwrap_or(self.seq);
        RequestId {
            client: self.requests.client.to_vec(),
            seq: self.seq,
            min_running: min_running.min(self.seq),
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.requests.finish(&self.tablet, self.seq..self.seq + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_running_follows_the_oldest_write_in_flight() {
        let r = Requests::new();
        let a = r.start("t");
        let b = r.start("t");
        let other = r.start("u");
        assert_eq!((b.id().seq, b.id().min_running), (2, 1));
        assert_eq!(other.id().min_running, 3);
        drop(a);
        assert_eq!(b.id().min_running, 2);
        let c = r.start("t");
        assert_eq!(c.id().min_running, 2);
        assert_eq!(c.id().client, b.id().client);
        let many = r.start_many("t", 3);
        let ids: Vec<_> = many.ids().map(|id| (id.seq, id.min_running)).collect();
        assert_eq!(ids, [(5, 2), (6, 2), (7, 2)]);
        drop((b, c));
        assert_eq!(r.start("t").id().min_running, 5);
        drop(many);
        assert_eq!(r.start("t").id().min_running, 9);
        // No writes: nothing runs, and ending it ends nobody else's.
        let none = r.start_many("t", 0);
        let next = r.start("t");
        drop(none);
        assert_eq!(r.start("t").id().min_running, next.id().seq);
    }
}
