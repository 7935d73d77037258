//! `[storage.NAME]`: every backend is a plugin. The built-in ones (`storage-fs`, `storage-s3`)
//! are the embedded plugins of the same names, loaded as plugin `storage.NAME` with settings
//! the host checks here and grants derived from them (the root directory; the endpoint and the
//! credentials' secrets); any other `plugin` names a `[plugins.NAME]` table.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{LimitsFile, PluginFile, StorageConfig, StorageFile, resolve_limits};
use crate::plugin::{Grants, Limits, PluginSource, PluginSpec};

/// A config error: the key and what is wrong with it.
type Problem = (String, String);

/// Resolves every `[storage.NAME]`, adding the built-in backends' plugins to `plugins`.
pub(super) fn resolve(
    tables: &BTreeMap<String, StorageFile>,
    plugin_tables: &BTreeMap<String, PluginFile>,
    plugins: &mut Vec<PluginSpec>,
    relative: &dyn Fn(&Path) -> std::path::PathBuf,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, StorageConfig>, Problem> {
    let mut storage = BTreeMap::new();
    for (name, st) in tables {
        let key = format!("storage.{name}");
        let plugin_name = format!("storage.{name}");
        let built_in = |embedded: &str, config, grants, timeout| -> Result<PluginSpec, Problem> {
            if plugins.iter().any(|p| p.name == plugin_name) {
                return Err((
                    format!("plugins.{plugin_name}"),
                    format!("the name is taken by [storage.{name}]'s built-in plugin"),
                ));
            }
            // Every request that is not a remembered plan waits for a call (after a restart,
            // every artifact's first request): a burst must queue, not be refused.
            let mut limits = Limits {
                timeout,
                max_queue: 65_536,
                ..Limits::default()
            };
            resolve_limits(&st.limits, &mut limits, &|field| format!("{key}.{field}"))?;
            Ok(PluginSpec {
                name: plugin_name.clone(),
                source: PluginSource::Embedded(embedded.into()),
                config,
                grants,
                limits,
                secret_values: BTreeMap::new(),
            })
        };
        let (resolved, spec) = match st.plugin.as_str() {
            "storage-fs" => {
                let fs: FsSettings = settings(&st.config, &key)?;
                let root = relative(Path::new(&fs.root));
                // Absolute, as the plugin and its grant need it (relative to the working
                // directory for the embedded defaults, which have no file).
                let root = std::path::absolute(&root).map_err(|e| {
                    (
                        format!("{key}.config.root"),
                        format!("{}: {e}", root.display()),
                    )
                })?;
                let root_text = root.to_str().ok_or_else(|| {
                    (
                        format!("{key}.config.root"),
                        "must be valid UTF-8".to_string(),
                    )
                })?;
                let mut config = toml::Table::new();
                config.insert("root".into(), toml::Value::String(root_text.to_owned()));
                let grants = Grants {
                    dirs: vec![root.clone()],
                    ..Grants::default()
                };
                // A plan is a string join; the budget covers a cold instance on a busy machine.
                let spec = built_in("storage-fs", config, grants, Duration::from_secs(1))?;
                (StorageConfig::Fs { root }, Some(spec))
            }
            "storage-s3" => {
                let s3: S3Settings = settings(&st.config, &key)?;
                let host = s3
                    .granted_host()
                    .map_err(|m| (format!("{key}.config.endpoint"), m))?;
                let mut names = vec![s3.access_key_secret.clone(), s3.secret_key_secret.clone()];
                names.extend(s3.session_token_secret.clone());
                let mut secret_values = BTreeMap::new();
                for secret in &names {
                    let value = env(secret).ok_or_else(|| {
                        (
                            format!("{key}.config"),
                            format!("environment variable {secret} (a credential) is not set"),
                        )
                    })?;
                    secret_values.insert(secret.clone(), value);
                }
                let grants = Grants {
                    hosts: vec![host],
                    secrets: names,
                    dirs: Vec::new(),
                };
                // Listings and multipart control requests wait on the object store.
                let mut spec = built_in(
                    "storage-s3",
                    st.config.clone(),
                    grants,
                    Duration::from_secs(15),
                )?;
                spec.secret_values = secret_values;
                let resolved = StorageConfig::S3 {
                    endpoint: s3.endpoint,
                    bucket: s3.bucket,
                    prefix: s3.prefix,
                };
                (resolved, Some(spec))
            }
            other if plugin_tables.contains_key(other) => {
                if !st.config.is_empty() {
                    return Err((
                        format!("{key}.config"),
                        format!("set the backend's config in [plugins.{other}] (its plugin)"),
                    ));
                }
                if !is_default(&st.limits) {
                    return Err((
                        format!("{key}.limits"),
                        format!("set the backend's limits in [plugins.{other}] (its plugin)"),
                    ));
                }
                let resolved = StorageConfig::Plugin {
                    plugin: other.to_owned(),
                };
                (resolved, None)
            }
            other => {
                return Err((
                    format!("{key}.plugin"),
                    format!(
                        "unknown storage plugin `{other}` (built in: storage-fs, storage-s3; or \
                         the name of a [plugins.NAME] table)"
                    ),
                ));
            }
        };
        plugins.extend(spec);
        storage.insert(name.clone(), resolved);
    }
    Ok(storage)
}

fn is_default(limits: &LimitsFile) -> bool {
    limits.timeout_ms.is_none()
        && limits.memory_mb.is_none()
        && limits.reuse_calls.is_none()
        && limits.memo_ttl_ms.is_none()
        && limits.max_concurrent.is_none()
        && limits.max_queue.is_none()
}

/// A built-in backend's `config` table as `T`; an unknown or mistyped key is named.
fn settings<T: for<'de> Deserialize<'de>>(config: &toml::Table, key: &str) -> Result<T, Problem> {
    toml::Value::Table(config.clone())
        .try_into()
        .map_err(|e: toml::de::Error| (format!("{key}.config"), e.message().to_string()))
}

/// `storage-fs`'s `config`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FsSettings {
    /// The GOPROXY tree's root (relative to the config file).
    root: String,
}

