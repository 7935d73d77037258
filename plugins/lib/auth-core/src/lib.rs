//! What modgate's first-party auth plugins (`auth-token`, `auth-htpasswd`, `auth-jwt`) share, as plain Rust
//! that tests run natively: reading the `Authorization` header the go command sends
//! ([`credential`]), GOPRIVATE-style module patterns ([`ModulePattern`]), scopes ([`Scope`]) and
//! the decision once a caller is known ([`decide_known`], [`decide_grants`]).
//!
//! Not a plugin itself: `host/build.rs` embeds only `plugins/<name>` crates, and this one lives
//! under `plugins/lib/`.

#![warn(missing_docs)]

mod pattern;

use base64::Engine as _;
use modgate_plugin_sdk::{Action, Decision, RequestFacts};

pub use pattern::{ModulePattern, PatternError};

/// SHA-256 of `data`: computed by the host (`crypto`, natively) inside a plugin, by `sha2` where
/// the policy code runs natively (its tests). `None` past the host's 1 MiB input cap, far above
/// any credential the host lets through.
pub fn sha256(data: &[u8]) -> Option<[u8; 32]> {
    #[cfg(target_arch = "wasm32")]
    {
        modgate_plugin_sdk::crypto::sha256(data)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use sha2::Digest as _;
        Some(sha2::Sha256::digest(data).into())
    }
}

/// The answer to a caller whose credentials do not check out. Identical whatever the module, so
/// an unauthenticated caller learns nothing about which private modules exist (GOPROXY.md §6).
pub const INVALID_CREDENTIALS: &str = "invalid credentials";

/// Credentials from an `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential {
    /// `Bearer <token>`: what a `GOAUTH` command prints.
    Bearer(String),
    /// `Basic base64(user:password)`: what the go command sends for a `.netrc` entry.
    Basic {
        /// The `login` of the `.netrc` entry.
        user: String,
        /// The `password` of the `.netrc` entry.
        password: String,
    },
}

/// An `Authorization` header that is neither a well-formed `Bearer` nor `Basic` one.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

/// The request's credentials: `Ok(None)` without an `Authorization` header.
///
/// Schemes are case-insensitive (RFC 9110 §11.1); Basic is RFC 7617 (standard base64 of
/// `user:password`, the password being everything after the first `:`).
pub fn credential(req: &RequestFacts) -> Result<Option<Credential>, Malformed> {
    let Some(value) = req.header("authorization") else {
        return Ok(None);
    };
    let (scheme, rest) = value.trim().split_once(' ').ok_or(Malformed)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(Malformed);
        }
        Ok(Some(Credential::Bearer(rest.to_string())))
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| Malformed)?;
        let decoded = String::from_utf8(decoded).map_err(|_| Malformed)?;
        let (user, password) = decoded.split_once(':').ok_or(Malformed)?;
        Ok(Some(Credential::Basic {
            user: user.to_string(),
            password: password.to_string(),
        }))
    } else {
        Err(Malformed)
    }
}

/// What a credential may do, matching the host's [`Action`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Download (list, .info, .mod, .zip, @latest, sumdb).
    Read,
    /// Upload module versions.
    Publish,
    /// Admin endpoints.
    Admin,
}

impl Scope {
    /// The scope an action needs.
    pub fn needed_for(action: Action) -> Scope {
        match action {
            Action::Read => Scope::Read,
            Action::Publish => Scope::Publish,
            Action::Admin => Scope::Admin,
        }
    }

    /// The lower-case name used in configs, scopes of an allow and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Publish => "publish",
            Scope::Admin => "admin",
        }
    }
}

/// The decision for a caller whose credentials checked out: allow as `principal` with `scopes`
/// when the action's scope is among `scopes` and the module matches one of `modules` (`None`:
/// any module), else 403 "`who` may not `<action>` `<module>`".
///
/// A request without a module (sumdb, admin endpoints) is checked on its scope only.
pub fn decide_known(
    who: &str,
    principal: &str,
    scopes: &[Scope],
    modules: Option<&[ModulePattern]>,
    req: &RequestFacts,
) -> Decision {
    decide_grants(who, principal, [(scopes, modules)], req)
}

