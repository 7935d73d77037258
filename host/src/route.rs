//! Routes: GOPRIVATE-style patterns that choose storage and sources for a module.
//!
//! Matching follows `module.MatchPrefixPatterns` (the go command's GOPRIVATE/GONOPROXY rule): a
//! pattern with N path elements is matched with `path.Match` against the first N elements of the
//! module path, so `corp.example` matches `corp.example/x/y` and `*` matches every module.

use crate::upstream::SourceList;

/// One `path.Match` glob (`*`, `?`, `[a-z]`, `\` escapes; `*` never crosses `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    glob: String,
    elements: usize,
}

impl Pattern {
    /// Parses a glob; malformed character classes are an error, as `path.Match` reports them.
    pub fn parse(glob: &str) -> Result<Self, String> {
        let glob = glob.trim_end_matches('/');
        if glob.is_empty() {
            return Err("empty pattern".into());
        }
        // Validate the syntax once by matching against a dummy string.
        match_glob(glob, "").map_err(|()| format!("malformed pattern `{glob}`"))?;
        Ok(Self {
            glob: glob.to_owned(),
            elements: glob.split('/').count(),
        })
    }

    /// Whether the pattern matches a prefix of whole path elements of `module`.
    pub fn matches(&self, module: &str) -> bool {
        let prefix = match module.match_indices('/').nth(self.elements - 1) {
            Some((i, _)) => &module[..i],
            None if module.split('/').count() == self.elements => module,
            None => return false,
        };
        match_glob(&self.glob, prefix).unwrap_or(false)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.glob
    }
}

/// A resolved `[[route]]`.
#[derive(Debug, Clone)]
pub struct Route {
    /// Position in the file, for messages (`route[0]`).
    pub index: usize,
    pub patterns: Vec<Pattern>,
    /// Name of the storage backend.
    pub storage: String,
    /// Upstream sources in order; empty means storage only.
    pub sources: SourceList,
    /// Authorizer plugins asked in order (empty: no authentication).
    pub auth: Vec<String>,
    /// Git repositories serving this route's modules, and their place among `sources`.
    pub git: Option<crate::config::GitRoute>,
    /// Who may upload versions into the route's storage.
    pub uploads: crate::config::Uploads,
}

impl Route {
    /// True when the route has neither upstream proxies nor git repositories: storage only.
    pub fn is_offline(&self) -> bool {
        self.sources.is_offline() && self.git.is_none()
    }
}

/// Routes in file order; the first match wins.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(routes: Vec<Route>) -> Self {
        Self { routes }
    }

    /// The route for `module` (unescaped path), if any matches.
    pub fn route(&self, module: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.patterns.iter().any(|p| p.matches(module)))
    }

    /// All routes in order.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }
}

/// `path.Match`: `Err(())` for a malformed pattern.
fn match_glob(pattern: &str, name: &str) -> Result<bool, ()> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matcher with backtracking to the last `*` (which cannot cross '/').
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    let result = loop {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
            continue;
        }
        if ni == n.len() {
            // Remaining pattern must be all stars to match.
            break p[pi..].iter().all(|&c| c == '*');
        }
        let step = if pi < p.len() {
            match_one(&p, pi, n[ni])?
        } else {
            None
        };
        match step {
            Some(next) => {
                pi = next;
                ni += 1;
            }
            None => match star {
                Some((sp, sn)) if n[sn] != '/' => {
                    star = Some((sp, sn + 1));
                    pi = sp + 1;
                    ni = sn + 1;
                }
                _ => break false,
            },
        }
    };
    // path.Match reports a syntax error even when the match fails early: check the rest.
    let mut i = 0;
    while i < p.len() {
        if p[i] == '[' || p[i] == '\\' {
            match_one(&p, i, 'a')?;
        }
        i += 1;
    }
    if p.last() == Some(&'\\') {
        return Err(());
    }
    Ok(result)
}

/// Matches one pattern item at `pi` against `c`; returns the index after the item when it matches.
fn match_one(p: &[char], pi: usize, c: char) -> Result<Option<usize>, ()> {
    match p[pi] {
        '?' => Ok((c != '/').then_some(pi + 1)),
        '\\' => {
            let lit = *p.get(pi + 1).ok_or(())?;
            Ok((lit == c).then_some(pi + 2))
        }
        '[' => {
            let mut i = pi + 1;
            let negate = p.get(i) == Some(&'^');
            if negate {
                i += 1;
            }
            let mut matched = false;
            let mut first = true;
            loop {
                let ch = *p.get(i).ok_or(())?;
                if ch == ']' && !first {
                    i += 1;
                    break;
                }
                first = false;
                let lo = if ch == '\\' {
                    i += 1;
                    *p.get(i).ok_or(())?
                } else if ch == '-' || ch == ']' {
                    return Err(());
                } else {
                    ch
                };
                i += 1;
                let mut hi = lo;
                if p.get(i) == Some(&'-') {
                    i += 1;
                    let h = *p.get(i).ok_or(())?;
                    hi = if h == '\\' {
                        i += 1;
                        *p.get(i).ok_or(())?
                    } else if h == ']' || h == '-' {
                        return Err(());
                    } else {
                        h
                    };
                    i += 1;
                }
                if lo <= c && c <= hi {
                    matched = true;
                }
            }
            Ok((matched != negate && c != '/').then_some(i))
        }
        lit => Ok((lit == c).then_some(pi + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, module: &str) -> bool {
        Pattern::parse(glob).expect("valid pattern").matches(module)
    }

    #[test]
    fn prefix_patterns_like_goprivate() {
        // Cases from golang.org/x/mod/module TestMatchPrefixPatterns.
        assert!(m("*/quote", "rsc.io/quote"));
        assert!(m("*/quote", "rsc.io/quote/v3"));
        assert!(!m("*/quote", "rsc.io/qu"));
        assert!(m("rsc.io", "rsc.io/quote"));
        assert!(!m("rsc.io", "rsc.iox/quote"));
        assert!(m("*", "anything/at/all"));
        assert!(m("corp.example/*", "corp.example/team/x"));
        assert!(!m("corp.example/*", "corp.example"));
        assert!(m("*.corp.example", "git.corp.example/a"));
        assert!(!m("*.corp.example", "corp.example/a"));
        assert!(m("rsc.io/", "rsc.io/quote"));
        assert!(m("github.com/[a-c]*", "github.com/bob/x"));
        assert!(!m("github.com/[a-c]*", "github.com/zed/x"));
        assert!(m("github.com/[^a-c]*", "github.com/zed/x"));
        assert!(m("git?.corp", "git1.corp/x"));
    }

    #[test]
    fn malformed_patterns_are_rejected() {
        assert!(Pattern::parse("[a-").is_err());
        assert!(Pattern::parse("x\\").is_err());
        assert!(Pattern::parse("").is_err());
    }

    #[test]
    fn first_route_wins() {
        let route = |i, glob: &str| Route {
            index: i,
            patterns: vec![Pattern::parse(glob).expect("valid")],
            storage: format!("s{i}"),
            sources: SourceList::default(),
            auth: Vec::new(),
            git: None,
            uploads: crate::config::Uploads::default(),
        };
        let t = RouteTable::new(vec![route(0, "corp.example"), route(1, "*")]);
        assert_eq!(t.route("corp.example/a").map(|r| r.index), Some(0));
        assert_eq!(t.route("rsc.io/quote").map(|r| r.index), Some(1));
    }
}
