//! `modgate plugin build`: makes a plugin component from a Go or Rust plugin's sources, and
//! checks that modgate can load it.
//!
//! - **Go** (a `go.mod` in the directory): `go build` for `GOOS=wasip1 GOARCH=wasm` as a
//!   reactor (`-buildmode=c-shared`), then, in this process, the WIT of `modgate:plugin` is
//!   embedded (for the world the module's exports implement) and the core module is made a
//!   component with the WASI preview 1 reactor adapter of the wasmtime version modgate runs
//!   (`wit-component`, `wasi-preview1-component-adapter-provider`). Go ≥ 1.25 is all the author
//!   needs besides modgate.
//! - **Rust** (a `Cargo.toml`): `cargo build --release --target wasm32-wasip2`, which makes a
//!   component already.
//!
//! Either way the result is loaded as modgate loads plugins (compiled, linked against the host
//! interfaces, its worlds found) before it is reported.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{EngineSettings, PluginEngine, PluginSet, PluginSource, PluginSpec};

/// The WIT of `modgate:plugin`, as the host was built with it.
const WIT: &[(&str, &str)] = &[
    (
        "plugin.wit",
        include_str!("../../../plugin-sdk/wit/plugin.wit"),
    ),
    (
        "crypto.wit",
        include_str!("../../../plugin-sdk/wit/crypto.wit"),
    ),
    (
        "limits.wit",
        include_str!("../../../plugin-sdk/wit/limits.wit"),
    ),
    (
        "policy.wit",
        include_str!("../../../plugin-sdk/wit/policy.wit"),
    ),
    (
        "storage.wit",
        include_str!("../../../plugin-sdk/wit/storage.wit"),
    ),
];

/// The Go SDK's module path.
pub const GO_SDK_MODULE: &str = "modgate.dev/sdk";

/// The version this modgate publishes its Go SDK as: modgate's own, so the SDK a server hands
/// out always matches the host interfaces it runs.
pub const GO_SDK_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// The oldest Go that builds plugins (`go:wasmexport` in libraries, wasip1 reactors).
const MIN_GO: (u32, u32) = (1, 25);

/// A core module export that says which world a Go plugin implements.
const WORLD_EXPORTS: &[(&str, &str)] = &[
    ("authorize", "authorizer"),
    ("route", "router"),
    ("locate", "storage"),
    ("judge", "upstream-policy"),
];

/// What a build made.
#[derive(Debug)]
pub struct Built {
    /// The component.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The worlds it implements (`authorizer`, `router`, …).
    pub worlds: Vec<&'static str>,
    /// "Go" or "Rust".
    pub language: &'static str,
}

/// A build that failed: one line (what the toolchain printed went to the terminal).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(String);

fn fail<T>(message: impl Into<String>) -> Result<T, BuildError> {
    Err(BuildError(message.into()))
}

/// Builds the plugin in `dir` (Go when it has a `go.mod`, Rust when it has a `Cargo.toml`) into
/// `out` (default: `<dir>/<name>.wasm` for Go, cargo's own path for Rust).
pub fn build(dir: &Path, out: Option<&Path>) -> Result<Built, BuildError> {
    if !dir.is_dir() {
        return fail(format!("{}: not a directory", dir.display()));
    }
    if dir.join("go.mod").is_file() {
        build_go(dir, out)
    } else if dir.join("Cargo.toml").is_file() {
        build_rust(dir, out)
    } else {
        fail(format!(
            "{}: neither a Go module (go.mod) nor a Rust crate (Cargo.toml)",
            dir.display()
        ))
    }
}

fn build_go(dir: &Path, out: Option<&Path>) -> Result<Built, BuildError> {
    let (component, name) = go_component(dir)?;
    let path = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join(format!("{name}.wasm")));
    std::fs::write(&path, &component)
        .map_err(|e| BuildError(format!("writing {}: {e}", path.display())))?;
    finish(path, &component, "Go")
}

/// The component of the Go plugin module in `dir`, and the plugin's name (the last element of
/// the module path without its major-version suffix, as `module.SplitPathVersion` splits it).
pub fn go_component(dir: &Path) -> Result<(Vec<u8>, String), BuildError> {
    check_go()?;
    let go_mod = std::fs::read_to_string(dir.join("go.mod"))
        .map_err(|e| BuildError(format!("{}: {e}", dir.join("go.mod").display())))?;
    let name = go_mod
        .lines()
        .find_map(|l| l.trim().strip_prefix("module "))
        .map(|m| m.trim().trim_matches('"'))
        .map(|m| crate::goproxy::path::split_path_version(m).map_or(m, |(prefix, _)| prefix))
        .and_then(|m| m.rsplit('/').next())
        .filter(|name| !name.is_empty())
        .unwrap_or("plugin")
        .to_string();
    let scratch = tempfile::tempdir().map_err(|e| BuildError(format!("temporary dir: {e}")))?;
    let core_path = scratch.path().join("core.wasm");
    let status = Command::new("go")
        .args(["build", "-buildmode=c-shared", "-trimpath"])
        // The SDK's runtime links to runtime.sbrk (allocations before the runtime starts).
        .arg("-ldflags=-checklinkname=0")
        .arg("-o")
        .arg(&core_path)
        .arg(".")
        .current_dir(dir)
        .env("GOOS", "wasip1")
        .env("GOARCH", "wasm")
        .status()
        .map_err(|e| BuildError(format!("running go build: {e}")))?;
    if !status.success() {
        return fail(format!("go build failed in {} (see above)", dir.display()));
    }
    let core = std::fs::read(&core_path)
        .map_err(|e| BuildError(format!("{}: {e}", core_path.display())))?;
    Ok((componentize(&core)?, name))
}

