//! SigV4 for S3, with AWS's own canonicalisation (`aws-sigv4`): presigned URLs for the plans
//! the host carries out, and signed headers for the few requests the plugin makes itself.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::s3::uri_encode;

/// The credentials requests are signed with.
#[derive(Clone, Debug)]
pub struct Keys {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

impl Keys {
    fn identity(&self) -> Identity {
        Credentials::new(
            &self.access_key,
            &self.secret_key,
            self.session_token.clone(),
            None,
            "modgate",
        )
        .into()
    }
}

/// S3's rules: the path is signed as sent (already encoded once), never normalized.
fn settings(location: SignatureLocation, expires: Option<Duration>) -> SigningSettings {
    let mut s = SigningSettings::default();
    s.percent_encoding_mode = PercentEncodingMode::Single;
    s.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    s.signature_location = location;
    s.expires_in = expires;
    s.payload_checksum_kind = match location {
        SignatureLocation::Headers => PayloadChecksumKind::XAmzSha256,
        _ => PayloadChecksumKind::NoHeader,
    };
    s
}

/// What to sign.
pub struct Signing<'a> {
    pub keys: &'a Keys,
    pub region: &'a str,
    pub now: SystemTime,
}

impl Signing<'_> {
    /// `url` presigned for `method`, valid for `expires`, with `headers` signed too (the host
    /// sends them as given, so they cannot be dropped on the way).
    pub fn presign(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        expires: Duration,
    ) -> Result<String, String> {
        let params = self.instructions(
            method,
            url,
            headers,
            SignableBody::UnsignedPayload,
            settings(SignatureLocation::QueryParams, Some(expires)),
        )?;
        let mut signed = url.to_string();
        for (name, value) in params.1 {
            signed.push(if signed.contains('?') { '&' } else { '?' });
            signed.push_str(name);
            signed.push('=');
            signed.push_str(&uri_encode(&value, true));
        }
        Ok(signed)
    }

    /// The headers to add to a request the plugin sends itself (`authorization`,
    /// `x-amz-date`, `x-amz-content-sha256`, and the session token when there is one).
    pub fn headers(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, String> {
        let (added, _) = self.instructions(
            method,
            url,
            headers,
            SignableBody::Bytes(body),
            settings(SignatureLocation::Headers, None),
        )?;
        Ok(added)
    }

    #[expect(
        clippy::type_complexity,
        reason = "headers and query parameters, as aws-sigv4 gives them"
    )]
    fn instructions(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: SignableBody<'_>,
        settings: SigningSettings,
    ) -> Result<(Vec<(String, String)>, Vec<(&'static str, String)>), String> {
        let identity = self.keys.identity();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name("s3")
            .time(self.now)
            .settings(settings)
            .build()
            .map_err(|e| format!("signing: {e}"))?
            .into();
        // SigV4 signs the host header; the host sends the URL's, without a default port (as
        // HTTP clients do).
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let host = match (scheme, authority.rsplit_once(':')) {
            ("https", Some((h, "443"))) | ("http", Some((h, "80"))) => h.to_string(),
            _ => authority.to_string(),
        };
        let mut all: Vec<(&str, &str)> = vec![("host", host.as_str())];
        all.extend(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let request = SignableRequest::new(method, url, all.into_iter(), body)
            .map_err(|e| format!("signing {method} request: {e}"))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| format!("signing {method} request: {e}"))?
            .into_parts();
        let (headers, params) = instructions.into_parts();
        Ok((
            headers
                .into_iter()
                .map(|h| (h.name().to_string(), h.value().to_string()))
                .collect(),
            params
                .into_iter()
                .map(|(n, v)| (n, v.into_owned()))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example key pair of AWS's SigV4 documentation.
    fn example() -> Keys {
        Keys {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    /// Signing as in AWS's examples: us-east-1, at their time.
    fn signing(keys: &Keys) -> Signing<'_> {
        Signing {
            keys,
            region: "us-east-1",
            now: example_time(),
        }
    }

    /// 2013-05-24T00:00:00Z, the time of AWS's S3 SigV4 examples.
    fn example_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600)
    }

    #[test]
    fn presigned_get_matches_the_aws_documentation() {
        // Amazon S3 API Reference, "Authenticating Requests: Using Query Parameters (AWS
        // Signature Version 4)", the GET example.
        let keys = example();
        let s = signing(&keys);
        let url = s
            .presign(
                "GET",
                "https://examplebucket.s3.amazonaws.com/test.txt",
                &[],
                Duration::from_secs(86_400),
            )
            .expect("presign");
        assert!(
            url.ends_with(
                "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
            ),
            "{url}"
        );
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request",
            "X-Amz-Date=20130524T000000Z",
            "X-Amz-Expires=86400",
            "X-Amz-SignedHeaders=host",
        ] {
            assert!(url.contains(part), "{part} in {url}");
        }
    }

    #[test]
    fn signed_headers_match_the_aws_documentation() {
        // Amazon S3 API Reference, "Signature Calculations for the Authorization Header:
        // Transferring Payload in a Single Chunk", the GET Object example (with a Range).
        let keys = example();
        let s = signing(&keys);
        let headers = s
            .headers(
                "GET",
                "https://examplebucket.s3.amazonaws.com/test.txt",
                &[("range".into(), "bytes=0-9".into())],
                b"",
            )
            .expect("sign");
        let auth = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v.as_str())
            .expect("authorization header");
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn a_default_port_is_signed_as_clients_send_the_host() {
        let keys = example();
        let s = signing(&keys);
        let sig = |url: &str| {
            let signed = s
                .presign("GET", url, &[], Duration::from_secs(60))
                .expect("presign");
            signed
                .split("X-Amz-Signature=")
                .nth(1)
                .expect("signature")
                .to_string()
        };
        assert_eq!(
            sig("https://examplebucket.s3.amazonaws.com:443/test.txt"),
            sig("https://examplebucket.s3.amazonaws.com/test.txt")
        );
        assert_ne!(
            sig("https://examplebucket.s3.amazonaws.com:8443/test.txt"),
            sig("https://examplebucket.s3.amazonaws.com/test.txt")
        );
    }

    #[test]
    fn a_signed_if_none_match_is_in_the_signed_headers() {
        let keys = example();
        let s = signing(&keys);
        let url = s
            .presign(
                "PUT",
                "http://127.0.0.1:7070/modgate/example.com/m/@v/v1.0.0.zip",
                &[("if-none-match".into(), "*".into())],
                Duration::from_secs(300),
            )
            .expect("presign");
        assert!(
            url.contains("X-Amz-SignedHeaders=host%3Bif-none-match"),
            "{url}"
        );
    }
}
