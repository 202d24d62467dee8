//! Prometheus metrics shared by every layer, on the `prometheus-client` crate.
//!
//! * [`Registry`] — one per HTTP metrics endpoint (each server and each API metrics port has
//!   its own, so `aisql start`, which runs an mserver and a dbserver in one process, keeps
//!   them apart). Every registry also reports the process (RSS, CPU seconds, threads, open
//!   fds, read from `/proc/self`) and `aisql_build_info`. [`Registry::encode`] renders the
//!   Prometheus text format 0.0.4 (what `promtool check metrics` and Prometheus read).
//! * [`ApiMetrics`] — what a query layer (BSQL, BCQL, BEDIS) reports: commands and their
//!   latency per command or statement type, errors, open and accepted connections.
//! * [`RpcMetrics`] — what an RPC server reports per method, plus the in-flight and recent
//!   calls behind `/rpcz`.
//! * [`Samples`] / [`Registry::register_fn`] — gauges and counters computed at scrape time
//!   from live state (Raft progress, storage sizes), without keeping metric objects in sync.
//!
//! # Instrumenting a query layer (e.g. `crates/bcql`)
//!
//! The dbserver creates one [`ApiMetrics`] per API, registers it on that API's metrics port
//! (BCQL: `--cql_proxy_webserver_port`, 8200) and hands a clone to the API's `serve`:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use common::metrics::{ApiMetrics, Registry};
//!
//! let registry = Registry::new();
//! let metrics = ApiMetrics::new("bcql");
//! metrics.register(&registry);
//!
//! // Per accepted connection: keep the guard for as long as the connection lives.
//! let conn = metrics.connection();
//! // Per request: the command or statement *type* from your closed set (never user text;
//! // unknown input is "unknown"), and whether it failed.
//! let t0 = Instant::now();
//! let ok = true; // ... run the statement ...
//! metrics.observe("select", t0.elapsed(), ok);
//! drop(conn);
//! assert!(registry.encode().contains("aisql_api_commands_total{api=\"bcql\",command=\"select\"} 1"));
//! ```
//!
//! Label values are capped ([`MAX_LABEL_VALUES`] distinct command names per API, RPC
//! methods likewise); further names are counted under `other`, so a client can never grow
//! the exposition without bound.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub use prometheus_client::collector::Collector;
pub use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::encoding::NoLabelSet;
pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Metric;

/// Most distinct values one label of a family takes; the rest count as `other`.
pub const MAX_LABEL_VALUES: usize = 128;

/// Labels of a family: `(name, value)` pairs.
pub type Labels = Vec<(&'static str, String)>;

/// A histogram with the latency buckets every AiSQL duration uses: 50 µs doubling up to
/// about 6.5 s (18 buckets).
pub fn latency_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.000_05, 2.0, 18,
    ))
}

/// A family of latency histograms.
pub type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// A new [`HistogramFamily`].
pub fn histogram_family() -> HistogramFamily {
    Family::new_with_constructor(latency_histogram as fn() -> Histogram)
}

/// The metrics behind one `/prometheus-metrics` endpoint.
pub struct Registry {
    inner: Mutex<prometheus_client::registry::Registry>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

impl Registry {
    /// A registry that already reports the process and the build.
    pub fn new() -> Arc<Registry> {
        let r = Registry {
            inner: Mutex::new(Default::default()),
        };
        r.register_fn(process_samples);
        Arc::new(r)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, prometheus_client::registry::Registry> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register `metric` as `name`. Counters are named without `_total` (it is appended).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        // prometheus-client ends every help text with a period.
        self.lock()
            .register(name, help.trim_end_matches('.'), metric);
    }

    /// Register a collector, called on every scrape.
    pub fn register_collector(&self, collector: impl Collector) {
        self.lock().register_collector(Box::new(collector));
    }

    /// Register a function that computes gauges and counters on every scrape.
    pub fn register_fn(&self, f: impl Fn(&mut Samples) + Send + Sync + 'static) {
        self.register_collector(FnCollector(Box::new(f)));
    }

