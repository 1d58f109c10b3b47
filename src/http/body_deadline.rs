//! A deadline for reading a request's body: hyper's header deadline stops at the headers.
//!
//! Without it a client that sends its headers promptly and then trickles the body one
//! byte at a time holds a connection (and a place under `TWOBOT_MAX_CONNECTIONS`) for as
//! long as it likes; a handful of them turn even `/healthz` into 503. [`BodyDeadlineLayer`]
//! wraps every request body that is not already complete in a [`TimedBody`]: once the
//! deadline (`TWOBOT_BODY_READ_TIMEOUT_SEC`, counted from when the headers were in) has
//! passed, the body yields an error to whoever reads it, and the response the inner
//! service made of that error is replaced by a `408` with the project's JSON error body
//! and `Connection: close`, so hyper closes the connection after sending it.
//!
//! The same wrapper notes whether the body was read to its end. A response made without
//! reading it (a 401 before the JSON-RPC body, a 429) leaves bytes hyper may not be able
//! to drain, and then hyper closes the connection right after the response. Saying
//! `Connection: close` on such a response tells the client: without it, a client's pool
//! (httpx's, the Python SDK's) sent its next request on a socket the server was closing
//! and got "Server disconnected without sending a response".

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use http_body::{Body as _, Frame, SizeHint};
use tower::{Layer, Service};

use super::rescue::{self, Rejection};

/// The error a [`TimedBody`] yields once its deadline has passed.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body was not received within {0:?} (TWOBOT_BODY_READ_TIMEOUT_SEC)")]
pub struct BodyTimedOut(pub Duration);

/// See the module docs.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadlineLayer {
    deadline: Duration,
}

impl BodyDeadlineLayer {
    /// Bodies must be complete `deadline` after their request's headers arrived.
    pub fn new(deadline: Duration) -> Self {
        Self { deadline }
    }
}

impl<S> Layer<S> for BodyDeadlineLayer {
    type Service = BodyDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyDeadline {
            inner,
            deadline: self.deadline,
        }
    }
}

/// The service of [`BodyDeadlineLayer`].
#[derive(Debug, Clone)]
pub struct BodyDeadline<S> {
    inner: S,
    deadline: Duration,
}

/// What a [`TimedBody`] tells the layer that made it: its deadline passed, or it was
/// read to its end.
#[derive(Debug, Default)]
pub struct Outcome {
    expired: AtomicBool,
    finished: AtomicBool,
}

/// A request body that fails once its deadline has passed.
pub struct TimedBody {
    inner: Body,
    /// Made at the first wait: a body already in hand (most are) never arms a timer.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    due: tokio::time::Instant,
    deadline: Duration,
    outcome: Arc<Outcome>,
}

impl TimedBody {
    /// `inner`, failing `deadline` from now; what happened is told in `outcome`.
    pub fn new(inner: Body, deadline: Duration, outcome: Arc<Outcome>) -> Self {
        Self {
            inner,
            sleep: None,
            due: tokio::time::Instant::now() + deadline,
            deadline,
            outcome,
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if frame.is_none() || this.inner.is_end_stream() {
                this.outcome.finished.store(true, Ordering::Release);
            }
            return Poll::Ready(frame);
        }
        let due = this.due;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.outcome.expired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(this.deadline)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The `408` sent instead of whatever the inner service made of a timed-out body.
pub fn timed_out(deadline: Duration) -> Response<Body> {
    rescue::render(&Rejection::BodyTimedOut(deadline))
}

impl<S, B> Service<Request<Body>> for BodyDeadline<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if request.body().is_end_stream() {
            // GETs and empty bodies: nothing to wait for, no timer.
            let response = self.inner.call(request);
            return Box::pin(async move { Ok(response.await?.map(Body::new)) });
        }
        let deadline = self.deadline;
        let outcome = Arc::new(Outcome::default());
        let request =
            request.map(|body| Body::new(TimedBody::new(body, deadline, outcome.clone())));
        // Nothing to decide first, so the ready inner service serves it now: no clone.
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            if outcome.expired.load(Ordering::Acquire) {
                tracing::info!(
                    deadline_sec = deadline.as_secs(),
                    "request body not received in time; 408 and close"
                );
                return Ok(timed_out(deadline));
            }
            let mut response = response.map(Body::new);
            if !outcome.finished.load(Ordering::Acquire) {
                response
                    .headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http_body_util::BodyExt;

    /// A body that never sends anything, failing `deadline` from now, and its outcome.
    fn stalled_for(deadline: Duration) -> (TimedBody, Arc<Outcome>) {
        let outcome = Arc::new(Outcome::default());
        let stalled = futures::stream::pending::<Result<Frame<Bytes>, axum::Error>>();
        let body = TimedBody::new(
            Body::new(http_body_util::StreamBody::new(stalled)),
            deadline,
            outcome.clone(),
        );
        (body, outcome)
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_fails_at_its_deadline_and_a_complete_one_does_not() {
        let (body, outcome) = stalled_for(Duration::from_secs(2));
        let error = body.collect().await.err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("the request body was not received within 2s (TWOBOT_BODY_READ_TIMEOUT_SEC)")
        );
        assert!(outcome.expired.load(Ordering::Acquire));

        let outcome = Arc::new(Outcome::default());
        let body = TimedBody::new(Body::from("{}"), Duration::from_secs(2), outcome.clone());
        assert_eq!(
            body.collect().await.ok().map(|c| c.to_bytes()),
            Some(Bytes::from("{}"))
        );
        assert!(!outcome.expired.load(Ordering::Acquire));
        assert!(outcome.finished.load(Ordering::Acquire));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_counts_from_when_the_body_was_wrapped_not_from_its_first_wait() {
        let (body, outcome) = stalled_for(Duration::from_secs(2));
        tokio::time::advance(Duration::from_millis(1500)).await;
        let first_wait = tokio::time::Instant::now();
        assert!(body.collect().await.is_err());
        assert_eq!(first_wait.elapsed(), Duration::from_millis(500));
        assert!(outcome.expired.load(Ordering::Acquire));
    }

    /// The `Connection` header the layer sets on a response to a one-chunk body, when
    /// the inner service reads the body (`read`) or answers without reading it.
    async fn connection_header(read: bool) -> Option<String> {
        let inner = tower::service_fn(move |request: Request<Body>| async move {
            if read {
                let _ = request.into_body().collect().await;
            }
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        });
        let mut service = BodyDeadlineLayer::new(Duration::from_secs(5)).layer(inner);
        let (mut tx, body) =
            futures::channel::mpsc::channel::<Result<Frame<Bytes>, axum::Error>>(1);
        tx.try_send(Ok(Frame::data(Bytes::from("{\"jsonrpc\""))))
            .unwrap();
        drop(tx);
        let request = Request::new(Body::new(http_body_util::StreamBody::new(body)));
        let response = service.call(request).await.unwrap();
        response
            .headers()
            .get(http::header::CONNECTION)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[tokio::test]
    async fn a_response_made_without_reading_the_body_says_the_connection_closes() {
        assert_eq!(connection_header(false).await.as_deref(), Some("close"));
        assert_eq!(connection_header(true).await, None);
    }

    #[test]
    fn the_408_closes_the_connection_and_names_the_variable() {
        let response = timed_out(Duration::from_secs(30));
        assert_eq!(response.status(), http::StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.headers()[http::header::CONNECTION], "close");
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            "application/json"
        );
    }
}
