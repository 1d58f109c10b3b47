//! 2Bot: an MCP server that lets ChatGPT, or any MCP client, run the local OpenAI Codex
//! CLI through one controlled tool, `run_codex_prompt`.
//!
//! # Layout
//!
//! - [`config`]: flags, environment variables and the policy file, merged and validated.
//! - [`job`]: plain data flowing through the job stack (request, spec, principal, output).
//! - [`policy`]: the pure decision that turns a request into a validated run, and its layer.
//! - [`run_queue`]: run slots and a bounded queue, fair across principals ("busy"/quota beyond).
//! - [`runner`]: the Codex subprocess: spawn, stream, time out, kill the process group.
//! - [`codex`]: Codex's argv and its JSONL events, folded into the result.
//! - [`model_endpoint`]: the model endpoint Codex is configured for, and a connect-only probe.
//! - [`threads`]: who started which Codex thread; only they may resume it.
//! - [`registry`]: background runs that outlive the request that started them.
//! - [`tool`]: the job stack assembled once (policy → threads → run queue → runner).
//! - [`mcp`]: the rmcp `ServerHandler`; the only place errors become MCP results.
//! - [`stdio`]: the stdio transport.
//! - [`telemetry`], [`shutdown`]: logging and signals.
//!
//! # Request path
//!
//! ```text
//! stdio ─────────────┐   http (tower stack: request id → trace → limits → origin → auth → rate limit → sessions)
//!                    └────────────────┐
//!                                     ▼
//!                     mcp::TwoBot (tools/call → ToolCall)
//!                                     ▼
//!   tool::ToolService = PolicyLayer → ThreadLayer → RunQueueLayer → CodexRunner
//!                                     ▼
//!                        codex exec --json -  (own process group)
//! ```

pub mod audit;
pub mod codex;
pub mod config;
pub mod doctor;
pub mod effective;
pub mod error;
pub mod http;
pub mod job;
pub mod mcp;
pub mod metrics;
pub mod model_endpoint;
pub mod policy;
pub mod run_queue;
pub mod runner;
pub mod runs;
pub mod shutdown;
pub mod stdio;
pub mod telemetry;
pub mod thread_owners;
