//! `2bot-mcp --print-config`: the configuration the server would run with, one
//! `VARIABLE=value` line per setting with where the value came from, secrets redacted.
//!
//! Operators reach for it when a setting "does not take": it answers which of flag,
//! environment, policy file or default won. It walks clap's own argument list, so a new
//! setting appears here without anyone remembering to add it; the few settings the
//! policy file can also supply are shown with their merged, effective value.

use std::fmt::Write as _;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};

use crate::config::{Cli, Config, PrincipalLimits};

/// Shown instead of a secret's value.
pub const REDACTED: &str = "<redacted>";

/// Arguments that are actions, not settings.
const NOT_SETTINGS: &[&str] = &["help", "version", "print_config"];

/// Render the effective configuration. `matches` are the parsed flags and environment;
/// `config` is what [`Config::load`] made of them and the policy file.
pub fn render(matches: &ArgMatches, config: &Config) -> String {
    let mut out = String::from(
        "# 2Bot effective configuration: flag > environment > policy file > default; secrets redacted\n",
    );
    let command = Cli::command();
    let policy_file = matches.get_raw("policy_file").is_some();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if NOT_SETTINGS.contains(&id) {
            continue;
        }
        let name = arg
            .get_env()
            .map(|e| e.to_string_lossy().into_owned())
            .or_else(|| arg.get_long().map(|l| format!("--{l}")))
            .unwrap_or_else(|| id.to_owned());
        let raw: Option<Vec<String>> = matches.get_raw(id).map(|values| {
            values
                .map(|v| v.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        });
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => "flag",
            Some(ValueSource::EnvVariable) => "environment",
            Some(ValueSource::DefaultValue) => "default",
            _ => "unset",
        };
        let parsed_bool = matches.try_get_one::<bool>(id).ok().flatten().copied();
        let effective = merged(&name, config, source, policy_file);
        // A merged value is shown as `merged` renders it (a URL without its password).
        let hidden = arg.is_hide_env_values_set() && effective.is_none();
        let (value, source) = match (effective, parsed_bool) {
            (Some(effective), _) => effective,
            // A boolean as it was read; what was typed, when that differs.
            (None, Some(parsed)) => {
                let typed = raw.and_then(|v| v.first().cloned()).unwrap_or_default();
                if source == "flag" || source == "environment" {
                    if typed == parsed.to_string() {
                        (typed, source.to_owned())
                    } else {
                        (parsed.to_string(), format!("{source} (typed {typed:?})"))
                    }
                } else {
                    (parsed.to_string(), source.to_owned())
                }
            }
            (None, None) if name == "TWOBOT_POLICY_FILE" && !policy_file => {
                (String::new(), "default: no policy file".to_owned())
            }
            (None, None) => {
                let delimiter = arg.get_value_delimiter().unwrap_or(',').to_string();
                let value = raw.map(|v| v.join(&delimiter)).unwrap_or_default();
                (value, source.to_owned())
            }
        };
        let value = if hidden && !value.is_empty() {
            REDACTED.to_owned()
        } else {
            value
        };
        let _ = writeln!(out, "{name}={value}  # {source}");
    }

    let _ = writeln!(out, "state: {}", state_backend(config));

    let p = &config.policy;
    let _ = writeln!(out, "# policy (TWOBOT_POLICY_FILE and the settings above)");
    let _ = writeln!(out, "sandbox_ceiling={}", p.sandbox_ceiling);
    let _ = writeln!(out, "default_cwd={}", p.default_cwd.display());
    let list = |v: &Option<Vec<String>>| v.as_ref().map_or("any".to_owned(), |v| v.join(","));
    let _ = writeln!(out, "allowed_models={}", list(&p.allowed_models));
    let _ = writeln!(out, "allowed_profiles={}", list(&p.allowed_profiles));
    for (scope, ceiling) in &p.scope_sandbox {
        let _ = writeln!(out, "scopes.{scope}={ceiling}");
    }
    let f = &p.features;
    let efforts = f.reasoning_effort.as_ref().map_or("any".to_owned(), |v| {
        v.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(",")
    });
    let _ = writeln!(
        out,
        "features: reasoning_effort={efforts} images={} (max {} x {} bytes) output_schema={} review={} (sandbox {}) fork={}",
        f.images,
        f.max_images,
        f.max_image_bytes,
        f.output_schema,
        f.review,
        f.review_sandbox,
        f.fork
    );
    let env = &config.runner.env;
    let _ = writeln!(out, "codex_env.inherit={}", env.inherit);
    let _ = writeln!(out, "codex_env.pass={}", env.pass.join(","));
    let _ = writeln!(out, "codex_env.remove={}", env.remove.join(","));
    // Values set for Codex are often its API keys: names only.
    for name in env.set.keys() {
        let _ = writeln!(out, "codex_env.set.{name}={REDACTED}");
    }
    out
}

/// Where the lasting state is kept: the shared database when its URL is set, else the
/// embedded SQLite in the state directory (or only in memory without one).
pub fn state_backend(config: &Config) -> String {
    match (&config.database_url, &config.state_dir) {
        (Some(_), _) => "postgres".to_owned(),
        (None, Some(dir)) => format!("sqlite ({})", dir.display()),
        (None, None) => "sqlite (in memory)".to_owned(),
    }
}

