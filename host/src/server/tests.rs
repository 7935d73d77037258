//! Server tests against a real listener on 127.0.0.1:0 with a stand-in handler.

#![expect(
    clippy::unwrap_used,
    reason = "tests: a panic is how a test reports failure"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;
use crate::config::TlsFile;
use crate::telemetry::Endpoint;

/// The test handler:
/// - `/slow`: `first;` now, `second` 400 ms later;
/// - `/forever`: one chunk, then never finishes;
/// - `/large`: [`LARGE_BODY`] bytes of zeros, produced as hyper asks for them;
/// - `/panic`: panics;
/// - anything else: `ok`, labelled endpoint `test`, with the protocol, the TLS flag and the TLS
///   client identity in headers.
struct TestHandler;

impl Handler for TestHandler {
    fn handle(
        &self,
        req: Request<Incoming>,
        conn: &ConnInfo,
    ) -> impl Future<Output = Response<ResponseBody>> + Send {
        let path = req.uri().path().to_owned();
        let version = format!("{:?}", req.version());
        let tls = conn.tls;
        let client = conn.client_identity.clone();
        async move {
            match path.as_str() {
                "/slow" => stream_response(vec![
                    (Duration::ZERO, "first;"),
                    (Duration::from_millis(400), "second"),
                ]),
                "/forever" => {
                    let chunks = futures_util::stream::once(async {
                        Ok::<_, io::Error>(Frame::data(Bytes::from_static(b"chunk")))
                    })
                    .chain(futures_util::stream::pending());
                    Response::new(StreamBody::new(chunks).boxed_unsync())
                }
                "/large" => {
                    let chunks = futures_util::stream::iter(0..LARGE_BODY / ZEROS.len())
                        .map(|_| Ok::<_, io::Error>(Frame::data(Bytes::from_static(&ZEROS))));
                    Response::new(StreamBody::new(chunks).boxed_unsync())
                }
                "/panic" => panic!("test handler panic"),
                _ => {
                    let mut resp = Response::new(full("ok"));
                    resp.headers_mut()
                        .insert("x-version", version.parse().unwrap());
                    resp.headers_mut()
                        .insert("x-tls", tls.to_string().parse().unwrap());
                    if let Some(client) = client {
                        resp.headers_mut()
                            .insert("x-client", client.parse().unwrap());
                    }
                    resp.extensions_mut().insert(Endpoint("test"));
                    resp
                }
            }
        }
    }
}

/// Far more than the kernel buffers on both ends of a loopback connection hold.
const LARGE_BODY: usize = 64 * 1024 * 1024;
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

fn full(s: &'static str) -> ResponseBody {
    Full::new(Bytes::from_static(s.as_bytes()))
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn stream_response(chunks: Vec<(Duration, &'static str)>) -> Response<ResponseBody> {
    let stream = futures_util::stream::iter(chunks).then(|(delay, text)| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, io::Error>(Frame::data(Bytes::from_static(text.as_bytes())))
    });
    Response::new(StreamBody::new(stream).boxed_unsync())
}

fn settings() -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        max_connections: 64,
        // More than one, so every test crosses from the accept loop to a worker thread.
        workers: 2,
        plugin_threads: 1,
        plugin_priority: crate::config::PluginPriority::Idle,
        plugin_cache: None,
        header_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(10),
        send_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(5),
        max_header_bytes: 16 * 1024,
        access_log: true,
    }
}

struct Running {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Triggers shutdown and waits for `serve` to return.
    async fn stop(mut self) -> Duration {
        let started = Instant::now();
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve did not return")
            .unwrap()
            .unwrap();
        started.elapsed()
    }
}

async fn start(settings: ServerConfig) -> Running {
    let metrics = Arc::new(Metrics::new());
    let server = Server::bind_with(&settings, Arc::new(TestHandler), Arc::clone(&metrics))
        .await
        .unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        metrics,
        stop: Some(stop),
        task,
    }
}

/// Sends `GET path` on `stream` and reads one response (head and `Content-Length` body).
async fn raw_get(stream: &mut TcpStream, path: &str) -> io::Result<String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    read_response(stream).await
}

