//! The server's TLS: certificate chain and key, and for mutual TLS the client CA and
//! revocation lists, in a rustls acceptor that is rebuilt while the server runs: on a reload
//! (SIGHUP, `POST /admin/reload`) and when the files change on disk (looked at every
//! `server.tls.watch`). New handshakes get the new settings; established connections keep
//! theirs. Files that cannot be used (half written, a key that does not match) leave the
//! acceptor in use in place.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::ServerError;
use super::acme::{ACME_TLS_ALPN, Challenges};
use crate::config::{AcmeFile, Challenge, ClientAuth, TlsFile};

/// Reads the files named by `[server.tls]` and builds an acceptor offering HTTP/2 and HTTP/1.1
/// through ALPN. Errors name the key and the file.
pub fn load_tls(files: &TlsFile) -> Result<Arc<ServerTls>, ServerError> {
    // Explicit provider: the process-wide default depends on which rustls features other crates
    // enable, and choosing one here keeps startup independent of that.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let challenges = files.acme.as_ref().map(|_| Arc::new(Challenges::default()));
    let (acceptor, stamp) = acceptor(files, &provider, challenges.as_ref())?;
    Ok(Arc::new(ServerTls {
        files: files.clone(),
        provider,
        challenges,
        current: RwLock::new(acceptor),
        stamp: Mutex::new(Stamps {
            loaded: stamp,
            refused: None,
        }),
    }))
}

/// The server's TLS settings: the acceptor new connections get, and the files it came from.
#[derive(Debug)]
pub struct ServerTls {
    files: TlsFile,
    provider: Arc<CryptoProvider>,
    /// With `[server.tls.acme]`: the answers to the CA's challenges in flight.
    challenges: Option<Arc<Challenges>>,
    current: RwLock<Arc<rustls::ServerConfig>>,
    stamp: Mutex<Stamps>,
}

/// What the files looked like (modification time and length of each).
type Stamp = Vec<Option<(SystemTime, u64)>>;

#[derive(Debug)]
struct Stamps {
    /// When the acceptor in use was built.
    loaded: Stamp,
    /// Files that changed but could not be used, already reported.
    refused: Option<Stamp>,
}

impl ServerTls {
    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }

    /// Reads the files again: settings that can be used are what new handshakes get from now
    /// on; anything else is an error naming the key and the file, and the acceptor in use stays.
    pub fn reload(&self) -> Result<(), ServerError> {
        let (acceptor, stamp) = acceptor(&self.files, &self.provider, self.challenges.as_ref())?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = acceptor;
        let mut stamps = self.stamp.lock().unwrap_or_else(PoisonError::into_inner);
        stamps.loaded = stamp;
        stamps.refused = None;
        Ok(())
    }

    /// The ACME settings and the challenges they answer, when `[server.tls.acme]` is set.
    pub fn acme(&self) -> Option<(&AcmeFile, Arc<Challenges>)> {
        Some((
            self.files.acme.as_ref()?,
            Arc::clone(self.challenges.as_ref()?),
        ))
    }

    /// The crypto provider every certificate is loaded with.
    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// Reloads when the files changed since the acceptor in use was built (an ACME client or
    /// certbot renewed the certificate, a new revocation list). Files that changed but cannot
    /// be used are reported once, and looked at again at the next change.
    fn reload_if_changed(&self) {
        let now = stamp(&self.files);
        {
            let stamps = self.stamp.lock().unwrap_or_else(PoisonError::into_inner);
            if now == stamps.loaded || Some(&now) == stamps.refused.as_ref() {
                return;
            }
        }
        match self.reload() {
            Ok(()) => tracing::info!(
                cert = %self.files.cert.display(),
                "TLS files changed: new connections get the new certificate and settings"
            ),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "TLS files changed but cannot be used; still serving with the previous ones"
                );
                self.stamp
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .refused = Some(now);
            }
        }
    }

    /// Looks at the files every `server.tls.watch` until the server stops (`0s`: never).
    pub async fn watch(self: Arc<Self>) {
        if self.files.watch.is_zero() {
            return;
        }
        let mut every = tokio::time::interval(self.files.watch);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            let tls = Arc::clone(&self);
            // File reads and key parsing: off the thread that accepts connections.
            let _ = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await;
        }
    }
}

