//! The accept loop: connection limit, TLS, timeouts, access log and graceful shutdown.
//!
//! [`Server::bind`] opens the listener (port 0 works; ask [`Server::local_addr`]) and
//! [`Server::serve`] runs until the shutdown future resolves, then drains. The machinery is
//! generic over a [`Handler`] so it can be tested without the real pipeline; production plugs in
//! [`App`](crate::handler::App).
//!
//! The accept loop runs on the caller's runtime; each accepted connection is served to its end
//! on one of `server.workers` single-threaded runtimes (`workers.rs`: the least busy one).
//!
//! Per connection (see `conn.rs`):
//! - a slot of `server.max_connections` is held for the connection's whole life; when all are
//!   taken the loop stops accepting and new clients wait in the kernel's accept queue;
//! - the TLS handshake and the first request's headers must arrive within `header_timeout` of
//!   the connect, and on a keep-alive connection the next request's headers within
//!   `header_timeout` of their first byte; a connection with no request in flight and no bytes
//!   arriving is closed after `idle_timeout`;
//! - a connection with bytes to send whose socket accepts none for `send_timeout` (the client
//!   stopped reading) is closed (`send_timeout.rs`);
//! - HTTP/1.1 header blocks larger than `max_header_bytes` get `431` (hyper's parser), HTTP/2
//!   advertises the same limit as `SETTINGS_MAX_HEADER_LIST_SIZE`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::{Config, ServerConfig};
use crate::handler::{App, ConnInfo, Gateway, ResponseBody};
use crate::telemetry::Metrics;

mod acme;
mod conn;
mod send_timeout;
mod tls;
mod workers;

pub use tls::{ServerTls, client_identity, load_tls};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound (in use, no permission, not a local address).
    // The reason is in the message, not a `#[source]`: `{:#}` chains would print it twice.
    #[error("server.listen: cannot listen on {addr}: {reason}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The operating system's reason.
        reason: io::Error,
    },
    /// The http-01 listener of `[server.tls.acme]` could not be bound.
    #[error("server.tls.acme.http_listen: cannot listen on {addr}: {reason}")]
    AcmeBind {
        /// The configured address.
        addr: SocketAddr,
        /// The operating system's reason.
        reason: io::Error,
    },
    /// A TLS certificate or key file could not be read or used.
    #[error("{key}: {}: {message}", path.display())]
    Tls {
        /// The configuration key naming the file (`server.tls.cert` or `server.tls.key`).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The request pipeline could not be built (storage, upstream client).
    #[error("cannot start: {0}")]
    App(crate::error::Error),
    /// The worker threads could not be started (thread or file descriptor limits).
    #[error("server.workers: cannot start {count} worker threads: {reason}")]
    Workers {
        /// How many were asked for.
        count: usize,
        /// The operating system's reason.
        reason: io::Error,
    },
}

/// Serves HTTP requests; the server calls it once per request.
///
/// Implemented by [`App`]; tests and embedders may plug in their own.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. Never fails: errors are responses. A panic is caught and answered
    /// with `500` (the connection and the server carry on).
    ///
    /// Insert a [`telemetry::Endpoint`](crate::telemetry::Endpoint) into the response's
    /// extensions to label the request in metrics and the access log.
    fn handle(
        &self,
        req: Request<Incoming>,
        conn: &ConnInfo,
    ) -> impl Future<Output = Response<ResponseBody>> + Send;
}

impl Handler for App {
    fn handle(
        &self,
        req: Request<Incoming>,
        conn: &ConnInfo,
    ) -> impl Future<Output = Response<ResponseBody>> + Send {
        App::handle(self, req, conn)
    }
}

impl Handler for Gateway {
    fn handle(
        &self,
        req: Request<Incoming>,
        conn: &ConnInfo,
    ) -> impl Future<Output = Response<ResponseBody>> + Send {
        // The request keeps its pipeline alive until it is done, even across a reload.
        let app = self.current();
        let conn = conn.clone();
        async move {
            if req.uri().path().starts_with("/admin/") {
                Box::pin(self.admin(&req, &conn)).await
            } else {
                app.handle(req, &conn).await
            }
        }
    }
}

/// Binds the configured address, serves until `shutdown` resolves, then drains connections for
/// up to `server.shutdown_grace`.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    Server::bind(&config, None).await?.serve(shutdown).await
}

