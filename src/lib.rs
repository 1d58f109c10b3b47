//! 2Bot: an MCP server that lets ChatGPT, or any MCP client, run the local OpenAI Codex
//! CLI through one controlled tool, `run_codex_prompt`.
//!
//! # Layout
//!
//! Outermost first. A module imports only modules listed below it (`tests/layout.rs`
//! checks this, so the list is also the proof that there is no import cycle).
//!
//! - [`cli`]: what the binary does besides serving: `--print-config` and `doctor`.
//! - [`stdio`]: the stdio transport (the caller is the local user).
//! - [`oauth`]: the built-in OAuth authorization server (`TWOBOT_OAUTH_BUILTIN`): metadata,
//!   registration (DCR, CIMD), the operator's sign-in and consent pages, the token
//!   endpoint, its signing key set (in [`state`], rotated there); its tokens are checked
//!   by `http::auth`, their grants answered from memory kept exact by the store's
//!   revocation watch, its records kept in [`state`].
//! - [`http`]: the Streamable HTTP transport: its tower stack assembled once in `http/mod.rs`,
//!   each layer in its own file (per-address limit, origin, auth, rate limit, in flight,
//!   sessions, body checks), connections capped in all and per address in `http::server`,
//!   every refusal rendered by `http::rescue` in one body shape.
//! - [`auth`]: who is calling, without HTTP: bearer credentials (static tokens, JWT keys,
//!   a JWKS, the built-in server's key set and grant check), the pure token check, the
//!   verified-token cache, the client's address behind trusted proxies. Below both
//!   `http` and `oauth`, so neither imports the other.
//! - [`mcp`]: the rmcp `ServerHandler`, protocol mapping only: tool definitions, the one
//!   mapping of refusals and outcomes to results, MCP tasks, progress, who is calling,
//!   the run card (MCP Apps), and Codex's approval requests relayed to a person
//!   (elicitation, the 2026-07-28 `input_required` round trip, the card's answer tool).
//! - [`runs`]: the one run lifecycle every path shares: `admit` (a permit or a typed
//!   refusal, nothing spawned), `RunHandle` (progress, cancel, outcome), kept runs (tasks
//!   and background runs, in memory while live and recorded in [`state`], which answers
//!   for them after a restart: finished, or `lost`), where audit records and metrics
//!   are written, and its assembly from the configuration (state store, audit log,
//!   metrics listener).
//! - [`peer`]: instances of one service reaching each other: a live run's follow-ups,
//!   and a resume of a thread another host holds, forwarded to the instance that holds
//!   it, signed with the shared instance secret (`TWOBOT_INSTANCE_SECRET`).
//! - [`thread_owners`]: who started which Codex thread (in [`state`]; the old
//!   `threads.jsonl` moved in once); only they may resume it.
//! - [`run_queue`]: run slots and a bounded queue, fair across principals ("busy"/quota beyond).
//! - [`config`]: flags, environment variables and the policy file, merged and validated.
//! - [`runner`]: the Codex subprocess: spawn (through the run supervisor), stream, time
//!   out, kill the whole tree.
//! - [`policy`]: the pure decision that turns a request into a validated run.
//! - [`codex`]: Codex's argv and its JSONL events, folded into the result.
//! - [`model_endpoint`]: the model endpoint Codex is configured for, and a connect-only probe.
//! - [`metrics`]: the Prometheus metrics and their own listener.
//! - [`audit`]: the audit log, one JSON line per run and per refusal.
//! - [`state`]: lasting records (thread owners, kept runs, live instances, the built-in
//!   authorization server's clients, grants, tokens and signing keys) behind one trait,
//!   SQLite embedded (`state.db` in `TWOBOT_STATE_DIR`, queries off the runtime) or
//!   PostgreSQL shared; this process's instance id, heartbeat and the reaping of dead
//!   ones (their runs `lost`); plain rows, imports nothing.
//! - [`run`]: plain data of one run, every layer speaks it (request, spec, principal,
//!   output, how the call came in); imports nothing.
//! - [`error`]: why an admitted run produced no Codex output.
//! - [`telemetry`], [`shutdown`]: logging and traces, signals.
//!
//! # Request path
//!
//! ```text
//! stdio ──────────────┐   http: request id → trace → body deadline, limit → per address → Host/Origin → auth
//!                     │         → rate limit → in flight → session guard → JSON body check
//!                     ▼                                    │
//!   mcp::TwoBot: caller + arguments → RunRequest  ◀────────┘
//!                     ▼
//!   runs::Runs::admit: policy::check → thread_owners → kept place → run_queue ticket
//!        │ RunRefusal, at once (nothing spawned)          │ Admitted::start → RunHandle
//!        │                                                ▼
//!        │                        a run slot (run_queue) → runner::CodexRunner
//!        │                                                ▼
//!        │                        runner::spawn → the spawner clones the run's init (2bot-supervise,
//!        │                          pid 1 of private mount + PID namespaces) → codex exec --json -
//!        ▼                                                │ progress, outcome
//!   mcp::results ◀── RunHandle: a direct call awaits it; ─┘
//!                    a task or a background run is kept in runs::KeptRuns
//!                    and recorded in state (queued, running, final snapshot)
//!
//!   runs::observe writes the audit record and the metrics at a refusal and at a run's end.
//! ```

pub mod audit;
pub mod auth;
pub mod cli;
pub mod codex;
pub mod config;
pub mod error;
pub mod http;
pub mod mcp;
pub mod metrics;
pub mod model_endpoint;
pub mod oauth;
pub mod peer;
pub mod policy;
pub mod run;
pub mod run_queue;
pub mod runner;
pub mod runs;
pub mod shutdown;
pub mod state;
pub mod stdio;
pub mod telemetry;
pub mod thread_owners;
