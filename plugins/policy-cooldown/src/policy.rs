//! The cooldown: its config, checked, and the verdict on a version of a known age.

use std::time::Duration;

use auth_core::ModulePattern;
use modgate_plugin_sdk::policy::Verdict;

/// The plugin's `config` table as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CooldownConfig {
    /// How old a version must be to come in: `7d`, `36h`, `90m`, `3600s` (or a number of
    /// seconds).
    pub min_age: MinAge,
    /// GOPRIVATE-style patterns of modules admitted at any age (a list or a comma-separated
    /// string), e.g. the company's own.
    #[serde(default)]
    pub exempt: Vec<String>,
}

/// `min_age` as written.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum MinAge {
    Text(String),
    Seconds(u64),
}

/// The checked config.
#[derive(Debug)]
pub struct Cooldown {
    min_age: u64,
    /// `min_age` as written, for messages (`7 days`).
    shown: String,
    exempt: Vec<ModulePattern>,
}

impl Cooldown {
    pub fn new(file: CooldownConfig) -> Result<Self, String> {
        let min_age = match &file.min_age {
            MinAge::Seconds(s) => *s,
            MinAge::Text(t) => parse_duration(t).map_err(|e| format!("min_age: {e}"))?,
        };
        if min_age == 0 {
            return Err(
                "min_age: must be more than 0 (remove the policy to admit every age)".into(),
            );
        }
        let exempt = file
            .exempt
            .iter()
            .flat_map(|t| t.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| ModulePattern::parse(t).map_err(|e| format!("exempt: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Cooldown {
            min_age,
            shown: human(min_age),
            exempt,
        })
    }

    /// The verdict on `module@version` made at `time` (Unix seconds; `None`: unknown), `now`
    /// being the current time; with how long a refusal stays true.
    pub fn judge(
        &self,
        module: &str,
        version: &str,
        time: Option<i64>,
        now: i64,
    ) -> (Verdict, Option<Duration>) {
        if self.exempt.iter().any(|p| p.matches(module)) {
            return (Verdict::Admit, None);
        }
        let Some(time) = time else {
            return (Verdict::NeedsTime, None);
        };
        let age = now.saturating_sub(time).max(0) as u64;
        if age >= self.min_age {
            return (Verdict::Admit, None);
        }
        let message = format!(
            "{module}@{version} is {} old; this proxy admits versions after {}",
            human_age(age),
            self.shown
        );
        (
            Verdict::deny(403, message),
            Some(Duration::from_secs(self.min_age - age)),
        )
    }
}

/// `7d`, `36h`, `90m`, `3600s`, or a bare number of seconds.
fn parse_duration(t: &str) -> Result<u64, String> {
    let t = t.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{t}` is not a duration (e.g. `7d`, `36h`, `90m`)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        other => return Err(format!("`{other}` is not a unit (s, m, h, d, w)")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("`{t}` is too long"))
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// A configured age as people say it (`7 days`, `36 hours`).
fn human(secs: u64) -> String {
    if secs.is_multiple_of(86_400) {
        plural(secs / 86_400, "day")
    } else if secs.is_multiple_of(3600) {
        plural(secs / 3600, "hour")
    } else if secs.is_multiple_of(60) {
        plural(secs / 60, "minute")
    } else {
        plural(secs, "second")
    }
}

/// An age, rounded down to its largest unit (`2 days`, `5 hours`, `1 minute`).
fn human_age(secs: u64) -> String {
    if secs >= 86_400 {
        plural(secs / 86_400, "day")
    } else if secs >= 3600 {
        plural(secs / 3600, "hour")
    } else if secs >= 60 {
        plural(secs / 60, "minute")
    } else {
        plural(secs, "second")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn cooldown(json: &str) -> Cooldown {
        Cooldown::new(serde_json::from_str(json).expect("config")).expect("cooldown")
    }

    #[test]
    fn young_versions_wait_with_the_reason_and_for_how_long() {
        let c = cooldown(r#"{"min_age": "7d", "exempt": ["corp.example/*"]}"#);
        let now = 1_000 * DAY;
        let (v, until) = c.judge("github.com/x/y", "v1.4.0", Some(now - 2 * DAY - 5), now);
        let Verdict::Deny(d) = v else { panic!("{v:?}") };
        assert_eq!(d.status, 403);
        assert_eq!(
            d.message,
            "github.com/x/y@v1.4.0 is 2 days old; this proxy admits versions after 7 days"
        );
        assert_eq!(until, Some(Duration::from_secs((5 * DAY - 5) as u64)));
        assert!(matches!(
            c.judge("github.com/x/y", "v1.3.0", Some(now - 7 * DAY), now)
                .0,
            Verdict::Admit
        ));
        // Exempt modules come in at any age, and need no time.
        assert!(matches!(
            c.judge("corp.example/team/lib", "v0.1.0", Some(now), now).0,
            Verdict::Admit
        ));
        assert!(matches!(
            c.judge("corp.example/team/lib", "v0.1.0", None, now).0,
            Verdict::Admit
        ));
        // Without a time the host is asked for it.
        assert!(matches!(
            c.judge("github.com/x/y", "v1.4.0", None, now).0,
            Verdict::NeedsTime
        ));
        // A time in the future is young.
        assert!(matches!(
            c.judge("github.com/x/y", "v1.5.0", Some(now + DAY), now).0,
            Verdict::Deny(_)
        ));
    }

    #[test]
    fn durations_and_bad_configs() {
        assert_eq!(parse_duration("36h"), Ok(36 * 3600));
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400));
        assert_eq!(parse_duration("3600"), Ok(3600));
        assert!(parse_duration("7 days").is_err());
        assert!(parse_duration("d").is_err());
        assert_eq!(cooldown(r#"{"min_age": 90}"#).shown, "90 seconds");
        assert_eq!(cooldown(r#"{"min_age": "36h"}"#).shown, "36 hours");
        for bad in [
            r#"{"min_age": "0s"}"#,
            r#"{"min_age": "soon"}"#,
            r#"{"min_age": "1d", "exempt": ["[a-"]}"#,
        ] {
            let file: CooldownConfig = serde_json::from_str(bad).expect("shape");
            assert!(Cooldown::new(file).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<CooldownConfig>(r#"{"exempt": []}"#).is_err());
    }
}
