//! Value parsers shared by several settings, so each kind of value is accepted the same
//! way everywhere and refused with the same words (booleans, log levels, URLs).

/// Every boolean setting accepts these spellings, in any case.
pub const BOOL_SPELLINGS: &str = "true, false, 1, 0, yes, no, on, off";

/// `true/false`, `1/0`, `yes/no`, `on/off`, any case (see [`BOOL_SPELLINGS`]).
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("accepted (any case) {BOOL_SPELLINGS}")),
    }
}

/// Python's level names (the seed's), case-insensitive, or a tracing filter directive.
pub fn parse_log_level(s: &str) -> Result<String, String> {
    let level = match s.trim().to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" | "WARNING" => "warn",
        "ERROR" | "CRITICAL" | "FATAL" => "error",
        "OFF" => "off",
        _ => {
            // A bare word in a filter is a *target*: `verbose` would mean "only the
            // target named verbose", which silently turns every log line off.
            const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
            if let Some(word) = s.split(',').map(str::trim).find(|part| {
                !part.is_empty()
                    && !part.contains(['=', '['])
                    && !LEVELS.iter().any(|l| part.eq_ignore_ascii_case(l))
            }) {
                return Err(format!(
                    "{word:?} is not a level; expected TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL, OFF or filter directives such as twobot=debug,rmcp=info"
                ));
            }
            return tracing_subscriber::EnvFilter::builder()
                .parse(s)
                .map(|_| s.to_owned())
                .map_err(|e| {
                    format!("expected DEBUG, INFO, WARNING, ERROR, CRITICAL or a tracing filter such as `twobot=debug,info` ({e})")
                });
        }
    };
    Ok(level.to_owned())
}

/// An absolute http(s) URL without query or fragment.
pub(super) fn parse_base_url(s: &str) -> Result<String, String> {
    let uri: http::Uri = s
        .parse()
        .map_err(|e| format!("expected an absolute URL such as https://mcp.example.com ({e})"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("https" | "http"), Some(_)) if uri.query().is_none() => {
            Ok(s.trim_end_matches('/').to_owned())
        }
        _ => Err("expected an absolute http(s) URL such as https://mcp.example.com".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn python_level_names_and_filters_are_accepted() {
        for (given, expected) in [
            ("INFO", "info"),
            ("warning", "warn"),
            ("Critical", "error"),
            ("DEBUG", "debug"),
            ("twobot=debug,info", "twobot=debug,info"),
        ] {
            assert_eq!(parse_log_level(given).unwrap(), expected);
        }
        assert!(parse_log_level("LOUD=").is_err() || parse_log_level("[[[").is_err());
        for word in ["verbose", "info,verbose", "twobot"] {
            let e = parse_log_level(word).unwrap_err();
            assert!(e.contains("is not a level"), "{word}: {e}");
        }
    }

    #[test]
    fn booleans_accept_the_usual_spellings_and_refuse_others() {
        assert_eq!(parse_bool("TRUE"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert_eq!(parse_bool("off"), Ok(false));
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn base_urls_must_be_absolute_http() {
        assert_eq!(
            parse_base_url("https://mcp.example.com/").unwrap(),
            "https://mcp.example.com"
        );
        assert!(parse_base_url("mcp.example.com").is_err());
        assert!(parse_base_url("ftp://x").is_err());
    }
}
