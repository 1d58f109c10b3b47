//! One integration-test binary: every suite drives the real `2bot-mcp` binary (or the
//! in-process server) through a real MCP client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod suite;
