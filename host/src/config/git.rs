//! Git sources in `[[route]] sources` and the `[git]` table: a route's source list mixes
//! `[upstream.NAME]` names and inline `{ git = … }` tables, resolved here into the route's
//! upstream entries and its [`GitRoute`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::gitsource::{Credentials, RepoMapping, RepoTemplate};
use crate::goproxy::path::ModulePath;
use crate::route::Pattern;
use crate::upstream::SourceEntry;

/// `[git]`: where clones of remote repositories are kept and how often they are fetched.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitFile {
    /// Directory for bare clones of remote repositories (relative to the config file).
    pub cache_dir: PathBuf,
    /// A remote is fetched again for lists, `@latest`, branches and short hashes once its last
    /// fetch is this old. Canonical versions and full hashes never wait for it.
    #[serde(with = "humantime_serde")]
    pub fetch_ttl: Duration,
}

impl Default for GitFile {
    fn default() -> Self {
        Self {
            cache_dir: PathBuf::from("./modgate-git"),
            fetch_ttl: Duration::from_secs(60),
        }
    }
}

/// Resolved `[git]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSettings {
    /// Absolute, or relative to the working directory.
    pub cache_dir: PathBuf,
    pub fetch_ttl: Duration,
}

/// The git repositories of one route, and where they sit among its sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRoute {
    /// `{ git = URL, module = PATH }` entries.
    pub mappings: Vec<RepoMapping>,
    /// `{ git = "…{path}…" }` entries.
    pub templates: Vec<RepoTemplate>,
    /// The git entries come before the route's upstream proxies (else after them).
    pub first: bool,
}

/// Keys of an inline `{ git = … }` source.
const GIT_KEYS: &str = "git, module, root_elements, username, secret, known_hosts";

/// What [`resolve_sources`] needs from the rest of the configuration.
pub(super) struct SourceContext<'a> {
    /// `route[N].sources`, for messages.
    pub key: String,
    /// The route's patterns: a fixed mapping's module must be one the route serves.
    pub patterns: &'a [Pattern],
    pub upstreams: &'a std::collections::BTreeMap<&'a str, Vec<SourceEntry>>,
    pub base_dir: &'a Path,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// Resolves a route's `sources`: names of upstream tables (their entries joined in order) and
/// git tables. Errors are `(key, message)`.
pub(super) fn resolve_sources(
    values: &[toml::Value],
    cx: &SourceContext<'_>,
) -> Result<(Vec<SourceEntry>, Option<GitRoute>), (String, String)> {
    let mut entries = Vec::new();
    let mut git = GitRoute {
        mappings: Vec::new(),
        templates: Vec::new(),
        first: false,
    };
    // Git entries must sit together, so the order "proxies, then git" (or the reverse) is
    // the whole story of a route's fall-through.
    let mut seen_proxy_before_git = false;
    let mut seen_git = false;
    let mut git_closed = false;
    for (i, value) in values.iter().enumerate() {
        let key = format!("{}[{i}]", cx.key);
        match value {
            toml::Value::String(name) => {
                let e = cx
                    .upstreams
                    .get(name.as_str())
                    .ok_or_else(|| (cx.key.clone(), format!("no [upstream.{name}] table")))?;
                entries.extend(e.iter().cloned());
                if seen_git {
                    git_closed = true;
                } else {
                    seen_proxy_before_git = true;
                }
            }
            toml::Value::Table(table) => {
                if git_closed {
                    return Err((
                        key,
                        "git sources must be listed together, all before or all after the upstream names".into(),
                    ));
                }
                if !seen_git {
                    git.first = !seen_proxy_before_git;
                }
                seen_git = true;
                resolve_git(table, &key, cx, &mut git)?;
            }
            other => {
                return Err((
                    key,
                    format!(
                        "expected an [upstream.NAME] name or a {{ git = … }} table, found a {}",
                        other.type_str()
                    ),
                ));
            }
        }
    }
    let git = seen_git.then_some(git);
    Ok((entries, git))
}

