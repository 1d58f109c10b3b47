//! The label sets of 2Bot's metrics. Every label value is an enum variant (or an HTTP
//! status code), so the number of series is bounded by construction and no principal,
//! path or prompt can ever become a label.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};

use crate::audit::Outcome;
use crate::run::{CallTransport, RunPath};

/// Labels of `twobot_runs_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// How the run ended.
    pub outcome: OutcomeLabel,
    /// stdio or http.
    pub transport: TransportLabel,
    /// direct, task or background.
    pub path: PathLabel,
}

macro_rules! label_enum {
    ($name:ident { $($variant:ident),+ $(,)? }) => {
        /// A label value mirroring the audit log's field of the same meaning.
        #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
        #[allow(non_camel_case_types)]
        pub enum $name { $($variant),+ }
    };
}

label_enum!(OutcomeLabel {
    ok,
    failed,
    timed_out,
    cancelled,
    refused,
    busy
});
label_enum!(TransportLabel { stdio, http });
label_enum!(PathLabel {
    direct,
    task,
    background
});

impl From<Outcome> for OutcomeLabel {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Ok => Self::ok,
            Outcome::Failed => Self::failed,
            Outcome::TimedOut => Self::timed_out,
            Outcome::Cancelled => Self::cancelled,
            Outcome::Refused => Self::refused,
            Outcome::Busy => Self::busy,
        }
    }
}

impl From<CallTransport> for TransportLabel {
    fn from(t: CallTransport) -> Self {
        match t {
            CallTransport::Stdio => Self::stdio,
            CallTransport::Http => Self::http,
        }
    }
}

impl From<RunPath> for PathLabel {
    fn from(p: RunPath) -> Self {
        match p {
            RunPath::Direct => Self::direct,
            RunPath::Task => Self::task,
            RunPath::Background => Self::background,
        }
    }
}

/// Why a call was refused before anything ran (`twobot_refusals_total{reason}`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RefusalReason {
    /// The policy said no (paths, sandbox, limits…).
    policy,
    /// A resume of a thread the caller does not own.
    thread_owner,
    /// Every run slot and queue place taken.
    busy,
    /// The caller's own share (queue places, kept runs) is used up.
    quota,
    /// Too many kept runs on the server.
    too_many_runs,
    /// A spawn-time re-check (the directory changed) or Codex could not be started.
    spawn,
    /// The arguments did not parse.
    invalid_arguments,
    /// The feature asked for is off on this server.
    disabled,
}

/// `twobot_refusals_total{reason}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why.
    pub reason: RefusalReason,
}

/// Why an HTTP request failed authentication (`twobot_auth_failures_total{reason}`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum AuthFailure {
    /// No credential at all.
    missing,
    /// A credential that did not verify (bad signature, unknown token, wrong claims).
    invalid,
    /// A verified token lacking the scope the request needs.
    insufficient_scope,
    /// A malformed Authorization header (two of them, not Bearer…).
    malformed,
}

impl AuthFailure {
    /// The label value, as the audit log's unauthenticated `reasons` too.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::missing => "missing",
            Self::invalid => "invalid",
            Self::insufficient_scope => "insufficient_scope",
            Self::malformed => "malformed",
        }
    }
}

/// `twobot_auth_failures_total{reason}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    /// Why.
    pub reason: AuthFailure,
}

/// `twobot_http_requests_total{status}`: the status code, a closed set of at most 600 values.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// The HTTP status code.
    pub status: u16,
}

/// Token kinds of `twobot_codex_tokens_total{kind}`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum TokenKind {
    /// Input tokens (cached ones included).
    input,
    /// Input tokens served from the cache.
    cached_input,
    /// Output tokens.
    output,
}

/// `twobot_codex_tokens_total{kind}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// Which tokens.
    pub kind: TokenKind,
}

/// Events of the built-in authorization server, `twobot_oauth_events_total{event}`:
/// what an operator alerts on (guessing, replays) and graphs (sign-ins, tokens).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum OAuthEvent {
    /// A client registered (DCR).
    client_registered,
    /// The operator signed in.
    sign_in_ok,
    /// A wrong password.
    sign_in_failed,
    /// A sign-in refused by the per-address limit (429).
    sign_in_locked,
    /// The operator allowed a client; a code was issued.
    consent_allowed,
    /// The operator denied a client.
    consent_denied,
    /// Tokens issued for a code.
    code_exchanged,
    /// Tokens issued for a refresh token.
    refresh_rotated,
    /// A code presented twice (its grant revoked).
    code_replayed,
    /// A refresh token presented twice (its family revoked).
    refresh_replayed,
    /// A refused token request (replays included).
    token_refused,
}

impl OAuthEvent {
    /// The label value, as the audit log's `event` too.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::client_registered => "client_registered",
            Self::sign_in_ok => "sign_in_ok",
            Self::sign_in_failed => "sign_in_failed",
            Self::sign_in_locked => "sign_in_locked",
            Self::consent_allowed => "consent_allowed",
            Self::consent_denied => "consent_denied",
            Self::code_exchanged => "code_exchanged",
            Self::refresh_rotated => "refresh_rotated",
            Self::code_replayed => "code_replayed",
            Self::refresh_replayed => "refresh_replayed",
            Self::token_refused => "token_refused",
        }
    }
}

/// `twobot_oauth_events_total{event}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OAuthLabels {
    /// What happened.
    pub event: OAuthEvent,
}

/// Which per-address limit refused, `twobot_address_refusals_total{limit}`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum AddressRefusal {
    /// A request over `TWOBOT_ADDRESS_RATE_PER_MINUTE`/`_BURST` (429).
    requests,
    /// A connection over `TWOBOT_MAX_CONNECTIONS_PER_ADDRESS` (429, closed).
    connections,
}

/// `twobot_address_refusals_total{limit}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AddressLabels {
    /// The limit that refused.
    pub limit: AddressRefusal,
}

/// Labels of `twobot_approvals_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApprovalLabels {
    /// accept, decline or cancel.
    pub decision: DecisionLabel,
    /// How the answer came (a person's channel, or the fallback that declined).
    pub channel: ChannelLabel,
}

label_enum!(DecisionLabel {
    accept,
    decline,
    cancel
});
label_enum!(ChannelLabel {
    elicitation,
    input_required,
    card,
    timeout,
    unreachable,
    run_ended,
    policy
});

impl From<crate::run::control::Decision> for DecisionLabel {
    fn from(d: crate::run::control::Decision) -> Self {
        use crate::run::control::Decision;
        match d {
            Decision::Accept => Self::accept,
            Decision::Decline => Self::decline,
            Decision::Cancel => Self::cancel,
        }
    }
}

impl From<crate::run::control::Channel> for ChannelLabel {
    fn from(c: crate::run::control::Channel) -> Self {
        use crate::run::control::Channel;
        match c {
            Channel::Elicitation => Self::elicitation,
            Channel::InputRequired => Self::input_required,
            Channel::Card => Self::card,
            Channel::Timeout => Self::timeout,
            Channel::Unreachable => Self::unreachable,
            Channel::RunEnded => Self::run_ended,
            Channel::Policy => Self::policy,
        }
    }
}
