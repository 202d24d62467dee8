//! [`ChannelPool`]: one lazily connected HTTP/2 channel per peer address, shared by every
//! client in the process (tonic channels multiplex concurrent calls), and the [`WirePool`]
//! of the hot calls' framed connections.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::WirePool;

/// Channels keyed by `host:port`.
#[derive(Clone, Default)]
pub struct ChannelPool {
    inner: Arc<RwLock<HashMap<String, Channel>>>,
    wire: WirePool,
}

impl ChannelPool {
    pub fn new() -> Self {
        Self::default()
    }

    /// The framed connections of the hot calls ([`crate::wire`]).
    pub fn wire(&self) -> &WirePool {
        &self.wire
    }

    /// The channel to `addr` (`host:port`), created on first use. Connection happens lazily
    /// on the first call; failures surface as `tonic::Status` UNAVAILABLE.
    pub fn get(&self, addr: &str) -> Result<Channel, tonic::Status> {
        if let Some(c) = self
            .inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(addr)
        {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| tonic::Status::invalid_argument(format!("bad address {addr}: {e}")))?
            .connect_timeout(Duration::from_millis(1000))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let channel = endpoint.connect_lazy();
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        Ok(map.entry(addr.to_owned()).or_insert(channel).clone())
    }
}
