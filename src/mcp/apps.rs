//! MCP Apps (SEP-1865): the live run card. ChatGPT ends a tool call after about 60 s,
//! Codex runs take minutes; a host that speaks MCP Apps shows this `ui://` view next to
//! `run_codex_prompt` and the view follows a background run (or a task) on its own through
//! the host's bridge (`get_codex_run`, `cancel_codex_run`; listed app-only when only the
//! card may call them, `super::tools::followers`). Everything here is static: the view, its
//! resource entry, its CSP (no network at all: data only comes through the bridge) and
//! the `_meta` that links tools to it. A host without MCP Apps ignores all of it.

use rmcp::model::{MetaObject, ReadResourceResult, Resource, ResourceContents};
use serde_json::json;

/// The run card's first, unhashed URI: still read (hosts that cached the link), never
/// linked any more.
pub const RUN_CARD_URI: &str = "ui://2bot/run-card.html";
/// The MIME type MCP Apps hosts render.
pub const MCP_APP_MIME: &str = "text/html;profile=mcp-app";
/// The extension's id in `capabilities.extensions`.
pub const EXTENSION_ID: &str = "io.modelcontextprotocol/ui";
/// The view: one self-contained HTML file (inline JS and CSS, nothing fetched).
pub const RUN_CARD_HTML: &str = include_str!("apps/run-card.html");

/// The URI of a card whose HTML is `html`: `ui://2bot/run-card-<12 hex of its
/// SHA-256>.html`, so a changed card has a new URI and no host serves it from a cache.
pub fn card_uri_for(html: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(html.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("ui://2bot/run-card-{hex}.html")
}

/// The run card's URI, linked from the run tools' `_meta.ui.resourceUri` and
/// `openai/outputTemplate`.
pub fn run_card_uri() -> &'static str {
    static URI: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URI.get_or_init(|| card_uri_for(RUN_CARD_HTML))
}

/// Why a resource could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AppsError {
    /// The URI names no resource of this server.
    #[error("unknown resource: {0} (2Bot serves only its run card, ui://2bot/run-card-….html)")]
    UnknownResource(String),
}

/// `_meta` of `run_codex_prompt`: the MCP Apps link, and ChatGPT's older alias of it.
pub fn run_tool_meta() -> MetaObject {
    object(json!({
        "ui": { "resourceUri": run_card_uri() },
        "openai/outputTemplate": run_card_uri(),
        "openai/toolInvocation/invoking": "Starting Codex…",
        "openai/toolInvocation/invoked": "Codex run",
    }))
}

/// `_meta` of the tools the card calls itself: callable from the view (MCP Apps lets
/// every tool be by default; ChatGPT's Apps SDK wants it said).
pub fn follow_tool_meta() -> MetaObject {
    object(json!({ "openai/widgetAccessible": true }))
}

/// `_meta` of a tool only the card may call: MCP Apps hosts keep `visibility: ["app"]`
/// tools from the model, ChatGPT keeps `openai/visibility: private` ones.
pub fn app_only_tool_meta() -> MetaObject {
    object(json!({
        "ui": { "visibility": ["app"] },
        "openai/visibility": "private",
        "openai/widgetAccessible": true,
    }))
}

/// The card's `_meta.ui`: a CSP with no connect, resource or frame domains (the view
/// reaches the server only through the host's bridge), and ChatGPT's spelling of it.
fn resource_meta() -> MetaObject {
    object(json!({
        "ui": {
            "csp": { "connectDomains": [], "resourceDomains": [], "frameDomains": [] },
            "prefersBorder": true,
        },
        "openai/widgetCSP": { "connect_domains": [], "resource_domains": [] },
        "openai/widgetDescription": "A live card of the Codex run: status, commands with exit codes, file changes, token usage and the final message, with Cancel for background runs.",
    }))
}

fn object(value: serde_json::Value) -> MetaObject {
    match value {
        serde_json::Value::Object(map) => MetaObject(map),
        _ => MetaObject::new(),
    }
}

/// What `resources/list` shows.
pub fn resources() -> Vec<Resource> {
    vec![
        Resource::new(run_card_uri(), "run-card")
            .with_title("Codex run card")
            .with_description("Live view of a Codex run for MCP Apps hosts")
            .with_mime_type(MCP_APP_MIME)
            .with_size(RUN_CARD_HTML.len() as u64)
            .with_meta(resource_meta()),
    ]
}

