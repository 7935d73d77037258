//! Request paths parsed recently on this thread, so a hot path is checked once, not on every
//! request.
//!
//! [`request::parse`] unescapes and checks the module path and version against every
//! `golang.org/x/mod/module` rule; on a warm `.info`/`.mod` request that was the largest piece
//! of modgate's own work (~1 µs of ~5 µs, perf). Its result depends on the path alone, so it is
//! kept per worker thread (no locks, nothing shared between cores) in a bounded cache. Only
//! successes are kept (a refused path is parsed again and costs no memory), and only paths up
//! to [`MAX_KEPT_PATH`] bytes, which bounds the cache to a few MiB per thread at worst.

use std::cell::RefCell;

use crate::goproxy::request::{self, ProxyRequest, RequestError};

/// Paths kept per thread: a large `go mod download` asks for a few thousand.
const KEPT: usize = 4096;
/// Longer paths are parsed every time (no real module path comes close).
const MAX_KEPT_PATH: usize = 256;

thread_local! {
    static RECENT: RefCell<quick_cache::unsync::Cache<Box<str>, ProxyRequest>> =
        RefCell::new(quick_cache::unsync::Cache::new(KEPT));
}

/// [`request::parse`], answered from this thread's recent successes when `path` is one.
pub(super) fn parse(path: &str) -> Result<ProxyRequest, RequestError> {
    if path.len() > MAX_KEPT_PATH {
        return request::parse(path);
    }
    if let Some(parsed) = RECENT.with_borrow(|recent| recent.get(path).cloned()) {
        return Ok(parsed);
    }
    let parsed = request::parse(path)?;
    RECENT.with_borrow_mut(|recent| recent.insert(path.into(), parsed.clone()));
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> usize {
        RECENT.with_borrow(|r| r.len())
    }

    #[test]
    fn answers_exactly_what_the_parser_answers_and_keeps_only_successes() {
        let paths = [
            "/github.com/!azure/go-autorest/@v/v0.11.29.info",
            "/golang.org/x/mod/@v/v0.20.0.mod",
            "/golang.org/x/mod/@v/list",
            "/golang.org/x/mod/@latest",
            "/golang.org/x/mod/@v/master.info",
            "/example.com/m/v2/@v/v2.0.0.zip",
            "/sumdb/sum.golang.org/supported",
            // Refused: each must be refused again, with the same message.
            "/golang.org/x/mod/@v/v0.20.0.mod/../x",
            "/example.com/m/v2/@v/v1.0.0.mod",
            "/Example.com/m/@v/list",
            "/golang.org/x/%2e%2e/@v/list",
        ];
        let before = kept();
        for round in 0..3 {
            for path in paths {
                assert_eq!(parse(path), request::parse(path), "{path}, round {round}");
            }
        }
        let successes = paths.iter().filter(|p| request::parse(p).is_ok()).count();
        assert_eq!(kept() - before, successes);
    }

    #[test]
    fn more_paths_than_are_kept_are_still_answered_right() {
        let paths: Vec<String> = (0..KEPT * 2)
            .map(|i| format!("/golang.org/x/mod/@v/v0.{i}.0.info"))
            .collect();
        for _ in 0..2 {
            for p in &paths {
                assert_eq!(parse(p), request::parse(p), "{p}");
            }
        }
        assert!(kept() <= KEPT, "{} kept", kept());
    }

    #[test]
    fn long_paths_are_parsed_every_time() {
        let long = format!("/example.com/{}/@v/list", "a".repeat(MAX_KEPT_PATH));
        let before = kept();
        assert_eq!(parse(&long), request::parse(&long));
        assert!(parse(&long).is_ok());
        assert_eq!(kept(), before);
    }
}
