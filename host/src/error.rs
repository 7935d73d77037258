//! Errors, tagged with where the fault lies. `handler` turns them into responses.

/// STUB
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);
