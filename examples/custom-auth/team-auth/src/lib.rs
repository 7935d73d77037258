//! team-auth: a modgate auth plugin. Each team has a token (kept in the config only as its
//! sha256), the module paths it may download and the client networks it may download from.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use modgate_plugin_sdk::{
    Action, Authorizer, Decision, RequestFacts, config, error, export_authorizer, warn,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The plugin's `config` table in modgate.toml.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub teams: Vec<Team>,
    /// Reverse proxies whose `X-Forwarded-For` header is believed. None by default: anyone can
    /// send that header, so only a proxy you run may tell us who its client is.
    #[serde(default)]
    pub trusted_proxies: Vec<IpNet>,
}

/// One `[[plugins.team-auth.config.teams]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub name: String,
    /// The sha256 of the team's token in lower-case hex (`printf %s TOKEN | sha256sum`).
    pub sha256: String,
    /// Module path prefixes, as in GOPRIVATE: `corp.example/payments` covers itself and
    /// everything below it.
    pub modules: Vec<String>,
    /// Client networks the team may download from (`10.20.0.0/16`, `::1/128`).
    pub networks: Vec<IpNet>,
}

struct TeamAuth;

impl Authorizer for TeamAuth {
    fn authorize(req: &RequestFacts) -> Decision {
        match load() {
            Ok(config) => {
                let decision = decide(&config, req);
                if let Decision::Deny(deny) = &decision {
                    // Into modgate's log, tagged with this plugin's name.
                    warn!("{} {}: {}", req.peer_addr, req.path, deny.message);
                }
                decision
            }
            Err(problem) => {
                error!("{problem}");
                // Fail closed, and keep the details for the operator.
                Decision::forbidden("team-auth: invalid config (see the server log)")
            }
        }
    }
}

export_authorizer!(TeamAuth);

/// Reads and checks the config. modgate runs every call in a fresh instance, so this runs on
/// every request; for a few teams that takes microseconds.
fn load() -> Result<Config, String> {
    let config: Config = config::get().map_err(|e| e.to_string())?;
    for team in &config.teams {
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if team.sha256.len() != 64 || !team.sha256.bytes().all(hex) {
            return Err(format!(
                "team {}: `sha256` must be 64 lower-case hex digits",
                team.name
            ));
        }
    }
    Ok(config)
}

/// The decision: who (the token), from where (the client address), what (the module).
/// Plain Rust without host calls, so `cargo test` can run it natively.
pub fn decide(config: &Config, req: &RequestFacts) -> Decision {
    // `Authorization: Bearer TOKEN` from a GOAUTH command, or Basic auth with the token as
    // password from a .netrc entry (the login is ignored).
    let token = match (req.bearer_token(), req.basic_auth()) {
        (Some(token), _) => token.to_string(),
        (None, Some((_login, password))) => password,
        // No credentials: not ours to decide (when every plugin abstains, modgate answers 401).
        (None, None) => return Decision::Abstain,
    };
    let hash = format!("{:x}", Sha256::digest(token.as_bytes()));
    // `ct_eq` takes as long for a near miss as for a far one: timing tells an attacker nothing.
    let team = config
        .teams
        .iter()
        .find(|team| bool::from(team.sha256.as_bytes().ct_eq(hash.as_bytes())));
    let Some(team) = team else {
        // The same answer for every module, so a stranger learns nothing about what exists.
        return Decision::unauthorized("invalid credentials");
    };

    let Some(client) = client_ip(config, req) else {
        return Decision::deny(400, "team-auth: unreadable client address");
    };
    if !team.networks.iter().any(|net| net.contains(&client)) {
        return Decision::forbidden(format!("team {} may not download from {client}", team.name));
    }

    if req.action != Action::Read {
        return Decision::forbidden("team-auth allows downloads only");
    }
    // Requests that name no module (checksum database lookups) need only a valid token.
    if let Some(module) = &req.module
        && !team.modules.iter().any(|prefix| covers(prefix, module))
    {
        return Decision::forbidden(format!("team {} may not download {module}", team.name));
    }
    Decision::allow(&team.name, ["read"])
}

/// The client's address: the TCP peer, or, when the peer is a trusted proxy, the address that
/// proxy put in `X-Forwarded-For` (walking right to left past further trusted proxies).
fn client_ip(config: &Config, req: &RequestFacts) -> Option<IpAddr> {
    let peer: SocketAddr = req.peer_addr.parse().ok()?;
    // A dual-stack listener (`[::]:8443`) sees an IPv4 client 10.1.2.3 as ::ffff:10.1.2.3;
    // `to_canonical` turns that back into 10.1.2.3 so IPv4 networks match it.
    let mut ip = peer.ip().to_canonical();
    let trusted = |ip: &IpAddr| config.trusted_proxies.iter().any(|net| net.contains(ip));
    let mut hops = req
        .headers
        .iter()
        .filter(|(name, _)| name == "x-forwarded-for")
        .flat_map(|(_, value)| value.split(','))
        .rev();
    while trusted(&ip) {
        match hops.next().map(|hop| hop.trim().parse::<IpAddr>()) {
            Some(Ok(hop)) => ip = hop.to_canonical(),
            Some(Err(_)) => return None,
            None => break, // the proxy's own request
        }
    }
    Some(ip)
}

/// Whether the GOPRIVATE-style `prefix` covers `module`: the same path or a path below it.
fn covers(prefix: &str, module: &str) -> bool {
    module
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests;
