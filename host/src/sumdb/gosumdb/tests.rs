use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::sumdb::memlog::MemLog;
use crate::sumdb::note::Signer;

/// A database served as a proxy's `/sumdb/<name>/` would: lookups, and the hash tiles it
/// publishes (partial tiles at the current width only).
struct Served {
    log: Mutex<MemLog>,
    requests: AtomicUsize,
}

impl Served {
    fn new(log: MemLog) -> Arc<Self> {
        Arc::new(Served {
            log: Mutex::new(log),
            requests: AtomicUsize::new(0),
        })
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Source for Served {
    fn get<'a>(&'a self, rest: &'a str) -> BoxFuture<'a, Result<Bytes, FetchError>> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let log = self.log.lock().expect("log lock");
        let found = if rest == "supported" {
            Some((rest.to_owned(), Vec::new()))
        } else if rest == "latest" {
            log.signed_tree()
                .ok()
                .map(|t| (rest.to_owned(), t.into_bytes()))
        } else if rest.starts_with("lookup/") {
            log.lookups().into_iter().find(|(p, _)| p == rest)
        } else {
            log.tiles().into_iter().find(|(p, _)| p == rest)
        };
        let answer = found
            .map(|(_, d)| Bytes::from(d))
            .ok_or_else(FetchError::not_found);
        Box::pin(async move { answer })
    }
}

const NAME: &str = "sum.test.example";

/// One signer key for the whole test binary (a fork is signed by the same key).
fn skey() -> &'static str {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| Signer::generate(NAME).expect("a key").0)
}

fn log_of(versions: &[(&str, &str)]) -> MemLog {
    let mut log = MemLog::new(Signer::parse(skey()).expect("signer"));
    for (i, (m, v)) in versions.iter().enumerate() {
        let zip = format!("h1:{}", b64(&[i as u8; 32]));
        let modh = format!("h1:{}", b64(&[!(i as u8); 32]));
        log.add(m, v, Some(&zip), &modh).expect("a new record");
    }
    log
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn open(dir: &std::path::Path) -> Arc<Gosumdb> {
    let vkey = Signer::parse(skey()).expect("signer").verifier().encode();
    Arc::new(
        Gosumdb::open(&Settings {
            name: NAME.into(),
            key: vkey,
            dir: dir.to_path_buf(),
        })
        .expect("open the state"),
    )
}

fn versions(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("example.com/m{}", i % 7), format!("v1.0.{i}")))
        .collect()
}

fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(m, v)| (m.as_str(), v.as_str())).collect()
}

async fn record(
    db: &Arc<Gosumdb>,
    src: &Arc<Served>,
    m: &str,
    v: &str,
) -> Result<Record, VerifyError> {
    let source: Arc<dyn Source> = src.clone();
    db.record(m, v, format!("{m}@{v}"), source).await
}

#[tokio::test]
async fn a_record_is_verified_from_lookups_and_hash_tiles_and_remembered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vs = versions(300);
    let log = log_of(&refs(&vs));
    let tree = log.tree();
    let src = Served::new(log);
    let db = open(dir.path());
    let r = record(&db, &src, "example.com/m3", "v1.0.283")
        .await
        .expect("verified");
    assert_eq!(
        r.zip.as_deref(),
        Some(format!("h1:{}", b64(&[283u16 as u8; 32]))).as_deref()
    );
    assert_eq!(
        r.go_mod,
        Some(format!("h1:{}", b64(&[!(283u16 as u8); 32])))
    );
    assert_eq!(db.newest(), Some(tree));
    let asked = src.requests();
    assert!(asked >= 3, "a lookup and tiles: {asked}");
    // Remembered: no request the second time; a second version needs only its lookup
    // (the tiles are cached).
    record(&db, &src, "example.com/m3", "v1.0.283")
        .await
        .expect("verified");
    assert_eq!(src.requests(), asked);
    record(&db, &src, "example.com/m0", "v1.0.0")
        .await
        .expect("verified");
    assert!(
        src.requests() <= asked + 2,
        "{} after {asked}",
        src.requests()
    );
    // Kept on disk, with the note as signed.
    let reopened = open(dir.path());
    assert_eq!(reopened.newest(), Some(tree));
}

