//! ACME (RFC 8555): the server's certificate obtained and renewed from a CA such as Let's
//! Encrypt, configured by `[server.tls.acme]`.
//!
//! One task per server ([`maintain`]) looks at the certificate file every `check_every` (or
//! sooner, when the renewal point comes first). When there is none, it is about to expire
//! (`renew_before`) or it does not cover the configured names, the task orders a new one: the
//! account (created once, kept in `dir/account.json`), an order for the names, each
//! authorization answered by tls-alpn-01 (RFC 8737: a self-signed certificate carrying the key
//! authorization's digest, offered to handshakes that ask for ALPN `acme-tls/1`) or http-01 (the
//! key authorization at `/.well-known/acme-challenge/TOKEN` on `http_listen`), then the key and
//! chain written to `dir/certificate.pem` in one rename, and the TLS acceptor reloaded: new
//! handshakes get the new certificate, established connections keep theirs.
//!
//! A failed attempt (CA down, challenge refused) changes nothing that serves: the certificate in
//! use stays, a warning names the error and when the next attempt is, and
//! `modgate_acme_orders_total{outcome="failed"}` counts it. Until the first certificate arrives,
//! handshakes get a self-signed placeholder for the names.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::ServerTls;
use crate::config::{AcmeFile, Challenge};
use crate::telemetry::Metrics;

/// The ALPN protocol of tls-alpn-01 validation handshakes (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Longest wait for one request to the CA.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the CA to validate the challenges and issue the certificate.
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);
/// The first retry after a failed attempt; it doubles up to `check_every`.
const FIRST_RETRY: Duration = Duration::from_secs(60);

/// The answers to the CA's challenges in flight, shared by the TLS certificate resolver
/// (tls-alpn-01) and the plain-HTTP listener (http-01).
#[derive(Debug, Default)]
pub struct Challenges {
    /// Domain → the validation certificate for it.
    tls_alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// Token → key authorization.
    http: RwLock<HashMap<String, String>>,
}

impl Challenges {
    /// The tls-alpn-01 certificate for `domain`, while its challenge is open.
    pub fn tls_alpn(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        let map = self.tls_alpn.read().unwrap_or_else(PoisonError::into_inner);
        map.get(domain).cloned()
    }

    /// The key authorization for an http-01 `token`, while its challenge is open.
    pub fn http(&self, token: &str) -> Option<String> {
        let map = self.http.read().unwrap_or_else(PoisonError::into_inner);
        map.get(token).cloned()
    }