    /// Everything registered, in the Prometheus text format 0.0.4.
    pub fn encode(&self) -> String {
        let mut om = String::with_capacity(16 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode_registry(&mut om, &self.lock()) {
            // Only a collector's formatting can fail; serve what was encoded.
            let _ = writeln!(om, "# encoding error: {e}");
        }
        openmetrics_to_prometheus(&om)
    }
}

/// prometheus-client writes OpenMetrics, where a counter family `x` has samples `x_total`;
/// the Prometheus 0.0.4 parser (promtool, older scrapers) wants the family named `x_total`.
/// Rename counter families, and drop the OpenMetrics `# EOF` marker.
fn openmetrics_to_prometheus(om: &str) -> String {
    let mut out = String::with_capacity(om.len() + 1024);
    let mut help: Option<(&str, &str)> = None;
    let flush = |help: &mut Option<(&str, &str)>, out: &mut String| {
        if let Some((n, h)) = help.take() {
            let _ = writeln!(out, "# HELP {n} {h}");
        }
    };
    for line in om.lines() {
        if line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush(&mut help, &mut out);
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|r| r.split_once(' ')) {
            let name = if kind == "counter" && !name.ends_with("_total") {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            if let Some((_, h)) = help.take() {
                let _ = writeln!(out, "# HELP {name} {h}");
            }
            let kind = if kind == "unknown" { "untyped" } else { kind };
            let _ = writeln!(out, "# TYPE {name} {kind}");
            continue;
        }
        flush(&mut help, &mut out);
        out.push_str(line);
        out.push('\n');
    }
    flush(&mut help, &mut out);
    out
}

/// Gauges and counters computed at scrape time (see [`Registry::register_fn`]). Samples of
/// one name form one family, in the order first used.
#[derive(Default)]
pub struct Samples {
    families: Vec<SampleFamily>,
}

struct SampleFamily {
    name: String,
    help: &'static str,
    counter: bool,
    rows: Vec<(Labels, f64)>,
}

impl Samples {
    fn push(&mut self, name: &str, help: &'static str, counter: bool, labels: Labels, v: f64) {
        let idx = match self.families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.families.push(SampleFamily {
                    name: name.to_owned(),
                    help,
                    counter,
                    rows: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        self.families[idx].rows.push((labels, v));
    }

    /// A gauge sample.
    pub fn gauge(
        &mut self,
        name: &str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        v: f64,
    ) {
        let labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        self.push(name, help, false, labels, v);
    }

    /// A counter sample; `name` without `_total` (it is appended).
    pub fn counter(
        &mut self,
        name: &str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        v: f64,
    ) {
        let labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        self.push(name, help, true, labels, v);
    }

    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            let kind = if f.counter {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            let mut me = encoder.encode_descriptor(&f.name, f.help, None, kind)?;
            for (labels, v) in &f.rows {
                if labels.is_empty() {
                    encode_value(&mut me, f.counter, *v)?;
                } else {
                    let mut fe = me.encode_family(labels)?;
                    encode_value(&mut fe, f.counter, *v)?;
                }
            }
        }
        Ok(())
    }
}

fn encode_value(
    e: &mut prometheus_client::encoding::MetricEncoder<'_>,
    counter: bool,
    v: f64,
) -> Result<(), std::fmt::Error> {
    if counter {
        e.encode_counter::<NoLabelSet, f64, f64>(&v, None)
    } else {
        e.encode_gauge(&v)
    }
}

struct FnCollector(Box<dyn Fn(&mut Samples) + Send + Sync>);

impl std::fmt::Debug for FnCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnCollector")
    }
}

impl Collector for FnCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut s = Samples::default();
        (self.0)(&mut s);
        s.encode(encoder)
    }
}

/// The process, from `/proc/self` (Linux; elsewhere only the build info).
fn process_samples(s: &mut Samples) {
    s.gauge(
        "aisql_build_info",
        "AiSQL build; the value is always 1.",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    let p = ProcessStats::read();
    if let Some(v) = p.cpu_seconds {
        s.counter(
            "process_cpu_seconds",
            "User and system CPU time spent in seconds.",
            &[],
            v,
        );
    }
    if let Some(v) = p.resident_bytes {
        s.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            &[],
            v as f64,
        );
    }
    if let Some(v) = p.virtual_bytes {
        s.gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            &[],
            v as f64,
        );
    }
    if let Some(v) = p.threads {
        s.gauge(
            "process_threads",
            "Number of OS threads in the process.",
            &[],
            v as f64,
        );
    }
    if let Some(v) = p.open_fds {
        s.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            &[],
            v as f64,
        );
    }
    if let Some(v) = p.max_fds {
        s.gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            &[],
            v as f64,
        );
    }
    if let Some(v) = p.start_time_seconds {
        s.gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            &[],
            v,
        );
    }
}

