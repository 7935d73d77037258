//! `[server.tls.acme]` against pebble, Let's Encrypt's ACME test server
//! (`go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3`), which validates
//! challenges for real: it connects back to modgate for tls-alpn-01 (a TLS handshake with ALPN
//! `acme-tls/1`) and http-01 (`/.well-known/acme-challenge/TOKEN`). The go command then downloads
//! through `https://localhost:PORT` trusting only pebble's root. Certificates live 70 s and are
//! renewed 62 s before they expire, so a renewal comes ~8 s after each issuance; then pebble is
//! stopped and the certificate in use keeps serving while a warning and a metric say the
//! renewal failed.
//!
//! Without pebble (on `PATH` or in `$(go env GOPATH)/bin`) the tests say how to install it and
//! skip; under `CI=1` they fail instead (`.ci/run` installs it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::fixtures::{LIB, UPPER, standard_tree};
use crate::go_client::sums;
use crate::harness::{GoEnv, Modgate, Setup, free_port, in_own_session, installed_tool, metric_in};
use crate::upstream::FakeUpstream;

/// Seconds a certificate from the test pebble is valid, and how early modgate renews it.
const VALIDITY_S: u64 = 70;
const RENEW_BEFORE_S: u64 = 62;

/// Where a pebble will listen, with its own HTTPS certificate (from a test CA): chosen before
/// modgate starts, so that modgate's config can name the directory, and pebble, started
/// after, modgate's port.
struct Plan {
    dir: PathBuf,
    port: u16,
    management: u16,
    /// The CA of pebble's own HTTPS (what `server.tls.acme.ca` names), its certificate and key.
    https_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A running pebble, stopped on drop.
struct Pebble {
    child: Child,
    management: SocketAddr,
    https_ca: PathBuf,
}

impl Plan {
    /// `None` (after saying why) when pebble is not installed and this is not CI.
    fn new(dir: &Path) -> Option<Self> {
        if installed_tool("pebble").is_none() {
            let how = "pebble is not installed: go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3";
            assert!(std::env::var_os("CI").is_none(), "{how}");
            eprintln!("skipped: {how}");
            return None;
        }
        let (https_ca, cert, key) = crate::tls::test_pki(dir);
        Some(Self {
            dir: dir.to_path_buf(),
            port: free_port(),
            management: free_port(),
            https_ca,
            cert,
            key,
        })
    }

    /// The `[server.tls.acme]` body for `challenge`, keeping the account and certificate in
    /// `dir/acme`; the certificate is looked at every second.
    fn acme_toml(&self, challenge: &str, http_listen: Option<u16>) -> String {
        let q = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
        let mut s = format!(
            "domains = [\"localhost\"]\ndirectory = \"https://127.0.0.1:{}/dir\"\nca = {}\n\
             dir = {}\ncontact = [\"mailto:ops@corp.example\"]\nchallenge = \"{challenge}\"\n\
             renew_before = \"{RENEW_BEFORE_S}s\"\ncheck_every = \"1s\"\n",
            self.port,
            q(&self.https_ca),
            q(&self.dir.join("acme")),
        );
        if let Some(port) = http_listen {
            s += &format!("http_listen = \"127.0.0.1:{port}\"\n");
        }
        s
    }

    /// Starts pebble validating tls-alpn-01 on `tls_port` and http-01 on `http_port`.
    fn start(&self, tls_port: u16, http_port: u16) -> Pebble {
        let bin = installed_tool("pebble").expect("pebble");
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{}", self.port),
            "managementListenAddress": format!("127.0.0.1:{}", self.management),
            "certificate": self.cert, "privateKey": self.key,
            "httpPort": http_port, "tlsPort": tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": false,
            "retryAfter": {"authz": 1, "order": 1},
            "profiles": {"default": {"description": "short-lived", "validityPeriod": VALIDITY_S}},
        }});
        let config_path = self.dir.join("pebble.json");
        std::fs::write(&config_path, config.to_string()).expect("write pebble config");
        // Its log (the connection probes below show there as handshake errors).
        let log = std::fs::File::create(self.dir.join("pebble.log")).expect("log");
        let child = in_own_session(bin)
            .arg("-config")
            .arg(&config_path)
            // Validate at once; never refuse a good nonce (pebble does by default, to test
            // clients' retries); reuse no authorization (every order is validated again).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start pebble");
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().expect("addr");
        crate::harness::wait_for_port(addr, "pebble");
        let management = format!("127.0.0.1:{}", self.management)
            .parse()
            .expect("addr");
        crate::harness::wait_for_port(management, "pebble management");
        Pebble {
            child,
            management,
            https_ca: self.https_ca.clone(),
        }
    }
}

impl Pebble {
    /// The root pebble issues certificates under (random per run), as PEM in `dir`.
    fn root(&self, dir: &Path) -> PathBuf {
        let pem = https_get(self.management, "127.0.0.1", &self.https_ca, "/roots/0");
        let path = dir.join("pebble-root.pem");
        std::fs::write(&path, pem).expect("write root");
        path
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TLS connection to `addr` for `name`, verified against the CA in `root` only.
fn connect(
    addr: SocketAddr,
    name: &str,
    root: &Path,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_file(root).expect("root PEM"))
        .expect("root");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(name.to_owned()).expect("name");
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("conn");
    let mut sock = std::net::TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .expect("a handshake verified against the given root");
    }
    rustls::StreamOwned::new(conn, sock)
}