    fn clear(&self) {
        self.tls_alpn
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.http
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// What a handshake gets before ACME has obtained a certificate: self-signed for the names,
/// so that clients fail verification (rather than the connection) and the CA can reach the
/// listener.
pub fn placeholder(
    domains: &[String],
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let params = rcgen::CertificateParams::new(domains.to_vec()).map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    certified(cert.der().clone(), &key, provider)
}

fn certified(
    cert: CertificateDer<'static>,
    key: &rcgen::KeyPair,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // Not `CertifiedKey::from_der`: its key check parses the certificate with webpki, which
    // refuses the validation certificate's critical acmeIdentifier extension.
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(CertifiedKey::new(vec![cert], signing)))
}

/// Keeps the certificate of `tls` current until the server stops (the task is aborted).
pub async fn maintain(tls: Arc<ServerTls>, metrics: Arc<Metrics>) {
    let Some((settings, challenges)) = tls.acme() else {
        return;
    };
    let settings = settings.clone();
    let mut retry = FIRST_RETRY;
    loop {
        let wait = match due(&settings) {
            Due::Now(why) => {
                tracing::info!(domains = ?settings.domains, directory = %settings.directory, "ACME: ordering a certificate ({why})");
                let result = order(&settings, &challenges, tls.provider()).await;
                challenges.clear();
                match result.and_then(|not_after| {
                    tls.reload().map_err(|e| e.to_string())?;
                    Ok(not_after)
                }) {
                    Ok(not_after) => {
                        metrics.acme_order(true, Some(not_after));
                        tracing::info!(
                            domains = ?settings.domains,
                            not_after = %httpdate::fmt_http_date(not_after),
                            "ACME: new certificate in use for new connections"
                        );
                        retry = FIRST_RETRY;
                        continue;
                    }
                    Err(e) => {
                        metrics.acme_order(false, None);
                        let wait = retry.min(settings.check_every);
                        tracing::warn!(
                            error = %e,
                            retry_in = %humantime_serde::re::humantime::format_duration(wait),
                            "ACME: could not obtain a certificate; still serving the current one"
                        );
                        retry = (retry * 2).min(settings.check_every);
                        wait
                    }
                }
            }
            Due::In(wait) => wait.min(settings.check_every),
        };
        tokio::time::sleep(wait).await;
    }
}

enum Due {
    Now(String),
    In(Duration),
}

/// Whether the certificate file needs replacing, and else when to look again.
fn due(settings: &AcmeFile) -> Due {
    let path = settings.certificate_file();
    let Ok(pem) = std::fs::read(&path) else {
        return Due::Now("no certificate yet".into());
    };
    let leaf = match CertificateDer::pem_slice_iter(&pem).next() {
        Some(Ok(leaf)) => leaf,
        _ => return Due::Now(format!("{} holds no certificate", path.display())),
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return Due::Now(format!("{} holds no valid certificate", path.display()));
    };
    let names = super::tls::dns_names(&cert);
    if let Some(missing) = settings.domains.iter().find(|d| !names.contains(d)) {
        return Due::Now(format!("the certificate does not cover {missing}"));
    }
    let not_after = cert.validity().not_after.timestamp();
    let now = unix_now();
    let renew_at = not_after.saturating_sub(settings.renew_before.as_secs() as i64);
    if now >= renew_at {
        return Due::Now(format!(
            "the certificate expires in {}",
            humantime_serde::re::humantime::format_duration(Duration::from_secs(
                u64::try_from(not_after - now).unwrap_or(0)
            ))
        ));
    }
    Due::In(Duration::from_secs(
        u64::try_from(renew_at - now).unwrap_or(0),
    ))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Runs one order to its end: the certificate and key written, or an error saying where it
/// stopped. Returns the new certificate's expiry.
async fn order(
    settings: &AcmeFile,
    challenges: &Challenges,
    provider: &Arc<CryptoProvider>,
) -> Result<SystemTime, String> {
    let account = account(settings).await?;
    let identifiers: Vec<Identifier> = settings
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| format!("new order at {}: {e}", settings.directory))?;
    let kind = match settings.challenge {
        Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        Challenge::Http01 => ChallengeType::Http01,
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| format!("authorization: {e}"))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(format!("authorization is {other:?}")),
        }
        let mut challenge = authz.challenge(kind.clone()).ok_or_else(|| {
            format!(
                "the CA offers no {} challenge for this name",
                challenge_name(settings.challenge)
            )
        })?;
        let domain = challenge.identifier().to_string();
        let key_auth = challenge.key_authorization();
        match settings.challenge {
            Challenge::TlsAlpn01 => {
                let cert = validation_certificate(&domain, key_auth.digest().as_ref(), provider)?;
                challenges
                    .tls_alpn
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(domain.clone(), cert);
            }
            Challenge::Http01 => {
                challenges
                    .http
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(challenge.token.clone(), key_auth.as_str().to_owned());
            }
        }
        challenge
            .set_ready()
            .await
            .map_err(|e| format!("challenge for {domain}: {e}"))?;
    }
    let retries = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(ORDER_TIMEOUT);
    let status = order
        .poll_ready(&retries)
        .await
        .map_err(|e| format!("waiting for validation: {e}"))?;
    if status != OrderStatus::Ready {
        let problems = order_problems(&mut order).await;
        return Err(format!(
            "the CA did not validate the order ({status:?}){problems}"
        ));
    }
    let key_pem = order
        .finalize()
        .await
        .map_err(|e| format!("finalizing the order: {e}"))?;
    let chain_pem = order
        .poll_certificate(&retries)
        .await
        .map_err(|e| format!("downloading the certificate: {e}"))?;
    let not_after = check_issued(&chain_pem, &key_pem, provider)?;
    write_private(
        &settings.certificate_file(),
        format!("{chain_pem}\n{key_pem}").as_bytes(),
    )?;
    Ok(not_after)
}

/// The challenges' errors, as the CA gave them, for the log line of a refused order.
async fn order_problems(order: &mut instant_acme::Order) -> String {
    let mut out = String::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let _ = authz.refresh().await;
        let name = authz.identifier().to_string();
        for c in &authz.challenges {
            if let Some(p) = &c.error {
                out.push_str(&format!("; {name}: {p}"));
            }
        }
    }
    out
}

fn challenge_name(c: Challenge) -> &'static str {
    match c {
        Challenge::TlsAlpn01 => "tls-alpn-01",
        Challenge::Http01 => "http-01",
    }
}

