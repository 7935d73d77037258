//! Which limits a request counts against: the config parsed and checked once, then asked per
//! module and action.

use auth_core::ModulePattern;
use modgate_plugin_sdk::limits::{Limit, Subject};
use modgate_plugin_sdk::memo::DependsOn;
use modgate_plugin_sdk::{Action, Allow, Decision};

/// The plugin's `config` table as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Every limit whose `modules` and `actions` match a request applies to it.
    #[serde(default)]
    pub limits: Vec<LimitConfig>,
    /// What the plugin answers once it has named the limits: `abstain` (the default: the
    /// route's next auth plugin decides) or `allow` (reads are allowed as `anonymous`, for open
    /// routes; publish and admin requests are still left to the next plugin).
    #[serde(default)]
    pub decision: Then,
}

/// One limit as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Names the limit in the 429 message and the `modgate_rate_limited_total` metric.
    pub name: String,
    /// Whose counter: `principal`, `ip`, `module`, `pattern` (one counter per matching
    /// pattern of `modules`) or `everyone`.
    pub per: Per,
    /// Sustained requests per second.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Requests allowed at once (default: one second's worth).
    #[serde(default)]
    pub burst: Option<u32>,
    /// Response bytes per UTC day: a number, or a string with a unit (`500MB`, `20GiB`).
    #[serde(default)]
    pub bytes_per_day: Option<Bytes>,
    /// GOPRIVATE-style patterns (a list, or one comma-separated string): the limit applies only
    /// to requests for matching modules. Absent: every request, module or not.
    #[serde(default)]
    pub modules: Option<Patterns>,
    /// Only for these actions (`read`, `publish`, `admin`). Absent: all.
    #[serde(default)]
    pub actions: Option<Vec<ActionName>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    Principal,
    Ip,
    Module,
    Pattern,
    Everyone,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Then {
    #[default]
    Abstain,
    Allow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionName {
    Read,
    Publish,
    Admin,
}

impl ActionName {
    fn is(self, action: Action) -> bool {
        matches!(
            (self, action),
            (ActionName::Read, Action::Read)
                | (ActionName::Publish, Action::Publish)
                | (ActionName::Admin, Action::Admin)
        )
    }
}

/// Patterns as a list or a comma-separated string.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum Patterns {
    One(String),
    Many(Vec<String>),
}

/// A byte count as a number or a string with a unit.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum Bytes {
    Count(u64),
    Text(String),
}

impl Bytes {
    fn get(&self) -> Result<u64, String> {
        let text = match self {
            Bytes::Count(n) => return Ok(*n),
            Bytes::Text(t) => t.trim(),
        };
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            other => {
                return Err(format!(
                    "{text:?}: unknown unit {other:?} (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
                ));
            }
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .ok_or_else(|| format!("{text:?} is not a byte count"))
    }
}

#[derive(Debug)]
struct Rule {
    name: String,
    per: Per,
    rate: Option<(f64, Option<u32>)>,
    bytes_per_day: Option<u64>,
    modules: Vec<ModulePattern>,
    actions: Option<Vec<ActionName>>,
}

/// The checked config.
#[derive(Debug)]
pub struct Rules {
    rules: Vec<Rule>,
    then: Then,
}

/// What the plugin answers for a request: its decision and the limits to apply.
#[derive(Debug)]
pub struct Answer {
    pub decision: Decision,
    pub limits: Vec<Limit>,
}

/// How many limits the host takes in one answer.
const MAX_LIMITS: usize = 16;

