//! One client connection: TLS handshake, hyper, header and idle timeouts, drain on shutdown, and
//! per-request metrics and access log.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};

use super::Handler;
use super::send_timeout::SendTimeout;
use crate::config::ServerConfig;
use crate::handler::{Allowed, ConnInfo, ResponseBody};
use crate::telemetry::{Endpoint, Metrics};

/// Everything connections share, built once per server.
pub(super) struct Shared<H> {
    pub(super) handler: Arc<H>,
    pub(super) http: auto::Builder<TokioExecutor>,
    pub(super) tls: Option<Arc<super::ServerTls>>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) timeouts: Timeouts,
    pub(super) access_log: bool,
}

/// Connection time limits; `None` (configured as zero) means no limit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    header: Option<Duration>,
    idle: Option<Duration>,
    send: Option<Duration>,
}

impl Timeouts {
    pub(super) fn new(settings: &ServerConfig) -> Self {
        let non_zero = |d: Duration| (!d.is_zero()).then_some(d);
        Self {
            header: non_zero(settings.header_timeout),
            idle: non_zero(settings.idle_timeout),
            send: non_zero(settings.send_timeout),
        }
    }

    /// The shortest header or idle timeout: no activity can set a deadline sooner than this
    /// after it happens.
    fn shortest(&self) -> Option<Duration> {
        match (self.header, self.idle) {
            (Some(h), Some(i)) => Some(h.min(i)),
            (h, i) => h.or(i),
        }
    }
}

/// Serves one accepted connection to the end; holds its connection slot (`_permit`) throughout.
pub(super) async fn run<H: Handler>(
    shared: Arc<Shared<H>>,
    stream: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
    drain: watch::Receiver<bool>,
) {
    let _open = shared.metrics.connection_opened();
    // Responses are written in large chunks already; Nagle would only delay the last segment.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    // Under TLS, so the clock sees the bytes the kernel takes, whatever the protocol above.
    let stream = SendTimeout::new(stream, shared.timeouts.send, peer);
    let mut state = ConnState {
        info: ConnInfo {
            peer,
            tls: shared.tls.is_some(),
            client_identity: None,
            access_log: shared.access_log,
        },
        activity: Activity::new(Instant::now()),
        metrics: Arc::clone(&shared.metrics),
    };
    let Some(tls) = &shared.tls else {
        return drive(&shared, stream, Arc::new(state), drain).await;
    };
    // The handshake counts against the time the client has to send its first request, so a
    // client that connects and stalls mid-handshake cannot hold a slot forever.
    let handshake = tls.acceptor().accept(stream);
    let result = match shared.timeouts.header {
        Some(limit) => tokio::time::timeout_at((state.activity.epoch + limit).into(), handshake)
            .await
            .unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                ))
            }),
        None => handshake.await,
    };
    match result {
        Ok(tls) => {
            if tls.get_ref().1.alpn_protocol() == Some(super::acme::ACME_TLS_ALPN) {
                // A CA's tls-alpn-01 validation: the handshake was the answer (RFC 8737 §3).
                return;
            }
            // Mutual TLS: the certificate rustls verified, for plugins and the access log.
            state.info.client_identity =
                super::client_identity(tls.get_ref().1.peer_certificates());
            drive(&shared, tls, Arc::new(state), drain).await;
        }
        Err(e) => {
            // Scanners and clients with the wrong trust roots do this all day: not an error.
            shared.metrics.tls_handshake_failed();
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
        }
    }
}

