//! Pseudo-versions (`golang.org/x/mod/module/pseudo.go`).

/// `module.IsPseudoVersion`.
pub fn is_pseudo_version(_v: &str) -> bool {
    false // STUB
}
