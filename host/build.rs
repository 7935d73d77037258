//! Builds the plugins workspace (`../plugins`, WebAssembly components for `wasm32-wasip2`) and
//! generates `$OUT_DIR/plugins.rs`:
//!
//! - `EMBEDDED`: every first-party plugin (`plugins/<name>`, package `<name>`), embedded in the
//!   binary so that `plugin = "<name>"` needs no path;
//! - `GO_SDK`: the files of the Go SDK module (`plugin-sdk/go`, `modgate.dev/sdk`), for
//!   `modgate plugin sdk` to write out and publish;
//! - `test_plugins::<NAME>` (only under `cfg(test)`): every test plugin (`plugins/test/<name>`,
//!   package `test-<name>`); integration tests find the same files in the directory named by the
//!   compile-time variable `TEST_PLUGINS_WASM_DIR`, as `<name>.wasm` (not `MODGATE_…`: cargo
//!   also sets it when running tests, and `MODGATE_*` variables are config overrides).
//!
//! The pattern is wasmtime's `test-programs`: an inner `cargo build` with its own target
//! directory under `OUT_DIR`, so it never waits on the outer build's lock.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() {
    if let Err(message) = run() {
        println!("cargo::error={message}");
        std::process::exit(1);
    }
}

struct Plugin {
    /// The name configs use (`auth-token`) and the test constant derives from.
    name: String,
    /// The artifact cargo writes: the package name with `-` → `_`.
    artifact: String,
    test: bool,
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let root = manifest_dir.join("..");
    let plugins_dir = root.join("plugins");
    let sdk_dir = root.join("plugin-sdk");

    // Rerun when any plugin or the SDK (WIT included) changes; a directory is watched
    // recursively. Skip `target/` in case someone built the plugins workspace by hand.
    println!("cargo::rerun-if-changed={}", sdk_dir.display());
    for entry in read_dir(&plugins_dir)? {
        if entry.file_name() != "target" {
            println!("cargo::rerun-if-changed={}", entry.path().display());
        }
    }

    check_wasm_target()?;
    let plugins = discover(&plugins_dir)?;

    let target_dir = out_dir.join("wasm");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--target",
        WASM_TARGET,
        "--manifest-path",
    ])
    .arg(plugins_dir.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&target_dir);
    // The outer build's settings are for the host target (or, under clippy, for clippy-driver):
    // they must not leak into the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("running cargo for the plugins: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the plugins workspace ({}) failed; its errors are above",
            plugins_dir.display()
        ));
    }

    let built = target_dir.join(WASM_TARGET).join("release");
    let test_dir = out_dir.join("test-plugins");
    fs::create_dir_all(&test_dir).map_err(|e| format!("{}: {e}", test_dir.display()))?;
    let mut embedded = String::new();
    let mut tests = String::new();
    for plugin in &plugins {
        let wasm = built.join(format!("{}.wasm", plugin.artifact));
        if plugin.test {
            let copy = test_dir.join(format!("{}.wasm", plugin.name));
            fs::copy(&wasm, &copy).map_err(|e| format!("{}: {e}", wasm.display()))?;
            let constant = plugin.name.to_uppercase().replace('-', "_");
            tests.push_str(&format!(
                "    /// `plugins/test/{}`.\n    pub const {constant}: &[u8] = include_bytes!({:?});\n",
                plugin.name, copy
            ));
        } else {
            embedded.push_str(&format!(
                "    ({:?}, include_bytes!({:?})),\n",
                plugin.name, wasm
            ));
        }
    }
    let mut go_sdk = String::new();
    for (relative, path) in files_under(&sdk_dir.join("go"))? {
        go_sdk.push_str(&format!("    ({relative:?}, include_bytes!({path:?})),\n"));
    }
    let generated = format!(
        "/// First-party plugins embedded in the binary, by the name a config's `plugin = …` uses.\n\
         pub const EMBEDDED: &[(&str, &[u8])] = &[\n{embedded}];\n\n\
         /// The Go SDK module's files (`plugin-sdk/go`), by path relative to its root.\n\
         pub const GO_SDK: &[(&str, &[u8])] = &[\n{go_sdk}];\n\n\
         /// Test plugins built from `plugins/test/`.\n\
         #[cfg(test)]\n\
         pub mod test_plugins {{\n{tests}}}\n"
    );
    fs::write(out_dir.join("plugins.rs"), generated).map_err(|e| e.to_string())?;
    println!(
        "cargo::rustc-env=TEST_PLUGINS_WASM_DIR={}",
        test_dir.display()
    );
    Ok(())
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, String> {
    let mut entries = fs::read_dir(dir)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// Every file under `dir`, recursively, in a stable order: (path relative to `dir` with `/`
/// separators, full path).
fn files_under(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in read_dir(&d)? {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path
                    .strip_prefix(dir)
                    .map_err(|e| e.to_string())?
                    .to_str()
                    .ok_or_else(|| format!("{}: not UTF-8", path.display()))?
                    .to_string();
                files.push((relative, path));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// `plugins/<name>` (first-party) and `plugins/test/<name>` (test plugins): every directory
/// with a `Cargo.toml`.
fn discover(plugins_dir: &Path) -> Result<Vec<Plugin>, String> {
    let mut found = Vec::new();
    for (dir, test) in [
        (plugins_dir.to_path_buf(), false),
        (plugins_dir.join("test"), true),
    ] {
        for entry in read_dir(&dir)? {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if !path.join("Cargo.toml").is_file() {
                continue;
            }
            let package = if test {
                format!("test-{name}")
            } else {
                name.clone()
            };
            found.push(Plugin {
                artifact: package.replace('-', "_"),
                name,
                test,
            });
        }
    }
    Ok(found)
}

/// The wasm target must be installed for the plugins to build. When it is not and rustup is
/// there, add it (what a new user would be told to do; `rustup target add` is idempotent), so
/// the README's commands work on a machine that has only rustup, Go and Debian. A
/// `rust-toolchain.toml` naming the target does not do this: rustup adds a toolchain file's
/// targets only when it installs the toolchain itself, which it does not do for an installed
/// one (nor at all with `RUSTUP_AUTO_INSTALL=0`).
fn check_wasm_target() -> Result<(), String> {
    if wasm_target_installed()? {
        return Ok(());
    }
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", WASM_TARGET]);
    // Under rustup's proxies, the toolchain cargo runs with (a toolchain file, `+toolchain`).
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        rustup.args(["--toolchain", &toolchain]);
    }
    let added = rustup.output();
    if wasm_target_installed()? {
        println!(
            "cargo::warning=installed the {WASM_TARGET} target with `rustup target add {WASM_TARGET}` (modgate's plugins are built for it)"
        );
        return Ok(());
    }
    let why = match added {
        Ok(out) => String::from_utf8_lossy(&out.stderr)
            .trim()
            .replace('\n', " "),
        Err(e) => format!("rustup: {e}"),
    };
    Err(format!(
        "the {WASM_TARGET} target is missing (plugins are built for it) and `rustup target add {WASM_TARGET}` did not add it ({why}): install it, then build again"
    ))
}

fn wasm_target_installed() -> Result<bool, String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("running rustc: {e}"))?;
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Ok(Path::new(&sysroot)
        .join("lib/rustlib")
        .join(WASM_TARGET)
        .is_dir())
}
