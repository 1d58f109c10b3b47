//! Who is calling, from what the transport attached to the request: the HTTP stack puts
//! the [`Principal`] into the request's extensions and an `x-request-id` header on it;
//! stdio attaches nothing, so the handler's default principal (the local user) applies.

use rmcp::RoleServer;
use rmcp::service::RequestContext;

use crate::run::{CallTransport, RunPath};
use crate::run::{Principal, QuotaKey};
use crate::runs::Caller;

/// The caller of `ctx`, coming in by `path`.
pub fn of(
    ctx: &RequestContext<RoleServer>,
    default_principal: &Principal,
    transport: CallTransport,
    path: RunPath,
) -> Caller {
    let parts = ctx.extensions.get::<http::request::Parts>();
    let principal = parts
        .and_then(|p| p.extensions.get::<Principal>())
        .cloned()
        .unwrap_or_else(|| default_principal.clone());
    let request_id = parts
        .and_then(|p| p.headers.get("x-request-id"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let owner = owner(ctx, &principal, path);
    // Whose share of the server a call uses: what the transport says (no-auth HTTP keys
    // each client address apart), else the principal itself.
    let quota = parts
        .and_then(|p| p.extensions.get::<QuotaKey>())
        .cloned()
        .unwrap_or_else(|| QuotaKey::of(&principal));
    Caller {
        principal,
        owner,
        quota,
        request_id,
        transport,
        path,
        // Decided by the tool handler, which knows the client's capabilities.
        approvals: crate::run::control::ControlConfig::default(),
    }
}

/// Who owns a kept run this request starts or asks about. A run is the principal's;
/// in no-auth mode every HTTP caller is the same anonymous principal, so there a task
/// also belongs to the MCP session that started it.
pub fn owner(ctx: &RequestContext<RoleServer>, principal: &Principal, path: RunPath) -> String {
    match (principal, session(ctx), path) {
        (Principal::Anonymous, Some(session), RunPath::Task) => format!("anonymous@{session}"),
        _ => principal.owner_key(),
    }
}

/// Every owner whose kept runs a follow-up call on `path` may reach. The card's tools
/// and `get_codex_run` come on the background path; they also reach the runs the same
/// caller started as tasks, whose owner differs only for an anonymous caller (then it
/// is the session: the card on that session reaches them, another session does not).
pub fn owners(
    ctx: &RequestContext<RoleServer>,
    principal: &Principal,
    path: RunPath,
) -> Vec<String> {
    let mut owners = vec![owner(ctx, principal, path)];
    if path == RunPath::Background {
        let task = owner(ctx, principal, RunPath::Task);
        if !owners.contains(&task) {
            owners.push(task);
        }
    }
    owners
}

/// The HTTP session this request came on, if any.
pub fn session(ctx: &RequestContext<RoleServer>) -> Option<&str> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.headers.get("mcp-session-id"))
        .and_then(|v| v.to_str().ok())
}
