//! `storage-s3`: a route's artifacts in an S3-compatible bucket, as a GOPROXY tree under a key
//! prefix. The plugin presigns (SigV4, [`sign`]) and the host moves the bytes: reads stream
//! from the bucket, zips are uploaded from the host's staged file (in parts above
//! `part_size_mb`), and every write is conditional (`If-None-Match: *`) so the first writer
//! wins across replicas. Listings and the control requests of multipart uploads go through
//! the host's `http` to the granted endpoint. Keys and XML: [`s3`], tested natively.

pub mod s3;
pub mod sign;

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use modgate_plugin_sdk::storage::{
    Artifact, Finished, HttpPlan, HttpRequest, ListPage, Listing, Located, Operation, PartsPlan,
    Plan, Storage, StorageError, Upload, export_storage,
};
use modgate_plugin_sdk::{config, http, secrets};

use s3::{Bucket, Settings};
use sign::{Keys, Signing};

/// Everything fixed for an instance's life: settings, bucket, credentials.
struct Backend {
    settings: Settings,
    bucket: Bucket,
    keys: Keys,
}

fn backend() -> Result<&'static Backend, StorageError> {
    static BACKEND: OnceLock<Result<Backend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(load)
        .as_ref()
        .map_err(|e| StorageError::Invalid(format!("storage-s3: {e}")))
}

fn load() -> Result<Backend, String> {
    let settings: Settings = config::get().map_err(|e| e.to_string())?;
    let bucket = Bucket::new(&settings)?;
    let secret = |name: &str| {
        secrets::get(name).map_err(|e| {
            format!("secret {name:?}: {e:?} (grant it in `grants.secrets` and set it)")
        })
    };
    let keys = Keys {
        access_key: secret(&settings.access_key_secret)?,
        secret_key: secret(&settings.secret_key_secret)?,
        session_token: settings
            .session_token_secret
            .as_deref()
            .map(secret)
            .transpose()?,
    };
    if settings.presign_seconds < 60 || settings.presign_seconds > 7 * 86_400 {
        return Err("presign_seconds must be 60..=604800".into());
    }
    if settings.part_size_mb < 5 || settings.part_size_mb > 5 * 1024 {
        return Err("part_size_mb must be 5..=5120 (S3's part limits)".into());
    }
    Ok(Backend {
        settings,
        bucket,
        keys,
    })
}

