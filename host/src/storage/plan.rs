//! A storage plugin's plans, checked against its grants before the host does anything with
//! them, and remembered for as long as the plugin allows.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::plugin::storage::{HttpPlan, Operation, Plan};

/// A plan the host may carry out.
#[derive(Debug)]
pub enum Checked {
    /// A file inside a granted directory (symlinks resolved).
    File(PathBuf),
    /// A request to a granted `host:port`.
    Http(HttpPlan),
    /// Small bytes the plugin holds itself (get and head only).
    Inline(Bytes),
    /// Not stored, or nothing to remove.
    NotFound,
}

/// What a storage plugin may reach: its `grants.dirs` (as configured and with symlinks
/// resolved) and `grants.hosts`.
#[derive(Debug, Clone)]
pub struct Grants {
    dirs: Vec<(PathBuf, PathBuf)>,
    hosts: BTreeSet<String>,
}

impl Grants {
    /// The grants of a storage plugin; every granted directory is created when missing.
    pub fn new(dirs: &[PathBuf], hosts: &BTreeSet<String>) -> Result<Self, String> {
        let mut resolved = Vec::new();
        for dir in dirs {
            if !dir.is_absolute() {
                return Err(format!(
                    "granted directory {} is not absolute",
                    dir.display()
                ));
            }
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("create granted directory {}: {e}", dir.display()))?;
            let real = dir
                .canonicalize()
                .map_err(|e| format!("granted directory {}: {e}", dir.display()))?;
            resolved.push((lexical(dir), real));
        }
        Ok(Grants {
            dirs: resolved,
            hosts: hosts.clone(),
        })
    }

    /// The granted directories, symlinks resolved.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|(_, real)| real.as_path())
    }

    /// `plan` for `op` on an artifact (a zip when `zip`), if the plugin may ask for it.
    pub fn check(&self, plan: Plan, op: Operation, zip: bool) -> Result<Checked, String> {
        match plan {
            Plan::File(path) => self.check_path(&path).map(Checked::File),
            Plan::Http(http) => {
                self.check_url(&http.request.url)?;
                Ok(Checked::Http(http))
            }
            Plan::Inline(_) if zip => Err("a zip as inline bytes".into()),
            Plan::Inline(bytes) => match op {
                Operation::Get | Operation::Head => Ok(Checked::Inline(Bytes::from(bytes))),
                Operation::Put | Operation::Delete => Err(format!("inline bytes for {op:?}")),
            },
            Plan::NotFound if op == Operation::Put => Err("not-found for a put".into()),
            Plan::NotFound => Ok(Checked::NotFound),
        }
    }

    /// `path`, if it is absolute, has no `..` and stays inside a granted directory once the
    /// symlinks along it that exist are resolved.
    pub fn check_path(&self, path: &str) -> Result<PathBuf, String> {
        let p = Path::new(path);
        if !p.is_absolute() {
            return Err(format!("path {path:?} is not absolute"));
        }
        if p.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(format!("path {path:?} has a `..` element"));
        }
        let p = lexical(p);
        if !self
            .dirs
            .iter()
            .any(|(dir, real)| p.starts_with(dir) || p.starts_with(real))
        {
            return Err(format!("path {path:?} is outside grants.dirs"));
        }
        // The deepest part of the path that exists, with its symlinks resolved, must still be
        // inside a granted directory (the rest does not exist yet: the host creates it).
        let mut existing = p.as_path();
        while std::fs::symlink_metadata(existing).is_err() {
            existing = existing
                .parent()
                .ok_or_else(|| format!("path {path:?} is outside grants.dirs"))?;
        }
        let real = existing
            .canonicalize()
            .map_err(|e| format!("path {path:?}: {e}"))?;
        if !self.dirs.iter().any(|(_, dir)| real.starts_with(dir)) {
            return Err(format!(
                "path {path:?} leads outside grants.dirs (through a symlink to {})",
                real.display()
            ));
        }
        Ok(p)
    }

    /// `url`'s `host:port`, if granted.
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("url {url:?}: {e}"))?;
        let authority =
            crate::upstream::authority(&uri).map_err(|m| format!("url {url:?}: {m}"))?;
        if !self.hosts.contains(&authority) {
            return Err(format!("url to {authority}, which is not in grants.hosts"));
        }
        Ok(())
    }
}

