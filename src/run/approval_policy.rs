//! The tool's `approval_policy`: when Codex asks a person before it goes beyond its
//! sandbox. A string on the wire, as in the seed, so `granular` is spelled as one too:
//! `"granular"` (a fixed, conservative set of knobs) or `"granular:KNOB,KNOB"` (exactly
//! the knobs named). Codex 0.169 takes granular as `{"granular": {…}}` (app-server, only
//! with `capabilities.experimentalApi`) or `{granular={…}}` in TOML (`-c`); a knob that
//! is off makes Codex decline that kind of request itself, without asking anyone.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// When Codex asks before running a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalPolicy {
    /// Ask for anything not known to be safe (rejected by Codex 0.169, which explains why).
    Untrusted,
    /// The model decides when to ask.
    OnRequest,
    /// Never ask; failures go back to the model.
    Never,
    /// Ask only for the kinds of request whose knob is on (app-server backend only).
    Granular(Granular),
}

/// The knobs of Codex's granular policy (`GranularApprovalConfig`): each on means that
/// kind of request reaches a person, off means Codex declines it without asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Granular {
    /// A command asks to run outside the sandbox (`require_escalated`).
    pub sandbox_approval: bool,
    /// A command an exec-policy rule says to ask about.
    pub rules: bool,
    /// An MCP server asks the user something (2Bot relays none: they fail closed).
    pub mcp_elicitations: bool,
    /// The model asks for wider sandbox permissions (`request_permissions`).
    pub request_permissions: bool,
    /// A skill asks to run.
    pub skill_approval: bool,
}

/// Every knob, as Codex and the tool spell it, in the order they are written out.
pub const GRANULAR_KNOBS: [&str; 5] = [
    "sandbox_approval",
    "rules",
    "request_permissions",
    "mcp_elicitations",
    "skill_approval",
];

impl Granular {
    /// What bare `"granular"` means: what 2Bot can put to a person (escalated commands,
    /// rule prompts, permission requests) asks; the rest is declined by Codex itself.
    pub const DEFAULT: Self = Self {
        sandbox_approval: true,
        rules: true,
        mcp_elicitations: false,
        request_permissions: true,
        skill_approval: false,
    };

    fn knob(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "sandbox_approval" => &mut self.sandbox_approval,
            "rules" => &mut self.rules,
            "mcp_elicitations" => &mut self.mcp_elicitations,
            "request_permissions" => &mut self.request_permissions,
            "skill_approval" => &mut self.skill_approval,
            _ => return None,
        })
    }

    fn pairs(self) -> [(&'static str, bool); 5] {
        [
            ("sandbox_approval", self.sandbox_approval),
            ("rules", self.rules),
            ("request_permissions", self.request_permissions),
            ("mcp_elicitations", self.mcp_elicitations),
            ("skill_approval", self.skill_approval),
        ]
    }
}

impl ApprovalPolicy {
    /// The value of Codex's `approval_policy` as TOML (for `-c approval_policy=…`).
    pub fn toml(self) -> String {
        match self {
            Self::Granular(g) => {
                let knobs: Vec<String> =
                    g.pairs().iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{{granular={{{}}}}}", knobs.join(","))
            }
            other => format!("\"{other}\""),
        }
    }

    /// The value of the app-server's `approvalPolicy` (thread requests).
    pub fn json(self) -> serde_json::Value {
        match self {
            Self::Granular(g) => {
                let knobs: serde_json::Map<String, serde_json::Value> = g
                    .pairs()
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).into()))
                    .collect();
                serde_json::json!({ "granular": knobs })
            }
            other => other.to_string().into(),
        }
    }

    /// Whether this is a granular policy (which needs the app-server's experimental API).
    pub fn is_granular(self) -> bool {
        matches!(self, Self::Granular(_))
    }
}

impl std::fmt::Display for ApprovalPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Untrusted => f.write_str("untrusted"),
            Self::OnRequest => f.write_str("on-request"),
            Self::Never => f.write_str("never"),
            Self::Granular(g) => {
                let on: Vec<&str> = g
                    .pairs()
                    .iter()
                    .filter(|(_, v)| *v)
                    .map(|(k, _)| *k)
                    .collect();
                write!(f, "granular:{}", on.join(","))
            }
        }
    }
}

