//! [`ConsensusMetrics`]: Prometheus metrics of every Raft group on a server. Leader changes
//! and log append latency are recorded as they happen; term, role, applied index and
//! replication lag are read from openraft's metrics of each registered group at scrape time.

use common::metrics::{latency_histogram, Counter, Histogram, Registry};

use crate::{Raft, RaftRouter, ServerState};

/// Raft metrics of one server (shared by all its groups through [`crate::GroupEnv`]).
#[derive(Clone, Debug)]
pub struct ConsensusMetrics {
    /// Times a group on this server saw a new leader (any node, this one included).
    pub leader_changes: Counter,
    /// Time from a log append to its fsync (group commit included).
    pub append_latency: Histogram,
}

impl Default for ConsensusMetrics {
    fn default() -> Self {
        Self {
            leader_changes: Counter::default(),
            append_latency: latency_histogram(),
        }
    }
}

impl ConsensusMetrics {
    /// Count leader changes of `raft` until it shuts down. Watches the server metrics, which
    /// change with the vote, role, leader or membership only (the full metrics change with
    /// every entry, which would wake this task once per write).
    pub(crate) fn watch_leader_changes(&self, raft: &Raft) {
        let mut rx = raft.server_metrics();
        let counter = self.leader_changes.clone();
        tokio::spawn(async move {
            let mut leader = rx.borrow().current_leader;
            while rx.changed().await.is_ok() {
                let now = rx.borrow().current_leader;
                if now.is_some() && now != leader {
                    counter.inc();
                }
                leader = now;
            }
        });
    }

    /// Register on `registry`, reading the groups of `router` at every scrape.
    pub fn register(&self, registry: &Registry, router: RaftRouter) {
        registry.register(
            "aisql_raft_leader_changes",
            "Times a Raft group on this server saw a new leader",
            self.leader_changes.clone(),
        );
        registry.register(
            "aisql_raft_log_append_duration_seconds",
            "Time from a Raft log append to its fsync",
            self.append_latency.clone(),
        );
        registry.register_fn(move |s| {
            let groups = router.groups();
            let mut leaders = 0;
            for (id, raft) in &groups {
                let m = raft.metrics().borrow().clone();
                let g: &[(&'static str, &str)] = &[("group", id.as_str())];
                let leader = m.state == ServerState::Leader;
                leaders += usize::from(leader);
                s.gauge(
                    "aisql_raft_term",
                    "Current Raft term of the group",
                    g,
                    m.current_term as f64,
                );
                s.gauge(
                    "aisql_raft_is_leader",
                    "1 if this replica leads the group",
                    g,
                    f64::from(u8::from(leader)),
                );
                s.gauge(
                    "aisql_raft_last_log_index",
                    "Index of the last entry in this replica's log",
                    g,
                    m.last_log_index.unwrap_or(0) as f64,
                );
                s.gauge(
                    "aisql_raft_last_applied_index",
                    "Index of the last entry applied by this replica",
                    g,
                    m.last_applied.map(|l| l.index).unwrap_or(0) as f64,
                );
                if let (true, Some(repl)) = (leader, m.replication.as_ref()) {
                    let last = m.last_log_index.unwrap_or(0);
                    for (peer, matched) in repl.iter().filter(|(p, _)| **p != m.id) {
                        let lag = last.saturating_sub(matched.map(|l| l.index).unwrap_or(0));
                        s.gauge(
                            "aisql_raft_replication_lag_entries",
                            "Log entries a follower is behind the leader (reported by the leader)",
                            &[("group", id.as_str()), ("peer", &peer.to_string())],
                            lag as f64,
                        );
                    }
                }
            }
            s.gauge(
                "aisql_raft_groups",
                "Raft groups hosted on this server",
                &[],
                groups.len() as f64,
            );
            s.gauge(
                "aisql_raft_leaders",
                "Raft groups this server leads",
                &[],
                leaders as f64,
            );
        });
    }
}
