//! Upstream GOPROXY servers: an ordered source list with the go command's `,`/`|` semantics
//! (`cmd/go/internal/modfetch/proxy.go`), fetched over hyper-util's client with rustls.

pub mod singleflight;

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::telemetry::Metrics;

/// One upstream proxy in a source list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    /// The `[upstream.NAME]` it comes from (empty outside a configuration), by which upstream
    /// policies order a route's sources.
    pub name: String,
    /// Base URL without a trailing slash, e.g. `https://proxy.corp.example/go`.
    pub base: String,
    /// `|` after this entry: fall through to the next one on any error, not only 404/410.
    pub fallthrough_on_error: bool,
    /// Time limit for one request; for a body, the longest pause in it.
    pub timeout: Duration,
    /// Bytes per second a body must average once it has taken longer than `timeout` (a
    /// trickle is cut off, a large zip over a slow link is not); 0: no floor.
    pub min_rate: u64,
    /// Extra attempts after a connection error or a 5xx.
    pub retries: u32,
    /// When to stop asking this upstream for a while.
    pub skip: Skip,
}

/// `skip_after`/`skip_for` of `[upstream.NAME]`: after `after` failed fetches in a row (each
/// with its retries; 5xx, 429, connection errors and timeouts), the upstream is skipped for
/// `first`, doubling while it keeps failing up to 16 times that: requests fail at once (or go
/// on to the next source after `|`) instead of each waiting out its time-out. After the pause
/// requests reach it again: an answer ends the pause, another failure starts a longer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip {
    /// `0`: never skipped.
    pub after: u32,
    pub first: Duration,
}

impl Default for Skip {
    fn default() -> Self {
        Skip {
            after: 5,
            first: Duration::from_secs(30),
        }
    }
}

/// The longest `Retry-After` waited out before a retry; a longer one ends the attempts (and
/// skips the upstream for that long).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// How an upstream has been doing, for [`Skip`].
#[derive(Debug, Default)]
struct Health {
    failures: u32,
    skipped_until: Option<Instant>,
    /// The next pause.
    pause: Duration,
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
            let url =
                if !item.contains(":/") && item.contains(['.', ':', '/']) && !item.starts_with('/')
                {
                    format!("https://{item}")
                } else {
                    item.to_owned()
                };
            let parsed: http::Uri = url
                .parse()
                .map_err(|e| format!("`{item}` is not a URL: {e}"))?;
            match parsed.scheme_str() {
                Some("http" | "https") => {}
                _ => {
                    return Err(format!(
                        "`{item}`: only http and https upstreams are supported"
                    ));
                }
            }
            if parsed.query().is_some() {
                return Err(format!("`{item}`: a proxy URL cannot have a query"));
            }
            entries.push(SourceEntry {
                name: String::new(),
                base: url.trim_end_matches('/').to_owned(),
                fallthrough_on_error: sep == b'|',
                timeout,
                min_rate: DEFAULT_MIN_RATE,
                retries,
                skip: Skip::default(),
            });
        }
        Ok(Self { entries })
    }

    /// The sources' hosts, for errors about an answer whose source is not known exactly.
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self.entries.iter().map(|e| host_of(&e.base)).collect();
        hosts.join(",")
    }

    /// True when there is no upstream: serve from storage only.
    pub fn is_offline(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Why a fetch from the source list failed. Errors name the source by its host only: a URL
/// may carry credentials or internal paths, and error texts reach clients.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// Every source answered 404/410 (or the list is empty): the client should fall through.
    /// `reason` is the first line of the last source's answer, when it gave one.
    #[error("{}", reason.as_deref().unwrap_or("not found upstream"))]
    NotFound { reason: Option<String> },
    /// A source refused the request (400 or 403): its answer, passed on as it is, because the
    /// go command draws conclusions from it (a refused path prefix is not fatal to a query).
    #[error("{host} answered {status}{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Refused {
        host: String,
        status: StatusCode,
        reason: Option<String>,
    },
    /// A source answered with another error status, or could not be reached.
    #[error("{host}: {message}")]
    Failed { host: String, message: String },
    /// A source did not answer, or paused sending, for longer than its timeout.
    #[error("{host}: timed out after {secs}s")]
    Timeout { host: String, secs: u64 },
    /// The body exceeded the size allowed for this kind of artifact.
    #[error("{host}: body larger than {limit} bytes")]
    TooLarge { host: String, limit: u64 },
}