impl std::str::FromStr for ApprovalPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let knobs = GRANULAR_KNOBS.join(", ");
        match s {
            "untrusted" => return Ok(Self::Untrusted),
            "on-request" => return Ok(Self::OnRequest),
            "never" => return Ok(Self::Never),
            "granular" => return Ok(Self::Granular(Granular::DEFAULT)),
            _ => {}
        }
        let Some(list) = s.strip_prefix("granular:") else {
            return Err(format!(
                "`{s}` is not an approval policy (untrusted, on-request, never, granular, or granular:KNOB,… with knobs {knobs})"
            ));
        };
        let mut granular = Granular::default();
        for name in list.split(',').map(str::trim) {
            match granular.knob(name) {
                Some(knob) => *knob = true,
                None if name.is_empty() => {
                    return Err(format!(
                        "`{s}` names an empty knob; list knobs after `granular:` separated by commas ({knobs}), or say `never` to ask about nothing"
                    ));
                }
                None => {
                    return Err(format!(
                        "`{name}` is not a granular approval knob (knobs: {knobs})"
                    ));
                }
            }
        }
        Ok(Self::Granular(granular))
    }
}

impl Serialize for ApprovalPolicy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ApprovalPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for ApprovalPolicy {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "ApprovalPolicy".into()
    }

    /// A plain string: the knobs are in the description's README pointer and in the
    /// refusal of a wrong one (a pattern or examples would push `tools/list` past 10 KB).
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn granular(knobs: &[&str]) -> ApprovalPolicy {
        let mut g = Granular::default();
        for k in knobs {
            *g.knob(k).unwrap() = true;
        }
        ApprovalPolicy::Granular(g)
    }

    #[test]
    fn each_spelling_parses_to_its_policy_or_a_refusal_that_says_why() {
        use ApprovalPolicy::*;
        let ok: Vec<(&str, ApprovalPolicy)> = vec![
            ("never", Never),
            ("on-request", OnRequest),
            ("untrusted", Untrusted),
            (
                "granular",
                granular(&["sandbox_approval", "rules", "request_permissions"]),
            ),
            ("granular:sandbox_approval", granular(&["sandbox_approval"])),
            (
                "granular:sandbox_approval,rules",
                granular(&["sandbox_approval", "rules"]),
            ),
            (
                "granular: rules , request_permissions",
                granular(&["rules", "request_permissions"]),
            ),
            ("granular:rules,rules", granular(&["rules"])),
            (
                "granular:mcp_elicitations,skill_approval",
                granular(&["mcp_elicitations", "skill_approval"]),
            ),
        ];
        for (text, want) in ok {
            assert_eq!(text.parse::<ApprovalPolicy>(), Ok(want), "{text}");
        }
        let refused: Vec<(&str, &str)> = vec![
            ("granular:bogus", "`bogus` is not a granular approval knob"),
            (
                "granular:rules,network",
                "`network` is not a granular approval knob",
            ),
            ("granular:", "names an empty knob"),
            ("granular:rules,", "names an empty knob"),
            ("Granular", "is not an approval policy"),
            ("granular-rules", "is not an approval policy"),
            ("on_request", "is not an approval policy"),
            ("", "is not an approval policy"),
        ];
        for (text, said) in refused {
            let err = text.parse::<ApprovalPolicy>().unwrap_err();
            assert!(err.contains(said), "{text}: {err}");
            assert!(
                err.contains("sandbox_approval"),
                "the knobs are listed: {err}"
            );
        }
    }

    #[test]
    fn a_policy_reads_back_from_what_it_writes_and_says_itself_to_codex_in_toml_and_json() {
        let table: Vec<(ApprovalPolicy, &str, &str, serde_json::Value)> = vec![
            (ApprovalPolicy::Never, "never", "\"never\"", "never".into()),
            (
                ApprovalPolicy::OnRequest,
                "on-request",
                "\"on-request\"",
                "on-request".into(),
            ),
            (
                granular(&["sandbox_approval", "rules"]),
                "granular:sandbox_approval,rules",
                "{granular={sandbox_approval=true,rules=true,request_permissions=false,mcp_elicitations=false,skill_approval=false}}",
                serde_json::json!({"granular": {"sandbox_approval": true, "rules": true,
                    "request_permissions": false, "mcp_elicitations": false, "skill_approval": false}}),
            ),
        ];
        for (policy, text, toml, json) in table {
            assert_eq!(policy.to_string(), text);
            assert_eq!(text.parse::<ApprovalPolicy>(), Ok(policy));
            assert_eq!(
                serde_json::to_value(policy).unwrap(),
                serde_json::json!(text)
            );
            assert_eq!(policy.toml(), toml);
            assert_eq!(policy.json(), json);
        }
        assert_eq!(
            "granular".parse::<ApprovalPolicy>().unwrap().to_string(),
            "granular:sandbox_approval,rules,request_permissions"
        );
    }

    #[test]
    fn an_unknown_knob_is_a_deserialization_error_naming_it() {
        let err = serde_json::from_value::<ApprovalPolicy>(serde_json::json!("granular:nope"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`nope` is not a granular approval knob"),
            "{err}"
        );
        assert!(serde_json::from_value::<ApprovalPolicy>(serde_json::json!(true)).is_err());
    }
}