/// `storage-s3`'s `config` (the plugin reads the same table; see plugins/storage-s3).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(
    dead_code,
    reason = "read by the plugin; parsed here so a typo is a config error"
)]
struct S3Settings {
    endpoint: String,
    bucket: String,
    #[serde(default = "default_region")]
    region: String,
    #[serde(default)]
    prefix: String,
    #[serde(default = "default_addressing")]
    addressing: String,
    #[serde(default = "default_access_key_secret")]
    access_key_secret: String,
    #[serde(default = "default_secret_key_secret")]
    secret_key_secret: String,
    #[serde(default)]
    session_token_secret: Option<String>,
    #[serde(default)]
    presign_seconds: Option<u32>,
    #[serde(default)]
    part_size_mb: Option<u64>,
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_addressing() -> String {
    "path".into()
}
fn default_access_key_secret() -> String {
    "S3_ACCESS_KEY_ID".into()
}
fn default_secret_key_secret() -> String {
    "S3_SECRET_ACCESS_KEY".into()
}

impl S3Settings {
    /// The `host:port` the plugin's plans and requests go to.
    fn granted_host(&self) -> Result<String, String> {
        let uri: http::Uri = self
            .endpoint
            .parse()
            .map_err(|e| format!("{:?}: {e}", self.endpoint))?;
        let authority =
            crate::upstream::authority(&uri).map_err(|m| format!("{:?}: {m}", self.endpoint))?;
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(format!("{:?} must have no path", self.endpoint));
        }
        Ok(match self.addressing.as_str() {
            "path" => authority,
            "virtual" => format!("{}.{authority}", self.bucket),
            other => return Err(format!("addressing {other:?} is not `path` or `virtual`")),
        })
    }
}
