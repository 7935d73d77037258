//! The Go checksum database's formats, as the go command reads them (golang.org/x/mod's
//! `sumdb/tlog`): record and tree hashes of the transparency log (RFC 6962), stored-hash
//! indexes, record and tree proofs, tiles and their paths, and the tree and record texts.
//! Pure functions; the verifier of upstream answers and modgate's own database build on them.

pub mod client;
pub mod gosumdb;
pub mod memlog;
pub mod note;
pub mod tile;
pub mod tlog;
