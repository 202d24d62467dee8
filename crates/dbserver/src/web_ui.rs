//! The bm-dbserver web UI (port 20000): server-rendered pages and the JSON API over the tablet
//! replicas this server hosts (Raft role, term, applied index, size), its store and its RPCs,
//! plus the server's Prometheus metrics. Built on [`web`]'s layout and common routes; see
//! `docs/web.md`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tablet::Tablet;
use web::{fmt_age, fmt_bytes, fmt_time, html, page, Markup, Site};

use crate::DbServer;

const NAV: [(&str, &str); 6] = [
    ("/", "Overview"),
    ("/tablets", "Tablets"),
    ("/rpcz", "RPCs"),
    ("/varz", "Flags"),
    ("/logs", "Logs"),
    ("/api/v1/tablets", "JSON"),
];

fn size_cell(d: &DbServer, id: &str) -> String {
    d.tablet_bytes(id)
        .map(fmt_bytes)
        .unwrap_or_else(|| "measuring".into())
}

/// Tablet replicas hosted here: (table, partition, role, term, applied, size) for each.
fn tablets_table(d: &DbServer, tablets: &[Arc<Tablet>]) -> Markup {
    html! {
        table {
            tr {
                th { "tablet" } th { "table" } th { "partition" } th { "role" } th { "term" }
                th { "last applied" } th { "last log index" } th { "size" }
            }
            @for t in tablets {
                @let s = t.status();
                @let m = t.meta();
                tr {
                    td { a href=(format!("/tablet?id={}", m.tablet_id)) { code { (m.tablet_id) } } }
                    td { (m.table_name) }
                    td { "hash [" (m.hash_start) ", " (m.hash_end) ")" }
                    td { @if s.is_leader { b { (s.role) } } @else { (s.role) } }
                    td { (s.term) }
                    td { (s.last_applied) }
                    td { (s.last_log_index) }
                    td { (size_cell(d, &m.tablet_id)) }
                }
            }
        }
    }
}

fn home(d: &DbServer, site: &Site) -> Html<String> {
    let tablets = d.tablet_list();
    let leaders = tablets.iter().filter(|t| t.status().is_leader).count();
    let st = d.env.engine.stats();
    let (reads, writes) = d.ops.totals();
    page(
        site,
        "Dbserver overview",
        html! {
            table {
                tr { th { "version" } td { "AiSQL " (env!("CARGO_PKG_VERSION")) } }
                tr { th { "uuid" } td { code { (d.uuid) } } }
                tr { th { "Raft node id" } td { (d.node_id) } }
                tr { th { "RPC address" } td { (d.config.rpc_addr) } }
                tr { th { "mservers" } td { (d.config.mserver_addrs.join(", ")) } }
                tr { th { "uptime" } td { (fmt_age(d.started.elapsed())) } }
                tr { th { "tablet replicas" } td { (tablets.len()) " (" (leaders) " leaders)" } }
                tr { th { "reads / writes served" } td { (reads) " / " (writes) } }
                tr { th { "data directory" } td { code { (d.config.data_dir.display()) } } }
            }
            h2 { "Storage" }
            table {
                tr { th { "disk use" } td { (fmt_bytes(st.disk_bytes)) } }
                tr { th { "journal" } td { (fmt_bytes(st.journal_bytes)) " in " (st.journals) " files" } }
                tr { th { "write buffer" } td { (fmt_bytes(st.write_buffer_bytes)) } }
                tr { th { "compactions" } td { (st.compactions_completed) " done, " (st.compactions_running) " running, "
                    (format!("{:.1}", st.compaction_seconds)) " s spent" } }
            }
            table {
                tr { th { "column family" } th { "disk" } th { "tables" } th { "level-0 tables" } th { "sealed memtables" } th { "writes" } }
                @for cf in &st.column_families {
                    tr {
                        td { (cf.name) } td { (fmt_bytes(cf.disk_bytes)) } td { (cf.tables) } td { (cf.l0_tables) }
                        td { (cf.sealed_memtables) }
                        td { @if cf.write_stalled { span class="bad" { "STALLED" } } @else { span class="ok" { "ok" } } }
                    }
                }
            }
            h2 { "Tablets" }
            (tablets_table(d, &tablets))
        },
    )
}

