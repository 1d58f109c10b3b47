//! The stdout side of a run: [`Fold`] turns Codex's JSONL, line by line, into the
//! summary (and the opt-in event log), and [`Fold::finish`] turns that plus how the
//! process ended into the [`RunOutput`] every path returns, fitted to the reply budget
//! ([`super::bound`]). Split from the runner so the process handling reads on its own.

use std::process::ExitStatus;
use std::time::Duration;

use super::bound;
use super::io::Line;
use crate::codex::{SummaryBuilder, ThreadEvent};
use crate::run::RunOutput;

/// Why the read loop stopped before Codex finished on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stop {
    /// `timeout_sec` passed.
    TimedOut,
    /// The client cancelled (or the server shut down).
    Cancelled,
    /// Codex kept failing to reach its model; the sentence says which endpoint and why.
    ModelUnreachable(String),
}

/// Bytes of a turn's diff kept in memory; the reply budget may cut it further.
pub(super) const MAX_DIFF: usize = 128 * 1024;

/// Accumulates the stdout side of a run.
pub(super) struct Fold {
    summary: SummaryBuilder,
    events: Option<Vec<serde_json::Value>>,
    event_bytes: usize,
    max_event_bytes: usize,
    event_log_truncated: bool,
    progress: Option<tokio::sync::mpsc::Sender<String>>,
}

#[derive(Default)]
pub(super) struct Finish {
    pub status: Option<ExitStatus>,
    pub stop: Option<Stop>,
    pub stderr: String,
    /// Codex's sandbox refusals counted on stderr.
    pub sandbox_refused: u64,
    pub argv: Vec<String>,
    pub duration: Duration,
    pub timeout: Duration,
    /// The run's private names, when it was isolated: reported paths map back through it.
    pub view: Option<super::isolation::View>,
    /// The turn's unified diff (app-server).
    pub diff: Option<String>,
    /// Approval requests and their answers, in order (app-server).
    pub approvals: Vec<crate::run::control::ApprovalRecord>,
    /// Why the turn did not complete although Codex exited cleanly (app-server: an
    /// interrupted or failed turn, a server that ended early); replaces the generic text.
    pub incomplete: Option<String>,
}

impl Fold {
    pub fn new(
        config: &super::RunnerConfig,
        keep_events: bool,
        progress: Option<tokio::sync::mpsc::Sender<String>>,
    ) -> Self {
        Self {
            summary: SummaryBuilder::new(),
            events: keep_events.then(Vec::new),
            event_bytes: 0,
            max_event_bytes: config.max_event_log_bytes,
            event_log_truncated: false,
            progress,
        }
    }

    pub fn line(&mut self, line: Line) {
        if line.truncated() {
            self.summary.unrecognized();
            self.keep(
                serde_json::json!({"type": "2bot.oversized_line", "bytes": line.len}),
                64,
            );
            return;
        }
        match ThreadEvent::parse(&line.bytes) {
            Some(event) => {
                self.event(&event);
                if self.events.is_some()
                    && let Ok(value) = serde_json::from_slice(&line.bytes)
                {
                    self.keep(value, line.len);
                }
            }
            None if line.bytes.iter().all(u8::is_ascii_whitespace) => {}
            None => {
                self.summary.unrecognized();
                let text = String::from_utf8_lossy(&line.bytes).into_owned();
                self.keep(
                    serde_json::json!({"type": "2bot.unparsed_line", "line": text}),
                    line.len,
                );
            }
        }
    }

    /// Fold one event in (a line of exec, or what the app-server fold made of a message).
    pub fn event(&mut self, event: &ThreadEvent) {
        if let Some(message) = self.summary.apply(event)
            && let Some(progress) = &self.progress
        {
            // Lossy by design: a slow client must never stall Codex's stdout.
            let _ = progress.try_send(message);
        }
    }

    /// Keep one raw message in the opt-in event log (app-server: the JSON-RPC message).
    pub fn keep_raw(&mut self, line: &Line) {
        if self.events.is_some() {
            match serde_json::from_slice(&line.bytes) {
                Ok(value) => self.keep(value, line.len),
                Err(_) => self.unparsed(line),
            }
        }
    }

    /// A line that is no message at all.
    pub fn unparsed(&mut self, line: &Line) {
        self.summary.unrecognized();
        let text = String::from_utf8_lossy(&line.bytes).into_owned();
        self.keep(
            serde_json::json!({"type": "2bot.unparsed_line", "line": text}),
            line.len,
        );
    }

    /// Whether Codex is retrying its model connection right now.
    pub fn reconnecting(&self) -> bool {
        self.summary.reconnecting()
    }

    /// Codex's latest error.
    pub fn last_error(&self) -> Option<&str> {
        self.summary.last_error()
    }

    fn keep(&mut self, value: serde_json::Value, size: usize) {
        let Some(events) = self.events.as_mut() else {
            return;
        };
        if self.event_bytes + size > self.max_event_bytes {
            self.event_log_truncated = true;
            return;
        }
        self.event_bytes += size;
        events.push(value);
    }

