//! What `2bot-mcp` does besides serving: `--print-config` shows the configuration it would
//! serve with, `doctor` checks a set-up before it is served, `oauth hash-password` makes
//! the built-in authorization server's password file, and `oauth list` / `oauth revoke`
//! act on its state directory. None of them starts the stack; `main.rs` only dispatches.

pub mod doctor;
pub mod hash_password;
pub mod oauth;
pub mod print_config;
