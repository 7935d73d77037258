//! The server's certificate chain and key, in a rustls acceptor whose certificate can be
//! replaced while it serves: on a reload (SIGHUP, `POST /admin/reload`) and when the files
//! change on disk (looked at every `server.tls.watch`). New handshakes get the new certificate;
//! established connections keep theirs. Files that cannot be used (half written, a key that
//! does not match) leave the previous certificate in place.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::ServerError;
use crate::config::TlsFile;

/// Reads the PEM certificate chain and private key named by `[server.tls]` and builds an
/// acceptor offering HTTP/2 and HTTP/1.1 through ALPN, with the handle that replaces its
/// certificate. Errors name the key and the file.
pub fn load_tls(files: &TlsFile) -> Result<(TlsAcceptor, Arc<ServerCert>), ServerError> {
    // Explicit provider: the process-wide default depends on which rustls features other crates
    // enable, and choosing one here keeps startup independent of that.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (key, stamp) = certified_key(files, &provider)?;
    let cert = Arc::new(ServerCert {
        files: files.clone(),
        provider: Arc::clone(&provider),
        current: RwLock::new(key),
        stamp: Mutex::new(Stamps {
            loaded: stamp,
            refused: None,
        }),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("server.tls", &files.cert, format!("TLS setup failed: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&cert) as Arc<dyn ResolvesServerCert>);
    // Preference order: h2 first, so clients that speak it multiplex over one connection.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), cert))
}

/// The certificate new handshakes get, and where it came from.
#[derive(Debug)]
pub struct ServerCert {
    files: TlsFile,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    stamp: Mutex<Stamps>,
}

/// What the two files looked like (modification time and length of each).
type Stamp = [Option<(SystemTime, u64)>; 2];

#[derive(Debug)]
struct Stamps {
    /// When the certificate in use was read.
    loaded: Stamp,
    /// Files that changed but could not be used, already reported.
    refused: Option<Stamp>,
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

impl ServerCert {
    /// Reads the files again: a certificate and key that can be used (each other's pair) are
    /// what new handshakes get from now on; anything else is an error naming the key and the
    /// file, and the certificate in use stays.
    pub fn reload(&self) -> Result<(), ServerError> {
        let (key, stamp) = certified_key(&self.files, &self.provider)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = key;
        let mut stamps = self.stamp.lock().unwrap_or_else(PoisonError::into_inner);
        stamps.loaded = stamp;
        stamps.refused = None;
        Ok(())
    }

    /// Reloads when the files changed since the certificate in use was read (an ACME client
    /// or certbot renewed it). Files that changed but cannot be used are reported once, and
    /// looked at again at the next change.
    fn reload_if_changed(&self) {
        let now = stamp(&self.files);
        {
            let stamps = self.stamp.lock().unwrap_or_else(PoisonError::into_inner);
            if now == stamps.loaded || Some(now) == stamps.refused {
                return;
            }
        }
        match self.reload() {
            Ok(()) => tracing::info!(
                cert = %self.files.cert.display(),
                "TLS certificate files changed: new connections get the new certificate"
            ),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "TLS certificate files changed but cannot be used; still serving the previous certificate"
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
            let cert = Arc::clone(&self);
            // File reads and key parsing: off the thread that accepts connections.
            let _ = tokio::task::spawn_blocking(move || cert.reload_if_changed()).await;
        }
    }
}

/// The files' stamp, taken before they are read (so that a write during the read shows as a
/// change at the next look).
fn stamp(files: &TlsFile) -> Stamp {
    [&files.cert, &files.key].map(|path| {
        std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    })
}

fn certified_key(
    files: &TlsFile,
    provider: &CryptoProvider,
) -> Result<(Arc<CertifiedKey>, Stamp), ServerError> {
    let stamp = stamp(files);
    let certs = read_certs(&files.cert)?;
    let key = read_key(&files.key)?;
    let certified = CertifiedKey::from_der(certs, key, provider).map_err(|e| {
        tls_error(
            "server.tls.key",
            &files.key,
            format!(
                "cannot be used with the certificate in {}: {e}",
                files.cert.display()
            ),
        )
    })?;
    Ok((Arc::new(certified), stamp))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    const KEY: &str = "server.tls.cert";
    let pem = read(KEY, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(KEY, path, pem_message(e, "certificate")))?;
    if certs.is_empty() {
        return Err(tls_error(KEY, path, "no certificate found".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServerError> {
    const KEY: &str = "server.tls.key";
    let pem = read(KEY, path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| tls_error(KEY, path, pem_message(e, "private key")))
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
