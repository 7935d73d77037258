//! `cargo test` runs these natively (no modgate needed): `decide` is plain Rust.

use modgate_plugin_sdk::{Decision, RequestFacts};

use super::{Config, Team, decide};

fn config(trusted_proxies: &[&str]) -> Config {
    let team = |name: &str, token: &str, module: &str, net: &str| Team {
        name: name.into(),
        sha256: format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(token)),
        modules: vec![module.into()],
        networks: vec![net.parse().expect("network")],
    };
    Config {
        teams: vec![
            team("payments", "pay", "corp.example/payments", "127.0.0.0/8"),
            team("search", "find", "corp.example/search", "10.20.0.0/16"),
        ],
        trusted_proxies: trusted_proxies
            .iter()
            .map(|n| n.parse().expect("net"))
            .collect(),
    }
}

fn request(module: &str, peer: &str, headers: &[(&str, &str)]) -> RequestFacts {
    let mut req = RequestFacts::example();
    req.module = Some(module.into());
    req.peer_addr = peer.into();
    req.headers = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    req
}

/// "allow TEAM", "deny STATUS MESSAGE" or "abstain".
fn outcome(config: &Config, req: &RequestFacts) -> String {
    match decide(config, req) {
        Decision::Allow(a) => format!("allow {}", a.principal),
        Decision::Deny(d) => format!("deny {} {}", d.status, d.message),
        Decision::Abstain => "abstain".into(),
    }
}

const PAYMENTS: &str = "corp.example/payments/hello";
const BEARER_PAY: (&str, &str) = ("authorization", "Bearer pay");
const BEARER_FIND: (&str, &str) = ("authorization", "Bearer find");

#[test]
fn tokens_decide_the_team_and_its_modules() {
    let c = config(&[]);
    let local = "127.0.0.1:50000";
    assert_eq!(
        outcome(&c, &request(PAYMENTS, local, &[BEARER_PAY])),
        "allow payments"
    );
    // base64("payments:pay"): a .netrc entry's Basic auth.
    let basic = ("authorization", "Basic cGF5bWVudHM6cGF5");
    assert_eq!(
        outcome(&c, &request(PAYMENTS, local, &[basic])),
        "allow payments"
    );
    assert_eq!(outcome(&c, &request(PAYMENTS, local, &[])), "abstain");
    let wrong = ("authorization", "Bearer nope");
    let got = outcome(&c, &request(PAYMENTS, local, &[wrong]));
    assert_eq!(got, "deny 401 invalid credentials");
    let got = outcome(
        &c,
        &request("corp.example/search/index", local, &[BEARER_PAY]),
    );
    assert_eq!(
        got,
        "deny 403 team payments may not download corp.example/search/index"
    );
    // A prefix covers whole path elements only.
    let got = outcome(&c, &request("corp.example/paymentsx", local, &[BEARER_PAY]));
    assert_eq!(
        got,
        "deny 403 team payments may not download corp.example/paymentsx"
    );
}

#[test]
fn networks_use_the_peer_and_unmap_ipv4_mapped_addresses() {
    let c = config(&[]);
    let got = outcome(
        &c,
        &request("corp.example/search/index", "127.0.0.1:1", &[BEARER_FIND]),
    );
    assert_eq!(got, "deny 403 team search may not download from 127.0.0.1");
    let mapped = "[::ffff:10.20.3.4]:1";
    let got = outcome(
        &c,
        &request("corp.example/search/index", mapped, &[BEARER_FIND]),
    );
    assert_eq!(got, "allow search");
}

#[test]
fn x_forwarded_for_counts_only_from_trusted_proxies() {
    let search = "corp.example/search/index";
    let xff = |v: &'static str| [BEARER_FIND, ("x-forwarded-for", v)];
    // Anyone may send the header: without trusted proxies it changes nothing.
    let got = outcome(
        &config(&[]),
        &request(search, "127.0.0.1:1", &xff("10.20.3.4")),
    );
    assert_eq!(got, "deny 403 team search may not download from 127.0.0.1");
    // From a trusted proxy, the rightmost hop it added is the client...
    let c = config(&["127.0.0.1/32"]);
    let got = outcome(&c, &request(search, "127.0.0.1:1", &xff("10.20.3.4")));
    assert_eq!(got, "allow search");
    // ...not what the client claimed further left.
    let got = outcome(
        &c,
        &request(search, "127.0.0.1:1", &xff("10.20.3.4, 192.0.2.7")),
    );
    assert_eq!(got, "deny 403 team search may not download from 192.0.2.7");
    let got = outcome(&c, &request(search, "127.0.0.1:1", &xff("junk")));
    assert_eq!(got, "deny 400 team-auth: unreadable client address");
}
