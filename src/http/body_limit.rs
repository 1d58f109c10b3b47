//! The 413 for a body whose `Content-Length` is over `TWOBOT_MAX_BODY_BYTES`, answered
//! so that a client which writes its whole body before reading (Python's `urllib`,
//! curl without `Expect`) can read it.
//!
//! Refusing from the header alone and closing at once leaves the rest of the body
//! unread; the kernel then resets the connection, and such a client sees a broken pipe
//! instead of the 413. Here the 413 is sent at once and the body is read and discarded
//! in the background, up to [`DRAIN_MAX_BYTES`] and [`DRAIN_MAX_TIME`], before the
//! connection closes (`Connection: close`). Past either bound the connection is closed
//! as before: a client cannot make the server read without end.
//!
//! Bodies without a `Content-Length` (chunked) are left to the inner limit
//! (tower-http's `RequestBodyLimitLayer` and `json_body`), which count as they read.

use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};

use super::rescue::{self, Rejection};

/// At most this much of an oversized body is read and discarded.
pub const DRAIN_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// At most this long is spent discarding one oversized body.
pub const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);

/// Builds [`BodyLimit`] (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct BodyLimitLayer {
    limit: u64,
}

impl BodyLimitLayer {
    /// Refuse bodies declared larger than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit: u64::try_from(limit).unwrap_or(u64::MAX),
        }
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BodyLimit {
            inner,
            limit: self.limit,
        }
    }
}

/// Answers 413 to a declared-oversized body and discards it (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct BodyLimit<S> {
    inner: S,
    limit: u64,
}

/// The decision: the declared length, when it is over `limit`.
pub fn over_limit(content_length: Option<&HeaderValue>, limit: u64) -> Option<u64> {
    content_length
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|len| *len > limit)
}

impl<S, B> Service<Request<Body>> for BodyLimit<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let Some(declared) = over_limit(
            request.headers().get(http::header::CONTENT_LENGTH),
            self.limit,
        ) else {
            let inner = self.inner.call(request);
            return Box::pin(async move { Ok(inner.await?.map(Body::new)) });
        };
        let limit = self.limit;
        tracing::debug!(declared, limit, "oversized body refused (413)");
        tokio::spawn(discard(request.into_body()));
        Box::pin(async move { Ok(too_large(declared, limit)) })
    }
}

/// Read and drop `body`, within the bounds; the connection closes when this returns.
async fn discard(body: Body) {
    let mut body = body.into_data_stream();
    let drain = async {
        let mut read = 0u64;
        while let Some(Ok(chunk)) = futures::StreamExt::next(&mut body).await {
            read += chunk.len() as u64;
            if read > DRAIN_MAX_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, drain).await;
}

fn too_large(declared: u64, limit: u64) -> Response<Body> {
    rescue::render(&Rejection::BodyTooLarge {
        declared: Some(declared),
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_declared_length_over_the_limit_is_refused() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(over_limit(Some(&v("1025")), 1024), Some(1025));
        assert_eq!(over_limit(Some(&v("1024")), 1024), None);
        assert_eq!(over_limit(None, 1024), None);
        // Not a number: hyper refuses it before us; never a 413 from here.
        assert_eq!(over_limit(Some(&v("lots")), 1024), None);
    }
}
