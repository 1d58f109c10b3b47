//! The server-rendered pages of the sign-in: the password form, the consent form and
//! the error page, as maud templates (every value from a request is escaped by the
//! template engine, never by hand). No script, no third-party asset, one inline
//! stylesheet allowed by a per-response nonce; every page is unframeable
//! (`frame-ancestors 'none'`), uncacheable and sends no referrer (the URL carries the
//! authorization request).

use axum::body::Body;
use axum::response::Response;
use axum_extra::extract::cookie::{Cookie, SameSite};
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, RETRY_AFTER, SET_COOKIE};
use http::{HeaderValue, StatusCode};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The cookie binding a browser to its pending authorization request (CSRF).
pub const COOKIE: &str = "twobot_oauth";

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1d1d1f}\
h1{font-size:1.4rem}.box{border:1px solid #d2d2d7;border-radius:12px;padding:1.25rem 1.5rem}\
label{display:block;margin:.6rem 0}input[type=password]{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}\
button{font-size:1rem;padding:.5rem 1.2rem;margin:.8rem .6rem 0 0;border-radius:8px;border:1px solid #888;background:#fff}\
button.primary{background:#0b57d0;color:#fff;border-color:#0b57d0}.err{color:#b3261e}.muted{color:#6e6e73;font-size:.9rem}\
code{background:#f2f2f7;padding:0 .25rem;border-radius:4px}";

/// A page: `status`, a title and its body, the extra `form-action` source (the redirect
/// URI's origin on the consent page: browsers apply form-action to the redirect a form's
/// POST answers with).
pub fn page(status: StatusCode, title: &str, body: Markup, form_target: Option<&str>) -> Response {
    let nonce = crate::oauth::random_token(18);
    let html = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · 2Bot" }
                style nonce=(nonce) { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) }
                (body)
            }
        }
    }
    .into_string();
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
    let body = html! {
        div.box {
            p.err { (reason) }
            p.muted { "Nothing was granted. Go back to the application and start again." }
        }
    };
    page(status, "Sign-in refused", body, None)
}

