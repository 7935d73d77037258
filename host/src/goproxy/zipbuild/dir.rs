//! `zip.listFilesInDir`: the files of a directory tree, as `CreateFromDir` sees them.

use std::fs;
use std::path::{Path, PathBuf};

use super::gomod::{self, GoVersion};
use super::{BuildError, Candidate, Content, Kind};

/// Walks `dir` like Go's `filepath.Walk` (lexical order, `lstat`, symlinks not followed) and
/// returns the regular files, leaving out what `listFilesInDir` leaves out.
pub(super) fn list(dir: &Path) -> Result<Vec<Candidate>, BuildError> {
    // os.ReadFile follows a symlinked go.mod; checkFiles later does not (and both apply).
    let vers = match fs::read(dir.join("go.mod")) {
        Ok(data) => gomod::go_version(&data),
        Err(_) => GoVersion::None,
    };
    let meta = fs::symlink_metadata(dir)
        .map_err(|e| BuildError::io(format!("reading {}", dir.display()), e))?;
    let mut files = Vec::new();
    if meta.is_dir() {
        walk(dir, "", vers, &mut files)?;
    }
    // A root that is not a directory (a symlink to one included) is an irregular file to Go's
    // walk: nothing is listed.
    Ok(files)
}

fn walk(
    dir: &Path,
    rel: &str,
    vers: GoVersion,
    files: &mut Vec<Candidate>,
) -> Result<(), BuildError> {
    let read_err = |e| BuildError::io(format!("reading {}", dir.display()), e);
    let mut entries: Vec<(Vec<u8>, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        entries.push((name_bytes(&entry.file_name()), entry.path()));
    }
    // os.ReadDir sorts by name, bytewise.
    entries.sort();
    for (name, path) in entries {
        let name_str = String::from_utf8_lossy(&name);
        let utf8 = matches!(name_str, std::borrow::Cow::Borrowed(_));
        let slash_path = if rel.is_empty() {
            name_str.into_owned()
        } else {
            format!("{rel}/{name_str}")
        };
        let info = fs::symlink_metadata(&path)
            .map_err(|e| BuildError::io(format!("reading {}", path.display()), e))?;
        // Vendored packages: omitted, but a directory is still walked (every path below it is
        // vendored too, so only I/O errors can surface from it, as in Go).
        let vendored = gomod::is_vendored_package(&slash_path, vers);
        if info.is_dir() {
            if !vendored {
                if matches!(name.as_slice(), b".bzr" | b".git" | b".hg" | b".svn") {
                    continue;
                }
                // A nested module: any non-directory go.mod, a symlink included.
                if fs::symlink_metadata(path.join("go.mod")).is_ok_and(|m| !m.is_dir()) {
                    continue;
                }
            }
            walk(&path, &slash_path, vers, files)?;
            continue;
        }
        if vendored || !info.file_type().is_file() {
            continue;
        }
        files.push(Candidate {
            utf8: utf8 && !rel_has_lossy(rel),
            path: slash_path,
            kind: Kind::Regular,
            content: Content::Disk {
                path,
                size: info.len(),
            },
        });
    }
    Ok(())
}

/// Whether a path built from lossy names holds a replacement character from lossy decoding.
/// (A name holding a real U+FFFD is valid UTF-8, but `CheckFilePath` rejects it anyway.)
fn rel_has_lossy(rel: &str) -> bool {
    rel.contains('\u{FFFD}')
}

#[cfg(unix)]
fn name_bytes(name: &std::ffi::OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt as _;
    name.as_bytes().to_vec()
}

#[cfg(not(unix))]
fn name_bytes(name: &std::ffi::OsStr) -> Vec<u8> {
    name.to_string_lossy().into_owned().into_bytes()
}
