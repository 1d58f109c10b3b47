//! Every string in an audit line is cut to [`CUT_AT`] bytes, and says so.
//!
//! A record carries what the caller sent (`cwd`, `model`, `thread_id`, a refusal's
//! reason quoting them, an OAuth client's id), and a caller controls their length: 300
//! requests with 100 KB strings once made 300 MB of audit log. Cutting the JSON value
//! just before it is written covers every field of every record kind, present and
//! future, without each record having to remember. A cut string keeps its first bytes
//! (at a character boundary) and ends with `… [cut: N bytes]`, N its full length, so a
//! reader knows it is not the whole value; marker included it is at most 256 bytes.

use serde_json::Value;

/// The most bytes of a caller's string an audit line keeps.
pub const CUT_AT: usize = 256;

/// Cut every string in `value` longer than [`CUT_AT`] bytes, except the one at `spare`
/// (a path of object keys, e.g. `["prompt", "text"]`), if given; `true` if any was cut.
pub fn cut_strings(value: &mut Value, spare: Option<&[&str]>) -> bool {
    match value {
        Value::String(s) => match cut(s) {
            Some(cut) => {
                *s = cut;
                true
            }
            None => false,
        },
        Value::Array(items) => {
            let mut any = false;
            for v in items.iter_mut() {
                any |= cut_strings(v, None);
            }
            any
        }
        Value::Object(map) => {
            let mut any = false;
            for (key, v) in map.iter_mut() {
                let spare = match spare {
                    Some([first, rest @ ..]) if first == key => {
                        if rest.is_empty() {
                            continue;
                        }
                        Some(rest)
                    }
                    _ => None,
                };
                any |= cut_strings(v, spare);
            }
            any
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// `s` cut to at most [`CUT_AT`] bytes, marker included (so a cut value is never cut
/// again), or `None` when it is short enough.
fn cut(s: &str) -> Option<String> {
    if s.len() <= CUT_AT {
        return None;
    }
    let marker = format!("… [cut: {} bytes]", s.len());
    let mut end = CUT_AT - marker.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Some(format!("{}{marker}", &s[..end]))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn long_strings_anywhere_are_cut_with_their_length_and_short_ones_kept() {
        let long = "a".repeat(100_000);
        let mut v = json!({
            "cwd": long, "model": "gpt-5", "nested": {"list": [long, 1, null]},
            "prompt": {"text": long, "len": 100_000},
        });
        assert!(cut_strings(&mut v, Some(&["prompt", "text"])));
        let tail = "… [cut: 100000 bytes]";
        let marker = format!("{}{tail}", "a".repeat(CUT_AT - tail.len()));
        assert_eq!(marker.len(), CUT_AT);
        assert_eq!(v["cwd"], marker.as_str());
        assert_eq!(v["nested"]["list"][0], marker.as_str());
        assert_eq!(v["model"], "gpt-5");
        assert_eq!(v["prompt"]["text"].as_str().map(str::len), Some(100_000));

        assert!(cut_strings(&mut v, None));
        assert_eq!(v["prompt"]["text"], marker.as_str());
        assert!(!cut_strings(&mut v, None), "nothing left to cut");
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let s = "é".repeat(200);
        let mut v = json!(s);
        cut_strings(&mut v, None);
        let cut = v.as_str().unwrap_or_default();
        assert!(cut.starts_with(&"é".repeat(100)), "{cut}");
        assert!(cut.len() <= CUT_AT, "{cut}");
        assert!(cut.ends_with("… [cut: 400 bytes]"), "{cut}");
        let exact = "x".repeat(CUT_AT);
        let mut v = json!(exact);
        assert!(!cut_strings(&mut v, None));
        assert_eq!(v, json!(exact), "exactly the limit is kept whole");
    }
}
