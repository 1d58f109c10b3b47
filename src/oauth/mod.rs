//! The built-in OAuth authorization server (`TWOBOT_OAUTH_BUILTIN`): 2Bot as its own issuer for one operator.

pub mod password;
