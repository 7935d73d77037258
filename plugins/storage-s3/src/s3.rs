//! Where a bucket's objects are, and the bits of S3's XML the plugin reads, as plain Rust.

use modgate_plugin_sdk::storage::Artifact;

/// The plugin's `config` table (see the README). The host checks it too.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `http://host:port` or `https://host[:port]`, no path.
    pub endpoint: String,
    #[serde(default = "default_region")]
    pub region: String,
    pub bucket: String,
    /// Prepended to every key (e.g. `goproxy/`); empty by default.
    #[serde(default)]
    pub prefix: String,
    /// `path` (`endpoint/bucket/key`, the default) or `virtual` (`bucket.host/key`).
    #[serde(default = "default_addressing")]
    pub addressing: String,
    /// Names of the secrets holding the credentials.
    #[serde(default = "default_access_key_secret")]
    pub access_key_secret: String,
    #[serde(default = "default_secret_key_secret")]
    pub secret_key_secret: String,
    #[serde(default)]
    pub session_token_secret: Option<String>,
    /// How long a presigned URL stays valid.
    #[serde(default = "default_presign_seconds")]
    pub presign_seconds: u32,
    /// Zips above this many MiB are uploaded in parts of this size.
    #[serde(default = "default_part_size_mb")]
    pub part_size_mb: u64,
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
fn default_presign_seconds() -> u32 {
    300
}
fn default_part_size_mb() -> u64 {
    64
}

/// A bucket and how its objects are addressed.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// `scheme://authority` of the bucket (with the bucket name for virtual-host addressing).
    origin: String,
    /// `/bucket` for path-style addressing, empty otherwise.
    base_path: String,
    prefix: String,
}

impl Bucket {
    pub fn new(s: &Settings) -> Result<Self, String> {
        let (scheme, authority) = s
            .endpoint
            .split_once("://")
            .filter(|(scheme, _)| *scheme == "http" || *scheme == "https")
            .ok_or_else(|| format!("endpoint {:?} is not http:// or https://", s.endpoint))?;
        let authority = authority.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "endpoint {:?} must be scheme://host[:port] with no path",
                s.endpoint
            ));
        }
        if s.bucket.is_empty()
            || !s
                .bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(format!("bucket {:?} is not a valid bucket name", s.bucket));
        }
        if s.prefix.starts_with('/') {
            return Err(format!("prefix {:?} must not start with /", s.prefix));
        }
        let (origin, base_path) = match s.addressing.as_str() {
            "path" => (format!("{scheme}://{authority}"), format!("/{}", s.bucket)),
            "virtual" => (
                format!("{scheme}://{}.{authority}", s.bucket),
                String::new(),
            ),
            other => return Err(format!("addressing {other:?} is not `path` or `virtual`")),
        };
        Ok(Bucket {
            origin,
            base_path,
            prefix: s.prefix.clone(),
        })
    }

    /// The object key of `artifact`: `<prefix><module>/@v/<version>.<ext>`.
    pub fn key(&self, artifact: &Artifact) -> String {
        format!("{}{}", self.prefix, artifact.key())
    }

    /// The URL of the object `key`.
    pub fn object_url(&self, key: &str) -> String {
        format!(
            "{}{}/{}",
            self.origin,
            self.base_path,
            uri_encode(key, false)
        )
    }

    /// The ListObjectsV2 URL for the `.info` files of `module` (escaped), from `cursor`.
    pub fn list_url(&self, module: &str, cursor: Option<&str>) -> String {
        let mut url = format!(
            "{}{}/?list-type=2&prefix={}",
            self.origin,
            self.base_path,
            uri_encode(&self.versions_prefix(module), true)
        );
        if let Some(token) = cursor {
            url.push_str("&continuation-token=");
            url.push_str(&uri_encode(token, true));
        }
        url
    }

    /// `<prefix><module>/@v/`.
    pub fn versions_prefix(&self, module: &str) -> String {
        format!("{}{module}/@v/", self.prefix)
    }
}

/// S3's URI encoding: unreserved characters as they are, every other byte as `%XX`; `/` kept
/// in paths and encoded in query values.
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One page of a ListObjectsV2 answer: the versions whose `.info` files are directly under
/// `prefix`, and the continuation token when the listing goes on.
pub fn parse_list(xml: &str, prefix: &str) -> (Vec<String>, Option<String>) {
    let versions = elements(xml, "Key")
        .filter_map(|key| {
            let name = key.strip_prefix(prefix)?;
            let escaped = name.strip_suffix(".info")?;
            if escaped.is_empty() || escaped.contains('/') || escaped.starts_with('.') {
                return None;
            }
            unescape_version(escaped)
        })
        .collect();
    let truncated = elements(xml, "IsTruncated").any(|t| t == "true");
    let next = elements(xml, "NextContinuationToken").next();
    (versions, if truncated { next } else { None })
}

/// `<UploadId>` of a CreateMultipartUpload answer.
pub fn parse_upload_id(xml: &str) -> Option<String> {
    elements(xml, "UploadId").next().filter(|id| !id.is_empty())
}

/// The error code of an S3 error answer (`<Code>…</Code>`), if it is one.
pub fn error_code(xml: &str) -> Option<String> {
    xml.contains("<Error>")
        .then(|| elements(xml, "Code").next())
        .flatten()
}

