//! The bm-mserver web UI (port 10000): server-rendered pages and the JSON API over the
//! catalog, the dbservers' heartbeats and the catalog Raft group, plus the mserver's
//! Prometheus metrics. Built on [`web`]'s layout and common routes; see `docs/web.md`.
//!
//! The catalog is replicated, so every mserver shows it; dbserver liveness, replica roles and
//! rates are soft state that only the leader hears (heartbeats go to the leader), so a
//! follower says who leads and links to the leader's web UI (found with the `StatusService`
//! RPC) instead of showing stale liveness.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use consensus::ServerState;
use serde_json::{json, Value};
use web::{fmt_age, fmt_bytes, html, page, Markup, Site};

use crate::catalog::{Catalog, TableEntry};
use crate::Mserver;

/// The name of a Raft role on pages and in JSON.
pub fn role_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "LEADER",
        ServerState::Follower => "FOLLOWER",
        ServerState::Candidate => "CANDIDATE",
        ServerState::Learner => "LEARNER",
        ServerState::Shutdown => "SHUTDOWN",
    }
}

const NAV: [(&str, &str); 8] = [
    ("/", "Overview"),
    ("/tablet-servers", "Tablet servers"),
    ("/tables", "Tables"),
    ("/tablet-replication", "Replication"),
    ("/masters", "Masters"),
    ("/varz", "Flags"),
    ("/logs", "Logs"),
    ("/api/v1/servers", "JSON"),
];

/// One dbserver as the UI shows it.
struct DbRow {
    uuid: String,
    rpc_addr: String,
    http_addr: String,
    alive: bool,
    heartbeat_age: Option<Duration>,
    tablets: usize,
    leaders: usize,
    disk_bytes: Option<u64>,
    rates: Option<(f64, f64)>,
}

/// A replica of a tablet as the UI shows it.
struct ReplicaRow {
    uuid: String,
    rpc_addr: String,
    leader: bool,
    alive: bool,
    /// (role, term, last applied) as the replica last reported, if it did.
    report: Option<(&'static str, u64, u64)>,
}

/// Everything the pages read, taken at once.
struct View {
    catalog: Catalog,
    leader: bool,
    dbservers: Vec<DbRow>,
    /// tablet id → (leader uuid, term)
    tablet_leaders: HashMap<String, (String, u64)>,
    /// (server uuid, tablet id) → (is leader, term, last applied)
    reports: HashMap<(String, String), (bool, u64, u64)>,
}

impl View {
    fn take(m: &Mserver) -> View {
        let catalog = m.catalog();
        let leader = m.is_leader();
        let tablet_leaders = m.leaders_by_tablet();
        let live = m.live.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut reports = HashMap::new();
        for (uuid, l) in &live {
            for r in &l.tablets {
                reports.insert(
                    (uuid.clone(), r.tablet_id.clone()),
                    (r.is_leader, r.term, r.last_applied),
                );
            }
        }
        let dbservers = catalog
            .servers
            .values()
            .map(|s| {
                let (alive, age_ms) = m.is_alive(&s.server_uuid);
                let l = live.get(&s.server_uuid);
                DbRow {
                    uuid: s.server_uuid.clone(),
                    rpc_addr: s.rpc_addr.clone(),
                    http_addr: s.http_addr.clone(),
                    alive: leader && alive,
                    heartbeat_age: (age_ms != u64::MAX).then(|| Duration::from_millis(age_ms)),
                    tablets: catalog
                        .tablets
                        .values()
                        .filter(|t| t.replicas.iter().any(|r| r.server_uuid == s.server_uuid))
                        .count(),
                    leaders: tablet_leaders
                        .values()
                        .filter(|(u, _)| u == &s.server_uuid)
                        .count(),
                    disk_bytes: l.map(|l| l.disk_bytes),
                    rates: l.map(|l| l.rates),
                }
            })
            .collect();
        View {
            catalog,
            leader,
            dbservers,
            tablet_leaders,
            reports,
        }
    }

