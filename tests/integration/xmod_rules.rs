//! Differential test: modgate's module path, escaping and version rules (`goproxy::path`,
//! `escape`, `semver`, `pseudo`) against `golang.org/x/mod` itself (GOROOT's vendored copy, the
//! code the go command runs), answer for answer and error message for error message.
//!
//! The cases are the fuzz corpora of `module_path` and `request_path` (fuzz/corpus, what the
//! fuzzer found interesting), hand-picked edge cases, and strings generated from a fixed seed
//! over the characters the rules care about.

#![expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use modgate::goproxy::escape::{escape_path, escape_version, unescape_path, unescape_version};
use modgate::goproxy::path::{self, ModulePath, escape_controls};
use modgate::goproxy::{pseudo, semver};

use crate::harness::xmod_program;

const ORACLE_MAIN: &str = r#"package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"os"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// The versions every case is checked against as a module path, and the module paths every
// case is checked against as a version (module.Check).
var versions = []string{"v0.1.0", "v1.2.3", "v2.0.0", "v2.0.0+incompatible", "v3.1.0-pre", "v1.0.0-20200101000000-abcdefabcdef"}
var modules = []string{"example.com/m", "example.com/m/v2", "gopkg.in/yaml.v3", "gopkg.in/check.v1-unstable"}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Reads one hex-encoded case per line (the previous case is the second operand of Compare);
// writes one JSON answer per line.
func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	prev := ""
	for in.Scan() {
		b, err := hex.DecodeString(in.Text())
		if err != nil {
			panic(err)
		}
		s := string(b)
		a := map[string]any{}
		a["path"] = errText(module.CheckPath(s))
		a["import"] = errText(module.CheckImportPath(s))
		a["file"] = errText(module.CheckFilePath(s))
		esc, err := module.EscapePath(s)
		a["esc"], a["esc_err"] = esc, errText(err)
		unesc, err := module.UnescapePath(s)
		a["unesc"], a["unesc_err"] = unesc, errText(err)
		escv, err := module.EscapeVersion(s)
		a["escv"], a["escv_err"] = escv, errText(err)
		unescv, err := module.UnescapeVersion(s)
		a["unescv"], a["unescv_err"] = unescv, errText(err)
		a["valid"] = semver.IsValid(s)
		a["canonical"] = semver.Canonical(s)
		a["canonical_version"] = module.CanonicalVersion(s)
		a["pseudo"] = module.IsPseudoVersion(s)
		a["cmp"] = semver.Compare(s, prev)
		var checks []string
		if module.CheckPath(s) == nil {
			for _, v := range versions {
				checks = append(checks, errText(module.Check(s, v)))
			}
		}
		for _, m := range modules {
			checks = append(checks, errText(module.Check(m, s)))
		}
		a["checks"] = checks
		out.Encode(a)
		prev = s
	}
}
"#;

const VERSIONS: [&str; 6] = [
    "v0.1.0",
    "v1.2.3",
    "v2.0.0",
    "v2.0.0+incompatible",
    "v3.1.0-pre",
    "v1.0.0-20200101000000-abcdefabcdef",
];
const MODULES: [&str; 4] = [
    "example.com/m",
    "example.com/m/v2",
    "gopkg.in/yaml.v3",
    "gopkg.in/check.v1-unstable",
];

fn err_text<T>(r: Result<T, impl std::fmt::Display>) -> String {
    r.err().map(|e| e.to_string()).unwrap_or_default()
}

/// modgate's answers, in the oracle's shape.
fn ours(s: &str, prev: &str) -> serde_json::Value {
    let esc = escape_path(s);
    let unesc = unescape_path(s);
    let escv = escape_version(s);
    let unescv = unescape_version(s);
    let mut checks = Vec::new();
    if let Ok(m) = ModulePath::parse(s) {
        checks.extend(VERSIONS.iter().map(|v| err_text(m.check_version(v))));
    }
    for m in MODULES {
        let m = ModulePath::parse(m).unwrap();
        checks.push(err_text(m.check_version(s)));
    }
    serde_json::json!({
        "path": err_text(path::check_path(s)),
        "import": err_text(path::check_import_path(s)),
        "file": err_text(path::check_file_path(s)),
        "esc": esc.as_deref().unwrap_or_default(),
        "esc_err": err_text(esc.as_ref()),
        "unesc": unesc.as_deref().unwrap_or_default(),
        "unesc_err": err_text(unesc.as_ref()),
        "escv": escv.as_deref().unwrap_or_default(),
        "escv_err": err_text(escv.as_ref()),
        "unescv": unescv.as_deref().unwrap_or_default(),
        "unescv_err": err_text(unescv.as_ref()),
        "valid": semver::is_valid(s),
        "canonical": semver::canonical_semver(s).unwrap_or_default(),
        "canonical_version": semver::canonical(s).unwrap_or_default(),
        "pseudo": pseudo::is_pseudo_version(s),
        "cmp": semver::compare(s, prev) as i8,
        "checks": checks,
    })
}