async fn read_response(stream: &mut TcpStream) -> io::Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + length {
                return Ok(String::from_utf8_lossy(&buf).into_owned());
            }
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads until the server closes the connection; true if it did within `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut chunk = [0u8; 1024];
    let until = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn plain_http1_request_counts_in_metrics() {
    let server = start(settings()).await;
    let resp = reqwest::get(server.url("/hello")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tls"], "false");
    assert_eq!(resp.text().await.unwrap(), "ok");
    // The exchange is recorded when hyper drops the body, just after the last byte is sent.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let text = server.metrics.render();
    assert!(
        text.contains(r#"modgate_requests_total{endpoint="test",status="200"} 1"#),
        "{text}"
    );
    server.stop().await;
}

struct Pki {
    _dir: tempfile::TempDir,
    files: TlsFile,
    ca_pem: String,
}

fn pki() -> Pki {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    Pki {
        _dir: dir,
        files: TlsFile::new(cert, key),
        ca_pem: certified.cert.pem(),
    }
}

fn tls_client(pki: &Pki, addr: SocketAddr) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .resolve("localhost", addr)
}

#[tokio::test]
async fn tls_serves_http1_and_http2_chosen_by_alpn() {
    let pki = pki();
    let server = start(ServerConfig {
        tls: Some(pki.files.clone()),
        ..settings()
    })
    .await;
    let url = format!("https://localhost:{}/hello", server.addr.port());

    let h1 = tls_client(&pki, server.addr).http1_only().build().unwrap();
    let resp = h1.get(&url).send().await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_11);
    assert_eq!(resp.headers()["x-version"], "HTTP/1.1");
    assert_eq!(resp.headers()["x-tls"], "true");
    assert_eq!(resp.text().await.unwrap(), "ok");

    // No version forced: the client offers h2 and http/1.1 through ALPN and the server picks h2.
    let auto = tls_client(&pki, server.addr).build().unwrap();
    let resp = auto.get(&url).send().await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.headers()["x-version"], "HTTP/2.0");
    assert_eq!(resp.text().await.unwrap(), "ok");
    server.stop().await;
}

#[tokio::test]
async fn tls_errors_name_the_key_and_the_file() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.path().join("missing.pem");

    let err = |files: TlsFile| load_tls(&files).expect_err("should fail").to_string();
    assert_eq!(
        err(TlsFile {
            cert: empty.clone(),
            ..pki.files.clone()
        }),
        format!("server.tls.cert: {}: no certificate found", empty.display())
    );
    // A certificate where the key should be.
    assert_eq!(
        err(TlsFile {
            key: pki.files.cert.clone(),
            ..pki.files.clone()
        }),
        format!(
            "server.tls.key: {}: no private key found",
            pki.files.cert.display()
        )
    );
    let message = err(TlsFile {
        cert: missing.clone(),
        ..pki.files.clone()
    });
    assert!(
        message.starts_with(&format!(
            "server.tls.cert: {}: cannot read:",
            missing.display()
        )),
        "{message}"
    );
    // A key that does not belong to the certificate.
    let other = self::pki();
    let message = err(TlsFile {
        key: other.files.key.clone(),
        ..pki.files.clone()
    });
    assert!(message.starts_with("server.tls.key: "), "{message}");
}

/// A TLS handshake with `addr` trusting `roots`: the stream and the server's leaf certificate.
async fn handshake(
    addr: SocketAddr,
    roots: &[&Pki],
) -> (
    tokio_rustls::client::TlsStream<TcpStream>,
    rustls_pki_types::CertificateDer<'static>,
) {
    handshake_as(addr, roots, None).await.expect("a handshake")
}

/// A client certificate and its key (PEM).
type ClientCert = (String, String);

/// A TLS handshake with `addr` trusting `roots`, presenting `client` when given: the stream and
/// the server's leaf certificate, or the handshake's error.
async fn handshake_as(
    addr: SocketAddr,
    roots: &[&Pki],
    client: Option<&ClientCert>,
) -> io::Result<(
    tokio_rustls::client::TlsStream<TcpStream>,
    rustls_pki_types::CertificateDer<'static>,
)> {
    use rustls_pki_types::pem::PemObject as _;
    let mut store = rustls::RootCertStore::empty();
    for pki in roots {
        let der = rustls_pki_types::CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap();
        store.add(der).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![rustls_pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await?;
    // TLS 1.3: a refused client certificate shows at the first read, after the handshake.
    if get_hello(&mut stream).await?.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
    }
    let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    Ok((stream, leaf))
}

/// `GET /hello` on an open TLS stream: what the first read brings (the whole small response).
async fn get_hello(stream: &mut tokio_rustls::client::TlsStream<TcpStream>) -> io::Result<String> {
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut buf = vec![0; 4096];
    let n = stream.read(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// `GET /hello` on an open TLS stream: the status line.
async fn status_line(stream: &mut tokio_rustls::client::TlsStream<TcpStream>) -> String {
    let response = get_hello(stream).await.unwrap();
    response.lines().next().unwrap_or_default().to_string()
}

/// Renewed certificate files (an ACME client, certbot) are picked up while serving: new
/// handshakes get the new certificate, a connection opened before keeps working, and files
/// that cannot be used leave the certificate in use in place.
#[tokio::test]
async fn renewed_certificate_files_are_served_to_new_connections() {
    let first = pki();
    let second = pki();
    let files = TlsFile {
        watch: Duration::from_millis(50),
        ..first.files.clone()
    };
    let server = start(ServerConfig {
        tls: Some(files.clone()),
        ..settings()
    })
    .await;
    let pem = |path: &std::path::Path| std::fs::read(path).unwrap();
    let der = |pki: &Pki| {
        use rustls_pki_types::pem::PemObject as _;
        rustls_pki_types::CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap()
    };
    let (mut established, leaf) = handshake(server.addr, &[&first, &second]).await;
    assert_eq!(leaf, der(&first));
    assert_eq!(status_line(&mut established).await, "HTTP/1.1 200 OK");

    // Renewed: key first, then certificate, as a renewal writes them (between the two the
    // pair does not match, and the old certificate stays).
    std::fs::write(&files.key, pem(&second.files.key)).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        handshake(server.addr, &[&first, &second]).await.1,
        der(&first)
    );
    std::fs::write(&files.cert, pem(&second.files.cert)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while handshake(server.addr, &[&first, &second]).await.1 != der(&second) {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The connection opened before is undisturbed.
    assert_eq!(status_line(&mut established).await, "HTTP/1.1 200 OK");
    assert_eq!(
        established.get_ref().1.peer_certificates().unwrap()[0],
        der(&first)
    );

    // Broken files: the renewed certificate keeps serving.
    std::fs::write(&files.key, "not a key").unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        handshake(server.addr, &[&first, &second]).await.1,
        der(&second)
    );
    let refused = load_tls(&files).expect_err("a broken key").to_string();
    assert!(refused.starts_with("server.tls.key: "), "{refused}");
    server.stop().await;
}

/// Mutual TLS: a client certificate from the client CA gets through and its subject is the
/// connection's identity; none, an expired one, a revoked one (in the CRL) or one from another
/// CA fail the handshake; with `client_auth = "optional"` a client without one gets through
/// with no identity.
#[tokio::test]
async fn mutual_tls_verifies_client_certificates_against_the_ca_and_crl() {
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa,
        KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
    };
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "clients CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, &ca_key);
    let client = |name: &str, serial: u64, expired: bool| -> ClientCert {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Corp");
        params.serial_number = Some(SerialNumber::from(serial));
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let good = client("ci-7", 7, false);
    let expired = client("ci-8", 8, true);
    let revoked = client("ci-9", 9, false);
    let stranger = {
        let other = rcgen::generate_simple_self_signed(vec!["ci-7".to_owned()]).unwrap();
        (other.cert.pem(), other.signing_key.serialize_pem())
    };
    let crl = CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2026, 1, 1),
        next_update: rcgen::date_time_ymd(2036, 1, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(9u64),
            revocation_time: rcgen::date_time_ymd(2026, 1, 2),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .unwrap();
    let (ca_path, crl_path) = (
        dir.path().join("clients.pem"),
        dir.path().join("clients.crl"),
    );
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    std::fs::write(&crl_path, crl.pem().unwrap()).unwrap();

    let files = TlsFile {
        client_ca: Some(ca_path),
        client_crls: vec![crl_path],
        ..pki.files.clone()
    };
    let server = start(ServerConfig {
        tls: Some(files.clone()),
        ..settings()
    })
    .await;
    let (mut stream, _) = handshake_as(server.addr, &[&pki], Some(&good))
        .await
        .expect("a client certificate from the CA");
    let response = get_hello(&mut stream).await.unwrap().to_lowercase();
    assert!(response.contains("x-client: cn=ci-7, o=corp"), "{response}");
    for (what, cert) in [
        ("no certificate", None),
        ("an expired certificate", Some(&expired)),
        ("a revoked certificate", Some(&revoked)),
        ("a certificate from another CA", Some(&stranger)),
    ] {
        let refused = handshake_as(server.addr, &[&pki], cert).await;
        assert!(refused.is_err(), "{what} got through");
    }
    server.stop().await;

    // Optional: no certificate gets through (no identity); a bad one still does not.
    let server = start(ServerConfig {
        tls: Some(TlsFile {
            client_auth: crate::config::ClientAuth::Optional,
            ..files
        }),
        ..settings()
    })
    .await;
    let (mut anonymous, _) = handshake_as(server.addr, &[&pki], None)
        .await
        .expect("no certificate, optional");
    let response = get_hello(&mut anonymous).await.unwrap().to_lowercase();
    assert!(
        response.starts_with("http/1.1 200") && !response.contains("x-client"),
        "{response}"
    );
    assert!(
        handshake_as(server.addr, &[&pki], Some(&revoked))
            .await
            .is_err()
    );
    server.stop().await;
}

/// The leaf certificate the server at `addr` presents for `name` (SNI), trusting `roots`
/// (PEM); the handshake's error when the certificate does not verify for that name.
async fn leaf_for(
    addr: SocketAddr,
    roots: &[&str],
    name: &str,
) -> io::Result<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject as _;
    let mut store = rustls::RootCertStore::empty();
    for pem in roots {
        store
            .add(rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
            .unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let stream = connector
        .connect(name, TcpStream::connect(addr).await?)
        .await?;
    Ok(stream.get_ref().1.peer_certificates().unwrap()[0].clone())
}

/// `[[server.tls.certificates]]`: the certificate whose DNS names (exact, then wildcard) cover
/// the name the client asks for; the default one for every other name and for none.
#[tokio::test]
async fn sni_chooses_the_certificate_by_the_name_asked_for() {
    use rustls_pki_types::pem::PemObject as _;
    let main = pki();
    let dir = tempfile::tempdir().unwrap();
    let pair = |file: &str, names: &[&str]| {
        let made = rcgen::generate_simple_self_signed(
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let (cert, key) = (
            dir.path().join(format!("{file}.pem")),
            dir.path().join(format!("{file}-key.pem")),
        );
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        (crate::config::CertPair { cert, key }, made.cert.pem())
    };
    let (other, other_pem) = pair("other", &["other.test", "Alias.Test"]);
    let (wild, wild_pem) = pair("wild", &["*.wild.test"]);
    let server = start(ServerConfig {
        tls: Some(TlsFile {
            certificates: vec![other, wild],
            ..main.files.clone()
        }),
        ..settings()
    })
    .await;
    let der = |pem: &str| rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let roots = [main.ca_pem.as_str(), other_pem.as_str(), wild_pem.as_str()];
    for (name, want) in [
        ("other.test", &other_pem),
        ("alias.test", &other_pem),
        ("a.wild.test", &wild_pem),
        ("localhost", &main.ca_pem),
    ] {
        let got = leaf_for(server.addr, &roots, name).await.unwrap();
        assert_eq!(got, der(want), "{name}");
    }
    // A wildcard covers one label only: two labels get the default certificate, which does
    // not verify for that name.
    assert!(
        leaf_for(server.addr, &roots, "a.b.wild.test")
            .await
            .is_err()
    );
    server.stop().await;

    // A certificate that names no DNS name cannot be chosen by one: a config error.
    let (nameless, _) = pair("nameless", &["192.0.2.1"]);
    let refused = load_tls(&TlsFile {
        certificates: vec![nameless.clone()],
        ..main.files.clone()
    })
    .expect_err("no DNS name");
    assert_eq!(
        refused.to_string(),
        format!(
            "server.tls.certificates: {}: the certificate names no DNS name (subjectAltName) to choose it by",
            nameless.cert.display()
        )
    );
}

#[tokio::test]
async fn failed_tls_handshakes_do_not_stop_the_server() {
    let pki = pki();
    let server = start(ServerConfig {
        tls: Some(pki.files.clone()),
        header_timeout: Duration::from_millis(300),
        ..settings()
    })
    .await;
    // Garbage instead of a ClientHello.
    let mut garbage = TcpStream::connect(server.addr).await.unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut garbage, Duration::from_secs(2)).await);
    // Connects and never says anything: closed by the handshake deadline.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(2)).await);
    // A client that does not trust the certificate.
    let untrusting = reqwest::Client::builder()
        .resolve("localhost", server.addr)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/hello", server.addr.port());
    assert!(untrusting.get(&url).send().await.is_err());

    let good = tls_client(&pki, server.addr).build().unwrap();
    assert_eq!(good.get(&url).send().await.unwrap().status(), 200);
    assert!(
        server
            .metrics
            .render()
            .contains("modgate_tls_handshake_failures_total 3")
    );
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_response_finish() {
    let server = start(settings()).await;
    let client = reqwest::Client::new();
    let resp = client.get(server.url("/slow")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let addr = server.addr;

    // Headers are in, the body is mid-way: shut down now.
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener should be closed once shutdown starts"
    );
    assert_eq!(resp.text().await.unwrap(), "first;second");
    let took = stopping.await.unwrap();
    assert!(took < Duration::from_secs(3), "drain took {took:?}");
}

#[tokio::test]
async fn shutdown_grace_bounds_the_drain() {
    let server = start(ServerConfig {
        shutdown_grace: Duration::from_millis(300),
        ..settings()
    })
    .await;
    let mut resp = reqwest::get(server.url("/forever")).await.unwrap();
    assert_eq!(resp.chunk().await.unwrap().unwrap(), "chunk");
    let took = server.stop().await;
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // The unfinished response is cut off, not completed.
    assert!(resp.chunk().await.is_err());
}

#[tokio::test]
async fn idle_keep_alive_connections_close_on_shutdown() {
    let server = start(settings()).await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    assert!(raw_get(&mut conn, "/hello").await.unwrap().ends_with("ok"));
    let took = server.stop().await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(closed_within(&mut conn, Duration::from_secs(1)).await);
}

#[tokio::test]
async fn connection_limit_makes_extra_connections_wait() {
    let server = start(ServerConfig {
        max_connections: 1,
        ..settings()
    })
    .await;
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    assert!(raw_get(&mut first, "/hello").await.unwrap().ends_with("ok"));

    // The kernel completes the second connect, but the server does not accept it yet.
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    second
        .write_all(b"GET /hello HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(400), read_response(&mut second)).await;
    assert!(
        waited.is_err(),
        "second connection was served while the first held the only slot"
    );

    drop(first);
    let resp = tokio::time::timeout(Duration::from_secs(3), read_response(&mut second))
        .await
        .expect("second connection still waiting after the first closed")
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    server.stop().await;
}

#[tokio::test]
async fn oversized_headers_get_431_never_5xx() {
    let server = start(ServerConfig {
        max_header_bytes: 8 * 1024,
        ..settings()
    })
    .await;
    // Under the limit: served.
    let mut ok = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET /hello HTTP/1.1\r\nHost: test\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(4000)
    );
    ok.write_all(request.as_bytes()).await.unwrap();
    assert!(
        read_response(&mut ok)
            .await
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );

    for size in [9 * 1024, 64 * 1024, 1024 * 1024] {
        let mut big = TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "GET /hello HTTP/1.1\r\nHost: test\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(size)
        );
        // The server may stop reading (and reset) before the whole request is written.
        let _ = big.write_all(request.as_bytes()).await;
        let answer = tokio::time::timeout(Duration::from_secs(3), read_response(&mut big))
            .await
            .expect("oversized request hung");
        // Closed or reset is acceptable too: the limit held.
        if let Ok(resp) = answer {
            assert!(resp.starts_with("HTTP/1.1 431"), "{size}: {resp}");
        }
    }
    // Still serving.
    assert_eq!(
        reqwest::get(server.url("/hello")).await.unwrap().status(),
        200
    );
    server.stop().await;
}

#[tokio::test]
async fn header_limits_below_hypers_minimum_do_not_panic() {
    let server = start(ServerConfig {
        max_header_bytes: 100,
        ..settings()
    })
    .await;
    assert_eq!(
        reqwest::get(server.url("/hello")).await.unwrap().status(),
        200
    );
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_after_the_send_timeout() {
    let server = start(ServerConfig {
        max_connections: 1,
        send_timeout: Duration::from_secs(1),
        ..settings()
    })
    .await;
    let started = Instant::now();
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(b"GET /large HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    // Never reads. The second client waits in the accept queue until the stalled connection's
    // slot is freed.
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), raw_get(&mut second, "/hello"))
        .await
        .expect("second client not served: the stalled connection kept its slot")
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    // The stalled connection was cut off: what the kernel buffered, then the end, far short of
    // the whole body.
    let mut received = 0;
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), stalled.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => received += n,
            Err(_) => panic!("stalled connection still open after {received} bytes"),
        }
    }
    assert!(received < LARGE_BODY / 2, "{received}");
    // Still healthy (once `second` gives the only slot back), and nothing left to drain.
    drop(second);
    assert_eq!(
        reqwest::get(server.url("/hello")).await.unwrap().status(),
        200
    );
    let took = server.stop().await;
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[tokio::test]
async fn the_send_timeout_leaves_idle_connections_alone() {
    let server = start(ServerConfig {
        send_timeout: Duration::from_millis(200),
        ..settings()
    })
    .await;
    // Nothing to send while idle, so no clock runs; the idle timeout (10 s) is the one that
    // applies.
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    assert!(raw_get(&mut conn, "/hello").await.unwrap().ends_with("ok"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(raw_get(&mut conn, "/hello").await.unwrap().ends_with("ok"));
    server.stop().await;
}

#[tokio::test]
async fn the_send_timeout_covers_tls_connections() {
    let pki = pki();
    let server = start(ServerConfig {
        tls: Some(pki.files.clone()),
        max_connections: 1,
        send_timeout: Duration::from_secs(1),
        ..settings()
    })
    .await;
    let url = |path: &str| format!("https://localhost:{}{path}", server.addr.port());
    // hyper's HTTP/1.1 client reads the body only as it is consumed: holding the response
    // unread stalls the connection.
    let stalled = tls_client(&pki, server.addr).http1_only().build().unwrap();
    let resp = stalled.get(url("/large")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let second = tls_client(&pki, server.addr)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    let served = second.get(url("/hello")).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(
        resp.bytes().await.is_err(),
        "the stalled body should be cut off"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
    let server = start(ServerConfig {
        send_timeout: Duration::from_secs(1),
        ..settings()
    })
    .await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(b"GET /large HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    // A bite every 200 ms for 2.4 s, more than twice the send timeout. The send timeout watches
    // the server's socket, which accepts more only once half its buffer (autotuned up to
    // `tcp_wmem`'s maximum, 4 MiB by default) has drained, so a bite must be big enough for that
    // to happen well within the timeout: 2 MiB bites leave the socket blocked ~200 ms at a time.
    let mut chunk = vec![0u8; SLOW_READ];
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        conn.read_exact(&mut chunk).await.unwrap();
    }
    // Then the rest at full speed: a connection cut off meanwhile ends before the last chunk
    // (the kernel still delivers what it had buffered).
    let mut tail = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    let complete = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = conn.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return false;
            }
            tail.extend_from_slice(&chunk[..n]);
            tail.drain(..tail.len().saturating_sub(7));
            if tail == b"\r\n0\r\n\r\n" {
                return true;
            }
        }
    })
    .await
    .expect("the rest of the body did not arrive");
    assert!(complete, "the slow reader was cut off");
    server.stop().await;
}

/// How much the slow reader takes per bite.
const SLOW_READ: usize = 2 * 1024 * 1024;

#[tokio::test]
async fn accepted_sockets_inherit_keepalive() {
    let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let _client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    // tokio's TcpSocket is the safe way to read the option back.
    let accepted = tokio::net::TcpSocket::from_std_stream(accepted.into_std().unwrap());
    assert!(accepted.keepalive().unwrap());
}

/// Writes `GET / HTTP/1.1\r\n` and then a header byte every 50 ms, forever.
fn trickle(stream: TcpStream) -> (tokio::net::tcp::OwnedReadHalf, JoinHandle<()>) {
    let (read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        if write.write_all(b"GET / HTTP/1.1\r\n").await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if write.write_all(b"X").await.is_err() {
                return;
            }
        }
    });
    (read, writer)
}

async fn read_until_closed(read: &mut tokio::net::tcp::OwnedReadHalf, limit: Duration) -> bool {
    let mut chunk = [0u8; 1024];
    let until = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(until, read.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn slowloris_is_closed_after_the_header_timeout() {
    let server = start(ServerConfig {
        header_timeout: Duration::from_millis(300),
        ..settings()
    })
    .await;
    let started = Instant::now();
    let (mut read, writer) = trickle(TcpStream::connect(server.addr).await.unwrap());
    assert!(read_until_closed(&mut read, Duration::from_secs(3)).await);
    let took = started.elapsed();
    writer.abort();
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    server.stop().await;
}

#[tokio::test]
async fn keep_alive_waits_idle_timeout_but_next_headers_get_header_timeout() {
    let server = start(ServerConfig {
        header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(1200),
        ..settings()
    })
    .await;
    // Idle longer than header_timeout between requests: still open.
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    assert!(raw_get(&mut conn, "/hello").await.unwrap().ends_with("ok"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(raw_get(&mut conn, "/hello").await.unwrap().ends_with("ok"));

    // Then starting a request head and trickling it: closed after header_timeout, well before
    // idle_timeout.
    let started = Instant::now();
    let (mut read, writer) = trickle(conn);
    assert!(read_until_closed(&mut read, Duration::from_secs(3)).await);
    let took = started.elapsed();
    writer.abort();
    assert!(took < Duration::from_millis(1000), "{took:?}");

    // A quiet keep-alive connection is closed after idle_timeout.
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    assert!(raw_get(&mut conn, "/hello").await.unwrap().ends_with("ok"));
    let started = Instant::now();
    assert!(closed_within(&mut conn, Duration::from_secs(4)).await);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    server.stop().await;
}

#[tokio::test]
async fn long_downloads_are_not_idle() {
    let server = start(ServerConfig {
        header_timeout: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(150),
        ..settings()
    })
    .await;
    // The body takes 400 ms, longer than both timeouts.
    let body = reqwest::get(server.url("/slow"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "first;second");
    server.stop().await;
}

#[tokio::test]
async fn http2_connections_close_when_idle_but_not_while_streaming() {
    let pki = pki();
    let server = start(ServerConfig {
        tls: Some(pki.files.clone()),
        idle_timeout: Duration::from_millis(150),
        ..settings()
    })
    .await;
    let client = tls_client(&pki, server.addr).build().unwrap();
    let url = |path: &str| format!("https://localhost:{}{path}", server.addr.port());
    // Streams for 400 ms, longer than the idle timeout.
    let resp = client.get(url("/slow")).send().await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.text().await.unwrap(), "first;second");
    assert!(
        server
            .metrics
            .render()
            .contains("modgate_connections_open 1")
    );
    // Then quiet: the server says GOAWAY and the connection goes away.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let metrics = server.metrics.render();
    assert!(metrics.contains("modgate_connections_open 0"), "{metrics}");
    // The client reconnects transparently.
    assert_eq!(
        client.get(url("/hello")).send().await.unwrap().status(),
        200
    );
    server.stop().await;
}

#[tokio::test]
async fn handler_panic_is_a_500_and_the_server_carries_on() {
    let server = start(settings()).await;
    let client = reqwest::Client::new();
    let resp = client.get(server.url("/panic")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let resp = client.get(server.url("/hello")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    server.stop().await;
}

/// Every log line written while the process runs, once [`capture_logs`] was called.
static CAPTURED: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// Log output, appended to [`CAPTURED`] (one `write` per formatted line).
struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts capturing log lines in the production format.
///
/// A global subscriber rather than `set_default`: requests are served on the server's worker
/// threads, and tracing caches per-callsite interest across threads. Tests run in parallel,
/// so a test picks its own lines out (e.g. by a user agent no other test sends).
fn capture_logs() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::new("info");
        let subscriber = crate::telemetry::json_subscriber(filter, || Capture);
        tracing::subscriber::set_global_default(subscriber)
            .expect("another test installed a global subscriber");
    });
}

fn captured_logs() -> String {
    String::from_utf8(CAPTURED.lock().unwrap().clone()).unwrap()
}

#[tokio::test]
async fn access_log_is_one_json_line_per_request() {
    capture_logs();
    let server = start(settings()).await;
    let resp = reqwest::Client::new()
        .get(server.url("/hello"))
        .header("user-agent", "access-log-test/1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "ok");
    server.stop().await;

    let out = captured_logs();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| {
            v["target"] == "modgate::access" && v["user_agent"] == "access-log-test/1"
        })
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    let line = &lines[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/hello");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes"], 2);
    assert_eq!(line["protocol"], "HTTP/1.1");
    assert_eq!(line["user_agent"], "access-log-test/1");
    assert_eq!(line["endpoint"], "test");
    assert_eq!(line["aborted"], false);
    assert_eq!(line["tls"], false);
    assert!(line["duration_ms"].is_number());
    assert!(line["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
}
