//! Unit tests of the process-table reading: `/proc/<pid>/stat` parsing and the
//! descendant walk.

use super::*;

#[test]
fn stat_lines_with_odd_command_names_are_read_after_the_last_parenthesis() {
    assert_eq!(parse_stat("123 (sh) S 77 123 123 0 -1"), Some((77, 'S')));
    assert_eq!(parse_stat("9 (a) b) (c) Z 1 9 9 0 -1"), Some((1, 'Z')));
    assert_eq!(parse_stat("garbage"), None);
}

#[test]
fn descendants_include_grandchildren_but_not_the_root_or_strangers() {
    let table = BTreeMap::from([(10, 1), (11, 10), (12, 11), (13, 12), (20, 1), (21, 20)]);
    let found: Vec<i32> = descendants(Pid::from_raw(10), &table)
        .into_iter()
        .map(Pid::as_raw)
        .collect();
    assert_eq!(found, [11, 12, 13]);
}
