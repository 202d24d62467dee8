//! [`MetricsLayer`]: a tower layer for tonic servers that counts and times every RPC per
//! `Service/Method` into [`common::metrics::RpcMetrics`] (calls, errors, latency, and the
//! in-flight and recent calls behind `/rpcz`).
//!
//! A call counts as failed when the reply is not HTTP 200 or carries a non-zero
//! `grpc-status` header (tonic sends handler errors that way). Application errors that travel
//! inside an OK reply (our `status` fields) count as OK calls. In-process calls through
//! `client::LocalTablets` bypass the network and are not seen here.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use common::metrics::RpcMetrics;

/// Adds [`RpcMetrics`] to a tonic server (`Server::builder().layer(...)`).
#[derive(Clone, Debug)]
pub struct MetricsLayer(pub RpcMetrics);

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// The service [`MetricsLayer`] wraps around a tonic router.
#[derive(Clone, Debug)]
pub struct MetricsService<S> {
    inner: S,
    metrics: RpcMetrics,
}

/// `/aisql.tablet.TabletService/Write` → `TabletService/Write`.
fn method_of(path: &str) -> &str {
    let path = path.trim_start_matches('/');
    let svc = path.split_once('/').map_or(path, |(svc, _)| svc);
    let short = svc.rsplit('.').next().unwrap_or(svc);
    // `short/method` is a suffix of `path`.
    &path[svc.len() - short.len()..]
}

impl<S, B, RB> tower::Service<http::Request<B>> for MetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let call = self.metrics.start(method_of(req.uri().path()));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            let ok = match &r {
                Ok(resp) => {
                    resp.status() == http::StatusCode::OK
                        && resp
                            .headers()
                            .get("grpc-status")
                            .is_none_or(|v| v.as_bytes() == b"0")
                }
                Err(_) => false,
            };
            call.finish(ok);
            r
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn method_names_drop_the_package() {
        assert_eq!(
            super::method_of("/aisql.tablet.TabletService/Write"),
            "TabletService/Write"
        );
        assert_eq!(super::method_of("/Svc/M"), "Svc/M");
        assert_eq!(super::method_of("/garbage"), "garbage");
    }
}
