//! The root go.mod's `go` line as `zip.checkFiles` reads it (`modfile.ParseLax` then
//! `version.Lang`), and `zip.isVendoredPackage`, whose rules depend on it.

/// The language version of the root go.mod, reduced to what the vendor rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GoVersion {
    /// No go.mod, no `go` line, or a go.mod `ParseLax` rejects: the pre-1.24 rules.
    None,
    /// `go MAJOR.MINOR…`.
    Lang(u64, u64),
}

impl GoVersion {
    /// `version.Compare(vers, "go1.24") >= 0` (an empty version sorts before every valid one).
    fn at_least_1_24(self) -> bool {
        match self {
            GoVersion::None => false,
            GoVersion::Lang(major, minor) => (major, minor) >= (1, 24),
        }
    }
}

/// `version.Lang(parseGoVers("go.mod", data))`.
///
/// A small lexer for the go.mod syntax: `//` comments, quoted strings, `(`…`)` blocks. As in
/// `ParseLax`, a second `go` line or a `go` argument that neither `GoVersionRE` nor the lax
/// pattern accepts makes the whole file unparsable (so [`GoVersion::None`]); a `go (` block is
/// ignored; other directives are not validated (`ParseLax` would also reject a file whose
/// `module`/`require`/`retract` lines are malformed, an edge this does not reproduce).
pub(super) fn go_version(data: &[u8]) -> GoVersion {
    let Ok(text) = std::str::from_utf8(data) else {
        return GoVersion::None;
    };
    let mut found = GoVersion::None;
    let mut depth = 0usize;
    for line in text.split('\n') {
        let Some(tokens) = tokens(line) else {
            return GoVersion::None;
        };
        let Some(first) = tokens.first() else {
            continue;
        };
        if depth > 0 {
            if first == ")" {
                depth -= 1;
            }
            continue;
        }
        if tokens.last().is_some_and(|t| t == "(") {
            depth += 1;
            continue;
        }
        if first != "go" {
            continue;
        }
        if found != GoVersion::None {
            return GoVersion::None; // repeated go statement
        }
        let [_, arg] = tokens.as_slice() else {
            return GoVersion::None;
        };
        match lang(arg) {
            Some(v) => found = v,
            None => return GoVersion::None,
        }
    }
    if depth > 0 {
        return GoVersion::None;
    }
    found
}

/// Splits a go.mod line into tokens; `None` for an unterminated quoted string.
fn tokens(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches([' ', '\t', '\r']);
        if rest.is_empty() || rest.starts_with("//") {
            return Some(out);
        }
        if rest.starts_with('(') || rest.starts_with(')') {
            out.push(rest.get(..1)?.to_owned());
            rest = rest.get(1..)?;
            continue;
        }
        if let Some(q) = rest.strip_prefix('"') {
            let end = q.find('"')?;
            out.push(format!("\"{}\"", q.get(..end)?));
            rest = q.get(end + 1..)?;
            continue;
        }
        if let Some(q) = rest.strip_prefix('`') {
            let end = q.find('`')?;
            out.push(format!("`{}`", q.get(..end)?));
            rest = q.get(end + 1..)?;
            continue;
        }
        let end = rest
            .find([' ', '\t', '\r', '(', ')', '"', '`'])
            .unwrap_or(rest.len());
        let end = match rest.find("//") {
            Some(c) if c < end => c,
            _ => end,
        };
        out.push(rest.get(..end)?.to_owned());
        rest = rest.get(end..)?;
    }
}

/// `GoVersionRE` (`1.N[.P][tagN]`), else the lax `v?1.N<non-digit>…`, reduced to `(1, N)`.
fn lang(arg: &str) -> Option<GoVersion> {
    let strict = |s: &str| -> Option<(u64, u64)> {
        let (major, rest) = number(s)?;
        let rest = rest.strip_prefix('.')?;
        let (minor, mut rest) = number(rest)?;
        if let Some(r) = rest.strip_prefix('.') {
            rest = number(r)?.1;
        }
        if !rest.is_empty() {
            let letters = rest.trim_start_matches(|c: char| c.is_ascii_lowercase());
            if letters.len() == rest.len()
                || letters.is_empty()
                || !letters.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
        }
        Some((major, minor))
    };
    if let Some((major, minor)) = strict(arg).filter(|&(major, _)| major != 0) {
        return Some(GoVersion::Lang(major, minor));
    }
    let s = arg.strip_prefix('v').unwrap_or(arg);
    let (major, rest) = number(s).filter(|&(major, _)| major != 0)?;
    let rest = rest.strip_prefix('.')?;
    let (minor, rest) = number(rest)?;
    // ([^0-9].*)$: at least one more character, not a digit (number() ate all digits).
    if rest.is_empty() {
        return None;
    }
    Some(GoVersion::Lang(major, minor))
}

/// A decimal number without leading zeros (`0` alone is fine), and the rest.
fn number(s: &str) -> Option<(u64, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let digits = s.get(..end)?;
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    // A number too large for u64 is still a valid (huge) version.
    let n = digits.parse::<u64>().unwrap_or(u64::MAX);
    Some((n, s.get(end..)?))
}

/// `zip.isVendoredPackage`: whether `name` is in a vendored package, i.e. below a `vendor/`
/// *package subdirectory*. With a go.mod at `go 1.24` or later `vendor/modules.txt` is left out
/// too; before 1.24 the offset of a nested `/vendor/` is computed from the start of the name (a
/// bug kept for old checksums, golang.org/issue/37397).
pub(super) fn is_vendored_package(name: &str, vers: GoVersion) -> bool {
    let new_rules = vers.at_least_1_24();
    if new_rules && name == "vendor/modules.txt" {
        return true;
    }
    let i = if name.starts_with("vendor/") {
        "vendor/".len()
    } else if let Some(j) = name.find("/vendor/") {
        if new_rules {
            j + "/vendor/".len()
        } else {
            "/vendor/".len()
        }
    } else {
        return false;
    };
    // Byte offsets, as Go slices strings (the old offset may fall inside a multi-byte rune).
    name.as_bytes()
        .get(i..)
        .is_some_and(|rest| rest.contains(&b'/'))
}