fn tablets_page(d: &DbServer, site: &Site) -> Html<String> {
    let tablets = d.tablet_list();
    page(
        site,
        "Tablet replicas",
        html! {
            p { "Sizes are the bytes of every stored row version before compression, measured every 30 s." }
            (tablets_table(d, &tablets))
        },
    )
}

fn tablet_page(d: &DbServer, site: &Site, q: &HashMap<String, String>) -> Response {
    let id = q.get("id").cloned().unwrap_or_default();
    let Some(t) = d.tablet(&id) else {
        return web::error_page(
            site,
            StatusCode::NOT_FOUND,
            &format!("no replica of tablet {id:?} on this server"),
        );
    };
    let s = t.status();
    let m = t.meta();
    let rm = t.raft().metrics().borrow().clone();
    let matched: BTreeMap<u64, u64> = rm
        .replication
        .as_ref()
        .map(|r| {
            r.iter()
                .map(|(n, l)| (*n, l.map(|l| l.index).unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    page(
        site,
        &format!("Tablet {}", m.tablet_id),
        html! {
            table {
                tr { th { "table" } td { (m.table_name) " (" code { (m.table_id) } ")" } }
                tr { th { "partition" } td { "hash [" (m.hash_start) ", " (m.hash_end) ")" } }
                tr { th { "role" } td { (s.role) } }
                tr { th { "term" } td { (s.term) } }
                tr { th { "last log index" } td { (s.last_log_index) } }
                tr { th { "last applied" } td { (s.last_applied) } }
                tr { th { "size" } td { (size_cell(d, &m.tablet_id)) } }
                tr { th { "leader seen within" } td { @match rm.millis_since_quorum_ack {
                    Some(ms) => { (fmt_age(Duration::from_millis(ms))) " (quorum ack, leader only)" },
                    None => "-",
                } } }
            }
            h2 { "Peers" }
            table {
                tr { th { "node" } th { "server" } th { "RPC" } th { "role" } th { "matched index (leader view)" } th { "lag" } }
                @for p in &m.peers {
                    tr {
                        td { (p.node_id) @if p.node_id == d.node_id { " (this)" } }
                        td { code { (p.server_uuid) } }
                        td { (p.rpc_addr) }
                        td { @if s.leader == Some(p.node_id) { b { "★ LEADER" } } @else { "follower" } }
                        td { @match matched.get(&p.node_id) { Some(i) => (i), None => "-", } }
                        td { @match matched.get(&p.node_id) { Some(i) => (s.last_log_index.saturating_sub(*i)), None => "-", } }
                    }
                }
            }
        },
    )
    .into_response()
}

fn rpcz(d: &DbServer, site: &Site) -> Html<String> {
    let in_flight = d.rpc_metrics.in_flight();
    let recent = d.rpc_metrics.recent();
    page(
        site,
        "RPCs",
        html! {
            p { "RPCs received over the network (Raft traffic, remote reads and writes, tablet lifecycle). \
                 Reads and writes of this server's own query layers run in-process and are counted in "
                code { "aisql_tablet_requests_total" } " instead." }
            h2 { "In flight (" (in_flight.len()) ")" }
            table {
                tr { th { "method" } th { "started" } th { "running for" } }
                @for c in &in_flight {
                    tr { td { (c.method) } td { (fmt_time(c.started)) } td { (fmt_age(c.elapsed)) } }
                }
            }
            h2 { "Recent (newest first, last " (recent.len()) ")" }
            table {
                tr { th { "method" } th { "started" } th { "took" } th { "result" } }
                @for c in &recent {
                    tr {
                        td { (c.method) } td { (fmt_time(c.started)) }
                        td { (format!("{:.3} ms", c.elapsed.as_secs_f64() * 1e3)) }
                        td { @if c.ok { span class="ok" { "OK" } } @else { span class="bad" { "ERROR" } } }
                    }
                }
            }
        },
    )
}

fn health_json(d: &DbServer) -> Value {
    json!({
        "status": "ok",
        "server": "bm-dbserver",
        "uuid": d.uuid,
        "uptime_seconds": d.started.elapsed().as_secs(),
        "tablets": d.tablet_list().len(),
    })
}

fn servers_json(d: &DbServer) -> Value {
    json!({
        "dbserver": {
            "uuid": d.uuid,
            "node_id": d.node_id,
            "rpc_addr": d.config.rpc_addr,
            "http_addr": d.config.http_addr,
            "disk_bytes": d.env.engine.disk_space(),
        },
        "mservers": d.config.mserver_addrs,
    })
}

fn tablet_json(d: &DbServer, t: &Tablet) -> Value {
    let s = t.status();
    let m = t.meta();
    json!({
        "tablet_id": m.tablet_id,
        "table_id": m.table_id,
        "table": m.table_name,
        "hash_start": m.hash_start,
        "hash_end": m.hash_end,
        "role": s.role,
        "term": s.term,
        "last_applied": s.last_applied,
        "last_log_index": s.last_log_index,
        "leader_node_id": s.leader,
        "size_bytes": d.tablet_bytes(&m.tablet_id),
        "peers": m.peers.iter().map(|p| json!({
            "uuid": p.server_uuid, "node_id": p.node_id, "rpc_addr": p.rpc_addr,
        })).collect::<Vec<_>>(),
    })
}

fn tablets_json(d: &DbServer) -> Value {
    let tablets: Vec<Value> = d.tablet_list().iter().map(|t| tablet_json(d, t)).collect();
    json!({ "tablets": tablets })
}

fn tables_json(d: &DbServer) -> Value {
    let mut tables: BTreeMap<String, (String, usize, usize)> = BTreeMap::new();
    for t in d.tablet_list() {
        let e =
            tables
                .entry(t.meta().table_id.clone())
                .or_insert((t.meta().table_name.clone(), 0, 0));
        e.1 += 1;
        e.2 += usize::from(t.status().is_leader);
    }
    json!({
        "tables": tables.into_iter().map(|(id, (name, n, leaders))| json!({
            "id": id, "name": name, "tablet_replicas": n, "leaders": leaders,
        })).collect::<Vec<_>>(),
    })
}

/// Dbserver gauges for `/prometheus-metrics`.
pub(crate) fn register_metrics(d: &Arc<DbServer>) {
    let weak = Arc::downgrade(d);
    d.metrics.register_fn(move |s| {
        let Some(d) = weak.upgrade() else { return };
        let tablets = d.tablet_list();
        let leaders = tablets.iter().filter(|t| t.status().is_leader).count();
        s.gauge(
            "aisql_dbserver_tablets",
            "Tablet replicas hosted",
            &[],
            tablets.len() as f64,
        );
        s.gauge(
            "aisql_dbserver_tablet_leaders",
            "Tablet replicas that lead their Raft group",
            &[],
            leaders as f64,
        );
        let bytes: u64 = d
            .sizes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum();
        s.gauge(
            "aisql_dbserver_tablet_data_bytes",
            "Bytes of row versions of all hosted tablets before compression (measured every 30 s)",
            &[],
            bytes as f64,
        );
    });
}

/// The whole web app of a dbserver. `flags` are the effective flags for `/varz`.
pub fn router(d: Arc<DbServer>, flags: Vec<(String, String)>) -> Router {
    let site = Arc::new(Site {
        server: format!("bm-dbserver {}", d.config.rpc_addr),
        nav: NAV.to_vec(),
        flags,
        metrics: d.metrics(),
        started: d.started,
    });
    macro_rules! sync_route {
        ($f:ident) => {{
            let (d, s) = (d.clone(), site.clone());
            get(move || std::future::ready($f(&d, &s)))
        }};
    }
    macro_rules! json_route {
        ($f:ident) => {{
            let d = d.clone();
            get(move || std::future::ready(Json($f(&d))))
        }};
    }
    let (td, ts) = (d.clone(), site.clone());
    let pages = Router::new()
        .route("/", sync_route!(home))
        .route("/tablets", sync_route!(tablets_page))
        .route(
            "/tablet",
            get(move |Query(q): Query<HashMap<String, String>>| {
                std::future::ready(tablet_page(&td, &ts, &q))
            }),
        )
        .route("/rpcz", sync_route!(rpcz))
        .route("/api/v1/health-check", json_route!(health_json))
        .route("/api/v1/servers", json_route!(servers_json))
        .route("/api/v1/tables", json_route!(tables_json))
        .route("/api/v1/tablets", json_route!(tablets_json));
    web::router(site, pages)
}
