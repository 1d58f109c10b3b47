//! The built-in OAuth authorization server (`TWOBOT_OAUTH_BUILTIN=true`): 2Bot as its own
//! issuer for one operator. Here: its persistent state ([`store`]).

pub mod store;
