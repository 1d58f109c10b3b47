#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use super::*;
use crate::audit::{AuditRecord, Outcome, PromptDigest};
use crate::run::{CallTransport, RunPath};

fn record(outcome: Outcome) -> AuditRecord {
    AuditRecord {
        time: now_rfc3339(),
        request_id: Some("r-1".into()),
        principal: "token:alice".into(),
        transport: CallTransport::Http,
        path: RunPath::Direct,
        cwd: Some("/srv/work".into()),
        sandbox: Some("read-only".into()),
        model: None,
        thread_id: None,
        outcome,
        reason: None,
        exit_code: Some(0),
        duration_ms: 12,
        input_tokens: 1,
        cached_input_tokens: 0,
        output_tokens: 2,
        commands: 3,
        files_changed: 0,
        prompt: PromptDigest::of("hello", false),
    }
}

fn open(path: &Path, keep_prompts: bool, max_bytes: u64, keep: u32) -> AuditLog {
    let limits = AuditLimits {
        max_bytes,
        keep,
        ..AuditLimits::default()
    };
    AuditLog::open(path, keep_prompts, limits, || {}).unwrap()
}

/// A FIFO in `dir` and its reader, held open but reading nothing yet: a file that takes
/// no more writes once the pipe (64 KiB) is full, as a stalled disk or shipper.
fn stalled_fifo(dir: &Path) -> (PathBuf, std::fs::File) {
    let path = dir.join("audit.fifo");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    (path, reader)
}

/// The FIFO read again, on a thread, to its end (when the writer closes it).
fn drain(reader: std::fs::File) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        use std::io::Read;
        let mut reader = reader;
        nix::fcntl::fcntl(
            &reader,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
        )
        .unwrap();
        let mut all = String::new();
        reader.read_to_string(&mut all).unwrap();
        all
    })
}

/// A record of about 2 KB, so a few dozen fill a pipe.
fn big_record() -> AuditRecord {
    let mut big = record(Outcome::Refused);
    big.reason = Some("r".repeat(1_500));
    big
}

#[test]
fn records_are_appended_one_line_each_to_a_private_file_and_survive_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path, false, AuditLimits::default(), || {}).unwrap();
    assert!(log.write(&record(Outcome::Ok)));
    assert!(log.write(&record(Outcome::Busy)));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // logrotate: move the file away, then SIGHUP → reopen by name.
    let rotated = dir.path().join("audit.jsonl.1");
    std::fs::rename(&path, &rotated).unwrap();
    assert!(log.write(&record(Outcome::Failed)));
    log.reopen();
    assert!(log.write(&record(Outcome::Refused)));

    assert!(log.flush());
    let old = std::fs::read_to_string(&rotated).unwrap();
    let new = std::fs::read_to_string(&path).unwrap();
    assert_eq!(old.lines().count(), 3);
    assert_eq!(new.lines().count(), 1);
    let line: serde_json::Value = serde_json::from_str(new.trim()).unwrap();
    assert_eq!(line["outcome"], "refused");
    assert_eq!(line["transport"], "http");
    assert_eq!(line["path"], "direct");
    assert_eq!(line["prompt"]["len"], 5);
}

#[test]
fn an_unopenable_path_is_a_clear_error() {
    let e = AuditLog::open(
        Path::new("/nonexistent-dir/audit.jsonl"),
        false,
        AuditLimits::default(),
        || {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("TWOBOT_AUDIT_LOG"), "{e}");
}

#[test]
fn caller_strings_are_cut_in_the_line_and_a_short_record_keeps_its_field_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = open(&path, false, 1 << 20, 1);
    assert!(log.write(&record(Outcome::Ok)));
    let mut hostile = record(Outcome::Refused);
    hostile.cwd = Some("/".repeat(100_000));
    hostile.model = Some("m".repeat(100_000));
    hostile.thread_id = Some("t".repeat(100_000));
    hostile.reason = Some(format!("cwd {} is outside", "x".repeat(100_000)));
    assert!(log.write(&hostile));
    assert!(log.flush());
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with(r#"{"time":"#), "{}", lines[0]);
    assert!(lines[1].len() < 2_000, "{} bytes", lines[1].len());
    let line: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    for (field, len) in [("cwd", 100_000), ("model", 100_000), ("thread_id", 100_000)] {
        let value = line[field].as_str().unwrap();
        assert!(value.ends_with(&format!("… [cut: {len} bytes]")), "{field}");
    }
    assert!(line["reason"].as_str().unwrap().starts_with("cwd xxx"));
}

#[test]
fn a_kept_prompt_stays_whole_unless_its_line_could_not_fit_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = open(&path, true, 64 * 1024, 1);
    let mut r = record(Outcome::Ok);
    r.prompt = PromptDigest::of(&"p".repeat(10_000), true);
    assert!(log.write(&r));
    r.prompt = PromptDigest::of(&"q".repeat(100_000), true);
    assert!(log.write(&r));
    assert!(log.flush());
    let text = std::fs::read_to_string(&path).unwrap();
    let texts: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["prompt"]["text"].to_string()
        })
        .collect();
    assert_eq!(texts[0].len(), 10_002, "kept whole, as asked");
    assert!(texts[1].contains("[cut: 100000 bytes]"), "{}", texts[1]);
}