    pub fn finish(self, f: Finish) -> RunOutput {
        let exit_code = f.status.and_then(|s| s.code());
        let timed_out = f.stop == Some(Stop::TimedOut);
        let cancelled = f.stop == Some(Stop::Cancelled);
        let last_error = self.summary.last_error().map_or_else(
            || "; Codex reported no error before that".to_owned(),
            |e| format!("; Codex's last error: {e}"),
        );
        let turn_failed = self.summary.turn_failed().map(str::to_owned);
        let turn_completed = self.summary.turn_completed();
        let mut summary = self.summary.finish();
        summary.approvals = f.approvals;
        if let Some(diff) = f.diff {
            let kept = crate::codex::summary::cap_head(&diff, MAX_DIFF);
            summary.truncated.diff_bytes_cut = (diff.len() - kept.len()) as u64;
            summary.diff = Some(kept);
        }
        if let Some(view) = &f.view {
            // The caller knows the real directories, not the run's private names.
            for change in &mut summary.file_changes {
                change.path = view.to_real(&change.path);
            }
        }
        if let Some(warning) = refusal_warning(f.sandbox_refused) {
            summary.warnings.push(warning);
        }
        let error = match f.stop {
            Some(Stop::Cancelled) => Some(
                "cancelled: the call was cancelled, so Codex and its commands were stopped; partial output is kept"
                    .to_owned(),
            ),
            Some(Stop::TimedOut) => Some(format!(
                "timed out after {} s (timeout_sec): Codex and its commands were killed; partial output is kept{last_error}",
                f.timeout.as_secs()
            )),
            Some(Stop::ModelUnreachable(reason)) => Some(reason),
            None => match (f.status, turn_failed) {
                (_, Some(message)) => Some(format!("Codex turn failed: {message}")),
                (Some(status), None) if !status.success() => Some(match status.code() {
                    Some(code) => format!("Codex exited with status {code}: {}", stderr_reason(&f.stderr, &summary.errors)),
                    None => format!("Codex was killed by a signal ({status})"),
                }),
                (Some(_), None) if !turn_completed && f.incomplete.is_some() => f.incomplete,
                (Some(_), None) if !turn_completed => Some(format!(
                    "Codex exited without completing its turn: {}",
                    stderr_reason(&f.stderr, &summary.errors)
                )),
                (None, None) => Some("Codex's exit status could not be read".to_owned()),
                _ => None,
            },
        };
        let mut output = RunOutput {
            ok: error.is_none(),
            exit_code,
            timed_out,
            cancelled,
            error,
            duration_ms: nearest_ms(f.duration),
            argv: f.argv,
            stderr_tail: f.stderr,
            sandbox_refused: f.sandbox_refused,
            summary,
            events: self.events,
            event_log_truncated: self.event_log_truncated,
            output: None,
        };
        bound::fit(&mut output, bound::REPLY_BUDGET);
        output
    }
}

/// The warning a run with sandbox refusals carries, for the caller and the model.
pub fn refusal_warning(refused: u64) -> Option<String> {
    (refused > 0).then(|| {
        format!(
            "Codex's sandbox refused {refused} operation(s) in this run: a command may have failed or not run at all, even if it is not listed in commands. If no command can run, `2bot-mcp doctor` checks the sandbox on this machine."
        )
    })
}

/// The most telling line of a failed run: Codex's `Error:` line, else the last stream error,
/// else the last stderr line.
pub(super) fn stderr_reason(stderr: &str, errors: &[String]) -> String {
    let lines = || stderr.lines().map(str::trim).filter(|l| !l.is_empty());
    lines()
        .rfind(|l| l.starts_with("Error:") || l.starts_with("error:"))
        .map(|l| {
            l.trim_start_matches("Error:")
                .trim_start_matches("error:")
                .trim()
                .to_owned()
        })
        .or_else(|| errors.last().cloned())
        .or_else(|| lines().next_back().map(str::to_owned))
        .unwrap_or_else(|| "no error message (see stderr_tail and events)".to_owned())
}

/// Milliseconds to the nearest one: truncating would call a 0.9 ms run 0 ms and put
/// half a millisecond on average on whatever is measured as "the rest" of a call.
fn nearest_ms(d: Duration) -> u64 {
    u64::try_from(d.as_micros().saturating_add(500) / 1000).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_rounded_to_the_nearest_millisecond() {
        for (micros, ms) in [
            (0, 0),
            (499, 0),
            (500, 1),
            (900, 1),
            (58_499, 58),
            (58_500, 59),
        ] {
            assert_eq!(nearest_ms(Duration::from_micros(micros)), ms, "{micros} µs");
        }
        assert_eq!(nearest_ms(Duration::MAX), u64::MAX);
    }

    #[test]
    fn the_error_line_wins_over_warnings_in_stderr() {
        let stderr = "WARNING: proceeding\nError: approval_policy = \"untrusted\" is no longer supported; remove this setting";
        assert_eq!(
            stderr_reason(stderr, &[]),
            "approval_policy = \"untrusted\" is no longer supported; remove this setting"
        );
        assert_eq!(stderr_reason("", &["stream broke".into()]), "stream broke");
        assert_eq!(stderr_reason("just this\n", &[]), "just this");
    }
}
