//! `web` — the HTTP side of every AiSQL server (axum + maud, server-rendered, no scripts).
//!
//! A server describes itself with a [`Site`] (its name, navigation, effective flags and its
//! metrics [`Registry`]) and adds its own pages to the [`router`], which answers on every
//! port:
//!
//! * `/prometheus-metrics` — the site's registry in the Prometheus text format 0.0.4;
//! * `/api/v1/health-check`, `/api/v1/version` — JSON;
//! * `/varz` (effective flags) and `/logs` (recent log lines from [`logs`]), when the site
//!   has navigation (the admin UIs; the API metrics ports have none);
//! * 404 for every other path.
//!
//! Page helpers: [`page`] wraps a body in the common layout, [`fmt_bytes`], [`fmt_age`] and
//! [`fmt_time`] format values for people.

pub mod logs;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
pub use common::metrics::Registry;
pub use maud::{html, Markup, PreEscaped};

/// What every web port of a server shares.
pub struct Site {
    /// Shown in every page header, e.g. "bm-mserver 127.0.0.1:11000".
    pub server: String,
    /// Navigation links `(path, label)`; empty on the API metrics ports.
    pub nav: Vec<(&'static str, &'static str)>,
    /// Effective flags `(name, value)`, shown on `/varz`.
    pub flags: Vec<(String, String)>,
    /// The metrics served on `/prometheus-metrics`.
    pub metrics: Arc<Registry>,
    pub started: Instant,
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}\
header{background:#1d3557;color:#fff;padding:.6em 1.5em}\
header a{color:#fff;margin-right:1.2em;text-decoration:none}\
header b{margin-right:2em}main{padding:1em 1.5em}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f1f3f5}.ok{color:#2b8a3e}.bad{color:#c92a2a;font-weight:bold}\
.note{background:#fff3bf;padding:.5em 1em;border-left:4px solid #f59f00}\
pre{font-size:12px;white-space:pre-wrap}code{font-size:90%}";

/// A whole page: the common header and navigation around `body`.
pub fn page(site: &Site, title: &str, body: Markup) -> Html<String> {
    let doc = html! {
        (maud::DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                title { (title) " · " (site.server) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    b { (site.server) }
                    @for (path, label) in &site.nav {
                        a href=(path) { (label) }
                    }
                    a href="/prometheus-metrics" { "Metrics" }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    Html(doc.into_string())
}

/// An error page with `status`.
pub fn error_page(site: &Site, status: StatusCode, message: &str) -> Response {
    (
        status,
        page(site, status.as_str(), html! { p { (message) } }),
    )
        .into_response()
}

/// `1536` → `1.5 KiB`.
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A duration for people: `850 ms`, `12.3 s`, `4 min 2 s`, `3 h 7 min`, `2 d 1 h`.
pub fn fmt_age(d: Duration) -> String {
    let s = d.as_secs();
    if s < 1 {
        format!("{} ms", d.as_millis())
    } else if s < 60 {
        format!("{:.1} s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{} h {} min", s / 3600, s % 3600 / 60)
    } else {
        format!("{} d {} h", s / 86_400, s % 86_400 / 3600)
    }
}

/// UTC time with milliseconds: `2026-11-22 03:24:00.123`.
pub fn fmt_time(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

async fn metrics(site: Arc<Site>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        site.metrics.encode(),
    )
        .into_response()
}

fn varz(site: &Site) -> Html<String> {
    page(
        site,
        "Flags",
        html! {
            p { "Effective value of every flag of this process (given or default)." }
            table {
                tr { th { "flag" } th { "value" } }
                @for (k, v) in &site.flags {
                    tr { td { code { "--" (k) } } td { code { (v) } } }
                }
            }
        },
    )
}

fn logs_page(site: &Site) -> Html<String> {
    let lines = logs::recent();
    page(
        site,
        "Logs",
        html! {
            p { "The last " (lines.len()) " log lines of this process (newest last; at most "
                (logs::CAPACITY) " are kept)." }
            pre {
                @for l in &lines {
                    (fmt_time(l.time)) " " (l.level) " " (l.text) "\n"
                }
            }
        },
    )
}

/// The JSON reply of `/api/v1/version`.
pub fn version_json() -> serde_json::Value {
    serde_json::json!({ "product": "AiSQL", "version": env!("CARGO_PKG_VERSION") })
}

/// `pages` plus what every port answers (see the crate doc); unknown paths get 404.
pub fn router(site: Arc<Site>, pages: Router) -> Router {
    let s = site.clone();
    let mut r = pages
        .route("/prometheus-metrics", get(move || metrics(s.clone())))
        .route(
            "/api/v1/version",
            get(|| async { axum::Json(version_json()) }),
        );
    if !site.nav.is_empty() {
        let s = site.clone();
        r = r.route("/varz", get(move || std::future::ready(varz(&s))));
        let s = site.clone();
        r = r.route("/logs", get(move || std::future::ready(logs_page(&s))));
    }
    r.fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
}

/// The health check every server without its own answers with.
pub fn health_json(site: &Site) -> serde_json::Value {
    serde_json::json!({
        "status": "ok",
        "server": site.server,
        "uptime_seconds": site.started.elapsed().as_secs(),
    })
}

/// The whole app of an API metrics port: a home page pointing at `/prometheus-metrics`.
pub fn metrics_only(site: Arc<Site>) -> Router {
    let s = site.clone();
    let h = site.clone();
    let pages = Router::new()
        .route(
            "/",
            get(move || {
                std::future::ready(page(
                    &s,
                    "Metrics",
                    html! { p { "Metrics at " a href="/prometheus-metrics" { "/prometheus-metrics" } "." } },
                ))
            }),
        )
        .route(
            "/api/v1/health-check",
            get(move || std::future::ready(axum::Json(health_json(&h)))),
        );
    router(site, pages)
}

/// Serve `app` on an already bound listener until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
        assert_eq!(fmt_age(Duration::from_millis(850)), "850 ms");
        assert_eq!(fmt_age(Duration::from_secs(242)), "4 min 2 s");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_318_042_390);
        assert_eq!(fmt_time(t), "2026-11-22 03:27:22.390");
        assert_eq!(fmt_time(SystemTime::UNIX_EPOCH), "1970-01-01 00:00:00.000");
    }
}
