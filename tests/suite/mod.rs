mod http;
mod http_limits;
mod policy;
mod real_codex;
mod runner;
mod stdio;
