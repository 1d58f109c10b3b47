//! Bounded readers for the child's pipes: whatever Codex prints, memory stays capped.
//!
//! [`LineReader`] yields stdout one line at a time as it arrives, keeping at most
//! `max` bytes of any line (the rest is counted, not stored). [`TailBuffer`] keeps the
//! last bytes of stderr. [`strip_backtraces`] removes Rust backtraces from stderr, which
//! say nothing to a caller and would push the real message out of the tail.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One stdout line, possibly cut.
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    /// The kept bytes (without the newline).
    pub bytes: Vec<u8>,
    /// The line's real length; larger than `bytes.len()` when it was cut.
    pub len: usize,
}

impl Line {
    /// Whether the line was longer than the cap.
    pub fn truncated(&self) -> bool {
        self.len > self.bytes.len()
    }
}

/// Splits a byte stream into lines of at most `max` kept bytes. Cancel-safe.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    max: usize,
    buf: Vec<u8>,
    len: usize,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Read lines from `inner`, keeping at most `max` bytes of each.
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            max,
            buf: Vec::new(),
            len: 0,
        }
    }

    /// The next line, or `None` at end of stream.
    pub async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            // `fill_buf` is cancel-safe and all other state lives in `self`, so a
            // `select!` may drop this future between polls without losing bytes.
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                return Ok((self.len > 0 || !self.buf.is_empty()).then(|| self.take()));
            }
            match available.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let chunk = available[..i].to_vec();
                    self.inner.consume(i + 1);
                    self.push(&chunk);
                    return Ok(Some(self.take()));
                }
                None => {
                    let n = available.len();
                    let chunk = available.to_vec();
                    self.inner.consume(n);
                    self.push(&chunk);
                }
            }
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        self.len += chunk.len();
        let room = self.max.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    fn take(&mut self) -> Line {
        let mut bytes = std::mem::take(&mut self.buf);
        let mut len = std::mem::take(&mut self.len);
        if bytes.last() == Some(&b'\r') && len == bytes.len() {
            bytes.pop();
            len -= 1;
        }
        Line { bytes, len }
    }
}

/// Keeps the last `max` bytes written to it.
#[derive(Debug)]
pub struct TailBuffer {
    buf: Vec<u8>,
    max: usize,
}

impl TailBuffer {
    /// A buffer keeping `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max,
        }
    }

    /// Append bytes, forgetting the oldest beyond the cap.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
        // Trim in batches so a stream of small writes stays linear.
        if self.buf.len() > self.max.saturating_mul(2) {
            let cut = self.buf.len() - self.max;
            self.buf.drain(..cut);
        }
    }

    /// The kept tail, as text (invalid UTF-8 replaced).
    pub fn into_string(self) -> String {
        let start = self.buf.len().saturating_sub(self.max);
        String::from_utf8_lossy(&self.buf[start..]).into_owned()
    }
}

/// Drop Rust backtraces (`Stack backtrace:` and its indented frames) from stderr text.
pub fn strip_backtraces(text: &str) -> String {
    let mut out = Vec::new();
    let mut in_trace = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.eq_ignore_ascii_case("stack backtrace:") {
            in_trace = true;
            continue;
        }
        if in_trace && (line.starts_with(char::is_whitespace) || line.is_empty()) {
            continue;
        }
        in_trace = false;
        if trimmed.starts_with("note: run with `RUST_BACKTRACE=") {
            continue;
        }
        out.push(line);
    }
    let mut s = out.join("\n");
    while s.ends_with('\n') {
        s.pop();
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<Line> {
        let mut r = LineReader::new(tokio::io::BufReader::with_capacity(4, input), max);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().await.unwrap() {
            out.push(l);
        }
        out
    }

    #[tokio::test]
    async fn lines_split_on_newlines_across_small_reads() {
        let got = lines(b"one\ntwo\r\n\nthree", 100).await;
        let texts: Vec<&[u8]> = got.iter().map(|l| l.bytes.as_slice()).collect();
        assert_eq!(texts, [&b"one"[..], b"two", b"", b"three"]);
    }

    #[tokio::test]
    async fn an_overlong_line_is_cut_but_its_length_is_known() {
        let got = lines(b"0123456789\nok\n", 4).await;
        assert_eq!(
            got[0],
            Line {
                bytes: b"0123".to_vec(),
                len: 10
            }
        );
        assert!(got[0].truncated());
        assert_eq!(got[1].bytes, b"ok");
    }

    #[tokio::test]
    async fn non_utf8_bytes_pass_through_untouched() {
        let got = lines(&[0xff, 0xfe, b'\n'], 10).await;
        assert_eq!(got[0].bytes, [0xff, 0xfe]);
    }

    #[test]
    fn the_tail_buffer_keeps_only_the_last_bytes() {
        let mut t = TailBuffer::new(5);
        for _ in 0..100 {
            t.push(b"abc");
        }
        t.push(b"XYZ");
        assert_eq!(t.into_string(), "bcXYZ");
    }

    #[test]
    fn backtraces_are_removed_and_the_message_is_kept() {
        let stderr = "WARNING: something\nError: approval_policy = \"untrusted\" is no longer supported; remove this setting\n\nStack backtrace:\n   0: <unknown>\n   1: <unknown>\n";
        assert_eq!(
            strip_backtraces(stderr),
            "WARNING: something\nError: approval_policy = \"untrusted\" is no longer supported; remove this setting"
        );
    }
}
