//! The host's own file I/O for file plans: temporary files beside their final names, atomic
//! renames that never replace an artifact, and the sweep of temporaries a killed process left.

use std::io;
use std::path::Path;

/// A hidden temporary file in `dir`, named `.tmp-…` so it is never mistaken for an artifact.
/// Its mode is 0666 less the process's umask, as any file a program writes: the tree can be
/// served by a static file server running as another user (tempfile's own default, 0600, is
/// for secrets).
pub fn temp_file(dir: &Path) -> Result<tempfile::NamedTempFile, String> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(|e| format!("create temporary file in {}: {e}", dir.display()))
}

/// Renames a temporary file to its final name unless that already exists (artifacts are
/// immutable: the first complete copy wins); whether this copy was the one put in place. A
/// temporary file on another filesystem (staged where the final place was not known yet) is
/// copied beside the final name first.
pub fn persist(tmp: tempfile::TempPath, path: &Path) -> Result<bool, String> {
    if path.exists() {
        return Ok(false);
    }
    let tmp = match tmp.persist_noclobber(path) {
        Ok(()) => return Ok(true),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        // EXDEV: another filesystem.
        Err(e) if e.error.raw_os_error() == Some(18) => e.path,
        Err(e) => return Err(format!("rename to {}: {}", path.display(), e.error)),
    };
    let dir = parent(path)?;
    let copy = temp_file(dir)?;
    std::fs::copy(&tmp, copy.path())
        .and_then(|_| copy.as_file().sync_all())
        .map_err(|e| format!("copy to {}: {e}", copy.path().display()))?;
    persist(copy.into_temp_path(), path)
}

/// The directory `path` is in.
pub fn parent(path: &Path) -> Result<&Path, String> {
    path.parent()
        .ok_or_else(|| format!("{} has no parent directory", path.display()))
}

/// Whether an error opening a stored file means "not stored": missing, a path component that
/// is a file (ENOTDIR), or a name too long for the filesystem (ENAMETOOLONG).
pub fn is_absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || matches!(e.raw_os_error(), Some(20 | 36))
}

/// A temporary file older than this is left over from a process that died: no live download
/// goes this long without writing (upstream requests time out well before).
pub const STALE_TEMPORARY: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Removes `.tmp-*` files under `root` last modified more than `age` ago; returns how many.
pub fn sweep_temporaries(root: &Path, age: std::time::Duration) -> usize {
    let mut removed = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file()
                && entry.file_name().to_string_lossy().starts_with(".tmp-")
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|e| e > age))
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// The versions committed in a GOPROXY `@v` directory: the names of its `<escaped
/// version>.info` files (temporaries and names that do not unescape left out). A missing
/// directory lists nothing. Blocking.
pub fn versions_in(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if is_absent(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut versions = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(escaped) = name.strip_suffix(".info") else {
            continue;
        };
        if escaped.starts_with('.') {
            continue; // a temporary file
        }
        if let Ok(v) = crate::goproxy::escape::unescape_version(escaped) {
            versions.push(v);
        }
    }
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn stale_temporaries_are_swept_and_artifacts_kept() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("example.com/m/@v");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let old = SystemTime::now() - Duration::from_secs(3600);
        for name in [".tmp-old", "v1.0.0.zip", "v1.0.0.info"] {
            let f = std::fs::File::create(dir.join(name)).expect("create");
            f.set_modified(old).expect("set mtime");
        }
        std::fs::File::create(dir.join(".tmp-fresh")).expect("create");
        assert_eq!(sweep_temporaries(root.path(), STALE_TEMPORARY), 1);
        assert!(!dir.join(".tmp-old").exists());
        assert!(dir.join(".tmp-fresh").exists());
        assert!(dir.join("v1.0.0.zip").exists());
    }

    #[test]
    fn committed_versions_come_from_info_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("example.com/m/@v");
        std::fs::create_dir_all(&dir).expect("mkdir");
        for name in [
            "v1.0.0.info",
            "v1.0.0.zip",
            "v1.1.0.mod",
            ".tmp-x.info",
            "v1.2.0.info",
            "v1.3.0-!r!c1.info",
        ] {
            std::fs::write(dir.join(name), "x").expect("write");
        }
        let mut v = versions_in(&dir).expect("list");
        v.sort();
        assert_eq!(v, ["v1.0.0", "v1.2.0", "v1.3.0-RC1"]);
        let missing = root.path().join("example.com/none/@v");
        assert!(versions_in(&missing).expect("list").is_empty());
    }

    #[test]
    fn persist_never_replaces_and_crosses_filesystems() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("v1.0.0.zip");
        let first = temp_file(dir.path()).expect("tmp");
        std::fs::write(first.path(), "first").expect("write");
        persist(first.into_temp_path(), &target).expect("persist");
        let second = temp_file(dir.path()).expect("tmp");
        std::fs::write(second.path(), "second").expect("write");
        persist(second.into_temp_path(), &target).expect("persist");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "first");
        // /dev/shm is another filesystem on Linux when it exists.
        if let Ok(elsewhere) = tempfile::tempdir_in("/dev/shm") {
            let staged = temp_file(elsewhere.path()).expect("tmp");
            std::fs::write(staged.path(), "moved").expect("write");
            let other = dir.path().join("v1.1.0.zip");
            persist(staged.into_temp_path(), &other).expect("persist across filesystems");
            assert_eq!(std::fs::read_to_string(&other).expect("read"), "moved");
        }
    }
}
