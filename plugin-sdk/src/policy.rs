//! Upstream policies: which module versions may come in from outside.
//!
//! modgate asks a route's `policies` about every module version it is about to take in from an
//! upstream proxy or a git source — not yet stored — before anything of it is fetched or
//! served: one [`Candidate`] for a request about one version, every listed version at once for
//! `list` and `@latest` (what a policy denies is left out, so `go get m@latest` resolves to
//! the newest admitted version). The first deny of the route's policies wins. A policy that
//! traps or times out refuses the version (503 naming the plugin).
//!
//! ```no_run
//! use modgate_plugin_sdk::policy::{export_policy, Candidate, Policy, Verdict};
//! use modgate_plugin_sdk::RequestFacts;
//!
//! /// Nothing from an abandoned namespace.
//! struct NotAbandoned;
//!
//! impl Policy for NotAbandoned {
//!     fn judge(_req: &RequestFacts, c: &Candidate) -> Verdict {
//!         if c.module.starts_with("example.com/abandoned/") {
//!             Verdict::deny(403, format!("{}: abandoned, use example.com/kept", c.module))
//!         } else {
//!             Verdict::Admit
//!         }
//!     }
//! }
//!
//! export_policy!(NotAbandoned);
//! # fn main() {}
//! ```
//!
//! A verdict that depends only on the candidate (not on the time of day, `kv` or `http`) can be
//! remembered per version with [`crate::memo::remember`]: the host then answers later requests
//! about the same module version without calling the plugin.

pub use crate::bindings::policy::modgate::plugin::policy_types::{Candidate, Verdict};
use crate::bindings::types::Deny;
pub use crate::export_policy;

/// An upstream policy. Implement it on a unit struct and export it with [`export_policy!`].
pub trait Policy {
    /// The verdict on one candidate; `req` is the client's request that made modgate ask.
    fn judge(req: &crate::RequestFacts, candidate: &Candidate) -> Verdict;

    /// The verdicts on all `candidates`, in order. The default judges each on its own.
    fn judge_all(req: &crate::RequestFacts, candidates: &[Candidate]) -> Vec<Verdict> {
        candidates.iter().map(|c| Self::judge(req, c)).collect()
    }
}

impl Verdict {
    /// Refuse with `status` (a 4xx; 403 is usual) and one line the go command shows the user.
    pub fn deny(status: u16, message: impl Into<String>) -> Self {
        Verdict::Deny(Deny {
            status,
            message: message.into(),
        })
    }
}

impl Candidate {
    /// The version's time as seconds since the Unix epoch, when known and well formed
    /// (RFC 3339, as in `.info`).
    pub fn unix_time(&self) -> Option<i64> {
        parse_rfc3339(self.time.as_deref()?)
    }
}

/// Seconds since the Unix epoch of an RFC 3339 time (`2024-01-02T03:04:05Z`, fractions and
/// offsets allowed).
pub fn parse_rfc3339(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = t.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s - offset)
}

/// Exports a type implementing [`Policy`] as the plugin's `upstream-policy` world.
#[macro_export]
macro_rules! export_policy {
    ($ty:ident) => {
        impl $crate::bindings::policy::Guest for $ty {
            fn judge(
                req: $crate::RequestFacts,
                candidates: Vec<$crate::policy::Candidate>,
            ) -> Vec<$crate::policy::Verdict> {
                <$ty as $crate::policy::Policy>::judge_all(&req, &candidates)
            }
        }
        $crate::bindings::policy::export!($ty with_types_in $crate::bindings::policy);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-01-02T03:04:05Z"), Some(1_704_164_645));
        assert_eq!(
            parse_rfc3339("2024-01-02T03:04:05.123456789Z"),
            Some(1_704_164_645)
        );
        assert_eq!(
            parse_rfc3339("2024-01-02T05:04:05+02:00"),
            Some(1_704_164_645)
        );
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800));
        for bad in [
            "",
            "2024-01-02",
            "2024-13-02T03:04:05Z",
            "2024-01-02T03:04:05",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
