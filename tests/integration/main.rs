//! Black-box integration tests: the real `modgate` binary, fake upstreams in-process, and the
//! real `go` command as the client and judge.
//!
//! - `harness`: starting/stopping modgate, free ports, config files, an isolated go environment.
//! - `fixtures`: fixture modules and GOPROXY trees (and hostile zips), built in Rust.
//! - `upstream`: the fake upstream GOPROXY server with request counts and failure knobs.
//! - the rest, one area each: `protocol`, `go_client`, `fallthrough`, `singleflight`, `crash`,
//!   `hostile`, `misbehaving` (the hostile-upstream matrix), `isolation`, `tls`, `acme` (certificates from pebble), `transparency`, `xmod_zip`, `xmod_rules` (path and version
//!   rules against x/mod, fed by the fuzz corpora), `zipbuild`, `gitsource`,
//!   `gitssh`, `go_auth`, `reload`, `publish`, `ratelimit` (429s, byte quotas, counters shared through Redis), and `bench_harness` (the benchmark harness's
//!   Python unit tests), `custom_auth_example` (runs `examples/custom-auth/README.md` and
//!   `examples/custom-auth-go/README.md` as their readers would).
//!
//! The harness checks itself without modgate: `go_client::fixture_tree_is_valid_for_the_go_command`
//! and the unit tests in `fixtures::rawzip`.

mod acme;
mod auth;
mod bench_harness;
mod cli;
mod crash;
mod custom_auth_example;
mod download;
mod fallthrough;
mod fixtures;
mod gitsource;
mod gitssh;
mod go_auth;
mod go_client;
mod go_plugins;
mod harness;
mod hostile;
mod isolation;
mod misbehaving;
mod policy;
mod private;
mod protocol;
mod publish;
mod ratelimit;
mod reload;
mod replicas;
mod routing;
mod s3;
mod singleflight;
mod soak;
mod storage;
mod sumdb;
mod tls;
mod transparency;
mod upstream;
mod xmod_rules;
mod xmod_zip;
mod zipbuild;
