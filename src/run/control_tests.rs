//! Table and timing tests of [`super`]: every request is answered exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

fn command() -> ApprovalRequest {
    ApprovalRequest {
        kind: ApprovalKind::Command {
            command: "make".into(),
            cwd: "/p".into(),
        },
        reason: None,
    }
}

fn reachable(timeout_ms: u64) -> Arc<RunControl> {
    Arc::new(RunControl::new(ControlConfig {
        approval_timeout: Duration::from_millis(timeout_ms),
        reachable: true,
    }))
}

#[tokio::test]
async fn an_unreachable_caller_is_declined_at_once_with_the_reason() {
    let control = RunControl::default();
    let record = control.ask(command()).await;
    assert_eq!(record.decision, Decision::Decline);
    assert_eq!(record.channel, Channel::Unreachable);
    assert!(record.note.unwrap_or_default().contains("no way to ask"));
    assert!(control.pending().is_empty());
}

#[tokio::test]
async fn an_answer_reaches_the_asker_and_is_recorded_once() {
    let control = reachable(10_000);
    let asker = tokio::spawn({
        let control = control.clone();
        async move { control.ask(command()).await }
    });
    let mut changed = control.changed();
    while control.pending().is_empty() {
        changed.changed().await.unwrap();
    }
    let pending = control.pending();
    assert_eq!(pending[0].id, "a1");
    assert_eq!(pending[0].token.len(), 32);
    let accept = Answer {
        decision: Decision::Accept,
        channel: Channel::Card,
        by: Some("alice".into()),
        note: None,
    };
    control.answer("a1", accept.clone()).unwrap();
    let record = asker.await.unwrap();
    assert_eq!(
        (record.decision, record.channel),
        (Decision::Accept, Channel::Card)
    );
    assert_eq!(record.answered_by.as_deref(), Some("alice"));
    assert_eq!(
        control.answer("a1", accept),
        Err(ControlError::NotPending("a1".into()))
    );
    assert_eq!(control.decided().len(), 1);
    assert!(control.pending().is_empty());
}

#[tokio::test]
async fn nobody_answering_declines_after_the_timeout() {
    let control = reachable(50);
    let record = control.ask(command()).await;
    assert_eq!(
        (record.decision, record.channel),
        (Decision::Decline, Channel::Timeout)
    );
    assert!(control.pending().is_empty());
}

#[tokio::test]
async fn ending_the_run_declines_what_waits() {
    let control = reachable(10_000);
    let asker = tokio::spawn({
        let control = control.clone();
        async move { control.ask(command()).await }
    });
    let mut changed = control.changed();
    while control.pending().is_empty() {
        changed.changed().await.unwrap();
    }
    control.end();
    let record = asker.await.unwrap();
    assert_eq!(
        (record.decision, record.channel),
        (Decision::Decline, Channel::RunEnded)
    );
    assert_eq!(control.ask(command()).await.channel, Channel::RunEnded);
}

#[tokio::test]
async fn a_run_whose_runner_takes_no_steering_cannot_be_steered() {
    let control = RunControl::default();
    assert_eq!(
        control.steer("x".into()).await,
        Err(ControlError::NotSteerable)
    );
    let mut rx = control.take_steering().unwrap();
    let steer = tokio::spawn({
        let control = Arc::new(control);
        async move { control.steer("go left".into()).await }
    });
    let got = rx.recv().await.unwrap();
    assert_eq!(got.message, "go left");
    got.done
        .send(Err(ControlError::Refused("no active turn".into())))
        .unwrap();
    assert_eq!(
        steer.await.unwrap(),
        Err(ControlError::Refused("no active turn".into()))
    );
}

#[test]
fn decisions_and_channels_are_spelled_as_the_metric_labels() {
    assert_eq!(Decision::Accept.as_str(), "accept");
    assert_eq!(Channel::InputRequired.as_str(), "input_required");
    assert_eq!(
        serde_json::to_value(Channel::RunEnded).unwrap(),
        serde_json::json!("run_ended")
    );
}
