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
    /// How to match without `path.Match` (the common cases, on every request).
    shape: Shape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `*`: every (first) element.
    Any,
    /// No wildcards: the elements as written.
    Literal,
    Glob,
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
        let shape = if glob == "*" {
            Shape::Any
        } else if glob.contains(['*', '?', '[', '\\']) {
            Shape::Glob
        } else {
            Shape::Literal
        };
        Ok(Self {
            glob: glob.to_owned(),
            elements: glob.split('/').count(),
            shape,
        })
    }

    /// Whether the pattern matches a prefix of whole path elements of `module`.
    pub fn matches(&self, module: &str) -> bool {
        let prefix = match module.match_indices('/').nth(self.elements - 1) {
            Some((i, _)) => &module[..i],
            None if module.split('/').count() == self.elements => module,
            None => return false,
        };
        match self.shape {
            // One element, and a prefix of one element has no '/': `*` matches it.
            Shape::Any => true,
            Shape::Literal => prefix == self.glob,
            Shape::Glob => match_glob(&self.glob, prefix).unwrap_or(false),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.glob
    }
}

/// A resolved `[[route]]` that serves modules: where they are stored, where they come from and
/// who may fetch them.
#[derive(Debug, Clone)]
pub struct Route {
    /// Position in the file, for messages (`route[0]`).
    pub index: usize,
    /// The route's `name`, by which a router plugin chooses it.
    pub name: Option<String>,
    /// Modules the route serves when the TOML decides (empty: reachable only by name).
    pub patterns: Vec<Pattern>,
    /// Name of the storage backend.
    pub storage: String,
    /// Upstream sources in order; empty means storage only.
    pub sources: SourceList,
    /// Authorizer plugins asked in order (empty: no authentication).
    pub auth: Vec<String>,
    /// Upstream-policy plugins asked in order about versions not yet stored.
    pub policies: Vec<String>,
    /// Git repositories serving this route's modules, and their place among `sources`.
    pub git: Option<crate::config::GitRoute>,
    /// Who may upload versions into the route's storage.
    pub uploads: crate::config::Uploads,
    /// How zips reach clients.
    pub download: crate::config::Download,
    /// Whether versions from the upstream proxies are checked against the checksum database.
    pub sumdb: crate::config::SumdbRoute,
}

impl Route {
    /// True when the route has neither upstream proxies nor git repositories: storage only.
    pub fn is_offline(&self) -> bool {
        self.sources.is_offline() && self.git.is_none()
    }
}

/// A resolved `[[route]]` with a `router`: for the modules it matches, the router plugin names
/// the route (or declines, and the routes after this one decide).
#[derive(Debug, Clone)]
pub struct Dispatch {
    /// Position in the file, for messages (`route[0]`).
    pub index: usize,
    pub patterns: Vec<Pattern>,
    /// The `[plugins.NAME]` router asked.
    pub router: String,
}

/// One `[[route]]` table, resolved.
#[derive(Debug, Clone)]
pub enum Entry {
    Serve(Route),
    Dispatch(Dispatch),
}

impl Entry {
    fn patterns(&self) -> &[Pattern] {
        match self {
            Entry::Serve(r) => &r.patterns,
            Entry::Dispatch(d) => &d.patterns,
        }
    }
}

/// What a matching `[[route]]` says: serve with this route, or ask this router.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    Serve(&'a Route),
    Ask(&'a Dispatch),
}

/// Routes in file order; the first match wins.
#[derive(Debug, Clone)]
pub struct RouteTable {
    entries: Vec<Entry>,
}

impl RouteTable {
    pub fn new(entries: Vec<Entry>) -> Self {
        Self { entries }
    }

