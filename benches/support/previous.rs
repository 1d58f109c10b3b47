//! The figures of the previous run, as BENCHMARKS.md's "Latest gateway run" section keeps
//! them (the tables this benchmark printed, pasted as they are), so every figure is
//! printed beside its previous value and the ratio: a change that costs speed shows in
//! the run that made it, not sessions later.

use std::collections::HashMap;

/// The heading of the section the previous figures are read from.
pub const SECTION: &str = "## Latest gateway run";

/// Previous figures by (table title, row label): the row's first value.
#[derive(Debug, Default)]
pub struct Previous(HashMap<(String, String), f64>);

fn cells(line: &str) -> Option<Vec<String>> {
    let inner = line.trim().strip_prefix('|')?.strip_suffix('|')?;
    Some(inner.split('|').map(|c| c.trim().to_owned()).collect())
}

/// The leading number of a cell (`62.4 ms`, `11 396`, `1.047x`), spaces between digit
/// groups allowed.
pub fn number(cell: &str) -> Option<f64> {
    let digits: String = cell
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ' ' || *c == '-')
        .filter(|c| *c != ' ')
        .collect();
    digits.parse().ok()
}

impl Previous {
    /// The figures of `markdown`'s [`SECTION`] (none if it has no such section).
    pub fn parse(markdown: &str) -> Self {
        let mut figures = HashMap::new();
        let mut in_section = false;
        let mut title: Option<String> = None;
        for line in markdown.lines() {
            if line.starts_with("## ") {
                in_section = line.trim() == SECTION;
                title = None;
                continue;
            }
            if !in_section {
                continue;
            }
            let Some(row) = cells(line) else {
                title = None;
                continue;
            };
            if row
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                continue;
            }
            match &title {
                None => title = row.first().cloned(),
                Some(t) => {
                    if let (Some(label), Some(value)) =
                        (row.first(), row.get(1).and_then(|v| number(v)))
                    {
                        figures.entry((t.clone(), label.clone())).or_insert(value);
                    }
                }
            }
        }
        Self(figures)
    }

    /// BENCHMARKS.md of this checkout.
    pub fn load() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
        std::fs::read_to_string(path).map_or_else(|_| Self::default(), |md| Self::parse(&md))
    }

    /// The two cells printed after a figure: the previous value and now / previous.
    pub fn beside(&self, title: &str, label: &str, now: f64) -> String {
        match self.0.get(&(title.to_owned(), label.to_owned())) {
            Some(before) if *before > 0.0 => format!("{before} | {:.2}x", now / before),
            Some(before) => format!("{before} | —"),
            None => "— | —".to_owned(),
        }
    }
}

/// Print a table whose rows are (label, cells); the first cell's leading number is the
/// figure compared with the previous run.
pub fn table(previous: &Previous, title: &str, columns: &[&str], rows: &[(String, Vec<String>)]) {
    println!(
        "\n| {title} | {} | previous | now / previous |",
        columns.join(" | ")
    );
    println!("|---|{}---|---|", "---|".repeat(columns.len()));
    for (label, values) in rows {
        let now = values.first().and_then(|v| number(v)).unwrap_or(0.0);
        println!(
            "| {label} | {} | {} |",
            values.join(" | "),
            previous.beside(title, label, now)
        );
    }
}