/// What `/proc/self` says about this process; `None` where it cannot be read.
#[derive(Clone, Debug, Default)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on every Linux ABI).
const CLOCK_TICKS: f64 = 100.0;

impl ProcessStats {
    pub fn read() -> ProcessStats {
        let mut p = ProcessStats::default();
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the parenthesised command name; field 3 (state) is index 0.
            if let Some((_, rest)) = stat.rsplit_once(") ") {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
                if let (Some(u), Some(s)) = (num(11), num(12)) {
                    p.cpu_seconds = Some((u + s) as f64 / CLOCK_TICKS);
                }
                p.threads = num(17);
                p.virtual_bytes = num(20);
                if let (Some(start), Some(btime)) = (num(19), boot_time()) {
                    p.start_time_seconds = Some(btime as f64 + start as f64 / CLOCK_TICKS);
                }
            }
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            p.resident_bytes = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kb| kb * 1024);
        }
        if let Ok(d) = std::fs::read_dir("/proc/self/fd") {
            p.open_fds = Some(d.count() as u64);
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            p.max_fds = limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok());
        }
        p
    }
}

fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The handles of one label value in a [`CallMetrics`].
#[derive(Clone, Debug)]
struct Handles {
    calls: Counter,
    errors: Counter,
    latency: Histogram,
}

/// Calls, errors and a latency histogram per key (a command, an RPC method, an operation),
/// three families that share their labels. Handles are cached per key, so counting a call is
/// a read lock, a hash lookup and three atomic updates. At most [`MAX_LABEL_VALUES`] keys;
/// later ones are counted as `other`.
#[derive(Debug)]
pub struct CallMetrics {
    calls: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    latency: HistogramFamily,
    /// Labels every sample has (e.g. `api="bedis"`).
    fixed: Labels,
    /// The labels of a key.
    split: fn(&str) -> Labels,
    handles: std::sync::RwLock<std::collections::HashMap<String, Handles>>,
}

impl CallMetrics {
    /// Families labelled `fixed` plus `split(key)`.
    pub fn new(fixed: Labels, split: fn(&str) -> Labels) -> CallMetrics {
        CallMetrics {
            calls: Family::default(),
            errors: Family::default(),
            latency: histogram_family(),
            fixed,
            split,
            handles: Default::default(),
        }
    }

    /// Register the three families as `<prefix>s` (counter), `<prefix>_errors` (counter) and
    /// `<prefix>_duration_seconds` (histogram), with the help texts `help`.
    pub fn register(&self, registry: &Registry, prefix: &str, help: [&str; 3]) {
        registry.register(&format!("{prefix}s"), help[0], self.calls.clone());
        registry.register(&format!("{prefix}_errors"), help[1], self.errors.clone());
        registry.register(
            &format!("{prefix}_duration_seconds"),
            help[2],
            self.latency.clone(),
        );
    }

    /// The handles of `key`, created on its first call (the slow path of [`Self::observe`]).
    fn handles(&self, key: &str) -> Handles {
        let mut all = self.handles.write().unwrap_or_else(|e| e.into_inner());
        let key = if all.len() >= MAX_LABEL_VALUES && !all.contains_key(key) {
            "other"
        } else {
            key
        };
        all.entry(key.to_owned())
            .or_insert_with(|| {
                let mut labels = self.fixed.clone();
                labels.extend((self.split)(key));
                Handles {
                    calls: self.calls.get_or_create_owned(&labels),
                    errors: self.errors.get_or_create_owned(&labels),
                    latency: self.latency.get_or_create_owned(&labels),
                }
            })
            .clone()
    }

    /// Count one call of `key` that took `elapsed`; `ok` is false if it failed.
    pub fn observe(&self, key: &str, elapsed: Duration, ok: bool) {
        let count = |h: &Handles| {
            h.calls.inc();
            if !ok {
                h.errors.inc();
            }
            h.latency.observe(elapsed.as_secs_f64());
        };
        // The common case counts under the read lock, without cloning the handles.
        if let Some(h) = self
            .handles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return count(h);
        }
        count(&self.handles(key));
    }
}