    /// The `[[route]]` tables matching `module` (unescaped path), in file order: the first
    /// [`Step::Serve`] wins, unless a [`Step::Ask`] before it gets a route from its router.
    pub fn steps<'a, 'm>(
        &'a self,
        module: &'m str,
    ) -> impl Iterator<Item = Step<'a>> + use<'a, 'm> {
        self.entries
            .iter()
            .filter(move |e| e.patterns().iter().any(|p| p.matches(module)))
            .map(|e| match e {
                Entry::Serve(r) => Step::Serve(r),
                Entry::Dispatch(d) => Step::Ask(d),
            })
    }

    /// The route for `module` by the TOML alone: the first serving route that matches, skipping
    /// router routes (for tools that have no request to show a router).
    pub fn route(&self, module: &str) -> Option<&Route> {
        self.steps(module).find_map(|step| match step {
            Step::Serve(r) => Some(r),
            Step::Ask(_) => None,
        })
    }

    /// The serving route called `name`.
    pub fn named(&self, name: &str) -> Option<&Route> {
        self.iter().find(|r| r.name.as_deref() == Some(name))
    }

    /// All serving routes in order.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Serve(r) => Some(r),
            Entry::Dispatch(_) => None,
        })
    }

    /// All router routes in order.
    pub fn dispatches(&self) -> impl Iterator<Item = &Dispatch> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Dispatch(d) => Some(d),
            Entry::Serve(_) => None,
        })
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
        // Literal patterns (matched without the glob matcher) and `*`.
        assert!(m("corp.example/team", "corp.example/team/x"));
        assert!(m("corp.example/team", "corp.example/team"));
        assert!(!m("corp.example/team", "corp.example/teamx/y"));
        assert!(!m("corp.example/team", "corp.example"));
        assert!(m("*", "single"));
    }

    #[test]
    fn malformed_patterns_are_rejected() {
        assert!(Pattern::parse("[a-").is_err());
        assert!(Pattern::parse("x\\").is_err());
        assert!(Pattern::parse("").is_err());
    }

    fn serve(i: usize, glob: &str, name: Option<&str>) -> Entry {
        Entry::Serve(Route {
            index: i,
            name: name.map(str::to_owned),
            patterns: Pattern::parse(glob).into_iter().collect(),
            storage: format!("s{i}"),
            sources: SourceList::default(),
            auth: Vec::new(),
            policies: Vec::new(),
            git: None,
            uploads: crate::config::Uploads::default(),
            download: crate::config::Download::default(),
            sumdb: crate::config::SumdbRoute::default(),
        })
    }

    #[test]
    fn first_route_wins() {
        let t = RouteTable::new(vec![serve(0, "corp.example", None), serve(1, "*", None)]);
        assert_eq!(t.route("corp.example/a").map(|r| r.index), Some(0));
        assert_eq!(t.route("rsc.io/quote").map(|r| r.index), Some(1));
    }

    #[test]
    fn router_routes_come_in_file_order_and_named_routes_are_found_by_name() {
        let t = RouteTable::new(vec![
            serve(0, "public.example", None),
            Entry::Dispatch(Dispatch {
                index: 1,
                patterns: vec![Pattern::parse("corp.example").expect("valid")],
                router: "tenants".into(),
            }),
            serve(2, "*", Some("default")),
            // No patterns: reachable only when a router names it.
            serve(3, "", Some("tenant-a")),
        ]);
        let steps: Vec<String> = t
            .steps("corp.example/x")
            .map(|s| match s {
                Step::Serve(r) => format!("serve {}", r.index),
                Step::Ask(d) => format!("ask {}", d.router),
            })
            .collect();
        assert_eq!(steps, ["ask tenants", "serve 2"]);
        assert_eq!(t.route("corp.example/x").map(|r| r.index), Some(2));
        assert_eq!(t.steps("public.example/y").count(), 2);
        assert_eq!(t.named("tenant-a").map(|r| r.index), Some(3));
        assert!(t.named("tenants").is_none(), "router routes have no name");
        assert_eq!(t.iter().count(), 3);
        assert_eq!(t.dispatches().count(), 1);
    }
}
