//! [`PolicyLayer`]: the policy decision as the outermost layer of the job stack.
//!
//! A refusal is a ready error: the inner services (queue, runner) are never called,
//! so nothing is spawned for a request that breaks the policy.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use tower::{Layer, Service};

use super::{Policy, check};
use crate::error::ToolError;
use crate::job::{Job, ToolCall};

/// Applies [`check`] to every [`ToolCall`] and forwards the resulting [`Job`].
#[derive(Clone, Debug)]
pub struct PolicyLayer {
    policy: Arc<Policy>,
}

impl PolicyLayer {
    /// A layer enforcing `policy`.
    pub fn new(policy: Arc<Policy>) -> Self {
        Self { policy }
    }
}

impl<S> Layer<S> for PolicyLayer {
    type Service = EnforcePolicy<S>;
    fn layer(&self, inner: S) -> Self::Service {
        EnforcePolicy {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service built by [`PolicyLayer`].
#[derive(Clone, Debug)]
pub struct EnforcePolicy<S> {
    inner: S,
    policy: Arc<Policy>,
}

impl<S> Service<ToolCall> for EnforcePolicy<S>
where
    S: Service<Job, Error = ToolError>,
{
    type Response = S::Response;
    type Error = ToolError;
    type Future = Either<Ready<Result<S::Response, ToolError>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: ToolCall) -> Self::Future {
        let principal = call.ctx.principal.label().to_owned();
        match check(&self.policy, &call.ctx.principal, &call.request) {
            Ok(spec) => {
                tracing::debug!(
                    principal = %principal,
                    sandbox = %spec.sandbox,
                    cwd = %spec.cwd.display(),
                    "policy allowed run"
                );
                Either::Right(self.inner.call(Job {
                    spec,
                    ctx: call.ctx,
                }))
            }
            Err(refusal) => {
                tracing::info!(
                    principal = %principal,
                    param = %refusal.param,
                    rule = %refusal.rule,
                    "policy refused run"
                );
                Either::Left(ready(Err(ToolError::Refused(refusal))))
            }
        }
    }
}