/// A bound, not yet serving, server.
pub struct Server<H = Gateway> {
    listener: TcpListener,
    local_addr: SocketAddr,
    /// The TLS acceptor (rebuilt when its files change or on a reload).
    tls: Option<Arc<ServerTls>>,
    /// With ACME's http-01 challenge: the plain-HTTP listener that answers the CA.
    http01: Option<TcpListener>,
    settings: ServerConfig,
    handler: Arc<H>,
    metrics: Arc<Metrics>,
    workers: workers::Workers,
}

impl<H> std::fmt::Debug for Server<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("tls", &self.tls.is_some())
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl Server<Gateway> {
    /// Builds the pipeline for `config` (re-read from `config_path` on reload; `None`: the
    /// embedded defaults) and binds the configured address.
    pub async fn bind(config: &Config, config_path: Option<&Path>) -> Result<Self, ServerError> {
        let metrics = Arc::new(Metrics::new());
        let gateway =
            Gateway::new(config, config_path, Arc::clone(&metrics)).map_err(ServerError::App)?;
        let server = Self::bind_with(&config.server, Arc::new(gateway), metrics).await?;
        if let Some(tls) = &server.tls {
            server.handler.attach_tls(Arc::clone(tls));
        }
        Ok(server)
    }
}

impl<H: Handler> Server<H> {
    /// Loads TLS (when configured) and binds `settings.listen` for `handler`.
    pub async fn bind_with(
        settings: &ServerConfig,
        handler: Arc<H>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ServerError> {
        // TLS first: a bad certificate should be reported even when the port is also taken.
        let tls = settings.tls.as_ref().map(load_tls).transpose()?;
        let bind_err = |reason| ServerError::Bind {
            addr: settings.listen,
            reason,
        };
        let listener = listen(settings.listen).map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let http01 = match settings.tls.as_ref().and_then(|t| t.acme.as_ref()) {
            Some(acme) if acme.challenge == crate::config::Challenge::Http01 => {
                let addr = acme
                    .http_listen
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 80)));
                Some(listen(addr).map_err(|reason| ServerError::AcmeBind { addr, reason })?)
            }
            _ => None,
        };
        let count = settings.worker_threads();
        let workers = workers::Workers::start(count)
            .map_err(|reason| ServerError::Workers { count, reason })?;
        Ok(Self {
            listener,
            local_addr,
            tls,
            http01,
            settings: settings.clone(),
            handler,
            metrics,
            workers,
        })
    }

    /// The address actually bound (the real port when `listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The metrics this server records into (shared with the handler).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// How many threads serve connections (`server.workers`, or one per CPU).
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The handler requests go to (for a [`Gateway`]: where reloads are triggered).
    pub fn handler(&self) -> &Arc<H> {
        &self.handler
    }

    /// Accepts connections until `shutdown` resolves; then stops accepting (closing the
    /// listener), lets open connections finish their in-flight requests for up to
    /// `shutdown_grace`, and closes whatever is left.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Self {
            listener,
            local_addr,
            tls,
            http01,
            settings,
            handler,
            metrics,
            mut workers,
        } = self;
        // Renewed certificate files are picked up while serving; stops with the server.
        let watching = tls
            .clone()
            .map(|tls| crate::cluster::AbortOnDrop(tokio::spawn(tls.watch())));
        // ACME: the certificate ordered and renewed, and http-01 answered; both stop with the
        // server.
        let acme = tls.as_ref().filter(|t| t.acme().is_some()).map(|tls| {
            crate::cluster::AbortOnDrop(tokio::spawn(acme::maintain(
                Arc::clone(tls),
                Arc::clone(&metrics),
            )))
        });
        let http01 = match (http01, tls.as_ref().and_then(|t| t.acme())) {
            (Some(listener), Some((_, challenges))) => Some(crate::cluster::AbortOnDrop(
                tokio::spawn(acme::serve_http01(listener, challenges)),
            )),
            _ => None,
        };
        let shared = Arc::new(conn::Shared {
            handler,
            http: http_builder(&settings),
            tls,
            metrics,
            timeouts: conn::Timeouts::new(&settings),
            access_log: settings.access_log,
        });
        // Semaphore::new panics above MAX_PERMITS (~2^61); no machine holds that many sockets.
        let slots = Arc::new(Semaphore::new(
            settings.max_connections.min(Semaphore::MAX_PERMITS),
        ));
        // A `watch` rather than hyper-util's `GracefulShutdown`: a connection still in its TLS
        // handshake when shutdown starts must see the signal too, and `wait_for` checks the
        // current value, where a `GracefulShutdown` watcher created after the signal never fires.
        let (drain_tx, drain_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        let mut shutdown = pin!(shutdown);

        loop {
            reap(&mut connections);
            let permit = tokio::select! {
                biased;
                () = &mut shutdown => break,
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    // The semaphore is never closed; treat it like a shutdown if it ever is.
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) if is_connection_error(&e) => {
                        tracing::debug!(error = %e, "accept: connection failed before it was accepted");
                        continue;
                    }
                    Err(e) => {
                        // Out of file descriptors or memory: retrying at once would spin.
                        tracing::error!(error = %e, "accept failed; retrying shortly");
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                        }
                    }
                },
            };
            // The socket moves to the worker's own reactor, so its readiness events wake the
            // thread that serves it rather than passing through this one.
            let stream = match stream.into_std() {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "accept: cannot hand the connection over");
                    continue;
                }
            };
            let (shared, drain) = (Arc::clone(&shared), drain_rx.clone());
            workers.spawn(&mut connections, async move {
                match TcpStream::from_std(stream) {
                    Ok(stream) => conn::run(shared, stream, peer, permit, drain).await,
                    Err(e) => tracing::warn!(%peer, error = %e, "cannot serve the connection"),
                }
            });
        }

        drop(listener);
        reap(&mut connections);
        let grace = settings.shutdown_grace;
        tracing::info!(
            listen = %local_addr,
            open_connections = connections.len(),
            grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            "shutting down: stopped accepting, draining connections"
        );
        // Receivers may all be gone (no connections); nothing to tell then.
        drop(watching);
        drop((acme, http01));
        let _ = drain_tx.send(true);
        let drained = tokio::time::timeout(grace, async {
            while let Some(done) = connections.join_next().await {
                log_task_end(done);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                remaining = connections.len(),
                "shutdown grace elapsed; closing remaining connections"
            );
            connections.shutdown().await;
        }
        workers.stop().await;
        tracing::info!(listen = %local_addr, "server stopped");
        Ok(())
    }
}

