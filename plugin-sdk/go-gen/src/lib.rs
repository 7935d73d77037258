//! The Go SDK's generated bindings (`plugin-sdk/go/internal/wit`), made from the WIT in
//! `plugin-sdk/wit` with `wit-bindgen-go` and committed, so plugin authors never run a generator.
//!
//! What is generated, and why this shape:
//! - `imports/…`: one Go package per host interface (`log`, `config`, `kv`, …), generated once
//!   from a world that imports what every plugin world imports, so all worlds share them.
//! - `exports/<world>/wit_exports.go`: the `//go:wasmexport` glue of one world, generated from
//!   that world alone. A plugin links the glue of the world it implements only (by importing the
//!   SDK package of that world), so its core module exports exactly that world's functions and
//!   `modgate plugin build` can tell the world from the exports. The glue calls the handlers the
//!   SDK keeps in `internal/handlers` (imported under the generator's own name for them).
//! - The runtime support the glue imports (`go.bytecodealliance.org/pkg`, which the Go proxy
//!   does not serve) is vendored by hand under `internal/wit/runtime` and `internal/wit/types`,
//!   patched (see its README); the generated code is pointed at it.
//! - Every generated file builds for `GOOS=wasip1` only: natively (`go test` of a plugin) the
//!   SDK's wrappers talk to a fake host instead.
//!
//! The output is formatted with `gofmt`, which must be on `PATH` (it comes with Go).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use wit_bindgen_core::Files;

/// The Go SDK's module path.
pub const MODULE: &str = "modgate.dev/sdk";

/// Where the bindings live inside the module.
const BINDINGS: &str = "modgate.dev/sdk/internal/wit";

/// The plugin worlds the Go SDK offers, and the Go package each world's export glue goes in.
/// (The storage and upstream-policy worlds' host interfaces are generated with the rest; their
/// exports are not offered in Go yet.)
pub const WORLDS: &[(&str, &str)] = &[("authorizer", "authorizer"), ("router", "router")];

/// The build constraint on every generated file.
const BUILD_TAG: &str = "//go:build wasip1\n\n";

/// `plugin-sdk/wit`.
pub fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")
}

/// `plugin-sdk/go/internal/wit`, where the generated files are committed.
pub fn bindings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../go/internal/wit")
}

/// Every generated file, by path relative to [`bindings_dir`].
pub fn generate() -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();

    // The host interfaces, from one world that imports what every plugin world imports.
    let union = "package modgate:go-sdk;\n\nworld all {\n    include modgate:plugin/host@0.1.0;\n    \
                 import modgate:plugin/storage-types@0.1.0;\n    \
                 import modgate:plugin/policy-types@0.1.0;\n}\n";
    for (path, bytes) in bindings(union, "modgate:go-sdk/all")? {
        if let Some(rest) = path.strip_prefix("imports/")
            && !rest.starts_with("wit_world/")
        {
            out.insert(path, bytes);
        }
    }

    // Each world's export glue, from that world alone.
    for (world, go_name) in WORLDS {
        let files = bindings("", &format!("modgate:plugin/{world}@0.1.0"))?;
        let glue = files
            .get("exports/wit_exports/wit_exports.go")
            .with_context(|| format!("wit-bindgen-go made no export glue for {world}"))?;
        let glue = String::from_utf8(glue.clone())?;
        let from_import = format!("\"{BINDINGS}/exports/export_wit_world\"");
        if !glue.contains("package wit_exports\n") || !glue.contains(&from_import) {
            bail!("the export glue of {world} is not laid out as this generator expects");
        }
        let glue = glue
            .replace("package wit_exports\n", &format!("package {go_name}\n"))
            .replace(
                &from_import,
                &format!("export_wit_world \"{MODULE}/internal/handlers\""),
            );
        out.insert(
            format!("exports/{go_name}/wit_exports.go"),
            glue.into_bytes(),
        );
    }

    // Point the generated code at the vendored runtime, and build it for wasip1 only.
    for (path, bytes) in out.iter_mut() {
        let text = String::from_utf8(std::mem::take(bytes))?
            .replace("go.bytecodealliance.org/pkg/wit/", &format!("{BINDINGS}/"));
        let text = if path.ends_with(".go") || path.ends_with(".s") {
            format!("{BUILD_TAG}{text}")
        } else {
            text
        };
        *bytes = text.into_bytes();
    }
    gofmt(&mut out)?;
    Ok(out)
}

/// wit-bindgen-go's files for `world`, with `extra` (WIT source) added to the package set.
fn bindings(extra: &str, world: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut resolve = wit_parser::Resolve::default();
    let (plugin, _) = resolve
        .push_path(wit_dir())
        .with_context(|| format!("reading {}", wit_dir().display()))?;
    let package = if extra.is_empty() {
        plugin
    } else {
        resolve.push_str("go-sdk.wit", extra)?
    };
    let world = resolve.select_world(&[package], Some(world))?;
    let opts = wit_bindgen_go::Opts {
        pkg_name: Some(BINDINGS.to_string()),
        // Formatted below, the same way on every machine.
        format: wit_bindgen_go::Format::False,
        ..Default::default()
    };
    let mut files = Files::default();
    opts.build().generate(&mut resolve, world, &mut files)?;
    Ok(files
        .iter()
        .map(|(name, bytes)| (name.to_string(), bytes.to_vec()))
        .collect())
}

/// Formats the Go files with `gofmt` (stdin to stdout).
fn gofmt(files: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
    for (path, bytes) in files.iter_mut() {
        if !path.ends_with(".go") {
            continue;
        }
        let mut child = Command::new("gofmt")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("running gofmt (it comes with Go; put Go's bin directory on PATH)")?;
        let mut stdin = child.stdin.take().context("gofmt stdin")?;
        let input = std::mem::take(bytes);
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            stdin.write_all(&input)
        });
        let output = child.wait_with_output()?;
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("gofmt writer"))??;
        if !output.status.success() {
            bail!(
                "gofmt refused {path}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        *bytes = output.stdout;
    }
    Ok(())
}

/// Replaces the generated part of `dir` with `files`: the `imports/` and `exports/` trees are
/// removed first, so files of removed interfaces do not linger. The vendored runtime beside them
/// is left alone.
pub fn write(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<()> {
    for tree in ["imports", "exports"] {
        let path = dir.join(tree);
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing {}", path.display()))?;
        }
    }
    for (name, bytes) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The generated files under `dir` as committed (the `imports/` and `exports/` trees).
pub fn read(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else {
                let name = path
                    .strip_prefix(root)?
                    .to_str()
                    .context("non-UTF-8 file name")?
                    .replace('\\', "/");
                out.insert(name, std::fs::read(&path)?);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    for tree in ["imports", "exports"] {
        let path = dir.join(tree);
        if path.exists() {
            walk(dir, &path, &mut out)?;
        }
    }
    Ok(out)
}
