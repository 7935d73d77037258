//! HTTPS with rustls: the go command trusts a test CA through `SSL_CERT_FILE` and downloads
//! through `https://127.0.0.1:PORT`.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

use crate::fixtures::{LIB, UPPER, standard_tree};
use crate::go_client::{assert_same_cache, sums};
use crate::harness::{GoEnv, Modgate, Setup};
use crate::upstream::FakeUpstream;

/// A CA and a server certificate for `127.0.0.1`/`localhost`, as PEM files in `dir`:
/// (ca.pem, cert.pem, key.pem).
pub(crate) fn test_pki(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "modgate test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("self-sign CA");
    let issuer = rcgen::Issuer::new(ca, &ca_key);

    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "modgate test server");
    let cert = params.signed_by(&key, &issuer).expect("sign server cert");

    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).expect("write ca.pem");
    std::fs::write(&paths.1, cert.pem()).expect("write cert.pem");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write key.pem");
    paths
}

#[test]
fn go_downloads_over_https() {
    let up = FakeUpstream::start(standard_tree());
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = test_pki(tmp.path());
    let mut setup = Setup::new(&tmp.path().join("data"), Some(&up.url()));
    setup.tls = Some((cert, key));
    let mg = Modgate::start(setup);
    assert!(mg.url().starts_with("https://"));

    let q = vec![format!("{LIB}@v1.1.0"), format!("{UPPER}@v1.0.0")];
    let direct = GoEnv::new(&up.url());
    let via = GoEnv::new(&mg.url()).env("SSL_CERT_FILE", ca.to_str().expect("utf-8"));
    assert_eq!(sums(&via.download(&q)), sums(&direct.download(&q)));
    assert_same_cache(&via, &direct);

    // Without the CA the go command refuses the certificate.
    let untrusting = GoEnv::new(&mg.url());
    let out = untrusting.output(&["mod", "download", "-json", &format!("{LIB}@v1.0.0")]);
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("certificate"),
        "an untrusted certificate was accepted: {said}"
    );
}

/// HTTP/2 is offered through ALPN next to HTTP/1.1.
#[tokio::test(flavor = "multi_thread")]
async fn https_negotiates_http2() {
    let up = FakeUpstream::start(standard_tree());
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = test_pki(tmp.path());
    let mut setup = Setup::new(&tmp.path().join("data"), Some(&up.url()));
    setup.tls = Some((cert, key));
    let mg = tokio::task::block_in_place(|| Modgate::start(setup));
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).expect("read ca")).expect("CA pem");
    for (http1, want) in [
        (false, reqwest::Version::HTTP_2),
        (true, reqwest::Version::HTTP_11),
    ] {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(ca.clone());
        if http1 {
            b = b.http1_only();
        }
        let r = b
            .build()
            .expect("client")
            .get(format!("{}/healthz", mg.url()))
            .send()
            .await
            .expect("GET /healthz over TLS");
        assert_eq!(r.status(), 200);
        assert_eq!(r.version(), want);
    }
}

/// The server's leaf certificate, from a TLS handshake with `addr` trusting the CAs in `roots`.
fn served_certificate(addr: std::net::SocketAddr, roots: &[&std::path::Path]) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject as _;
    let mut store = rustls::RootCertStore::empty();
    for ca in roots {
        let der = rustls_pki_types::CertificateDer::from_pem_file(ca).expect("CA PEM");
        store.add(der).expect("CA");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(store)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("conn");
    let mut sock = std::net::TcpStream::connect(addr).expect("connect");
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).expect("handshake");
    }
    conn.peer_certificates().expect("a certificate")[0].to_vec()
}

/// A reload (SIGHUP) reads the certificate files again, without a restart: new connections
/// get the renewed certificate; files that cannot be used refuse the reload and the
/// certificate in use stays.
#[test]
fn a_reload_serves_the_renewed_certificate() {
    use rustls_pki_types::pem::PemObject as _;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    std::fs::create_dir_all(&one).expect("mkdir");
    std::fs::create_dir_all(&two).expect("mkdir");
    let (ca1, cert1, key1) = test_pki(&one);
    let (ca2, cert2, key2) = test_pki(&two);
    let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::copy(&cert1, &cert).expect("copy");
    std::fs::copy(&key1, &key).expect("copy");
    let mut setup = Setup::new(&tmp.path().join("data"), None);
    setup.tls = Some((cert.clone(), key.clone()));
    // Only reloads look at the files here (the watch has its own test in server::tests).
    setup
        .env
        .push(("MODGATE_SERVER__TLS__WATCH".into(), "0s".into()));
    let mg = Modgate::start(setup);
    let der = |path: &std::path::Path| {
        rustls_pki_types::CertificateDer::from_pem_file(path)
            .expect("PEM")
            .to_vec()
    };
    let roots = [ca1.as_path(), ca2.as_path()];
    assert_eq!(served_certificate(mg.addr(), &roots), der(&cert1));

    std::fs::copy(&key2, &key).expect("copy");
    std::fs::copy(&cert2, &cert).expect("copy");
    assert_eq!(
        served_certificate(mg.addr(), &roots),
        der(&cert1),
        "picked up without a reload, though watching is off"
    );
    mg.signal("HUP");
    mg.wait_for_log(
        "configuration reloaded",
        1,
        std::time::Duration::from_secs(10),
    );
    assert_eq!(served_certificate(mg.addr(), &roots), der(&cert2));

    std::fs::write(&key, "not a key").expect("write");
    mg.signal("HUP");
    mg.wait_for_log("reload refused", 1, std::time::Duration::from_secs(10));
    let logs = mg.logs();
    assert!(logs.contains("server.tls.key"), "{logs}");
    assert_eq!(served_certificate(mg.addr(), &roots), der(&cert2));
}

/// A certificate that ends within two weeks is served, with a warning at start to renew it.
#[test]
fn a_certificate_about_to_expire_is_reported_at_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    let in_three_days = now + std::time::Duration::from_secs(3 * 24 * 3600);
    params.not_before =
        rcgen::date_time_ymd(1970, 1, 1) + (now - std::time::Duration::from_secs(3600));
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + in_three_days;
    let cert = params.self_signed(&key).expect("self-signed");
    let (cert_path, key_path) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("write");
    std::fs::write(&key_path, key.serialize_pem()).expect("write");
    let mut setup = Setup::new(&tmp.path().join("data"), None);
    setup.tls = Some((cert_path, key_path));
    let mg = Modgate::start(setup);
    mg.wait_for_log("expires soon", 1, std::time::Duration::from_secs(10));
    let logs = mg.logs();
    assert!(
        logs.contains("\"days_left\":2") || logs.contains("\"days_left\":3"),
        "{logs}"
    );
}
