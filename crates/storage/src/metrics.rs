//! Storage metrics for `/prometheus-metrics`: engine sizes, compactions and write stalls
//! ([`crate::KvEngine::stats`]), the Raft log's segments and group-commit fsyncs
//! ([`crate::SyncStats`]), read at scrape time.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::metrics::Registry;

use crate::{KvEngine, Wal};

/// Report `engine` and the Raft log `wal` (its group-commit syncer) on `registry`.
pub fn register_metrics(registry: &Registry, engine: Arc<dyn KvEngine>, wal: Arc<Wal>) {
    registry.register_fn(move |s| {
        let st = engine.stats();
        s.gauge(
            "aisql_storage_disk_bytes",
            "Bytes the store uses on disk",
            &[],
            st.disk_bytes as f64,
        );
        s.gauge(
            "aisql_storage_journal_bytes",
            "Bytes in write-ahead journal files",
            &[],
            st.journal_bytes as f64,
        );
        s.gauge(
            "aisql_storage_journals",
            "Write-ahead journal files",
            &[],
            st.journals as f64,
        );
        s.gauge(
            "aisql_storage_write_buffer_bytes",
            "Bytes in memtables not yet flushed",
            &[],
            st.write_buffer_bytes as f64,
        );
        s.counter(
            "aisql_storage_compactions",
            "Compactions completed since start",
            &[],
            st.compactions_completed as f64,
        );
        s.gauge(
            "aisql_storage_compactions_running",
            "Compactions running now",
            &[],
            st.compactions_running as f64,
        );
        s.counter(
            "aisql_storage_compaction_seconds",
            "Time spent compacting since start",
            &[],
            st.compaction_seconds,
        );
        for cf in &st.column_families {
            let l: &[(&'static str, &str)] = &[("cf", cf.name)];
            s.gauge(
                "aisql_storage_cf_disk_bytes",
                "Bytes on disk per column family",
                l,
                cf.disk_bytes as f64,
            );
            s.gauge(
                "aisql_storage_cf_tables",
                "Sorted table files per column family",
                l,
                cf.tables as f64,
            );
            s.gauge(
                "aisql_storage_cf_l0_tables",
                "Level-0 table files per column family",
                l,
                cf.l0_tables as f64,
            );
            s.gauge(
                "aisql_storage_cf_sealed_memtables",
                "Memtables waiting to be flushed per column family",
                l,
                cf.sealed_memtables as f64,
            );
            s.gauge(
                "aisql_storage_cf_write_stalled",
                "1 while the engine stalls or halts writes to this column family",
                l,
                f64::from(u8::from(cf.write_stalled)),
            );
        }
        s.gauge(
            "aisql_raft_wal_segments",
            "Segment files of the Raft write-ahead log",
            &[],
            wal.segment_count() as f64,
        );
        let g = wal.stats();
        s.counter(
            "aisql_storage_syncs",
            "fdatasyncs of the Raft log done by group commit",
            &[],
            g.syncs.load(Ordering::Relaxed) as f64,
        );
        s.counter(
            "aisql_storage_sync_waiters",
            "Writers released by group-commit fdatasyncs",
            &[],
            g.waiters.load(Ordering::Relaxed) as f64,
        );
        s.counter(
            "aisql_storage_sync_seconds",
            "Time spent in group-commit fdatasync",
            &[],
            g.sync_micros.load(Ordering::Relaxed) as f64 / 1e6,
        );
    });
}
