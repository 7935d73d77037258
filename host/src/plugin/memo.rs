//! Remembered plugin answers (`modgate:plugin/memo`): a plugin that says what its answer
//! depended on lets the host give that answer again, without a call, to requests that agree on
//! those facts, until the answer's time-to-live ends.
//!
//! One [`Memo`] per plugin and world, owned by the plugin's entry in its `PluginSet`, so a
//! reload (a new set) forgets everything. Keys are 128-bit SipHash-1-3 digests, under a random
//! key drawn for each memo, of the facts an answer depended on: the memo holds no credentials in
//! the clear, and since nobody outside the process knows the key, nobody can choose facts that
//! land on another request's entry (by chance, a lookup matches another fact set's entry with
//! odds below 2^-110). sha256 was the key before: it cost a remembered request ~0.2 µs more.
//! Entries are in bounded caches ([`MEMO_ENTRIES`] per plugin, world and thread).
//!
//! Each worker thread keeps its own cache and its own copies of the answers: a hit then takes
//! no lock and changes no count another core also changes (a shared cache cost a remembered
//! request ~0.3 µs more, measured). A worker that has not seen a set of facts yet calls the
//! plugin once itself.

use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use siphasher::sip128::{Hasher128, SipHasher13};
use tokio::time::Instant;

use super::bindings::memo::DependsOn;
use super::bindings::types::{Action, RequestFacts};

/// Remembered answers kept per plugin, world and worker thread; past it, expired answers and
/// then random ones are forgotten.
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
    /// The facts handed to the plugin (shared: a call that moves to the plugin pool takes them
    /// along).
    fn facts(&self) -> Arc<RequestFacts>;
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
    fn facts(&self) -> Arc<RequestFacts> {
        Arc::new(self.clone())
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
    /// The SipHash key of this memo's entries.
    secret: (u64, u64),
    /// The fact sets answers were remembered under, in the order first seen: filled front to
    /// back, never emptied, so a lookup reads the set prefix without a lock.
    shapes: [OnceLock<Shape>; MAX_SHAPES],
    /// Serializes adding a fact set.
    adding: Mutex<()>,
    /// Each thread's remembered answers.
    entries: thread_local::ThreadLocal<RefCell<Entries<A>>>,
}

/// One thread's remembered answers: a plain hash table (a probe is a few nanoseconds; a
/// general-purpose cache with its own eviction bookkeeping cost ~50 ns a lookup), bounded by
/// [`Entries::insert`].
struct Entries<A> {
    map: std::collections::HashMap<u128, Entry<A>, KeyIsHash>,
}

impl<A> Entries<A> {
    fn new() -> Self {
        Entries {
            map: std::collections::HashMap::with_hasher(KeyIsHash),
        }
    }

    fn get(&self, key: u128) -> Option<&Entry<A>> {
        self.map.get(&key)
    }

    /// Adds an entry. A full table first forgets what has expired, then, if still full, an
    /// eighth of what is left, chosen at random (keys are random, so the table's own order is
    /// a random one): a forgotten answer only costs the plugin call it saved.
    fn insert(&mut self, key: u128, entry: Entry<A>, now: Instant) {
        if self.map.len() >= MEMO_ENTRIES && !self.map.contains_key(&key) {
            self.map.retain(|_, e| e.expires > now);
            if self.map.len() >= MEMO_ENTRIES {
                let forget: Vec<u128> = self.map.keys().take(MEMO_ENTRIES / 8).copied().collect();
                for k in forget {
                    self.map.remove(&k);
                }
            }
        }
        self.map.insert(key, entry);
    }
}

struct Entry<A> {
    /// Shared, so a remembered answer is handed out without copying it.
    answer: Arc<A>,
    expires: Instant,
}

/// Keys are already uniform keyed digests: their low half is the hash table's hash.
#[derive(Clone, Copy, Default)]
struct KeyIsHash;

impl BuildHasher for KeyIsHash {
    type Hasher = LowHalf;

    fn build_hasher(&self) -> LowHalf {
        LowHalf(0)
    }
}

struct LowHalf(u64);