fn resolve_git(
    table: &toml::Table,
    key: &str,
    cx: &SourceContext<'_>,
    git: &mut GitRoute,
) -> Result<(), (String, String)> {
    let field = |name: &str| format!("{key}.{name}");
    let string = |name: &str| -> Result<Option<String>, (String, String)> {
        match table.get(name) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err((
                field(name),
                format!("must be a string, found a {}", v.type_str()),
            )),
        }
    };
    if let Some(unknown) = table
        .keys()
        .find(|k| !GIT_KEYS.split(", ").any(|g| g == *k))
    {
        return Err((
            field(unknown),
            format!("unknown key for a git source (expected one of {GIT_KEYS})"),
        ));
    }
    let url = string("git")?.ok_or_else(|| {
        (
            field("git"),
            "missing: a source table is { git = \"URL\" } (an upstream is named by a string)"
                .into(),
        )
    })?;
    let url = resolve_url(&url, cx.base_dir).map_err(|m| (field("git"), m))?;
    let templated = url.contains("{path}") || url.contains("{module}");
    let ssh = crate::gitsource::is_ssh(&url);
    let secret = match string("secret")? {
        None => None,
        Some(name) if !super::secret::is_name(&name) => {
            return Err((
                field("secret"),
                format!("`{name}` is not an environment variable name"),
            ));
        }
        Some(name) => {
            let value = super::secret::lookup(&name, cx.env)
                .map_err(|m| (field("secret"), m))?
                .ok_or_else(|| {
                    (
                        field("secret"),
                        format!("neither {name} nor {name}_FILE is set in the environment"),
                    )
                })?;
            Some((name, value))
        }
    };
    let known_hosts = string("known_hosts")?;
    let credentials = if ssh {
        if table.contains_key("username") {
            return Err((
                field("username"),
                "not used with ssh: the user is part of the address (ssh://git@host/… or git@host:…)".into(),
            ));
        }
        let Some((name, key)) = secret else {
            return Err((
                field("secret"),
                "missing: an ssh source needs the deploy key (the name of the secret holding it)"
                    .into(),
            ));
        };
        if !(key.trim_start().starts_with("-----BEGIN ") && key.contains(" PRIVATE KEY-----")) {
            return Err((
                field("secret"),
                format!("{name} does not hold a private key (OpenSSH or PEM text)"),
            ));
        }
        let known_hosts = known_hosts.ok_or_else(|| {
            (
                field("known_hosts"),
                "missing: an ssh source needs a known_hosts file with its server's host key (host keys are never trusted on first use; `ssh-keyscan -p PORT HOST` prints them)".into(),
            )
        })?;
        let path = cx.base_dir.join(&known_hosts);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| (field("known_hosts"), format!("{}: {e}", path.display())))?;
        if !text
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        {
            return Err((
                field("known_hosts"),
                format!("{}: no host keys in it", path.display()),
            ));
        }
        Some(Credentials::Ssh {
            key,
            known_hosts: path,
        })
    } else {
        if known_hosts.is_some() {
            return Err((field("known_hosts"), "only used with ssh sources".into()));
        }
        match secret {
            None => {
                if table.contains_key("username") {
                    return Err((
                        field("username"),
                        "only used with `secret` (the password or token)".into(),
                    ));
                }
                None
            }
            Some(_) if !url.starts_with("https://") => {
                return Err((
                    field("secret"),
                    "credentials are only ever sent to https:// and ssh remotes".into(),
                ));
            }
            Some((_, password)) => Some(Credentials::Basic {
                username: string("username")?.unwrap_or_else(|| "modgate".into()),
                password,
            }),
        }
    };
    let root_elements = match table.get("root_elements") {
        None => None,
        Some(toml::Value::Integer(n)) if *n >= 2 && *n <= 64 => Some(*n as usize),
        Some(_) => {
            return Err((
                field("root_elements"),
                "must be an integer from 2 (host/repo) to 64".into(),
            ));
        }
    };
    match (templated, string("module")?) {
        (true, Some(_)) => Err((
            field("module"),
            "not used with a URL template ({path} or {module} in `git`)".into(),
        )),
        (true, None) => {
            git.templates.push(RepoTemplate {
                url,
                credentials,
                root_elements,
            });
            Ok(())
        }
        (false, None) => Err((
            field("module"),
            "missing: a git URL without {path} or {module} needs the module path of the repository root".into(),
        )),
        (false, Some(module)) => {
            if root_elements.is_some() {
                return Err((
                    field("root_elements"),
                    "only used with a URL template".into(),
                ));
            }
            let path = ModulePath::parse(&module)
                .map_err(|e| (field("module"), format!("`{module}` is not a module path: {e}")))?;
            if !cx.patterns.iter().any(|p| p.matches(path.as_str())) {
                return Err((
                    field("module"),
                    format!("`{module}` is not matched by the route's `match`, so it would never be served"),
                ));
            }
            git.mappings.push(RepoMapping {
                module_prefix: path.as_str().to_owned(),
                url,
                credentials,
            });
            Ok(())
        }
    }
}

