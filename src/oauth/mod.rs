//! The built-in OAuth authorization server (TWOBOT_OAUTH_BUILTIN): redirect-URI rules and client metadata documents.
pub mod cimd;
pub mod redirect;
