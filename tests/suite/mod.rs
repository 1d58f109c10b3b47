mod http;
mod http_limits;
mod otel;
mod policy;
mod real_codex;
mod runner;
mod stdio;
