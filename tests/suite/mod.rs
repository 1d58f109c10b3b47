mod http;
mod policy;
mod real_codex;
mod runner;
mod stdio;