/// The subject of a client's verified certificate (`CN=ci-7, O=Corp`, as x509-parser prints
/// it), what plugins see as the TLS client identity.
pub fn client_identity(certs: Option<&[CertificateDer<'_>]>) -> Option<Arc<str>> {
    let leaf = certs?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(cert.subject().to_string().into())
}

/// Every file the acceptor is built from.
fn paths(files: &TlsFile) -> Vec<&PathBuf> {
    [&files.cert, &files.key]
        .into_iter()
        .chain(&files.client_ca)
        .chain(&files.client_crls)
        .chain(files.certificates.iter().flat_map(|c| [&c.cert, &c.key]))
        .collect()
}

/// The certificate for the name a client asks for (SNI): an exact DNS name of one of
/// `[[server.tls.certificates]]`, else a wildcard one (`*.corp.example` covers one label),
/// else the default (`cert`/`key`).
#[derive(Debug)]
struct ByName {
    /// With ACME: the tls-alpn-01 validation certificates, for handshakes asking for
    /// `acme-tls/1` (RFC 8737).
    challenges: Option<Arc<Challenges>>,
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the part after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ByName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(challenges) = &self.challenges
            && hello
                .alpn()
                .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN))
        {
            // Only the validation certificate, and only while its challenge is open.
            return challenges.tls_alpn(&hello.server_name()?.to_ascii_lowercase());
        }
        let Some(name) = hello.server_name() else {
            return Some(Arc::clone(&self.default));
        };
        let name = name.to_ascii_lowercase();
        let found = self.exact.get(&name).or_else(|| {
            let (_, parent) = name.split_once('.')?;
            self.wildcard.get(parent)
        });
        Some(Arc::clone(found.unwrap_or(&self.default)))
    }
}