impl FetchError {
    /// A not-found without a reason (no source, or a source that gave none).
    pub fn not_found() -> Self {
        FetchError::NotFound { reason: None }
    }
}

/// `url` with its password replaced by `xxxxx`, as the go command shows proxy URLs
/// (`url.URL.Redacted`): for logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:xxxxx@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The host (and port) of `url`, without user information: how errors name a source.
/// A TLS connector builder trusting the system's root certificates; without any, one that
/// trusts nothing (so `https` to `what` fails, as the log line says) rather than no client.
pub fn https_builder(
    what: &str,
) -> hyper_rustls::HttpsConnectorBuilder<hyper_rustls::builderstates::WantsSchemes> {
    match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "no system root certificates; {what} will fail");
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    }
}

/// The `host:port` an absolute `http://` or `https://` URL reaches (host in lower case, the
/// scheme's default port when none is given): what plugin grants (`grants.hosts`) name.
pub fn authority(uri: &Uri) -> Result<String, String> {
    let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
        return Err("not an absolute URL".into());
    };
    let port = match (uri.port_u16(), scheme) {
        (Some(p), "http" | "https") => p,
        (None, "http") => 80,
        (None, "https") => 443,
        _ => return Err(format!("scheme {scheme} (http or https)")),
    };
    Ok(format!("{}:{port}", host.to_ascii_lowercase()))
}

pub fn host_of(url: &str) -> String {
    match url.parse::<Uri>() {
        Ok(uri) => match (uri.host(), uri.port_u16()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => "upstream".to_owned(),
        },
        Err(_) => "upstream".to_owned(),
    }
}

impl From<tokio::task::JoinError> for FetchError {
    fn from(e: tokio::task::JoinError) -> Self {
        FetchError::Failed {
            host: "modgate".into(),
            message: format!("fetch task failed: {e}"),
        }
    }
}

/// A successful fetch: the body (or its length when streamed to a file) and where it came from.
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    pub body: T,
    pub url: String,
}

/// Where a fetched body goes.
enum Sink<'a> {
    Memory(Vec<u8>),
    File(&'a mut tokio::fs::File, u64),
}

impl Sink<'_> {
    async fn reset(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Memory(v) => v.clear(),
            Sink::File(f, n) => {
                f.set_len(0).await?;
                f.seek(std::io::SeekFrom::Start(0)).await?;
                *n = 0;
            }
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        match self {
            Sink::Memory(v) => v.len() as u64,
            Sink::File(_, n) => *n,
        }
    }

    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Memory(v) => v.extend_from_slice(chunk),
            Sink::File(f, n) => {
                f.write_all(chunk).await?;
                *n += chunk.len() as u64;
            }
        }
        Ok(())
    }
}

/// How one attempt at one URL ended.
enum Attempt {
    Ok,
    /// 404 or 410, with the first line of the answer.
    NotFound(Option<String>),
    /// Worth retrying (connection error, 5xx, 429), after `Retry-After` when the answer gave one.
    Transient(FetchError, Option<Duration>),
    Fatal(FetchError),
}

/// The default `min_rate`: 16 KiB/s (a 500 MiB zip in under 9 hours).
pub const DEFAULT_MIN_RATE: u64 = 16 << 10;

/// Redirects followed per request, as the go command does (`net/http` default).
const MAX_REDIRECTS: usize = 10;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// The HTTP client for upstream proxies, shared by all routes.
#[derive(Clone)]
pub struct UpstreamClient {
    http: HttpsClient,
    user_agent: http::HeaderValue,
    /// By upstream base URL.
    health: Arc<std::sync::Mutex<std::collections::HashMap<String, Health>>>,
}

impl UpstreamClient {
    /// A client trusting the system's root certificates (`SSL_CERT_FILE`/`SSL_CERT_DIR` apply).
    pub fn new() -> Self {
        let connector = https_builder("https upstreams")
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .build(connector);
        let user_agent =
            http::HeaderValue::from_static(concat!("modgate/", env!("CARGO_PKG_VERSION")));
        Self {
            http,
            user_agent,
            health: Arc::default(),
        }
    }

