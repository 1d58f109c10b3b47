//! How `oauth list` shows the store's clients and grants: an aligned table, dates in UTC,
//! and every string from the database escaped before it reaches the operator's terminal
//! (whoever registered a client chose its name and id). Pure text, apart from the
//! commands in `mod.rs` that open the store, so it is tested without one.

use std::fmt::Write as _;

use crate::state::oauth::{ClientListing, GrantListing};

/// Longest client name shown (names come from whoever registered the client).
const NAME_CHARS: usize = 40;

/// The listing as a table: one line per client, its live grants indented below it.
pub(super) fn render(listing: &[ClientListing]) -> String {
    if listing.is_empty() {
        return "no clients\n".to_owned();
    }
    let mut clients = vec![row([
        "CLIENT",
        "KIND",
        "NAME",
        "REDIRECT HOSTS",
        "REGISTERED (UTC)",
    ])];
    clients.extend(listing.iter().map(|l| {
        let c = &l.client;
        vec![
            shown(&c.id),
            c.kind.as_str().to_owned(),
            shown_name(&c.name),
            redirect_hosts(&c.redirect_uris),
            utc(c.created_at),
        ]
    }));
    let clients = aligned(&clients);
    let mut out = format!("{}\n", clients[0]);
    for (l, line) in listing.iter().zip(&clients[1..]) {
        let _ = writeln!(out, "{line}");
        if l.grants.is_empty() {
            out.push_str("    (no live grants)\n");
            continue;
        }
        let mut grants = vec![row([
            "GRANT",
            "SCOPE",
            "CREATED",
            "LAST USED",
            "REFRESH EXPIRES",
        ])];
        grants.extend(l.grants.iter().map(grant_row));
        for line in aligned(&grants) {
            let _ = writeln!(out, "    {line}");
        }
    }
    let live: usize = listing.iter().map(|l| l.grants.len()).sum();
    let _ = writeln!(out, "{} client(s), {live} live grant(s)", listing.len());
    out
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

fn grant_row(g: &GrantListing) -> Vec<String> {
    let scope = if g.grant.scope.is_empty() {
        "-".to_owned()
    } else {
        shown(&g.grant.scope)
    };
    vec![
        shown(&g.grant.id),
        scope,
        utc(g.grant.created_at),
        utc(g.last_used_at),
        g.refresh_expires_at
            .map_or_else(|| "expired".to_owned(), utc),
    ]
}

/// Rows padded to their columns' widths, two spaces apart.
fn aligned(rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = Vec::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(max) => *max = (*max).max(w),
                None => widths.push(w),
            }
        }
    }
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (cell, width) in r.iter().zip(&widths) {
                let _ = write!(line, "{cell:<width$}  ");
            }
            line.trim_end().to_owned()
        })
        .collect()
}

/// The distinct hosts of the redirect URIs (a URI that does not parse is shown whole).
fn redirect_hosts(uris: &[String]) -> String {
    let mut hosts: Vec<String> = Vec::new();
    for uri in uris {
        let host = url::Url::parse(uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| uri.clone());
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    shown(&hosts.join(","))
}

/// A client's name as listed: [`shown`], cut after [`NAME_CHARS`] characters (ids are
/// never cut: the operator copies them into `oauth revoke`).
fn shown_name(name: &str) -> String {
    match name.char_indices().nth(NAME_CHARS) {
        Some((at, _)) => format!("{}…", shown(&name[..at])),
        None => shown(name),
    }
}

/// Text from the database as it may reach a terminal: control and bidirectional
/// formatting characters escaped (a client name or id is chosen by whoever registered the
/// client, and must not move the cursor or reorder the operator's screen).
pub fn shown(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC); a time outside the calendar's range as
/// `@<seconds>`.
pub fn utc(secs: i64) -> String {
    const SHOWN: &[time::format_description::BorrowedFormatItem<'_>] =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(SHOWN).ok())
        .unwrap_or_else(|| format!("@{secs}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn unix_seconds_read_as_utc_dates_across_leap_years_and_centuries() {
        let cases = [
            (0, "1970-01-01 00:00:00"),
            (951_782_400, "2000-02-29 00:00:00"),
            (1_700_000_000, "2023-11-14 22:13:20"),
            (4_107_542_399, "2100-02-28 23:59:59"),
            (4_107_542_400, "2100-03-01 00:00:00"),
            (-1, "1969-12-31 23:59:59"),
            (i64::MAX, "@9223372036854775807"),
        ];
        for (secs, expected) in cases {
            assert_eq!(utc(secs), expected, "{secs}");
        }
    }

    #[test]
    fn text_from_a_client_cannot_drive_the_terminal_and_a_long_name_is_cut() {
        let cases = [
            ("ChatGPT", "ChatGPT"),
            ("evil\x1b[2J", "evil\\u{1b}[2J"),
            ("a\nb", "a\\u{a}b"),
            ("\u{202e}txt.exe", "\\u{202e}txt.exe"),
        ];
        for (raw, expected) in cases {
            assert_eq!(shown(raw), expected);
        }
        let long = "é".repeat(100);
        assert_eq!(shown_name(&long), format!("{}…", "é".repeat(NAME_CHARS)));
        assert_eq!(shown(&long), long, "ids are never cut");
    }

    #[test]
    fn redirect_hosts_are_listed_once_each() {
        let uris = [
            "https://chatgpt.com/a".to_owned(),
            "https://chatgpt.com/b".to_owned(),
            "http://127.0.0.1:33418/cb".to_owned(),
        ];
        assert_eq!(redirect_hosts(&uris), "chatgpt.com,127.0.0.1");
    }
}
