//! `router-prefix`: names the route for a request from its `Host` header (`by_host`) or, failing
//! that, from the longest configured prefix of its module path (`by_prefix`). See the README.

use std::collections::BTreeMap;

use modgate_plugin_sdk::{RequestFacts, Router, config, export_router, memo};

/// The plugin's `config` table.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routes {
    /// Host name (without port, any case) → route name.
    #[serde(default)]
    pub by_host: BTreeMap<String, String>,
    /// Module path prefix (whole path elements) → route name.
    #[serde(default)]
    pub by_prefix: BTreeMap<String, String>,
}

impl Routes {
    /// The route for `req`: by host first, then the longest module prefix, else none.
    pub fn route(&self, req: &RequestFacts) -> Option<String> {
        if let Some(host) = req.header("host") {
            // Strip a port (`host:8443`, `[::1]:8443`); host names are case-insensitive.
            let name = match host.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                _ => host,
            };
            let found = self
                .by_host
                .iter()
                .find(|(h, _)| h.eq_ignore_ascii_case(name.trim_end_matches('.')));
            if let Some((_, route)) = found {
                return Some(route.clone());
            }
        }
        let module = req.module.as_deref()?;
        self.by_prefix
            .iter()
            .filter(|(prefix, _)| {
                let prefix = prefix.trim_end_matches('/');
                // Whole elements: `corp.example/team-b` does not own `corp.example/team-bx`.
                module
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .max_by_key(|(prefix, _)| prefix.trim_end_matches('/').len())
            .map(|(_, route)| route.clone())
    }
}

struct RouterPrefix;

/// How long the host may reuse an answer (capped by the plugin's `limits.memo_ttl_ms`); the
/// config cannot change without a reload, which forgets every answer.
const MEMO_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

impl Router for RouterPrefix {
    fn route(req: &RequestFacts) -> Option<String> {
        // The config is fixed for an instance's life (a reload builds new instances).
        static ROUTES: std::sync::OnceLock<Result<Routes, String>> = std::sync::OnceLock::new();
        match ROUTES.get_or_init(|| config::get::<Routes>().map_err(|e| e.to_string())) {
            Ok(routes) => {
                // The answer depends on the Host header and the module path only: the host may
                // give it to every request that agrees on both without asking again.
                memo::remember(
                    &memo::DependsOn::nothing().header("host").module(),
                    MEMO_TTL,
                );
                routes.route(req)
            }
            Err(e) => {
                modgate_plugin_sdk::error!("router-prefix: {e}");
                // Falling back to the TOML routes could serve a tenant's request from another
                // tenant's route: fail the call instead (the host answers 5xx naming the plugin).
                panic!("router-prefix: {e}")
            }
        }
    }
}

export_router!(RouterPrefix);

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        let json = r#"{
            "by_host": { "tenant-a.modgate.corp": "tenant-a" },
            "by_prefix": { "corp.example": "corp", "corp.example/team-b": "tenant-b" }
        }"#;
        match serde_json::from_str(json) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    fn request(host: &str, module: Option<&str>) -> RequestFacts {
        let mut req = RequestFacts::example();
        req.headers.push(("host".into(), host.into()));
        req.module = module.map(str::to_string);
        req
    }

    #[test]
    fn host_first_then_longest_prefix() {
        let r = routes();
        for (host, module, want) in [
            (
                "tenant-a.modgate.corp",
                Some("corp.example/team-b/x"),
                Some("tenant-a"),
            ),
            ("Tenant-A.modgate.corp:8443", None, Some("tenant-a")),
            (
                "modgate.corp",
                Some("corp.example/team-b/x"),
                Some("tenant-b"),
            ),
            (
                "modgate.corp",
                Some("corp.example/team-b"),
                Some("tenant-b"),
            ),
            ("modgate.corp", Some("corp.example/team-bx"), Some("corp")),
            ("modgate.corp", Some("corp.example.evil/x"), None),
            ("modgate.corp", None, None),
        ] {
            assert_eq!(
                r.route(&request(host, module)).as_deref(),
                want,
                "{host} {module:?}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<Routes>(r#"{"by_path": {}}"#).is_err());
    }
}
