//! `modgate plugin test`: runs a plugin component under the host's own runtime against requests
//! given on the command line or in a TOML file of cases with the answers expected, for a
//! plugin author's CI.
//!
//! A cases file:
//!
//! ```toml
//! [config]                      # the plugin's config table, as under [plugins.NAME.config]
//! tokens = [ … ]
//!
//! [secrets]                     # granted secrets and their values
//! TEAM_TOKENS = "…"
//!
//! [[case]]
//! request = "GET /corp.example/x/@v/list"
//! headers = ["Authorization: Bearer good"]
//! peer = "10.20.0.7:41000"       # optional: the client's address
//! client = "CN=ci-7, O=Corp"    # optional: its verified TLS client certificate's subject
//! expect = "allow ci"           # the answer, or its beginning: "allow", "deny 403", "abstain",
//!                               # "route NAME", "none"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{Action, Decision, PluginSet, PluginSource, PluginSpec, RequestFacts};
use crate::goproxy::request::{InfoQuery, ProxyRequest};

/// One request to try.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// `METHOD /path`.
    pub request: String,
    /// `Name: value` lines.
    #[serde(default)]
    pub headers: Vec<String>,
    /// The client address (default `127.0.0.1:40000`).
    #[serde(default)]
    pub peer: Option<String>,
    /// The subject of the client certificate mutual TLS verified (`CN=ci-7, O=Corp`).
    #[serde(default)]
    pub client: Option<String>,
    /// The expected answer, or its beginning.
    #[serde(default)]
    pub expect: Option<String>,
}

/// A cases file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cases {
    #[serde(default)]
    pub config: toml::Table,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub case: Vec<Case>,
}

impl Cases {
    /// Reads a cases file.
    pub fn read(path: &Path) -> Result<Cases, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// How a run went: one line per case, and whether every expectation held.
pub struct Report {
    pub lines: Vec<String>,
    pub passed: bool,
}

/// Runs `cases` against the component at `wasm`.
pub fn run(wasm: &Path, cases: &Cases) -> Result<Report, String> {
    let component = std::fs::read(wasm).map_err(|e| format!("{}: {e}", wasm.display()))?;
    let engine = super::build::tool_engine()?;
    let name = wasm
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin")
        .to_string();
    let mut spec = PluginSpec::new(name.clone(), PluginSource::Bytes(component.into()));
    spec.config = cases.config.clone();
    // Answers are what is tried here, not speed: a first call (instantiation, a Go runtime
    // starting) on a busy machine may take longer than a production deadline.
    spec.limits.timeout = std::time::Duration::from_secs(10);
    spec.grants.secrets = cases.secrets.keys().cloned().collect();
    spec.secret_values = cases.secrets.clone();
    let set = PluginSet::build(&[spec], &engine).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let mut lines = Vec::new();
    let mut passed = true;
    for case in &cases.case {
        let facts = facts(case)?;
        let answer = runtime.block_on(answer(&set, &name, &facts));
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => format!("failed: {e}"),
        };
        let line = format!("{} → {answer}", case.request);
        match &case.expect {
            Some(expect) if !answer.starts_with(expect.as_str()) => {
                passed = false;
                lines.push(format!("FAIL {line} (expected {expect})"));
            }
            Some(_) => lines.push(format!("ok   {line}")),
            None => lines.push(line),
        }
    }
    Ok(Report { lines, passed })
}

async fn answer(set: &PluginSet, name: &str, facts: &RequestFacts) -> Result<String, String> {
    if set.is_authorizer(name) {
        let ruling = set
            .authorize(name, facts)
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = match &ruling.decision {
            Decision::Allow(a) => format!("allow {} [{}]", a.principal, a.scopes.join(" ")),
            Decision::Deny(d) => format!("deny {} {}", d.status, d.message),
            Decision::Abstain => "abstain".into(),
        };
        for limit in &ruling.limits {
            answer.push_str(&format!(" (limit {})", limit.describe()));
        }
        Ok(answer)
    } else if set.is_router(name) {
        let route = set.route(name, facts).await.map_err(|e| e.to_string())?;
        Ok(match &*route {
            Some(route) => format!("route {route}"),
            None => "none".into(),
        })
    } else {
        Err("the plugin is neither an authorizer nor a router (plugin test tries those)".into())
    }
}

/// The facts modgate would give the plugin for `case`.
pub fn facts(case: &Case) -> Result<RequestFacts, String> {
    let (method, path) = case
        .request
        .split_once(' ')
        .map(|(m, p)| (m.trim().to_ascii_uppercase(), p.trim().to_string()))
        .ok_or_else(|| format!("request {:?}: expected \"METHOD /path\"", case.request))?;
    if !path.starts_with('/') {
        return Err(format!(
            "request {:?}: the path must start with /",
            case.request
        ));
    }
    let (module, version) = match crate::goproxy::request::parse(&path) {
        Ok(ProxyRequest::List { module } | ProxyRequest::Latest { module }) => {
            (Some(module.as_str().to_string()), None)
        }
        Ok(ProxyRequest::Info { module, version }) => (
            Some(module.as_str().to_string()),
            match version {
                InfoQuery::Canonical(v) => Some(v),
                InfoQuery::Query(_) => None,
            },
        ),
        Ok(ProxyRequest::Mod { module, version } | ProxyRequest::Zip { module, version }) => {
            (Some(module.as_str().to_string()), Some(version))
        }
        _ => (None, None),
    };
    let action = if path.starts_with("/admin/") {
        Action::Admin
    } else if method == "PUT" {
        Action::Publish
    } else {
        Action::Read
    };
    let headers = case
        .headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                .ok_or_else(|| format!("header {h:?}: expected \"Name: value\""))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RequestFacts {
        method,
        path,
        module,
        version,
        action,
        headers,
        peer_addr: case
            .peer
            .clone()
            .unwrap_or_else(|| "127.0.0.1:40000".into()),
        tls_client_identity: case.client.clone(),
    })
}
