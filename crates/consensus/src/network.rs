//! Raft messages over tonic. [`Network`] sends a group's messages to its peers (bincode in a
//! `RaftRequest`, over the server's shared channel pool); [`RaftRouter`] receives them for
//! every group on a server and hands each to its `Raft` by group id.
//!
//! AppendEntries, the hot path, go over the framed TCP protocol of [`rpc::wire`]: one
//! connection per peer shared by every group of the server, replies matched by id, no HTTP/2
//! framing (a unary gRPC call cost an HTTP/2 stream, two header blocks and a server task per
//! message; a gRPC stream still cost HTTP/2's framing and its connection task). Votes and
//! snapshots stay on gRPC.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use rpc::raft::raft_service_client::RaftServiceClient;
use rpc::raft::raft_service_server::RaftService;
use rpc::raft::{RaftReply, RaftRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{BasicNode, NodeId, Raft, TypeConfig};

/// Builds per-peer connections for one group.
#[derive(Clone)]
pub struct Network {
    group_id: String,
    pool: rpc::ChannelPool,
}

impl Network {
    pub fn new(group_id: String, pool: rpc::ChannelPool) -> Self {
        Self { group_id, pool }
    }
}

/// One group's connection to one peer.
pub struct Connection {
    group_id: String,
    target: NodeId,
    addr: String,
    pool: rpc::ChannelPool,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        Connection {
            group_id: self.group_id.clone(),
            target,
            addr: node.addr.clone(),
            pool: self.pool.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

impl Connection {
    async fn call<Req, Resp, E>(
        &self,
        method: Method,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let unreachable = |m: String| RPCError::Unreachable(Unreachable::new(&Msg(m)));
        let payload = bincode::serialize(req)
            .map_err(|e| RPCError::Network(NetworkError::new(&Msg(e.to_string()))))?;
        let ttl = option.hard_ttl().max(Duration::from_millis(50));
        let reply = match method {
            Method::Append => {
                let request = RaftRequest {
                    group_id: self.group_id.clone(),
                    payload,
                };
                self.pool
                    .wire()
                    .call::<_, RaftReply>(
                        &self.addr,
                        rpc::wire::Method::Append,
                        &request,
                        Some(ttl),
                    )
                    .await
                    .map_err(|e| {
                        unreachable(format!("raft rpc to {}: {}", self.addr, e.message()))
                    })?
            }
            Method::Vote | Method::Snapshot => {
                let channel = self
                    .pool
                    .get(&self.addr)
                    .map_err(|e| unreachable(e.to_string()))?;
                let mut client = RaftServiceClient::new(channel)
                    .max_decoding_message_size(256 << 20)
                    .max_encoding_message_size(256 << 20);
                let request = RaftRequest {
                    group_id: self.group_id.clone(),
                    payload,
                };
                let fut = async {
                    match method {
                        Method::Snapshot => client.install_snapshot(request).await,
                        _ => client.vote(request).await,
                    }
                };
                match tokio::time::timeout(ttl, fut).await {
                    Err(_) => {
                        return Err(unreachable(format!("raft rpc to {} timed out", self.addr)))
                    }
                    Ok(Err(status)) => {
                        return Err(unreachable(format!(
                            "raft rpc to {}: {}",
                            self.addr,
                            status.message()
                        )))
                    }
                    Ok(Ok(r)) => r.into_inner(),
                }
            }
        };
        if !reply.error.is_empty() {
            return Err(unreachable(reply.error));
        }
        let result: Result<Resp, RaftError<NodeId, E>> = bincode::deserialize(&reply.payload)
            .map_err(|e| {
                RPCError::Network(NetworkError::new(&Msg(format!("bad raft reply: {e}"))))
            })?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

#[derive(Clone, Copy)]
enum Method {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Method::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Method::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Method::Vote, &rpc, &option).await
    }
}

/// The Raft groups of one server, keyed by group id; also the server side of `RaftService`.
///
/// A freshly started server answers no Raft request for a quiet period (see
/// [`RaftRouter::quiet_for`]): before it crashed it may have promised a leader not to vote
/// for anyone else for `election_timeout_max`, and that promise lived only in memory. Staying
/// silent that long keeps the promise, so a leader's read lease stays valid across restarts.
#[derive(Clone, Default)]
pub struct RaftRouter {
    groups: Arc<RwLock<HashMap<String, Raft>>>,
    quiet_until: Arc<RwLock<Option<std::time::Instant>>>,
}

impl RaftRouter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuse every Raft request for `d` from now.
    pub fn quiet_for(&self, d: Duration) {
        *self.quiet_until.write().unwrap_or_else(|e| e.into_inner()) =
            Some(std::time::Instant::now() + d);
    }

    fn quiet(&self) -> bool {
        matches!(*self.quiet_until.read().unwrap_or_else(|e| e.into_inner()), Some(t) if std::time::Instant::now() < t)
    }

    pub fn register(&self, group_id: &str, raft: Raft) {
        self.groups
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(group_id.to_owned(), raft);
    }

    pub fn unregister(&self, group_id: &str) -> Option<Raft> {
        self.groups
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(group_id)
    }

    /// Every registered group, sorted by id.
    pub fn groups(&self) -> Vec<(String, Raft)> {
        let mut v: Vec<_> = self
            .groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn get(&self, group_id: &str) -> Option<Raft> {
        self.groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(group_id)
            .cloned()
    }

    fn decode<T: DeserializeOwned>(req: &RaftRequest) -> Result<T, tonic::Status> {
        bincode::deserialize(&req.payload)
            .map_err(|e| tonic::Status::invalid_argument(format!("malformed raft request: {e}")))
    }

    fn reply<T: Serialize>(v: &T) -> Result<tonic::Response<RaftReply>, tonic::Status> {
        let payload = bincode::serialize(v).map_err(|e| tonic::Status::internal(e.to_string()))?;
        Ok(tonic::Response::new(RaftReply {
            payload,
            error: String::new(),
        }))
    }

    /// The group a request is for, or the reply refusing it (quiet period, unknown group).
    fn route(&self, group: &str) -> Result<Raft, RaftReply> {
        let refuse = |error: String| RaftReply {
            payload: Vec::new(),
            error,
        };
        if self.quiet() {
            return Err(refuse("server is starting (raft quiet period)".into()));
        }
        self.get(group)
            .ok_or_else(|| refuse(format!("raft group {group} is not on this server")))
    }
}

impl RaftRouter {
    /// Handle one AppendEntries for `group`: the reply's payload, or a refusal.
    async fn append(&self, group: &str, payload: &[u8]) -> RaftReply {
        let raft = match self.route(group) {
            Ok(raft) => raft,
            Err(refusal) => return refusal,
        };
        let refuse = |error: String| RaftReply {
            payload: Vec::new(),
            error,
        };
        let rpc: AppendEntriesRequest<TypeConfig> = match bincode::deserialize(payload) {
            Ok(r) => r,
            Err(e) => return refuse(format!("malformed raft request: {e}")),
        };
        match bincode::serialize(&raft.append_entries(rpc).await) {
            Ok(payload) => RaftReply {
                payload,
                error: String::new(),
            },
            Err(e) => refuse(e.to_string()),
        }
    }
}

impl RaftRouter {
    /// The wire protocol's AppendEntries: a prost `RaftRequest` in, a `RaftReply` out.
    pub async fn wire_append(&self, payload: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
        use prost::Message;
        let req = RaftRequest::decode(&payload[..])
            .map_err(|e| tonic::Status::invalid_argument(format!("malformed raft request: {e}")))?;
        Ok(self
            .append(&req.group_id, &req.payload)
            .await
            .encode_to_vec())
    }
}

#[tonic::async_trait]
impl RaftService for RaftRouter {
    async fn append_entries(
        &self,
        request: tonic::Request<RaftRequest>,
    ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
        let req = request.into_inner();
        let raft = match self.route(&req.group_id) {
            Ok(raft) => raft,
            Err(refusal) => return Ok(tonic::Response::new(refusal)),
        };
        let rpc: AppendEntriesRequest<TypeConfig> = Self::decode(&req)?;
        Self::reply(&raft.append_entries(rpc).await)
    }

    async fn vote(
        &self,
        request: tonic::Request<RaftRequest>,
    ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
        let req = request.into_inner();
        let raft = match self.route(&req.group_id) {
            Ok(raft) => raft,
            Err(refusal) => return Ok(tonic::Response::new(refusal)),
        };
        let rpc: VoteRequest<NodeId> = Self::decode(&req)?;
        Self::reply(&raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: tonic::Request<RaftRequest>,
    ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
        let req = request.into_inner();
        let raft = match self.route(&req.group_id) {
            Ok(raft) => raft,
            Err(refusal) => return Ok(tonic::Response::new(refusal)),
        };
        let rpc: InstallSnapshotRequest<TypeConfig> = Self::decode(&req)?;
        Self::reply(&raft.install_snapshot(rpc).await)
    }
}

/// An mserver's wire protocol: AppendEntries only.
impl rpc::WireHandler for RaftRouter {
    fn call(&self, method: rpc::wire::Method, payload: Vec<u8>) -> rpc::wire::WireFuture {
        let router = self.clone();
        Box::pin(async move {
            match method {
                rpc::wire::Method::Append => router.wire_append(payload).await,
                m => Err(tonic::Status::unimplemented(format!(
                    "{} is not served here",
                    m.name()
                ))),
            }
        })
    }
}
