//! Who issues the tokens the MCP endpoint accepts: no one (no-auth mode), the operator's
//! own credentials and issuer, or the built-in authorization server. Decided once here,
//! where the switches live, so the HTTP settings read one [`Issuance`] instead of
//! branching on `TWOBOT_OAUTH_BUILTIN` themselves, and `doctor` sees the same verdict.

use super::http::HttpArgs;
use super::oauth::builtin_conflicts;
use super::{Config, ConfigError};

/// Who issues the tokens the MCP endpoint accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issuance {
    /// `TWOBOT_ENABLE_NO_AUTH=true`: no token is asked for.
    NoAuth,
    /// Static tokens and JWTs the operator configures (at least one of them is needed).
    Operator {
        /// `TWOBOT_JWT_ISSUER`: the `iss` a JWT must carry, if set.
        issuer: Option<String>,
        /// `TWOBOT_AUTH_SERVERS`: what the protected-resource metadata names.
        auth_servers: Vec<String>,
    },
    /// The built-in authorization server at the base URL: the only issuer (static
    /// tokens may stay beside it).
    BuiltIn {
        /// `TWOBOT_BASE_URL`: the issuer and the one authorization server.
        base_url: String,
    },
}

/// Why the switches cannot work together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clash {
    /// The built-in server issues tokens that no-auth mode would never ask for.
    BuiltInWithoutAuth,
    /// The built-in server's issuer is the base URL, so it must be set.
    BuiltInWithoutBaseUrl,
    /// A setting of another issuer, named, beside the built-in one.
    BuiltInBeside(&'static str),
}

/// The decision, from the switches alone (an external issuer's settings in `http` are
/// the built-in server's conflicts, `config::builtin_conflicts`).
pub fn decide(
    no_auth: bool,
    builtin: bool,
    base_url: Option<&str>,
    http: &HttpArgs,
) -> Result<Issuance, Clash> {
    match (no_auth, builtin) {
        (true, true) => Err(Clash::BuiltInWithoutAuth),
        (true, false) => Ok(Issuance::NoAuth),
        (false, false) => Ok(Issuance::Operator {
            issuer: http.jwt_issuer.clone(),
            auth_servers: http.auth_servers.clone(),
        }),
        (false, true) => {
            let base_url = base_url.ok_or(Clash::BuiltInWithoutBaseUrl)?;
            match builtin_conflicts(http).first() {
                Some(&var) => Err(Clash::BuiltInBeside(var)),
                None => Ok(Issuance::BuiltIn {
                    base_url: base_url.to_owned(),
                }),
            }
        }
    }
}

impl Issuance {
    /// [`decide`] for `config`, a clash being the start-up refusal that names its variable.
    pub fn of(config: &Config) -> Result<Self, ConfigError> {
        decide(
            config.enable_no_auth,
            config.oauth.oauth_builtin,
            config.base_url.as_deref(),
            &config.http,
        )
        .map_err(|clash| refusal(config, clash))
    }

    /// The `iss` a JWT must carry.
    pub fn issuer(&self) -> Option<String> {
        match self {
            Self::NoAuth => None,
            Self::Operator { issuer, .. } => issuer.clone(),
            Self::BuiltIn { base_url } => Some(base_url.clone()),
        }
    }

    /// The authorization servers the protected-resource metadata names.
    pub fn auth_servers(&self) -> Vec<String> {
        match self {
            Self::NoAuth => Vec::new(),
            Self::Operator { auth_servers, .. } => auth_servers.clone(),
            Self::BuiltIn { base_url } => vec![base_url.clone()],
        }
    }

    /// Whether a token is asked for but nothing would accept one unless the operator
    /// configured a credential (the built-in server brings its own key).
    pub fn needs_credentials(&self) -> bool {
        matches!(self, Self::Operator { .. })
    }
}

