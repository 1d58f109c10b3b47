//! The server-rendered pages of the sign-in: the password form, the consent form and
//! the error page. No script, no third-party asset, one inline stylesheet allowed by a
//! per-response nonce; every value from a request is HTML-escaped; every page is
//! unframeable (`frame-ancestors 'none'`), uncacheable and sends no referrer (the URL
//! carries the authorization request).

use axum::body::Body;
use axum::response::Response;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, RETRY_AFTER, SET_COOKIE};
use http::{HeaderValue, StatusCode};

/// The cookie binding a browser to its pending authorization request (CSRF).
pub const COOKIE: &str = "twobot_oauth";

/// `&`, `<`, `>`, `"`, `'` as entities: safe in text and in quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1d1d1f}\
h1{font-size:1.4rem}.box{border:1px solid #d2d2d7;border-radius:12px;padding:1.25rem 1.5rem}\
label{display:block;margin:.6rem 0}input[type=password]{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}\
button{font-size:1rem;padding:.5rem 1.2rem;margin:.8rem .6rem 0 0;border-radius:8px;border:1px solid #888;background:#fff}\
button.primary{background:#0b57d0;color:#fff;border-color:#0b57d0}.err{color:#b3261e}.muted{color:#6e6e73;font-size:.9rem}\
code{background:#f2f2f7;padding:0 .25rem;border-radius:4px}";

/// A page: `status`, a title and body HTML (already escaped), the extra `form-action`
/// source (the redirect URI's origin on the consent page: browsers apply form-action to
/// the redirect a form's POST answers with).
pub fn page(status: StatusCode, title: &str, body: &str, form_target: Option<&str>) -> Response {
    let nonce = crate::oauth::random_token(18);
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\"><title>{title} · 2Bot</title>\
<style nonce=\"{nonce}\">{STYLE}</style></head><body><h1>{title}</h1>{body}</body></html>",
        title = escape(title),
    );
    let csp = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'{}; frame-ancestors 'none'; base-uri 'none'",
        form_target.map(|t| format!(" {t}")).unwrap_or_default()
    );
    let mut response = Response::new(Body::from(html));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(CONTENT_SECURITY_POLICY, v);
    }
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// An error page that does not redirect: the client or its redirect URI is not trusted,
/// so the browser stays here.
pub fn error(status: StatusCode, reason: &str) -> Response {
    page(
        status,
        "Sign-in refused",
        &format!(
            "<div class=\"box\"><p class=\"err\">{}</p><p class=\"muted\">Nothing was granted. Go back to the application and start again.</p></div>",
            escape(reason)
        ),
        None,
    )
}

/// 429 after too many failed sign-ins from one address.
pub fn locked(wait_secs: u64) -> Response {
    let mut response = page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        &format!(
            "<div class=\"box\"><p class=\"err\">Too many failed sign-ins from this address. Try again in {} minute(s).</p></div>",
            wait_secs.div_ceil(60).max(1)
        ),
        None,
    );
    if let Ok(v) = HeaderValue::from_str(&wait_secs.max(1).to_string()) {
        response.headers_mut().insert(RETRY_AFTER, v);
    }
    response
}

/// What the sign-in and consent pages show about the request.
pub struct Request<'a> {
    /// The pending request's id (hidden field).
    pub id: &'a str,
    /// The CSRF token (hidden field, and the cookie).
    pub csrf: &'a str,
    /// The client's name as registered (its claim, not verified).
    pub client_name: &'a str,
    /// Its client id (`c_…`, or the URL of its metadata document), as `oauth list` shows it.
    pub client_id: &'a str,
    /// The host the code will be sent to.
    pub redirect_host: &'a str,
    /// The issuer's path (`""` at a host's root), before `/oauth/…` in form actions.
    pub prefix: &'a str,
}

