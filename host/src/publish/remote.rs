//! `modgate publish --to URL`: upload a zip built locally to a modgate server's upload endpoint
//! (`PUT <URL>/<module>/@v/<version>.zip`, see `handler/upload.rs`).

use std::path::Path;

use bytes::Bytes;
use http::{StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncReadExt;

use crate::goproxy::escape::escape_version;
use crate::goproxy::path::ModulePath;

/// How the uploader proves who it is.
#[derive(Clone)]
pub enum Credential {
    /// `Authorization: Bearer <token>` (`--token`, `MODGATE_TOKEN`).
    Bearer(String),
    /// `Authorization: Basic` from a `.netrc` entry for the server's host.
    Basic { login: String, password: String },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Bearer(_) => f.write_str("Bearer(…)"),
            Credential::Basic { login, .. } => write!(f, "Basic({login}, …)"),
        }
    }
}

/// What the server answered to an accepted upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// 201: a new version; 200: the same content was already published.
    pub created: bool,
    /// The server's body: the version's go.sum lines.
    pub sums: String,
}

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The URL or the module/version could not form a request.
    #[error("{0}")]
    Request(String),
    /// Credentials would travel unencrypted.
    #[error(
        "refusing to send credentials over plain http to {0}; use https (plain http is allowed for loopback addresses only)"
    )]
    Insecure(String),
    /// The server could not be reached or the transfer broke.
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    /// The server refused the upload; its one-line reason.
    #[error("{url}: {status}: {message}")]
    Refused {
        url: String,
        status: StatusCode,
        message: String,
    },
}

/// The credential for `base` from a `.netrc` file's text: the `machine` equal to the URL's
/// `host:port` (or its host when the port is the scheme's default), else `default`, as the go
/// command matches GOPROXY hosts.
pub fn netrc_credential(netrc: &str, base: &str) -> Option<Credential> {
    let uri: http::Uri = base.parse().ok()?;
    let authority = uri.authority()?;
    let host = authority.host();
    let with_port = authority.as_str().rsplit('@').next().unwrap_or(host);
    // Tokens, as `net/netrc`-style parsers read them; `macdef` bodies are skipped.
    let mut tokens = netrc.split_whitespace();
    let mut entries: Vec<(Option<String>, Option<String>, Option<String>)> = Vec::new();
    while let Some(t) = tokens.next() {
        match t {
            "machine" => entries.push((tokens.next().map(str::to_owned), None, None)),
            "default" => entries.push((None, None, None)),
            "login" => {
                if let Some(e) = entries.last_mut() {
                    e.1 = tokens.next().map(str::to_owned);
                }
            }
            "password" => {
                if let Some(e) = entries.last_mut() {
                    e.2 = tokens.next().map(str::to_owned);
                }
            }
            "account" => {
                tokens.next();
            }
            "macdef" => break,
            _ => {}
        }
    }
    let pick = |want: Option<&str>| {
        entries
            .iter()
            .find(|(m, _, p)| m.as_deref() == want && p.is_some())
    };
    let (_, login, password) = pick(Some(with_port))
        .or_else(|| uri.port().is_none().then(|| pick(Some(host))).flatten())
        .or_else(|| pick(None))?;
    Some(Credential::Basic {
        login: login.clone().unwrap_or_default(),
        password: password.clone()?,
    })
}

/// Uploads the zip at `zip` as `module@version` to the modgate server at `base`; `progress`
/// is called with the bytes sent so far.
pub async fn upload(
    base: &str,
    module: &ModulePath,
    version: &str,
    zip: &Path,
    credential: Option<&Credential>,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<Uploaded, UploadError> {
    let escaped = escape_version(version)
        .map_err(|e| UploadError::Request(format!("version {version:?}: {e}")))?;
    let url = format!(
        "{}/{}/@v/{escaped}.zip",
        base.trim_end_matches('/'),
        module.escaped()
    );
    let uri: http::Uri = url
        .parse()
        .map_err(|e| UploadError::Request(format!("`{base}` is not a URL: {e}")))?;
    let host = uri.host().unwrap_or_default().to_owned();
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") => {
            let loopback = host == "localhost"
                || host
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if credential.is_some() && !loopback {
                return Err(UploadError::Insecure(host));
            }
        }
        _ => {
            return Err(UploadError::Request(format!(
                "`{base}`: the server URL must be http:// or https://"
            )));
        }
    }
    let transport = |message: String| UploadError::Transport {
        url: url.clone(),
        message,
    };
    let file = tokio::fs::File::open(zip)
        .await
        .map_err(|e| transport(format!("opening {}: {e}", zip.display())))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| transport(format!("reading {}: {e}", zip.display())))?
        .len();
    let progress = std::sync::Arc::new(progress);
    let chunks = futures_util::stream::unfold((file, 0u64), move |(mut file, sent)| {
        let progress = std::sync::Arc::clone(&progress);
        async move {
            let mut buf = vec![0u8; 256 * 1024];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    let sent = sent + n as u64;
                    progress(sent);
                    Some((
                        Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from(buf))),
                        (file, sent),
                    ))
                }
                Err(e) => Some((Err(e), (file, sent))),
            }
        }
    });
    let body = StreamBody::new(chunks).boxed();

    let mut request = http::Request::put(uri)
        .header(header::CONTENT_TYPE, "application/zip")
        .header(header::CONTENT_LENGTH, len)
        .header(
            header::USER_AGENT,
            concat!("modgate-publish/", env!("CARGO_PKG_VERSION")),
        );
    match credential {
        Some(Credential::Bearer(token)) => {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        Some(Credential::Basic { login, password }) => {
            use base64::Engine as _;
            let pair =
                base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"));
            request = request.header(header::AUTHORIZATION, format!("Basic {pair}"));
        }
        None => {}
    }
    let request = request
        .body(body)
        .map_err(|e| UploadError::Request(format!("building the request: {e}")))?;

    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| transport(format!("no root certificates: {e}")))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, http_body_util::combinators::BoxBody<Bytes, std::io::Error>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let response = client.request(request).await.map_err(|e| {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        transport(message)
    })?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| transport(format!("reading the answer: {e}")))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if status == StatusCode::CREATED || status == StatusCode::OK {
        return Ok(Uploaded {
            created: status == StatusCode::CREATED,
            sums: text,
        });
    }
    Err(UploadError::Refused {
        url,
        status,
        message: text.lines().next().unwrap_or("").trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netrc_entries_match_like_the_go_command() {
        let netrc = "machine other.example login a password b\n\
                     machine proxy.corp.example:8443 login ci password tok1\n\
                     machine proxy.corp.example login ci password tok2\n\
                     default login anon password tok3\n";
        let pw = |base: &str| match netrc_credential(netrc, base) {
            Some(Credential::Basic { password, .. }) => password,
            other => format!("{other:?}"),
        };
        assert_eq!(pw("https://proxy.corp.example:8443/go"), "tok1");
        assert_eq!(pw("https://proxy.corp.example"), "tok2");
        assert_eq!(pw("https://unknown.example"), "tok3");
        assert!(netrc_credential("machine x login y password z", "https://w.example").is_none());
    }
}