/// Checks a repository URL's scheme; a local path is made absolute against the config's
/// directory.
fn resolve_url(url: &str, base_dir: &Path) -> Result<String, String> {
    const SCHEMES: &str = "https, http, ssh, git, file, an scp-like user@host:path or a local path";
    if url.is_empty() {
        return Err("empty URL".into());
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        return match scheme {
            "https" | "http" | "git" | "ssh" => {
                if rest.is_empty() || rest.starts_with('/') {
                    Err(format!("`{url}` has no host"))
                } else if scheme == "ssh" && !rest.contains('/') {
                    Err(format!("`{url}` has no repository path"))
                } else {
                    Ok(url.to_owned())
                }
            }
            "file" if rest.starts_with('/') => Ok(url.to_owned()),
            "file" => Err(format!("`{url}`: a file:// URL needs an absolute path")),
            other => Err(format!(
                "`{url}`: scheme {other} is not supported ({SCHEMES})"
            )),
        };
    }
    if crate::gitsource::is_scp_like(url) {
        let (host, path) = url.split_once(':').unwrap_or_default();
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        return if host.is_empty() || host.starts_with('-') {
            Err(format!("`{url}` has no host"))
        } else if path.is_empty() {
            Err(format!("`{url}` has no repository path"))
        } else {
            Ok(url.to_owned())
        };
    }
    let p = Path::new(url);
    Ok(if p.is_absolute() {
        url.to_owned()
    } else {
        base_dir.join(p).display().to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let base = Path::new("/etc/modgate");
        assert!(resolve_url("https://git.corp.example/{path}.git", base).is_ok());
        assert_eq!(
            resolve_url("repos/{module}", base).as_deref(),
            Ok("/etc/modgate/repos/{module}")
        );
        assert!(resolve_url("ssh://git@git.corp.example:2222/x.git", base).is_ok());
        assert!(resolve_url("git@git.corp.example:{path}.git", base).is_ok());
        assert!(resolve_url("git.corp.example:x.git", base).is_ok());
        assert!(resolve_url("ssh://git.corp.example", base).is_err());
        assert!(resolve_url("git@:x.git", base).is_err());
        assert!(resolve_url("git@host:", base).is_err());
        assert!(resolve_url("-oProxyCommand=x:y", base).is_err());
        assert!(resolve_url("svn://host/x", base).is_err());
        // A relative path with a colon after a slash is a path, as for git.
        assert_eq!(
            resolve_url("./a:b", base).as_deref(),
            Ok("/etc/modgate/./a:b")
        );
        assert!(resolve_url("file://relative/x", base).is_err());
        assert!(resolve_url("https:///x", base).is_err());
    }
}