/// Runs hyper on `io` until the connection ends, a timeout closes it or a drain finishes it.
async fn drive<H: Handler, I>(
    shared: &Shared<H>,
    io: I,
    state: Arc<ConnState>,
    mut drain: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Tracked {
        inner: io,
        state: Arc::clone(&state),
    });
    let service = {
        // Per request only this connection's own reference counts change: the handler is
        // shared by every worker, and counting its users per request would bounce its cache
        // line between cores.
        let this = Arc::new((Arc::clone(&shared.handler), Arc::clone(&state)));
        hyper::service::service_fn(move |req| {
            let this = Arc::clone(&this);
            async move {
                let (handler, state) = &*this;
                Ok::<_, Infallible>(respond(&**handler, Arc::clone(state), req).await)
            }
        })
    };
    let mut conn = pin!(shared.http.serve_connection(io, service));
    let peer = state.info.peer;
    let activity = &state.activity;
    // Once set, hyper is already finishing the connection; the timers have nothing left to do.
    let mut winding_down = false;

    loop {
        let deadline = if winding_down {
            None
        } else {
            activity.deadline(&shared.timeouts)
        };
        let now = Instant::now();
        if let Some((at, kind)) = deadline
            && at <= now
        {
            match kind {
                Expiry::Header => {
                    // Mid-headers: nothing to finish gracefully. Dropping hyper closes the socket.
                    tracing::debug!(%peer, "closing connection: request headers not received in time");
                    return;
                }
                Expiry::Idle => {
                    tracing::debug!(%peer, "closing idle connection");
                    conn.as_mut().graceful_shutdown();
                    winding_down = true;
                    continue;
                }
            }
        }
        // Requests come and go without waking this loop. A deadline set by activity after `now`
        // is at least `shortest` after that activity (less the millisecond the clock is kept
        // in), so waking at the sooner of the current deadline and `now + shortest` and then
        // looking again closes every expired connection on time.
        let wake = match (deadline, shared.timeouts.shortest()) {
            _ if winding_down => None,
            (Some((at, _)), Some(shortest)) => Some(at.min(now + shortest)),
            (None, Some(shortest)) => Some(now + shortest),
            (deadline, None) => deadline.map(|(at, _)| at),
        };
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    // Resets, malformed requests, oversized headers (already answered with 431).
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            // An Err means the server is gone; draining is the right reaction to that too.
            _ = drain.wait_for(|&draining| draining), if !winding_down => {
                conn.as_mut().graceful_shutdown();
                winding_down = true;
            }
            () = sleep => {}
        }
    }
}

/// Per-connection state shared by the driver, the I/O wrapper and every request on it.
struct ConnState {
    info: ConnInfo,
    activity: Activity,
    metrics: Arc<Metrics>,
}

/// What a connection is doing, for the header and idle timeouts.
///
/// Times are milliseconds since `epoch` in atomics so the I/O path and the requests can update
/// them without locks or wake-ups; the driver looks at [`Activity::deadline`] when its timer
/// fires (see `drive`).
struct Activity {
    epoch: Instant,
    in_flight: AtomicU32,
    served_any: AtomicBool,
    http2: AtomicBool,
    /// When `in_flight` last dropped to zero.
    idle_since_ms: AtomicU64,
    /// First byte read since `idle_since_ms`, or [`NONE`]: the start of the next request's head.
    first_read_ms: AtomicU64,
}

const NONE: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// The client started (or owes) a request head and did not finish it in time.
    Header,
    /// No request in flight and nothing arriving.
    Idle,
}

impl Activity {
    fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            in_flight: AtomicU32::new(0),
            served_any: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            first_read_ms: AtomicU64::new(NONE),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    fn request_started(&self, version: Version) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.served_any.store(true, Ordering::Release);
        if version == Version::HTTP_2 {
            self.http2.store(true, Ordering::Release);
        }
    }

    fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since_ms.store(self.now_ms(), Ordering::Release);
            self.first_read_ms.store(NONE, Ordering::Release);
        }
    }

    /// Called for every successful read with data; cheap unless it starts a new request head.
    fn bytes_read(&self) {
        // HTTP/2 exchanges connection-level frames (PING, WINDOW_UPDATE) between requests, so a
        // read there does not mean a request head has begun; only the idle timeout applies.
        if self.first_read_ms.load(Ordering::Relaxed) != NONE
            || self.in_flight.load(Ordering::Relaxed) != 0
            || self.http2.load(Ordering::Relaxed)
        {
            return;
        }
        // Lost races are fine: the first read's time is kept either way.
        let _ = self.first_read_ms.compare_exchange(
            NONE,
            self.now_ms(),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }

    /// When the connection must be closed if nothing changes, and why; `None` while a request
    /// is in flight (a long download is not idle).
    fn deadline(&self, timeouts: &Timeouts) -> Option<(Instant, Expiry)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if !self.served_any.load(Ordering::Acquire) {
            // The first request's head (and the TLS handshake) are due within header_timeout of
            // the connect: a silent connection is a slowloris, not an idle keep-alive.
            return timeouts.header.map(|t| (self.epoch + t, Expiry::Header));
        }
        let first_read = self.first_read_ms.load(Ordering::Acquire);
        if first_read != NONE
            && let Some(t) = timeouts.header
        {
            return Some((self.at(first_read) + t, Expiry::Header));
        }
        let idle_since = self.idle_since_ms.load(Ordering::Acquire);
        timeouts
            .idle
            .map(|t| (self.at(idle_since) + t, Expiry::Idle))
    }
}