impl Rules {
    /// Checks the config: every problem is named with the limit it is in.
    pub fn new(file: RateLimitConfig) -> Result<Self, String> {
        if file.limits.len() > MAX_LIMITS {
            return Err(format!(
                "{} limits; at most {MAX_LIMITS} (the host applies at most that many to a request)",
                file.limits.len()
            ));
        }
        let mut rules = Vec::new();
        for l in file.limits {
            let at = |m: String| format!("limit {:?}: {m}", l.name);
            let valid_name = !l.name.is_empty()
                && l.name.len() <= 64
                && l.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !valid_name {
                return Err(at("the name must be 1 to 64 bytes of [A-Za-z0-9._-]".into()));
            }
            if let Some(r) = l.requests_per_second
                && !(0.001..=1_000_000.0).contains(&r)
            {
                return Err(at(format!(
                    "requests_per_second {r} is not between 0.001 and 1000000"
                )));
            }
            if let Some(b) = l.burst
                && !(1..=1_000_000).contains(&b)
            {
                return Err(at(format!("burst {b} is not between 1 and 1000000")));
            }
            if l.burst.is_some() && l.requests_per_second.is_none() {
                return Err(at("burst without requests_per_second".into()));
            }
            let bytes_per_day = l
                .bytes_per_day
                .as_ref()
                .map(Bytes::get)
                .transpose()
                .map_err(at)?;
            if bytes_per_day == Some(0) {
                return Err(at("bytes_per_day must be positive".into()));
            }
            if l.requests_per_second.is_none() && bytes_per_day.is_none() {
                return Err(at("set requests_per_second, bytes_per_day or both".into()));
            }
            let modules = match l.modules {
                None => Vec::new(),
                Some(Patterns::One(s)) => split(&s),
                Some(Patterns::Many(v)) => v,
            }
            .iter()
            .map(|p| ModulePattern::parse(p).map_err(|e| at(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
            if l.per == Per::Pattern && modules.is_empty() {
                return Err(at("per = \"pattern\" needs `modules`".into()));
            }
            rules.push(Rule {
                name: l.name,
                per: l.per,
                rate: l.requests_per_second.map(|r| (r, l.burst)),
                bytes_per_day,
                modules,
                actions: l.actions,
            });
        }
        Ok(Rules {
            rules,
            then: file.decision,
        })
    }

    /// The decision and limits for a request for `module` (if it names one) doing `action`.
    pub fn answer(&self, module: Option<&str>, action: Action) -> Answer {
        let mut limits = Vec::new();
        for rule in &self.rules {
            if let Some(actions) = &rule.actions
                && !actions.iter().any(|a| a.is(action))
            {
                continue;
            }
            let matched = if rule.modules.is_empty() {
                None
            } else {
                let found = module.and_then(|m| rule.modules.iter().find(|p| p.matches(m)));
                match found {
                    Some(pattern) => Some(pattern),
                    None => continue,
                }
            };
            let subject = match rule.per {
                Per::Principal => Subject::Principal,
                Per::Ip => Subject::PeerIp,
                Per::Module => Subject::Module,
                Per::Pattern => Subject::Key(format!(
                    "modules {}",
                    matched.map_or("", ModulePattern::as_str)
                )),
                Per::Everyone => Subject::Key("everyone".into()),
            };
            limits.push(Limit {
                name: rule.name.clone(),
                subject,
                requests_per_second: rule.rate.map(|(r, _)| r),
                burst: rule.rate.and_then(|(_, b)| b),
                bytes_per_day: rule.bytes_per_day,
            });
        }
        let decision = match (self.then, action) {
            (Then::Allow, Action::Read) => Decision::Allow(Allow {
                principal: "anonymous".into(),
                scopes: vec!["read".into()],
            }),
            _ => Decision::Abstain,
        };
        Answer { decision, limits }
    }

    /// The request facts [`Rules::answer`] reads: the module when a limit is about modules,
    /// the action when a limit is about actions or the plugin allows reads.
    pub fn depends_on(&self) -> DependsOn {
        let mut on = DependsOn::nothing();
        if self.rules.iter().any(|r| !r.modules.is_empty()) {
            on = on.module();
        }
        if self.then == Then::Allow || self.rules.iter().any(|r| r.actions.is_some()) {
            on = on.action();
        }
        on
    }
}

fn split(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn rules(json: &str) -> Result<Rules, String> {
        Rules::new(serde_json::from_str(json).map_err(|e| e.to_string())?)
    }

    #[test]
    fn limits_apply_by_module_pattern_and_action() {
        let r = rules(
            r#"{"limits": [
                {"name": "per-ip", "per": "ip", "requests_per_second": 20, "burst": 40},
                {"name": "per-user", "per": "principal", "requests_per_second": 5,
                 "bytes_per_day": "2GiB", "actions": ["read"]},
                {"name": "big", "per": "pattern", "modules": "github.com/big/*,example.com/huge",
                 "requests_per_second": 0.5}
            ]}"#,
        )
        .unwrap();
        let a = r.answer(Some("github.com/big/one"), Action::Read);
        assert!(matches!(a.decision, Decision::Abstain));
        let names: Vec<_> = a.limits.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["per-ip", "per-user", "big"]);
        assert!(matches!(a.limits[0].subject, Subject::PeerIp));
        assert_eq!(a.limits[0].requests_per_second, Some(20.0));
        assert_eq!(a.limits[0].burst, Some(40));
        assert_eq!(a.limits[1].bytes_per_day, Some(2 << 30));
        assert!(
            matches!(&a.limits[2].subject, Subject::Key(k) if k == "modules github.com/big/*"),
            "{:?}",
            a.limits[2]
        );
        // Another module: not the pattern's limit; a publish: not the read-only limit.
        let names = |m: Option<&str>, action| {
            r.answer(m, action)
                .limits
                .into_iter()
                .map(|l| l.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(Some("example.com/small"), Action::Read),
            ["per-ip", "per-user"]
        );
        assert_eq!(
            names(Some("example.com/huge/x"), Action::Publish),
            ["per-ip", "big"]
        );
        assert_eq!(names(None, Action::Admin), ["per-ip"]);
        let on = r.depends_on();
        assert!(on.module && on.action && !on.peer_ip && on.headers.is_empty());
    }

    #[test]
    fn allow_lets_reads_through_anonymously_only() {
        let r = rules(
            r#"{"decision": "allow", "limits": [{"name": "per-ip", "per": "ip", "requests_per_second": 1}]}"#,
        )
        .unwrap();
        match r.answer(Some("example.com/m"), Action::Read).decision {
            Decision::Allow(a) => assert_eq!(a.principal, "anonymous"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.answer(None, Action::Admin).decision,
            Decision::Abstain
        ));
        assert!(matches!(
            r.answer(Some("example.com/m"), Action::Publish).decision,
            Decision::Abstain
        ));
        let on = r.depends_on();
        assert!(on.action && !on.module);
    }

    #[test]
    fn bad_configs_name_the_limit_and_the_problem() {
        for (json, expected) in [
            (
                r#"{"limits": [{"name": "x", "per": "ip"}]}"#,
                "limit \"x\": set requests_per_second",
            ),
            (
                r#"{"limits": [{"name": "x", "per": "ip", "requests_per_second": 0}]}"#,
                "not between 0.001",
            ),
            (
                r#"{"limits": [{"name": "x", "per": "ip", "bytes_per_day": "3 parsecs"}]}"#,
                "unknown unit",
            ),
            (
                r#"{"limits": [{"name": "x", "per": "pattern", "requests_per_second": 1}]}"#,
                "needs `modules`",
            ),
            (
                r#"{"limits": [{"name": "a b", "per": "ip", "requests_per_second": 1}]}"#,
                "the name must be",
            ),
            (
                r#"{"limits": [{"name": "x", "per": "ip", "burst": 3, "bytes_per_day": 5}]}"#,
                "burst without",
            ),
            (
                r#"{"limits": [{"name": "x", "per": "ip", "requests_per_second": 1, "modules": "["}]}"#,
                "unclosed [",
            ),
            (
                r#"{"limits": [{"name": "x", "per": "galaxy"}]}"#,
                "unknown variant",
            ),
            (r#"{"limit": []}"#, "unknown field"),
        ] {
            let e = rules(json).unwrap_err();
            assert!(e.contains(expected), "{json}: {e}");
        }
    }

    #[test]
    fn byte_counts_take_units() {
        for (text, n) in [
            ("1000", 1000),
            ("500MB", 500_000_000),
            ("20GiB", 20 << 30),
            ("1 TB", 1_000_000_000_000),
        ] {
            assert_eq!(Bytes::Text(text.into()).get().unwrap(), n, "{text}");
        }
        assert!(Bytes::Text("99999999999999TiB".into()).get().is_err());
    }
}
