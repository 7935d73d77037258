//! Loading the server's certificate chain and key into a rustls acceptor.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::ServerError;
use crate::config::TlsFile;

/// Reads the PEM certificate chain and private key named by `[server.tls]` and builds an
/// acceptor offering HTTP/2 and HTTP/1.1 through ALPN. Errors name the key and the file.
pub fn load_tls(files: &TlsFile) -> Result<TlsAcceptor, ServerError> {
    let certs = read_certs(&files.cert)?;
    let key = read_key(&files.key)?;
    // Explicit provider: the process-wide default depends on which rustls features other crates
    // enable, and choosing one here keeps startup independent of that.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("server.tls", &files.cert, format!("TLS setup failed: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            tls_error(
                "server.tls.key",
                &files.key,
                format!(
                    "cannot be used with the certificate in {}: {e}",
                    files.cert.display()
                ),
            )
        })?;
    // Preference order: h2 first, so clients that speak it multiplex over one connection.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
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

/// Reads synchronously: this runs once at startup, before any connection is served.
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