/// The accept queue's length, as `std` and tokio's `TcpListener::bind` choose it.
const LISTEN_BACKLOG: u32 = 128;

/// Opens the listening socket like `TcpListener::bind` does, plus `SO_KEEPALIVE`.
///
/// Set on the listener because accepted sockets inherit it (Linux, the BSDs, macOS, Windows) and
/// tokio's `TcpStream` cannot set it. With the kernel's probe timing (Linux: first probe after
/// 2 h of silence) this only reclaims connections whose client vanished without a FIN or RST
/// (powered off, NAT entry dropped) while nothing else would notice, e.g. an HTTP/2 connection
/// with a request in flight; the timeouts handle everything faster. Tuning the timing needs
/// `socket2`'s `TcpKeepalive`.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Rebinding right after a restart; not on Windows, where it would allow taking over a port
    // in use (tokio does the same).
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    socket.set_keepalive(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Pause after an accept error that is not about one connection (e.g. `EMFILE`).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// hyper's HTTP/1.1 read buffer cannot be smaller than this (it asserts so).
const MIN_HTTP1_BUFFER: usize = 8192;

fn http_builder(settings: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper's own header timer also runs while a keep-alive connection waits for its next
        // request, which would cap `idle_timeout` at `header_timeout`; conn.rs keeps both.
        .header_read_timeout(None)
        .keep_alive(true)
        // The whole request head must fit in the read buffer; beyond it hyper answers 431.
        .max_buf_size(settings.max_header_bytes.max(MIN_HTTP1_BUFFER));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Errors about one connection that vanished before `accept` returned it; the listener is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Collects finished connection tasks so the set does not grow with every connection served.
fn reap(connections: &mut JoinSet<()>) {
    while let Some(done) = connections.try_join_next() {
        log_task_end(done);
    }
}

fn log_task_end(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        // Handler panics are caught per request; this would be a bug in the server itself.
        tracing::error!(error = %e, "connection task panicked");
    }
}

#[cfg(test)]
mod tests;
