//! The GOPROXY protocol: everything that must match the go command exactly.
//!
//! See the Go modules reference ("GOPROXY protocol", "Module zip files") and `golang.org/x/mod`.

pub mod collision;
pub mod escape;
pub mod hash;
pub mod path;
pub mod pseudo;
pub mod request;
pub mod semver;
pub mod zipbuild;
pub mod zipcheck;
