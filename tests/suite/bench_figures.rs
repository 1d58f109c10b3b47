//! The gateway benchmark prints each figure beside the previous run's: its reader of
//! BENCHMARKS.md's "Latest gateway run" section, tested here (benches have no test harness).

#[path = "../../benches/support/previous.rs"]
#[allow(dead_code)]
mod previous;

use previous::Previous;

#[test]
fn figures_are_read_from_the_latest_run_section_only() {
    let md = "## Results\n\n| t | a |\n|---|---|\n| x | 1 |\n\n## Latest gateway run\n\n\
              | t | p50 | p99 | previous | now / previous |\n|---|---|---|---|---|\n\
              | x | 62.4 ms | 70 ms | 60 | 1.04x |\n| y | 11 396 | — | — | — |\n\n## Next\n| t | a |\n|---|---|\n| z | 3 |\n";
    let p = Previous::parse(md);
    assert_eq!(p.beside("t", "x", 31.2), "62.4 | 0.50x");
    assert_eq!(p.beside("t", "y", 11_396.0), "11396 | 1.00x");
    assert_eq!(p.beside("t", "z", 3.0), "— | —", "outside the section");
    assert_eq!(p.beside("t", "w", 1.0), "— | —");
}

#[test]
fn the_repository_s_benchmarks_file_has_previous_figures_for_every_throughput_row() {
    let p = Previous::load();
    let title = "HTTP tools/list, auth + rate limit + tracing, 16 connections, 10 s";
    for label in [
        "one session, a static token",
        "one session, a built-in OAuth token (ES256 JWT + grant check)",
    ] {
        assert_ne!(p.beside(title, label, 1.0), "— | —", "{label}");
    }
}