/// Writes the Go SDK module embedded in this binary (`plugin-sdk/go` as it was built) into
/// `dir`, which must be absent or empty (nothing is overwritten). Returns the number of files.
/// `modgate publish` then serves it like any private module.
pub fn write_go_sdk(dir: &Path) -> Result<usize, BuildError> {
    let occupied = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied {
        return fail(format!(
            "{}: not empty (give a new directory; nothing is overwritten)",
            dir.display()
        ));
    }
    let written = |path: &Path, e: std::io::Error| BuildError(format!("{}: {e}", path.display()));
    for (relative, bytes) in super::embedded::GO_SDK {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| written(parent, e))?;
        }
        std::fs::write(&path, bytes).map_err(|e| written(&path, e))?;
    }
    Ok(super::embedded::GO_SDK.len())
}

/// The go command is there and new enough.
fn check_go() -> Result<(), BuildError> {
    let output = Command::new("go")
        .args(["env", "GOVERSION"])
        .output()
        .map_err(|e| {
            BuildError(format!(
                "no go command on PATH ({e}): Go plugins need Go {}.{} or later",
                MIN_GO.0, MIN_GO.1
            ))
        })?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let parsed = version.strip_prefix("go").and_then(|v| {
        let mut parts = v.split(|c: char| !c.is_ascii_digit());
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    });
    match parsed {
        Some(v) if v >= MIN_GO => Ok(()),
        Some(_) => fail(format!(
            "{version} is too old: Go plugins need Go {}.{} or later",
            MIN_GO.0, MIN_GO.1
        )),
        // A development build ("devel …") is taken to be new enough.
        None if version.starts_with("devel") => Ok(()),
        None => fail(format!(
            "cannot tell the go command's version (go env GOVERSION said {version:?})"
        )),
    }
}

/// Makes a component of a Go plugin's core module (`GOOS=wasip1`, `-buildmode=c-shared`): the
/// WIT of the world its exports implement is embedded, and the WASI preview 1 imports go
/// through the reactor adapter of modgate's wasmtime version.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>, BuildError> {
    let exports = core_exports(core)?;
    let worlds: Vec<&str> = WORLD_EXPORTS
        .iter()
        .filter(|(export, _)| exports.iter().any(|e| e == export))
        .map(|(_, world)| *world)
        .collect();
    let world = match worlds.as_slice() {
        [world] => *world,
        [] => {
            return fail(
                "the module exports no handler: register one in an init function \
                 (authorizer.Handle or router.Handle of modgate.dev/sdk)",
            );
        }
        several => {
            return fail(format!(
                "the module implements several worlds ({}): one plugin, one world",
                several.join(", ")
            ));
        }
    };
    let mut resolve = wit_parser::Resolve::default();
    let mut sources = wit_parser::SourceMap::new();
    for (name, text) in WIT {
        sources.push(Path::new(name), *text);
    }
    let group = sources
        .parse()
        .map_err(|(_, e)| BuildError(format!("the host's WIT: {e}")))?;
    let package = resolve
        .push_group(group)
        .map_err(|e| BuildError(format!("the host's WIT: {e:#}")))?;
    let world_id = resolve
        .select_world(&[package], Some(world))
        .map_err(|e| BuildError(format!("the host's WIT: {e:#}")))?;
    let mut module = core.to_vec();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world_id,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .map_err(|e| BuildError(format!("embedding the {world} world: {e:#}")))?;
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .and_then(|encoder| {
            encoder.adapter(
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
        })
        .and_then(|encoder| encoder.encode())
        .map_err(|e| {
            BuildError(format!(
                "making a component of the {world} world (a WIT version this modgate does not know, \
                 or a module built without modgate.dev/sdk?): {e:#}"
            ))
        })
}

