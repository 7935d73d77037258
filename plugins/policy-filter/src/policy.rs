//! The filter's rules: parsed and checked from the config, then asked about a module version.

use auth_core::ModulePattern;
use modgate_plugin_sdk::policy::Verdict;

/// The plugin's `config` table as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Tried in order; the first that matches decides.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// When no rule matches: `admit` (the default) or `deny`.
    #[serde(default)]
    pub default: Action,
    /// The reason shown when `default = "deny"` refuses a version.
    #[serde(default)]
    pub default_reason: Option<String>,
}

/// One rule as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// GOPRIVATE-style patterns (a list, or one comma-separated string).
    pub modules: Patterns,
    /// Version constraints, all of which must hold: `>=v0.31.0`, `<v1.2.3`, `v1.4.0` (exactly),
    /// `!=v1.4.1`, separated by commas or spaces. Absent: every version.
    #[serde(default)]
    pub versions: Option<String>,
    /// `true`: the rule is only about pre-releases (pseudo-versions included); `false`: only
    /// about releases. Absent: both.
    #[serde(default)]
    pub prerelease: Option<bool>,
    pub action: Action,
    /// One line for the user when the rule denies (the module and version are put before it).
    #[serde(default)]
    pub reason: Option<String>,
    /// With `action = "admit"`: take matching versions only from these of the route's
    /// `[upstream.NAME]`s, in this order.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Refuse versions the module's newest go.mod retracts (when modgate knows it).
    #[serde(default)]
    pub retracted: Option<bool>,
}

/// Patterns as a list or a comma-separated string.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum Patterns {
    One(String),
    Many(Vec<String>),
}

/// What a rule does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Admit,
    Deny,
}

#[derive(Debug)]
struct Rule {
    modules: Vec<ModulePattern>,
    versions: Vec<(Op, String)>,
    prerelease: Option<bool>,
    action: Action,
    reason: String,
    sources: Vec<String>,
    retracted: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// The checked rules.
#[derive(Debug)]
pub struct Rules {
    rules: Vec<Rule>,
    default: Action,
    default_reason: String,
}

/// The longest reason kept (the host caps a deny's message at 1 KiB, with the module and
/// version before it).
const MAX_REASON: usize = 512;

impl Rules {
    /// Checks the config; an error names the rule and field.
    pub fn new(file: FilterConfig) -> Result<Self, String> {
        let mut rules = Vec::with_capacity(file.rules.len());
        for (i, r) in file.rules.into_iter().enumerate() {
            let at = |field: &str| format!("rules[{i}].{field}");
            let texts: Vec<String> = match r.modules {
                Patterns::One(s) => vec![s],
                Patterns::Many(v) => v,
            };
            let modules = texts
                .iter()
                .flat_map(|t| t.split(','))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| ModulePattern::parse(t).map_err(|e| format!("{}: {e}", at("modules"))))
                .collect::<Result<Vec<_>, _>>()?;
            if modules.is_empty() {
                return Err(format!("{}: needs at least one pattern", at("modules")));
            }
            let versions = match &r.versions {
                Some(v) => parse_constraints(v).map_err(|e| format!("{}: {e}", at("versions")))?,
                None => Vec::new(),
            };
            let reason = one_line(
                r.reason
                    .as_deref()
                    .unwrap_or("refused by this proxy's policy"),
            );
            if reason.len() > MAX_REASON {
                return Err(format!("{}: longer than {MAX_REASON} bytes", at("reason")));
            }
            if !r.sources.is_empty() && r.action != Action::Admit {
                return Err(format!(
                    "{}: only an `admit` rule names sources",
                    at("sources")
                ));
            }
            rules.push(Rule {
                modules,
                versions,
                prerelease: r.prerelease,
                action: r.action,
                reason,
                sources: r.sources,
                retracted: r.retracted,
            });
        }
        let default_reason = one_line(
            file.default_reason
                .as_deref()
                .unwrap_or("not on this proxy's list of admitted modules"),
        );
        Ok(Rules {
            rules,
            default: file.default,
            default_reason,
        })
    }