    fn replicas(&self, m: &Mserver, tablet_id: &str) -> Vec<ReplicaRow> {
        let Some(t) = self.catalog.tablets.get(tablet_id) else {
            return Vec::new();
        };
        let leader = self.tablet_leaders.get(tablet_id).map(|(u, _)| u.as_str());
        t.replicas
            .iter()
            .map(|r| ReplicaRow {
                uuid: r.server_uuid.clone(),
                rpc_addr: r.rpc_addr.clone(),
                leader: leader == Some(r.server_uuid.as_str()),
                alive: self.leader && m.is_alive(&r.server_uuid).0,
                report: self
                    .reports
                    .get(&(r.server_uuid.clone(), tablet_id.to_owned()))
                    .map(|&(l, term, applied)| {
                        (if l { "LEADER" } else { "FOLLOWER" }, term, applied)
                    }),
            })
            .collect()
    }

    fn http_of(&self, uuid: &str) -> Option<&str> {
        self.catalog
            .servers
            .get(uuid)
            .map(|s| s.http_addr.as_str())
            .filter(|a| !a.is_empty())
    }

    /// Tablets without a reported leader, and tablets with fewer live replicas than their
    /// table's replication factor.
    fn problems(&self, m: &Mserver) -> (Vec<String>, Vec<(String, usize, u32)>) {
        let mut leaderless = Vec::new();
        let mut under = Vec::new();
        for (id, t) in &self.catalog.tablets {
            if !self.tablet_leaders.contains_key(id) {
                leaderless.push(id.clone());
            }
            let rf = self
                .catalog
                .tables
                .get(&t.table_id)
                .map(|x| x.replication_factor)
                .unwrap_or(0);
            let live = t
                .replicas
                .iter()
                .filter(|r| m.is_alive(&r.server_uuid).0)
                .count();
            if live < rf as usize {
                under.push((id.clone(), live, rf));
            }
        }
        (leaderless, under)
    }
}

fn table_name(c: &Catalog, table_id: &str) -> String {
    c.tables
        .get(table_id)
        .map(|t| format!("{}.{}", t.namespace, t.name))
        .unwrap_or_else(|| table_id.to_owned())
}

fn link_http(addr: &str) -> Markup {
    html! {
        @if addr.is_empty() { "-" } @else { a href=(format!("http://{addr}/")) { (addr) } }
    }
}

fn alive_cell(alive: bool, leader: bool) -> Markup {
    html! {
        @if !leader { span { "see leader" } }
        @else if alive { span class="ok" { "ALIVE" } }
        @else { span class="bad" { "DEAD" } }
    }
}

/// The follower banner: who leads, with a link to its web UI.
async fn leader_note(m: &Mserver) -> Markup {
    if m.is_leader() {
        return html! {};
    }
    let Some(rpc) = m.leader_addr() else {
        return html! { p class="note" { "This mserver is not the catalog leader and no leader is known \
        (an election may be running). Liveness and replica roles are only known to the leader." } };
    };
    let http = m.peer_status(&rpc).await.map(|s| s.http_addr);
    html! {
        p class="note" {
            "This mserver is a follower. The catalog leader is the mserver at " code { (rpc) }
            @if let Some(h) = http.filter(|h| !h.is_empty()) {
                ": its web UI is " a id="leader-link" href=(format!("http://{h}/")) { "http://" (h) "/" }
            }
            ". Liveness, replica roles and rates are only known to the leader."
        }
    }
}

fn tables_table(c: &Catalog) -> Markup {
    html! {
        table {
            tr { th { "namespace" } th { "table" } th { "id" } th { "tablets" } th { "partitioning" } th { "RF" } }
            @for t in c.tables.values() {
                tr {
                    td { (t.namespace) }
                    td { a href=(format!("/table?id={}", t.table_id)) { (t.name) } }
                    td { code { (t.table_id) } }
                    td { (t.tablet_ids.len()) }
                    td { @if t.range_partitioned { "range" } @else { "hash" } }
                    td { (t.replication_factor) }
                }
            }
        }
    }
}

fn dbservers_table(v: &View, detailed: bool) -> Markup {
    html! {
        table {
            tr {
                th { "dbserver" } th { "RPC" } th { "web UI" } th { "state" } th { "heartbeat" }
                th { "tablets" } th { "leaders" }
                @if detailed { th { "disk" } th { "reads/s" } th { "writes/s" } }
            }
            @for d in &v.dbservers {
                tr {
                    td { code { (d.uuid) } }
                    td { (d.rpc_addr) }
                    td { (link_http(&d.http_addr)) }
                    td { (alive_cell(d.alive, v.leader)) }
                    td { @match d.heartbeat_age { Some(a) => { (fmt_age(a)) " ago" }, None => "-" } }
                    td { (d.tablets) }
                    td { @if v.leader { (d.leaders) } @else { "-" } }
                    @if detailed {
                        td { @match d.disk_bytes { Some(b) => (fmt_bytes(b)), None => "-" } }
                        td { @match d.rates { Some(r) => (format!("{:.1}", r.0)), None => "-", } }
                        td { @match d.rates { Some(r) => (format!("{:.1}", r.1)), None => "-", } }
                    }
                }
            }
        }
    }
}

/// (node id, rpc address, role) of every mserver as this node's Raft metrics see them.
fn mserver_roles(m: &Mserver) -> Vec<(u64, String, &'static str)> {
    let metrics = m.raft_metrics();
    m.config
        .mserver_addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let id = i as u64 + 1;
            let role = if metrics.current_leader == Some(id) {
                "LEADER"
            } else if id == m.node_id {
                role_name(metrics.state)
            } else if metrics.state == ServerState::Leader {
                "FOLLOWER"
            } else {
                "-"
            };
            (id, addr.clone(), role)
        })
        .collect()
}

