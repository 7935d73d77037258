//! The layout of a GOPROXY tree, as plain Rust.

use modgate_plugin_sdk::storage::Artifact;

/// The plugin's `config` table.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The tree's root: an absolute path (the host resolves a relative `root` against the
    /// config file's directory and grants it to this plugin).
    pub root: String,
}

/// A GOPROXY tree under `root`.
#[derive(Debug)]
pub struct Tree {
    root: String,
}

impl Tree {
    /// The tree under `root`, which must be absolute.
    pub fn new(root: &str) -> Result<Self, String> {
        if !root.starts_with('/') {
            return Err(format!("root {root:?} is not an absolute path"));
        }
        Ok(Tree {
            root: root.trim_end_matches('/').to_string(),
        })
    }

    /// `<root>/<module>/@v/<version>.<ext>`.
    pub fn path(&self, artifact: &Artifact) -> Result<String, String> {
        check_module(&artifact.module)?;
        check_version(&artifact.version)?;
        Ok(artifact.path_in(&self.root))
    }

    /// `<root>/<module>/@v`, where the `.info` files name the committed versions.
    pub fn versions_dir(&self, module: &str) -> Result<String, String> {
        check_module(module)?;
        Ok(format!("{}/{module}/@v", self.root))
    }
}

/// Defence in depth: the host has validated the module path, but nothing that could leave the
/// root (empty, `.` or `..` elements) is ever joined to it.
fn check_module(module: &str) -> Result<(), String> {
    if module.is_empty()
        || module
            .split('/')
            .any(|e| e.is_empty() || e == "." || e == ".." || e.contains('\\'))
    {
        return Err(format!(
            "module path {module:?} does not map to a file path"
        ));
    }
    Ok(())
}

fn check_version(version: &str) -> Result<(), String> {
    if version.is_empty() || version.starts_with('.') || version.contains(['/', '\\']) {
        return Err(format!("version {version:?} does not map to a file name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use modgate_plugin_sdk::storage::ArtifactKind;

    fn artifact(module: &str, version: &str, kind: ArtifactKind) -> Artifact {
        Artifact {
            module: module.into(),
            version: version.into(),
            kind,
        }
    }

    #[test]
    fn artifacts_map_to_a_goproxy_tree() {
        let tree = Tree::new("/srv/data/").expect("absolute");
        let a = artifact("github.com/!azure/x", "v1.0.0-!r!c1", ArtifactKind::Ziphash);
        assert_eq!(
            tree.path(&a).expect("maps"),
            "/srv/data/github.com/!azure/x/@v/v1.0.0-!r!c1.ziphash"
        );
        assert_eq!(
            tree.versions_dir("gopkg.in/yaml.v3").expect("maps"),
            "/srv/data/gopkg.in/yaml.v3/@v"
        );
    }

    #[test]
    fn nothing_leaves_the_root() {
        let tree = Tree::new("/srv/data").expect("absolute");
        for module in ["", "../x", "a//b", "a/./b", "a/..", "a\\b"] {
            let a = artifact(module, "v1.0.0", ArtifactKind::Info);
            assert!(tree.path(&a).is_err(), "{module:?}");
            assert!(tree.versions_dir(module).is_err(), "{module:?}");
        }
        for version in ["", ".hidden", "v1/../../x", "v1\\x"] {
            let a = artifact("example.com/m", version, ArtifactKind::Zip);
            assert!(tree.path(&a).is_err(), "{version:?}");
        }
        assert!(Tree::new("relative/root").is_err());
    }
}