impl Backend {
    fn signing(&self) -> Signing<'_> {
        Signing {
            keys: &self.keys,
            region: &self.settings.region,
            now: SystemTime::now(),
        }
    }

    fn presign(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<String, StorageError> {
        let expires = Duration::from_secs(u64::from(self.settings.presign_seconds));
        self.presign_for(method, url, headers, expires)
    }

    fn presign_for(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        expires: Duration,
    ) -> Result<String, StorageError> {
        self.signing()
            .presign(method, url, headers, expires)
            .map_err(StorageError::Failed)
    }

    /// How long the host may reuse a presigned plan: a minute less than it stays valid.
    fn reuse_ms(&self) -> u32 {
        self.settings
            .presign_seconds
            .saturating_sub(60)
            .saturating_mul(1000)
    }

    /// A request the plugin sends itself, signed in its headers.
    fn send(
        &self,
        method: &str,
        url: &str,
        mut headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<http::Response, StorageError> {
        let signed = self
            .signing()
            .headers(method, url, &headers, &body)
            .map_err(StorageError::Failed)?;
        headers.extend(signed);
        http::send(&http::Request {
            method: method.into(),
            url: url.into(),
            headers,
            body,
        })
        .map_err(|e| StorageError::Failed(format!("{method} {}: {e:?}", self.settings.endpoint)))
    }

    fn put_plan(&self, url: &str) -> Result<Plan, StorageError> {
        let condition = vec![("if-none-match".to_string(), "*".to_string())];
        Ok(Plan::Http(HttpPlan {
            request: HttpRequest {
                method: "PUT".into(),
                url: self.presign("PUT", url, &condition)?,
                headers: condition,
            },
            ok: vec![200],
            not_found: Vec::new(),
            // Someone else wrote it first. (409, a conditional write racing another, is left
            // an error: the other writer may still fail, and the version is then retried.)
            exists: vec![412],
        }))
    }
}

/// What an answer of the bucket says, for errors.
fn failure(what: &str, response: &http::Response) -> StorageError {
    let body = String::from_utf8_lossy(&response.body);
    let code = s3::error_code(&body).unwrap_or_default();
    StorageError::Failed(format!("{what}: answered {} {code}", response.status))
}

struct StorageS3;

impl Storage for StorageS3 {
    fn locate(artifact: &Artifact, op: Operation) -> Result<Located, StorageError> {
        let b = backend()?;
        let url = b.bucket.object_url(&b.bucket.key(artifact));
        let plan = match op {
            Operation::Get | Operation::Head | Operation::Delete => {
                let (method, ok): (&str, &[u16]) = match op {
                    Operation::Get => ("GET", &[200, 206]),
                    Operation::Head => ("HEAD", &[200]),
                    _ => ("DELETE", &[200, 204]),
                };
                Plan::Http(HttpPlan {
                    request: HttpRequest {
                        method: method.into(),
                        url: b.presign(method, &url, &[])?,
                        headers: Vec::new(),
                    },
                    ok: ok.to_vec(),
                    not_found: vec![404],
                    exists: Vec::new(),
                })
            }
            Operation::Put => b.put_plan(&url)?,
        };
        Ok(Located {
            plan,
            reuse_ms: b.reuse_ms(),
        })
    }

    fn list_versions(module: &str, cursor: Option<&str>) -> Result<Listing, StorageError> {
        let b = backend()?;
        let url = b.bucket.list_url(module, cursor);
        let response = b.send("GET", &url, Vec::new(), Vec::new())?;
        if response.status != 200 {
            return Err(failure("listing the bucket", &response));
        }
        let xml = String::from_utf8_lossy(&response.body);
        let (versions, cursor) = s3::parse_list(&xml, &b.bucket.versions_prefix(module));
        Ok(Listing::Page(ListPage { versions, cursor }))
    }

    fn begin_upload(artifact: &Artifact, size: u64) -> Result<Upload, StorageError> {
        let b = backend()?;
        let url = b.bucket.object_url(&b.bucket.key(artifact));
        let part = b.settings.part_size_mb << 20;
        if size <= part {
            return Ok(Upload::Whole(b.put_plan(&url)?));
        }
        let response = b.send("POST", &format!("{url}?uploads"), Vec::new(), Vec::new())?;
        let xml = String::from_utf8_lossy(&response.body);
        let upload_id = match (response.status, s3::parse_upload_id(&xml)) {
            (200, Some(id)) => id,
            _ => return Err(failure("starting a multipart upload", &response)),
        };
        let id = s3::uri_encode(&upload_id, true);
        // The host sends the parts one after another, allowing each 30 s plus 1 s per MiB:
        // every part's URL must outlive the whole upload, not just the usual presign time.
        let count = size.div_ceil(part);
        let upload_secs = 30 * count + (size >> 20) + u64::from(b.settings.presign_seconds);
        let expires = Duration::from_secs(upload_secs.min(7 * 86_400));
        let parts = (1..=count)
            .map(|n| {
                let part_url = format!("{url}?partNumber={n}&uploadId={id}");
                Ok(HttpRequest {
                    method: "PUT".into(),
                    url: b.presign_for("PUT", &part_url, &[], expires)?,
                    headers: Vec::new(),
                })
            })
            .collect::<Result<_, StorageError>>()?;
        Ok(Upload::Parts(PartsPlan {
            upload_id,
            part_size: part,
            parts,
        }))
    }

    fn finish_upload(
        artifact: &Artifact,
        upload_id: &str,
        etags: &[String],
    ) -> Result<Finished, StorageError> {
        let b = backend()?;
        let url = b.bucket.object_url(&b.bucket.key(artifact));
        let id = s3::uri_encode(upload_id, true);
        let headers = vec![
            ("content-type".to_string(), "application/xml".to_string()),
            ("if-none-match".to_string(), "*".to_string()),
        ];
        let body = s3::complete_body(etags).into_bytes();
        let response = b.send("POST", &format!("{url}?uploadId={id}"), headers, body)?;
        let xml = String::from_utf8_lossy(&response.body);
        match (response.status, s3::error_code(&xml)) {
            // S3 may answer 200 and put the error in the body.
            (200, None) => Ok(Finished::Stored),
            (412, _) | (200, Some(_))
                if xml.contains("PreconditionFailed") || response.status == 412 =>
            {
                Self::abort_upload(artifact, upload_id)?;
                Ok(Finished::AlreadyExists)
            }
            _ => Err(failure("completing a multipart upload", &response)),
        }
    }

    fn abort_upload(artifact: &Artifact, upload_id: &str) -> Result<(), StorageError> {
        let b = backend()?;
        let url = b.bucket.object_url(&b.bucket.key(artifact));
        let id = s3::uri_encode(upload_id, true);
        let response = b.send(
            "DELETE",
            &format!("{url}?uploadId={id}"),
            Vec::new(),
            Vec::new(),
        )?;
        match response.status {
            200 | 204 | 404 => Ok(()),
            _ => Err(failure("dropping a multipart upload", &response)),
        }
    }
}

export_storage!(StorageS3);
