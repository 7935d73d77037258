//! modgate: a Go module proxy (GOPROXY server) and edge gateway.
//!
//! The crate is a library with a thin binary on top (`main.rs`). Its modules follow the request
//! pipeline described in `ARCHITECTURE.md`:
//!
//! - [`config`]: the TOML file (+ `MODGATE_*` environment overrides), parsed into typed settings.
//! - [`server`]: the accept loop, TLS, connection limits, timeouts and graceful shutdown.
//! - [`goproxy`]: the protocol itself: path escaping, module path and version rules, request
//!   parsing, zip checks and `h1:` hashes. Pure functions, no I/O beyond reading a zip.
//! - [`route`]: GOPRIVATE-style patterns choosing a route (storage + sources) for a module.
//! - [`handler`]: the pipeline route → auth → storage → upstream, and the one place where errors
//!   become HTTP responses.
//! - [`storage`]: where artifacts live; backends answer with *plans* and the host moves the bytes.
//! - [`sumdb`]: the checksum database's formats: log hashes, proofs, tiles.
//! - [`cluster`]: replicas over one storage: version fills coordinated through Redis.
//! - [`upstream`]: fetching from upstream GOPROXY servers with the go command's `,`/`|` semantics.
//! - [`publish`]: private module versions built from a directory and committed to storage.
//! - [`telemetry`]: access logs and Prometheus metrics.

pub mod cluster;
pub mod config;
pub mod error;
pub mod gitsource;
pub mod goproxy;
pub mod handler;
pub mod plugin;
pub mod publish;
pub mod ratelimit;
pub mod route;
pub mod server;
pub mod storage;
pub mod sumdb;
pub mod telemetry;
pub mod upstream;
