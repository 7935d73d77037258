//! A fake upstream GOPROXY: an in-process hyper server over a fixture [`Tree`], counting the
//! requests it gets per path, with knobs to delay or throttle zips and to override any path's
//! answer (for the hostile-upstream matrix).
//!
//! It runs on its own thread and tokio runtime, so it serves while a test blocks on the go
//! command, and it outlives no test: dropping it stops the server and joins the thread.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};

use crate::fixtures::{TEXT, Tree};

/// A canned answer for one path, replacing whatever the tree holds.
#[derive(Clone)]
pub struct Override {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
}

#[derive(Default)]
struct Knobs {
    /// Wait this long before answering a request whose path ends with the key (`.zip`, `/list`, …).
    delays: HashMap<String, Duration>,
    /// Send `.zip` bodies at this many bytes per second (per response).
    zip_rate: Option<u64>,
    overrides: HashMap<String, Override>,
    /// Announce the full `Content-Length` but close the connection after this many bytes.
    truncations: HashMap<String, usize>,
    /// Asked for paths the tree does not hold (after `overrides`): an answer, or `None` for
    /// the default 404.
    fallback: Option<Fallback>,
    /// The next requests for a path (how many) answered with a status and a `Retry-After`.
    failures: HashMap<String, (usize, u16, Option<String>)>,
}

/// The answer for a path the tree does not hold: how an upstream flavour refuses.
pub type Fallback = Arc<dyn Fn(&str) -> Option<Override> + Send + Sync>;

struct State {
    tree: RwLock<Tree>,
    hits: Mutex<HashMap<String, usize>>,
    log: Mutex<Vec<String>>,
    knobs: Mutex<Knobs>,
}

