//! What `2bot-mcp` does besides serving: `--print-config` shows the configuration it would
//! serve with, `doctor` checks a set-up before it is served. Both read the parsed
//! [`crate::config`] and never start the stack; `main.rs` only dispatches to them.

pub mod doctor;
pub mod print_config;