/// The effective value of a setting the policy file can also supply (or one shown in a
/// form of its own), and its source.
fn merged(
    name: &str,
    config: &Config,
    source: &str,
    policy_file: bool,
) -> Option<(String, String)> {
    let p = &config.policy;
    let from = |set_here: bool| {
        if set_here {
            source.to_owned()
        } else if policy_file {
            "policy file or default".to_owned()
        } else {
            "default".to_owned()
        }
    };
    let given = source == "flag" || source == "environment";
    Some(match name {
        "CODEX_ALLOWED_ROOTS" => (
            p.allowed_roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
            if p.allowed_roots.is_empty() {
                "unset: any directory".to_owned()
            } else {
                from(given)
            },
        ),
        "TWOBOT_MAX_CONCURRENT_RUNS" => {
            (config.limits.max_concurrent_runs.to_string(), from(given))
        }
        "TWOBOT_MAX_QUEUED_RUNS" => (config.limits.max_queued_runs.to_string(), from(given)),
        // Unset, it follows the global cap (one less), which the policy file may set.
        "TWOBOT_MAX_CONCURRENT_RUNS_PER_PRINCIPAL" => (
            config.per_principal.running.to_string(),
            if given {
                source.to_owned()
            } else {
                format!("default: {}", PrincipalLimits::RUNNING_DEFAULT)
            },
        ),
        "TWOBOT_MAX_TIMEOUT_SEC" => (p.max_timeout_sec.to_string(), from(given)),
        "TWOBOT_MAX_PROMPT_BYTES" => (p.max_prompt_bytes.to_string(), from(given)),
        "TWOBOT_ALLOW_DANGER_FULL_ACCESS" => (p.allow_danger_full_access.to_string(), from(given)),
        "TWOBOT_STATE_DIR" => (
            config
                .state_dir
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            if given {
                source.to_owned()
            } else if config.state_dir.is_some() {
                "default".to_owned()
            } else {
                "unset: in memory".to_owned()
            },
        ),
        "TWOBOT_DATABASE_URL" => (
            config
                .database_url
                .as_deref()
                .map(crate::state::redact_url)
                .unwrap_or_default(),
            if given {
                format!("{source}, password redacted")
            } else {
                "unset: state embedded in SQLite".to_owned()
            },
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn rendered(args: &[&str]) -> String {
        let matches = Cli::command().try_get_matches_from(args).unwrap();
        let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap();
        let config = Config::load(cli).unwrap();
        render(&matches, &config)
    }

    #[test]
    fn secrets_are_redacted_and_every_setting_names_its_source() {
        let out = rendered(&[
            "2bot-mcp",
            "--transport",
            "http",
            "--jwt-secret",
            "a-very-secret-value-of-32-bytes-or-more",
            "--auth-tokens",
            "alice:tok-alice-secret",
        ]);
        assert!(!out.contains("a-very-secret"), "{out}");
        assert!(!out.contains("tok-alice-secret"), "{out}");
        assert!(
            out.contains("TWOBOT_JWT_SECRET=<redacted>  # flag"),
            "{out}"
        );
        assert!(
            out.contains("TWOBOT_AUTH_TOKENS=<redacted>  # flag"),
            "{out}"
        );
        assert!(out.contains("TWOBOT_TRANSPORT=http  # flag"), "{out}");
        assert!(out.contains("TWOBOT_PORT=9000  # default"), "{out}");
        assert!(
            out.contains("TWOBOT_MAX_CONCURRENT_RUNS=4  # default"),
            "{out}"
        );
        assert!(
            out.contains(
                "TWOBOT_MAX_CONCURRENT_RUNS_PER_PRINCIPAL=3  # default: TWOBOT_MAX_CONCURRENT_RUNS - 1, at least 1"
            ),
            "{out}"
        );
        assert!(out.contains("TWOBOT_HTTP_PATH=/mcp  # default"), "{out}");
        assert!(out.contains("sandbox_ceiling=workspace-write"), "{out}");
        assert!(!out.contains("print_config"), "{out}");
    }

    #[test]
    fn the_database_url_is_shown_without_its_password_and_names_the_backend() {
        let out = rendered(&[
            "2bot-mcp",
            "--state-dir",
            "/var/lib/2bot",
            "--database-url",
            "postgres://bot:hunter2@db.internal/twobot?password=hunter3&sslmode=verify-full",
        ]);
        assert!(!out.contains("hunter"), "{out}");
        assert!(
            out.contains(
                "TWOBOT_DATABASE_URL=postgres://bot:***@db.internal/twobot?password=***&sslmode=verify-full  # flag, password redacted"
            ),
            "{out}"
        );
        assert!(out.contains("\nstate: postgres\n"), "{out}");
        let out = rendered(&["2bot-mcp", "--state-dir", "/var/lib/2bot"]);
        assert!(
            out.contains("TWOBOT_DATABASE_URL=  # unset: state embedded in SQLite"),
            "{out}"
        );
        assert!(out.contains("\nstate: sqlite (/var/lib/2bot)\n"), "{out}");
    }

    #[test]
    fn the_instance_address_is_shown_and_its_secret_redacted() {
        let out = rendered(&[
            "2bot-mcp",
            "--database-url",
            "postgres://bot@db/twobot",
            "--instance-url",
            "http://10.0.0.5:8811",
            "--instance-secret",
            "s3cret-s3cret-s3cret-s3cret-s3cret",
        ]);
        assert!(!out.contains("s3cret"), "{out}");
        assert!(
            out.contains("TWOBOT_INSTANCE_URL=http://10.0.0.5:8811  # flag"),
            "{out}"
        );
        assert!(
            out.contains("TWOBOT_INSTANCE_SECRET=<redacted>  # flag"),
            "{out}"
        );
    }

    #[test]
    fn an_unset_secret_is_shown_empty_not_redacted() {
        let out = rendered(&["2bot-mcp"]);
        assert!(out.contains("TWOBOT_JWT_SECRET=  # unset"), "{out}");
    }
}
