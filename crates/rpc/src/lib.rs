//! `rpc` — AiSQL's node-to-node RPC: the generated tonic code for the `.proto` services in
//! `proto/` (Raft transport, mserver catalog, tablet data) and a pool of channels keyed by
//! address, shared by every caller in a process.

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

mod pool;
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
