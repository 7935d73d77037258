//! A storage plugin that misbehaves as its config says, for the host's tests: `mode` picks the
//! misdeed, `root` is a granted directory it otherwise lays a GOPROXY tree out in, and `only`
//! (an artifact extension, e.g. `zip`) and `op` (`get`, `head`, `put`, `delete`) limit the
//! misdeed to one kind of artifact and one operation.
//!
//! Modes: `outside` (a path outside every grant), `dotdot` (`<root>/../…`), `symlink`
//! (`<root>/link/…`, the test makes `link` point outside), `relative` (a relative path),
//! `host` (an HTTP plan to an un-granted host), `inline` (1 MiB of inline bytes), `inline-zip`
//! (a zip as inline bytes), `trap` (panics), `fail` (answers an error), anything else: behave.

use modgate_plugin_sdk::config;
use modgate_plugin_sdk::storage::{
    Artifact, HttpPlan, HttpRequest, Listing, Located, Operation, Plan, Storage, StorageError,
    export_storage,
};

#[derive(serde::Deserialize)]
struct Settings {
    root: String,
    mode: String,
    #[serde(default)]
    only: Option<String>,
    #[serde(default)]
    op: Option<String>,
}

fn op_name(op: Operation) -> &'static str {
    match op {
        Operation::Get => "get",
        Operation::Head => "head",
        Operation::Put => "put",
        Operation::Delete => "delete",
    }
}

fn settings() -> Settings {
    config::get().expect("test config")
}

struct Hostile;

impl Storage for Hostile {
    fn locate(artifact: &Artifact, op: Operation) -> Result<Located, StorageError> {
        let s = settings();
        let honest = Located::forever(Plan::File(artifact.path_in(&s.root)));
        if s.only
            .as_deref()
            .is_some_and(|only| only != artifact.kind.extension())
            || s.op.as_deref().is_some_and(|o| o != op_name(op))
        {
            return Ok(honest);
        }
        let plan = match s.mode.as_str() {
            "outside" => Plan::File("/etc/passwd".into()),
            "dotdot" => Plan::File(format!("{}/../{}", s.root, artifact.key())),
            "symlink" => Plan::File(format!("{}/link/{}", s.root, artifact.key())),
            "relative" => Plan::File(artifact.key()),
            "host" => Plan::Http(HttpPlan {
                request: HttpRequest {
                    method: "GET".into(),
                    url: format!("http://127.0.0.1:9/{}", artifact.key()),
                    headers: Vec::new(),
                },
                ok: vec![200],
                not_found: vec![404],
                exists: vec![412],
            }),
            "inline" => Plan::Inline(vec![b'x'; 1 << 20]),
            "inline-zip" => Plan::Inline(b"PK\x05\x06".to_vec()),
            "trap" => panic!("hostile storage plugin panics on purpose"),
            "fail" => return Err(StorageError::Failed("the bucket is on fire".into())),
            _ => return Ok(honest),
        };
        Ok(Located::forever(plan))
    }

    fn list_versions(module: &str, _cursor: Option<&str>) -> Result<Listing, StorageError> {
        let s = settings();
        match s.mode.as_str() {
            "outside" if s.only.is_none() => Ok(Listing::Directory("/etc".into())),
            _ => Ok(Listing::Directory(format!("{}/{module}/@v", s.root))),
        }
    }
}

export_storage!(Hostile);
