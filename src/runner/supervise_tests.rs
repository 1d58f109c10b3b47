//! Unit tests of the run supervisor's command line (apart from supervise.rs so that file
//! reads as the code).

use super::*;

#[test]
fn the_command_line_round_trips() {
    let args = Args {
        parent: 42,
        grace: Duration::from_millis(3000),
        user: Some((1001, 1002, vec![1002, 27])),
        isolation: None,
        program: "/usr/bin/codex".into(),
        args: vec!["exec".into(), "--json".into(), "-".into()],
    };
    assert_eq!(Args::parse(&args.to_argv()), Ok(args.clone()));
    let no_user = Args {
        user: None,
        ..args.clone()
    };
    assert_eq!(Args::parse(&no_user.to_argv()), Ok(no_user));
    let isolated = Args {
        isolation: Some(crate::runner::namespace::Isolation {
            roots: vec!["/srv/a".into(), "/srv/b c".into()],
            binds: vec![
                ("/mnt/proj".into(), "/srv/a/proj".into()),
                ("/mnt/lib".into(), "/srv/b c/lib".into()),
            ],
        }),
        ..args
    };
    assert_eq!(Args::parse(&isolated.to_argv()), Ok(isolated));
}

#[test]
fn a_malformed_command_line_is_refused() {
    let argv = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
    assert!(Args::parse(&argv(&[])).is_err());
    assert!(Args::parse(&argv(&["0", "10", "-", "--", "x"])).is_err());
    assert!(Args::parse(&argv(&["1", "x", "-", "--", "x"])).is_err());
    assert!(Args::parse(&argv(&["1", "10", "-", "x"])).is_err());
    assert!(Args::parse(&argv(&["1", "10", "-", "--"])).is_err());
    assert!(Args::parse(&argv(&["1", "10", "a:b:", "--", "x"])).is_err());
    // Isolation needs at least its cwd, and a bind needs both names.
    assert!(Args::parse(&argv(&["1", "10", "-", "--isolate", "--", "x"])).is_err());
    assert!(Args::parse(&argv(&["1", "10", "-", "--isolate", "--bind", "/mnt/a"])).is_err());
}