/// 429 after too many failed sign-ins from one address.
pub fn locked(wait_secs: u64) -> Response {
    let minutes = wait_secs.div_ceil(60).max(1);
    let body = html! {
        div.box {
            p.err { "Too many failed sign-ins from this address. Try again in " (minutes) " minute(s)." }
        }
    };
    let mut response = page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        body,
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
    let body = html! {
        div.box {
            p {
                strong { (request.client_name) }
                " asks to use this 2Bot server, which runs Codex on its machine. Sign in as its operator to continue."
            }
            @if failed {
                p.err role="alert" { "Wrong password." }
            }
            form method="post" action={ (request.prefix) "/oauth/authorize/sign-in" } {
                (hidden(request))
                label for="password" { "Operator password" }
                input #password type="password" name="password" autocomplete="current-password" required autofocus;
                button.primary type="submit" { "Sign in" }
            }
            p.muted { "After sign-in the code goes to " code { (request.redirect_host) } "." }
        }
    };
    let status = if failed {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    page(status, "Sign in to 2Bot", body, None)
}

/// The two hidden fields every form carries: the pending request and its CSRF token.
fn hidden(request: &Request<'_>) -> Markup {
    html! {
        input type="hidden" name="request" value=(request.id);
        input type="hidden" name="csrf" value=(request.csrf);
    }
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
    let body = html! {
        div.box {
            p {
                strong { (request.client_name) }
                " will be able to run Codex on this machine through 2Bot."
            }
            p {
                "Client id: " code { (request.client_id) } br;
                "Redirect host: " code { (request.redirect_host) }
            }
            form method="post" action={ (request.prefix) "/oauth/authorize/consent" } {
                (hidden(request))
                fieldset {
                    legend { "Scopes, and the sandbox each allows" }
                    @for line in scopes {
                        label {
                            input type="checkbox" name="scope" value=(line.scope) checked disabled[line.required];
                            " " code { (line.scope) }
                            @if line.required { " (required by this server)" }
                            ": Codex up to " strong { (line.ceiling) }
                        }
                    }
                    @if scopes.is_empty() {
                        p { "No scopes requested." }
                    }
                }
                p.muted { "With every scope above: Codex up to " strong { (all_ceiling) } "." }
                button.primary type="submit" name="decision" value="allow" { "Allow" }
                button type="submit" name="decision" value="deny" { "Deny" }
            }
        }
    };
    page(StatusCode::OK, "Allow access?", body, Some(redirect_origin))
}

/// The CSRF cookie: HttpOnly, SameSite=Strict, 10 minutes; no `Path`, so it defaults
/// to the directory of `/oauth/authorize` behind whatever prefix a proxy adds.
pub fn set_cookie(response: &mut Response, csrf: &str, secure: bool) {
    let cookie = Cookie::build((COOKIE, csrf.to_owned()))
        .max_age(time::Duration::minutes(10))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .build();
    if let Ok(v) = HeaderValue::from_str(&cookie.encoded().to_string()) {
        response.headers_mut().append(SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn request_values_cannot_break_out_of_text_or_attributes() {
        let hostile = Request {
            id: "\"><script>alert(1)</script>",
            csrf: "a'b",
            client_name: "<img src=x onerror=alert(1)>",
            client_id: "c_&amp;",
            redirect_host: "evil.example\"",
            prefix: "\"/x",
        };
        let lines = [ScopeLine {
            scope: "<b>scope</b>",
            ceiling: "read-only",
            required: false,
        }];
        for html in [
            text(sign_in(&hostile, true)).await,
            text(consent(&hostile, &lines, "<i>all</i>", "https://a.example")).await,
            text(error(StatusCode::BAD_REQUEST, "<script>x</script>")).await,
        ] {
            assert!(!html.contains("<script>"), "{html}");
            assert!(!html.contains("<img"), "{html}");
            assert!(!html.contains("<b>scope"), "{html}");
            assert!(
                !html.contains("value=\"\">"),
                "no attribute is closed early: {html}"
            );
        }
        let consent = text(consent(&hostile, &lines, "all", "https://a.example")).await;
        assert!(
            consent.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{consent}"
        );
        assert!(
            consent.contains("value=\"&quot;&gt;&lt;script&gt;"),
            "{consent}"
        );
        assert!(consent.contains("c_&amp;amp;"), "{consent}");
    }

    #[tokio::test]
    async fn a_required_scope_is_ticked_and_cannot_be_unticked() {
        let request = Request {
            id: "i",
            csrf: "c",
            client_name: "ChatGPT",
            client_id: "c_1",
            redirect_host: "chatgpt.com",
            prefix: "",
        };
        let lines = [
            ScopeLine {
                scope: "codex:run",
                ceiling: "read-only",
                required: true,
            },
            ScopeLine {
                scope: "codex:write",
                ceiling: "workspace-write",
                required: false,
            },
        ];
        let html = text(consent(
            &request,
            &lines,
            "workspace-write",
            "https://chatgpt.com",
        ))
        .await;
        assert!(
            html.contains(r#"value="codex:run" checked disabled>"#),
            "{html}"
        );
        assert!(html.contains(r#"value="codex:write" checked>"#), "{html}");
        assert!(html.contains("(required by this server)"), "{html}");
    }

    #[test]
    fn the_csrf_cookie_is_http_only_strict_short_lived_and_secure_over_https() {
        for (secure, expected) in [
            (
                true,
                "twobot_oauth=t0k; HttpOnly; SameSite=Strict; Secure; Max-Age=600",
            ),
            (
                false,
                "twobot_oauth=t0k; HttpOnly; SameSite=Strict; Max-Age=600",
            ),
        ] {
            let mut response = Response::new(Body::empty());
            set_cookie(&mut response, "t0k", secure);
            assert_eq!(response.headers()[SET_COOKIE], expected);
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
