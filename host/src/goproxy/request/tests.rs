//! Request parsing, including a hostile matrix: every traversal, escaping and validation trick
//! must end in a 400 or 404 with a one-line, control-free message.

#![expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use super::*;

fn mp(path: &str) -> ModulePath {
    ModulePath::parse(path).unwrap()
}

fn status(raw: &str) -> u16 {
    match parse(raw) {
        Ok(_) => 200,
        Err(e) => e.status(),
    }
}

#[test]
fn endpoints() {
    let m = mp("golang.org/x/text");
    assert_eq!(
        parse("/golang.org/x/text/@v/list"),
        Ok(ProxyRequest::List { module: m.clone() })
    );
    assert_eq!(
        parse("/golang.org/x/text/@latest"),
        Ok(ProxyRequest::Latest { module: m.clone() })
    );
    assert_eq!(
        parse("/golang.org/x/text/@v/v0.3.0.info"),
        Ok(ProxyRequest::Info {
            module: m.clone(),
            version: InfoQuery::Canonical("v0.3.0".into())
        })
    );
    assert_eq!(
        parse("/golang.org/x/text/@v/v0.3.0.mod"),
        Ok(ProxyRequest::Mod {
            module: m.clone(),
            version: "v0.3.0".into()
        })
    );
    assert_eq!(
        parse("/golang.org/x/text/@v/v0.3.0.zip"),
        Ok(ProxyRequest::Zip {
            module: m,
            version: "v0.3.0".into()
        })
    );
    assert_eq!(
        parse("/sumdb/sum.golang.org/supported"),
        Ok(ProxyRequest::Sumdb {
            name: "sum.golang.org".into(),
            rest: "supported".into()
        })
    );
    assert_eq!(
        parse("/sumdb/sum.golang.org/lookup/github.com/!azure/x@v1.0.0"),
        Ok(ProxyRequest::Sumdb {
            name: "sum.golang.org".into(),
            rest: "lookup/github.com/!azure/x@v1.0.0".into()
        })
    );
    assert_eq!(
        parse("/sumdb/sum.golang.org/tile/8/1/x123/456.p/7"),
        Ok(ProxyRequest::Sumdb {
            name: "sum.golang.org".into(),
            rest: "tile/8/1/x123/456.p/7".into()
        })
    );
    assert_eq!(
        parse("/sumdb/sum.example.com:8443/latest"),
        Ok(ProxyRequest::Sumdb {
            name: "sum.example.com:8443".into(),
            rest: "latest".into()
        })
    );
}

#[test]
fn accessors() {
    let req = parse("/example.com/m/@v/master.info").unwrap();
    assert_eq!(req.module().map(ModulePath::as_str), Some("example.com/m"));
    let ProxyRequest::Info { version, .. } = req else {
        panic!("not info")
    };
    assert_eq!(version.as_str(), "master");
    assert_eq!(
        parse("/sumdb/sum.golang.org/latest").unwrap().module(),
        None
    );
    assert_eq!(
        "example.com/m".parse::<ModulePath>(),
        Ok(mp("example.com/m"))
    );
}

#[test]
fn case_escaping() {
    let want = Ok(ProxyRequest::List {
        module: mp("github.com/Azure/x"),
    });
    assert_eq!(parse("/github.com/!azure/x/@v/list"), want);
    assert_eq!(parse("/github.com/%21azure/x/@v/list"), want);
    assert_eq!(parse("/github.com/%21%61zure/x/@v/list"), want);
    let ProxyRequest::List { module } = parse("/github.com/%21azure/x/@v/list").unwrap() else {
        panic!("not a list request");
    };
    assert_eq!(module.escaped(), "github.com/!azure/x");
    assert_eq!(module.as_str(), "github.com/Azure/x");
    // Escaped versions: `!r!c1` is `RC1`.
    assert_eq!(
        parse("/example.com/m/@v/v1.0.0-!r!c1.zip"),
        Ok(ProxyRequest::Zip {
            module: mp("example.com/m"),
            version: "v1.0.0-RC1".into()
        })
    );
    assert_eq!(
        parse("/example.com/m/@v/!master.info"),
        Ok(ProxyRequest::Info {
            module: mp("example.com/m"),
            version: InfoQuery::Query("Master".into())
        })
    );
}

