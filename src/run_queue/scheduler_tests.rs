//! Unit tests of the run queue's scheduler: its decisions as tables (apart from
//! scheduler.rs so that file reads as the code).

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

fn key(name: &str) -> QuotaKey {
    QuotaKey(name.to_owned())
}

/// Limits without a per-principal slot cap (one principal may take every slot).
fn limits(running: usize, queued: usize, per: usize) -> QueueLimits {
    capped(running, queued, per, running)
}

fn capped(running: usize, queued: usize, per: usize, running_per: usize) -> QueueLimits {
    QueueLimits {
        running,
        queued,
        queued_per_principal: per,
        running_per_principal: running_per,
    }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// principal, ticket, expected answer
    Admit(&'static str, u64, Result<Slot, QueueRefusal>),
    /// a run of this principal ends; the ticket that gets its slot
    Finish(&'static str, Option<u64>),
    /// a waiting ticket withdraws; whether it was still waiting
    Withdraw(&'static str, u64, bool),
}
use Slot::{Queued as Q, Start as S};
use Step::{Admit, Finish, Withdraw};

const BUSY_1_4: QueueRefusal = QueueRefusal::Busy {
    running: 1,
    queued: 4,
};

#[test]
fn the_scheduler_is_bounded_and_fair_between_principals() {
    let table: &[(&str, QueueLimits, &[Step])] = &[
        (
            "a free slot starts at once; beyond slots the call waits; beyond the queue, busy",
            limits(1, 4, 4),
            &[
                Admit("a", 1, Ok(S)),
                Admit("a", 2, Ok(Q)),
                Admit("b", 3, Ok(Q)),
                Admit("c", 4, Ok(Q)),
                Admit("d", 5, Ok(Q)),
                Admit("e", 6, Err(BUSY_1_4)),
            ],
        ),
        (
            "one principal holds at most its share of the queue; others still get places",
            limits(1, 4, 2),
            &[
                Admit("a", 1, Ok(S)),
                Admit("a", 2, Ok(Q)),
                Admit("a", 3, Ok(Q)),
                Admit(
                    "a",
                    4,
                    Err(QueueRefusal::PrincipalQueueFull { per_principal: 2 }),
                ),
                Admit("b", 5, Ok(Q)),
            ],
        ),
        (
            "a newcomer's first call takes the next free slot, ahead of a long backlog",
            limits(2, 8, 8),
            &[
                Admit("a", 1, Ok(S)),
                Admit("a", 2, Ok(S)),
                Admit("a", 3, Ok(Q)),
                Admit("a", 4, Ok(Q)),
                Admit("a", 5, Ok(Q)),
                Admit("b", 6, Ok(Q)),
                Finish("a", Some(6)),
                Finish("a", Some(3)),
            ],
        ),
        (
            "busy principals take turns (round-robin), each in its own FIFO order",
            limits(1, 8, 8),
            &[
                Admit("a", 1, Ok(S)),
                Admit("a", 2, Ok(Q)),
                Admit("a", 3, Ok(Q)),
                Admit("b", 4, Ok(Q)),
                Admit("b", 5, Ok(Q)),
                Admit("c", 6, Ok(Q)),
                Finish("a", Some(4)),
                Finish("b", Some(6)),
                Finish("c", Some(2)),
                Finish("a", Some(5)),
                Finish("b", Some(3)),
                Finish("a", None),
            ],
        ),
        (
            "two newcomers go in the order they arrived",
            limits(1, 8, 8),
            &[
                Admit("a", 1, Ok(S)),
                Admit("a", 2, Ok(Q)),
                Admit("c", 3, Ok(Q)),
                Admit("b", 4, Ok(Q)),
                Finish("a", Some(3)),
                Finish("c", Some(4)),
                Finish("b", Some(2)),
            ],
        ),
        (
            "a withdrawn call never gets a slot and frees its place",
            limits(1, 1, 1),
            &[
                Admit("a", 1, Ok(S)),
                Admit("b", 2, Ok(Q)),
                Admit(
                    "c",
                    3,
                    Err(QueueRefusal::Busy {
                        running: 1,
                        queued: 1,
                    }),
                ),
                Withdraw("b", 2, true),
                Withdraw("b", 2, false),
                Admit("c", 3, Ok(Q)),
                Finish("a", Some(3)),
                Finish("c", None),
                Admit("d", 4, Ok(S)),
            ],
        ),
        (
            "a call whose slot was already handed over cannot withdraw",
            limits(1, 2, 2),
            &[
                Admit("a", 1, Ok(S)),
                Admit("b", 2, Ok(Q)),
                Finish("a", Some(2)),
                Withdraw("b", 2, false),
            ],
        ),
        (
            "no queue at all: busy as soon as the slots are taken",
            limits(1, 0, 8),
            &[
                Admit("a", 1, Ok(S)),
                Admit(
                    "b",
                    2,
                    Err(QueueRefusal::Busy {
                        running: 1,
                        queued: 0,
                    }),
                ),
            ],
        ),
    ];
    run_table(table);
    let _ = BUSY_1_4;
}

fn run_table(table: &[(&str, QueueLimits, &[Step])]) {
    for (name, limits, steps) in table {
        let mut s = Scheduler::new(*limits);
        for (i, step) in steps.iter().enumerate() {
            match *step {
                Admit(k, t, want) => {
                    assert_eq!(s.admit(&key(k), t), want, "{name}: step {i} {step:?}")
                }
                Finish(k, want) => assert_eq!(
                    s.finish(&key(k)).map(|(_, t)| t),
                    want,
                    "{name}: step {i} {step:?}"
                ),
                Withdraw(k, t, want) => {
                    assert_eq!(s.withdraw(&key(k), t), want, "{name}: step {i} {step:?}")
                }
            }
        }
    }
}

/// Issue 19 point 8: one principal's long runs must not hold every slot.
#[test]
fn a_principal_at_its_running_cap_waits_while_another_principal_starts_at_once() {
    let table: &[(&str, QueueLimits, &[Step])] = &[
        (
            "a fills its cap and queues; b takes the free slot at once, ahead of a's queue",
            capped(4, 16, 8, 3),
            &[
                Admit("a", 1, Ok(S)),
                Admit("a", 2, Ok(S)),
                Admit("a", 3, Ok(S)),
                Admit("a", 4, Ok(Q)),
                Admit("a", 5, Ok(Q)),
                Admit("b", 6, Ok(S)),
                // b holds the last slot: its next call waits (the slots are full).
                Admit("b", 7, Ok(Q)),
                // a's run ends: its slot goes to whoever was served least recently (a).
                Finish("a", Some(4)),
                Finish("b", Some(7)),
            ],
        ),
        (
            "a capped principal's queued share still applies",
            capped(4, 16, 2, 2),
            &[
                Admit("a", 1, Ok(S)),
                Admit("a", 2, Ok(S)),
                Admit("a", 3, Ok(Q)),
                Admit("a", 4, Ok(Q)),
                Admit(
                    "a",
                    5,
                    Err(QueueRefusal::PrincipalQueueFull { per_principal: 2 }),
                ),
                Admit("b", 6, Ok(S)),
                Admit("c", 7, Ok(S)),
            ],
        ),
        (
            "a free slot is not handed to a waiter at its cap; its own run's end is",
            capped(3, 8, 8, 1),
            &[
                Admit("a", 1, Ok(S)),
                Admit("a", 2, Ok(Q)),
                Admit("b", 3, Ok(S)),
                Finish("b", None),
                Finish("a", Some(2)),
                Finish("a", None),
            ],
        ),
        (
            "a cap above the slots is the slots; zero is one",
            capped(2, 8, 8, 0),
            &[
                Admit("a", 1, Ok(S)),
                Admit("a", 2, Ok(Q)),
                Admit("b", 3, Ok(S)),
            ],
        ),
    ];
    run_table(table);
    let mut s = Scheduler::new(capped(2, 8, 8, 9));
    assert_eq!(s.admit(&key("a"), 1), Ok(S));
    assert_eq!(s.admit(&key("a"), 2), Ok(S));
}

#[test]
fn an_idle_scheduler_forgets_every_principal() {
    let mut s = Scheduler::new(limits(1, 4, 4));
    s.admit(&key("a"), 1).unwrap();
    s.admit(&key("b"), 2).unwrap();
    s.admit(&key("c"), 3).unwrap();
    assert!(s.withdraw(&key("c"), 3));
    assert_eq!(s.finish(&key("a")).map(|(_, t)| t), Some(2));
    assert_eq!(s.finish(&key("b")), None);
    assert!(s.keys.is_empty());
    assert_eq!(s.load(), (0, 0));
}
