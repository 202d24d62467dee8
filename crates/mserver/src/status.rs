//! The `StatusService` RPC of an mserver: its node id, web address, catalog Raft role and
//! progress. Any mserver answers (leader or not); peers use it to link to each other's web UI.

use std::sync::Arc;
use std::time::Duration;

use rpc::status::status_service_client::StatusServiceClient;
use rpc::status::status_service_server::StatusService;
use rpc::status::{GetStatusRequest, GetStatusResponse};
use tonic::{Request, Response, Status};

use crate::Mserver;

pub(crate) struct Service(pub Arc<Mserver>);

#[tonic::async_trait]
impl StatusService for Service {
    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        Ok(Response::new(self.0.own_status()))
    }
}

impl Mserver {
    /// What this mserver says about itself.
    pub fn own_status(&self) -> GetStatusResponse {
        let m = self.raft_metrics();
        GetStatusResponse {
            node_id: self.node_id,
            rpc_addr: self.config.rpc_addr.clone(),
            http_addr: self.config.http_addr.clone(),
            role: crate::web_ui::role_name(m.state).into(),
            term: m.current_term,
            last_applied: m.last_applied.map(|l| l.index).unwrap_or(0),
            last_log_index: m.last_log_index.unwrap_or(0),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_ms: self.uptime().as_millis() as u64,
        }
    }

    /// Ask the mserver at `rpc_addr` for its status (this one answers itself); `None` if it
    /// does not answer within a second.
    pub async fn peer_status(&self, rpc_addr: &str) -> Option<GetStatusResponse> {
        if rpc_addr == self.config.rpc_addr {
            return Some(self.own_status());
        }
        let ch = self.pool.get(rpc_addr).ok()?;
        let mut c = StatusServiceClient::new(ch);
        match tokio::time::timeout(Duration::from_secs(1), c.get_status(GetStatusRequest {})).await
        {
            Ok(Ok(r)) => Some(r.into_inner()),
            _ => None,
        }
    }
}
