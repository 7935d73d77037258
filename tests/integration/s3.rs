//! Storage in an S3 bucket through the embedded `storage-s3` plugin, against a real S3 server:
//! versitygw (Apache-2.0, `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`),
//! which checks SigV4 signatures and makes conditional writes atomic. The go command downloads
//! through a route on S3 cold, warm, and from a restarted modgate that has only the bucket; a
//! modgate that signs with the wrong key is refused by the server and says so in one line.
//!
//! Without versitygw (on `PATH` or in `$(go env GOPATH)/bin`) the tests say how to install it
//! and skip; under `CI=1` they fail instead (`.ci/run` installs it).

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::SystemTime;

use crate::fixtures::{LIB, artifact_path, standard_tree};
use crate::go_client::{assert_cache_matches_tree, sums};
use crate::harness::{GoEnv, Modgate, Setup, free_port, get, in_own_session, raw_request};
use crate::upstream::FakeUpstream;

pub const ACCESS_KEY: &str = "AKIDMODGATETEST";
pub const SECRET_KEY: &str = "modgate-test-secret-key";
pub const BUCKET: &str = "modgate";

/// A versitygw server on 127.0.0.1 with one bucket, stopped on drop.
pub struct Versitygw {
    child: Child,
    pub addr: SocketAddr,
    _data: tempfile::TempDir,
}

