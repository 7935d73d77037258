//! `server.send_timeout`: a connection whose socket accepts no bytes for that long while it has
//! bytes to send is closed, so a client that stops reading cannot hold a connection slot (or the
//! shutdown drain) forever.
//!
//! [`SendTimeout`] wraps the TCP stream itself, under TLS and hyper, so one clock covers
//! HTTP/1.1, HTTP/2 and TLS records alike, and "progress" means what the kernel accepted. The
//! header and idle timeouts (`conn.rs`) watch the other direction; a connection with nothing to
//! send never arms this clock.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The error a stalled write fails with (inside an `io::ErrorKind::TimedOut`).
#[derive(Debug)]
pub(super) struct SendStalled(Duration);

impl fmt::Display for SendStalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client accepted no bytes for {:?} (server.send_timeout)",
            self.0
        )
    }
}

impl std::error::Error for SendStalled {}

/// A stream whose writes fail with [`SendStalled`] once the inner stream has refused bytes
/// (returned `Pending` from a write, flush or shutdown) for `limit` without any progress between.
///
/// The hot path costs a branch and a bool store: the timer is only touched when a write goes
/// from progressing to blocked, and allocated at the first such stall of the connection.
pub(super) struct SendTimeout<I> {
    inner: I,
    /// `None`: no limit (configured as zero).
    limit: Option<Duration>,
    peer: SocketAddr,
    /// Armed while `stalled`; kept between stalls so a long download allocates it once.
    timer: Option<Pin<Box<Sleep>>>,
    /// The last write-side poll returned `Pending` and `timer` holds its deadline.
    ///
    /// Cleared by the next write-side poll that is `Ready`. A `Pending` write leaves the bytes
    /// with the caller, and hyper and h2 (and tokio-rustls above us) retry until it is `Ready`
    /// or the connection ends, so no successful write can hide between a stall and its deadline.
    stalled: bool,
}

impl<I> SendTimeout<I> {
    pub(super) fn new(inner: I, limit: Option<Duration>, peer: SocketAddr) -> Self {
        Self {
            inner,
            limit,
            peer,
            timer: None,
            stalled: false,
        }
    }

    /// Passes on a write-side poll of the inner stream, minding the clock.
    fn track<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => self.poll_stalled(cx),
            ready => {
                self.stalled = false;
                ready
            }
        }
    }

    /// The inner stream refused bytes: starts the deadline if this is a new stall, and fails
    /// once it has passed. Otherwise `Pending`, woken by the socket or the timer.
    fn poll_stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let Some(limit) = self.limit else {
            return Poll::Pending;
        };
        if !self.stalled {
            // A limit too large for the clock means no limit.
            let Some(deadline) = Instant::now().checked_add(limit) else {
                return Poll::Pending;
            };
            self.stalled = true;
            match &mut self.timer {
                // Moving a pending timer later is an atomic store in tokio: the wheel entry is
                // re-filed only when its old deadline comes up.
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let Some(timer) = &mut self.timer else {
            // Set above whenever `stalled` was false, and never cleared.
            return Poll::Pending;
        };
        ready!(timer.as_mut().poll(cx));
        tracing::debug!(peer = %self.peer, ?limit, "closing connection: client stopped reading");
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            SendStalled(limit),
        )))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for SendTimeout<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for SendTimeout<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.track(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.track(cx, polled)
    }

    // Forwarded so hyper keeps using writev (its queue strategy) on plain TCP.
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.track(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.track(cx, polled)
    }
}
