//! The `TabletService` RPC of a dbserver: reads and writes on tablet leaders, tablet
//! lifecycle, replica status. Application errors travel in the reply's `status`. Every read,
//! scan and write is counted and timed in [`crate::OpMetrics`] (in-process calls too).

use std::sync::Arc;
use std::time::Instant;

use common::{HybridTime, StatusCode};
use rpc::mserver::CreateTabletRequest;
use rpc::tablet::tablet_service_server::TabletService;
use rpc::tablet::*;
use storage::mvcc::ScanRange;
use tablet::{Tablet, TabletError, WriteOp};
use tonic::{Request, Response, Status};

use crate::DbServer;

/// Largest number of rows one scan reply carries.
const MAX_SCAN_ROWS: usize = 10_000;

#[derive(Clone)]
pub(crate) struct Service(pub Arc<DbServer>);

/// A dbserver's wire protocol ([`rpc::wire`]): AppendEntries to the Raft router, the data
/// calls to [`Service`], each the same handler its gRPC twin runs.
pub(crate) struct Wire(pub Service);

/// Decode a prost request, run the gRPC handler `f` on it, encode its reply.
fn unary<Req, Resp, F, Fut>(payload: Vec<u8>, f: F) -> rpc::wire::WireFuture
where
    Req: prost::Message + Default + 'static,
    Resp: prost::Message,
    F: FnOnce(Request<Req>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Response<Resp>, Status>> + Send + 'static,
{
    Box::pin(async move {
        let req = Req::decode(&payload[..])
            .map_err(|e| Status::invalid_argument(format!("malformed request: {e}")))?;
        Ok(prost::Message::encode_to_vec(
            &f(Request::new(req)).await?.into_inner(),
        ))
    })
}

impl rpc::WireHandler for Wire {
    fn call(&self, method: rpc::wire::Method, payload: Vec<u8>) -> rpc::wire::WireFuture {
        use rpc::wire::Method;
        let s = self.0.clone();
        match method {
            Method::Append => {
                let router = s.0.env.router.clone();
                Box::pin(async move { router.wire_append(payload).await })
            }
            Method::Write => unary(payload, move |r| async move { s.write(r).await }),
            Method::WriteMany => unary(payload, move |r| async move { s.write_many(r).await }),
            Method::Read => unary(payload, move |r| async move { s.read(r).await }),
            Method::Scan => unary(payload, move |r| async move { s.scan(r).await }),
            Method::Ping => Box::pin(async { Ok(Vec::new()) }),
        }
    }
}

fn tablet_status(e: &TabletError) -> Option<rpc::common::Status> {
    match e {
        TabletError::NotLeader { leader_addr, .. } => rpc::not_leader(leader_addr.clone()),
        other => rpc::status(other.status(), other.to_string()),
    }
}

impl Service {
    fn tablet(
        &self,
        id: &str,
        propagated: u64,
    ) -> Result<Arc<Tablet>, Option<rpc::common::Status>> {
        if propagated != 0 {
            self.0.clock.update(HybridTime(propagated));
        }
        self.0.tablet(id).ok_or_else(|| {
            rpc::status(
                StatusCode::NotFound,
                format!("tablet {id} is not on this server"),
            )
        })
    }
}

fn write_op(o: KvOp) -> WriteOp {
    let txn: txn::TxnId = o.txn_id.as_slice().try_into().unwrap_or_default();
    let condition = match Condition::try_from(o.condition).unwrap_or(Condition::None) {
        Condition::None => tablet::Condition::None,
        Condition::IfAbsent => tablet::Condition::IfAbsent,
        Condition::IfPresent => tablet::Condition::IfPresent,
        Condition::IfEquals => tablet::Condition::IfEquals(o.expected),
        Condition::IntentWrite | Condition::IntentRead if !o.status_table_id.is_empty() => {
            tablet::Condition::IntentAt {
                txn,
                since_ht: o.txn_ht,
                read: o.condition == Condition::IntentRead as i32,
                status_at: txn::StatusAt {
                    table_id: o.status_table_id,
                    tablet: o.status_tablet,
                },
            }
        }
        Condition::IntentWrite | Condition::IntentRead => tablet::Condition::Intent {
            txn,
            since_ht: o.txn_ht,
            read: o.condition == Condition::IntentRead as i32,
        },
        Condition::TxnStatus => tablet::Condition::TxnStatus {
            txn,
            expected: (!o.expected.is_empty()).then_some(o.expected),
            commit_min: o.txn_ht,
        },
        Condition::TxnStatusDelete => tablet::Condition::ForgetStatus { txn },
        Condition::ResolveCommit => tablet::Condition::Resolve {
            txn,
            commit_ht: Some(o.txn_ht),
        },
        Condition::ResolveAbort => tablet::Condition::Resolve {
            txn,
            commit_ht: None,
        },
        Condition::Unchanged | Condition::UnchangedCheck => tablet::Condition::Unchanged {
            since_ht: o.txn_ht,
            check_only: o.condition == Condition::UnchangedCheck as i32,
        },
        Condition::RangeUnchanged => tablet::Condition::RangeUnchanged {
            txn,
            since_ht: o.txn_ht,
            end: o.expected,
            raise_to: o.raise_to_ht,
        },
    };
    WriteOp {
        key: o.key,
        value: (!o.delete).then_some(o.value),
        ttl_ms: o.ttl_ms,
        expire_at_us: o.expire_at_us,
        condition,
    }
}

fn conflict_msg(c: &Option<tablet::Conflict>) -> Option<rpc::tablet::Conflict> {
    c.as_ref().map(|c| match c {
        tablet::Conflict::Locked {
            txn,
            key,
            written_at_us,
            status_at,
        } => locked_msg(txn, key, *written_at_us, status_at.as_ref()),
        tablet::Conflict::Newer { key } => rpc::tablet::Conflict {
            locked: false,
            key: key.clone(),
            ..Default::default()
        },
    })
}

/// The message of a `Locked` conflict.
fn locked_msg(
    txn: &txn::TxnId,
    key: &[u8],
    written_at_us: u64,
    status_at: Option<&txn::StatusAt>,
) -> rpc::tablet::Conflict {
    rpc::tablet::Conflict {
        locked: true,
        txn_id: txn.to_vec(),
        key: key.to_vec(),
        written_at_us,
        status_table_id: status_at.map(|a| a.table_id.clone()).unwrap_or_default(),
        status_tablet: status_at.map(|a| a.tablet).unwrap_or_default(),
    }
}

/// A read error that the client resolves itself: an intent in the way, or a restart.
fn read_conflict(e: &TabletError) -> Option<(Option<rpc::tablet::Conflict>, u64)> {
    match e {
        TabletError::Locked {
            txn,
            key,
            written_at_us,
            status_at,
            ..
        } => Some((
            Some(locked_msg(txn, key, *written_at_us, status_at.as_ref())),
            0,
        )),
        TabletError::ReadRestart { restart_ht, .. } => Some((None, restart_ht.0)),
        _ => None,
    }
}

/// A write's name for the tablet's retry filter (unset if the client gave none, or a
/// malformed one).
fn request_id(r: Option<&rpc::tablet::RequestId>) -> tablet::RequestId {
    match r.and_then(|r| Some((<[u8; 16]>::try_from(&r.client[..]).ok()?, r))) {
        Some((client, r)) => tablet::RequestId {
            client,
            seq: r.seq,
            min_running: r.min_running,
        },
        None => tablet::RequestId::default(),
    }
}

fn ht_opt(v: u64) -> Option<HybridTime> {
    (v != 0).then_some(HybridTime(v))
}

/// The data operations, timed by the `TabletService` methods that call them.
impl Service {
    async fn do_write(
        &self,
        request: Request<WriteRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        let req = request.into_inner();
        let t = match self.tablet(&req.tablet_id, req.propagated_ht) {
            Ok(t) => t,
            Err(status) => {
                return Ok(Response::new(WriteResponse {
                    status,
                    ..Default::default()
                }))
            }
        };
        let ops = req.ops.into_iter().map(write_op).collect();
        let id = request_id(req.request.as_ref());
        Ok(Response::new(match t.write_request(ops, id).await {
            Ok(o) => WriteResponse {
                status: None,
                ht: o.ht.0,
                applied: o.applied,
                conflict: conflict_msg(&o.conflict),
                resent: o.resent,
            },
            Err(e) => WriteResponse {
                status: tablet_status(&e),
                ..Default::default()
            },
        }))
    }

    async fn do_write_many(
        &self,
        request: Request<WriteManyRequest>,
    ) -> Result<Response<WriteManyResponse>, Status> {
        let req = request.into_inner();
        let t = match self.tablet(&req.tablet_id, req.propagated_ht) {
            Ok(t) => t,
            Err(status) => {
                return Ok(Response::new(WriteManyResponse {
                    status,
                    outcomes: vec![],
                }))
            }
        };
        // Queued together, so the tablet's proposer folds them into one Raft entry.
        let writes = req
            .writes
            .into_iter()
            .map(|b| {
                let id = request_id(b.request.as_ref());
                (b.ops.into_iter().map(write_op).collect(), id)
            })
            .collect();
        let outcomes = match t.write_requests(writes).await {
            Ok(outcomes) => outcomes
                .into_iter()
                .map(|o| WriteOutcome {
                    ht: o.ht.0,
                    applied: o.applied,
                    conflict: conflict_msg(&o.conflict),
                    resent: o.resent,
                })
                .collect(),
            Err(e) => {
                return Ok(Response::new(WriteManyResponse {
                    status: tablet_status(&e),
                    outcomes: vec![],
                }))
            }
        };
        Ok(Response::new(WriteManyResponse {
            status: None,
            outcomes,
        }))
    }

    async fn do_read(
        &self,
        request: Request<ReadRequest>,
    ) -> Result<Response<ReadResponse>, Status> {
        let req = request.into_inner();
        let t = match self.tablet(&req.tablet_id, req.propagated_ht) {
            Ok(t) => t,
            Err(status) => {
                return Ok(Response::new(ReadResponse {
                    status,
                    ..Default::default()
                }))
            }
        };
        // Taken after the request arrived, so above every write acknowledged before it.
        let local_limit = self.0.clock.now().0;
        let read = async {
            if req.txn_status {
                let vals = t.txn_statuses(&req.keys).await?;
                Ok((vals, self.0.clock.now()))
            } else {
                t.read(&req.keys, ht_opt(req.read_ht), ht_opt(req.uncertain_until))
                    .await
            }
        };
        Ok(Response::new(match read.await {
            Ok((vals, ht)) => ReadResponse {
                status: None,
                values: vals
                    .into_iter()
                    .map(|v| match v {
                        Some(value) => MaybeValue { found: true, value },
                        None => MaybeValue {
                            found: false,
                            value: vec![],
                        },
                    })
                    .collect(),
                read_ht: ht.0,
                local_limit,
                ..Default::default()
            },
            Err(e) => match read_conflict(&e) {
                Some((locked, restart_ht)) => ReadResponse {
                    locked,
                    restart_ht,
                    local_limit,
                    ..Default::default()
                },
                None => ReadResponse {
                    status: tablet_status(&e),
                    ..Default::default()
                },
            },
        }))
    }

    async fn do_scan(
        &self,
        request: Request<ScanRequest>,
    ) -> Result<Response<ScanResponse>, Status> {
        let req = request.into_inner();
        let t = match self.tablet(&req.tablet_id, req.propagated_ht) {
            Ok(t) => t,
            Err(status) => {
                return Ok(Response::new(ScanResponse {
                    status,
                    ..Default::default()
                }))
            }
        };
        let limit = if req.limit == 0 {
            MAX_SCAN_ROWS
        } else {
            (req.limit as usize).min(MAX_SCAN_ROWS)
        };
        let range = ScanRange {
            start: req.start,
            end: req.end,
        };
        let local_limit = self.0.clock.now().0;
        Ok(Response::new(
            match t
                .scan(
                    &range,
                    limit,
                    ht_opt(req.read_ht),
                    ht_opt(req.uncertain_until),
                )
                .await
            {
                Ok((rows, ht)) => ScanResponse {
                    status: None,
                    more: rows.len() >= limit,
                    kvs: rows
                        .into_iter()
                        .map(|(key, value)| KeyValue { key, value })
                        .collect(),
                    read_ht: ht.0,
                    local_limit,
                    ..Default::default()
                },
                Err(e) => match read_conflict(&e) {
                    Some((locked, restart_ht)) => ScanResponse {
                        locked,
                        restart_ht,
                        local_limit,
                        ..Default::default()
                    },
                    None => ScanResponse {
                        status: tablet_status(&e),
                        ..Default::default()
                    },
                },
            },
        ))
    }
}

#[tonic::async_trait]
impl TabletService for Service {
    async fn write(
        &self,
        request: Request<WriteRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        let (t0, n) = (Instant::now(), 1);
        let r = self.do_write(request).await;
        let ok = matches!(&r, Ok(resp) if resp.get_ref().status.is_none());
        self.0.ops.observe("write", t0.elapsed(), n, ok);
        r
    }

    async fn write_many(
        &self,
        request: Request<WriteManyRequest>,
    ) -> Result<Response<WriteManyResponse>, Status> {
        let (t0, n) = (Instant::now(), request.get_ref().writes.len() as u64);
        let r = self.do_write_many(request).await;
        let ok = matches!(&r, Ok(resp) if resp.get_ref().status.is_none());
        self.0.ops.observe("write_many", t0.elapsed(), n, ok);
        r
    }

    async fn read(&self, request: Request<ReadRequest>) -> Result<Response<ReadResponse>, Status> {
        let (t0, n) = (Instant::now(), request.get_ref().keys.len() as u64);
        let r = self.do_read(request).await;
        let ok = matches!(&r, Ok(resp) if resp.get_ref().status.is_none());
        self.0.ops.observe("read", t0.elapsed(), n, ok);
        r
    }

    async fn scan(&self, request: Request<ScanRequest>) -> Result<Response<ScanResponse>, Status> {
        let (t0, n) = (Instant::now(), 1);
        let r = self.do_scan(request).await;
        let ok = matches!(&r, Ok(resp) if resp.get_ref().status.is_none());
        self.0.ops.observe("scan", t0.elapsed(), n, ok);
        r
    }

    async fn create_tablet(
        &self,
        request: Request<CreateTabletRequest>,
    ) -> Result<Response<CreateTabletResponse>, Status> {
        let status = match self.0.create_tablet(request.into_inner()).await {
            Ok(()) => None,
            Err(e) => rpc::status(StatusCode::Internal, e.to_string()),
        };
        Ok(Response::new(CreateTabletResponse { status }))
    }

    async fn delete_tablet(
        &self,
        request: Request<DeleteTabletRequest>,
    ) -> Result<Response<DeleteTabletResponse>, Status> {
        let status = match self.0.delete_tablet(&request.into_inner().tablet_id).await {
            Ok(()) => None,
            Err(e) => rpc::status(StatusCode::Internal, e.to_string()),
        };
        Ok(Response::new(DeleteTabletResponse { status }))
    }

    async fn list_tablet_replicas(
        &self,
        _request: Request<ListTabletReplicasRequest>,
    ) -> Result<Response<ListTabletReplicasResponse>, Status> {
        let tablets = self
            .0
            .tablet_list()
            .iter()
            .map(|t| {
                let s = t.status();
                let m = t.meta();
                let leader_uuid = s
                    .leader
                    .and_then(|l| m.peers.iter().find(|p| p.node_id == l))
                    .map(|p| p.server_uuid.clone())
                    .unwrap_or_default();
                TabletStatus {
                    tablet_id: m.tablet_id.clone(),
                    table_id: m.table_id.clone(),
                    table_name: m.table_name.clone(),
                    role: s.role.into(),
                    term: s.term,
                    last_applied: s.last_applied,
                    last_log_index: s.last_log_index,
                    hash_start: m.hash_start,
                    hash_end: m.hash_end,
                    peers: m
                        .peers
                        .iter()
                        .map(|p| rpc::common::Peer {
                            server_uuid: p.server_uuid.clone(),
                            node_id: p.node_id,
                            rpc_addr: p.rpc_addr.clone(),
                        })
                        .collect(),
                    leader_uuid,
                }
            })
            .collect();
        Ok(Response::new(ListTabletReplicasResponse {
            status: None,
            tablets,
        }))
    }
}