#[test]
fn versions() {
    let m = || mp("example.com/m");
    let info = |v: &str| parse(&format!("/example.com/m/@v/{v}.info"));
    assert_eq!(
        info("v1.2"),
        Ok(ProxyRequest::Info {
            module: m(),
            version: InfoQuery::Query("v1.2".into())
        })
    );
    assert_eq!(
        info("master"),
        Ok(ProxyRequest::Info {
            module: m(),
            version: InfoQuery::Query("master".into())
        })
    );
    assert_eq!(
        info("daa7c04131f5"),
        Ok(ProxyRequest::Info {
            module: m(),
            version: InfoQuery::Query("daa7c04131f5".into())
        })
    );
    assert_eq!(
        info("v1.0.0+meta"),
        Ok(ProxyRequest::Info {
            module: m(),
            version: InfoQuery::Query("v1.0.0+meta".into())
        })
    );
    // `+` is not a space.
    assert_eq!(
        info("v2.0.0%2Bincompatible"),
        Ok(ProxyRequest::Info {
            module: m(),
            version: InfoQuery::Canonical("v2.0.0+incompatible".into())
        })
    );
    for ok in [
        "/example.com/m/@v/v2.0.0+incompatible.zip",
        "/example.com/m/@v/v0.0.0-20191109021931-daa7c04131f5.zip",
        "/example.com/m/@v/v1.2.4-0.20191109021931-daa7c04131f5.mod",
        "/example.com/m/@v/v2.0.1-0.20191109021931-daa7c04131f5+incompatible.zip",
        "/example.com/m/v2/@v/v2.0.0.zip",
        "/example.com/m/v2/@v/v2.0.0-20191109021931-daa7c04131f5.info",
        "/gopkg.in/yaml.v2/@v/v2.4.0.zip",
        "/gopkg.in/check.v1/@v/v0.0.0-20161208181325-20d25e280405.mod",
        "/gopkg.in/yaml.v1-unstable/@v/v1.0.0.zip",
    ] {
        assert_eq!(status(ok), 200, "{ok}");
    }
    for (path, code) in [
        // Non-canonical versions for .mod/.zip.
        ("/example.com/m/@v/v1.2.zip", 404),
        ("/example.com/m/@v/v1.2.3+meta.zip", 404),
        ("/example.com/m/@v/master.mod", 404),
        ("/example.com/m/@v/1.2.3.zip", 404),
        // Major version does not fit the path.
        ("/example.com/m/@v/v2.0.0.zip", 404),
        ("/example.com/m/@v/v2.0.0.info", 404),
        ("/example.com/m/@v/v2.0.0.mod", 404),
        ("/example.com/m/v2/@v/v1.0.0.zip", 404),
        ("/example.com/m/v2/@v/v0.1.0.info", 404),
        ("/example.com/m/v2/@v/v3.0.0.zip", 404),
        ("/gopkg.in/yaml.v2/@v/v3.0.0.zip", 404),
        ("/gopkg.in/yaml.v1/@v/v0.1.0.zip", 404),
        // +incompatible only for major >= 2 on a path without suffix.
        ("/example.com/m/@v/v1.0.0+incompatible.zip", 404),
        ("/example.com/m/v2/@v/v2.0.0+incompatible.zip", 404),
        ("/example.com/m/v2/@v/v2.0.0+incompatible.info", 404),
        // A non-canonical query may still be asked for (the resolver decides).
        ("/example.com/m/@v/v2.0.info", 200),
        // Malformed versions.
        ("/example.com/m/@v/.info", 400),
        ("/example.com/m/@v/.zip", 400),
        ("/example.com/m/@v/V1.0.0.info", 400),
        ("/example.com/m/@v/v1.0.0!.info", 400),
        ("/example.com/m/@v/v1!0.info", 400),
        ("/example.com/m/@v/..info", 400),
        ("/example.com/m/@v/v1.0.0..info", 400),
        ("/example.com/m/@v/a:b.info", 400),
        ("/example.com/m/@v/a*b.info", 400),
        ("/example.com/m/@v/con.info", 400),
        ("/example.com/m/@v/a%20b.info", 404),
        ("/example.com/m/@v/a%25b.info", 404),
        ("/example.com/m/@v/a%23b.info", 404),
        ("/example.com/m/@v/a%3Fb.info", 400),
        ("/example.com/m/@v/a%C3%A9.info", 400),
        // Versions cannot contain '/': the extra segment is an unknown path.
        ("/example.com/m/@v/feature/x.info", 404),
        ("/example.com/m/@v/feature%2Fx.info", 400),
    ] {
        assert_eq!(status(path), code, "{path}: {:?}", parse(path));
    }
    let long = format!(
        "/example.com/m/@v/v1.0.0-{}.info",
        "a".repeat(MAX_VERSION_LEN)
    );
    assert_eq!(status(&long), 400);
}