/// RFC 8737 §3: a certificate for `domain` alone with the critical acmeIdentifier extension
/// holding the SHA-256 digest of the key authorization.
fn validation_certificate(
    domain: &str,
    digest: &[u8],
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(vec![domain.to_owned()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    certified(cert.der().clone(), &key, provider)
}

/// Checks that the CA's chain and the key make a usable pair; returns the leaf's expiry.
fn check_issued(
    chain_pem: &str,
    key_pem: &str,
    provider: &CryptoProvider,
) -> Result<SystemTime, String> {
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the CA's certificate chain is not valid PEM: {e}"))?;
    let leaf = chain
        .first()
        .ok_or("the CA's answer holds no certificate")?
        .clone();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| e.to_string())?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| format!("the CA's certificate does not match the key: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("the CA's certificate does not parse: {e}"))?;
    let secs = u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0);
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// The account: restored from `dir/account.json`, else created (terms of service agreed) and
/// saved there.
async fn account(settings: &AcmeFile) -> Result<Account, String> {
    let path = settings.dir.join("account.json");
    let http = AcmeHttp::new(settings)?;
    let builder = Account::builder_with_http(Box::new(http));
    if let Ok(saved) = std::fs::read(&path) {
        let credentials: AccountCredentials = serde_json::from_slice(&saved)
            .map_err(|e| format!("{}: not ACME account credentials: {e}", path.display()))?;
        return builder
            .from_credentials(credentials)
            .await
            .map_err(|e| format!("restoring the account of {}: {e}", path.display()));
    }
    let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory.clone(),
            None,
        )
        .await
        .map_err(|e| format!("creating an account at {}: {e}", settings.directory))?;
    let json = serde_json::to_vec_pretty(&credentials).map_err(|e| e.to_string())?;
    write_private(&path, &json)?;
    tracing::info!(account = account.id(), file = %path.display(), "ACME: account created");
    Ok(account)
}

/// Writes `data` to `path` readable by its owner only, through a temporary file renamed over
/// it (after fsync): a crash leaves the old file or the new one, never half of one.
fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let dir = path
        .parent()
        .ok_or_else(|| fail(std::io::ErrorKind::InvalidInput.into()))?;
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(fail)?;
    }
    tmp.write_all(data).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The HTTP client for the CA: the host's TLS stack (ring), the system's roots or the `ca`
/// file, a time limit per request.
struct AcmeHttp(Client<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>);

impl AcmeHttp {
    fn new(settings: &AcmeFile) -> Result<Self, String> {
        let builder = match &settings.ca {
            None => crate::upstream::https_builder("the ACME directory"),
            Some(ca) => {
                let pem = std::fs::read(ca)
                    .map_err(|e| format!("server.tls.acme.ca: {}: {e}", ca.display()))?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| {
                        format!("server.tls.acme.ca: {}: not PEM: {e}", ca.display())
                    })?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("server.tls.acme.ca: {}: {e}", ca.display()))?;
                }
                let config = rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
            }
        };
        let connector = builder.https_only().enable_http1().enable_http2().build();
        Ok(Self(Client::builder(TokioExecutor::new()).build(connector)))
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let response = self.0.request(req);
        Box::pin(async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, response).await {
                Ok(Ok(response)) => Ok(BytesResponse::from(response)),
                Ok(Err(e)) => Err(instant_acme::Error::Other(Box::new(e))),
                Err(_) => Err(instant_acme::Error::Str(
                    "the ACME server did not answer in 30s",
                )),
            }
        })
    }
}

/// Serves http-01 challenges on `addr` until aborted: the key authorization for a known
/// token, 404 for an unknown one, and every other request redirected to https (308).
pub async fn serve_http01(listener: tokio::net::TcpListener, challenges: Arc<Challenges>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let challenges = Arc::clone(&challenges);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = http01_answer(&challenges, &req);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn http01_answer<B>(challenges: &Challenges, req: &Request<B>) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    let path = req.uri().path();
    if let Some(token) = path.strip_prefix("/.well-known/acme-challenge/") {
        return match challenges.http(token) {
            Some(key_auth) => text(StatusCode::OK, key_auth),
            None => text(StatusCode::NOT_FOUND, "no such ACME challenge\n".into()),
        };
    }
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name))
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        });
    match host {
        Some(host) => {
            let target = format!(
                "https://{host}{}",
                req.uri().path_and_query().map_or("/", |p| p.as_str())
            );
            let mut r = text(StatusCode::PERMANENT_REDIRECT, format!("use {target}\n"));
            if let Ok(v) = http::HeaderValue::from_str(&target) {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            r
        }
        None => text(
            StatusCode::BAD_REQUEST,
            "modgate serves HTTPS; plain HTTP answers ACME challenges only\n".into(),
        ),
    }
}
