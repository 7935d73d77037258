//! Allows with `principal` = its config as JSON, and one scope per probe the config asks for:
//! `secret:NAME=value` or `secret:NAME!error`, `http:STATUS:body` or `http!error`, and
//! `kv:value` after a set + get round trip. Tests read the grants through it.

use modgate_plugin_sdk::{
    Authorizer, Decision, RequestFacts, config, export_authorizer, http, kv, secrets,
};

#[derive(serde::Deserialize, Default)]
struct Probes {
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    http: Vec<String>,
    #[serde(default)]
    kv: Option<String>,
}

struct EchoConfig;

impl Authorizer for EchoConfig {
    fn authorize(_: &RequestFacts) -> Decision {
        let probes: Probes = match config::get() {
            Ok(p) => p,
            Err(e) => return Decision::deny(500, e.to_string()),
        };
        let mut scopes = Vec::new();
        for name in &probes.secrets {
            scopes.push(match secrets::get(name) {
                Ok(v) => format!("secret:{name}={v}"),
                Err(e) => format!("secret:{name}!{e}"),
            });
        }
        for url in &probes.http {
            scopes.push(match http::get(url) {
                Ok(r) => format!("http:{}:{}", r.status, String::from_utf8_lossy(&r.body)),
                Err(e) => format!("http!{e}"),
            });
        }
        if let Some(value) = &probes.kv {
            let before = kv::get("echo").map(|v| String::from_utf8_lossy(&v).into_owned());
            kv::set("echo", value.as_bytes(), None);
            scopes.push(format!("kv:{}", before.unwrap_or_default()));
        }
        Decision::allow(config::json(), scopes)
    }
}

export_authorizer!(EchoConfig);
