//! Carrying out a storage plugin's HTTP plans (an object store's presigned URLs): the host's
//! own client, bodies streamed from staged files, answers streamed to clients, statuses read
//! as the plan says.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::plugin::storage::{HttpPlan, HttpRequest};

/// A request body: empty, small bytes, or a staged file streamed part by part.
pub type Body = UnsyncBoxBody<Bytes, io::Error>;

/// How long one small exchange (get or put of `.info`, `.mod`, `.ziphash`; head; delete) may
/// take, reading its answer included.
pub const SMALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a streamed answer (a zip on its way to a client) may go without a byte.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The most bytes of a small artifact read whole (a go.mod is at most 16 MiB).
pub const SMALL_LIMIT: usize = 16 << 20;

/// Bytes read from a staged file per body frame.
const CHUNK: usize = 256 * 1024;

/// What the store answered, as the plan reads it.
pub enum Outcome {
    /// A status in `ok`: the response, its body still to be read.
    Ok(http::Response<Incoming>),
    /// A status in `not-found`.
    NotFound,
    /// A status in `exists` (a put found the object there).
    Exists,
}

/// The host's client for HTTP plans, shared by every store.
#[derive(Clone)]
pub struct Remote {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>,
}

impl Remote {
    /// A client trusting the system's root certificates.
    pub fn new() -> Self {
        let builder = crate::upstream::https_builder("https storage");
        // Keepalive probes find a store connection that went silent under a long transfer.
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_keepalive(Some(Duration::from_secs(30)));
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        Remote {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(64)
                .build(connector),
        }
    }

    /// Sends `plan` with `body` and `extra` headers (content-length, range…) and reads its
    /// status as the plan says. `Err` is one line: the host, the method and what went wrong.
    pub async fn send(
        &self,
        plan: &HttpPlan,
        body: Body,
        extra: &[(HeaderName, HeaderValue)],
        timeout: Duration,
    ) -> Result<Outcome, String> {
        let response = self.exchange(&plan.request, body, extra, timeout).await?;
        let status = response.status().as_u16();
        if plan.ok.contains(&status) {
            Ok(Outcome::Ok(response))
        } else if plan.not_found.contains(&status) {
            Ok(Outcome::NotFound)
        } else if plan.exists.contains(&status) {
            Ok(Outcome::Exists)
        } else {
            Err(refusal(&plan.request, response).await)
        }
    }

    /// One request of a multipart upload: a 2xx answer's `etag`.
    pub async fn send_part(
        &self,
        request: &HttpRequest,
        body: Body,
        len: u64,
        timeout: Duration,
    ) -> Result<String, String> {
        let response = self
            .exchange(request, body, &[content_length(len)], timeout)
            .await?;
        if !response.status().is_success() {
            return Err(refusal(request, response).await);
        }
        response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| format!("{}: part uploaded without an etag", describe(request)))
    }

    async fn exchange(
        &self,
        request: &HttpRequest,
        body: Body,
        extra: &[(HeaderName, HeaderValue)],
        timeout: Duration,
    ) -> Result<http::Response<Incoming>, String> {
        let what = describe(request);
        let mut builder = http::Request::builder()
            .method(request.method.as_str())
            .uri(request.url.as_str());
        for (name, value) in &request.headers {
            // The URL alone says where the request goes.
            if !name.eq_ignore_ascii_case("host") {
                builder = builder.header(name.as_str(), value.as_str());
            }
        }
        for (name, value) in extra {
            builder = builder.header(name, value);
        }
        let req = builder
            .body(body)
            .map_err(|e| format!("{what}: invalid request: {e}"))?;
        match tokio::time::timeout(timeout, self.client.request(req)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(format!("{what}: {}", describe_error(&e))),
            Err(_) => Err(format!("{what}: no answer within {}s", timeout.as_secs())),
        }
    }
}

impl Default for Remote {
    fn default() -> Self {
        Self::new()
    }
}

/// `METHOD host:port` (never the URL: a presigned one carries credentials).
pub fn describe(request: &HttpRequest) -> String {
    format!(
        "{} {}",
        request.method,
        crate::upstream::host_of(&request.url)
    )
}

fn describe_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    message
}

/// A status the plan does not expect, with the start of the store's own message.
async fn refusal(request: &HttpRequest, response: http::Response<Incoming>) -> String {
    let status = response.status();
    let read = Limited::new(response.into_body(), 4096).collect();
    let body = match tokio::time::timeout(SMALL_TIMEOUT, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => Bytes::new(),
    };
    let text = String::from_utf8_lossy(&body);
    // An S3 error names itself in <Code>…</Code>; otherwise the first words of the body.
    let detail = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map_or_else(
            || text.chars().take(120).collect(),
            |(code, _)| code.to_owned(),
        );
    let detail = crate::error::one_line(&detail, 200);
    format!(
        "{}: answered {status} {}",
        describe(request),
        detail.trim_end()
    )
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Small bytes as a body.
pub fn bytes(data: Bytes) -> Body {
    Full::new(data)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// `content-length: len`.
pub fn content_length(len: u64) -> (HeaderName, HeaderValue) {
    (header::CONTENT_LENGTH, HeaderValue::from(len))
}

/// `content-type: application/octet-stream` (some stores empty a put without one).
pub fn octet_stream() -> (HeaderName, HeaderValue) {
    (
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    )
}

/// `count` bytes of the file at `path` from `start`, read on the blocking pool a chunk at a
/// time (never the whole file in memory).
pub fn file_part(path: std::path::PathBuf, start: u64, count: u64) -> Body {
    let stream = futures_util::stream::unfold(
        (path, start, count, None::<std::fs::File>),
        |(path, at, left, file)| async move {
            if left == 0 {
                return None;
            }
            let read = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let file = match file {
                    Some(f) => f,
                    None => std::fs::File::open(&path)?,
                };
                let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
                let mut buf = vec![0; want];
                let n = file.read_at(&mut buf, at)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} ended early", path.display()),
                    ));
                }
                buf.truncate(n);
                Ok((path, file, buf))
            })
            .await;
            match read {
                Ok(Ok((path, file, buf))) => {
                    let n = buf.len() as u64;
                    Some((
                        Ok(Frame::data(Bytes::from(buf))),
                        (path, at + n, left - n, Some(file)),
                    ))
                }
                Ok(Err(e)) => Some((Err(e), (std::path::PathBuf::new(), at, 0, None))),
                Err(e) => Some((
                    Err(io::Error::other(e)),
                    (std::path::PathBuf::new(), at, 0, None),
                )),
            }
        },
    );
    StreamBody::new(stream).boxed_unsync()
}

/// A response body read whole within [`SMALL_TIMEOUT`], refusing more than `limit` bytes.
pub async fn read_whole(response: http::Response<Incoming>, limit: usize) -> Result<Bytes, String> {
    let read = Limited::new(response.into_body(), limit).collect();
    match tokio::time::timeout(SMALL_TIMEOUT, read).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) => Err(format!("reading the answer: {e}")),
        Err(_) => Err(format!(
            "reading the answer: not done within {}s",
            SMALL_TIMEOUT.as_secs()
        )),
    }
}