#[tokio::test]
async fn an_unknown_version_is_not_found_and_a_tampered_record_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vs = versions(20);
    let src = Served::new(log_of(&refs(&vs)));
    let db = open(dir.path());
    let e = record(&db, &src, "example.com/m0", "v9.9.9")
        .await
        .expect_err("refused");
    assert!(matches!(e, VerifyError::NotFound { .. }), "{e}");

    // An upstream that does not proxy the database at all is told apart from an unknown version.
    struct NoSumdb;
    impl Source for NoSumdb {
        fn get<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Bytes, FetchError>> {
            Box::pin(async { Err(FetchError::not_found()) })
        }
    }
    let none: Arc<dyn Source> = Arc::new(NoSumdb);
    let e = db
        .record(
            "example.com/m0",
            "v1.0.0",
            "example.com/m0@v1.0.0".into(),
            none,
        )
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("does not proxy it"), "{e}");

    // A record whose text was changed after signing does not hash to the tree.
    struct Tampered(Arc<Served>);
    impl Source for Tampered {
        fn get<'a>(&'a self, rest: &'a str) -> BoxFuture<'a, Result<Bytes, FetchError>> {
            Box::pin(async move {
                let body = self.0.get(rest).await?;
                if !rest.starts_with("lookup/") {
                    return Ok(body);
                }
                let text = String::from_utf8(body.to_vec()).expect("utf-8");
                Ok(Bytes::from(text.replacen("h1:A", "h1:B", 1)))
            })
        }
    }
    let bad: Arc<dyn Source> = Arc::new(Tampered(src.clone()));
    let e = db
        .record(
            "example.com/m0",
            "v1.0.0",
            "example.com/m0@v1.0.0".into(),
            bad,
        )
        .await
        .expect_err("refused");
    assert!(matches!(e, VerifyError::Invalid { .. }), "{e}");
    assert!(db.halted().is_none());
}

#[tokio::test]
async fn a_fork_across_a_restart_halts_admission_until_the_mark_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vs = versions(40);
    let db = open(dir.path());
    let src = Served::new(log_of(&refs(&vs)));
    record(&db, &src, "example.com/m1", "v1.0.1")
        .await
        .expect("verified");
    drop(db);

    // The same names, but record 5 says something else, and the log grew.
    let mut forked: Vec<(String, String)> = versions(60);
    forked[5].1 = "v1.0.5-fork".into();
    let src = Served::new(log_of(&refs(&forked)));
    let db = open(dir.path());
    let e = record(&db, &src, "example.com/m4", "v1.0.53")
        .await
        .expect_err("refused");
    let VerifyError::Halted(why) = &e else {
        panic!("{e}")
    };
    assert!(
        why.contains("SECURITY ERROR") && why.contains("tree 40"),
        "{why}"
    );
    // Every later verification fails, and so does a restart, until the mark goes.
    let e = record(&db, &src, "example.com/m1", "v1.0.8")
        .await
        .expect_err("refused");
    assert!(matches!(e, VerifyError::Halted(_)), "{e}");
    let db = open(dir.path());
    assert!(db.halted().is_some());
    std::fs::remove_file(dir.path().join(NAME).join(HALT_FILE)).expect("remove the mark");
    std::fs::remove_file(dir.path().join(NAME).join("latest")).expect("remove");
    let db = open(dir.path());
    record(&db, &src, "example.com/m1", "v1.0.8")
        .await
        .expect("verified");
}

#[tokio::test]
async fn a_log_that_shrank_and_grew_again_differently_is_a_fork() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let src = Served::new(log_of(&refs(&versions(30))));
    record(&db, &src, "example.com/m2", "v1.0.2")
        .await
        .expect("verified");
    // Lost its last 10 records, then logged another version at index 20.
    let mut shrunk = versions(20);
    shrunk.push(("example.com/other".into(), "v0.1.0".into()));
    let src = Served::new(log_of(&refs(&shrunk)));
    let e = record(&db, &src, "example.com/other", "v0.1.0")
        .await
        .expect_err("refused");
    assert!(matches!(e, VerifyError::Halted(_)), "{e}");
}

#[tokio::test]
async fn an_answer_signed_over_an_older_tree_is_accepted_when_consistent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let vs = versions(500);
    let src = Served::new(log_of(&refs(&vs)));
    record(&db, &src, "example.com/m0", "v1.0.490")
        .await
        .expect("verified");
    // A proxy that still serves the log as it was at 270 records.
    let old = Served::new(log_of(&refs(&vs[..270])));
    // (Proven from the newer tree's tiles, cached by the first check.)
    let r = record(&db, &old, "example.com/m1", "v1.0.1")
        .await
        .expect("verified");
    assert!(r.zip.is_some());
    assert_eq!(db.newest().map(|t| t.n), Some(500));
}