impl Hasher for LowHalf {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u128` keys are hashed here; this keeps any other use correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, key: u128) {
        self.0 = key as u64;
    }
}

impl<A: Send + Sync> Memo<A> {
    pub fn new(cap: Duration) -> Self {
        // A process without an OS random source cannot serve TLS either; should it happen, the
        // memo is turned off rather than keyed predictably.
        let secret = getrandom::u64().and_then(|a| Ok((a, getrandom::u64()?)));
        if let Err(e) = &secret {
            tracing::error!(error = %e, "no random source: plugin answers are not remembered");
        }
        Memo {
            cap: if secret.is_ok() { cap } else { Duration::ZERO },
            secret: secret.unwrap_or_default(),
            shapes: Default::default(),
            adding: Mutex::new(()),
            entries: thread_local::ThreadLocal::new(),
        }
    }

    /// This thread's remembered answers.
    fn local(&self) -> &RefCell<Entries<A>> {
        self.entries.get_or(|| RefCell::new(Entries::new()))
    }

    /// The fact sets added so far.
    fn shapes(&self) -> impl Iterator<Item = &Shape> {
        self.shapes.iter().map_while(OnceLock::get)
    }

    /// A remembered answer for `asked`, if one is still fresh.
    #[cfg(test)]
    pub fn get(&self, asked: &(impl Asked + ?Sized)) -> Option<Arc<A>> {
        self.with(asked, Arc::clone).ok()
    }

    /// `then` applied to the remembered answer for `asked`, if one is still fresh; else `then`
    /// back. The answer is read in place (no reference-count change: on this path that atomic
    /// was the costliest instruction), so `then` must not remember anything in this memo.
    pub fn with<R, F: FnOnce(&Arc<A>) -> R>(
        &self,
        asked: &(impl Asked + ?Sized),
        then: F,
    ) -> Result<R, F> {
        if self.cap.is_zero() {
            return Err(then);
        }
        let mut shapes = self.shapes().enumerate().peekable();
        if shapes.peek().is_none() {
            // The plugin never asked to be remembered: no clock read, no hashing.
            return Err(then);
        }
        let now = Instant::now();
        let entries = self.local().borrow();
        let fresh = shapes.find_map(|(i, shape)| {
            entries
                .get(self.key(i, shape, asked))
                .filter(|entry| entry.expires > now)
        });
        match fresh {
            Some(entry) => Ok(then(&entry.answer)),
            None => Err(then),
        }
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
        let Some((i, shape)) = self.shape_index(depends_on) else {
            return;
        };
        let now = Instant::now();
        let entry = Entry {
            answer: Arc::clone(answer),
            expires: now + ttl,
        };
        let key = self.key(i, shape, asked);
        self.local().borrow_mut().insert(key, entry, now);
    }

    /// The index of `depends_on` among the fact sets (added if new and there is room), with
    /// the set.
    fn shape_index(&self, depends_on: DependsOn) -> Option<(usize, &Shape)> {
        let known = || {
            self.shapes()
                .enumerate()
                .find(|(_, s)| same_shape(&s.on, &depends_on))
        };
        if let Some(found) = known() {
            return Some(found);
        }
        let _adding = self
            .adding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(found) = known() {
            return Some(found);
        }
        let i = self.shapes().count();
        let slot = self.shapes.get(i)?;
        Some((i, slot.get_or_init(|| Shape::new(depends_on))))
    }

    /// The key of the shape's index and of the facts it selects: every field is tagged and
    /// length-prefixed, so no two different selections hash the same bytes.
    fn key(&self, index: usize, shape: &Shape, asked: &(impl Asked + ?Sized)) -> u128 {
        let mut h = SipHasher13::new_with_keys(self.secret.0, self.secret.1);
        h.write_u64(index as u64);
        let mut field = |tag: u8, value: Option<&[u8]>| match value {
            // Tag, presence and length in one word: a value is far below 2^48 bytes (hyper
            // caps a request head at a few hundred KiB).
            Some(v) => {
                h.write_u64(u64::from(tag) << 56 | 1 << 48 | v.len() as u64);
                h.write(v);
            }
            None => h.write_u64(u64::from(tag) << 56),
        };
        let on = &shape.on;
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
        h.finish128().as_u128()
    }
}

/// A fact set, with its header names parsed once.
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
        assert_eq!(memo.shapes().count(), MAX_SHAPES);
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

    #[test]
    fn a_full_memo_forgets_expired_answers_first_then_random_ones() {
        let memo = Memo::new(Duration::from_secs(60));
        let asked = |n: usize| facts(Some(&format!("Bearer {n}")), "corp.example/x", 1);
        let short = 100;
        for n in 0..short {
            memo.put(on(), 1, &asked(n), &Arc::new(n));
        }
        for n in short..MEMO_ENTRIES {
            memo.put(on(), 60_000, &asked(n), &Arc::new(n));
        }
        std::thread::sleep(Duration::from_millis(5));
        memo.put(on(), 60_000, &asked(MEMO_ENTRIES), &Arc::new(MEMO_ENTRIES));
        // Only the expired ones made room: every long-lived answer is still there.
        assert_eq!(memo.local().borrow().map.len(), MEMO_ENTRIES - short + 1);
        assert!((short..=MEMO_ENTRIES).all(|n| memo.get(&asked(n)).as_deref() == Some(&n)));

        // Full of fresh answers: an eighth goes, the new one is kept.
        for n in MEMO_ENTRIES + 1..MEMO_ENTRIES + short {
            memo.put(on(), 60_000, &asked(n), &Arc::new(n));
        }
        assert_eq!(memo.local().borrow().map.len(), MEMO_ENTRIES);
        let last = MEMO_ENTRIES + short;
        memo.put(on(), 60_000, &asked(last), &Arc::new(last));
        assert_eq!(
            memo.local().borrow().map.len(),
            MEMO_ENTRIES - MEMO_ENTRIES / 8 + 1
        );
        assert_eq!(memo.get(&asked(last)).as_deref(), Some(&last));
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
