//! Remembered plugin answers (`modgate:plugin/memo`): a plugin that says what its answer
//! depended on lets the host give that answer again, without a call, to requests that agree on
//! those facts, until the answer's time-to-live ends.
//!
//! One [`Memo`] per plugin and world, owned by the plugin's entry in its `PluginSet`, so a
//! reload (a new set) forgets everything. Keys are sha256 digests of the facts an answer
//! depended on (so the memo holds no credentials in the clear, and two different sets of facts
//! never share an entry), in bounded caches ([`MEMO_ENTRIES`] per plugin, world and thread).
//!
//! Each worker thread keeps its own cache and its own copies of the answers: a hit then takes
//! no lock and changes no count another core also changes (a shared cache cost a remembered
//! request ~0.3 µs more, measured). A worker that has not seen a set of facts yet calls the
//! plugin once itself.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::bindings::memo::DependsOn;
use super::bindings::types::{Action, RequestFacts};

/// Remembered answers kept per plugin, world and worker thread; past it the least useful are
/// evicted.
pub const MEMO_ENTRIES: usize = 16_384;
/// Distinct fact sets ("what the answer depends on") a plugin may use; answers declaring yet
/// another set are not remembered.
pub const MAX_SHAPES: usize = 8;
/// Header names one `remember` may list.
pub const MAX_HEADERS: usize = 16;

/// A request as a plugin call sees it: the [`RequestFacts`] handed to the plugin (built only
/// when a call is needed) and, borrowed from wherever the caller keeps them, the facts a memo
/// key is made of. Both [`Memo::get`] and [`Memo::put`] read the key facts through this, so a
/// request is looked up under exactly the key its answer was stored under.
pub trait Asked {
    /// The facts handed to the plugin.
    fn facts(&self) -> &RequestFacts;
    fn method(&self) -> &str;
    fn path(&self) -> &str;
    fn module(&self) -> Option<&str>;
    fn version(&self) -> Option<&str>;
    fn action(&self) -> Action;
    /// The client's IP address, or the peer address as given when it is not `ip:port`.
    fn peer_ip(&self) -> Result<IpAddr, &str>;
    fn tls_client_identity(&self) -> Option<&str>;
    /// Every value of header `name`, in order.
    fn header_values(&self, name: &http::HeaderName, each: &mut dyn FnMut(&[u8]));
}

impl Asked for RequestFacts {
    fn facts(&self) -> &RequestFacts {
        self
    }

    fn method(&self) -> &str {
        &self.method
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn module(&self) -> Option<&str> {
        self.module.as_deref()
    }

    fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    fn action(&self) -> Action {
        self.action
    }

    fn peer_ip(&self) -> Result<IpAddr, &str> {
        self.peer_addr
            .parse::<SocketAddr>()
            .map(|a| a.ip())
            .map_err(|_| self.peer_addr.as_str())
    }

    fn tls_client_identity(&self) -> Option<&str> {
        self.tls_client_identity.as_deref()
    }

    fn header_values(&self, name: &http::HeaderName, each: &mut dyn FnMut(&[u8])) {
        for (_, value) in self.headers.iter().filter(|(n, _)| n == name.as_str()) {
            each(value.as_bytes());
        }
    }
}

/// One plugin's remembered answers of one world.
pub struct Memo<A: Send + Sync> {
    /// The longest any answer is kept (`limits.memo_ttl_ms`; zero: memo off).
    cap: Duration,
    /// The fact sets answers were remembered under, in the order first seen (read on every
    /// lookup, written once per new set: an `ArcSwap`, so lookups take no lock).
    shapes: arc_swap::ArcSwap<Vec<Shape>>,
    /// Serializes adding a fact set.
    adding: Mutex<()>,
    /// Each thread's remembered answers.
    entries: thread_local::ThreadLocal<RefCell<Entries<A>>>,
}

type Entries<A> = quick_cache::unsync::Cache<[u8; 32], Entry<A>>;

struct Entry<A> {
    /// Shared, so a remembered answer is handed out without copying it.
    answer: Arc<A>,
    expires: Instant,
}

impl<A: Send + Sync> Memo<A> {
    pub fn new(cap: Duration) -> Self {
        Memo {
            cap,
            shapes: arc_swap::ArcSwap::from_pointee(Vec::new()),
            adding: Mutex::new(()),
            entries: thread_local::ThreadLocal::new(),
        }
    }

    /// This thread's remembered answers.
    fn local(&self) -> &RefCell<Entries<A>> {
        self.entries
            .get_or(|| RefCell::new(quick_cache::unsync::Cache::new(MEMO_ENTRIES)))
    }