async fn home(m: Arc<Mserver>, site: Arc<Site>) -> Html<String> {
    let v = View::take(&m);
    let c = &v.catalog;
    let alive = v.dbservers.iter().filter(|d| d.alive).count();
    let rm = m.raft_metrics();
    let note = leader_note(&m).await;
    page(
        &site,
        "Cluster overview",
        html! {
            (note)
            table {
                tr { th { "version" } td { "AiSQL " (env!("CARGO_PKG_VERSION")) } }
                tr { th { "this mserver" } td { "node " (m.node_id) ", " (role_name(rm.state)) ", term " (rm.current_term) } }
                tr { th { "uptime" } td { (fmt_age(m.uptime())) } }
                tr { th { "default replication factor" } td { (m.config.replication_factor) } }
                tr { th { "dbservers" } td {
                    @if v.leader { (alive) " live, " (v.dbservers.len() - alive) " dead" }
                    @else { (v.dbservers.len()) " registered" }
                } }
                tr { th { "namespaces" } td { (c.namespaces.len()) } }
                tr { th { "tables" } td { (c.tables.len()) } }
                tr { th { "tablets" } td { (c.tablets.len()) } }
            }
            h2 { "Mservers" }
            table {
                tr { th { "node" } th { "RPC" } th { "role" } }
                @for (id, addr, role) in mserver_roles(&m) {
                    tr { td { (id) } td { (addr) } td { (role) } }
                }
            }
            h2 { "Dbservers" }
            (dbservers_table(&v, false))
            h2 { "Namespaces" }
            p { @for (i, n) in c.namespaces.iter().enumerate() { @if i > 0 { ", " } code { (n) } } }
            h2 { "Tables" }
            (tables_table(c))
        },
    )
}

async fn tablet_servers(m: Arc<Mserver>, site: Arc<Site>) -> Html<String> {
    let v = View::take(&m);
    let note = leader_note(&m).await;
    page(
        &site,
        "Tablet servers",
        html! {
            (note)
            p { "Disk use and rates come with each heartbeat; rates are tablet reads and writes per second \
                 between the last two heartbeats." }
            (dbservers_table(&v, true))
        },
    )
}

async fn tables(m: Arc<Mserver>, site: Arc<Site>) -> Html<String> {
    let c = m.catalog();
    page(
        &site,
        "Tables",
        html! {
            h2 { "Namespaces" }
            table {
                tr { th { "namespace" } th { "tables" } }
                @for n in &c.namespaces {
                    tr { td { (n) } td { (c.tables.values().filter(|t| &t.namespace == n).count()) } }
                }
            }
            h2 { "Tables" }
            (tables_table(&c))
        },
    )
}