/// Edge cases of each rule, written out.
const HAND_PICKED: &[&str] = &[
    "",
    "example.com",
    "example.com/m",
    "github.com/Azure/azure-sdk-for-go",
    "github.com/!azure/azure-sdk-for-go",
    "github.com/!!azure/x",
    "github.com/!/x",
    "github.com/x!",
    "gopkg.in/yaml.v3",
    "gopkg.in/yaml.v3-unstable",
    "gopkg.in/yaml",
    "gopkg.in/yaml.v0",
    "example.com/m/v1",
    "example.com/m/v2",
    "example.com/m/v02",
    "example.com/m/v2/",
    "example.com//m",
    "example.com/./m",
    "example.com/../m",
    "/example.com/m",
    "-example.com/m",
    "example.com/-m",
    "example.com/m.",
    "example.com/m~1",
    "example.com/CON",
    "example.com/con.txt",
    "example.com/com1",
    "example.com/LPT9.x",
    "example.com/a:b",
    "example.com/a b",
    "example.com/a\\b",
    "example.com/a\u{e9}",
    "Example.com/m",
    "exa_mple.com/m",
    "localhost/m",
    "127.0.0.1/repo.git",
    "example.com/.hidden",
    "example.com/m/.",
    "v1",
    "v1.2",
    "v1.2.3",
    "v01.2.3",
    "v1.02.3",
    "v1.2.3-",
    "v1.2.3-0",
    "v1.2.3-01",
    "v1.2.3-pre.01",
    "v1.2.3-pre..1",
    "v1.2.3+build",
    "v1.2.3+build+more",
    "v1.2.3+incompatible",
    "v2.0.0+incompatible",
    "v1.2.3-RC1",
    "v1.2.3-!r!c1",
    "v1.2.3-!!",
    "v0.0.0-20191109021931-daa7c04131f5",
    "v1.2.3-pre.0.20191109021931-daa7c04131f5",
    "v1.2.4-0.20191109021931-daa7c04131f5",
    "v1.2.4-0.20191109021931-daa7c04131f5+incompatible",
    "v0.0.0-2019110902193-daa7c04131f5",
    "v0.0.0-20191109021931-",
    "v1.2.3-0.20191109021931-daa7c04131f5",
    "master",
    "latest",
    "1.2.3",
    "V1.2.3",
];