/// The hostile matrix.
#[test]
fn hostile_paths() {
    for (path, code) in [
        // Traversal, raw and escaped, anywhere.
        ("/../etc/passwd/@v/list", 400),
        ("/example.com/../m/@v/list", 400),
        ("/example.com/./m/@v/list", 400),
        ("/example.com/m/@v/../../x.zip", 400),
        ("/example.com/m/@v/..", 400),
        ("/example.com/%2e%2e/m/@v/list", 400),
        ("/example.com/%2E%2E/m/@v/list", 400),
        ("/example.com/.%2e/m/@v/list", 400),
        ("/example.com/%2e/m/@v/list", 400),
        ("/example.com/m/@v/%2e%2e", 400),
        ("/example.com/m/@v/%2e%2e%2f%2e%2e%2fx.zip", 400),
        ("/example.com/.../m/@v/list", 400),
        ("/sumdb/sum.golang.org/../x", 400),
        ("/sumdb/sum.golang.org/%2e%2e/x", 400),
        ("/sumdb/../supported", 400),
        ("/sumdb/%2e%2e/supported", 400),
        // Separators and control characters smuggled through escapes.
        ("/example.com%2Fm/@v/list", 400),
        ("/example.com/m%2f/@v/list", 400),
        ("/example.com/m%5Cx/@v/list", 400),
        ("/example.com/m%5cx/@v/list", 400),
        ("/example.com/m%00/@v/list", 400),
        ("/example.com/m/@v/v1.0.0%00.zip", 400),
        ("/example.com/m/@v/v1.0.0%0a.zip", 400),
        ("/example.com/m/@v/v1.0.0%0d%0aX-Injected:%201.info", 400),
        ("/example.com/m%7f/@v/list", 400),
        ("/example.com/m%1b[31m/@v/list", 400),
        ("/sumdb/sum.golang.org/lookup%2Fx", 400),
        ("/sumdb/sum.golang.org/a%00b", 400),
        // Raw control, backslash and non-ASCII.
        ("/example.com/m\u{0}/@v/list", 400),
        ("/example.com/m\n/@v/list", 400),
        ("/example.com/m\\x/@v/list", 400),
        ("/example.com/\\..\\x/@v/list", 400),
        ("/example.com/é/@v/list", 400),
        ("/example.com/%C3%A9/@v/list", 400),
        ("/example.com/m/@v/v1.0.0\u{7f}.zip", 400),
        // Malformed percent-escapes.
        ("/example.com/m%zz/@v/list", 400),
        ("/example.com/m%2/@v/list", 400),
        ("/example.com/m%/@v/list", 400),
        ("/example.com/m%+1/@v/list", 400),
        ("/example.com/m/@v/v1.0.0.zip%", 400),
        // Double encoding decodes once: a literal "%2e" is an invalid module path character.
        ("/example.com/%252e%252e/m/@v/list", 400),
        ("/example.com%252Fm/@v/list", 400),
        ("/example.com/m/@v/%252e%252e.info", 404),
        // Case-escaping misuse.
        ("/github.com/Azure/x/@v/list", 400),
        ("/GITHUB.com/x/@v/list", 400),
        ("/github.com/!/x/@v/list", 400),
        ("/github.com/x!/@v/list", 400),
        ("/github.com/!!azure/x/@v/list", 400),
        ("/github.com/!0zure/x/@v/list", 400),
        ("/github.com/!_zure/x/@v/list", 400),
        ("/github.com/%21A/x/@v/list", 400),
        ("/!github.com/x/@v/list", 400),
        // module.CheckPath rules.
        ("/example.com/CON/@v/list", 400),
        ("/example.com/!c!o!n/@v/list", 400),
        ("/example.com/nul.go/@v/list", 400),
        ("/example.com/con.txt/@v/list", 400),
        ("/example.com/com1.foo/@v/list", 400),
        ("/com1.foo/x/@v/list", 400),
        ("/example.com/lpt9/@v/list", 400),
        ("/example.com/x~1/@v/list", 400),
        ("/example.com/PROGRA~1/@v/list", 400),
        ("/localhost/x/@v/list", 400),
        ("/-example.com/x/@v/list", 400),
        ("/example.com/.hidden/@v/list", 400),
        ("/example.com/x./@v/list", 400),
        ("/example.com/x+y/@v/list", 400),
        ("/example.com/x%20y/@v/list", 400),
        ("/example.com/x@y/@v/list", 400),
        ("/example.com/m/v1/@v/list", 400),
        ("/example.com/m/v0/@v/list", 400),
        ("/example.com/m/v02/@v/list", 400),
        ("/example.com/m/v2.0/@v/list", 400),
        ("/gopkg.in/yaml/@v/list", 400),
        ("/gopkg.in/yaml.v01/@v/list", 400),
        // Empty segments, missing pieces, trailing slashes.
        ("//example.com/m/@v/list", 400),
        ("/example.com//m/@v/list", 400),
        ("/@v/list", 400),
        ("/@latest", 400),
        ("", 400),
        ("example.com/m/@v/list", 400),
        ("/example.com/m/@v/list/", 404),
        ("/example.com/m/@latest/", 404),
        ("/example.com/m/@v/", 404),
        ("/example.com/m/@v", 404),
        ("/example.com/m/", 404),
        ("/example.com/m", 404),
        ("/", 404),
        ("/sumdb", 404),
        ("/sumdb/", 400),
        ("/sumdb/sum.golang.org", 404),
        ("/sumdb/sum.golang.org/", 404),
        ("/sumdb/sum.golang.org//supported", 400),
        ("/sumdb/sum.golang.org/lookup/", 400),
        // Unknown endpoints and files.
        ("/example.com/m/@v/list.txt", 404),
        ("/example.com/m/@v/v1.0.0.tar.gz", 404),
        ("/example.com/m/@v/v1.0.0", 404),
        ("/example.com/m/@v/v1.0.0.ZIP", 404),
        ("/example.com/m/@w/list", 404),
        ("/example.com/m/@V/list", 404),
        ("/example.com/m/@latest/x", 404),
        ("/example.com/m/@", 404),
        ("/example.com/m/@v/list/extra", 404),
        // Bad checksum database names and paths.
        ("/sumdb/Sum.golang.org/supported", 400),
        ("/sumdb/sum..golang.org/supported", 400),
        ("/sumdb/-sum.golang.org/supported", 400),
        ("/sumdb/sum.golang.org:/supported", 400),
        ("/sumdb/sum.golang.org:x/supported", 400),
        ("/sumdb/sum_golang.org/supported", 400),
        ("/sumdb/sum.golang.org/lookup/x%20y", 400),
        ("/sumdb/sum.golang.org/lookup/x%25y", 400),
        ("/sumdb/sum.golang.org/lookup/x?y", 400),
    ] {
        let got = parse(path);
        assert_eq!(status(path), code, "{path:?}: {got:?}");
        if let Err(e) = got {
            let msg = e.to_string();
            assert!(!msg.is_empty());
            assert!(
                !msg.chars().any(|c| c.is_control()),
                "{path:?}: message has control characters: {msg:?}"
            );
            assert!(
                msg.len() <= 300,
                "{path:?}: message too long ({}): {msg}",
                msg.len()
            );
            assert!(!msg.starts_with(char::is_uppercase), "{path:?}: {msg}");
        }
    }
}

