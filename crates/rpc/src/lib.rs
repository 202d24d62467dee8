//! `rpc` — AiSQL's node-to-node RPC: the generated tonic code for the `.proto` services in
//! `proto/` (Raft transport, mserver catalog, tablet data) and a pool of channels keyed by
//! address, shared by every caller in a process, and [`MetricsLayer`], which times every RPC
//! a server answers.

#![allow(clippy::all)]

pub mod common {
    tonic::include_proto!("aisql.common");
}
pub mod raft {
    tonic::include_proto!("aisql.raft");
}
pub mod mserver {
    tonic::include_proto!("aisql.mserver");
}
pub mod tablet {
    tonic::include_proto!("aisql.tablet");
}
pub mod status {
    tonic::include_proto!("aisql.status");
}

mod metrics_layer;
mod pool;
pub use metrics_layer::MetricsLayer;
pub use pool::ChannelPool;

/// Turn a bound std listener into the stream of accepted connections tonic serves, each with
/// `TCP_NODELAY` (tonic's own `tcp_nodelay` applies only to listeners it binds; without it,
/// replies wait for delayed ACKs, 40 ms).
pub fn incoming(
    listener: std::net::TcpListener,
) -> std::io::Result<impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>>> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    Ok(tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |s| {
            s.inspect(|s| {
                let _ = s.set_nodelay(true);
            })
        },
    ))
}

/// Accept connections on `listener` until `shutdown` resolves, running `handle` on each
/// (with `TCP_NODELAY`) as its own task; at most `max` at once, more wait for a slot. The
/// API servers (BEDIS, BSQL) share this loop.
pub async fn serve_connections<F, Fut>(
    listener: std::net::TcpListener,
    max: usize,
    shutdown: impl std::future::Future<Output = ()>,
    handle: F,
) -> std::io::Result<()>
where
    F: Fn(tokio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(max));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let Ok((sock, _)) = accepted else { continue };
                let _ = sock.set_nodelay(true);
                let Ok(permit) = slots.clone().acquire_owned().await else { return Ok(()) };
                let work = handle(sock);
                tokio::spawn(async move {
                    work.await;
                    drop(permit);
                });
            }
        }
    }
}

use ::common::StatusCode;

/// An OK status.
pub fn ok() -> Option<common::Status> {
    None
}

/// An error status.
pub fn status(code: StatusCode, message: impl Into<String>) -> Option<common::Status> {
    Some(common::Status {
        code: code as i32,
        message: message.into(),
        leader_hint: String::new(),
    })
}

/// A NOT_LEADER status carrying the leader's address if known.
pub fn not_leader(leader_hint: Option<String>) -> Option<common::Status> {
    Some(common::Status {
        code: StatusCode::NotLeader as i32,
        message: "not the leader".into(),
        leader_hint: leader_hint.unwrap_or_default(),
    })
}

/// The code of an optional status (absent = OK).
pub fn code_of(s: &Option<common::Status>) -> StatusCode {
    s.as_ref()
        .map(|s| StatusCode::from_i32(s.code))
        .unwrap_or(StatusCode::Ok)
}