impl Versitygw {
    /// Starts versitygw with bucket [`BUCKET`]; `None` (after saying why) when it is not
    /// installed and this is not CI.
    pub fn start() -> Option<Self> {
        let Some(bin) = crate::harness::installed_tool("versitygw") else {
            let how = "versitygw is not installed: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0";
            assert!(std::env::var_os("CI").is_none(), "{how}");
            eprintln!("skipped: {how}");
            return None;
        };
        let data = tempfile::Builder::new()
            .prefix("modgate-s3-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let child = in_own_session(&bin)
            .args(["--access", ACCESS_KEY, "--secret", SECRET_KEY])
            .args(["--port", &format!("127.0.0.1:{port}"), "--quiet"])
            .arg("posix")
            .arg(data.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start versitygw");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        crate::harness::wait_for_port(addr, "versitygw");
        let gw = Versitygw {
            child,
            addr,
            _data: data,
        };
        let r = gw.signed("PUT", &format!("/{BUCKET}"), SECRET_KEY);
        assert_eq!(
            r.status,
            200,
            "create bucket: {}",
            String::from_utf8_lossy(&r.body)
        );
        Some(gw)
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `METHOD path` signed (SigV4, in headers) with `secret`.
    pub fn signed(&self, method: &str, path: &str, secret: &str) -> crate::harness::RawResponse {
        use aws_sigv4::http_request::{
            PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
            SigningSettings, UriPathNormalizationMode, sign,
        };
        let identity =
            aws_credential_types::Credentials::new(ACCESS_KEY, secret, None, None, "modgate-tests")
                .into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .expect("signing params")
            .into();
        let host = self.addr.to_string();
        let url = format!("http://{host}{path}");
        let request = SignableRequest::new(
            method,
            url.as_str(),
            [("host", host.as_str())].into_iter(),
            SignableBody::Bytes(b""),
        )
        .expect("signable");
        let (instructions, _) = sign(request, &params).expect("sign").into_parts();
        let (headers, _) = instructions.into_parts();
        let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
        for h in &headers {
            text += &format!("{}: {}\r\n", h.name(), h.value());
        }
        text += "Content-Length: 0\r\nConnection: close\r\n\r\n";
        raw_request(self.addr, &text).expect("request to versitygw")
    }

    /// Keys of the bucket's objects (their files under the data directory).
    pub fn keys(&self) -> Vec<String> {
        let root = self._data.path().join(BUCKET);
        let mut keys: Vec<String> = crate::harness::walk(&root)
            .into_iter()
            .filter(|p| p.is_file())
            .filter_map(|p| {
                let rel = p.strip_prefix(&root).ok()?.to_str()?.to_string();
                // versitygw's own bookkeeping (multipart staging, metadata) starts with a dot.
                (!rel.split('/').any(|e| e.starts_with('.'))).then_some(rel)
            })
            .collect();
        keys.sort();
        keys
    }
}

impl Drop for Versitygw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `[storage.local]` on the bucket, with the credentials in the environment.
pub fn s3_storage(setup: &mut Setup, gw: &Versitygw, secret: &str) {
    s3_storage_at(setup, &gw.endpoint(), secret);
}

/// `[storage.local]` on the bucket at `endpoint` (`prefix = "goproxy/"`), with the credentials
/// in the environment.
fn s3_storage_at(setup: &mut Setup, endpoint: &str, secret: &str) {
    setup.local_storage = Some(format!(
        "plugin = \"storage-s3\"\nconfig = {{ endpoint = \"{endpoint}\", bucket = \"{BUCKET}\", prefix = \"goproxy/\" }}"
    ));
    setup.env = vec![
        ("S3_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
        ("S3_SECRET_ACCESS_KEY".into(), secret.into()),
    ];
}

#[test]
fn the_go_command_downloads_through_s3_cold_warm_and_from_the_bucket_alone() {
    let Some(gw) = Versitygw::start() else { return };
    let tree = standard_tree();
    let up = FakeUpstream::start(tree.clone());
    let unused = tempfile::tempdir().expect("tempdir");
    let mut setup = Setup::new(unused.path(), Some(&up.url()));
    s3_storage(&mut setup, &gw, SECRET_KEY);
    let mut mg = Modgate::start(setup.clone());
    let queries = crate::fixtures::standard_queries();

    // Cold: everything comes from the upstream into the bucket.
    let direct = GoEnv::new(&up.url());
    let want = sums(&direct.download(&queries));
    let cold = GoEnv::new(&mg.url());
    assert_eq!(sums(&cold.download(&queries)), want, "cold through S3");
    assert_cache_matches_tree(&cold, &tree);
    let keys = gw.keys();
    assert!(
        keys.contains(&format!("goproxy{}", artifact_path(LIB, "v1.0.0", "zip"))),
        "the zip is an object under the prefix: {keys:?}"
    );
    // Every committed version has its .zip, .mod and .ziphash beside its .info.
    for info in keys.iter().filter(|k| k.ends_with(".info")) {
        let stem = info.trim_end_matches(".info");
        for ext in ["mod", "zip", "ziphash"] {
            assert!(
                keys.contains(&format!("{stem}.{ext}")),
                "{info} without its .{ext}: {keys:?}"
            );
        }
    }
    assert!(
        !unused.path().join("example.com").exists(),
        "nothing on local disk"
    );

    // Warm: the upstream is not asked for any artifact again.
    let before = up.requests().len();
    let warm = GoEnv::new(&mg.url());
    assert_eq!(sums(&warm.download(&queries)), want, "warm through S3");
    let again: Vec<_> = up.requests()[before..]
        .iter()
        .filter(|r| r.ends_with(".zip") || r.ends_with(".mod") || r.ends_with(".info"))
        .cloned()
        .collect();
    assert!(again.is_empty(), "warm reads went upstream: {again:?}");

    // A restarted modgate with no upstream at all serves the graph from the bucket alone.
    let mut offline = setup.clone();
    offline.upstream = None;
    mg.restart_with(offline);
    let restarted = GoEnv::new(&mg.url());
    assert_eq!(
        sums(&restarted.download(&queries)),
        want,
        "from the bucket alone"
    );
    let listed = get(&mg, &format!("/{LIB}/@v/list"));
    assert_eq!(listed.status, 200);
    assert!(
        String::from_utf8_lossy(&listed.body).contains("v1.0.0"),
        "list from the bucket: {:?}",
        String::from_utf8_lossy(&listed.body)
    );
    // And the go command's own verification of the module cache is clean.
    let got = restarted.output(&["get", &format!("{LIB}@v1.1.0")]);
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    let verify = restarted.output(&["mod", "verify"]);
    assert!(
        verify.status.success()
            && String::from_utf8_lossy(&verify.stdout).contains("all modules verified"),
        "go mod verify: {} {}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn a_wrong_signature_is_refused_by_the_server_and_reported_in_one_line() {
    let Some(gw) = Versitygw::start() else { return };
    // The server checks signatures: a request signed with another secret is refused.
    let r = gw.signed("GET", &format!("/{BUCKET}/nothing"), "not-the-secret");
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));

    let up = FakeUpstream::start(standard_tree());
    let unused = tempfile::tempdir().expect("tempdir");
    let mut setup = Setup::new(unused.path(), Some(&up.url()));
    s3_storage(&mut setup, &gw, "not-the-secret");
    let mg = Modgate::start(setup);
    let r = get(&mg, &artifact_path(LIB, "v1.0.0", "info"));
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        r.status >= 500 && body.contains("storage local") && body.contains("403"),
        "{}: {body}",
        r.status
    );
    assert_eq!(body.matches('\n').count(), 1, "one line: {body:?}");
    assert!(gw.keys().is_empty(), "nothing stored: {:?}", gw.keys());
}

#[test]
fn download_redirect_sends_clients_to_the_bucket_after_auth() {
    let Some(gw) = Versitygw::start() else { return };
    let tree = standard_tree();
    let up = FakeUpstream::start(tree.clone());
    let unused = tempfile::tempdir().expect("tempdir");
    let mut setup = Setup::new(unused.path(), Some(&up.url()));
    // The bucket by another name than modgate's own address: the go command then sends its
    // credentials for modgate to modgate only, never along a redirect.
    s3_storage_at(
        &mut setup,
        &format!("http://localhost:{}", gw.addr.port()),
        SECRET_KEY,
    );
    setup.catch_all_extra = "download = \"redirect\"".into();
    let token = "redirect-test-token";
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(token.as_bytes()))
    };
    setup.extra_toml = format!(
        r#"
[plugins.tokens]
plugin = "auth-token"
config = {{ tokens = [ {{ name = "ci", sha256 = "{sha}", scopes = ["read"], modules = ["*"] }} ] }}

[[route]]
match = ["example.com/fixture/lib"]
storage = "local"
sources = SOURCES
auth = ["tokens"]
download = "redirect"
"#
    );
    let mg = Modgate::start(setup);