    /// A remembered answer for `asked`, if one is still fresh.
    pub fn get(&self, asked: &(impl Asked + ?Sized)) -> Option<Arc<A>> {
        if self.cap.is_zero() {
            return None;
        }
        let shapes = self.shapes.load();
        if shapes.is_empty() {
            // The plugin never asked to be remembered: no clock read, no hashing.
            return None;
        }
        let now = Instant::now();
        let entries = self.local().borrow();
        shapes.iter().enumerate().find_map(|(i, shape)| {
            let entry = entries.get(&key(i, shape, asked))?;
            (entry.expires > now).then(|| Arc::clone(&entry.answer))
        })
    }

    /// Remember `answer` for requests that agree with `asked` on `depends_on`, for `ttl_ms`
    /// (capped). Nothing happens when the memo is off, the TTL is zero or the plugin already
    /// uses [`MAX_SHAPES`] other fact sets.
    pub fn put(
        &self,
        depends_on: DependsOn,
        ttl_ms: u32,
        asked: &(impl Asked + ?Sized),
        answer: &Arc<A>,
    ) {
        let ttl = Duration::from_millis(u64::from(ttl_ms)).min(self.cap);
        if ttl.is_zero() {
            return;
        }
        let Some((i, shapes)) = self.shape_index(depends_on) else {
            return;
        };
        let entry = Entry {
            answer: Arc::clone(answer),
            expires: Instant::now() + ttl,
        };
        let key = key(i, &shapes[i], asked);
        self.local().borrow_mut().insert(key, entry);
    }

