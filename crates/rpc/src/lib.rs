//! `rpc` — AiSQL's node-to-node RPC: the generated tonic code for the `.proto` services in
//! `proto/` (Raft transport, mserver catalog, tablet data) and a pool of channels keyed by
//! address, shared by every caller in a process, and [`MetricsLayer`], which times every RPC
//! a server answers; and [`wire`], the framed TCP protocol of the hot calls (AppendEntries,
//! the tablet data calls), which shares the RPC port with gRPC.

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
pub mod wire;
pub use metrics_layer::MetricsLayer;
pub use pool::ChannelPool;
pub use wire::{WireHandler, WirePool};

/// What a server answers on the [`wire`] protocol, and the metrics its calls count into.
#[derive(Clone)]
pub struct WireServer {
    pub handler: std::sync::Arc<dyn WireHandler>,
    pub metrics: ::common::metrics::RpcMetrics,
}

/// Turn a bound std listener into the stream of accepted connections tonic serves, each with
/// `TCP_NODELAY` (tonic's own `tcp_nodelay` applies only to listeners it binds; without it,
/// replies wait for delayed ACKs, 40 ms). With `wire`, a connection that opens with
/// [`wire::PREFACE`] is served by it instead (the two protocols share the port).
pub fn incoming(
    listener: std::net::TcpListener,
    wire: Option<WireServer>,
) -> std::io::Result<impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>>> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let sock = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => match accepted {
                    Ok((sock, _)) => sock,
                    Err(e) => {
                        // Out of descriptors and the like: wait, do not spin.
                        tracing::warn!(error = %e, "accept");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = sock.set_nodelay(true);
            match &wire {
                None => {
                    if tx.send(Ok(sock)).is_err() {
                        return;
                    }
                }
                Some(w) => {
                    tokio::spawn(sniff(sock, w.clone(), tx.clone()));
                }
            }
        }
    });
    Ok(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
}

/// Serve `sock` on the wire protocol if it opens with its preface, else hand it to tonic.
async fn sniff(
    mut sock: tokio::net::TcpStream,
    wire: WireServer,
    grpc: tokio::sync::mpsc::UnboundedSender<std::io::Result<tokio::net::TcpStream>>,
) {
    use tokio::io::AsyncReadExt;
    let patience = std::time::Duration::from_secs(10);
    let mut first = [0u8; 1];
    match tokio::time::timeout(patience, sock.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == wire::PREFACE[0] => {
            let mut preface = [0u8; 8];
            if let Ok(Ok(_)) = tokio::time::timeout(patience, sock.read_exact(&mut preface)).await {
                if &preface == wire::PREFACE {
                    wire::serve(sock, wire.handler, wire.metrics).await;
                }
            }
        }
        Ok(Ok(n)) if n > 0 => {
            let _ = grpc.send(Ok(sock));
        }
        _ => {}
    }
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