    /// Fetches `rel` (an escaped GOPROXY path such as `example.com/m/@v/list`) into memory,
    /// refusing bodies over `limit` bytes.
    pub async fn fetch_bytes(
        &self,
        sources: &SourceList,
        rel: &str,
        limit: u64,
        metrics: &Metrics,
    ) -> Result<Fetched<Bytes>, FetchError> {
        let mut sink = Sink::Memory(Vec::new());
        let url = self.fetch(sources, rel, limit, &mut sink, metrics).await?;
        let Sink::Memory(body) = sink else {
            unreachable!("the sink is the memory sink created above")
        };
        Ok(Fetched {
            body: Bytes::from(body),
            url,
        })
    }

    /// Fetches `rel` into `file` (truncated first), refusing bodies over `limit` bytes.
    pub async fn fetch_to_file(
        &self,
        sources: &SourceList,
        rel: &str,
        limit: u64,
        file: &mut tokio::fs::File,
        metrics: &Metrics,
    ) -> Result<Fetched<u64>, FetchError> {
        let mut sink = Sink::File(file, 0);
        let url = self.fetch(sources, rel, limit, &mut sink, metrics).await?;
        let len = sink.len();
        if let Sink::File(f, _) = sink {
            f.flush().await.map_err(|e| FetchError::Failed {
                host: host_of(&url),
                message: format!("writing the download: {e}"),
            })?;
        }
        Ok(Fetched { body: len, url })
    }

