//! `common` — the bottom layer of AiSQL. Everything here is shared by every other crate:
//!
//! * [`hlc`] — the hybrid logical clock ([`HybridTime`], [`Hlc`]).
//! * [`keys`] — order-preserving key encoding and the 16-bit partition hash.
//! * [`ids`] — server, table and tablet identifiers.
//! * [`status`] — numbered status codes every crate's error maps onto, so that the
//!   API front ends can turn them into SQLSTATEs, CQL error codes or RESP errors.
//! * [`flags`] — parsing helpers for the `--flag value` command line and `--flagfile`.
//! * [`metrics`] — Prometheus registries, API and RPC metrics, process metrics.
//! * [`fuzz`] — input mutation for the parsers' fuzz tests.
//! * [`serde_bytes`] — byte strings that serde encodes in one copy, not byte by byte.

pub mod flags;
pub mod fuzz;
pub mod hlc;
pub mod ids;
pub mod keys;
pub mod metrics;
pub mod serde_bytes;
pub mod status;

pub use hlc::{Hlc, HybridTime};

/// A tuning knob read from the environment variable `name` (`AISQL_…`): its value if set
/// and parseable, else `default`. For measurements, not configuration: flags configure.
pub fn tuning_knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
pub use ids::{new_id, ServerId, TableId, TabletId};
pub use status::StatusCode;