    /// The verdict on `module@version` (`retracted`: whether the module's newest go.mod
    /// retracts it, when known; a rule about retraction does not match an unknown).
    pub fn judge(&self, module: &str, version: &str, retracted: Option<bool>) -> Verdict {
        let deny = |reason: &str| Verdict::deny(403, format!("{module}@{version}: {reason}"));
        for rule in &self.rules {
            if !rule.modules.iter().any(|p| p.matches(module)) {
                continue;
            }
            if let Some(pre) = rule.prerelease
                && is_prerelease(version) != pre
            {
                continue;
            }
            if !rule
                .versions
                .iter()
                .all(|(op, v)| satisfies(version, *op, v))
            {
                continue;
            }
            if let Some(want) = rule.retracted
                && retracted != Some(want)
            {
                continue;
            }
            return match rule.action {
                Action::Admit if rule.sources.is_empty() => Verdict::Admit,
                Action::Admit => Verdict::Sources(rule.sources.clone()),
                Action::Deny => deny(&rule.reason),
            };
        }
        match self.default {
            Action::Admit => Verdict::Admit,
            Action::Deny => deny(&self.default_reason),
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn parse_constraints(text: &str) -> Result<Vec<(Op, String)>, String> {
    let mut out = Vec::new();
    for c in text
        .split([',', ' '])
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        let (op, v) = if let Some(v) = c.strip_prefix(">=") {
            (Op::Ge, v)
        } else if let Some(v) = c.strip_prefix("<=") {
            (Op::Le, v)
        } else if let Some(v) = c.strip_prefix("!=") {
            (Op::Ne, v)
        } else if let Some(v) = c.strip_prefix('>') {
            (Op::Gt, v)
        } else if let Some(v) = c.strip_prefix('<') {
            (Op::Lt, v)
        } else if let Some(v) = c.strip_prefix('=') {
            (Op::Eq, v)
        } else {
            (Op::Eq, c)
        };
        if parse(v).is_none() {
            return Err(format!(
                "`{c}`: `{v}` is not a semantic version (vMAJOR.MINOR.PATCH)"
            ));
        }
        out.push((op, v.to_owned()));
    }
    if out.is_empty() {
        return Err("no constraint".into());
    }
    Ok(out)
}

fn satisfies(version: &str, op: Op, bound: &str) -> bool {
    let Some(ord) = compare(version, bound) else {
        return false;
    };
    use std::cmp::Ordering::*;
    match op {
        Op::Lt => ord == Less,
        Op::Le => ord != Greater,
        Op::Gt => ord == Greater,
        Op::Ge => ord != Less,
        Op::Eq => ord == Equal,
        Op::Ne => ord != Equal,
    }
}

/// A Go semantic version: `vMAJOR.MINOR.PATCH[-pre][+build]` (`+incompatible` included).
struct Parsed<'a> {
    nums: [u64; 3],
    pre: &'a str,
}

fn parse(v: &str) -> Option<Parsed<'_>> {
    let rest = v.strip_prefix('v')?;
    let rest = rest.split_once('+').map_or(rest, |(a, _)| a);
    let (core, pre) = rest.split_once('-').unwrap_or((rest, ""));
    let mut nums = [0u64; 3];
    let mut parts = core.split('.');
    for n in &mut nums {
        let p = parts.next()?;
        if p.is_empty()
            || !p.bytes().all(|b| b.is_ascii_digit())
            || (p.len() > 1 && p.starts_with('0'))
        {
            return None;
        }
        *n = p.parse().ok()?;
    }
    if parts.next().is_some() || (rest.contains('-') && pre.is_empty()) {
        return None;
    }
    Some(Parsed { nums, pre })
}

fn is_prerelease(v: &str) -> bool {
    parse(v).is_some_and(|p| !p.pre.is_empty())
}

/// Semver precedence (build metadata ignored), as `golang.org/x/mod/semver.Compare`.
fn compare(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering::*;
    let (a, b) = (parse(a)?, parse(b)?);
    let ord = a.nums.cmp(&b.nums);
    if ord != Equal {
        return Some(ord);
    }
    Some(match (a.pre.is_empty(), b.pre.is_empty()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        (false, false) => compare_pre(a.pre, b.pre),
    })
}

