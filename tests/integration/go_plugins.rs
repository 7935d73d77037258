//! Plugins written in Go with the Go SDK (`plugin-sdk/go`): `modgate plugin build` makes the
//! component with nothing but the go command, and `modgate plugin test` runs it under the
//! host's runtime: decisions, a panic turned into a fail-closed answer that leaves the plugin
//! serving, and the build's one-line refusals. `plugin build` of the Rust walkthrough plugin
//! works too.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::text;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn modgate(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modgate"))
        .args(args)
        .current_dir(cwd)
        .env("GOWORK", "off")
        .output()
        .expect("run modgate")
}

/// A Go plugin module in `dir` using the SDK from this checkout, with `main.go`.
fn go_module(dir: &Path, name: &str, main_go: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let sdk = repo().join("plugin-sdk/go");
    std::fs::write(
        dir.join("go.mod"),
        format!(
            "module example.com/{name}\n\ngo 1.25\n\nrequire modgate.dev/sdk v0.0.0\n\nreplace modgate.dev/sdk => {}\n",
            sdk.display()
        ),
    )
    .expect("go.mod");
    std::fs::write(dir.join("main.go"), main_go).expect("main.go");
}

const TEAM_AUTH: &str = r#"package main

import (
	"strings"

	modgate "modgate.dev/sdk"
	"modgate.dev/sdk/authorizer"
)

type config struct {
	Team string `json:"team"`
}

func init() {
	authorizer.Handle(func(f modgate.Facts) modgate.Decision {
		var c config
		if err := modgate.Config(&c); err != nil {
			modgate.Errorf("%v", err)
			return modgate.Deny(500, "team-auth: bad config")
		}
		token, ok := f.BearerToken()
		switch {
		case f.TLSClientIdentity != "":
			return modgate.Allow(f.TLSClientIdentity, "read")
		case !ok:
			return modgate.Abstain()
		case token == "panic":
			panic("asked to panic by " + f.PeerAddr)
		case strings.HasPrefix(f.Module, "corp.example/") && token == c.Team+"-token":
			return modgate.Allow(c.Team, "read")
		}
		return modgate.Forbidden("not a " + c.Team + " token")
	})
}

func main() {}
"#;

#[test]
fn go_plugins_build_and_answer_under_the_hosts_runtime() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("team-auth");
    go_module(&dir, "team-auth", TEAM_AUTH);

    let built = modgate(&["plugin", "build"], &dir);
    let out = text(&built);
    assert!(built.status.success(), "plugin build failed: {out}");
    assert!(
        out.contains("team-auth.wasm: Go plugin") && out.contains("world authorizer"),
        "{out}"
    );
    let wasm = dir.join("team-auth.wasm");
    assert!(wasm.metadata().expect("component").len() > 1_000_000);

    let cases = tmp.path().join("cases.toml");
    std::fs::write(
        &cases,
        r#"
[config]
team = "platform"

[[case]]
request = "GET /corp.example/lib/@v/list"
headers = ["Authorization: Bearer platform-token"]
expect = "allow platform [read]"

[[case]]
request = "GET /corp.example/lib/@v/v1.0.0.zip"
headers = ["Authorization: Bearer other"]
expect = "deny 403 not a platform token"

[[case]]
request = "GET /corp.example/lib/@latest"
expect = "abstain"

[[case]]
request = "GET /corp.example/lib/@v/list"
headers = ["Authorization: Bearer panic"]
expect = "deny 503 authorization failed: the auth plugin panicked"

[[case]]
request = "GET /corp.example/lib/@v/v1.0.0.mod"
headers = ["Authorization: Bearer platform-token"]
expect = "allow platform"

[[case]]
request = "GET /corp.example/lib/@v/list"
client = "CN=ci-7, O=Corp"
expect = "allow CN=ci-7, O=Corp [read]"
"#,
    )
    .expect("cases");
    let tried = modgate(
        &[
            "plugin",
            "test",
            wasm.to_str().expect("utf-8"),
            "--cases",
            cases.to_str().expect("utf-8"),
        ],
        tmp.path(),
    );
    let out = text(&tried);
    assert!(tried.status.success(), "plugin test failed: {out}");
    assert_eq!(out.matches("ok   ").count(), 6, "{out}");
    // The panic's message is in the log, with the stack.
    assert!(
        out.contains("panic in the authorize handler: asked to panic by 127.0.0.1:40000"),
        "{out}"
    );

    // A wrong expectation fails the run, naming the case.
    let wrong = modgate(
        &[
            "plugin",
            "test",
            wasm.to_str().expect("utf-8"),
            "-r",
            "GET /corp.example/lib/@v/list",
            "--expect",
            "allow",
        ],
        tmp.path(),
    );
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(
        text(&wrong).contains("FAIL GET /corp.example/lib/@v/list → abstain (expected allow)"),
        "{}",
        text(&wrong)
    );
}

#[test]
fn plugin_build_refuses_in_one_line() {
    let tmp = tempfile::tempdir().expect("tempdir");

    let none = tmp.path().join("none");
    go_module(
        &none,
        "none",
        "package main\n\nimport _ \"modgate.dev/sdk\"\n\nfunc main() {}\n",
    );
    let out = modgate(&["plugin", "build"], &none);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("exports no handler"), "{}", text(&out));

    let both = tmp.path().join("both");
    go_module(
        &both,
        "both",
        "package main\n\nimport (\n\t_ \"modgate.dev/sdk/authorizer\"\n\t_ \"modgate.dev/sdk/router\"\n)\n\nfunc main() {}\n",
    );
    let out = modgate(&["plugin", "build"], &both);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("several worlds (authorizer, router)"),
        "{}",
        text(&out)
    );

    let broken = tmp.path().join("broken");
    go_module(
        &broken,
        "broken",
        "package main\n\nfunc main() { undefined() }\n",
    );
    let out = modgate(&["plugin", "build"], &broken);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("go build failed in"), "{}", text(&out));

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = modgate(&["plugin", "build"], &empty);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("neither a Go module (go.mod) nor a Rust crate (Cargo.toml)"),
        "{}",
        text(&out)
    );
}

#[test]
fn plugin_build_makes_the_rust_walkthrough_plugin_too() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out_wasm = tmp.path().join("team-auth-rust.wasm");
    let crate_dir = repo().join("examples/custom-auth/team-auth");
    let built = modgate(
        &[
            "plugin",
            "build",
            crate_dir.to_str().expect("utf-8"),
            "-o",
            out_wasm.to_str().expect("utf-8"),
        ],
        tmp.path(),
    );
    let out = text(&built);
    assert!(built.status.success(), "plugin build failed: {out}");
    assert!(
        out.contains("Rust plugin") && out.contains("world authorizer"),
        "{out}"
    );
    assert!(out_wasm.is_file());
}