/// The names of a core module's function exports.
fn core_exports(core: &[u8]) -> Result<Vec<String>, BuildError> {
    let not_core = |e: &dyn std::fmt::Display| {
        BuildError(format!(
            "go build made no WebAssembly module: {e} (GOOS=wasip1 GOARCH=wasm, -buildmode=c-shared)"
        ))
    };
    let mut names = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(core) {
        match payload.map_err(|e| not_core(&e))? {
            wasmparser::Payload::Version { encoding, .. }
                if encoding != wasmparser::Encoding::Module =>
            {
                return Err(not_core(&"a component, not a core module"));
            }
            wasmparser::Payload::ExportSection(section) => {
                for export in section {
                    let export = export.map_err(|e| not_core(&e))?;
                    if export.kind == wasmparser::ExternalKind::Func {
                        names.push(export.name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

fn build_rust(dir: &Path, out: Option<&Path>) -> Result<Built, BuildError> {
    let output = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| BuildError(format!("running cargo build: {e}")))?;
    if !output.status.success() {
        return fail(format!(
            "cargo build failed in {} (see above; the target is added with `rustup target add wasm32-wasip2`)",
            dir.display()
        ));
    }
    // The last cdylib artifact cargo reports is the plugin.
    let built = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"));
    let Some(built) = built else {
        return fail(format!(
            "cargo built no .wasm in {} (a plugin crate has crate-type = [\"cdylib\"])",
            dir.display()
        ));
    };
    let component =
        std::fs::read(&built).map_err(|e| BuildError(format!("{}: {e}", built.display())))?;
    let path = match out {
        Some(out) => {
            std::fs::write(out, &component)
                .map_err(|e| BuildError(format!("writing {}: {e}", out.display())))?;
            out.to_path_buf()
        }
        None => built,
    };
    finish(path, &component, "Rust")
}

fn finish(path: PathBuf, component: &[u8], language: &'static str) -> Result<Built, BuildError> {
    let worlds = worlds(component)?;
    Ok(Built {
        path,
        size: component.len() as u64,
        worlds,
        language,
    })
}

/// Loads `component` as modgate loads plugins and gives the worlds it implements.
pub fn worlds(component: &[u8]) -> Result<Vec<&'static str>, BuildError> {
    let engine = tool_engine().map_err(BuildError)?;
    let spec = PluginSpec::new(
        "plugin",
        PluginSource::Bytes(std::borrow::Cow::Owned(component.to_vec())),
    );
    let set = PluginSet::build(&[spec], &engine).map_err(|e| BuildError(e.to_string()))?;
    let mut worlds = Vec::new();
    if set.is_authorizer("plugin") {
        worlds.push("authorizer");
    }
    if set.is_router("plugin") {
        worlds.push("router");
    }
    if set.is_storage("plugin") {
        worlds.push("storage");
    }
    if set.is_policy("plugin") {
        worlds.push("upstream-policy");
    }
    Ok(worlds)
}

/// The plugin runtime of the command-line tools (`plugin build`, `plugin test`): one plugin, a
/// few instances, one plugin thread.
pub(super) fn tool_engine() -> Result<PluginEngine, String> {
    PluginEngine::new(EngineSettings {
        max_instances: 8,
        pool_threads: 1,
        ..EngineSettings::default()
    })
    .map_err(|e| format!("the plugin runtime: {e}"))
}

/// The component of the Go plugin in `dir` (relative to the repository), for tests; panics
/// naming the directory when it does not build.
#[cfg(test)]
pub(crate) fn go_component_for_tests(dir: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    match go_component(&dir) {
        Ok((component, _)) => component,
        Err(e) => panic!("building {}: {e}", dir.display()),
    }
}

#[cfg(test)]
mod tests {
    /// The WIT embedded for `plugin build` is every file the host's bindings are made from.
    #[test]
    fn the_embedded_wit_is_all_of_plugin_sdk_wit() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk/wit");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("plugin-sdk/wit")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wit"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = super::WIT.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "add the new file to build::WIT");
    }

    /// `modgate plugin sdk` writes `plugin-sdk/go` as it is in the repository, whole, and never
    /// over an existing directory's files.
    #[test]
    fn the_go_sdk_written_out_is_plugin_sdk_go() {
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk/go");
        let out = tempfile::tempdir().expect("tempdir");
        let dir = out.path().join("sdk");
        let files = super::write_go_sdk(&dir).expect("write the SDK");
        fn walk(root: &std::path::Path, dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read_dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    walk(root, &path, found);
                } else {
                    let relative = path.strip_prefix(root).expect("under root");
                    found.push(relative.to_string_lossy().into_owned());
                }
            }
        }
        let (mut written, mut expected) = (Vec::new(), Vec::new());
        walk(&dir, &dir, &mut written);
        walk(&source, &source, &mut expected);
        written.sort();
        expected.sort();
        assert_eq!(written, expected);
        assert_eq!(files, expected.len());
        assert!(expected.iter().any(|f| f == "go.mod"), "{expected:?}");
        for file in &expected {
            let same = std::fs::read(dir.join(file)).ok() == std::fs::read(source.join(file)).ok();
            assert!(same, "{file} differs from plugin-sdk/go");
        }
        let refused = super::write_go_sdk(&dir).expect_err("a second write into the same dir");
        assert!(refused.to_string().contains("not empty"), "{refused}");
    }
}