/// A certificate and its key, checked to be a pair, with the DNS names of the certificate's
/// subjectAltName (lower case; a certificate that expires soon is logged on the way).
fn certified(
    (cert, key): (&Path, &Path),
    config_key: [&'static str; 2],
    provider: &CryptoProvider,
) -> Result<(Arc<CertifiedKey>, Vec<String>), ServerError> {
    let certs = read_certs(config_key[0], cert)?;
    let (_, leaf) = x509_parser::parse_x509_certificate(certs[0].as_ref())
        .map_err(|e| tls_error(config_key[0], cert, format!("not a certificate: {e}")))?;
    warn_if_expiring(&leaf, cert);
    let names = dns_names(&leaf);
    let private = read_key(config_key[1], key)?;
    let certified = CertifiedKey::from_der(certs, private, provider).map_err(|e| {
        tls_error(
            config_key[1],
            key,
            format!(
                "cannot be used with the certificate in {}: {e}",
                cert.display()
            ),
        )
    })?;
    Ok((Arc::new(certified), names))
}

/// Within this long of its end, a certificate loaded (at start, on a reload, on a file change)
/// is logged as a warning: renew it.
const EXPIRY_WARNING: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

/// Warns when the leaf certificate in `path` has expired or will within [`EXPIRY_WARNING`]
/// (clients refuse an expired one; modgate serves it anyway, as the operator asked).
fn warn_if_expiring(leaf: &x509_parser::certificate::X509Certificate<'_>, path: &Path) {
    let not_after = leaf.validity().not_after.timestamp();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let left = not_after - now;
    if left <= 0 {
        tracing::error!(
            cert = %path.display(),
            "the TLS certificate has expired: clients will refuse it; renew it"
        );
    } else if left < EXPIRY_WARNING.as_secs() as i64 {
        tracing::warn!(
            cert = %path.display(),
            days_left = left / 86_400,
            "the TLS certificate expires soon; renew it (modgate picks up renewed files)"
        );
    }
}

/// The DNS names of a certificate's subjectAltName, lower case.
pub(super) fn dns_names(leaf: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    leaf.subject_alternative_name()
        .ok()
        .flatten()
        .into_iter()
        .flat_map(|san| san.value.general_names.iter())
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn by_name(
    files: &TlsFile,
    provider: &CryptoProvider,
    challenges: Option<&Arc<Challenges>>,
) -> Result<ByName, ServerError> {
    let default = match &files.acme {
        // Until ACME has obtained the first certificate.
        Some(acme) if !files.cert.exists() => super::acme::placeholder(&acme.domains, provider)
            .map_err(|e| {
                tls_error(
                    "server.tls.acme",
                    &files.cert,
                    format!("cannot make a placeholder certificate: {e}"),
                )
            })?,
        _ => {
            let keys = match files.acme {
                Some(_) => ["server.tls.acme", "server.tls.acme"],
                None => ["server.tls.cert", "server.tls.key"],
            };
            certified((&files.cert, &files.key), keys, provider)?.0
        }
    };
    let mut resolver = ByName {
        challenges: challenges.cloned(),
        default,
        exact: HashMap::new(),
        wildcard: HashMap::new(),
    };
    for pair in &files.certificates {
        const KEY: &str = "server.tls.certificates";
        let (key, names) = certified((&pair.cert, &pair.key), [KEY, KEY], provider)?;
        if names.is_empty() {
            return Err(tls_error(
                KEY,
                &pair.cert,
                "the certificate names no DNS name (subjectAltName) to choose it by".into(),
            ));
        }
        for name in names {
            // The first certificate naming a name keeps it.
            match name.strip_prefix("*.") {
                Some(parent) => resolver.wildcard.entry(parent.to_owned()),
                None => resolver.exact.entry(name),
            }
            .or_insert_with(|| Arc::clone(&key));
        }
    }
    Ok(resolver)
}

/// The files' stamp, taken before they are read (so that a write during the read shows as a
/// change at the next look).
fn stamp(files: &TlsFile) -> Stamp {
    paths(files)
        .into_iter()
        .map(|path| {
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

fn acceptor(
    files: &TlsFile,
    provider: &Arc<CryptoProvider>,
    challenges: Option<&Arc<Challenges>>,
) -> Result<(Arc<rustls::ServerConfig>, Stamp), ServerError> {
    let stamp = stamp(files);
    let certificates = by_name(files, provider, challenges)?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("server.tls", &files.cert, format!("TLS setup failed: {e}")))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs("server.tls.client_ca", ca)? {
                roots.add(cert).map_err(|e| {
                    tls_error(
                        "server.tls.client_ca",
                        ca,
                        format!("not a CA certificate: {e}"),
                    )
                })?;
            }
            let mut crls = Vec::new();
            for path in &files.client_crls {
                crls.extend(read_crls(path)?);
            }
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
                    .with_crls(crls);
            if files.client_auth == ClientAuth::Optional {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|e| {
                tls_error(
                    "server.tls.client_ca",
                    ca,
                    format!("cannot verify client certificates with it and client_crls: {e}"),
                )
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(certificates));
    // Preference order: h2 first, so clients that speak it multiplex over one connection.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if files
        .acme
        .as_ref()
        .is_some_and(|a| a.challenge == Challenge::TlsAlpn01)
    {
        // Last: chosen only by a client that offers nothing else (the CA validating).
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    Ok((Arc::new(config), stamp))
}

fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(key, path, pem_message(e, "certificate")))?;
    if certs.is_empty() {
        return Err(tls_error(key, path, "no certificate found".into()));
    }
    Ok(certs)
}

/// A file of revocation lists: PEM (`X509 CRL` blocks), or one in DER.
fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, ServerError> {
    const KEY: &str = "server.tls.client_crls";
    let bytes = read(KEY, path)?;
    if !bytes.starts_with(b"-----") && !bytes.is_empty() {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(KEY, path, pem_message(e, "revocation list")))?;
    if crls.is_empty() {
        return Err(tls_error(KEY, path, "no revocation list found".into()));
    }
    Ok(crls)
}

fn read_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, ServerError> {
    let pem = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| tls_error(key, path, pem_message(e, "private key")))
}

/// Reads synchronously: at startup, before any connection is served, and on reloads, from a
/// blocking thread.
fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|e| tls_error(key, path, format!("cannot read: {e}")))
}

fn pem_message(e: pem::Error, what: &str) -> String {
    match e {
        pem::Error::NoItemsFound => format!("no {what} found"),
        other => format!("not valid PEM: {other}"),
    }
}

fn tls_error(key: &'static str, path: &Path, message: String) -> ServerError {
    ServerError::Tls {
        key,
        path: path.to_path_buf(),
        message,
    }
}
