//! Module path patterns with the semantics of `GOPRIVATE` (Go's `module.MatchPrefixPatterns`):
//! a pattern of N path elements matches a module path whose first N elements match it with
//! `path.Match`. So `corp.example` matches `corp.example/x/y`, and `corp.example/*` matches every
//! module below `corp.example` (not `corp.example` itself).

use std::fmt;

/// One compiled pattern, e.g. `corp.example/*` or `*.corp.example/team`.
///
/// Syntax is Go's `path.Match`: `*` is any run of characters other than `/`, `?` one such
/// character, `[a-z]`/`[^0-9]` a class, `\` escapes. A trailing `/...` (the go command's package
/// wildcard) is accepted and means the same as without it: patterns already match prefixes.
#[derive(Clone, Debug)]
pub struct ModulePattern {
    text: String,
    /// Slashes in the pattern: the module path is cut before its `elements + 1`-th slash.
    slashes: usize,
    tokens: Vec<Token>,
}

#[derive(Clone, Debug)]
enum Token {
    Literal(char),
    /// `*`
    Run,
    /// `?`
    One,
    /// `[...]`: inclusive ranges, possibly negated.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A pattern `path.Match` would reject.
#[derive(Debug, PartialEq, Eq)]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "module pattern {:?}: {}", self.pattern, self.reason)
    }
}

impl std::error::Error for PatternError {}

impl ModulePattern {
    /// Compile `pattern`.
    ///
    /// ```
    /// let p = auth_core::ModulePattern::parse("corp.example/*").unwrap();
    /// assert!(p.matches("corp.example/team/tool"));
    /// assert!(!p.matches("corp.example"));
    /// ```
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let error = |reason| PatternError {
            pattern: pattern.to_string(),
            reason,
        };
        let trimmed = pattern.strip_suffix("/...").unwrap_or(pattern);
        let trimmed = trimmed.trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(error("empty pattern"));
        }
        let mut tokens = Vec::new();
        let mut chars = trimmed.chars();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::Run,
                '?' => Token::One,
                '\\' => Token::Literal(chars.next().ok_or(error("trailing backslash"))?),
                '[' => {
                    let negated = chars.clone().next() == Some('^');
                    if negated {
                        chars.next();
                    }
                    let mut ranges = Vec::new();
                    loop {
                        let lo = match chars.next() {
                            None => return Err(error("unclosed [")),
                            Some(']') if !ranges.is_empty() => break,
                            Some(']') => return Err(error("empty []")),
                            Some('\\') => chars.next().ok_or(error("trailing backslash"))?,
                            Some(c) => c,
                        };
                        let mut hi = lo;
                        if chars.clone().next() == Some('-') {
                            chars.next();
                            hi = match chars.next() {
                                None | Some(']') => return Err(error("bad range in []")),
                                Some('\\') => chars.next().ok_or(error("trailing backslash"))?,
                                Some(c) => c,
                            };
                            if hi < lo {
                                return Err(error("bad range in []"));
                            }
                        }
                        ranges.push((lo, hi));
                    }
                    Token::Class { negated, ranges }
                }
                c => Token::Literal(c),
            });
        }
        Ok(ModulePattern {
            text: pattern.to_string(),
            slashes: trimmed.matches('/').count(),
            tokens,
        })
    }

    /// The pattern as written in the config.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `module` (a module path) falls under this pattern.
    pub fn matches(&self, module: &str) -> bool {
        // The first `slashes + 1` elements; too few elements never match.
        let prefix = match module.match_indices('/').nth(self.slashes) {
            Some((i, _)) => &module[..i],
            None if module.matches('/').count() == self.slashes => module,
            None => return false,
        };
        let name: Vec<char> = prefix.chars().collect();
        match_tokens(&self.tokens, &name)
    }
}

fn match_tokens(tokens: &[Token], name: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return name.is_empty();
    };
    match first {
        // Backtracking over one path element: patterns and module paths are short.
        Token::Run => (0..=name.len())
            .take_while(|&i| i == 0 || name[i - 1] != '/')
            .any(|i| match_tokens(rest, &name[i..])),
        _ => match name.split_first() {
            Some((&c, tail)) if single(first, c) => match_tokens(rest, tail),
            _ => false,
        },
    }
}

fn single(token: &Token, c: char) -> bool {
    match token {
        Token::Literal(l) => *l == c,
        Token::One => c != '/',
        Token::Class { negated, ranges } => {
            c != '/' && ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
        }
        Token::Run => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, module: &str) -> bool {
        match ModulePattern::parse(pattern) {
            Ok(p) => p.matches(module),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn goprivate_semantics() {
        // Cases from Go's module.TestMatchPrefixPatterns and GOPRIVATE's documentation.
        for (pattern, module, want) in [
            ("*/quote", "rsc.io/quote", true),
            ("*/quo", "rsc.io/quote", false),
            ("*/quote", "rsc.io/quote/v3", true),
            ("rsc.io", "rsc.io/quote", true),
            ("rsc.io", "rsc.io", true),
            ("rsc.io/", "rsc.io/quote", true),
            ("rsc.io/quote", "rsc.io", false),
            ("*.corp.example.com", "git.corp.example.com/team/x", true),
            ("*.corp.example.com", "corp.example.com/x", false),
            ("corp.example/*", "corp.example/team", true),
            ("corp.example/*", "corp.example/team/tool/v2", true),
            ("corp.example/*", "corp.example", false),
            ("corp.example/*", "corp.example.evil/x", false),
            ("corp.example/team/...", "corp.example/team", true),
            ("corp.example/team/...", "corp.example/team/x", true),
            ("corp.example/team/...", "corp.example/teams/x", false),
            ("*", "anything.example/at/all", true),
            ("corp.example/t?am", "corp.example/team", true),
            ("corp.example/[a-s]*", "corp.example/team", false),
            ("corp.example/[^a-s]*", "corp.example/team", true),
            ("corp.example/\\*", "corp.example/*", true),
            ("corp.example/\\*", "corp.example/x", false),
        ] {
            assert_eq!(matches(pattern, module), want, "{pattern} vs {module}");
        }
    }

    #[test]
    fn bad_patterns_are_refused_at_load() {
        for bad in [
            "",
            "/",
            "corp.example/[a-",
            "corp.example/[]",
            "x\\",
            "x/[z-a]",
        ] {
            assert!(ModulePattern::parse(bad).is_err(), "{bad}");
        }
    }
}
