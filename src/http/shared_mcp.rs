//! rmcp's HTTP service behind one `Arc`, so that the stack's per-request clones of it
//! cost one reference count.
//!
//! Every layer above rmcp clones its inner service for each request (the rule in
//! `ready.rs`), and axum clones the whole stack once more per request, so rmcp's
//! `StreamableHttpService` was cloned about seven times per request. Its clone copies
//! its configuration (a `CancellationToken`, whose clone takes a lock, and host lists)
//! and several `Arc`s: together with the drops, a few per cent of a stateless
//! `tools/list` (docs/profiles/README.md). rmcp's own `call` clones itself and runs
//! `handle(&self)`, which this does from the shared copy instead.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::SessionManager;
use tower::Service;

/// See the module docs.
pub struct SharedMcp<S, M>(Arc<StreamableHttpService<S, M>>);

impl<S, M> SharedMcp<S, M> {
    /// Share `service`.
    pub fn new(service: StreamableHttpService<S, M>) -> Self {
        Self(Arc::new(service))
    }
}

impl<S, M> Clone for SharedMcp<S, M> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<B, S, M> Service<Request<B>> for SharedMcp<S, M>
where
    B: http_body::Body + Send + 'static,
    B::Error: std::fmt::Display,
    B::Data: Send + 'static,
    S: rmcp::ServerHandler + Send + 'static,
    M: SessionManager,
{
    type Response = Response<BoxBody<Bytes, Infallible>>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // rmcp's service is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { Ok(service.handle(request).await) })
    }
}
