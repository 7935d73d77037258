//! Pseudo-versions (`golang.org/x/mod/module/pseudo.go`).
//!
//! A pseudo-version names an untagged commit and orders it among tagged versions. Its forms:
//!
//! 1. `vX.0.0-yyyymmddhhmmss-abcdef123456` (no earlier tag with major `vX`),
//! 2. `vX.Y.(Z+1)-0.yyyymmddhhmmss-abcdef123456` (after tag `vX.Y.Z`),
//! 3. form 2 with `+incompatible`,
//! 4. `vX.Y.Z-pre.0.yyyymmddhhmmss-abcdef123456` (after tag `vX.Y.Z-pre`),
//! 5. form 4 with `+incompatible`.
//!
//! The timestamp is the commit time in UTC, the revision usually a 12-character hash prefix.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::path::quote;
use super::semver;

/// A UTC calendar time with second precision, years 0000–9999: the range a pseudo-version's
/// `yyyymmddhhmmss` stamp can express (`module.PseudoVersionTimestampFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

impl Timestamp {
    /// Builds a timestamp from calendar fields, or `None` if any is out of range (as Go's
    /// `time.Parse` would reject it: month 1–12, a day that exists in that month, hour 0–23,
    /// minute and second 0–59).
    pub fn new(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Option<Self> {
        let valid = year <= 9999
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour < 24
            && minute < 60
            && second < 60;
        valid.then_some(Self {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    /// The timestamp `secs` seconds after the Unix epoch (negative: before), or `None` outside
    /// years 0000–9999.
    pub fn from_unix(secs: i64) -> Option<Self> {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let year = u16::try_from(year).ok()?;
        // rem < 86400, so each field fits in u8.
        let hour = u8::try_from(rem / 3600).ok()?;
        let minute = u8::try_from(rem % 3600 / 60).ok()?;
        let second = u8::try_from(rem % 60).ok()?;
        Self::new(year, month, day, hour, minute, second)
    }

    /// The timestamp of a [`SystemTime`], truncated to whole seconds, or `None` outside years
    /// 0000–9999.
    pub fn from_system_time(t: SystemTime) -> Option<Self> {
        let secs = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).ok()?,
            Err(e) => {
                // Before the epoch: round toward the past, as Go's Format does.
                let d = e.duration();
                let whole = i64::try_from(d.as_secs()).ok()?;
                if d.subsec_nanos() > 0 {
                    -whole - 1
                } else {
                    -whole
                }
            }
        };
        Self::from_unix(secs)
    }

    /// Seconds since the Unix epoch (negative before 1970).
    pub fn unix_seconds(&self) -> i64 {
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// As a [`SystemTime`].
    pub fn to_system_time(&self) -> SystemTime {
        let secs = self.unix_seconds();
        let magnitude = Duration::from_secs(secs.unsigned_abs());
        // Years 0000–9999 are well within SystemTime's range on every supported platform;
        // fall back to the epoch rather than panic if a platform disagrees.
        if secs >= 0 {
            UNIX_EPOCH.checked_add(magnitude).unwrap_or(UNIX_EPOCH)
        } else {
            UNIX_EPOCH.checked_sub(magnitude).unwrap_or(UNIX_EPOCH)
        }
    }

    /// The pseudo-version form `yyyymmddhhmmss` (Go layout `20060102150405`).
    pub fn pseudo_format(&self) -> String {
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// Parses `yyyymmddhhmmss` like Go's `time.Parse("20060102150405", s)`.
    pub fn parse_pseudo(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 14 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let num = |r: std::ops::Range<usize>| {
            b[r].iter()
                .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'))
        };
        // Two-digit fields are below 100, so they fit in u8.
        let two = |r| u8::try_from(num(r)).ok();
        Self::new(
            num(0..4),
            two(4..6)?,
            two(6..8)?,
            two(8..10)?,
            two(10..12)?,
            two(12..14)?,
        )
    }
}

/// RFC 3339 in UTC, as the go command writes the `Time` of an `.info` file:
/// `2019-04-05T12:00:00Z`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

fn is_leap(year: u16) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: `(year, month, day)`.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // day is 1..=31 and month 1..=12 by construction.
    (
        year,
        u8::try_from(month).unwrap_or(1),
        u8::try_from(day).unwrap_or(1),
    )
}

/// Why a string is not a usable pseudo-version (`module.InvalidVersionError` with
/// `Pseudo: true`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pseudo-version {} invalid: {reason}", quote(.version))]
pub struct PseudoVersionError {
    /// The version that was examined.
    pub version: String,
    /// What is wrong with it.
    pub reason: String,
}

impl PseudoVersionError {
    fn new(version: &str, reason: impl Into<String>) -> Self {
        Self {
            version: version.to_owned(),
            reason: reason.into(),
        }
    }
}

/// `module.IsPseudoVersion`: whether `v` has one of the five pseudo-version forms.
pub fn is_pseudo_version(v: &str) -> bool {
    v.bytes().filter(|&b| b == b'-').count() >= 2 && semver::is_valid(v) && matches_pseudo_re(v)
}

/// `pseudoVersionRE`, matched by hand:
/// `^v[0-9]+\.(0\.0-|\d+\.\d+-([^+]*\.)?0\.)\d{14}-[A-Za-z0-9]+(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`
fn matches_pseudo_re(v: &str) -> bool {
    // Nothing before the build suffix may contain '+', so the first '+' starts it.
    let (main, build) = match v.find('+') {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    if let Some(build) = build
        && !build
            .split('.')
            .all(|id| !id.is_empty() && id.bytes().all(is_ident_byte))
    {
        return false;
    }
    // `-[A-Za-z0-9]+$`: the revision holds no '-', so it follows the last one.
    let Some((head, rev)) = main.rsplit_once('-') else {
        return false;
    };
    if rev.is_empty() || !rev.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    // `\d{14}` right before it.
    let Some(cut) = head.len().checked_sub(14) else {
        return false;
    };
    let (base, stamp) = head.split_at(cut);
    if !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    // `v[0-9]+\.` then `0\.0-` (form 1) ...
    let Some(after_major) = strip_digits(base.strip_prefix('v')).and_then(|s| s.strip_prefix('.'))
    else {
        return false;
    };
    if after_major == "0.0-" {
        return true;
    }
    // ... or `\d+\.\d+-([^+]*\.)?0\.` (forms 2–5).
    let Some(pre) = after_major.strip_suffix("0.") else {
        return false;
    };
    let Some(rest) = strip_digits(Some(pre))
        .and_then(|s| s.strip_prefix('.'))
        .and_then(|s| strip_digits(Some(s)))
        .and_then(|s| s.strip_prefix('-'))
    else {
        return false;
    };
    rest.is_empty() || rest.ends_with('.')
}

/// Strips one or more leading ASCII digits (`\d+`).
fn strip_digits(s: Option<&str>) -> Option<&str> {
    let s = s?;
    let rest = s.trim_start_matches(|c: char| c.is_ascii_digit());
    (rest.len() < s.len()).then_some(rest)
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// The parts of a pseudo-version (`module.parsePseudoVersion`).
struct PseudoParts<'a> {
    /// `vX.0.0`, `vX.Y.(Z+1)-0` or `vX.Y.Z-pre.0`.
    base: &'a str,
    timestamp: &'a str,
    rev: &'a str,
    build: &'a str,
}

fn parse_pseudo_version(v: &str) -> Result<PseudoParts<'_>, PseudoVersionError> {
    if !is_pseudo_version(v) {
        return Err(PseudoVersionError::new(v, "syntax error"));
    }
    let build = semver::build(v);
    let rest = &v[..v.len() - build.len()];
    // is_pseudo_version guarantees at least two '-' before the build suffix.
    let Some((rest, rev)) = rest.rsplit_once('-') else {
        return Err(PseudoVersionError::new(v, "syntax error"));
    };
    let i = rest.rfind('-').unwrap_or(0);
    let (base, timestamp) = match rest.rfind('.') {
        Some(j) if j > i => (&rest[..j], &rest[j + 1..]),
        _ => (&rest[..i], &rest[i + 1..]),
    };
    Ok(PseudoParts {
        base,
        timestamp,
        rev,
        build,
    })
}

/// `module.PseudoVersion`: the pseudo-version for a commit at time `t` with revision `rev`
/// (usually the 12-character hash prefix), given the module's major version (`"v2"`; `""`
/// means `v0`) and the most recent older tag (`""`, `v1.2.3`, `v1.2.3-pre`, optionally with
/// `+incompatible`).
pub fn pseudo_version(major: &str, older: &str, t: Timestamp, rev: &str) -> String {
    let major = if major.is_empty() { "v0" } else { major };
    let segment = format!("{}-{rev}", t.pseudo_format());
    let build = semver::build(older);
    let Some(older) = semver::canonical_semver(older) else {
        return format!("{major}.0.0-{segment}"); // form (1)
    };
    if !semver::prerelease(&older).is_empty() {
        return format!("{older}.0.{segment}{build}"); // form (4), (5)
    }
    // Form (2), (3): bump the patch of vMAJOR.MINOR.PATCH.
    let i = older.rfind('.').map_or(0, |i| i + 1);
    let (v, patch) = older.split_at(i);
    format!("{v}{}-0.{segment}{build}", inc_decimal(patch))
}

/// `module.ZeroPseudoVersion`: `vX.0.0-00010101000000-000000000000`, a placeholder.
pub fn zero_pseudo_version(major: &str) -> String {
    // Go's zero time.Time is 0001-01-01 00:00:00 UTC.
    let zero = Timestamp {
        year: 1,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
    };
    pseudo_version(major, "", zero, "000000000000")
}

/// `module.IsZeroPseudoVersion`: whether `v` is what [`zero_pseudo_version`] returns.
pub fn is_zero_pseudo_version(v: &str) -> bool {
    v == zero_pseudo_version(semver::major(v))
}

/// `module.PseudoVersionTime`: the commit time stamped into pseudo-version `v`.
pub fn pseudo_version_time(v: &str) -> Result<Timestamp, PseudoVersionError> {
    let parts = parse_pseudo_version(v)?;
    Timestamp::parse_pseudo(parts.timestamp).ok_or_else(|| {
        PseudoVersionError::new(v, format!("malformed time {}", quote(parts.timestamp)))
    })
}

/// `module.PseudoVersionRev`: the revision identifier of pseudo-version `v`.
pub fn pseudo_version_rev(v: &str) -> Result<&str, PseudoVersionError> {
    parse_pseudo_version(v).map(|p| p.rev)
}

/// `module.PseudoVersionBase`: the tagged version pseudo-version `v` builds on
/// (`v1.2.4-0.2019…-abc` → `v1.2.3`, `v1.2.3-pre.0.2019…-abc` → `v1.2.3-pre`, keeping
/// `+incompatible`), or `None` for form 1 (`vX.0.0-…`), which has no base.
pub fn pseudo_version_base(v: &str) -> Result<Option<String>, PseudoVersionError> {
    let PseudoParts { base, build, .. } = parse_pseudo_version(v)?;
    match semver::prerelease(base) {
        "" => {
            // vX.0.0-yyyymmddhhmmss-abcdef123456 has no parent tag, so build metadata (such as
            // "+incompatible") makes no sense on it.
            if !build.is_empty() {
                return Err(PseudoVersionError::new(
                    v,
                    format!(
                        "lacks base version, but has build metadata {}",
                        quote(build)
                    ),
                ));
            }
            Ok(None)
        }
        "-0" => {
            // vX.Y.(Z+1)-0.yyyymmddhhmmss-abcdef123456 → vX.Y.Z
            let base = &base[..base.len() - 2];
            let i = base.rfind('.').map_or(0, |i| i + 1);
            let patch = dec_decimal(&base[i..]);
            if patch.is_empty() {
                return Err(PseudoVersionError::new(
                    v,
                    format!("version before {base} would have negative patch number"),
                ));
            }
            Ok(Some(format!("{}{patch}{build}", &base[..i])))
        }
        // vX.Y.Z-pre.0.yyyymmddhhmmss-abcdef123456 → vX.Y.Z-pre (the regexp guarantees ".0").
        _ => Ok(Some(format!(
            "{}{build}",
            base.strip_suffix(".0").unwrap_or(base)
        ))),
    }
}

/// `module.incDecimal`: a decimal string plus one (`"99"` → `"100"`).
fn inc_decimal(decimal: &str) -> String {
    let mut digits = decimal.as_bytes().to_vec();
    let mut i = digits.len();
    while i > 0 && digits[i - 1] == b'9' {
        digits[i - 1] = b'0';
        i -= 1;
    }
    if i > 0 {
        digits[i - 1] += 1;
    } else {
        digits.insert(0, b'1');
    }
    String::from_utf8_lossy(&digits).into_owned()
}

/// `module.decDecimal`: a decimal string minus one (`"100"` → `"99"`), or `""` if it is zero.
fn dec_decimal(decimal: &str) -> String {
    let mut digits = decimal.as_bytes().to_vec();
    let mut i = digits.len();
    while i > 0 && digits[i - 1] == b'0' {
        digits[i - 1] = b'9';
        i -= 1;
    }
    if i == 0 {
        return String::new();
    }
    if i == 1 && digits[0] == b'1' && digits.len() > 1 {
        digits.remove(0);
    } else {
        digits[i - 1] -= 1;
    }
    String::from_utf8_lossy(&digits).into_owned()
}

#[cfg(test)]
mod tests;
