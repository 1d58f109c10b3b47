//! Reading argv and the environment into [`Cli`], apart from clap's types in `cli.rs`
//! because it is about errors, not settings: clap's multi-line value errors become one
//! line naming the environment variable as well as the flag (exit 2), and the booleans
//! are kept as the operator typed them, so a later error quotes `off`, not `false`.

use std::ffi::OsString;

use clap::Parser;

use super::cli::Cli;

impl Cli {
    /// Parse argv and the environment; on bad input print one line naming the variable and exit 2.
    pub fn parse_or_exit() -> Self {
        Self::parse_with_matches_or_exit().0
    }

    /// [`Self::parse_or_exit`], also returning clap's matches (which say where each value came from).
    pub fn parse_with_matches_or_exit() -> (Self, clap::ArgMatches) {
        use clap::{CommandFactory, FromArgMatches};
        let parsed = Self::command()
            .try_get_matches_from(std::env::args_os())
            .and_then(|matches| {
                Self::from_arg_matches(&matches).map(|mut cli| {
                    cli.as_typed = booleans_as_typed(&matches);
                    (cli, matches)
                })
            })
            .map_err(name_the_variable);
        parsed.unwrap_or_else(|e| e.exit())
    }

    /// Parse, rewriting value errors so they name the environment variable as well as the flag.
    pub fn try_parse_from_env<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Self::try_parse_from(args).map_err(name_the_variable)
    }
}

/// The raw text of every boolean setting the operator gave (flag or environment).
fn booleans_as_typed(matches: &clap::ArgMatches) -> std::collections::BTreeMap<String, String> {
    use clap::CommandFactory;
    use clap::parser::ValueSource;
    let cmd = Cli::command();
    let mut typed = std::collections::BTreeMap::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        let given = matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        let is_bool = matches.try_get_one::<bool>(id).is_ok_and(|v| v.is_some());
        if let (true, true, Some(env), Some(mut raw)) =
            (given, is_bool, arg.get_env(), matches.get_raw(id))
            && let Some(value) = raw.next()
        {
            typed.insert(
                env.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            );
        }
    }
    typed
}

/// Turn clap's multi-line value errors into one line that names the variable.
fn name_the_variable(err: clap::Error) -> clap::Error {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return err;
    }
    let arg = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => return err,
    };
    let value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let flag = arg.split_whitespace().next().unwrap_or(&arg).to_owned();
    let cmd = Cli::command();
    let var = cmd
        .get_arguments()
        .find(|a| a.get_long().is_some_and(|l| format!("--{l}") == flag))
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned());
    let accepted = match err.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(v)) => format!("accepted: {}", v.join(", ")),
        _ => {
            // clap's own text ends with the reason after the last ": ".
            let rendered = err.to_string();
            let first = rendered.lines().next().unwrap_or_default().to_owned();
            first
                .rsplit_once(": ")
                .map(|(_, r)| r.to_owned())
                .unwrap_or(first)
        }
    };
    let name = match var {
        Some(var) => format!("{var} ({flag})"),
        None => flag,
    };
    clap::Error::raw(
        ErrorKind::ValueValidation,
        format!("{name}: invalid value {value:?}: {accepted}\n"),
    )
    .with_cmd(&cmd)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::config::Transport;

    #[test]
    fn the_seed_defaults_apply_with_no_flags() {
        let cli = Cli::try_parse_from_env(["2bot-mcp"]).unwrap();
        assert_eq!(cli.transport, Transport::Stdio);
        assert_eq!(cli.host.to_string(), "127.0.0.1");
        assert_eq!(cli.port, 9000);
        assert!(cli.enable_no_auth);
        assert_eq!(cli.log_level, "info");
    }

    #[test]
    fn flags_parse_and_a_bad_value_names_the_variable_in_one_line() {
        let cli =
            Cli::try_parse_from_env(["2bot-mcp", "--transport", "http", "--port", "1234"]).unwrap();
        assert_eq!(cli.transport, Transport::Http);
        assert_eq!(cli.port, 1234);
        let err = Cli::try_parse_from_env(["2bot-mcp", "--port", "http"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("TWOBOT_PORT (--port)"), "{text}");
        assert!(text.contains("\"http\""), "{text}");
        assert_eq!(text.trim_end().lines().count(), 1, "{text}");
        assert_eq!(err.exit_code(), 2);
    }
}
