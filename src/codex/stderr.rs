//! What Codex's stderr says that its JSONL stream does not: that its sandbox refused
//! something.
//!
//! Measured on Codex 0.169: a command the sandbox stops (a write under read-only, or
//! every command when the sandbox cannot start, e.g. a system `bwrap` that may not create
//! user namespaces) often emits no `command_execution` item at all, so the event stream
//! looks like a clean run. The one trace is Codex's `codex_sandboxing::violation` warning
//! on stderr, which it prints only when `RUST_LOG` asks for it; [`rust_log`] asks, and
//! [`RefusalCounter`] counts the lines as stderr streams by (chunk boundaries anywhere).

/// The tracing target Codex logs a sandbox refusal under.
const TARGET: &str = "codex_sandboxing::violation";
/// The text of each refusal line.
const MARKER: &[u8] = b"recorded sandbox violation";

/// The `RUST_LOG` for Codex: the operator's own (or Codex's quiet default, `error`) plus
/// the refusal warnings.
pub fn rust_log(existing: Option<&str>) -> String {
    match existing.map(str::trim).filter(|s| !s.is_empty()) {
        Some(filter) => format!("{filter},{TARGET}=warn"),
        None => format!("error,{TARGET}=warn"),
    }
}

/// Counts refusal lines in a byte stream fed in arbitrary chunks.
#[derive(Debug, Default)]
pub struct RefusalCounter {
    /// The unfinished last line so far (at most a marker's length is kept).
    carry: Vec<u8>,
    count: u64,
}

impl RefusalCounter {
    /// Feed the next chunk of stderr.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.carry.extend_from_slice(chunk);
        let mut rest: &[u8] = &self.carry;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            if contains(&rest[..nl], MARKER) {
                self.count += 1;
            }
            rest = &rest[nl + 1..];
        }
        // Only the open line is carried; a marker split across chunks is still seen,
        // and a huge line without a newline cannot grow the buffer without bound.
        let keep = if contains(rest, MARKER) {
            // Already holds the marker: keep it, drop the rest of the line.
            MARKER.to_vec()
        } else {
            rest[rest.len().saturating_sub(MARKER.len() - 1)..].to_vec()
        };
        self.carry = keep;
    }

    /// Refusals seen, counting an unterminated last line.
    pub fn finish(self) -> u64 {
        self.count + u64::from(contains(&self.carry, MARKER))
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Lines Codex 0.169 printed with `RUST_LOG=warn`: a read-only write, a broken bwrap.
    const REAL: &str = "2026-11-25T17:28:57.145732Z  WARN codex_sandboxing::violation: recorded sandbox violation: resource=filesystem backend=linux_sandbox reason=read_only_file_system path=unknown\n\
        2026-11-25T17:28:51.407804Z  WARN codex_sandboxing::violation: recorded sandbox violation: resource=filesystem backend=linux_sandbox reason=permission_denied path=unknown\n\
        2026-11-25T17:28:51.413233Z  WARN codex_models_manager::model_info: Unknown model mock-model is used.\n";

    fn count_in_chunks(text: &[u8], size: usize) -> u64 {
        let mut c = RefusalCounter::default();
        for chunk in text.chunks(size) {
            c.feed(chunk);
        }
        c.finish()
    }

    #[test]
    fn each_refusal_line_counts_once_however_stderr_is_chunked() {
        for size in [1, 2, 7, 26, 64, 4096] {
            assert_eq!(
                count_in_chunks(REAL.as_bytes(), size),
                2,
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn an_unterminated_last_refusal_line_counts() {
        assert_eq!(
            count_in_chunks(b"x\nWARN recorded sandbox violation: y", 5),
            1
        );
    }

    #[test]
    fn other_output_counts_nothing_and_keeps_the_buffer_small() {
        let mut c = RefusalCounter::default();
        c.feed(&vec![b'a'; 1 << 20]);
        assert!(c.carry.len() < MARKER.len());
        assert_eq!(c.finish(), 0);
    }

    #[test]
    fn the_log_filter_keeps_the_operators_and_adds_the_refusals() {
        assert_eq!(rust_log(None), "error,codex_sandboxing::violation=warn");
        assert_eq!(
            rust_log(Some(" ")),
            "error,codex_sandboxing::violation=warn"
        );
        assert_eq!(
            rust_log(Some("info")),
            "info,codex_sandboxing::violation=warn"
        );
    }
}
