//! The custom-auth walkthroughs, run the way their readers run them: `examples/custom-auth`
//! (the plugin in Rust; issue 3, acceptance 4) and `examples/custom-auth-go` (in Go; issue 20,
//! acceptance 1).
//!
//! The README is the script. Its fenced blocks mean:
//! - ```` ```sh ````: run verbatim, in order, in one bash (`set -euo pipefail`), from a fresh copy
//!   of the example's directory; it must succeed.
//! - ```` ```sh fails ````: the same, but the block must fail (the reader is shown an error).
//! - ```` ```sh no-ci ````: setup CI does its own way (the wasm target, modgate on `PATH`).
//! - ```` ```text ```` right after a `sh` block (only blank lines between): that block's output.
//!   Each non-blank line must equal an output line (both trimmed), in order; `...` matches any
//!   text, and `127.0.0.1:8443` reads as the port the test chose (the README's `$PORT`).
//! - ```` ```rust ```` / ```` ```go ````: must appear verbatim in the plugin's source file;
//!   ```` ```toml ````: its lines must appear, in order, in one of the example's config files.
//!   So the explanations cannot drift.
//!
//! The environment is the reader's: `modgate` (the binary under test), `go` and `cargo` on
//! `PATH`, nothing go- or modgate-specific inherited, `PORT` set to a free port. In the Rust
//! example's copy, `team-auth/target` is a symlink to a directory kept between runs, so the
//! plugin's dependencies compile once per machine, not once per run. The Go example needs
//! nothing of the repository but the modgate binary: its SDK comes from `modgate plugin sdk`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{free_port, go_binary, shared_dir};

/// Cold, the walkthrough compiles the plugin's dependencies twice (tests, then wasm).
const DEADLINE: Duration = Duration::from_secs(20 * 60);

#[derive(Debug)]
struct Fenced {
    info: String,
    body: String,
    /// 1-based line of the opening fence.
    line: usize,
    /// Only blank lines since the previous block's closing fence.
    adjacent: bool,
}

fn fenced_blocks(markdown: &str) -> Vec<Fenced> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines().enumerate();
    let mut adjacent = false;
    while let Some((i, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            adjacent &= line.trim().is_empty();
            continue;
        };
        let mut body = String::new();
        for (_, l) in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        blocks.push(Fenced {
            info: info.trim().to_string(),
            body,
            line: i + 1,
            adjacent,
        });
        adjacent = true;
    }
    blocks
}

#[derive(Debug)]
struct Step {
    line: usize,
    code: String,
    fails: bool,
    expected: Option<String>,
}

struct Walkthrough {
    steps: Vec<Step>,
    /// Blocks of the plugin's language.
    code: Vec<(usize, String)>,
    toml: Vec<(usize, String)>,
}

fn parse(readme: &str, language: &str) -> Walkthrough {
    let mut w = Walkthrough {
        steps: Vec::new(),
        code: Vec::new(),
        toml: Vec::new(),
    };
    let mut last_was_step = false;
    for b in fenced_blocks(readme) {
        let words: Vec<&str> = b.info.split_whitespace().collect();
        let mut is_step = false;
        match words.as_slice() {
            ["sh"] | ["sh", "fails"] => {
                w.steps.push(Step {
                    line: b.line,
                    code: b.body,
                    fails: words.len() == 2,
                    expected: None,
                });
                is_step = true;
            }
            ["sh", "no-ci"] => {}
            ["sh", ..] => panic!("README line {}: unknown block marker {:?}", b.line, b.info),
            ["text"] if last_was_step && b.adjacent => {
                let step = w.steps.last_mut().expect("a step");
                step.expected = Some(b.body);
            }
            [lang] if *lang == language => w.code.push((b.line, b.body)),
            ["toml"] => w.toml.push((b.line, b.body)),
            _ => {}
        }
        last_was_step = is_step;
    }
    w
}

/// `pattern` (trimmed) against `line` (trimmed): equal, with `...` matching any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("...").collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return line == pattern;
    };
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The first expected line not found in `output` (in order), if any.
fn missing_line(expected: &str, output: &str, port: u16) -> Option<String> {
    let mut out = output.lines().map(str::trim);
    expected
        .lines()
        .map(|l| {
            l.trim()
                .replace("127.0.0.1:8443", &format!("127.0.0.1:{port}"))
        })
        .filter(|l| !l.is_empty())
        .find(|want| !out.any(|line| line_matches(want, line)))
}

/// Copies `from` to `to`, leaving out what `.gitignore` there lists (the walkthrough's outputs).
fn copy_example(from: &Path, to: &Path) {
    let ignored: Vec<PathBuf> = std::fs::read_to_string(from.join(".gitignore"))
        .unwrap_or_else(|e| panic!("{}/.gitignore: {e}", from.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| from.join(l.trim_matches('/')))
        .collect();
    fn walk(src: &Path, dst: &Path, ignored: &[PathBuf]) {
        std::fs::create_dir_all(dst).expect("mkdir");
        for entry in std::fs::read_dir(src).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if ignored.contains(&path) {
                continue;
            }
            let target = dst.join(path.file_name().expect("file name"));
            if path.is_dir() {
                walk(&path, &target, ignored);
            } else {
                // Keeps the permissions (goauth.sh is executable).
                std::fs::copy(&path, &target).expect("copy");
            }
        }
    }
    walk(from, to, &ignored);
}