#[test]
fn length_limits() {
    let long_module = format!("/example.com/{}/@v/list", "a".repeat(MAX_MODULE_PATH_LEN));
    assert_eq!(status(&long_module), 400);
    let ok_module = format!(
        "/example.com/{}/@v/list",
        "a".repeat(MAX_MODULE_PATH_LEN - 20)
    );
    assert_eq!(status(&ok_module), 200);
    let long_raw = format!("/{}", "a/".repeat(MAX_RAW_PATH_LEN));
    assert_eq!(status(&long_raw), 400);
    // Long inputs are shortened in messages.
    let msg = parse(&format!("/example.com/X{}/@v/list", "a".repeat(900)))
        .unwrap_err()
        .to_string();
    assert!(msg.len() < 300, "{msg}");
    assert!(msg.contains("..."), "{msg}");
}

#[test]
fn messages() {
    let msg = |p: &str| parse(p).unwrap_err().to_string();
    assert_eq!(
        msg("/github.com/Azure/x/@v/list"),
        r#"invalid module path "github.com/Azure/x": uppercase letter 'A' must be escaped as "!a""#
    );
    assert_eq!(
        msg("/example.com/x~1/@v/list"),
        r#"invalid module path "example.com/x~1": trailing tilde and digits in path element"#
    );
    assert_eq!(
        msg("/example.com/!c!o!n/@v/list"),
        r#"invalid module path "example.com/!c!o!n": "CON" disallowed as path element component on Windows"#
    );
    assert_eq!(
        msg("/localhost/x/@v/list"),
        r#"invalid module path "localhost/x": missing dot in first path element"#
    );
    assert_eq!(
        msg("/example.com/%2e%2e/m/@v/list"),
        r#"request path contains a "." or ".." segment"#
    );
    assert_eq!(
        msg("/example.com/m%00/@v/list"),
        r#"percent-escape "%00" decodes to a forbidden character (path separator or control character)"#
    );
    assert_eq!(
        msg("/example.com/m%zz/@v/list"),
        r#"malformed percent-escape "%zz" in request path"#
    );
    assert_eq!(
        msg("/example.com/m/@v/v2.0.0.zip"),
        r#"example.com/m@v2.0.0: invalid version: should be v0 or v1, not v2"#
    );
    assert_eq!(
        msg("/example.com/m/@v/v1.2.zip"),
        r#"version "v1.2" is not canonical (should be "v1.2.0"): .zip files exist only for canonical versions"#
    );
    assert_eq!(
        msg("/example.com/m/@v/V1.0.0.info"),
        r#"invalid version "V1.0.0": uppercase letter 'V' must be escaped as "!v""#
    );
    assert_eq!(msg("/example.com/m/@x"), r#"unknown endpoint "@x""#);
}

#[test]
fn every_canonical_request_round_trips_through_escaping() {
    use crate::goproxy::escape::{escape_path, escape_version};
    for (m, v) in [
        ("github.com/Azure/azure-sdk-for-go", "v1.0.0"),
        ("github.com/BurntSushi/toml", "v0.3.1"),
        ("example.com/M/v3", "v3.1.0-RC.1"),
        ("gopkg.in/DataDog/dd-trace-go.v1", "v1.20.0"),
        ("golang.org/toolchain", "v0.0.1-go1.21.0.linux-amd64"),
        ("example.com/m", "v0.0.0-20191109021931-daa7c04131f5"),
    ] {
        let url = format!(
            "/{}/@v/{}.zip",
            escape_path(m).unwrap(),
            escape_version(v).unwrap()
        );
        assert_eq!(
            parse(&url),
            Ok(ProxyRequest::Zip {
                module: mp(m),
                version: v.into()
            }),
            "{url}"
        );
    }
}

/// Go's `url.PathEscape` (`shouldEscape` with `encodePathSegment`), then `%2F` → `/`, as
/// `cmd/go/internal/modfetch/proxy.go` `pathEscape` builds request paths.
fn go_path_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'~' | b'$' | b'&' | b'+' | b':' | b'=' | b'@' | b'/'
            );
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every URL the go command can build for a valid module path and version parses back to that
/// module and version, or is a 404 (never a 400, which would stop a `,` GOPROXY fallback).
#[test]
fn go_command_urls_never_get_400() {
    use crate::goproxy::escape::{escape_path, escape_version};
    let modules = [
        "example.com/m",
        "github.com/Azure/azure-sdk-for-go",
        "example.com/m/v2",
        "gopkg.in/yaml.v2",
        "gopkg.in/check.v1",
        "example.com/a_b/c~d/e-f/g.h",
        "127.0.0.1/repo.git",
    ];
    let versions = [
        "v1.0.0",
        "v2.0.0",
        "v2.1.0",
        "v2.0.0+incompatible",
        "v1.0.0+incompatible",
        "v0.0.0-20191109021931-daa7c04131f5",
        "v0.0.0-20161208181325-20d25e280405",
        "v1.2",
        "master",
        "Feature(1)",
        "v1.0.0-RC1",
        "a,b;c",
        "a=b&c$d@e",
        "[x]{y}^z",
        "x~1",
        ".hidden",
        "a b",
        "a%b",
        "a#b",
        "ǅé",
        "HEAD",
    ];
    for m in modules {
        for v in versions {
            let Ok(ev) = escape_version(v) else {
                continue; // the go command cannot ask for it either
            };
            let em = escape_path(m).unwrap();
            for (suffix, canonical_only) in [(".info", false), (".mod", true), (".zip", true)] {
                let canonical = semver::canonical(v).is_some_and(|c| c == v);
                if canonical_only && !canonical {
                    continue; // proxy.go refuses to ask for .mod/.zip of non-canonical versions
                }
                let url = format!(
                    "/{}/{}",
                    go_path_escape(&em),
                    go_path_escape(&format!("@v/{ev}{suffix}"))
                );
                match parse(&url) {
                    Ok(ProxyRequest::Info { module, version }) => {
                        assert_eq!(module.as_str(), m, "{url}");
                        let (InfoQuery::Canonical(got) | InfoQuery::Query(got)) = version;
                        assert_eq!(got, v, "{url}");
                    }
                    Ok(
                        ProxyRequest::Mod { module, version }
                        | ProxyRequest::Zip { module, version },
                    ) => {
                        assert_eq!((module.as_str(), version.as_str()), (m, v), "{url}");
                    }
                    Ok(other) => panic!("{url}: unexpected {other:?}"),
                    Err(e) => assert_eq!(e.status(), 404, "{url}: {e}"),
                }
            }
        }
        let list = format!("/{}/@v/list", go_path_escape(&escape_path(m).unwrap()));
        assert_eq!(parse(&list), Ok(ProxyRequest::List { module: mp(m) }));
    }
}

/// Found by the `request_path` fuzz target: a long segment that percent-decodes to invalid
/// UTF-8 was quoted whole in the error (1044 bytes); it is shortened like every other.
#[test]
fn an_invalid_utf8_segment_gets_a_short_error() {
    let path = format!(
        "/example.com/{}{}/@v/list",
        "e".repeat(40),
        "%ee".repeat(400)
    );
    let e = parse(&path).expect_err("invalid UTF-8");
    let message = e.to_string();
    assert_eq!(e.status(), 400);
    // 96 bytes shown at most, each invalid one as `\xNN`.
    assert!(message.len() < 512, "{} bytes: {message}", message.len());
    assert!(message.ends_with("\"...: invalid UTF-8"), "{message}");
}
