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

    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "modgate test server");
    let cert = params
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("sign server cert");

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