fn compare_pre(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    let mut x = a.split('.');
    let mut y = b.split('.');
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Equal,
            (None, Some(_)) => return Less,
            (Some(_), None) => return Greater,
            (Some(p), Some(q)) => {
                let pn = p.bytes().all(|c| c.is_ascii_digit());
                let qn = q.bytes().all(|c| c.is_ascii_digit());
                let ord = match (pn, qn) {
                    (true, true) => p.len().cmp(&q.len()).then_with(|| p.cmp(q)),
                    (true, false) => Less,
                    (false, true) => Greater,
                    (false, false) => p.cmp(q),
                };
                if ord != Equal {
                    return ord;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(toml_rules: &str) -> Rules {
        let config: FilterConfig = serde_json::from_str(toml_rules).expect("config");
        Rules::new(config).expect("rules")
    }

    fn denied(r: &Rules, m: &str, v: &str) -> Option<String> {
        match r.judge(m, v, None) {
            Verdict::Deny(d) => Some(d.message),
            _ => None,
        }
    }

    #[test]
    fn first_matching_rule_wins_with_its_reason() {
        let r = rules(
            r#"{"rules": [
                {"modules": "golang.org/x/crypto", "versions": "<v0.31.0", "action": "deny",
                 "reason": "CVE-2024-45337: use v0.31.0 or later"},
                {"modules": ["example.com/abandoned/*", "old.example"], "action": "deny"},
                {"modules": "*", "prerelease": true, "action": "deny", "reason": "no pre-releases"}
            ]}"#,
        );
        assert_eq!(
            denied(&r, "golang.org/x/crypto", "v0.30.0").as_deref(),
            Some("golang.org/x/crypto@v0.30.0: CVE-2024-45337: use v0.31.0 or later")
        );
        assert_eq!(denied(&r, "golang.org/x/crypto", "v0.31.0"), None);
        assert_eq!(
            denied(&r, "golang.org/x/crypto", "v0.31.0-rc.1").as_deref(),
            Some("golang.org/x/crypto@v0.31.0-rc.1: CVE-2024-45337: use v0.31.0 or later")
        );
        assert!(denied(&r, "example.com/abandoned/x", "v1.0.0").is_some());
        assert!(denied(&r, "old.example/y/z", "v1.0.0").is_some());
        assert!(denied(&r, "example.com/kept", "v1.0.0").is_none());
        assert!(denied(&r, "example.com/kept", "v1.1.0-beta.1").is_some());
        // A pseudo-version is a pre-release.
        assert!(denied(&r, "example.com/kept", "v0.0.0-20240102030405-abcdefabcdef").is_some());
        assert!(denied(&r, "example.com/kept", "v2.0.0+incompatible").is_none());
    }

    #[test]
    fn allow_lists_deny_by_default() {
        let r = rules(
            r#"{"rules": [{"modules": "github.com/corp-approved/*,golang.org/x", "action": "admit"}],
                "default": "deny", "default_reason": "not approved: ask security@corp"}"#,
        );
        assert!(denied(&r, "golang.org/x/net", "v0.1.0").is_none());
        assert_eq!(
            denied(&r, "github.com/random/x", "v1.0.0").as_deref(),
            Some("github.com/random/x@v1.0.0: not approved: ask security@corp")
        );
    }

    #[test]
    fn ranges_and_exact_versions() {
        let r = rules(
            r#"{"rules": [{"modules": "m.example", "versions": ">=v1.2.0, <v1.4.0 !=v1.3.1", "action": "deny"},
                          {"modules": "m.example", "versions": "v2.0.0", "action": "deny"}]}"#,
        );
        for (v, d) in [
            ("v1.1.9", false),
            ("v1.2.0", true),
            ("v1.3.1", false),
            ("v1.3.9", true),
            ("v1.4.0", false),
            ("v1.4.0-rc.1", true),
            ("v2.0.0", true),
            ("v2.0.1", false),
        ] {
            assert_eq!(denied(&r, "m.example", v).is_some(), d, "{v}");
        }
    }

    #[test]
    fn sources_plans_and_retractions() {
        let r = rules(
            r#"{"rules": [{"modules": "*", "retracted": true, "action": "deny", "reason": "retracted"},
                          {"modules": "github.com/corp-fork", "action": "admit", "sources": ["mirror", "public"]}]}"#,
        );
        assert!(matches!(
            r.judge("a.example/m", "v1.0.0", Some(true)),
            Verdict::Deny(_)
        ));
        assert!(matches!(
            r.judge("a.example/m", "v1.0.0", Some(false)),
            Verdict::Admit
        ));
        assert!(matches!(
            r.judge("a.example/m", "v1.0.0", None),
            Verdict::Admit
        ));
        match r.judge("github.com/corp-fork/x", "v1.0.0", None) {
            Verdict::Sources(s) => assert_eq!(s, ["mirror", "public"]),
            other => panic!("{other:?}"),
        }
        let config: FilterConfig = serde_json::from_str(
            r#"{"rules": [{"modules": "x", "action": "deny", "sources": ["a"]}]}"#,
        )
        .expect("config");
        assert!(
            Rules::new(config)
                .expect_err("deny with sources")
                .contains("rules[0].sources")
        );
    }

    #[test]
    fn semver_precedence_is_go_s() {
        use std::cmp::Ordering::*;
        for (a, b, o) in [
            ("v1.0.0", "v1.0.0+meta", Equal),
            ("v1.0.0-alpha", "v1.0.0-alpha.1", Less),
            ("v1.0.0-alpha.1", "v1.0.0-alpha.beta", Less),
            ("v1.0.0-beta.2", "v1.0.0-beta.11", Less),
            ("v1.0.0-rc.1", "v1.0.0", Less),
            ("v1.10.0", "v1.9.0", Greater),
        ] {
            assert_eq!(compare(a, b), Some(o), "{a} {b}");
        }
    }

    #[test]
    fn bad_configs_name_the_rule_and_field() {
        for (json, want) in [
            (
                r#"{"rules": [{"modules": "[a-", "action": "deny"}]}"#,
                "rules[0].modules",
            ),
            (
                r#"{"rules": [{"modules": "", "action": "deny"}]}"#,
                "rules[0].modules",
            ),
            (
                r#"{"rules": [{"modules": "x", "versions": ">=1.2", "action": "deny"}]}"#,
                "rules[0].versions",
            ),
            (
                r#"{"rules": [{"modules": "x", "versions": ",", "action": "deny"}]}"#,
                "rules[0].versions",
            ),
        ] {
            let config: FilterConfig = serde_json::from_str(json).expect("config");
            let e = Rules::new(config).expect_err(json);
            assert!(e.contains(want), "{json}: {e}");
        }
        assert!(serde_json::from_str::<FilterConfig>(r#"{"rulez": []}"#).is_err());
        assert!(
            serde_json::from_str::<FilterConfig>(
                r#"{"rules": [{"modules": "x", "action": "maybe"}]}"#
            )
            .is_err()
        );
    }
}
