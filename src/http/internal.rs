//! `POST /_2bot/internal/runs/{run_id}/{get|cancel|steer|answer|run}`: the other
//! instances of this service asking about a run this instance holds (answering its
//! approvals among them), or resuming a thread it holds (`crate::peer`).
//!
//! It sits beside `/mcp` on the same listener but outside the bearer-token layers: a
//! caller's token is no credential here, only a signature made with the instances'
//! shared secret (`TWOBOT_INSTANCE_SECRET`) is. Without one the answer is 401 and says
//! which part was missing or wrong (nothing secret: the reason names a header or a
//! clock, never the expected value); with peering off (no secret) the route is 404.
//! Refusals use the edge's body shape, `{"error": code, "reason": text}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use http::{HeaderMap, StatusCode, Uri};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::peer::sign::{self, Nonces, Presented};
use crate::peer::{Action, Forwarded, PREFIX};
use crate::runs::Runs;
use crate::state::now_ms;

struct Internal {
    runs: Runs,
    nonces: Nonces,
    /// Stops runs started here for another instance (shutdown's kill stage).
    stop: CancellationToken,
}

/// The internal routes, answering for `runs`; a forwarded run stops when `stop` fires.
pub fn routes(runs: Runs, stop: CancellationToken) -> Router {
    let state = Arc::new(Internal {
        runs,
        nonces: Nonces::default(),
        stop,
    });
    Router::new().route(
        &format!("{PREFIX}/{{run_id}}/{{action}}"),
        post(forwarded).with_state(state),
    )
}

fn refuse(status: StatusCode, code: &str, reason: String) -> Response {
    (status, Json(json!({"error": code, "reason": reason}))).into_response()
}

async fn forwarded(
    State(internal): State<Arc<Internal>>,
    Path((run_id, action)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(secret) = internal.runs.peers().and_then(|p| p.secret()) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            "this instance takes no forwarded calls (TWOBOT_INSTANCE_SECRET is not set)".into(),
        );
    };
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let presented = Presented {
        from: header(sign::H_PEER),
        time: header(sign::H_TIME),
        nonce: header(sign::H_NONCE),
        signature: header(sign::H_SIGNATURE),
    };
    let checked = sign::verify(
        secret.bytes(),
        "POST",
        uri.path(),
        &presented,
        &body,
        now_ms(),
        &internal.nonces,
    );
    let stamp = match checked {
        Ok(stamp) => stamp,
        Err(rejected) => {
            tracing::warn!(reason = %rejected, path = %uri.path(), "an unsigned or badly signed internal request was refused");
            return refuse(
                StatusCode::UNAUTHORIZED,
                "peer_unauthorized",
                rejected.to_string(),
            );
        }
    };
    let Some(action) = Action::parse(&action) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no internal action {action:?}; get, cancel, steer, answer or run"),
        );
    };
    let call: Forwarded = match serde_json::from_slice(&body) {
        Ok(call) => call,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the forwarded call is unreadable: {e}"),
            );
        }
    };
    tracing::info!(from = %stamp.from, %run_id, action = action.as_str(), "a forwarded follow-up");
    let answer =
        crate::mcp::forward::answer(&internal.runs, action, &run_id, call, &internal.stop).await;
    Json(answer).into_response()
}