    /// Tries each source in order: the next one after 404/410, or after any error when the
    /// source is followed by `|`. When all fail, the answer is the last one's: the go command
    /// falls back per query, not per request (`modfetch.TryProxies`), so a query that goes on
    /// to the next proxy sees only that proxy's answers from then on.
    async fn fetch(
        &self,
        sources: &SourceList,
        rel: &str,
        limit: u64,
        sink: &mut Sink<'_>,
        metrics: &Metrics,
    ) -> Result<String, FetchError> {
        let mut last = FetchError::not_found();
        for entry in &sources.entries {
            let url = format!("{}/{rel}", entry.base);
            match self.fetch_one(entry, &url, limit, sink, metrics).await {
                Ok(()) => return Ok(redact(&url)),
                Err(e @ FetchError::NotFound { .. }) => last = e,
                Err(e) if entry.fallthrough_on_error => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// One source, with retries on transient failures, unless it is being skipped.
    async fn fetch_one(
        &self,
        entry: &SourceEntry,
        url: &str,
        limit: u64,
        sink: &mut Sink<'_>,
        metrics: &Metrics,
    ) -> Result<(), FetchError> {
        if let Some(left) = self.skipping(entry) {
            metrics.upstream_fetch(&entry.base, "skipped", Duration::ZERO);
            return Err(FetchError::Failed {
                host: host_of(url),
                message: format!(
                    "failing: not asked again for {}s",
                    left.as_secs_f64().ceil() as u64
                ),
            });
        }
        let (result, retry_after) = self.attempts(entry, url, limit, sink, metrics).await;
        self.record(entry, &result, retry_after, metrics);
        result
    }

    /// How long `entry` is still skipped, if it is.
    fn skipping(&self, entry: &SourceEntry) -> Option<Duration> {
        if entry.skip.after == 0 {
            return None;
        }
        let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        let until = health.get(&entry.base)?.skipped_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts how a fetch from `entry` went: a failure of the upstream's (not a 404, a refusal
    /// or a body too large) counts towards skipping it; anything else ends a pause.
    fn record(
        &self,
        entry: &SourceEntry,
        result: &Result<(), FetchError>,
        retry_after: Option<Duration>,
        metrics: &Metrics,
    ) {
        if entry.skip.after == 0 {
            return;
        }
        let failed = matches!(
            result,
            Err(FetchError::Failed { .. } | FetchError::Timeout { .. })
        );
        let mut all = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        if !failed {
            if let Some(h) = all.remove(&entry.base)
                && h.skipped_until.is_some()
            {
                metrics.upstream_skipped(&entry.base, false);
                tracing::info!(upstream = %redact(&entry.base), "upstream answers again: no longer skipped");
            }
            return;
        }
        let health = all.entry(entry.base.clone()).or_default();
        health.failures += 1;
        // An upstream that asked for more time than is waited out gets it.
        let asked = retry_after.filter(|d| *d > MAX_RETRY_AFTER);
        if health.failures < entry.skip.after && asked.is_none() {
            return;
        }
        let pause = match asked {
            Some(d) => d,
            None if health.pause.is_zero() => entry.skip.first,
            None => (health.pause * 2).min(entry.skip.first * 16),
        };
        health.pause = pause;
        health.skipped_until = Some(Instant::now() + pause);
        metrics.upstream_skipped(&entry.base, true);
        tracing::warn!(
            upstream = %redact(&entry.base),
            failures = health.failures,
            error = %result.as_ref().err().map(ToString::to_string).unwrap_or_default(),
            "upstream failing: skipped for {}s",
            pause.as_secs()
        );
    }

    /// Attempts at one source: retries on transient failures, after the answer's
    /// `Retry-After` when it gave one (up to [`MAX_RETRY_AFTER`]), else after a backoff. Also
    /// returns the last `Retry-After`.
    async fn attempts(
        &self,
        entry: &SourceEntry,
        url: &str,
        limit: u64,
        sink: &mut Sink<'_>,
        metrics: &Metrics,
    ) -> (Result<(), FetchError>, Option<Duration>) {
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let (outcome, how) = self.attempt(entry, url, limit, sink).await;
            metrics.upstream_fetch(&entry.base, how, started.elapsed());
            match outcome {
                Attempt::Ok => return (Ok(()), None),
                Attempt::NotFound(reason) => return (Err(FetchError::NotFound { reason }), None),
                Attempt::Fatal(e) => return (Err(e), None),
                Attempt::Transient(e, after)
                    if attempt >= entry.retries || after.is_some_and(|d| d > MAX_RETRY_AFTER) =>
                {
                    return (Err(e), after);
                }
                Attempt::Transient(e, after) => {
                    attempt += 1;
                    let wait = after.unwrap_or(Duration::from_millis(100 * 4u64.pow(attempt - 1)));
                    tracing::debug!(%url, error = %e, attempt, ?wait, "retrying upstream request");
                    tokio::time::sleep(wait).await;
                    if let Err(e) = sink.reset().await {
                        let e = FetchError::Failed {
                            host: host_of(url),
                            message: format!("resetting the download: {e}"),
                        };
                        return (Err(e), None);
                    }
                }
            }
        }
    }

    /// One request (following redirects) and its body, and how it ended for the metrics
    /// (`ok`, `not_found`, `refused`, `status`, `connect`, `timeout`, `body`, `too_large`,
    /// `redirects`, `invalid`, `store`).
    async fn attempt(
        &self,
        entry: &SourceEntry,
        url: &str,
        limit: u64,
        sink: &mut Sink<'_>,
    ) -> (Attempt, &'static str) {
        let secs = entry.timeout.as_secs().max(1);
        let timeout = |url: &str| FetchError::Timeout {
            host: host_of(url),
            secs,
        };
        let failed = |url: &str, message: String| FetchError::Failed {
            host: host_of(url),
            message,
        };
        let mut current = url.to_owned();
        let mut redirects = 0;
        let response = loop {
            let uri: Uri = match current.parse() {
                Ok(u) => u,
                Err(e) => {
                    return (
                        Attempt::Fatal(failed(&current, format!("bad URL: {e}"))),
                        "invalid",
                    );
                }
            };
            let (uri, authorization) = basic_auth_from_userinfo(uri);
            let mut builder =
                http::Request::get(uri.clone()).header(header::USER_AGENT, self.user_agent.clone());
            if let Some(value) = authorization {
                builder = builder.header(header::AUTHORIZATION, value);
            }
            let request = match builder.body(Empty::new()) {
                Ok(r) => r,
                Err(e) => {
                    return (
                        Attempt::Fatal(failed(&current, format!("bad request: {e}"))),
                        "invalid",
                    );
                }
            };
            let response =
                match tokio::time::timeout(entry.timeout, self.http.request(request)).await {
                    Err(_) => return (Attempt::Transient(timeout(&current), None), "timeout"),
                    Ok(Err(e)) => {
                        let e = failed(&current, describe_client_error(&e));
                        return (Attempt::Transient(e, None), "connect");
                    }
                    Ok(Ok(r)) => r,
                };
            let status = response.status();
            if status.is_redirection() && response.headers().contains_key(header::LOCATION) {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    let e = failed(url, "stopped after 10 redirects".into());
                    return (Attempt::Fatal(e), "redirects");
                }
                let next = match resolve_location(&uri, &response) {
                    Some(n) => n,
                    None => {
                        let e = failed(&current, "bad redirect Location".into());
                        return (Attempt::Fatal(e), "redirects");
                    }
                };
                if uri.scheme_str() == Some("https") && next.starts_with("http:") {
                    let e = failed(&current, "refusing redirect from https to http".into());
                    return (Attempt::Fatal(e), "redirects");
                }
                current = next;
                continue;
            }
            break response;
        };
        let status = response.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            let reason = first_line_of_body(response.into_body(), entry.timeout).await;
            return (Attempt::NotFound(reason), "not_found");
        }
        if status == StatusCode::BAD_REQUEST || status == StatusCode::FORBIDDEN {
            let reason = first_line_of_body(response.into_body(), entry.timeout).await;
            let e = FetchError::Refused {
                host: host_of(&current),
                status,
                reason,
            };
            return (Attempt::Fatal(e), "refused");
        }
        if !status.is_success() {
            let transient = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
            let retry_after = retry_after(response.headers());
            let explanation = first_line_of_body(response.into_body(), entry.timeout).await;
            let message = match explanation {
                Some(text) => format!("answered {status}: {text}"),
                None => format!("answered {status}"),
            };
            let e = failed(&current, message);
            let attempt = if transient {
                Attempt::Transient(e, retry_after)
            } else {
                Attempt::Fatal(e)
            };
            return (attempt, "status");
        }
        if let Some(len) = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len > limit
        {
            let e = FetchError::TooLarge {
                host: host_of(&current),
                limit,
            };
            return (Attempt::Fatal(e), "too_large");
        }
        let mut body = response.into_body();
        let body_started = Instant::now();
        let mut last_frame = body_started;
        loop {
            // The timeout bounds each pause in the body, not the whole transfer: a large zip
            // over a slow link is fine as long as it keeps moving, at `min_rate` on average once
            // it has taken longer than the timeout (a trickle, slow-loris style, is cut off).
            let mut wait = entry.timeout;
            if entry.min_rate > 0 {
                let due = Duration::from_secs_f64(sink.len() as f64 / entry.min_rate as f64)
                    .max(entry.timeout);
                wait = wait.min(due.saturating_sub(body_started.elapsed()));
            }
            let frame = match tokio::time::timeout(wait, body.frame()).await {
                // Bytes kept coming, too slowly (a body that stopped is a pause, below).
                Err(_) if last_frame.elapsed() < entry.timeout / 2 => {
                    let e = failed(
                        &current,
                        format!(
                            "sending slower than {} bytes/s ({} bytes in {}s)",
                            entry.min_rate,
                            sink.len(),
                            body_started.elapsed().as_secs()
                        ),
                    );
                    return (Attempt::Transient(e, None), "timeout");
                }
                Err(_) => return (Attempt::Transient(timeout(&current), None), "timeout"),
                Ok(None) => return (Attempt::Ok, "ok"),
                Ok(Some(Err(e))) => {
                    let e = failed(&current, format!("reading the body: {e}"));
                    return (Attempt::Transient(e, None), "body");
                }
                Ok(Some(Ok(frame))) => frame,
            };
            last_frame = Instant::now();
            if let Ok(data) = frame.into_data() {
                if sink.len() + data.len() as u64 > limit {
                    let e = FetchError::TooLarge {
                        host: host_of(&current),
                        limit,
                    };
                    return (Attempt::Fatal(e), "too_large");
                }
                if let Err(e) = sink.write(&data).await {
                    let e = failed(&current, format!("storing the body: {e}"));
                    return (Attempt::Fatal(e), "store");
                }
            }
        }
    }
}

impl Default for UpstreamClient {
    fn default() -> Self {
        Self::new()
    }
}

/// The first line of an error body, if it is short printable text (what the go command would
/// show), so our own error can say why the upstream refused.
/// A `Retry-After` header: seconds, or an HTTP date (RFC 9110 §10.2.3).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

async fn first_line_of_body(mut body: hyper::body::Incoming, timeout: Duration) -> Option<String> {
    let mut buf = Vec::new();
    let read = async {
        while buf.len() < 1024 {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        buf.extend_from_slice(&data);
                    }
                }
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(timeout.min(Duration::from_secs(5)), read).await;
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().next()?.trim();
    if line.is_empty() || line.chars().any(char::is_control) {
        return None;
    }
    Some(line.chars().take(200).collect())
}

/// A URL's user information as HTTP Basic credentials, the way the go command sends them
/// (`net/http`: `URL.User` becomes `Authorization: Basic …`), and the URL without it.
fn basic_auth_from_userinfo(uri: Uri) -> (Uri, Option<http::HeaderValue>) {
    use base64::Engine as _;
    let Some(authority) = uri.authority() else {
        return (uri, None);
    };
    let Some((userinfo, host)) = authority.as_str().rsplit_once('@') else {
        return (uri, None);
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (decode(u), decode(p)),
        None => (decode(userinfo), String::new()),
    };
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = match http::HeaderValue::from_str(&format!("Basic {token}")) {
        Ok(v) => v,
        Err(_) => return (uri, None),
    };
    value.set_sensitive(true);
    let mut parts = uri.clone().into_parts();
    parts.authority = host.parse().ok();
    match Uri::from_parts(parts) {
        Ok(stripped) => (stripped, Some(value)),
        Err(_) => (uri, None),
    }
}

fn resolve_location<B>(base: &Uri, response: &http::Response<B>) -> Option<String> {
    let location = response.headers().get(header::LOCATION)?.to_str().ok()?;
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_owned());
    }
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    if location.starts_with("//") {
        return Some(format!("{scheme}:{location}"));
    }
    if location.starts_with('/') {
        return Some(format!("{scheme}://{authority}{location}"));
    }
    let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
    Some(format!("{scheme}://{authority}{dir}/{location}"))
}