/// The bash script: the steps in order, each one's output in `out/<n>.out`, the running step's
/// number in `out/current`.
fn script(steps: &[Step], out: &Path) -> String {
    let out = out.to_str().expect("utf-8 path");
    let mut s = String::from("set -euo pipefail\n");
    for (n, step) in steps.iter().enumerate() {
        s += &format!("echo {n} > '{out}/current'\n");
        let group = format!("{{\n{}}} > '{out}/{n}.out' 2>&1", step.code);
        if step.fails {
            s += &format!(
                "if {group}; then\n  echo 'succeeded, but the README says it fails' >&2\n  exit 86\nfi\n"
            );
        } else {
            s += &group;
            s.push('\n');
        }
    }
    s += &format!("echo done > '{out}/current'\n");
    s
}

/// Ends bash and whatever it left running (`modgate serve &`): its own process group only.
struct ProcessGroup(u32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0)])
            .stderr(Stdio::null())
            .status();
    }
}

fn read(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// One walkthrough: where it is, and what its test needs to know about it.
struct Example {
    /// Under `examples/`.
    name: &'static str,
    /// The plugin's language, as its README's code blocks are marked (`rust`, `go`)...
    language: &'static str,
    /// ...and the file those blocks quote, relative to the example.
    source: &'static str,
    /// The config files the README's `toml` blocks quote.
    configs: &'static [&'static str],
    /// Other examples the README uses (`../custom-auth/app`), copied beside it.
    uses: &'static [&'static str],
    /// Files and directories of the repository the copy links to (relative to the root).
    links: &'static [&'static str],
    /// At least this many blocks of the language, `sh` steps, failing steps and outputs.
    counts: [usize; 4],
}