/// Metrics of one client API (BSQL, BCQL, BEDIS): see the module doc for how to use it.
#[derive(Clone, Debug)]
pub struct ApiMetrics(Arc<ApiInner>);

#[derive(Debug)]
struct ApiInner {
    api: &'static str,
    commands: CallMetrics,
    connections: Gauge,
    accepted: Counter,
}

/// Keeps a connection counted in `aisql_api_connections` while it lives.
#[derive(Debug)]
pub struct ConnectionGuard(ApiMetrics);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0 .0.connections.dec();
    }
}

impl ApiMetrics {
    /// Metrics of API `api` ("bsql", "bcql", "bedis").
    pub fn new(api: &'static str) -> ApiMetrics {
        ApiMetrics(Arc::new(ApiInner {
            api,
            commands: CallMetrics::new(vec![("api", api.to_owned())], |c| {
                vec![("command", c.to_owned())]
            }),
            connections: Gauge::default(),
            accepted: Counter::default(),
        }))
    }

    /// Register on `registry` (the API's metrics port).
    pub fn register(&self, registry: &Registry) {
        let i = &self.0;
        i.commands.register(
            registry,
            "aisql_api_command",
            [
                "Commands (BEDIS) or statements (BSQL, BCQL) executed, by type",
                "Commands or statements answered with an error, by type",
                "Time from a command's dispatch to its reply, by type",
            ],
        );
        let api = i.api;
        let (conns, accepted) = (i.connections.clone(), i.accepted.clone());
        registry.register_fn(move |s| {
            s.gauge(
                "aisql_api_connections",
                "Client connections open now.",
                &[("api", api)],
                conns.get() as f64,
            );
            s.counter(
                "aisql_api_connections_accepted",
                "Client connections accepted since start.",
                &[("api", api)],
                accepted.get() as f64,
            );
        });
    }

    /// Count one command of type `command` (a name from the API's closed set, lower case)
    /// that took `elapsed`; `ok` is false if it was answered with an error.
    pub fn observe(&self, command: &str, elapsed: Duration, ok: bool) {
        self.0.commands.observe(command, elapsed, ok);
    }

    /// Count an accepted connection; it is open until the guard is dropped.
    pub fn connection(&self) -> ConnectionGuard {
        self.0.accepted.inc();
        self.0.connections.inc();
        ConnectionGuard(self.clone())
    }

    /// Connections open now.
    pub fn open_connections(&self) -> i64 {
        self.0.connections.get()
    }
}

/// A finished RPC, for `/rpcz`.
#[derive(Clone, Debug)]
pub struct RecentRpc {
    pub method: String,
    pub started: SystemTime,
    pub elapsed: Duration,
    pub ok: bool,
}

/// An RPC in progress, for `/rpcz`.
#[derive(Clone, Debug)]
pub struct InFlightRpc {
    pub method: String,
    pub started: SystemTime,
    pub elapsed: Duration,
}

/// RPCs kept in the recent list of `/rpcz`.
const RECENT_RPCS: usize = 200;

/// Server-side RPC metrics of one server: calls, errors and latency per method, in-flight
/// calls, and the recent calls shown on `/rpcz`.
#[derive(Clone, Debug)]
pub struct RpcMetrics(Arc<RpcInner>);

#[derive(Debug)]
struct RpcInner {
    calls: CallMetrics,
    state: Mutex<RpcState>,
}

#[derive(Debug, Default)]
struct RpcState {
    next_id: u64,
    in_flight: BTreeMap<u64, (String, Instant, SystemTime)>,
    recent: VecDeque<RecentRpc>,
}

/// One RPC being served; call [`RpcCall::finish`] (a dropped call counts as failed).
#[derive(Debug)]
pub struct RpcCall {
    metrics: RpcMetrics,
    id: u64,
    method: String,
    start: Instant,
    done: bool,
}

impl RpcCall {
    pub fn finish(mut self, ok: bool) {
        self.done = true;
        self.metrics.finish(self.id, &self.method, self.start, ok);
    }
}

impl Drop for RpcCall {
    fn drop(&mut self) {
        if !self.done {
            self.metrics
                .finish(self.id, &self.method, self.start, false);
        }
    }
}