pub struct FakeUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeUpstream {
    /// Starts serving `tree` on `127.0.0.1:<free port>`.
    pub fn start(tree: Tree) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("fake upstream: bind");
        listener
            .set_nonblocking(true)
            .expect("fake upstream: nonblocking");
        let addr = listener.local_addr().expect("fake upstream: local addr");
        let state = Arc::new(State {
            tree: RwLock::new(tree),
            hits: Mutex::default(),
            log: Mutex::default(),
            knobs: Mutex::default(),
        });
        let (tx, rx) = oneshot::channel();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fake-upstream-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("fake upstream: runtime");
                rt.block_on(serve(listener, st, rx));
                // Connections still open (a client mid-download) are dropped with the runtime.
                rt.shutdown_timeout(Duration::from_millis(100));
            })
            .expect("fake upstream: spawn thread");
        Self {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for a GOPROXY list.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests (any method) reached `path` (decoded, leading `/`).
    pub fn hits(&self, path: &str) -> usize {
        self.state
            .hits
            .lock()
            .expect("hits lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Every request so far, as `METHOD path`, in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.state.log.lock().expect("log lock").clone()
    }

    pub fn reset_hits(&self) {
        self.state.hits.lock().expect("hits lock").clear();
        self.state.log.lock().expect("log lock").clear();
    }

    pub fn set_zip_delay(&self, delay: Duration) {
        self.set_delay(".zip", delay);
    }

    /// Delays the answer to every request whose path ends with `suffix` (`.info`, `/list`, …).
    pub fn set_delay(&self, suffix: &str, delay: Duration) {
        self.state
            .knobs
            .lock()
            .expect("knobs lock")
            .delays
            .insert(suffix.to_string(), delay);
    }

    /// Throttles `.zip` bodies to `bytes_per_second` per response (`None`: full speed).
    pub fn set_zip_rate(&self, bytes_per_second: Option<u64>) {
        self.state.knobs.lock().expect("knobs lock").zip_rate = bytes_per_second;
    }

    /// Answers `path` with this status, content type and body from now on.
    pub fn override_path(
        &self,
        path: &str,
        status: u16,
        content_type: &str,
        body: impl Into<Bytes>,
    ) {
        let o = Override {
            status,
            content_type: content_type.to_string(),
            body: body.into(),
        };
        self.state
            .knobs
            .lock()
            .expect("knobs lock")
            .overrides
            .insert(path.to_string(), o);
    }

    /// Cuts the body of `path` after `bytes` (the full length is still announced): a
    /// connection that drops mid-download. `None` restores it.
    pub fn truncate_path(&self, path: &str, bytes: Option<usize>) {
        let mut k = self.state.knobs.lock().expect("knobs lock");
        match bytes {
            Some(n) => k.truncations.insert(path.to_string(), n),
            None => k.truncations.remove(path),
        };
    }

    /// Answers the next `times` requests for `path` with `status` (and `Retry-After:
    /// retry_after` when given), then as before.
    pub fn fail_next(&self, path: &str, times: usize, status: u16, retry_after: Option<&str>) {
        self.state
            .knobs
            .lock()
            .expect("knobs lock")
            .failures
            .insert(
                path.to_string(),
                (times, status, retry_after.map(str::to_string)),
            );
    }

    /// Answers paths the tree does not hold with `f`'s answer (`None`: the default 404).
    pub fn set_fallback(&self, f: impl Fn(&str) -> Option<Override> + Send + Sync + 'static) {
        self.state.knobs.lock().expect("knobs lock").fallback = Some(Arc::new(f));
    }

    /// Changes the served tree.
    pub fn with_tree<R>(&self, f: impl FnOnce(&mut Tree) -> R) -> R {
        f(&mut self.state.tree.write().expect("tree lock"))
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("fake upstream: listener");
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let st = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let st = st.clone();
                async move { Ok::<_, Infallible>(answer(&st, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

type Resp = Response<BoxBody<Bytes, Infallible>>;

fn full(status: u16, content_type: &str, body: Bytes, head: bool) -> Resp {
    let len = body.len();
    let body = if head { Bytes::new() } else { body };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", len)
        .body(Full::new(body).boxed())
        .expect("valid response")
}

async fn answer(state: &State, req: Request<hyper::body::Incoming>) -> Resp {
    let raw = req.uri().path().to_string();
    let path = percent_encoding::percent_decode_str(&raw)
        .decode_utf8_lossy()
        .into_owned();
    let head = req.method() == hyper::Method::HEAD;
    *state
        .hits
        .lock()
        .expect("hits lock")
        .entry(path.clone())
        .or_default() += 1;
    state
        .log
        .lock()
        .expect("log lock")
        .push(format!("{} {path}", req.method()));
    if req.method() != hyper::Method::GET && !head {
        return full(
            405,
            TEXT,
            Bytes::from_static(b"method not allowed\n"),
            false,
        );
    }

    let failure = {
        let mut k = state.knobs.lock().expect("knobs lock");
        match k.failures.get_mut(&path) {
            Some((left, status, retry_after)) if *left > 0 => {
                *left -= 1;
                Some((*status, retry_after.clone()))
            }
            _ => None,
        }
    };
    if let Some((status, retry_after)) = failure {
        let mut response = Response::builder()
            .status(status)
            .header("content-type", TEXT);
        if let Some(after) = retry_after {
            response = response.header("retry-after", after);
        }
        return response
            .body(Full::new(Bytes::from_static(b"try again later\n")).boxed())
            .expect("valid response");
    }
    let (delay, rate, over, cut, fallback) = {
        let k = state.knobs.lock().expect("knobs lock");
        let delay = k
            .delays
            .iter()
            .filter(|(suffix, _)| path.ends_with(suffix.as_str()))
            .map(|(_, d)| *d)
            .max();
        (
            delay,
            k.zip_rate,
            k.overrides.get(&path).cloned(),
            k.truncations.get(&path).copied(),
            k.fallback.clone(),
        )
    };
    let is_zip = path.ends_with(".zip");
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if let Some(o) = over {
        return full(o.status, &o.content_type, o.body, head);
    }
    let found = state.tree.read().expect("tree lock").get(&path).cloned();
    let Some(artifact) = found else {
        if let Some(o) = fallback.and_then(|f| f(&path)) {
            return full(o.status, &o.content_type, o.body, head);
        }
        return full(404, TEXT, Bytes::from(format!("not found: {path}\n")), head);
    };
    let body = Bytes::from(artifact.body);
    if let Some(cut) = cut.filter(|_| !head) {
        let len = body.len();
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            let _ = tx.send(body.slice(..cut.min(len))).await;
            // Dropping the sender ends the body short of Content-Length: hyper closes the connection.
        });
        return Response::builder()
            .status(200)
            .header("content-type", artifact.content_type)
            .header("content-length", len)
            .body(ChannelBody(rx).boxed())
            .expect("valid response");
    }
    match rate {
        Some(rate) if is_zip && !head => {
            let len = body.len();
            let (tx, rx) = mpsc::channel(2);
            tokio::spawn(trickle(body, rate, tx));
            Response::builder()
                .status(200)
                .header("content-type", artifact.content_type)
                .header("content-length", len)
                .body(ChannelBody(rx).boxed())
                .expect("valid response")
        }
        _ => full(200, artifact.content_type, body, head),
    }
}

/// Sends `body` in small chunks at about `rate` bytes per second.
async fn trickle(body: Bytes, rate: u64, tx: mpsc::Sender<Bytes>) {
    const CHUNK: usize = 32 * 1024;
    let pause = Duration::from_secs_f64(CHUNK as f64 / rate.max(1) as f64);
    let mut off = 0;
    while off < body.len() {
        let end = (off + CHUNK).min(body.len());
        if tx.send(body.slice(off..end)).await.is_err() {
            return; // the client went away
        }
        off = end;
        tokio::time::sleep(pause).await;
    }
}

/// A response body fed from a channel.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}
