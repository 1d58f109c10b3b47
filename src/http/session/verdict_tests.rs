//! Table tests of the session guard's decisions (apart from verdict.rs so that file reads
//! as the code).

use super::*;

#[test]
fn the_guard_decides_by_owner_by_count_and_by_share() {
    let post = Method::POST;
    let get = Method::GET;
    let seen = |session, owner, caller, live, held| Seen {
        session,
        owner,
        caller,
        live,
        held,
    };
    let cases = [
        (&post, seen(None, None, "alice", 0, 0), Verdict::Pass),
        (&post, seen(None, None, "alice", 1, 0), Verdict::Pass),
        (
            &post,
            seen(None, None, "alice", 2, 0),
            Verdict::TooManySessions,
        ),
        (
            &post,
            seen(None, None, "alice", 1, 1),
            Verdict::TooManyForPrincipal,
        ),
        (
            &post,
            seen(None, None, "alice", 2, 1),
            Verdict::TooManySessions,
        ),
        (&get, seen(None, None, "alice", 5, 5), Verdict::Pass),
        (
            &post,
            seen(Some("s1"), Some("alice"), "alice", 9, 9),
            Verdict::Pass,
        ),
        (
            &post,
            seen(Some("s1"), Some("alice"), "bob", 0, 0),
            Verdict::NotYours,
        ),
        (
            &Method::DELETE,
            seen(Some("s1"), Some("alice"), "bob", 0, 0),
            Verdict::NotYours,
        ),
        (
            &get,
            seen(Some("s1"), Some("alice"), "bob", 0, 0),
            Verdict::NotYours,
        ),
        // A live session without an owner serves no one.
        (
            &post,
            seen(Some("s1"), None, "alice", 1, 0),
            Verdict::NotYours,
        ),
        (
            &Method::DELETE,
            seen(Some("unknown"), None, "bob", 9, 0),
            Verdict::NotYours,
        ),
    ];
    for (method, seen, want) in cases {
        assert_eq!(decide(method, seen, 2, 1), want, "{method} {seen:?}");
    }
}
