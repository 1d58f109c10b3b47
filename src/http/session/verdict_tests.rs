//! Table tests of the session guard's decisions (apart from verdict.rs so that file reads
//! as the code).

use super::*;

#[test]
fn the_guard_decides_by_owner_by_count_and_by_share() {
    // A POST without a session id that may be an initialize, and any other request.
    let (post, get) = (true, false);
    let seen = |session, owner, caller, live, held| Seen {
        session,
        owner,
        caller,
        live,
        held,
    };
    let cases = [
        (post, seen(None, None, "alice", 0, 0), Verdict::Pass),
        (post, seen(None, None, "alice", 1, 0), Verdict::Pass),
        (
            post,
            seen(None, None, "alice", 2, 0),
            Verdict::TooManySessions,
        ),
        (
            post,
            seen(None, None, "alice", 1, 1),
            Verdict::TooManyForPrincipal,
        ),
        (
            post,
            seen(None, None, "alice", 2, 1),
            Verdict::TooManySessions,
        ),
        (get, seen(None, None, "alice", 5, 5), Verdict::Pass),
        (
            post,
            seen(Some("s1"), Some("alice"), "alice", 9, 9),
            Verdict::Pass,
        ),
        (
            post,
            seen(Some("s1"), Some("alice"), "bob", 0, 0),
            Verdict::NotYours,
        ),
        (
            get,
            seen(Some("s1"), Some("alice"), "bob", 0, 0),
            Verdict::NotYours,
        ),
        (
            get,
            seen(Some("s1"), Some("alice"), "bob", 0, 0),
            Verdict::NotYours,
        ),
        // A live session without an owner serves no one.
        (
            post,
            seen(Some("s1"), None, "alice", 1, 0),
            Verdict::NotYours,
        ),
        (
            get,
            seen(Some("unknown"), None, "bob", 9, 0),
            Verdict::NotYours,
        ),
    ];
    for (opens, seen, want) in cases {
        assert_eq!(decide(opens, seen, 2, 1), want, "{opens} {seen:?}");
    }
}

/// A request's method, its headers, and whether it may open a session.
type Case = (
    &'static Method,
    &'static [(&'static str, &'static str)],
    bool,
);

#[test]
fn only_a_post_that_may_be_an_initialize_may_open_a_session() {
    let cases: &[Case] = &[
        (&Method::POST, &[], true),
        (&Method::GET, &[], false),
        (&Method::DELETE, &[], false),
        (
            &Method::POST,
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list"),
            ],
            false,
        ),
        (
            &Method::POST,
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
            ],
            false,
        ),
        // A later version is checked as well.
        (
            &Method::POST,
            &[
                ("mcp-protocol-version", "2027-01-01"),
                ("mcp-method", "tools/list"),
            ],
            false,
        ),
        (
            &Method::POST,
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "initialize"),
            ],
            true,
        ),
        (
            &Method::POST,
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "INITIALIZE"),
            ],
            true,
        ),
        (
            &Method::POST,
            &[("mcp-protocol-version", "2026-07-28")],
            true,
        ),
        // rmcp does not check the method header of older versions.
        (
            &Method::POST,
            &[
                ("mcp-protocol-version", "2025-11-25"),
                ("mcp-method", "tools/list"),
            ],
            true,
        ),
        (&Method::POST, &[("mcp-method", "tools/list")], true),
        // Several values: rmcp refuses some, but the guard does not guess which.
        (
            &Method::POST,
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list"),
                ("mcp-method", "ping"),
            ],
            true,
        ),
        (
            &Method::POST,
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "ping"),
            ],
            true,
        ),
    ];
    for (method, headers, want) in cases {
        let mut map = HeaderMap::new();
        for (name, value) in *headers {
            map.append(*name, http::HeaderValue::from_static(value));
        }
        assert_eq!(opens_session(method, &map), *want, "{method} {headers:?}");
    }
}