/// The connection's I/O, reporting reads to [`Activity`].
struct Tracked<I> {
    inner: I,
    state: Arc<ConnState>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.state.activity.bytes_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    // Forwarded so hyper keeps using writev (its queue strategy) on plain TCP.
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Calls the handler and wraps its body so metrics and the access log are written when the
/// body is finished (or the client goes away).
async fn respond<H: Handler>(
    handler: &H,
    state: Arc<ConnState>,
    req: Request<Incoming>,
) -> Response<ObservedBody> {
    state.activity.request_started(req.version());
    let mut exchange = Exchange {
        started: Instant::now(),
        log: state.info.access_log.then(|| AccessFields::new(&req)),
        head_only: req.method() == Method::HEAD,
        endpoint: Endpoint::OTHER,
        status: None,
        bytes: 0,
        complete: false,
        settle: None,
        state,
    };
    let response = AssertUnwindSafe(handler.handle(req, &exchange.state.info))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(non-string panic)");
            tracing::error!(peer = %exchange.state.info.peer, panic = message, "handler panicked");
            internal_error()
        });
    let (mut parts, body) = response.into_parts();
    exchange.endpoint = parts
        .extensions
        .get::<Endpoint>()
        .copied()
        .unwrap_or(Endpoint::OTHER);
    exchange.status = Some(parts.status);
    exchange.settle = parts.extensions.remove::<crate::ratelimit::Settle>();
    if let Some(log) = &mut exchange.log {
        log.allowed = parts.extensions.get::<Allowed>().cloned();
    }
    // No body goes on the wire for these (RFC 9110 §9.3.2, §15.3.5, §15.4.5), so hyper may drop
    // it unpolled; that is still a complete exchange.
    exchange.complete = exchange.head_only
        || matches!(
            parts.status,
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
        )
        || body.is_end_stream();
    Response::from_parts(
        parts,
        ObservedBody {
            inner: body,
            exchange,
        },
    )
}

fn internal_error() -> Response<ResponseBody> {
    let body = Full::new(Bytes::from_static(b"internal error\n"))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// Request facts kept for the access log (only when it is on: they cost allocations).
struct AccessFields {
    method: Method,
    path: String,
    version: Version,
    user_agent: Option<String>,
    /// The auth plugin's allow, when one allowed the request (the principal is logged).
    allowed: Option<Allowed>,
}

impl AccessFields {
    fn new<B>(req: &Request<B>) -> Self {
        Self {
            method: req.method().clone(),
            // Path only: a query string could carry credentials.
            path: req.uri().path().to_owned(),
            version: req.version(),
            user_agent: req
                .headers()
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            allowed: None,
        }
    }
}

/// One request/response exchange; recorded when dropped, which happens exactly once: when the
/// body is finished or abandoned, or when the handler future is dropped because the client left.
struct Exchange {
    state: Arc<ConnState>,
    started: Instant,
    log: Option<AccessFields>,
    head_only: bool,
    endpoint: Endpoint,
    /// `None` until the handler answered.
    status: Option<StatusCode>,
    bytes: u64,
    complete: bool,
    /// The byte quotas the response counts against (rate limits), charged with `bytes`.
    settle: Option<crate::ratelimit::Settle>,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let Some(settle) = self.settle.take() {
            settle.settle(self.bytes);
        }
        let elapsed = self.started.elapsed();
        // 499 (nginx's "client closed request") when the client left before the handler answered.
        let status = self.status.map_or(499, |s| s.as_u16());
        self.state
            .metrics
            .observe_request(self.endpoint.0, status, elapsed);
        self.state.activity.request_finished();
        if let Some(log) = &self.log {
            let info = &self.state.info;
            tracing::info!(
                target: "modgate::access",
                method = log.method.as_str(),
                path = log.path.as_str(),
                status,
                bytes = self.bytes,
                duration_ms = elapsed.as_micros() as f64 / 1000.0,
                peer = %info.peer,
                protocol = ?log.version,
                tls = info.tls,
                client = info.client_identity.as_deref().unwrap_or(""),
                user_agent = log.user_agent.as_deref().unwrap_or(""),
                principal = log.allowed.as_ref().map_or("", Allowed::principal),
                endpoint = self.endpoint.0,
                aborted = !self.complete,
                "request"
            );
        }
    }
}

/// The response body as sent: the handler's body, counting bytes and noticing the end.
struct ObservedBody {
    inner: ResponseBody,
    exchange: Exchange,
}

impl Body for ObservedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.exchange.bytes += data.len() as u64;
                }
                // hyper stops polling once a body with a known length says it is done, so the
                // final `None` may never be seen.
                if this.inner.is_end_stream() {
                    this.exchange.complete = true;
                }
            }
            None => this.exchange.complete = true,
            Some(Err(e)) => {
                tracing::warn!(peer = %this.exchange.state.info.peer, error = %e, "response body failed");
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
