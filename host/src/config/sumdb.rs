//! Checksum-database verification: the `[gosumdb]` table (which database, where its newest tree
//! is kept) and a route's `sumdb` and `nosumdb` keys.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::route::Pattern;
use crate::sumdb::gosumdb::{DEFAULT_DB, Settings};
use crate::sumdb::note::Verifier;

/// `[gosumdb]`: the checksum database versions from upstream proxies are verified against.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GosumdbFile {
    /// As GOSUMDB names it: `sum.golang.org` (the go command's own database and key), or
    /// `<name>+<hash>+<key>` for another database reached through the same upstreams.
    pub db: String,
    /// Where the newest verified tree (and a misbehavior mark) is kept, relative to the file.
    pub dir: PathBuf,
}

impl Default for GosumdbFile {
    fn default() -> Self {
        Self {
            db: "sum.golang.org".into(),
            dir: PathBuf::from("./modgate-sumdb"),
        }
    }
}

/// `[[route]] sumdb`: whether versions from the route's upstream proxies are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteSumdb {
    /// Checked against `[gosumdb]` before they are stored (the default on routes with proxies).
    Verify,
    /// Not checked (zip rules and hashes of the upstream's own answers only).
    Off,
}

/// A route's verification, resolved.
#[derive(Debug, Clone, Default)]
pub struct SumdbRoute {
    /// Verify versions from upstream proxies.
    pub verify: bool,
    /// Modules the database cannot know (GONOSUMDB-style): never verified.
    pub skip: Vec<Pattern>,
}

impl SumdbRoute {
    /// Whether versions of `module` from the route's proxies are verified.
    pub fn verifies(&self, module: &str) -> bool {
        self.verify && !self.skip.iter().any(|p| p.matches(module))
    }
}

/// Resolves `[gosumdb]` (`relative` makes paths relative to the file).
pub(super) fn resolve(
    file: &GosumdbFile,
    relative: &dyn Fn(&Path) -> PathBuf,
) -> Result<Settings, (String, String)> {
    let db = file.db.trim();
    let vkey = match db {
        // The go command's aliases for its default database (`modfetch.dbDial`).
        "sum.golang.org" | "sum.golang.google.cn" => DEFAULT_DB,
        _ if db.contains('+') => db,
        _ => {
            return Err((
                "gosumdb.db".into(),
                format!(
                    "`{db}`: name a database by its verifier key (`<name>+<hash>+<key>`, as in \
                     GOSUMDB); only sum.golang.org is known by name"
                ),
            ));
        }
    };
    if db.split_whitespace().count() > 1 {
        return Err((
            "gosumdb.db".into(),
            "a database URL is not supported: modgate reaches the database through each \
             route's upstream proxies (`<proxy>/sumdb/<name>/`)"
                .into(),
        ));
    }
    let key = Verifier::parse(vkey).map_err(|e| ("gosumdb.db".to_owned(), format!("{e}")))?;
    Ok(Settings {
        name: key.name.clone(),
        key: vkey.to_owned(),
        dir: relative(&file.dir),
    })
}

/// Resolves a route's `sumdb` and `nosumdb` (`proxied`: the route has upstream proxies).
pub(super) fn resolve_route(
    sumdb: Option<RouteSumdb>,
    nosumdb: &[String],
    proxied: bool,
    key: &dyn Fn(&str) -> String,
) -> Result<SumdbRoute, (String, String)> {
    let skip = nosumdb
        .iter()
        .flat_map(|p| p.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| Pattern::parse(p).map_err(|m| (key("nosumdb"), m)))
        .collect::<Result<Vec<_>, _>>()?;
    let verify = match sumdb {
        Some(RouteSumdb::Verify) if !proxied => {
            return Err((
                key("sumdb"),
                "`verify` needs upstream proxies among the route's sources: versions from git \
                 or uploads are not in a public checksum database"
                    .into(),
            ));
        }
        Some(RouteSumdb::Verify) => true,
        Some(RouteSumdb::Off) => false,
        None => proxied,
    };
    Ok(SumdbRoute { verify, skip })
}
