//! Errors, tagged with where the fault lies. [`crate::handler`] turns them into responses in one
//! place ([`Error::status`] and the one-line [`std::fmt::Display`] text).

use http::StatusCode;

use crate::goproxy::request::RequestError;
use crate::plugin::PluginError;

/// Who is at fault; decides the status class and whether the error is logged as ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request was malformed or asks for something that does not exist.
    Client,
    /// An upstream proxy failed or served something invalid.
    Upstream,
    /// A policy plugin failed.
    Plugin,
    /// The storage backend failed.
    Storage,
    /// A bug or an exhausted resource in modgate itself.
    Internal,
}

/// Every error the request pipeline can produce.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Malformed request path, escape or version → 400.
    #[error("{0}")]
    BadRequest(String),
    /// Unknown module or version, or not a canonical version → 404 (the client falls through).
    #[error("{0}")]
    NotFound(String),
    /// Only GET and HEAD exist in the GOPROXY protocol (and PUT for uploads) → 405.
    #[error("method {0} is not allowed: GET and HEAD read, PUT /<module>/@v/<version>.zip uploads")]
    MethodNotAllowed(http::Method),
    /// No credentials, or none an auth plugin accepted → 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// An auth plugin refused the request with its own status (401, 403, 404…) and message.
    #[error("{message}")]
    Denied { status: StatusCode, message: String },
    /// A plugin failed (trap, timeout, out of memory, bad answer) or has too many requests
    /// waiting for it: the request fails closed → 503 (with `Retry-After` when overloaded).
    /// `phase` says what could not be done (`authentication`, `routing`).
    #[error("{phase} unavailable: {error}")]
    Plugin {
        phase: &'static str,
        error: PluginError,
    },
    /// A rate limit or byte quota a plugin applied is exhausted → 429 with `Retry-After`.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u32,
    },
    /// An upload that would change a published version, or races another upload of it → 409.
    #[error("{0}")]
    Conflict(String),
    /// A request body over the configured limit → 413.
    #[error("{0}")]
    TooLarge(String),
    /// The method exists but not for this path or route → 405.
    #[error("{0}")]
    NotAllowedHere(String),
    /// A `Range` that lies outside the artifact → 416.
    #[error("range not satisfiable: the artifact is {len} bytes")]
    RangeNotSatisfiable { len: u64 },
    /// The upstream refused the request with 400 or 403 → the same status and the upstream's
    /// reason, so the go command draws the conclusions it would draw talking to it directly.
    #[error("{what}: {}", reason.as_deref().map_or_else(|| format!("upstream {host} answered {status}"), str::to_owned))]
    Refused {
        what: String,
        host: String,
        status: StatusCode,
        reason: Option<String>,
    },
    /// The upstream answered with an error, or could not be reached → 502. Upstreams are named
    /// by host only (a URL may carry credentials or internal paths).
    #[error("{what}: upstream {host}: {message}")]
    Upstream {
        what: String,
        host: String,
        message: String,
    },
    /// The upstream did not answer in time → 504.
    #[error("{what}: upstream {host}: timed out after {secs}s")]
    UpstreamTimeout {
        what: String,
        host: String,
        secs: u64,
    },
    /// The upstream served an artifact that failed validation; nothing was stored → 502.
    #[error("{what}: upstream {host} served an invalid artifact, not stored: {reason}")]
    BadArtifact {
        what: String,
        host: String,
        reason: String,
    },
    /// The storage backend failed → 500.
    /// An upstream artifact could not be verified against the checksum database (its hash
    /// differs from the record, the database has no record, or it could not be reached).
    #[error("{what}: {reason}")]
    Unverified { what: String, reason: String },
    /// The checksum database misbehaved: nothing new is admitted until an operator acts.
    #[error("{0}")]
    SumdbHalted(String),
    #[error("storage {storage}: {message}")]
    Storage { storage: String, message: String },
    /// Anything else that is our fault → 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Where the fault lies.
    pub fn fault(&self) -> Fault {
        match self {
            Error::BadRequest(_)
            | Error::NotFound(_)
            | Error::MethodNotAllowed(_)
            | Error::RangeNotSatisfiable { .. }
            | Error::Unauthenticated(_)
            | Error::Conflict(_)
            | Error::TooLarge(_)
            | Error::NotAllowedHere(_)
            | Error::Refused { .. }
            | Error::RateLimited { .. }
            | Error::Denied { .. } => Fault::Client,
            Error::Plugin { .. } => Fault::Plugin,
            Error::Upstream { .. }
            | Error::UpstreamTimeout { .. }
            | Error::BadArtifact { .. }
            | Error::Unverified { .. }
            | Error::SumdbHalted(_) => Fault::Upstream,
            Error::Storage { .. } => Fault::Storage,
            Error::Internal(_) => Fault::Internal,
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::NotAllowedHere(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::Denied { status, .. } | Error::Refused { status, .. } => *status,
            Error::Plugin { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Upstream { .. } | Error::BadArtifact { .. } | Error::Unverified { .. } => {
                StatusCode::BAD_GATEWAY
            }
            Error::SumdbHalted(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Error::Storage { .. } | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response body: the message on one line, without control characters, at most
    /// 600 bytes (the go command shows at most 648 bytes and hides bodies with control characters).
    pub fn body(&self) -> String {
        one_line(&self.to_string(), 600)
    }

    /// Seconds after which the client may try again, for a `Retry-After` header.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            // A plugin's queue drains in about one call's time; a second is plenty.
            Error::Plugin {
                error: PluginError::Overloaded { .. },
                ..
            } => Some(1),
            Error::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// A storage error for backend `storage`.
    pub fn storage(storage: &str, message: impl std::fmt::Display) -> Self {
        Error::Storage {
            storage: storage.to_owned(),
            message: message.to_string(),
        }
    }
}

impl From<RequestError> for Error {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::BadRequest(m) => Error::BadRequest(m),
            RequestError::NotFound(m) => Error::NotFound(m),
        }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::Internal(format!("background task failed: {e}"))
    }
}

/// Collapses `s` to one printable line of at most `max` bytes, followed by `\n`.
pub fn one_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max) + 1);
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_one_printable_line() {
        let e = Error::BadRequest("bad\npath\x00 \"x\"\r\n".repeat(100));
        let body = e.body();
        assert!(body.len() <= 601);
        assert_eq!(body.matches('\n').count(), 1);
        assert!(body.ends_with('\n'));
        assert!(!body[..body.len() - 1].chars().any(char::is_control));
    }

    #[test]
    fn statuses_follow_the_fault() {
        assert_eq!(Error::NotFound("x".into()).status(), 404);
        assert_eq!(
            Error::BadArtifact {
                what: "m/@v/v1.0.0.zip".into(),
                host: "u".into(),
                reason: "r".into()
            }
            .status(),
            502
        );
        assert_eq!(Error::storage("local", "disk full").fault(), Fault::Storage);
    }
}
