//! The request pipeline: route → auth → storage → upstream, and the one place where errors
//! become HTTP responses.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;

use crate::config::Config;
use crate::telemetry::Metrics;

/// The body type of every response modgate sends.
pub type ResponseBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// Facts about the connection a request came in on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
}

/// Everything a request needs, shared by all connections.
pub struct App {
    pub metrics: Arc<Metrics>,
}

impl App {
    /// Builds the pipeline from a resolved configuration (opens storage, builds the upstream client).
    pub fn new(_config: &Config, metrics: Arc<Metrics>) -> Result<Self, crate::error::Error> {
        Ok(Self { metrics })
    }

    /// Serves one request. Never fails: every error becomes a response here.
    pub async fn handle<B>(&self, _req: http::Request<B>, _conn: &ConnInfo) -> http::Response<ResponseBody> {
        use http_body_util::{BodyExt, Full};
        let body = Full::new(Bytes::from_static(b"not implemented\n")).map_err(|never| match never {}).boxed_unsync();
        http::Response::builder().status(501).body(body).unwrap_or_default()
    }

    /// Whether the server is ready to serve (storage reachable); for `/readyz`.
    pub fn ready(&self) -> bool {
        true
    }
}
