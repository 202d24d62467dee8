//! Pub/sub: the channels and patterns this server's connections subscribe to, and PUBLISH
//! delivering to them. Delivery is per server: a message published on one dbserver reaches
//! the subscribers connected to that dbserver (see `docs/design/bedis.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::cmd::keys::glob_match;
use crate::frame::Frame;

/// Messages a connection has not written out yet; more are dropped (with a warning), as
/// Redis disconnects a subscriber past its output buffer limit.
pub const QUEUE: usize = 100_000;

/// Where a connection receives its messages.
pub type Inbox = mpsc::Sender<Frame>;

#[derive(Default)]
struct Subs {
    /// channel → connection id → inbox
    channels: BTreeMap<Vec<u8>, BTreeMap<u64, Inbox>>,
    patterns: BTreeMap<Vec<u8>, BTreeMap<u64, Inbox>>,
}

/// The subscriptions of one server.
#[derive(Default)]
pub struct Hub {
    subs: Mutex<Subs>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Subs> {
        self.subs.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self, pattern: bool, name: &[u8], conn: u64, inbox: &Inbox) {
        let mut s = self.lock();
        let map = if pattern {
            &mut s.patterns
        } else {
            &mut s.channels
        };
        map.entry(name.to_vec())
            .or_default()
            .insert(conn, inbox.clone());
    }

    pub fn unsubscribe(&self, pattern: bool, name: &[u8], conn: u64) {
        let mut s = self.lock();
        let map = if pattern {
            &mut s.patterns
        } else {
            &mut s.channels
        };
        if let Some(subs) = map.get_mut(name) {
            subs.remove(&conn);
            if subs.is_empty() {
                map.remove(name);
            }
        }
    }

    /// Deliver `msg` on `channel`; returns how many subscriptions received it.
    pub fn publish(&self, channel: &[u8], msg: &[u8]) -> i64 {
        let s = self.lock();
        let mut n = 0;
        let mut send = |inbox: &Inbox, f: Frame| {
            if inbox.try_send(f).is_ok() {
                n += 1;
            } else {
                tracing::warn!("BEDIS subscriber too slow: message dropped");
            }
        };
        if let Some(subs) = s.channels.get(channel) {
            for inbox in subs.values() {
                send(
                    inbox,
                    Frame::Push(vec![
                        Frame::bulk("message"),
                        Frame::bulk(channel.to_vec()),
                        Frame::bulk(msg.to_vec()),
                    ]),
                );
            }
        }
        for (p, subs) in &s.patterns {
            if glob_match(p, channel) {
                for inbox in subs.values() {
                    send(
                        inbox,
                        Frame::Push(vec![
                            Frame::bulk("pmessage"),
                            Frame::bulk(p.clone()),
                            Frame::bulk(channel.to_vec()),
                            Frame::bulk(msg.to_vec()),
                        ]),
                    );
                }
            }
        }
        n
    }

    /// Channels with at least one subscriber, matching `pattern` if given (PUBSUB CHANNELS).
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.lock()
            .channels
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c)))
            .cloned()
            .collect()
    }

    /// Subscribers of `channel` (PUBSUB NUMSUB).
    pub fn numsub(&self, channel: &[u8]) -> i64 {
        self.lock().channels.get(channel).map_or(0, |s| s.len()) as i64
    }

    /// Distinct patterns subscribed to (PUBSUB NUMPAT).
    pub fn numpat(&self) -> i64 {
        self.lock().patterns.len() as i64
    }

    /// Drop every subscription of connection `conn` (it closed).
    pub fn forget(&self, conn: u64, channels: &BTreeSet<Vec<u8>>, patterns: &BTreeSet<Vec<u8>>) {
        for c in channels {
            self.unsubscribe(false, c, conn);
        }
        for p in patterns {
            self.unsubscribe(true, p, conn);
        }
    }
}