    // Auth comes first: no credentials, no redirect.
    let zip = artifact_path(LIB, "v1.0.0", "zip");
    let r = get(&mg, &zip);
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("location").is_none());
    // With them, a miss: a 302 to the upstream that has the version, while modgate fills the
    // bucket in the background.
    let authorized = || {
        raw_request(
            mg.addr(),
            &format!("GET {zip} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"),
        )
        .expect("request")
    };
    let r = authorized();
    assert_eq!(r.status, 302, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("location"),
        Some(format!("{}{zip}", up.url()).as_str())
    );
    // Once stored: a 302 to a presigned URL of the bucket.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let r = loop {
        let r = authorized();
        assert_eq!(r.status, 302, "{}", String::from_utf8_lossy(&r.body));
        if !r
            .header("location")
            .is_some_and(|l| l.starts_with(&up.url()))
        {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never filled: {}",
            mg.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let location = r.header("location").expect("location").to_string();
    assert!(
        location.starts_with(&format!("http://localhost:{}/{BUCKET}/", gw.addr.port()))
            && location.contains("X-Amz-Signature="),
        "{location}"
    );
    assert_eq!(
        r.header("cache-control"),
        Some("no-store"),
        "a presigned URL is not cached"
    );
    // HEAD is redirected to a URL signed for HEAD (a GET signature would not do).
    let h = raw_request(
        mg.addr(),
        &format!("HEAD {zip} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"),
    )
    .expect("HEAD");
    assert_eq!(h.status, 302);
    let head_location = h.header("location").expect("location").to_string();
    let head_path = &head_location[head_location.find(&format!("/{BUCKET}/")).expect("path")..];
    let probe = raw_request(
        gw.addr,
        &format!(
            "HEAD {head_path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
            gw.addr.port()
        ),
    )
    .expect("presigned HEAD");
    assert_eq!(probe.status, 200, "HEAD through the redirect");
    // The presigned URL serves the zip itself.
    let path = &location[location.find(&format!("/{BUCKET}/")).expect("path")..];
    let direct = raw_request(
        gw.addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
            gw.addr.port()
        ),
    )
    .expect("presigned GET");
    assert_eq!(
        direct.status,
        200,
        "{}",
        String::from_utf8_lossy(&direct.body)
    );
    assert_eq!(direct.body, tree.bytes(&zip), "the zip from the bucket");

    // The go command follows the redirects (the catch-all route: no auth) and gets what the
    // upstream serves; modgate sends no zip bytes itself.
    let go = GoEnv::new(&mg.url());
    let queries = vec![format!("{}@v2.0.0+incompatible", crate::fixtures::LEGACY)];
    let direct_go = GoEnv::new(&up.url());
    assert_eq!(
        sums(&go.download(&queries)),
        sums(&direct_go.download(&queries))
    );
    assert_cache_matches_tree(&go, &tree);
    let log = mg.logs();
    let legacy_zip = artifact_path(crate::fixtures::LEGACY, "v2.0.0+incompatible", "zip");
    assert!(
        log.lines()
            .any(|l| l.contains(&legacy_zip) && l.contains("\"status\":302")),
        "the zip request was redirected: {log}"
    );
}

#[test]
fn a_zip_larger_than_a_part_is_uploaded_in_parts() {
    let Some(gw) = Versitygw::start() else { return };
    // 12 MiB that do not compress: a zip of three 5 MiB parts (the smallest S3 allows).
    let mut noise = vec![0u8; 12 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    let big = "example.com/fixture/big";
    let tree = crate::fixtures::Tree::new().with(vec![crate::fixtures::ModuleVersion::new(
        big,
        "v1.0.0",
        Some(&format!("module {big}\n\ngo 1.21\n")),
        &[
            ("big.go", b"package big\n".as_slice()),
            ("noise.bin", noise.as_slice()),
        ],
    )]);
    let up = FakeUpstream::start(tree.clone());
    let unused = tempfile::tempdir().expect("tempdir");
    let mut setup = Setup::new(unused.path(), Some(&up.url()));
    s3_storage(&mut setup, &gw, SECRET_KEY);
    setup.local_storage = setup.local_storage.map(|t| {
        t.replace(
            "prefix = \"goproxy/\"",
            "prefix = \"goproxy/\", part_size_mb = 5",
        )
    });
    let mg = Modgate::start(setup);
    let go = GoEnv::new(&mg.url());
    let queries = vec![format!("{big}@v1.0.0")];
    let direct = GoEnv::new(&up.url());
    assert_eq!(
        sums(&go.download(&queries)),
        sums(&direct.download(&queries))
    );
    let zip = artifact_path(big, "v1.0.0", "zip");
    let keys = gw.keys();
    assert!(keys.contains(&format!("goproxy{zip}")), "{keys:?}");
    // Served back from the bucket by a fresh client, byte for byte.
    let again = GoEnv::new(&mg.url());
    again.download(&queries);
    assert_cache_matches_tree(&again, &tree);
    assert!(mg.logs().contains("stored module version"), "{}", mg.logs());
}
