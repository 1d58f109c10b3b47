mod http;
mod http_limits;
mod jwks;
mod otel;
mod policy;
mod real_codex;
mod runner;
mod stdio;