/// `resources/read` of `uri`.
pub fn read(uri: &str) -> Result<ReadResourceResult, AppsError> {
    if uri != run_card_uri() && uri != RUN_CARD_URI {
        return Err(AppsError::UnknownResource(uri.to_owned()));
    }
    Ok(ReadResourceResult::new(vec![
        ResourceContents::TextResourceContents {
            uri: uri.to_owned(),
            mime_type: Some(MCP_APP_MIME.to_owned()),
            text: RUN_CARD_HTML.to_owned(),
            meta: Some(resource_meta()),
        },
    ]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_card_is_served_as_an_mcp_app_with_a_csp_that_allows_no_network() {
        let read = serde_json::to_value(read(run_card_uri()).unwrap()).unwrap();
        let content = &read["contents"][0];
        assert_eq!(content["mimeType"], MCP_APP_MIME);
        assert_eq!(content["uri"], run_card_uri());
        let csp = &content["_meta"]["ui"]["csp"];
        assert_eq!(csp["connectDomains"], json!([]));
        assert_eq!(csp["resourceDomains"], json!([]));
        let listed = serde_json::to_value(resources()).unwrap();
        assert_eq!(listed[0]["_meta"]["ui"]["csp"], *csp);
    }

    #[test]
    fn only_the_run_card_can_be_read() {
        for uri in [
            "ui://2bot/other.html",
            "file:///etc/passwd",
            "",
            "ui://2bot/run-card.html/",
        ] {
            assert_eq!(
                read(uri).unwrap_err(),
                AppsError::UnknownResource(uri.to_owned())
            );
        }
    }

    /// Self-contained and small: nothing is fetched, so nothing outside the CSP is needed.
    #[test]
    fn the_view_is_self_contained_and_under_150_kb() {
        assert!(RUN_CARD_HTML.len() <= 150 * 1024, "{}", RUN_CARD_HTML.len());
        let lower = RUN_CARD_HTML.to_ascii_lowercase();
        for outside in [
            "src=\"http",
            "href=\"http",
            "<link",
            "@import",
            "fetch(",
            "xmlhttprequest",
            "websocket",
            "eventsource",
        ] {
            assert!(!lower.contains(outside), "the view mentions {outside}");
        }
        // Codex text is never parsed as HTML.
        assert!(!RUN_CARD_HTML.contains("innerHTML"));
        assert!(!RUN_CARD_HTML.contains("insertAdjacentHTML"));
        assert!(!RUN_CARD_HTML.contains("document.write"));
    }

    #[test]
    fn the_run_tool_links_the_card_for_mcp_apps_and_for_chatgpt() {
        let meta = serde_json::Value::Object(run_tool_meta().0);
        assert_eq!(meta["ui"]["resourceUri"], run_card_uri());
        assert_eq!(meta["openai/outputTemplate"], run_card_uri());
    }

    /// The URI is a pure function of the bytes: a changed card gets a new one, so a
    /// host's cache cannot serve the old view under the new link.
    #[test]
    fn the_card_uri_is_a_hash_of_its_html_and_changes_with_it() {
        let uri = run_card_uri();
        assert!(
            uri.starts_with("ui://2bot/run-card-") && uri.ends_with(".html"),
            "{uri}"
        );
        let hex = &uri["ui://2bot/run-card-".len()..uri.len() - ".html".len()];
        assert_eq!(hex.len(), 12);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(card_uri_for(RUN_CARD_HTML), uri);
        let changed = RUN_CARD_HTML.replacen("Codex run", "Codex  run", 1);
        assert_ne!(card_uri_for(&changed), uri);
        assert_eq!(card_uri_for("abc"), card_uri_for("abc"));
        // The first, unhashed link still reads (hosts that cached it), and says it is that one.
        let old = serde_json::to_value(read(RUN_CARD_URI).unwrap()).unwrap();
        assert_eq!(old["contents"][0]["uri"], RUN_CARD_URI);
        assert_eq!(old["contents"][0]["text"], RUN_CARD_HTML);
        assert_eq!(serde_json::to_value(resources()).unwrap()[0]["uri"], uri);
    }

    #[test]
    fn the_card_only_tool_is_hidden_from_the_model_by_both_spellings() {
        let meta = serde_json::Value::Object(app_only_tool_meta().0);
        assert_eq!(meta["ui"]["visibility"], json!(["app"]));
        assert_eq!(meta["openai/visibility"], "private");
    }
}
