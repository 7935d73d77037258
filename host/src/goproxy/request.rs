//! Parsing a GOPROXY request path into a typed request.

use super::path::ModulePath;

/// What a `.info` request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InfoQuery {
    /// A canonical version (`v1.2.3`, a pseudo-version, `v2.0.0+incompatible`): immutable answer.
    Canonical(String),
    /// Anything else the go command may ask a proxy to resolve (branch, commit hash, `v1.2`).
    Query(String),
}

/// A parsed GOPROXY request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyRequest {
    /// `/<m>/@v/list`
    List { module: ModulePath },
    /// `/<m>/@v/<v>.info`
    Info {
        module: ModulePath,
        version: InfoQuery,
    },
    /// `/<m>/@v/<v>.mod` (canonical versions only)
    Mod { module: ModulePath, version: String },
    /// `/<m>/@v/<v>.zip` (canonical versions only)
    Zip { module: ModulePath, version: String },
    /// `/<m>/@latest`
    Latest { module: ModulePath },
    /// `/sumdb/<name>/<rest>`
    Sumdb { name: String, rest: String },
}

/// Why a request path was refused. `BadRequest` → 400, `NotFound` → 404.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
}

/// Parses the raw (still percent-encoded) path of a request URI, e.g. `/github.com/%21azure/x/@v/list`.
pub fn parse(_raw_path: &str) -> Result<ProxyRequest, RequestError> {
    Err(RequestError::NotFound("STUB".into()))
}