/// The body of CompleteMultipartUpload for parts with `etags`, in order.
pub fn complete_body(etags: &[String]) -> String {
    let mut body = String::from("<CompleteMultipartUpload>");
    for (i, etag) in etags.iter().enumerate() {
        body.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            i + 1,
            xml_escape(etag)
        ));
    }
    body.push_str("</CompleteMultipartUpload>");
    body
}

/// The texts of every `<name>…</name>` element, entities decoded.
fn elements<'a>(xml: &'a str, name: &str) -> impl Iterator<Item = String> + 'a {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let text = xml_unescape(&rest[start..start + len]);
        rest = &rest[start + len + close.len()..];
        Some(text)
    })
}

fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A version as escaped in a GOPROXY path (`v1.0.0-!r!c1`) back to itself (`v1.0.0-RC1`);
/// `None` if it is not a valid escape.
pub fn unescape_version(escaped: &str) -> Option<String> {
    let mut out = String::with_capacity(escaped.len());
    let mut bang = false;
    for c in escaped.chars() {
        if bang {
            if !c.is_ascii_lowercase() {
                return None;
            }
            out.push(c.to_ascii_uppercase());
            bang = false;
        } else if c == '!' {
            bang = true;
        } else if c.is_ascii_uppercase() {
            return None;
        } else {
            out.push(c);
        }
    }
    (!bang).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use modgate_plugin_sdk::storage::ArtifactKind;

    fn settings(addressing: &str, prefix: &str) -> Settings {
        Settings {
            endpoint: "http://127.0.0.1:7070".into(),
            region: default_region(),
            bucket: "modgate".into(),
            prefix: prefix.into(),
            addressing: addressing.into(),
            access_key_secret: default_access_key_secret(),
            secret_key_secret: default_secret_key_secret(),
            session_token_secret: None,
            presign_seconds: 300,
            part_size_mb: 64,
        }
    }

    #[test]
    fn keys_and_urls() {
        let a = Artifact {
            module: "github.com/!azure/x".into(),
            version: "v1.0.0-!r!c1".into(),
            kind: ArtifactKind::Zip,
        };
        let path = Bucket::new(&settings("path", "goproxy/")).expect("bucket");
        assert_eq!(
            path.key(&a),
            "goproxy/github.com/!azure/x/@v/v1.0.0-!r!c1.zip"
        );
        assert_eq!(
            path.object_url(&path.key(&a)),
            "http://127.0.0.1:7070/modgate/goproxy/github.com/%21azure/x/%40v/v1.0.0-%21r%21c1.zip"
        );
        let virt = Bucket::new(&settings("virtual", "")).expect("bucket");
        assert_eq!(
            virt.object_url("m/@v/list"),
            "http://modgate.127.0.0.1:7070/m/%40v/list"
        );
        assert_eq!(
            path.list_url("example.com/m", Some("a+b/c=")),
            "http://127.0.0.1:7070/modgate/?list-type=2&prefix=goproxy%2Fexample.com%2Fm%2F%40v%2F&continuation-token=a%2Bb%2Fc%3D"
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut s = settings("path", "");
        s.endpoint = "127.0.0.1:7070".into();
        assert!(Bucket::new(&s).is_err());
        let mut s = settings("path", "");
        s.endpoint = "http://127.0.0.1:7070/some/path".into();
        assert!(Bucket::new(&s).is_err());
        let mut s = settings("path", "");
        s.bucket = "Bad_Bucket".into();
        assert!(Bucket::new(&s).is_err());
        assert!(Bucket::new(&settings("sideways", "")).is_err());
        assert!(Bucket::new(&settings("path", "/abs/")).is_err());
    }

    #[test]
    fn listings_give_versions_and_the_next_token() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult><Name>modgate</Name><Prefix>p/m/@v/</Prefix><KeyCount>5</KeyCount>
<IsTruncated>true</IsTruncated><NextContinuationToken>tok&amp;1</NextContinuationToken>
<Contents><Key>p/m/@v/v1.0.0.info</Key><Size>1</Size></Contents>
<Contents><Key>p/m/@v/v1.0.0.zip</Key></Contents>
<Contents><Key>p/m/@v/v1.1.0-!r!c1.info</Key></Contents>
<Contents><Key>p/m/@v/sub/v9.0.0.info</Key></Contents>
<Contents><Key>p/m/@v/v1.2.0-BAD.info</Key></Contents>
</ListBucketResult>"#;
        let (versions, next) = parse_list(xml, "p/m/@v/");
        assert_eq!(versions, ["v1.0.0", "v1.1.0-RC1"]);
        assert_eq!(next.as_deref(), Some("tok&1"));
        let last = "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>p/m/@v/v2.0.0.info</Key></Contents></ListBucketResult>";
        assert_eq!(
            parse_list(last, "p/m/@v/"),
            (vec!["v2.0.0".to_string()], None)
        );
    }

    #[test]
    fn multipart_xml() {
        assert_eq!(
            parse_upload_id("<InitiateMultipartUploadResult><Bucket>b</Bucket><UploadId>abc-123</UploadId></InitiateMultipartUploadResult>").as_deref(),
            Some("abc-123")
        );
        assert_eq!(
            complete_body(&["\"e1\"".into(), "\"e2\"".into()]),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag></Part><Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag></Part></CompleteMultipartUpload>"
        );
        assert_eq!(
            error_code("<Error><Code>PreconditionFailed</Code><Message>x</Message></Error>")
                .as_deref(),
            Some("PreconditionFailed")
        );
        assert_eq!(error_code("<CompleteMultipartUploadResult/>"), None);
    }
}
