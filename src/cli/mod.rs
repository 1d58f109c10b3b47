//! What `2bot-mcp` does besides serving: `--print-config` shows the configuration it would
//! serve with, `doctor` checks a set-up before it is served. Both read the parsed
//! [`crate::config`] and never start the stack; `main.rs` only dispatches to them. The
//! `oauth` subcommands act on the built-in authorization server's state directory.

pub mod doctor;
pub mod hash_password;
pub mod oauth;
pub mod print_config;