/// Runs `example`'s README as its reader would and checks every output it shows.
fn walkthrough_runs_as_written(example: &Example) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root");
    let source_dir = repo.join("examples").join(example.name);
    let readme = read(&source_dir.join("README.md"));
    let w = parse(&readme, example.language);

    // The explanations quote the real files.
    let source = read(&source_dir.join(example.source));
    for (line, snippet) in &w.code {
        assert!(
            source.contains(snippet.as_str()),
            "README line {line}: this {} block is not in {}:\n{snippet}",
            example.language,
            example.source
        );
    }
    let configs: Vec<String> = example
        .configs
        .iter()
        .map(|c| read(&source_dir.join(c)))
        .collect();
    for (line, snippet) in &w.toml {
        let in_order = |toml: &String| {
            let mut file = toml.lines().map(str::trim);
            snippet
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .all(|want| file.any(|l| l == want))
        };
        assert!(
            configs.iter().any(in_order),
            "README line {line}: this toml block is not in {:?} (its lines in this order):\n{snippet}",
            example.configs
        );
    }
    // A parser that found nothing would pass everything: the walkthrough has these.
    let [code, steps, fails, outputs] = example.counts;
    assert!(
        w.code.len() >= code,
        "{} blocks: {}",
        example.language,
        w.code.len()
    );
    assert!(w.steps.len() >= steps, "sh blocks: {}", w.steps.len());
    assert!(w.steps.iter().filter(|s| s.fails).count() >= fails);
    assert!(w.steps.iter().filter(|s| s.expected.is_some()).count() >= outputs);

    // A fresh copy, laid out as in the repository (`../custom-auth/app` and, for the Rust
    // plugin, `path = "../../../plugin-sdk"` resolve).
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("repo");
    let dir = root.join("examples").join(example.name);
    copy_example(&source_dir, &dir);
    for other in example.uses {
        copy_example(
            &repo.join("examples").join(other),
            &root.join("examples").join(other),
        );
    }
    for shared in example.links {
        std::os::unix::fs::symlink(repo.join(shared), root.join(shared)).expect("symlink");
    }
    if example.language == "rust" {
        std::os::unix::fs::symlink(
            shared_dir("custom-auth-example-target"),
            dir.join("team-auth/target"),
        )
        .expect("symlink");
    }
    // The README's 50 ms call deadline is for a server with CPU to spare; here the server
    // shares two cores with the rest of the suite, and a call can wait that long for a CPU
    // (plugin threads run at the lowest priority). What the walkthrough decides is checked, not
    // how fast: the copy's deadline is raised, the repository's file stays as written.
    let config = dir.join("modgate.toml");
    let text = read(&config);
    assert!(
        text.contains("timeout_ms = 50,"),
        "modgate.toml sets no 50 ms deadline"
    );
    std::fs::write(
        &config,
        text.replace("timeout_ms = 50,", "timeout_ms = 2000,"),
    )
    .expect("write modgate.toml");
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let script_path = tmp.path().join("walkthrough.sh");
    std::fs::write(&script_path, script(&w.steps, &out)).expect("write script");

    let port = free_port();
    let modgate = Path::new(env!("CARGO_BIN_EXE_modgate"));
    let go = go_binary();
    let path = std::env::join_paths(
        [modgate, &go]
            .iter()
            .map(|p| p.parent().expect("bin dir").to_path_buf())
            .chain(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            )),
    )
    .expect("PATH");
    // In a session (and so a process group) of its own, as a reader's terminal is: what the
    // script leaves running is killed with it, and `modgate serve &` is scheduled apart from
    // the rest of the test run (see harness::in_own_session).
    let mut cmd = crate::harness::in_own_session("bash");
    cmd.arg(&script_path)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out.join("bash.log")).expect("log"))
        .stderr(std::fs::File::create(out.join("bash.err")).expect("log"));
    // What only this process's environment says (the test's cargo, go settings, modgate
    // overrides) must not change what the reader's commands do.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("GO") && key != "GOROOT") || key.starts_with("MODGATE_") {
            cmd.env_remove(&*key);
        }
    }
    for key in [
        "NETRC",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "TEAM_TOKEN",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(key);
    }
    cmd.env("PATH", path)
        .env("PORT", port.to_string())
        .env("GOENV", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOPATH", tmp.path().join("gopath"))
        .env("GOCACHE", shared_dir("gocache"));
    let mut child = cmd.spawn().expect("run bash");
    let group = ProcessGroup(child.id());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > DEADLINE {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(group);
    let _ = child.wait();

    let current = read(&out.join("current"));
    let reached = current.trim().parse::<usize>().unwrap_or(w.steps.len());
    let report = |n: usize, problem: &str| -> String {
        let step = &w.steps[n];
        format!(
            "README line {}: {problem}\n--- the block ---\n{}--- its output ---\n{}\n--- bash ---\n{}{}\n--- modgate.log (tail) ---\n{}",
            step.line,
            step.code,
            read(&out.join(format!("{n}.out"))),
            read(&out.join("bash.log")),
            read(&out.join("bash.err")),
            read(&dir.join("modgate.log"))
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n"),
        )
    };
    // The first difference from what the README shows, up to where the script stopped.
    for (n, step) in w.steps.iter().enumerate().take(reached + 1) {
        let Some(expected) = &step.expected else {
            continue;
        };
        if n == reached && status.is_some_and(|s| !s.success()) {
            break; // reported below, with the exit status
        }
        let output = read(&out.join(format!("{n}.out")));
        if let Some(line) = missing_line(expected, &output, port) {
            panic!("{}", report(n, &format!("output lacks {line:?}")));
        }
    }
    match status {
        None => panic!(
            "{}",
            report(
                reached.min(w.steps.len() - 1),
                &format!("still running after {DEADLINE:?}")
            )
        ),
        Some(s) if !s.success() => panic!("{}", report(reached, &format!("bash exited: {s}"))),
        Some(_) => assert_eq!(current.trim(), "done", "the script ended early"),
    }
}

#[test]
fn custom_auth_walkthrough_runs_as_written() {
    walkthrough_runs_as_written(&Example {
        name: "custom-auth",
        language: "rust",
        source: "team-auth/src/lib.rs",
        configs: &["modgate.toml"],
        uses: &[],
        links: &["plugin-sdk", "Cargo.toml"],
        counts: [8, 15, 4, 10],
    });
}

#[test]
fn custom_auth_go_walkthrough_runs_as_written() {
    walkthrough_runs_as_written(&Example {
        name: "custom-auth-go",
        language: "go",
        source: "team-auth/main.go",
        configs: &["sdk.toml", "modgate.toml"],
        uses: &["custom-auth"],
        links: &[],
        counts: [5, 15, 4, 14],
    });
}

#[test]
fn expected_output_lines_match_with_ellipses() {
    assert!(line_matches("ready", "ready"));
    assert!(!line_matches("ready", "not ready"));
    assert!(line_matches(
        "... wrote cert.pem",
        "2026/01/02 03:04:05 wrote cert.pem"
    ));
    assert!(!line_matches("... wrote cert.pem", "wrote cert.pem.bak"));
    assert!(line_matches("a...c...e", "abcde"));
    assert!(!line_matches("a...c...e", "abxde"));
    let expected = "one\n\n  two ...\n";
    assert_eq!(missing_line(expected, "zero\none\ntwo three\n", 1), None);
    assert_eq!(
        missing_line(expected, "two three\none\n", 1),
        Some("two ...".into())
    );
    assert_eq!(
        missing_line("go: 127.0.0.1:8443 x", "go: 127.0.0.1:9 x", 9),
        None
    );
}
