//! The checks every version passes before it is committed, whichever way it came in: fetched
//! from an upstream proxy, built from git, published (`modgate publish`, the upload endpoint),
//! and later ways (mirror, import). [`verify`] is the only way to make a [`StagedVersion`], and
//! [`super::Store::commit`] takes nothing else, so the ways cannot drift apart.
//!
//! Every zip is checked by [`zipcheck::check_zip`] (x/mod's rules, read as the go command reads
//! it) and its `h1:` computed from what was read. What the go.mod must say depends on who vouches
//! for it ([`GoMod`]): an upstream's `.mod` is served as the upstream serves it (the go command
//! judges it as it would talking to that upstream directly); a version made here must declare
//! its module, and a `+incompatible` one must not have a go.mod.

use bytes::Bytes;

use crate::error::Error;
use crate::goproxy::path::ModulePath;
use crate::goproxy::semver;
use crate::goproxy::zipcheck::{self, ZipError};

use super::StagedVersion;

/// Where the go.mod served as the version's `.mod` comes from.
#[derive(Debug)]
pub enum GoMod {
    /// An upstream proxy's `.mod`, fetched on its own (`None`: already stored). Only its size
    /// is checked.
    Upstream(Option<Bytes>),
    /// Built here from a repository: the go.mod as the go command reads it in direct mode (for
    /// git, the blob itself, before the attribute conversions the zip's copy went through), or
    /// `module <path>\n` without one. It must declare the module.
    Built(Bytes),
    /// Published: the zip's own go.mod, or `module <path>\n` without one. It must declare the
    /// module, and a `+incompatible` version must not have one.
    FromZip,
}

/// Checks the zip staged at `zip` (a staging file of the store it will be committed to) and the
/// go.mod of `module@version`, and stages the version with `.info` `info` for
/// [`super::Store::commit`]. The outer error is the host's (the check could not run); the inner
/// one says what is wrong with the version, in x/mod's and the go command's words. Dropping a
/// refused candidate's `zip` removes the file: nothing of it stays.
pub async fn verify(
    module: &ModulePath,
    version: &str,
    zip: tempfile::TempPath,
    go_mod: GoMod,
    info: Bytes,
) -> Result<Result<StagedVersion, ZipError>, Error> {
    let path = zip.to_path_buf();
    let (m, v) = (module.as_str().to_owned(), version.to_owned());
    let mut checked =
        match tokio::task::spawn_blocking(move || zipcheck::check_zip(&path, &m, &v)).await? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
    let go_mod = match go_mod {
        GoMod::Upstream(go_mod) => {
            if let Some(data) = &go_mod
                && let Err(e) = zipcheck::check_go_mod(data)
            {
                return Ok(Err(e));
            }
            go_mod
        }
        GoMod::Built(data) => match declares(module, &data) {
            Ok(()) => Some(data),
            Err(e) => return Ok(Err(e)),
        },
        GoMod::FromZip => {
            let incompatible = semver::build(version) == "+incompatible";
            match checked.go_mod.take() {
                Some(_) if incompatible => {
                    return Ok(Err(ZipError(
                        "go.mod: a +incompatible version must not have a go.mod (publish it under a /vN module path)".into(),
                    )));
                }
                Some(data) => {
                    let data = Bytes::from(data);
                    if let Err(e) = declares(module, &data) {
                        return Ok(Err(e));
                    }
                    Some(data)
                }
                None => Some(Bytes::from(format!("module {module}\n"))),
            }
        }
    };
    Ok(Ok(StagedVersion {
        zip,
        zip_hash: checked.h1,
        go_mod,
        info,
        files: checked.files,
        _verified: Verified(()),
    }))
}

/// Proof that a [`StagedVersion`] came from [`verify`]: nothing else can make one.
#[derive(Debug)]
pub struct Verified(());

/// The go.mod is at most `MaxGoMod` and declares `module` (the go command's wording when a
/// dependency's go.mod does not).
fn declares(module: &ModulePath, data: &[u8]) -> Result<(), ZipError> {
    zipcheck::check_go_mod(data).map_err(|e| ZipError(format!("go.mod: {e}")))?;
    let declared = crate::gitsource::module_path(data);
    if declared.is_empty() {
        return Err(ZipError(format!(
            "go.mod: no module statement (it must declare \"module {module}\")"
        )));
    }
    if declared != module.as_str() {
        return Err(ZipError(format!(
            "go.mod: module declares its path as: {declared} but was required as: {module}"
        )));
    }
    Ok(())
}