#[test]
fn under_a_flood_no_file_exceeds_the_cap_and_only_keep_old_files_remain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let cap = 16 * 1024;
    let log = open(&path, false, cap, 2);
    let mut hostile = record(Outcome::Refused);
    hostile.cwd = Some("c".repeat(100_000));
    for _ in 0..1_000 {
        assert!(log.write(&hostile));
    }
    assert!(log.flush());
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]);
    for name in &names {
        let meta = std::fs::metadata(dir.path().join(name)).unwrap();
        assert!(meta.len() <= cap, "{name}: {} bytes", meta.len());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
    let full = std::fs::metadata(dir.path().join("audit.jsonl.1")).unwrap();
    assert!(full.len() > cap / 2, "a rotated file was filled first");

    let none = dir.path().join("none.jsonl");
    let log = open(&none, false, cap, 0);
    for _ in 0..100 {
        assert!(log.write(&hostile));
    }
    assert!(log.flush());
    assert!(std::fs::metadata(&none).unwrap().len() <= cap);
    assert!(
        !dir.path().join("none.jsonl.1").exists(),
        "KEEP=0 keeps none"
    );
}

#[test]
fn unauthenticated_refusals_become_one_summary_line_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = open(&path, false, 1 << 20, 1);
    assert!(log.unauthenticated("192.0.2.1", "missing"));
    for _ in 0..299 {
        assert!(!log.unauthenticated("192.0.2.1", "missing"));
    }
    assert!(log.write_summaries());
    assert!(log.flush());
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(line["kind"], "unauthenticated");
    assert_eq!(line["client"], "192.0.2.1");
    assert_eq!(line["refused"], 300);
    assert_eq!(line["reasons"]["missing"], 300);
}

#[test]
fn records_are_written_in_order_by_the_writer_thread_and_dropping_the_log_writes_what_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = open(&path, false, 1 << 30, 1);
    for n in 0..2_000u64 {
        let mut r = record(Outcome::Ok);
        r.duration_ms = n;
        assert!(log.write(&r));
    }
    drop(log);
    let text = std::fs::read_to_string(&path).unwrap();
    let order: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["duration_ms"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(order, (0..2_000).collect::<Vec<_>>());
}

/// A log whose reader stopped reading (a FIFO to a stalled shipper, like a disk that no
/// longer answers) holds up the writer thread, never the caller: records are queued
/// while the writer waits, and all of them arrive once the reader reads again.
#[test]
fn a_stalled_log_holds_up_its_writer_not_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let (path, reader) = stalled_fifo(dir.path());
    let log = std::sync::Arc::new(open(&path, false, 1 << 30, 1));
    let big = big_record();
    // Far more than a pipe holds (64 KiB): the writer blocks on the full pipe early on.
    let (done, finished) = std::sync::mpsc::channel();
    let caller = {
        let log = log.clone();
        std::thread::spawn(move || {
            for _ in 0..1_000 {
                assert!(log.write(&big));
            }
            let _ = done.send(());
        })
    };
    let unblocked = finished
        .recv_timeout(std::time::Duration::from_secs(10))
        .is_ok();
    // The reader reads again: every record arrives, whole and in order.
    let drain = drain(reader);
    caller.join().unwrap();
    assert!(unblocked, "the caller waited for the stalled reader");
    drop(log);
    let all = drain.join().unwrap();
    assert_eq!(all.lines().count(), 1_000);
    assert!(
        all.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
}

#[test]
fn every_record_the_writer_cannot_write_is_given_to_on_lost() {
    let lost = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = lost.clone();
    let log = AuditLog::open(
        Path::new("/dev/full"),
        false,
        AuditLimits::default(),
        move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        },
    )
    .unwrap();
    for _ in 0..3 {
        assert!(log.write(&record(Outcome::Ok)), "queued");
    }
    assert!(log.flush());
    assert_eq!(lost.load(std::sync::atomic::Ordering::SeqCst), 3);
}

/// A log whose file never takes another write does not keep its owner (the process at
/// exit) waiting: dropping it gives up after `DRAIN_ON_DROP`.
#[test]
fn dropping_a_log_that_takes_no_writes_gives_up_after_a_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (path, reader) = stalled_fifo(dir.path());
    let log = open(&path, false, 1 << 30, 1);
    let big = big_record();
    for _ in 0..100 {
        assert!(log.write(&big));
    }
    assert!(!log.flush_within(std::time::Duration::from_millis(200)));
    let (done, dropped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(log);
        let _ = done.send(());
    });
    let waited = dropped.recv_timeout(DRAIN_ON_DROP + std::time::Duration::from_secs(5));
    drop(reader);
    assert!(waited.is_ok(), "dropping the log waited past its bound");
}

/// Nor does a full queue: a flush gives up at its limit even when it cannot queue its
/// own request, and everything arrives once the file takes writes again.
#[test]
fn a_flush_gives_up_at_its_limit_even_with_the_queue_full() {
    let dir = tempfile::tempdir().unwrap();
    let (path, reader) = stalled_fifo(dir.path());
    let log = std::sync::Arc::new(open(&path, false, 1 << 30, 1));
    let big = big_record();
    let records = QUEUED_RECORDS + 200;
    let filler = {
        let log = log.clone();
        std::thread::spawn(move || {
            for _ in 0..records {
                assert!(log.write(&big));
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(!filler.is_finished(), "the queue is full: its caller waits");
    let t = std::time::Instant::now();
    assert!(!log.flush_within(std::time::Duration::from_millis(200)));
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
    let drain = drain(reader);
    filler.join().unwrap();
    drop(log);
    assert_eq!(drain.join().unwrap().lines().count(), records);
}
