//! `[server.tls.acme]`: certificates obtained and renewed from an ACME CA (RFC 8555) instead of
//! files the operator provides. See `server::acme` for what runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Let's Encrypt's production directory: what `directory` is unless the config names another.
pub const DEFAULT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The file, under `dir`, holding the certificate chain and its key (one file, so that a
/// renewal replaces both with one rename).
pub const CERTIFICATE_FILE: &str = "certificate.pem";

/// How the CA checks that modgate answers for a name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum Challenge {
    /// RFC 8737: on the TLS listener itself (port 443 as the CA sees it).
    #[default]
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// RFC 8555 §8.3: `http://NAME/.well-known/acme-challenge/TOKEN` on `http_listen` (port 80
    /// as the CA sees it).
    #[serde(rename = "http-01")]
    Http01,
}

/// `[server.tls.acme]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeFile {
    /// The DNS names the certificate is for (the first is its subject).
    pub domains: Vec<String>,
    /// The CA's ACME directory URL.
    #[serde(default = "default_directory")]
    pub directory: String,
    /// Contact URLs for the account (`mailto:ops@corp.example`): where the CA writes about
    /// expiring certificates and problems.
    #[serde(default)]
    pub contact: Vec<String>,
    /// Where the account key and the certificate are kept (0600), relative to the config file.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    #[serde(default)]
    pub challenge: Challenge,
    /// With `http-01`: the plain-HTTP listener that answers the CA (other requests are
    /// redirected to https).
    #[serde(default)]
    pub http_listen: Option<SocketAddr>,
    /// Renew when the certificate has less than this left.
    #[serde(default = "default_renew_before", with = "humantime_serde")]
    pub renew_before: Duration,
    /// How often the certificate's remaining time is looked at (and a failed attempt retried
    /// at the latest).
    #[serde(default = "default_check_every", with = "humantime_serde")]
    pub check_every: Duration,
    /// A PEM root certificate the CA's own HTTPS is checked against, for a CA with a private or
    /// test PKI (pebble, an internal step-ca); default: the system's roots.
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

fn default_directory() -> String {
    DEFAULT_DIRECTORY.to_owned()
}

fn default_dir() -> PathBuf {
    PathBuf::from("acme")
}

fn default_renew_before() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

fn default_check_every() -> Duration {
    Duration::from_secs(12 * 3600)
}

impl AcmeFile {
    /// Checks the settings and resolves paths against `relative`; an error names the key under
    /// `server.tls.acme` and what is wrong.
    pub(super) fn resolve(
        &self,
        relative: impl Fn(&Path) -> PathBuf,
    ) -> Result<AcmeFile, (&'static str, String)> {
        if self.domains.is_empty() {
            return Err((
                "server.tls.acme.domains",
                "empty: name the DNS names the certificate is for".into(),
            ));
        }
        let mut domains = Vec::with_capacity(self.domains.len());
        for d in &self.domains {
            let d = d.to_ascii_lowercase();
            if let Err(why) = check_domain(&d) {
                return Err(("server.tls.acme.domains", format!("{d:?}: {why}")));
            }
            if !domains.contains(&d) {
                domains.push(d);
            }
        }
        if !self.directory.starts_with("https://") {
            return Err((
                "server.tls.acme.directory",
                format!("{:?}: an ACME directory is an https:// URL", self.directory),
            ));
        }
        if let Some(c) = self.contact.iter().find(|c| !c.starts_with("mailto:")) {
            return Err((
                "server.tls.acme.contact",
                format!("{c:?}: contacts are mailto: URLs (mailto:ops@corp.example)"),
            ));
        }
        if self.challenge == Challenge::Http01 && self.http_listen.is_none() {
            return Err((
                "server.tls.acme.http_listen",
                "missing: the http-01 challenge is answered on a plain-HTTP listener (the CA \
                 connects to port 80), e.g. http_listen = \"0.0.0.0:80\""
                    .into(),
            ));
        }
        if self.check_every.is_zero() {
            return Err((
                "server.tls.acme.check_every",
                "0s: give how often the certificate is looked at (default 12h)".into(),
            ));
        }
        Ok(AcmeFile {
            domains,
            directory: self.directory.clone(),
            contact: self.contact.clone(),
            dir: relative(&self.dir),
            challenge: self.challenge,
            http_listen: self.http_listen,
            renew_before: self.renew_before,
            check_every: self.check_every,
            ca: self.ca.as_deref().map(relative),
        })
    }

    /// The certificate chain and key obtained last ([`CERTIFICATE_FILE`] under `dir`).
    pub fn certificate_file(&self) -> PathBuf {
        self.dir.join(CERTIFICATE_FILE)
    }
}

/// A name the CA can issue for over tls-alpn-01 or http-01: a DNS name of letters, digits and
/// hyphens (no wildcard: those need dns-01), not an IP address.
fn check_domain(d: &str) -> Result<(), &'static str> {
    if d.starts_with("*.") {
        return Err("wildcard names need the dns-01 challenge, which modgate does not answer");
    }
    if d.parse::<std::net::IpAddr>().is_ok() {
        return Err("an IP address, not a DNS name");
    }
    if d.is_empty() || d.len() > 253 {
        return Err("not a DNS name (1 to 253 characters)");
    }
    let labels_ok = d.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if labels_ok {
        Ok(())
    } else {
        Err("not a DNS name (labels of letters, digits and inner hyphens, separated by dots)")
    }
}
