//! `web` — the HTTP side of every AiSQL server (axum). A server describes itself through
//! [`WebSource`]; [`serve`] answers `/` (a status page), `/api/v1/health-check`,
//! `/api/v1/version` and `/prometheus-metrics` (text exposition format), and 404 for
//! everything else. The full admin UI (issue 4) grows here.

use std::net::TcpListener;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

/// What a server shows on its web port.
pub trait WebSource: Send + Sync + 'static {
    /// Page title, e.g. "bm-mserver 127.0.0.1:11000".
    fn title(&self) -> String;
    /// HTML body of the status page (already escaped).
    fn home_html(&self) -> String;
    /// Metrics in the Prometheus text exposition format.
    fn metrics(&self) -> String;
}

/// Escape text for HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn home(State(src): State<Arc<dyn WebSource>>) -> Html<String> {
    let title = escape(&src.title());
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head>\
         <body><h1>{title}</h1>{}</body></html>",
        src.home_html()
    ))
}

async fn metrics(State(src): State<Arc<dyn WebSource>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        src.metrics(),
    )
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn version() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "version": env!("CARGO_PKG_VERSION"), "product": "AiSQL" }))
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "not found\n")
}

/// The router for `src`.
pub fn router(src: Arc<dyn WebSource>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/prometheus-metrics", get(metrics))
        .route("/api/v1/health-check", get(health))
        .route("/api/v1/version", get(version))
        .fallback(not_found)
        .with_state(src)
}

/// Serve `src` on an already bound listener until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    src: Arc<dyn WebSource>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    axum::serve(listener, router(src))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Append one gauge or counter sample (with HELP and TYPE lines) to `out`.
pub fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}