/// Strings from a fixed-seed generator: path-like over the characters the path rules single
/// out, and version-like from semver's grammar with mistakes.
fn generated(count: usize) -> Vec<String> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let path_chars: Vec<char> = "abcxyzABZ019.-_~+!/:@%^ \\\u{e9}\u{130}\u{212a}\u{ff21}"
        .chars()
        .collect();
    let hosts = [
        "example.com",
        "gopkg.in",
        "github.com",
        "a.b",
        "x",
        "Example.com",
        ".com",
    ];
    let elems = [
        "v1",
        "v2",
        "v0",
        "v02",
        "m",
        "M",
        "yaml.v3",
        "x.v2-unstable",
        "CON",
        "aux.go",
        ".",
        "..",
        "",
        "a~1",
        "!a",
        "-x",
        "x-",
    ];
    let numbers = ["0", "1", "2", "10", "0", "1", "01", "00"];
    let idents = [
        "0",
        "00",
        "1",
        "01",
        "10",
        "pre",
        "RC1",
        "rc",
        "0",
        "x-y",
        "",
        "20191109021931",
        "abcdef123456",
        "incompatible",
    ];
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let mut s = String::new();
        match i % 3 {
            0 => {
                s.push_str(hosts[next() as usize % hosts.len()]);
                for _ in 0..next() % 4 {
                    s.push('/');
                    s.push_str(elems[next() as usize % elems.len()]);
                }
                if next() % 2 == 0 {
                    let at = next() as usize % (s.chars().count() + 1);
                    let c = path_chars[next() as usize % path_chars.len()];
                    s = s
                        .chars()
                        .take(at)
                        .chain([c])
                        .chain(s.chars().skip(at))
                        .collect();
                }
            }
            1 => {
                s.push(if next() % 8 == 0 { 'V' } else { 'v' });
                let parts = 1 + next() % 3;
                for p in 0..parts {
                    if p > 0 {
                        s.push('.');
                    }
                    s.push_str(numbers[next() as usize % numbers.len()]);
                }
                for sep in ['-', '+'] {
                    if next() % 2 == 0 {
                        s.push(sep);
                        for k in 0..1 + next() % 3 {
                            if k > 0 {
                                s.push('.');
                            }
                            s.push_str(idents[next() as usize % idents.len()]);
                        }
                    }
                }
            }
            _ => {
                for _ in 0..next() % 12 {
                    s.push(path_chars[next() as usize % path_chars.len()]);
                }
            }
        }
        out.push(s);
    }
    out
}

/// The fuzzer's corpus files for `target` that are UTF-8 (the rules take strings).
fn corpus(target: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .iter()
        .filter_map(|f| String::from_utf8(std::fs::read(f).unwrap()).ok())
        .flat_map(|s| {
            // A request path's segments are path and version candidates too.
            let mut v = vec![s.clone()];
            v.extend(s.split("/@").map(str::to_owned));
            v
        })
        .collect()
}

#[test]
fn path_and_version_rules_match_x_mod() {
    let mut cases: Vec<String> = HAND_PICKED.iter().map(|s| s.to_string()).collect();
    let from_corpus = corpus("module_path").len() + corpus("request_path").len();
    cases.extend(corpus("module_path"));
    cases.extend(corpus("request_path"));
    cases.extend(generated(30_000));

    let oracle = xmod_program("xmod-rules-oracle", ORACLE_MAIN);
    let mut child = Command::new(oracle)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input: String = cases.iter().map(|c| hex::encode(c) + "\n").collect();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let answers: Vec<serde_json::Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    writer.join().unwrap().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(answers.len(), cases.len(), "the oracle answered every case");

    let mut mismatches = Vec::new();
    let mut valid_paths = 0;
    let mut valid_versions = 0;
    let mut prev = "";
    for (case, want) in cases.iter().zip(&answers) {
        let mut got = ours(case, prev);
        let mut want = want.clone();
        // UnescapePath/UnescapeVersion: modgate says why an escaping is invalid where x/mod
        // says only that it is (and does not repeat the path in CheckPath's reason); what is
        // accepted, and what it unescapes to, must match.
        for key in ["unesc_err", "unescv_err"] {
            for answer in [&mut got, &mut want] {
                let failed = answer[key] != "";
                answer[key] = serde_json::Value::Bool(failed);
            }
        }
        // module.Check's message prints the version raw; modgate escapes control characters in
        // it (an error body is one line), the rest exactly as x/mod.
        if let Some(checks) = want["checks"].as_array_mut() {
            for check in checks {
                if let Some(text) = check.as_str() {
                    *check = serde_json::Value::String(escape_controls(text));
                }
            }
        }
        let want = &want;
        valid_paths += usize::from(want["path"] == "");
        valid_versions += usize::from(want["valid"] == true);
        if &got != want {
            let fields: Vec<String> = want
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, v)| got.get(k.as_str()) != Some(v))
                .map(|(k, v)| format!("{k}: x/mod {v}, modgate {}", got[k.as_str()]))
                .collect();
            mismatches.push(format!("{case:?} (after {prev:?}): {}", fields.join("; ")));
        }
        prev = case;
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases ({from_corpus} from the fuzz corpora) differ from x/mod:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The generator must reach both sides of the rules, or the comparison proves little.
    assert!(
        valid_paths > 1000 && valid_versions > 1000,
        "{valid_paths} valid paths, {valid_versions} valid versions"
    );
}