/// The body of `GET path` over HTTPS (HTTP/1.1, the connection closed after).
fn https_get(addr: SocketAddr, name: &str, root: &Path, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut tls = connect(addr, name, root);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = Vec::new();
    // A peer that closes without close_notify still sent the whole answer.
    let _ = tls.read_to_end(&mut response);
    let text = String::from_utf8(response).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_owned();
    }
    let (mut rest, mut out) = (body, String::new());
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}

/// The leaf certificate `localhost:port` serves, verified against `root` only.
fn served_leaf(port: u16, root: &Path) -> Vec<u8> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let tls = connect(addr, "localhost", root);
    tls.conn.peer_certificates().expect("a certificate")[0].to_vec()
}

/// `GET /metrics` over the ACME certificate.
fn metrics(port: u16, root: &Path) -> String {
    https_get(
        SocketAddr::from(([127, 0, 0, 1], port)),
        "localhost",
        root,
        "/metrics",
    )
}

/// How many times `needle` is in modgate's logs so far.
fn log_count(mg: &Modgate, needle: &str) -> usize {
    ["stdout", "stderr"]
        .iter()
        .map(|s| std::fs::read_to_string(mg.log_path(s)).unwrap_or_default())
        .map(|t| t.matches(needle).count())
        .sum()
}

const ISSUED: &str = "ACME: new certificate in use";
const FAILED: &str = "ACME: could not obtain a certificate; still serving the current one";

/// tls-alpn-01: the first certificate, a renewal without restart, then a CA outage at renewal
/// time that leaves the certificate in use serving.
#[test]
fn acme_tls_alpn_obtains_renews_and_survives_a_ca_outage() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(plan) = Plan::new(tmp.path()) else {
        return;
    };
    let up = FakeUpstream::start(standard_tree());
    // modgate first (pebble must know its port): it tries the CA every second until pebble is
    // up, serving a self-signed placeholder meanwhile.
    let mut setup = Setup::new(&tmp.path().join("data"), Some(&up.url()));
    setup.acme = Some(plan.acme_toml("tls-alpn-01", None));
    let mg = Modgate::start(setup);
    let pebble = plan.start(mg.port, free_port());
    mg.wait_for_log(ISSUED, 1, Duration::from_secs(60));

    let root = pebble.root(tmp.path());
    let first = served_leaf(mg.port, &root);
    let url = format!("https://localhost:{}", mg.port);
    let via = GoEnv::new(&url).env("SSL_CERT_FILE", root.to_str().expect("utf-8"));
    let direct = GoEnv::new(&up.url());
    let q = vec![format!("{LIB}@v1.1.0")];
    assert_eq!(sums(&via.download(&q)), sums(&direct.download(&q)));

    // Renewal before expiry, without a restart: new handshakes get a new certificate.
    mg.wait_for_log(ISSUED, 2, Duration::from_secs(60));
    let second = served_leaf(mg.port, &root);
    assert_ne!(first, second, "the renewed certificate is served");

    // The CA goes away at the next renewal: the certificate in use stays, a warning and the
    // metric say so, and clients are served.
    let before = metrics(mg.port, &root);
    let failed_before = log_count(&mg, FAILED);
    drop(pebble);
    mg.wait_for_log(FAILED, failed_before + 1, Duration::from_secs(60));
    assert_eq!(served_leaf(mg.port, &root), second);
    let q = vec![format!("{UPPER}@v1.0.0")];
    assert_eq!(sums(&via.download(&q)), sums(&direct.download(&q)));
    let after = metrics(mg.port, &root);
    let failed = "modgate_acme_orders_total{outcome=\"failed\"}";
    assert!(
        metric_in(&after, failed) > metric_in(&before, failed),
        "{after}"
    );
    assert!(
        metric_in(&after, "modgate_acme_orders_total{outcome=\"ok\"}") >= 2.0,
        "{after}"
    );
    assert!(
        metric_in(&after, "modgate_acme_certificate_not_after ") > 1.7e9,
        "{after}"
    );

    // The account and the certificate are kept for the next start, readable by modgate only.
    for f in ["account.json", "certificate.pem"] {
        let meta = std::fs::metadata(tmp.path().join("acme").join(f)).expect(f);
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o600,
            "{f}"
        );
    }
}

/// http-01: pebble fetches the key authorization from the plain-HTTP listener; every other
/// request there is redirected to https.
#[test]
fn acme_http01_obtains_a_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(plan) = Plan::new(tmp.path()) else {
        return;
    };
    let up = FakeUpstream::start(standard_tree());
    let http_port = free_port();
    let mut setup = Setup::new(&tmp.path().join("data"), Some(&up.url()));
    setup.acme = Some(plan.acme_toml("http-01", Some(http_port)));
    let mg = Modgate::start(setup);
    let pebble = plan.start(free_port(), http_port);
    mg.wait_for_log(ISSUED, 1, Duration::from_secs(60));

    let root = pebble.root(tmp.path());
    let via = GoEnv::new(&format!("https://localhost:{}", mg.port))
        .env("SSL_CERT_FILE", root.to_str().expect("utf-8"));
    let q = vec![format!("{LIB}@v1.0.0")];
    assert_eq!(
        sums(&via.download(&q)),
        sums(&GoEnv::new(&up.url()).download(&q))
    );

    let plain = |path: &str| {
        crate::harness::raw_request(
            format!("127.0.0.1:{http_port}").parse().expect("addr"),
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
        )
        .expect("plain HTTP")
    };
    let redirected = plain("/example.com/m/@v/list");
    assert_eq!(redirected.status, 308);
    assert_eq!(
        redirected.header("location"),
        Some("https://localhost/example.com/m/@v/list")
    );
    assert_eq!(plain("/.well-known/acme-challenge/nope").status, 404);
}