/// [`decide_known`] for a caller holding several grants, each some `scopes` on some `modules`
/// (`None`: any module), as when an identity provider's groups map to different module
/// patterns: allowed when one grant covering the module has the action's scope. Grants are not
/// merged first, so "publish on `team-a/*`" and "read on `*`" never make "publish on `team-b`".
///
/// The allow carries the scopes of every grant that covers the module (all of them for a
/// request without a module), in the order first seen.
pub fn decide_grants<'a>(
    who: &str,
    principal: &str,
    grants: impl IntoIterator<Item = (&'a [Scope], Option<&'a [ModulePattern]>)>,
    req: &RequestFacts,
) -> Decision {
    let needed = Scope::needed_for(req.action);
    let mut allowed = false;
    let mut held: Vec<Scope> = Vec::new();
    for (scopes, modules) in grants {
        let covers = match (&req.module, modules) {
            (Some(module), Some(patterns)) => patterns.iter().any(|p| p.matches(module)),
            _ => true,
        };
        if covers {
            allowed |= scopes.contains(&needed);
            for scope in scopes {
                if !held.contains(scope) {
                    held.push(*scope);
                }
            }
        }
    }
    if allowed {
        Decision::allow(principal, held.iter().map(|s| s.as_str()))
    } else {
        let target = req.module.as_deref().unwrap_or(&req.path);
        Decision::forbidden(format!("{who} may not {} {target}", needed.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &str) -> RequestFacts {
        let mut req = RequestFacts::example();
        req.headers.push(("authorization".into(), value.into()));
        req
    }

    #[test]
    fn reads_bearer_and_basic_and_tells_missing_from_malformed() {
        assert_eq!(credential(&RequestFacts::example()), Ok(None));
        assert_eq!(
            credential(&with_auth("Bearer abc")),
            Ok(Some(Credential::Bearer("abc".into())))
        );
        assert_eq!(
            credential(&with_auth("bearer  abc ")),
            Ok(Some(Credential::Bearer("abc".into())))
        );
        // base64("x:pa:ss")
        assert_eq!(
            credential(&with_auth("Basic eDpwYTpzcw==")),
            Ok(Some(Credential::Basic {
                user: "x".into(),
                password: "pa:ss".into()
            }))
        );
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Basic !!!",
            "Basic eHl6", // "xyz": no colon
            "Negotiate abc",
            "abc",
        ] {
            assert_eq!(credential(&with_auth(bad)), Err(Malformed), "{bad}");
        }
    }

    #[test]
    fn known_callers_are_checked_on_scope_and_module() -> Result<(), PatternError> {
        let patterns = [ModulePattern::parse("example.com/*")?];
        let mut req = RequestFacts::example();
        let read = [Scope::Read];
        let d = decide_known("token ci", "ci", &read, Some(&patterns), &req);
        assert!(matches!(d, Decision::Allow(a) if a.principal == "ci" && a.scopes == ["read"]));

        req.action = Action::Publish;
        let d = decide_known("token ci", "ci", &read, Some(&patterns), &req);
        assert!(
            matches!(d, Decision::Deny(d) if d.status == 403 && d.message == "token ci may not publish example.com/m")
        );

        req.action = Action::Read;
        req.module = Some("other.example/m".into());
        let d = decide_known("token ci", "ci", &read, Some(&patterns), &req);
        assert!(matches!(d, Decision::Deny(d) if d.status == 403));
        assert!(matches!(
            decide_known("token ci", "ci", &read, None, &req),
            Decision::Allow(_)
        ));

        req.module = None;
        req.path = "/sumdb/sum.golang.org/latest".into();
        let d = decide_known("token ci", "ci", &read, Some(&patterns), &req);
        assert!(matches!(d, Decision::Allow(_)));
        req.action = Action::Admin;
        let d = decide_known("token ci", "ci", &read, Some(&patterns), &req);
        assert!(
            matches!(d, Decision::Deny(d) if d.message == "token ci may not admin /sumdb/sum.golang.org/latest")
        );
        Ok(())
    }

    #[test]
    fn grants_are_checked_one_by_one() -> Result<(), PatternError> {
        let team = [ModulePattern::parse("corp.example/team-a")?];
        let all = [ModulePattern::parse("*")?];
        let publish = [Scope::Read, Scope::Publish];
        let read = [Scope::Read];
        let grants = || [(&publish[..], Some(&team[..])), (&read[..], Some(&all[..]))];
        let mut req = RequestFacts::example();
        req.action = Action::Publish;
        req.module = Some("corp.example/team-a/x".into());
        let d = decide_grants("token for a", "a", grants(), &req);
        assert!(
            matches!(&d, Decision::Allow(a) if a.scopes == ["read", "publish"]),
            "{d:?}"
        );
        req.module = Some("corp.example/team-b/x".into());
        let d = decide_grants("token for a", "a", grants(), &req);
        assert!(
            matches!(&d, Decision::Deny(d) if d.message == "token for a may not publish corp.example/team-b/x"),
            "{d:?}"
        );
        req.action = Action::Read;
        let d = decide_grants("token for a", "a", grants(), &req);
        assert!(
            matches!(&d, Decision::Allow(a) if a.scopes == ["read"]),
            "{d:?}"
        );
        let d = decide_grants("token for a", "a", [], &req);
        assert!(matches!(&d, Decision::Deny(d) if d.status == 403), "{d:?}");
        Ok(())
    }
}
