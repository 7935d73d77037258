//! Upstream GOPROXY servers: an ordered source list with the go command's `,`/`|` semantics.

use std::time::Duration;

/// One upstream proxy in a source list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    /// Base URL without a trailing slash, e.g. `https://proxy.corp.example/go`.
    pub base: String,
    /// `|` after this entry: fall through to the next one on any error, not only 404/410.
    pub fallthrough_on_error: bool,
    /// Time limit for one request, including the body.
    pub timeout: Duration,
    /// Extra attempts after a connection error or a 5xx.
    pub retries: u32,
}

/// Sources tried in order. Empty: offline, storage only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceList {
    pub entries: Vec<SourceEntry>,
}

impl SourceList {
    /// Parses a GOPROXY value the way the go command does (`modfetch.proxyList`): entries split
    /// by `,` (next on 404/410) or `|` (next on any error); `off` ends the list; `direct` is
    /// skipped (the git source is configured per route instead); a bare host gets `https://`.
    pub fn parse_goproxy(value: &str, timeout: Duration, retries: u32) -> Result<Self, String> {
        let mut entries: Vec<SourceEntry> = Vec::new();
        let mut rest = value.trim();
        while !rest.is_empty() {
            let (item, sep, tail) = match rest.find([',', '|']) {
                Some(i) => (&rest[..i], rest.as_bytes()[i], &rest[i + 1..]),
                None => (rest, b',', ""),
            };
            rest = tail;
            let item = item.trim();
            match item {
                "" => continue,
                "off" => break,
                "direct" | "noproxy" => continue,
                _ => {}
            }
            let url = if !item.contains(":/") && item.contains(['.', ':', '/']) && !item.starts_with('/') {
                format!("https://{item}")
            } else {
                item.to_owned()
            };
            let parsed: http::Uri = url
                .parse()
                .map_err(|e| format!("`{item}` is not a URL: {e}"))?;
            match parsed.scheme_str() {
                Some("http" | "https") => {}
                _ => return Err(format!("`{item}`: only http and https upstreams are supported")),
            }
            if parsed.query().is_some() {
                return Err(format!("`{item}`: a proxy URL cannot have a query"));
            }
            entries.push(SourceEntry {
                base: url.trim_end_matches('/').to_owned(),
                fallthrough_on_error: sep == b'|',
                timeout,
                retries,
            });
        }
        Ok(Self { entries })
    }

    /// True when there is no upstream: serve from storage only.
    pub fn is_offline(&self) -> bool {
        self.entries.is_empty()
    }
}
