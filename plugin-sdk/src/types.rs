//! Conveniences on the generated request and decision types.

use crate::{Allow, Decision, Deny, RequestFacts};
use base64::Engine as _;

impl RequestFacts {
    /// The first value of header `name` (case-insensitive).
    ///
    /// ```
    /// # let req = modgate_plugin_sdk::RequestFacts::example();
    /// assert_eq!(req.header("User-Agent"), Some("Go-http-client/1.1"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The token of an `Authorization: Bearer <token>` header (what `GOAUTH` sends).
    ///
    /// ```
    /// # let mut req = modgate_plugin_sdk::RequestFacts::example();
    /// req.headers.push(("authorization".into(), "Bearer s3cret".into()));
    /// assert_eq!(req.bearer_token(), Some("s3cret"));
    /// ```
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }

    /// The user and password of an `Authorization: Basic …` header (what `.netrc` makes the go
    /// command send).
    ///
    /// ```
    /// # let mut req = modgate_plugin_sdk::RequestFacts::example();
    /// req.headers.push(("authorization".into(), "Basic Z286czNjcmV0".into()));
    /// assert_eq!(req.basic_auth(), Some(("go".to_string(), "s3cret".to_string())));
    /// ```
    pub fn basic_auth(&self) -> Option<(String, String)> {
        let value = self.header("authorization")?;
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        Some((user.to_string(), password.to_string()))
    }

    /// A sample request for doc tests and unit tests of plugin logic.
    ///
    /// ```
    /// let req = modgate_plugin_sdk::RequestFacts::example();
    /// assert_eq!(req.module.as_deref(), Some("example.com/m"));
    /// ```
    pub fn example() -> Self {
        RequestFacts {
            method: "GET".into(),
            path: "/example.com/m/@v/v1.0.0.info".into(),
            module: Some("example.com/m".into()),
            version: Some("v1.0.0".into()),
            action: crate::Action::Read,
            headers: vec![("user-agent".into(), "Go-http-client/1.1".into())],
            peer_addr: "127.0.0.1:40000".into(),
            tls_client_identity: None,
        }
    }
}

impl Decision {
    /// Allow the request on behalf of `principal` with `scopes`.
    ///
    /// ```
    /// use modgate_plugin_sdk::Decision;
    /// let d = Decision::allow("ci-bot", ["read", "publish"]);
    /// assert!(matches!(d, Decision::Allow(a) if a.principal == "ci-bot" && a.scopes.len() == 2));
    /// ```
    pub fn allow<S: Into<String>>(
        principal: impl Into<String>,
        scopes: impl IntoIterator<Item = S>,
    ) -> Self {
        Decision::Allow(Allow {
            principal: principal.into(),
            scopes: scopes.into_iter().map(Into::into).collect(),
        })
    }

    /// Deny the request with HTTP `status` and a one-line `message` for the client.
    ///
    /// ```
    /// use modgate_plugin_sdk::Decision;
    /// let d = Decision::deny(403, "token not valid for this module");
    /// assert!(matches!(d, Decision::Deny(d) if d.status == 403));
    /// ```
    pub fn deny(status: u16, message: impl Into<String>) -> Self {
        Decision::Deny(Deny {
            status,
            message: message.into(),
        })
    }

    /// Deny with 401: the client did not prove who it is.
    ///
    /// ```
    /// use modgate_plugin_sdk::Decision;
    /// assert!(matches!(Decision::unauthorized("bad credentials"), Decision::Deny(d) if d.status == 401));
    /// ```
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::deny(401, message)
    }

    /// Deny with 403: the client is known but may not do this.
    ///
    /// ```
    /// use modgate_plugin_sdk::Decision;
    /// assert!(matches!(Decision::forbidden("read only"), Decision::Deny(d) if d.status == 403));
    /// ```
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::deny(403, message)
    }
}