/// The innermost cause of a client error, which is where hyper-util keeps the useful part
/// ("connection refused", a TLS alert).
fn describe_client_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message = s.to_string();
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> SourceList {
        SourceList::parse_goproxy(v, Duration::from_secs(1), 0).expect("valid GOPROXY")
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let after = |v: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(header::RETRY_AFTER, v.parse().expect("header value"));
            retry_after(&headers)
        };
        assert_eq!(after("120"), Some(Duration::from_secs(120)));
        assert_eq!(after(" 0 "), Some(Duration::ZERO));
        // A date in the past: now.
        assert_eq!(after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let hour = std::time::SystemTime::now() + Duration::from_secs(3600);
        let later = after(&httpdate::fmt_http_date(hour)).expect("a date");
        assert!(later > Duration::from_secs(3500) && later <= Duration::from_secs(3600));
        assert_eq!(after("soon"), None);
        assert_eq!(after("-5"), None);
    }

    #[test]
    fn userinfo_becomes_basic_credentials() {
        let (uri, auth) = basic_auth_from_userinfo(
            "https://deploy:s%40cret@proxy.internal:8443/go/m/@v/list"
                .parse()
                .expect("a valid URI"),
        );
        assert_eq!(uri.to_string(), "https://proxy.internal:8443/go/m/@v/list");
        // base64("deploy:s@cret")
        assert_eq!(
            auth.expect("credentials").to_str().expect("ASCII"),
            "Basic ZGVwbG95OnNAY3JldA=="
        );
        let (uri, auth) = basic_auth_from_userinfo("http://h/x".parse().expect("a valid URI"));
        assert_eq!((uri.to_string().as_str(), auth), ("http://h/x", None));
    }

    #[test]
    fn urls_in_errors_and_logs_keep_secrets_out() {
        let url = "https://deploy:s3cret@proxy.internal:8443/go/mirror";
        assert_eq!(host_of(url), "proxy.internal:8443");
        assert_eq!(host_of("http://proxy.internal/x"), "proxy.internal");
        assert_eq!(
            redact(url),
            "https://deploy:xxxxx@proxy.internal:8443/go/mirror"
        );
        assert_eq!(redact("https://token@h/p"), "https://token@h/p");
        assert_eq!(redact("http://h:1/a@b"), "http://h:1/a@b");
    }

    #[test]
    fn goproxy_lists_follow_the_go_command() {
        let l = parse("http://a.example,https://b.example/x/|c.example,direct");
        let bases: Vec<_> = l.entries.iter().map(|e| e.base.as_str()).collect();
        assert_eq!(
            bases,
            [
                "http://a.example",
                "https://b.example/x",
                "https://c.example"
            ]
        );
        let falls: Vec<_> = l.entries.iter().map(|e| e.fallthrough_on_error).collect();
        assert_eq!(falls, [false, true, false]);
        assert!(parse("off,http://a.example").is_offline());
        assert!(parse("").is_offline());
        assert!(parse("direct").is_offline());
        assert!(SourceList::parse_goproxy("ftp://x", Duration::ZERO, 0).is_err());
    }
}