/// The schema as stored by the API that created the table (BSQL: JSON with columns).
fn schema_view(t: &TableEntry) -> Markup {
    if t.schema.is_empty() {
        return html! { p { "No schema: a key-value table (BEDIS, or created with " code { "aisql create-table" } ")." } };
    }
    let Ok(v) = serde_json::from_slice::<Value>(&t.schema) else {
        return html! { p { (t.schema.len()) " bytes of binary schema." } };
    };
    let pk: Vec<u64> = v
        .get("pk")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    match v.get("columns").and_then(Value::as_array) {
        Some(cols) => html! {
            table {
                tr { th { "column" } th { "type" } th { "nullable" } th { "primary key" } }
                @for (i, c) in cols.iter().enumerate() {
                    tr {
                        td { (c.get("name").and_then(Value::as_str).unwrap_or("?")) }
                        td { code { (c.get("ty").map(|t| t.to_string()).unwrap_or_default().trim_matches('"')) } }
                        td { (c.get("nullable").and_then(Value::as_bool).unwrap_or(true)) }
                        td { @if pk.contains(&(i as u64)) { "yes" } }
                    }
                }
            }
        },
        None => html! { pre { (serde_json::to_string_pretty(&v).unwrap_or_default()) } },
    }
}

async fn table(
    m: Arc<Mserver>,
    site: Arc<Site>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let v = View::take(&m);
    let id = q.get("id").cloned().unwrap_or_default();
    let Some(t) = v.catalog.tables.get(&id) else {
        return web::error_page(
            &site,
            StatusCode::NOT_FOUND,
            &format!("no table with id {id:?}"),
        );
    };
    let note = leader_note(&m).await;
    page(
        &site,
        &format!("Table {}.{}", t.namespace, t.name),
        html! {
            (note)
            table {
                tr { th { "id" } td { code { (t.table_id) } } }
                tr { th { "namespace" } td { (t.namespace) } }
                tr { th { "name" } td { (t.name) } }
                tr { th { "partitioning" } td { @if t.range_partitioned { "range" } @else { "hash" } } }
                tr { th { "replication factor" } td { (t.replication_factor) } }
            }
            h2 { "Schema" }
            (schema_view(t))
            h2 { "Tablets" }
            table {
                tr { th { "tablet" } th { "partition" } th { "replicas (★ leader)" } }
                @for tid in &t.tablet_ids {
                    @if let Some(tb) = v.catalog.tablets.get(tid) {
                        tr {
                            td { code { (tid) } }
                            td { "hash [" (tb.hash_start) ", " (tb.hash_end) ")" }
                            td {
                                table {
                                    @for r in v.replicas(&m, tid) {
                                        tr {
                                            td { @if r.leader { "★ " } (r.rpc_addr) }
                                            td { @if let Some(h) = v.http_of(&r.uuid) {
                                                a href=(format!("http://{h}/tablet?id={tid}")) { "replica page" }
                                            } }
                                            td { (alive_cell(r.alive, v.leader)) }
                                            td { @match r.report {
                                                Some((role, term, applied)) => { (role) ", term " (term) ", applied " (applied) },
                                                None => "-",
                                            } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}

async fn tablet_replication(m: Arc<Mserver>, site: Arc<Site>) -> Html<String> {
    let v = View::take(&m);
    let note = leader_note(&m).await;
    let (leaderless, under) = v.problems(&m);
    let c = &v.catalog;
    page(
        &site,
        "Tablet replication",
        html! {
            (note)
            @if !v.leader {
                p { "Only the leader knows replica roles and liveness." }
            } @else {
                h2 { "Leaderless tablets (" (leaderless.len()) ")" }
                @if leaderless.is_empty() { p class="ok" { "Every tablet has a leader." } }
                @else {
                    table {
                        tr { th { "tablet" } th { "table" } }
                        @for id in &leaderless {
                            @let table_id = c.tablets.get(id).map(|t| t.table_id.clone()).unwrap_or_default();
                            tr { td { code { (id) } } td { a href=(format!("/table?id={table_id}")) { (table_name(c, &table_id)) } } }
                        }
                    }
                }
                h2 { "Under-replicated tablets (" (under.len()) ")" }
                @if under.is_empty() { p class="ok" { "Every tablet has as many live replicas as its replication factor." } }
                @else {
                    table {
                        tr { th { "tablet" } th { "table" } th { "live replicas" } th { "RF" } }
                        @for (id, live, rf) in &under {
                            @let table_id = c.tablets.get(id).map(|t| t.table_id.clone()).unwrap_or_default();
                            tr { td { code { (id) } } td { (table_name(c, &table_id)) } td { (live) } td { (rf) } }
                        }
                    }
                }
            }
        },
    )
}

async fn masters(m: Arc<Mserver>, site: Arc<Site>) -> Html<String> {
    let addrs = m.config.mserver_addrs.clone();
    let mut rows = Vec::new();
    for a in &addrs {
        rows.push((a.clone(), m.peer_status(a).await));
    }
    let note = leader_note(&m).await;
    let rm = m.raft_metrics();
    page(
        &site,
        "Masters",
        html! {
            (note)
            p { "Every mserver answers for itself (StatusService RPC, 1 s timeout)." }
            table {
                tr { th { "node" } th { "RPC" } th { "web UI" } th { "role" } th { "term" } th { "last applied" } th { "last log index" } th { "uptime" } }
                @for (addr, st) in &rows {
                    @match st {
                        Some(s) => tr {
                            td { (s.node_id) @if s.node_id == m.node_id { " (this)" } }
                            td { (addr) }
                            td { (link_http(&s.http_addr)) }
                            td { (s.role) }
                            td { (s.term) }
                            td { (s.last_applied) }
                            td { (s.last_log_index) }
                            td { (fmt_age(Duration::from_millis(s.uptime_ms))) }
                        },
                        None => tr { td { "?" } td { (addr) } td { "-" } td class="bad" { "UNREACHABLE" } td {} td {} td {} td {} },
                    }
                }
            }
            h2 { "Catalog Raft group (this node)" }
            table {
                tr { th { "state" } td { (role_name(rm.state)) } }
                tr { th { "term" } td { (rm.current_term) } }
                tr { th { "leader" } td { @match rm.current_leader { Some(l) => (l), None => "unknown", } } }
                tr { th { "last log index" } td { (rm.last_log_index.unwrap_or(0)) } }
                tr { th { "last applied" } td { (rm.last_applied.map(|l| l.index).unwrap_or(0)) } }
                @if let Some(repl) = &rm.replication {
                    tr { th { "replication (matched index)" } td {
                        @for (node, matched) in repl { "node " (node) ": " (matched.map(|l| l.index).unwrap_or(0)) " " }
                    } }
                }
            }
        },
    )
}

fn health_json(m: &Mserver) -> Value {
    let rm = m.raft_metrics();
    json!({
        "status": "ok",
        "server": "bm-mserver",
        "node_id": m.node_id,
        "role": role_name(rm.state),
        "is_leader": m.is_leader(),
        "leader_rpc_addr": m.leader_addr(),
        "uptime_seconds": m.uptime().as_secs(),
    })
}

fn servers_json(m: &Mserver) -> Value {
    let v = View::take(m);
    json!({
        "leader": v.leader,
        "replication_factor": m.config.replication_factor,
        "mservers": mserver_roles(m).into_iter().map(|(id, addr, role)| json!({
            "node_id": id, "rpc_addr": addr, "role": role,
        })).collect::<Vec<_>>(),
        "dbservers": v.dbservers.iter().map(|d| json!({
            "uuid": d.uuid,
            "rpc_addr": d.rpc_addr,
            "http_addr": d.http_addr,
            "alive": d.alive,
            "heartbeat_age_ms": d.heartbeat_age.map(|a| a.as_millis() as u64),
            "tablets": d.tablets,
            "leaders": d.leaders,
            "disk_bytes": d.disk_bytes,
            "reads_per_second": d.rates.map(|r| r.0),
            "writes_per_second": d.rates.map(|r| r.1),
        })).collect::<Vec<_>>(),
    })
}

fn tables_json(m: &Mserver) -> Value {
    let c = m.catalog();
    json!({
        "namespaces": c.namespaces,
        "tables": c.tables.values().map(|t| json!({
            "id": t.table_id,
            "namespace": t.namespace,
            "name": t.name,
            "tablets": t.tablet_ids.len(),
            "range_partitioned": t.range_partitioned,
            "replication_factor": t.replication_factor,
        })).collect::<Vec<_>>(),
    })
}

fn tablets_json(m: &Mserver) -> Value {
    let v = View::take(m);
    let tablets: Vec<Value> = v
        .catalog
        .tablets
        .values()
        .map(|t| {
            let replicas = v.replicas(m, &t.tablet_id);
            json!({
                "tablet_id": t.tablet_id,
                "table_id": t.table_id,
                "table": table_name(&v.catalog, &t.table_id),
                "hash_start": t.hash_start,
                "hash_end": t.hash_end,
                "leader": replicas.iter().find(|r| r.leader).map(|r| r.rpc_addr.clone()),
                "replicas": replicas.iter().map(|r| json!({
                    "uuid": r.uuid,
                    "rpc_addr": r.rpc_addr,
                    "leader": r.leader,
                    "alive": r.alive,
                    "term": r.report.map(|x| x.1),
                    "last_applied": r.report.map(|x| x.2),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "leader": v.leader, "tablets": tablets })
}

/// Mserver gauges for `/prometheus-metrics` (catalog sizes, leadership, liveness).
pub(crate) fn register_metrics(m: &Arc<Mserver>) {
    let weak = Arc::downgrade(m);
    m.metrics.register_fn(move |s| {
        let Some(m) = weak.upgrade() else { return };
        let v = View::take(&m);
        let c = &v.catalog;
        s.gauge(
            "aisql_mserver_is_leader",
            "1 if this mserver leads the catalog",
            &[],
            f64::from(u8::from(v.leader)),
        );
        s.gauge(
            "aisql_mserver_namespaces",
            "Namespaces in the catalog",
            &[],
            c.namespaces.len() as f64,
        );
        s.gauge(
            "aisql_mserver_tables",
            "Tables in the catalog",
            &[],
            c.tables.len() as f64,
        );
        s.gauge(
            "aisql_mserver_tablets",
            "Tablets in the catalog",
            &[],
            c.tablets.len() as f64,
        );
        s.gauge(
            "aisql_mserver_dbservers",
            "Registered dbservers",
            &[],
            v.dbservers.len() as f64,
        );
        if v.leader {
            let alive = v.dbservers.iter().filter(|d| d.alive).count();
            let (leaderless, under) = v.problems(&m);
            s.gauge(
                "aisql_mserver_dbservers_alive",
                "Dbservers that heartbeat in time (leader only)",
                &[],
                alive as f64,
            );
            s.gauge(
                "aisql_mserver_tablets_leaderless",
                "Tablets with no reported leader (leader only)",
                &[],
                leaderless.len() as f64,
            );
            s.gauge(
                "aisql_mserver_tablets_under_replicated",
                "Tablets with fewer live replicas than their replication factor (leader only)",
                &[],
                under.len() as f64,
            );
        }
    });
}

/// The whole web app of an mserver. `flags` are the effective flags for `/varz`.
pub fn router(m: Arc<Mserver>, flags: Vec<(String, String)>) -> Router {
    let site = Arc::new(Site {
        server: format!("bm-mserver {}", m.config.rpc_addr),
        nav: NAV.to_vec(),
        flags,
        metrics: m.metrics(),
        started: m.started,
    });
    macro_rules! page_route {
        ($f:ident) => {{
            let (m, s) = (m.clone(), site.clone());
            get(move || $f(m.clone(), s.clone()))
        }};
    }
    macro_rules! json_route {
        ($f:ident) => {{
            let m = m.clone();
            get(move || std::future::ready(Json($f(&m))))
        }};
    }
    let (tm, ts) = (m.clone(), site.clone());
    let pages = Router::new()
        .route("/", page_route!(home))
        .route("/tablet-servers", page_route!(tablet_servers))
        .route("/tables", page_route!(tables))
        .route(
            "/table",
            get(move |q: Query<HashMap<String, String>>| table(tm.clone(), ts.clone(), q)),
        )
        .route("/tablet-replication", page_route!(tablet_replication))
        .route("/masters", page_route!(masters))
        .route("/api/v1/health-check", json_route!(health_json))
        .route("/api/v1/servers", json_route!(servers_json))
        .route("/api/v1/tables", json_route!(tables_json))
        .route("/api/v1/tablets", json_route!(tablets_json));
    web::router(site, pages)
}