impl Default for RpcMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RpcMetrics {
    pub fn new() -> RpcMetrics {
        RpcMetrics(Arc::new(RpcInner {
            calls: CallMetrics::new(Vec::new(), |m| {
                let (service, method) = m.split_once('/').unwrap_or(("", m));
                vec![
                    ("service", service.to_owned()),
                    ("method", method.to_owned()),
                ]
            }),
            state: Mutex::default(),
        }))
    }

    pub fn register(&self, registry: &Registry) {
        self.0.calls.register(
            registry,
            "aisql_rpc_request",
            [
                "RPCs served, by service and method",
                "RPCs answered with a non-OK gRPC status, by service and method",
                "Time to serve an RPC, by service and method",
            ],
        );
        let me = self.clone();
        registry.register_fn(move |s| {
            let n = me.state().in_flight.len();
            s.gauge(
                "aisql_rpc_requests_in_flight",
                "RPCs being served now.",
                &[],
                n as f64,
            );
        });
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RpcState> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start timing a call of `method` (`Service/Method`).
    pub fn start(&self, method: &str) -> RpcCall {
        // The path comes from the client: keep /rpcz entries short.
        let mut end = method.len().min(120);
        while !method.is_char_boundary(end) {
            end -= 1;
        }
        let method = method[..end].to_owned();
        let mut st = self.state();
        st.next_id += 1;
        let id = st.next_id;
        st.in_flight
            .insert(id, (method.clone(), Instant::now(), SystemTime::now()));
        RpcCall {
            metrics: self.clone(),
            id,
            method,
            start: Instant::now(),
            done: false,
        }
    }

    fn finish(&self, id: u64, method: &str, start: Instant, ok: bool) {
        let elapsed = start.elapsed();
        self.0.calls.observe(method, elapsed, ok);
        let mut st = self.state();
        let started = st
            .in_flight
            .remove(&id)
            .map(|(_, _, t)| t)
            .unwrap_or_else(SystemTime::now);
        if st.recent.len() >= RECENT_RPCS {
            st.recent.pop_front();
        }
        st.recent.push_back(RecentRpc {
            method: method.to_owned(),
            started,
            elapsed,
            ok,
        });
    }

    /// Calls in progress, oldest first.
    pub fn in_flight(&self) -> Vec<InFlightRpc> {
        self.state()
            .in_flight
            .values()
            .map(|(m, t, st)| InFlightRpc {
                method: m.clone(),
                started: *st,
                elapsed: t.elapsed(),
            })
            .collect()
    }

    /// The last finished calls, newest first.
    pub fn recent(&self) -> Vec<RecentRpc> {
        self.state().recent.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_renamed_for_the_prometheus_text_format() {
        let r = Registry::new();
        let c: Counter = Counter::default();
        c.inc();
        r.register("aisql_things", "Things.", c);
        let text = r.encode();
        assert!(text.contains("# HELP aisql_things_total Things.\n# TYPE aisql_things_total counter\naisql_things_total 1\n"), "{text}");
        assert!(!text.contains("# EOF"));
        assert!(text.contains("process_threads "), "{text}");
    }

    #[test]
    fn api_metrics_label_commands_and_cap_them() {
        let r = Registry::new();
        let m = ApiMetrics::new("bedis");
        m.register(&r);
        let g = m.connection();
        m.observe("get", Duration::from_millis(1), true);
        m.observe("get", Duration::from_millis(1), false);
        for i in 0..MAX_LABEL_VALUES + 5 {
            m.observe(&format!("c{i}"), Duration::ZERO, true);
        }
        let text = r.encode();
        assert!(
            text.contains("aisql_api_commands_total{api=\"bedis\",command=\"get\"} 2"),
            "{text}"
        );
        assert!(text.contains("aisql_api_command_errors_total{api=\"bedis\",command=\"get\"} 1"));
        assert!(text.contains("command=\"other\""));
        assert!(text.contains("aisql_api_connections{api=\"bedis\"} 1"));
        drop(g);
        assert!(r
            .encode()
            .contains("aisql_api_connections{api=\"bedis\"} 0"));
    }

    #[test]
    fn rpc_metrics_track_in_flight_and_recent() {
        let m = RpcMetrics::new();
        let c = m.start("TabletService/Write");
        assert_eq!(m.in_flight().len(), 1);
        c.finish(true);
        assert!(m.in_flight().is_empty());
        assert_eq!(m.recent()[0].method, "TabletService/Write");
    }
}