    /// The index of `depends_on` among the fact sets (added if new and there is room), with
    /// the list it indexes.
    fn shape_index(&self, depends_on: DependsOn) -> Option<(usize, Arc<Vec<Shape>>)> {
        let known = |shapes: &[Shape]| shapes.iter().position(|s| same_shape(&s.on, &depends_on));
        let shapes = self.shapes.load_full();
        if let Some(i) = known(&shapes) {
            return Some((i, shapes));
        }
        let _adding = self
            .adding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let shapes = self.shapes.load_full();
        if let Some(i) = known(&shapes) {
            return Some((i, shapes));
        }
        if shapes.len() >= MAX_SHAPES {
            return None;
        }
        let mut more = Vec::clone(&shapes);
        more.push(Shape::new(depends_on));
        let more = Arc::new(more);
        self.shapes.store(more.clone());
        Some((more.len() - 1, more))
    }
}

/// A fact set, with its header names parsed once.
#[derive(Clone)]
struct Shape {
    on: DependsOn,
    /// `on.headers` as header names (`None`: not a valid name, so no request carries it).
    headers: Vec<Option<http::HeaderName>>,
}

impl Shape {
    fn new(on: DependsOn) -> Self {
        let headers = on
            .headers
            .iter()
            .map(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        Shape { on, headers }
    }
}

fn same_shape(a: &DependsOn, b: &DependsOn) -> bool {
    (
        a.method,
        a.path,
        a.module,
        a.version,
        a.action,
        a.peer_ip,
        a.tls_client_identity,
    ) == (
        b.method,
        b.path,
        b.module,
        b.version,
        b.action,
        b.peer_ip,
        b.tls_client_identity,
    ) && a.headers == b.headers
}

/// The digest of the shape's index and of the facts it selects. Every field is tagged and
/// length-prefixed, so no two different selections hash the same bytes.
fn key(index: usize, shape: &Shape, asked: &(impl Asked + ?Sized)) -> [u8; 32] {
    let on = &shape.on;
    let mut h = Sha256::new();
    h.update((index as u64).to_le_bytes());
    let mut field = |tag: u8, value: Option<&[u8]>| {
        h.update([tag]);
        match value {
            Some(v) => {
                h.update([1]);
                h.update((v.len() as u64).to_le_bytes());
                h.update(v);
            }
            None => h.update([0]),
        }
    };
    if on.method {
        field(b'm', Some(asked.method().as_bytes()));
    }
    if on.path {
        field(b'p', Some(asked.path().as_bytes()));
    }
    if on.module {
        field(b'M', asked.module().map(str::as_bytes));
    }
    if on.version {
        field(b'v', asked.version().map(str::as_bytes));
    }
    if on.action {
        field(
            b'a',
            Some(match asked.action() {
                Action::Read => b"read",
                Action::Publish => b"publish",
                Action::Admin => b"admin",
            }),
        );
    }
    if on.peer_ip {
        match asked.peer_ip() {
            Ok(IpAddr::V4(ip)) => field(b'4', Some(&ip.octets())),
            Ok(IpAddr::V6(ip)) => field(b'6', Some(&ip.octets())),
            Err(raw) => field(b'i', Some(raw.as_bytes())),
        }
    }
    if on.tls_client_identity {
        field(b't', asked.tls_client_identity().map(str::as_bytes));
    }
    for (name, parsed) in on.headers.iter().zip(&shape.headers) {
        field(b'h', Some(name.as_bytes()));
        if let Some(parsed) = parsed {
            asked.header_values(parsed, &mut |value| field(b'=', Some(value)));
        }
        field(b'.', None);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(auth: Option<&str>, module: &str, port: u16) -> RequestFacts {
        let mut headers = vec![("user-agent".to_string(), "Go-http-client/1.1".to_string())];
        if let Some(a) = auth {
            headers.push(("authorization".to_string(), a.to_string()));
        }
        RequestFacts {
            method: "GET".into(),
            path: format!("/{module}/@v/list"),
            module: Some(module.into()),
            version: None,
            action: Action::Read,
            headers,
            peer_addr: format!("10.0.0.7:{port}"),
            tls_client_identity: None,
        }
    }

    fn on() -> DependsOn {
        DependsOn {
            method: false,
            path: false,
            module: true,
            version: false,
            action: true,
            peer_ip: true,
            tls_client_identity: false,
            headers: vec!["authorization".into()],
        }
    }

    #[test]
    fn answers_only_requests_that_agree_on_every_named_fact() {
        let memo = Memo::new(Duration::from_secs(60));
        let asked = facts(Some("Bearer a"), "corp.example/x", 5000);
        assert_eq!(memo.get(&asked), None);
        memo.put(on(), 60_000, &asked, &Arc::new("allow a"));
        // Other port, other user agent: not named, so the same answer.
        let mut same = facts(Some("Bearer a"), "corp.example/x", 6000);
        same.headers[0].1 = "curl".into();
        assert_eq!(memo.get(&same).as_deref(), Some(&"allow a"));
        for other in [
            facts(Some("Bearer b"), "corp.example/x", 5000),
            facts(Some("Bearer a"), "corp.example/y", 5000),
            facts(None, "corp.example/x", 5000),
            facts(Some("Bearer a"), "corp.example/x", 5000).with_peer("10.0.0.8:5000"),
            facts(Some("Bearer a"), "corp.example/x", 5000).with_header("authorization", "x"),
        ] {
            assert_eq!(memo.get(&other), None, "{other:?}");
        }
    }

    #[test]
    fn off_expired_and_too_many_shapes_are_not_remembered() {
        let asked = facts(Some("Bearer a"), "corp.example/x", 5000);
        let off = Memo::new(Duration::ZERO);
        off.put(on(), 60_000, &asked, &Arc::new(1));
        assert_eq!(off.get(&asked), None);

        let memo = Memo::new(Duration::from_secs(60));
        memo.put(on(), 0, &asked, &Arc::new(1));
        assert_eq!(memo.get(&asked), None, "ttl 0");

        for n in 0..MAX_SHAPES {
            let mut shape = on();
            shape.headers = vec![format!("x-{n}")];
            memo.put(shape, 60_000, &asked, &Arc::new(n));
        }
        let mut one_more = on();
        one_more.headers = vec!["x-last".into()];
        memo.put(one_more, 60_000, &asked, &Arc::new(99));
        assert_eq!(
            memo.get(&asked).as_deref(),
            Some(&0),
            "the first shape still answers"
        );
        assert_eq!(memo.shapes.load().len(), MAX_SHAPES);
    }

    #[tokio::test]
    async fn answers_expire_after_their_ttl_or_the_cap() {
        let asked = facts(Some("Bearer a"), "corp.example/x", 5000);
        let memo = Memo::new(Duration::from_millis(200));
        memo.put(on(), 60_000, &asked, &Arc::new("capped"));
        memo.put(
            on(),
            60_000,
            &facts(None, "corp.example/x", 1),
            &Arc::new("capped too"),
        );
        let mut short = on();
        short.headers.push("x-short".into());
        memo.put(short, 1, &asked, &Arc::new("one ms"));
        assert_eq!(memo.get(&asked).as_deref(), Some(&"capped"));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            memo.get(&asked),
            None,
            "past the 200 ms cap (and the 1 ms ttl)"
        );
        assert_eq!(memo.get(&facts(None, "corp.example/x", 1)), None);
    }

    impl RequestFacts {
        fn with_peer(mut self, peer: &str) -> Self {
            self.peer_addr = peer.into();
            self
        }

        fn with_header(mut self, name: &str, value: &str) -> Self {
            self.headers.push((name.into(), value.into()));
            self
        }
    }
}