/// `path` without `.` elements (it has no `..`).
fn lexical(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// Plans the plugin let the host reuse, by artifact and operation.
pub struct PlanCache {
    plans: quick_cache::sync::Cache<String, (Arc<Checked>, Instant)>,
}

impl PlanCache {
    /// A cache of at most `entries` plans.
    pub fn new(entries: usize) -> Self {
        PlanCache {
            plans: quick_cache::sync::Cache::new(entries.max(16)),
        }
    }

    /// The plan remembered under `key`, unless it expired.
    pub fn get(&self, key: &str) -> Option<Arc<Checked>> {
        let (plan, expires) = self.plans.get(key)?;
        if Instant::now() < expires {
            return Some(plan);
        }
        self.plans.remove(key);
        None
    }

    /// Remember `plan` under `key` for `reuse_ms` (nothing when zero).
    pub fn put(&self, key: String, plan: &Arc<Checked>, reuse_ms: u32) {
        if reuse_ms == 0 {
            return;
        }
        let now = Instant::now();
        let expires = now
            .checked_add(Duration::from_millis(u64::from(reuse_ms)))
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        self.plans.insert(key, (Arc::clone(plan), expires));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(dir: &Path, hosts: &[&str]) -> Grants {
        Grants::new(
            &[dir.to_path_buf()],
            &hosts.iter().map(|h| (*h).to_string()).collect(),
        )
        .expect("grants")
    }

    #[test]
    fn paths_stay_inside_the_granted_directories() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        let g = grants(&root, &[]);
        let inside = format!("{}/example.com/m/@v/v1.0.0.zip", root.display());
        assert_eq!(
            g.check_path(&inside).expect("inside"),
            PathBuf::from(&inside)
        );
        let dotted = format!("{}/./example.com/./m", root.display());
        assert!(g.check_path(&dotted).is_ok());
        for bad in [
            "/etc/passwd".to_string(),
            "relative/v1.0.0.zip".to_string(),
            format!("{}/../outside", root.display()),
            format!("{}-sibling/x", root.display()),
        ] {
            assert!(g.check_path(&bad).is_err(), "{bad}");
        }
        // A symlink inside the root that leads out of it.
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::os::unix::fs::symlink(&outside, root.join("link")).expect("symlink");
        let e = g
            .check_path(&format!("{}/link/m/@v/v1.0.0.zip", root.display()))
            .expect_err("through the symlink");
        assert!(e.contains("symlink"), "{e}");
        // A symlink to somewhere inside is fine.
        std::fs::create_dir_all(root.join("real")).expect("mkdir");
        std::os::unix::fs::symlink(root.join("real"), root.join("alias")).expect("symlink");
        assert!(g.check_path(&format!("{}/alias/x", root.display())).is_ok());
    }

    #[test]
    fn urls_go_only_to_granted_hosts() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let g = grants(tmp.path(), &["s3.corp.example:443", "127.0.0.1:7070"]);
        assert!(
            g.check_url("https://S3.corp.example/b/k?X-Amz-Signature=1")
                .is_ok()
        );
        assert!(g.check_url("http://127.0.0.1:7070/b/k").is_ok());
        for bad in [
            "http://127.0.0.1:7071/b/k",
            "https://s3.corp.example:8443/b",
            "http://s3.corp.example/b",
            "ftp://127.0.0.1:7070/x",
            "/relative",
        ] {
            assert!(g.check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn inline_and_not_found_only_where_they_make_sense() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let g = grants(tmp.path(), &[]);
        assert!(
            g.check(Plan::Inline(b"x".to_vec()), Operation::Get, false)
                .is_ok()
        );
        assert!(
            g.check(Plan::Inline(b"x".to_vec()), Operation::Get, true)
                .is_err()
        );
        assert!(
            g.check(Plan::Inline(b"x".to_vec()), Operation::Put, false)
                .is_err()
        );
        assert!(g.check(Plan::NotFound, Operation::Put, false).is_err());
        assert!(matches!(
            g.check(Plan::NotFound, Operation::Head, false),
            Ok(Checked::NotFound)
        ));
    }

    #[test]
    fn plans_expire() {
        let cache = PlanCache::new(16);
        let plan = Arc::new(Checked::NotFound);
        cache.put("a".into(), &plan, u32::MAX);
        cache.put("b".into(), &plan, 0);
        cache.put("c".into(), &plan, 1);
        std::thread::sleep(Duration::from_millis(5));
        assert!(cache.get("a").is_some());
        assert!(cache.get("b").is_none());
        assert!(cache.get("c").is_none());
    }
}