/// The password form; `failed` after a wrong password.
pub fn sign_in(request: &Request<'_>, failed: bool) -> Response {
    let error = if failed {
        "<p class=\"err\" role=\"alert\">Wrong password.</p>"
    } else {
        ""
    };
    let body = format!(
        "<div class=\"box\"><p><strong>{name}</strong> asks to use this 2Bot server, which runs Codex on its machine. \
Sign in as its operator to continue.</p>{error}\
<form method=\"post\" action=\"{prefix}/oauth/authorize/sign-in\">\
<input type=\"hidden\" name=\"request\" value=\"{id}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<label for=\"password\">Operator password</label>\
<input id=\"password\" type=\"password\" name=\"password\" autocomplete=\"current-password\" required autofocus>\
<button class=\"primary\" type=\"submit\">Sign in</button></form>\
<p class=\"muted\">After sign-in the code goes to <code>{host}</code>.</p></div>",
        name = escape(request.client_name),
        id = escape(request.id),
        csrf = escape(request.csrf),
        host = escape(request.redirect_host),
        prefix = escape(request.prefix),
    );
    let status = if failed {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    page(status, "Sign in to 2Bot", &body, None)
}

/// One scope line on the consent page.
pub struct ScopeLine<'a> {
    /// The scope.
    pub scope: &'a str,
    /// The sandbox ceiling it grants alone.
    pub ceiling: &'a str,
    /// Required by the server: always granted, not optional.
    pub required: bool,
}

/// The consent form: who, where the code goes, and what each scope allows.
pub fn consent(
    request: &Request<'_>,
    scopes: &[ScopeLine<'_>],
    all_ceiling: &str,
    redirect_origin: &str,
) -> Response {
    let mut lines = String::new();
    for line in scopes {
        let (attrs, note) = if line.required {
            (" checked disabled", " (required by this server)")
        } else {
            (" checked", "")
        };
        lines.push_str(&format!(
            "<label><input type=\"checkbox\" name=\"scope\" value=\"{s}\"{attrs}> <code>{s}</code>{note}: Codex up to <strong>{c}</strong></label>",
            s = escape(line.scope),
            c = escape(line.ceiling),
        ));
    }
    if scopes.is_empty() {
        lines.push_str("<p>No scopes requested.</p>");
    }
    let body = format!(
        "<div class=\"box\"><p><strong>{name}</strong> will be able to run Codex on this machine through 2Bot.</p>\
<p>Client id: <code>{client_id}</code><br>Redirect host: <code>{host}</code></p>\
<form method=\"post\" action=\"{prefix}/oauth/authorize/consent\">\
<input type=\"hidden\" name=\"request\" value=\"{id}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<fieldset><legend>Scopes, and the sandbox each allows</legend>{lines}</fieldset>\
<p class=\"muted\">With every scope above: Codex up to <strong>{all}</strong>.</p>\
<button class=\"primary\" type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form></div>",
        name = escape(request.client_name),
        client_id = escape(request.client_id),
        host = escape(request.redirect_host),
        id = escape(request.id),
        csrf = escape(request.csrf),
        all = escape(all_ceiling),
        prefix = escape(request.prefix),
    );
    page(
        StatusCode::OK,
        "Allow access?",
        &body,
        Some(redirect_origin),
    )
}

/// The CSRF cookie: HttpOnly, SameSite=Strict, 10 minutes; no `Path`, so it defaults
/// to the directory of `/oauth/authorize` behind whatever prefix a proxy adds.
pub fn set_cookie(response: &mut Response, csrf: &str, secure: bool) {
    let cookie = format!(
        "{COOKIE}={csrf}; Max-Age=600; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn request_values_cannot_break_out_of_text_or_attributes() {
        for (raw, escaped) in [
            ("plain", "plain"),
            ("<script>", "&lt;script&gt;"),
            ("\"><img src=x>", "&quot;&gt;&lt;img src=x&gt;"),
            ("a'b", "a&#39;b"),
            ("&amp;", "&amp;amp;"),
        ] {
            assert_eq!(escape(raw), escaped);
        }
    }

    #[test]
    fn every_page_is_unframeable_uncached_and_loads_nothing_from_elsewhere() {
        let response = error(StatusCode::BAD_REQUEST, "<b>x</b>");
        let csp = response.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.starts_with("default-src 'none'"));
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    }
}