fn refusal(config: &Config, clash: Clash) -> ConfigError {
    let (var, value, reason) = match clash {
        Clash::BuiltInWithoutAuth => (
            "TWOBOT_OAUTH_BUILTIN",
            config.typed("TWOBOT_OAUTH_BUILTIN", true),
            "needs TWOBOT_ENABLE_NO_AUTH=false: the built-in authorization server issues the tokens the MCP endpoint then requires",
        ),
        Clash::BuiltInWithoutBaseUrl => (
            "TWOBOT_BASE_URL",
            String::new(),
            "must be set with TWOBOT_OAUTH_BUILTIN=true: it is the issuer, and the address ChatGPT's browser is sent to for sign-in",
        ),
        Clash::BuiltInBeside(var) => (
            var,
            if var == "TWOBOT_JWT_SECRET" {
                "<redacted>".to_owned()
            } else {
                "(set)".to_owned()
            },
            "cannot be combined with TWOBOT_OAUTH_BUILTIN=true: the built-in authorization server is the issuer and the audience is the base URL's MCP endpoint; unset it (static tokens may stay)",
        ),
    };
    ConfigError::Invalid {
        var,
        value,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The HTTP switches as clap reads them, with `args` given on the command line.
    fn http(args: &[&str]) -> HttpArgs {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            http: HttpArgs,
        }
        let argv = std::iter::once("2bot-mcp").chain(args.iter().copied());
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli.http,
            Err(e) => panic!("{e}"),
        }
    }

    /// What, no-auth, built-in, base URL, the HTTP flags given, verdict.
    type Case = (
        &'static str,
        bool,
        bool,
        Option<&'static str>,
        &'static [&'static str],
        Result<Issuance, Clash>,
    );

    #[test]
    fn each_set_of_switches_gets_one_issuer_or_one_named_clash() {
        let base = Some("https://2bot.example");
        let operator = |issuer: Option<&str>| Issuance::Operator {
            issuer: issuer.map(str::to_owned),
            auth_servers: Vec::new(),
        };
        let cases: [Case; 7] = [
            ("no auth", true, false, None, &[], Ok(Issuance::NoAuth)),
            (
                "no auth beside the built-in server",
                true,
                true,
                base,
                &[],
                Err(Clash::BuiltInWithoutAuth),
            ),
            (
                "the operator's tokens",
                false,
                false,
                None,
                &[],
                Ok(operator(None)),
            ),
            (
                "the operator's own issuer settings are no conflict without the built-in server",
                false,
                false,
                base,
                &["--jwt-jwks-url", "https://idp.example/jwks"],
                Ok(operator(None)),
            ),
            (
                "the built-in server at the base URL",
                false,
                true,
                base,
                &[],
                Ok(Issuance::BuiltIn {
                    base_url: "https://2bot.example".into(),
                }),
            ),
            (
                "the built-in server without a base URL",
                false,
                true,
                None,
                &[],
                Err(Clash::BuiltInWithoutBaseUrl),
            ),
            (
                "the built-in server beside another issuer's setting",
                false,
                true,
                base,
                &[
                    "--jwt-jwks-url",
                    "https://idp.example/jwks",
                    "--jwt-secret",
                    "0123456789abcdef0123456789abcdef",
                ],
                Err(Clash::BuiltInBeside("TWOBOT_JWT_JWKS_URL")),
            ),
        ];
        for (what, no_auth, builtin, base_url, flags, expected) in cases {
            assert_eq!(
                decide(no_auth, builtin, base_url, &http(flags)),
                expected,
                "{what}"
            );
        }
    }

    #[test]
    fn the_issuer_and_the_metadata_s_servers_follow_the_decision() {
        let args = http(&[
            "--jwt-issuer",
            "https://idp.example",
            "--auth-servers",
            "https://idp.example",
        ]);
        let operator = decide(false, false, None, &args).ok();
        assert_eq!(
            operator.as_ref().and_then(Issuance::issuer),
            Some("https://idp.example".to_owned())
        );
        assert_eq!(
            operator.as_ref().map(Issuance::auth_servers),
            Some(vec!["https://idp.example".to_owned()])
        );
        assert_eq!(operator.map(|i| i.needs_credentials()), Some(true));

        let builtin = Issuance::BuiltIn {
            base_url: "https://2bot.example".into(),
        };
        assert_eq!(builtin.issuer(), Some("https://2bot.example".to_owned()));
        assert_eq!(
            builtin.auth_servers(),
            vec!["https://2bot.example".to_owned()]
        );
        assert!(!builtin.needs_credentials());
        assert_eq!(Issuance::NoAuth.issuer(), None);
        assert!(Issuance::NoAuth.auth_servers().is_empty());
    }
}
