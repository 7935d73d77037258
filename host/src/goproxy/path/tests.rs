//! Ported from `golang.org/x/mod/module/module_test.go`. The `CHECK_PATH_TESTS` and
//! `SPLIT_PATH_VERSION_TESTS` tables hold Go's table plus extra cases, with the expected
//! results and messages produced by the Go 1.26 implementation itself.

#![expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use super::*;
use crate::goproxy::escape::{escape_path, unescape_path};

/// `(path, module error, import error, file error)`; `None` = valid.
type CheckPathCase = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

/// Generated from Go 1.26 `module.CheckPath`/`CheckImportPath`/`CheckFilePath`.
const CHECK_PATH_TESTS: &[CheckPathCase] = &[
    ("x.y/z", None, None, None),
    ("x.y", None, None, None),
    (
        "",
        Some("malformed module path \"\": empty string"),
        Some("malformed import path \"\": empty string"),
        Some("malformed file path \"\": empty string"),
    ),
    (
        "/x.y/z",
        Some("malformed module path \"/x.y/z\": empty path element"),
        Some("malformed import path \"/x.y/z\": empty path element"),
        Some("malformed file path \"/x.y/z\": empty path element"),
    ),
    (
        "x./z",
        Some("malformed module path \"x./z\": trailing dot in path element"),
        Some("malformed import path \"x./z\": trailing dot in path element"),
        Some("malformed file path \"x./z\": trailing dot in path element"),
    ),
    (
        ".x/z",
        Some("malformed module path \".x/z\": leading dot in path element"),
        None,
        None,
    ),
    (
        "-x/z",
        Some("malformed module path \"-x/z\": leading dash"),
        Some("malformed import path \"-x/z\": leading dash"),
        None,
    ),
    ("x..y/z", None, None, None),
    (
        "x.y/z/../../w",
        Some("malformed module path \"x.y/z/../../w\": invalid path element \"..\""),
        Some("malformed import path \"x.y/z/../../w\": invalid path element \"..\""),
        Some("malformed file path \"x.y/z/../../w\": invalid path element \"..\""),
    ),
    (
        "x.y//z",
        Some("malformed module path \"x.y//z\": double slash"),
        Some("malformed import path \"x.y//z\": double slash"),
        Some("malformed file path \"x.y//z\": double slash"),
    ),
    (
        "x.y/z//w",
        Some("malformed module path \"x.y/z//w\": double slash"),
        Some("malformed import path \"x.y/z//w\": double slash"),
        Some("malformed file path \"x.y/z//w\": double slash"),
    ),
    (
        "x.y/z/",
        Some("malformed module path \"x.y/z/\": trailing slash"),
        Some("malformed import path \"x.y/z/\": trailing slash"),
        Some("malformed file path \"x.y/z/\": trailing slash"),
    ),
    (
        "x.y/z/v0",
        Some("malformed module path \"x.y/z/v0\": invalid version"),
        None,
        None,
    ),
    (
        "x.y/z/v1",
        Some("malformed module path \"x.y/z/v1\": invalid version"),
        None,
        None,
    ),
    ("x.y/z/v2", None, None, None),
    (
        "x.y/z/v2.0",
        Some("malformed module path \"x.y/z/v2.0\": invalid version"),
        None,
        None,
    ),
    (
        "X.y/z",
        Some("malformed module path \"X.y/z\": invalid char 'X' in first path element"),
        None,
        None,
    ),
    (
        "!x.y/z",
        Some("malformed module path \"!x.y/z\": invalid char '!'"),
        Some("malformed import path \"!x.y/z\": invalid char '!'"),
        None,
    ),
    (
        "_x.y/z",
        Some("malformed module path \"_x.y/z\": invalid char '_' in first path element"),
        None,
        None,
    ),
    (
        "x.y!/z",
        Some("malformed module path \"x.y!/z\": invalid char '!'"),
        Some("malformed import path \"x.y!/z\": invalid char '!'"),
        None,
    ),
    (
        "x.y\"/z",
        Some("malformed module path \"x.y\\\"/z\": invalid char '\"'"),
        Some("malformed import path \"x.y\\\"/z\": invalid char '\"'"),
        Some("malformed file path \"x.y\\\"/z\": invalid char '\"'"),
    ),
    (
        "x.y#/z",
        Some("malformed module path \"x.y#/z\": invalid char '#'"),
        Some("malformed import path \"x.y#/z\": invalid char '#'"),
        None,
    ),
    (
        "x.y$/z",
        Some("malformed module path \"x.y$/z\": invalid char '$'"),
        Some("malformed import path \"x.y$/z\": invalid char '$'"),
        None,
    ),
    (
        "x.y%/z",
        Some("malformed module path \"x.y%/z\": invalid char '%'"),
        Some("malformed import path \"x.y%/z\": invalid char '%'"),
        None,
    ),
    (
        "x.y&/z",
        Some("malformed module path \"x.y&/z\": invalid char '&'"),
        Some("malformed import path \"x.y&/z\": invalid char '&'"),
        None,
    ),
    (
        "x.y'/z",
        Some("malformed module path \"x.y'/z\": invalid char '\\''"),
        Some("malformed import path \"x.y'/z\": invalid char '\\''"),
        Some("malformed file path \"x.y'/z\": invalid char '\\''"),
    ),
    (
        "x.y(/z",
        Some("malformed module path \"x.y(/z\": invalid char '('"),
        Some("malformed import path \"x.y(/z\": invalid char '('"),
        None,
    ),
    (
        "x.y)/z",
        Some("malformed module path \"x.y)/z\": invalid char ')'"),
        Some("malformed import path \"x.y)/z\": invalid char ')'"),
        None,
    ),
    (
        "x.y*/z",
        Some("malformed module path \"x.y*/z\": invalid char '*'"),
        Some("malformed import path \"x.y*/z\": invalid char '*'"),
        Some("malformed file path \"x.y*/z\": invalid char '*'"),
    ),
    (
        "x.y+/z",
        Some("malformed module path \"x.y+/z\": invalid char '+'"),
        None,
        None,
    ),
    (
        "x.y,/z",
        Some("malformed module path \"x.y,/z\": invalid char ','"),
        Some("malformed import path \"x.y,/z\": invalid char ','"),
        None,
    ),
    ("x.y-/z", None, None, None),
    (
        "x.y./zt",
        Some("malformed module path \"x.y./zt\": trailing dot in path element"),
        Some("malformed import path \"x.y./zt\": trailing dot in path element"),
        Some("malformed file path \"x.y./zt\": trailing dot in path element"),
    ),
    (
        "x.y:/z",
        Some("malformed module path \"x.y:/z\": invalid char ':'"),
        Some("malformed import path \"x.y:/z\": invalid char ':'"),
        Some("malformed file path \"x.y:/z\": invalid char ':'"),
    ),
    (
        "x.y;/z",
        Some("malformed module path \"x.y;/z\": invalid char ';'"),
        Some("malformed import path \"x.y;/z\": invalid char ';'"),
        Some("malformed file path \"x.y;/z\": invalid char ';'"),
    ),
    (
        "x.y</z",
        Some("malformed module path \"x.y</z\": invalid char '<'"),
        Some("malformed import path \"x.y</z\": invalid char '<'"),
        Some("malformed file path \"x.y</z\": invalid char '<'"),
    ),
    (
        "x.y=/z",
        Some("malformed module path \"x.y=/z\": invalid char '='"),
        Some("malformed import path \"x.y=/z\": invalid char '='"),
        None,
    ),
    (
        "x.y>/z",
        Some("malformed module path \"x.y>/z\": invalid char '>'"),
        Some("malformed import path \"x.y>/z\": invalid char '>'"),
        Some("malformed file path \"x.y>/z\": invalid char '>'"),
    ),
    (
        "x.y?/z",
        Some("malformed module path \"x.y?/z\": invalid char '?'"),
        Some("malformed import path \"x.y?/z\": invalid char '?'"),
        Some("malformed file path \"x.y?/z\": invalid char '?'"),
    ),
    (
        "x.y@/z",
        Some("malformed module path \"x.y@/z\": invalid char '@'"),
        Some("malformed import path \"x.y@/z\": invalid char '@'"),
        None,
    ),
    (
        "x.y[/z",
        Some("malformed module path \"x.y[/z\": invalid char '['"),
        Some("malformed import path \"x.y[/z\": invalid char '['"),
        None,
    ),
    (
        "x.y\\/z",
        Some("malformed module path \"x.y\\\\/z\": invalid char '\\\\'"),
        Some("malformed import path \"x.y\\\\/z\": invalid char '\\\\'"),
        Some("malformed file path \"x.y\\\\/z\": invalid char '\\\\'"),
    ),
    (
        "x.y]/z",
        Some("malformed module path \"x.y]/z\": invalid char ']'"),
        Some("malformed import path \"x.y]/z\": invalid char ']'"),
        None,
    ),
    (
        "x.y^/z",
        Some("malformed module path \"x.y^/z\": invalid char '^'"),
        Some("malformed import path \"x.y^/z\": invalid char '^'"),
        None,
    ),
    (
        "x.y_/z",
        Some("malformed module path \"x.y_/z\": invalid char '_' in first path element"),
        None,
        None,
    ),
    (
        "x.y`/z",
        Some("malformed module path \"x.y`/z\": invalid char '`'"),
        Some("malformed import path \"x.y`/z\": invalid char '`'"),
        Some("malformed file path \"x.y`/z\": invalid char '`'"),
    ),
    (
        "x.y{/z",
        Some("malformed module path \"x.y{/z\": invalid char '{'"),
        Some("malformed import path \"x.y{/z\": invalid char '{'"),
        None,
    ),
    (
        "x.y}/z",
        Some("malformed module path \"x.y}/z\": invalid char '}'"),
        Some("malformed import path \"x.y}/z\": invalid char '}'"),
        None,
    ),
    (
        "x.y~/z",
        Some("malformed module path \"x.y~/z\": invalid char '~' in first path element"),
        None,
        None,
    ),
    (
        "x.y/z!",
        Some("malformed module path \"x.y/z!\": invalid char '!'"),
        Some("malformed import path \"x.y/z!\": invalid char '!'"),
        None,
    ),
    (
        "x.y/z\"",
        Some("malformed module path \"x.y/z\\\"\": invalid char '\"'"),
        Some("malformed import path \"x.y/z\\\"\": invalid char '\"'"),
        Some("malformed file path \"x.y/z\\\"\": invalid char '\"'"),
    ),
    (
        "x.y/z#",
        Some("malformed module path \"x.y/z#\": invalid char '#'"),
        Some("malformed import path \"x.y/z#\": invalid char '#'"),
        None,
    ),
    (
        "x.y/z$",
        Some("malformed module path \"x.y/z$\": invalid char '$'"),
        Some("malformed import path \"x.y/z$\": invalid char '$'"),
        None,
    ),
    (
        "x.y/z%",
        Some("malformed module path \"x.y/z%\": invalid char '%'"),
        Some("malformed import path \"x.y/z%\": invalid char '%'"),
        None,
    ),
    (
        "x.y/z&",
        Some("malformed module path \"x.y/z&\": invalid char '&'"),
        Some("malformed import path \"x.y/z&\": invalid char '&'"),
        None,
    ),
    (
        "x.y/z'",
        Some("malformed module path \"x.y/z'\": invalid char '\\''"),
        Some("malformed import path \"x.y/z'\": invalid char '\\''"),
        Some("malformed file path \"x.y/z'\": invalid char '\\''"),
    ),
    (
        "x.y/z(",
        Some("malformed module path \"x.y/z(\": invalid char '('"),
        Some("malformed import path \"x.y/z(\": invalid char '('"),
        None,
    ),
    (
        "x.y/z)",
        Some("malformed module path \"x.y/z)\": invalid char ')'"),
        Some("malformed import path \"x.y/z)\": invalid char ')'"),
        None,
    ),
    (
        "x.y/z*",
        Some("malformed module path \"x.y/z*\": invalid char '*'"),
        Some("malformed import path \"x.y/z*\": invalid char '*'"),
        Some("malformed file path \"x.y/z*\": invalid char '*'"),
    ),
    (
        "x.y/z++",
        Some("malformed module path \"x.y/z++\": invalid char '+'"),
        None,
        None,
    ),
    (
        "x.y/z,",
        Some("malformed module path \"x.y/z,\": invalid char ','"),
        Some("malformed import path \"x.y/z,\": invalid char ','"),
        None,
    ),
    ("x.y/z-", None, None, None),
    ("x.y/z.t", None, None, None),
    ("x.y/z/t", None, None, None),
    (
        "x.y/z:",
        Some("malformed module path \"x.y/z:\": invalid char ':'"),
        Some("malformed import path \"x.y/z:\": invalid char ':'"),
        Some("malformed file path \"x.y/z:\": invalid char ':'"),
    ),
    (
        "x.y/z;",
        Some("malformed module path \"x.y/z;\": invalid char ';'"),
        Some("malformed import path \"x.y/z;\": invalid char ';'"),
        Some("malformed file path \"x.y/z;\": invalid char ';'"),
    ),
    (
        "x.y/z<",
        Some("malformed module path \"x.y/z<\": invalid char '<'"),
        Some("malformed import path \"x.y/z<\": invalid char '<'"),
        Some("malformed file path \"x.y/z<\": invalid char '<'"),
    ),
    (
        "x.y/z=",
        Some("malformed module path \"x.y/z=\": invalid char '='"),
        Some("malformed import path \"x.y/z=\": invalid char '='"),
        None,
    ),
    (
        "x.y/z>",
        Some("malformed module path \"x.y/z>\": invalid char '>'"),
        Some("malformed import path \"x.y/z>\": invalid char '>'"),
        Some("malformed file path \"x.y/z>\": invalid char '>'"),
    ),
    (
        "x.y/z?",
        Some("malformed module path \"x.y/z?\": invalid char '?'"),
        Some("malformed import path \"x.y/z?\": invalid char '?'"),
        Some("malformed file path \"x.y/z?\": invalid char '?'"),
    ),
    (
        "x.y/z@",
        Some("malformed module path \"x.y/z@\": invalid char '@'"),
        Some("malformed import path \"x.y/z@\": invalid char '@'"),
        None,
    ),
    (
        "x.y/z[",
        Some("malformed module path \"x.y/z[\": invalid char '['"),
        Some("malformed import path \"x.y/z[\": invalid char '['"),
        None,
    ),
    (
        "x.y/z\\",
        Some("malformed module path \"x.y/z\\\\\": invalid char '\\\\'"),
        Some("malformed import path \"x.y/z\\\\\": invalid char '\\\\'"),
        Some("malformed file path \"x.y/z\\\\\": invalid char '\\\\'"),
    ),
    (
        "x.y/z]",
        Some("malformed module path \"x.y/z]\": invalid char ']'"),
        Some("malformed import path \"x.y/z]\": invalid char ']'"),
        None,
    ),
    (
        "x.y/z^",
        Some("malformed module path \"x.y/z^\": invalid char '^'"),
        Some("malformed import path \"x.y/z^\": invalid char '^'"),
        None,
    ),
    ("x.y/z_", None, None, None),
    (
        "x.y/z`",
        Some("malformed module path \"x.y/z`\": invalid char '`'"),
        Some("malformed import path \"x.y/z`\": invalid char '`'"),
        Some("malformed file path \"x.y/z`\": invalid char '`'"),
    ),
    (
        "x.y/z{",
        Some("malformed module path \"x.y/z{\": invalid char '{'"),
        Some("malformed import path \"x.y/z{\": invalid char '{'"),
        None,
    ),
    (
        "x.y/z}",
        Some("malformed module path \"x.y/z}\": invalid char '}'"),
        Some("malformed import path \"x.y/z}\": invalid char '}'"),
        None,
    ),
    ("x.y/z~", None, None, None),
    ("x.y/x.foo", None, None, None),
    (
        "x.y/aux.foo",
        Some(
            "malformed module path \"x.y/aux.foo\": \"aux\" disallowed as path element component on Windows",
        ),
        Some(
            "malformed import path \"x.y/aux.foo\": \"aux\" disallowed as path element component on Windows",
        ),
        Some(
            "malformed file path \"x.y/aux.foo\": \"aux\" disallowed as path element component on Windows",
        ),
    ),
    (
        "x.y/prn",
        Some(
            "malformed module path \"x.y/prn\": \"prn\" disallowed as path element component on Windows",
        ),
        Some(
            "malformed import path \"x.y/prn\": \"prn\" disallowed as path element component on Windows",
        ),
        Some(
            "malformed file path \"x.y/prn\": \"prn\" disallowed as path element component on Windows",
        ),
    ),
    ("x.y/prn2", None, None, None),
    ("x.y/com", None, None, None),
    (
        "x.y/com1",
        Some(
            "malformed module path \"x.y/com1\": \"com1\" disallowed as path element component on Windows",
        ),
        Some(
            "malformed import path \"x.y/com1\": \"com1\" disallowed as path element component on Windows",
        ),
        Some(
            "malformed file path \"x.y/com1\": \"com1\" disallowed as path element component on Windows",
        ),
    ),
    (
        "x.y/com1.txt",
        Some(
            "malformed module path \"x.y/com1.txt\": \"com1\" disallowed as path element component on Windows",
        ),
        Some(
            "malformed import path \"x.y/com1.txt\": \"com1\" disallowed as path element component on Windows",
        ),
        Some(
            "malformed file path \"x.y/com1.txt\": \"com1\" disallowed as path element component on Windows",
        ),
    ),
    ("x.y/calm1", None, None, None),
    (
        "x.y/z~0",
        Some("malformed module path \"x.y/z~0\": trailing tilde and digits in path element"),
        Some("malformed import path \"x.y/z~0\": trailing tilde and digits in path element"),
        None,
    ),
    (
        "x.y/z~09",
        Some("malformed module path \"x.y/z~09\": trailing tilde and digits in path element"),
        Some("malformed import path \"x.y/z~09\": trailing tilde and digits in path element"),
        None,
    ),
    ("x.y/z09", None, None, None),
    ("x.y/z09~", None, None, None),
    ("x.y/z09~09z", None, None, None),
    (
        "x.y/z09~09z~09",
        Some("malformed module path \"x.y/z09~09z~09\": trailing tilde and digits in path element"),
        Some("malformed import path \"x.y/z09~09z~09\": trailing tilde and digits in path element"),
        None,
    ),
    (
        "github.com/!123/logrus",
        Some("malformed module path \"github.com/!123/logrus\": invalid char '!'"),
        Some("malformed import path \"github.com/!123/logrus\": invalid char '!'"),
        None,
    ),
    (
        "github.com/user/unicode/испытание",
        Some("malformed module path \"github.com/user/unicode/испытание\": invalid char 'и'"),
        Some("malformed import path \"github.com/user/unicode/испытание\": invalid char 'и'"),
        None,
    ),
    (
        "../x",
        Some("malformed module path \"../x\": invalid path element \"..\""),
        Some("malformed import path \"../x\": invalid path element \"..\""),
        Some("malformed file path \"../x\": invalid path element \"..\""),
    ),
    (
        "./y",
        Some("malformed module path \"./y\": invalid path element \".\""),
        Some("malformed import path \"./y\": invalid path element \".\""),
        Some("malformed file path \"./y\": invalid path element \".\""),
    ),
    (
        "x:y",
        Some("malformed module path \"x:y\": invalid char ':'"),
        Some("malformed import path \"x:y\": invalid char ':'"),
        Some("malformed file path \"x:y\": invalid char ':'"),
    ),
    (
        "\\temp\\foo",
        Some("malformed module path \"\\\\temp\\\\foo\": invalid char '\\\\'"),
        Some("malformed import path \"\\\\temp\\\\foo\": invalid char '\\\\'"),
        Some("malformed file path \"\\\\temp\\\\foo\": invalid char '\\\\'"),
    ),
    (
        ".gitignore",
        Some("malformed module path \".gitignore\": leading dot in path element"),
        None,
        None,
    ),
    (
        ".github/ISSUE_TEMPLATE",
        Some("malformed module path \".github/ISSUE_TEMPLATE\": leading dot in path element"),
        None,
        None,
    ),
    (
        "x☺y",
        Some("malformed module path \"x☺y\": invalid char '☺'"),
        Some("malformed import path \"x☺y\": invalid char '☺'"),
        Some("malformed file path \"x☺y\": invalid char '☺'"),
    ),
    (
        "x.y/CON",
        Some(
            "malformed module path \"x.y/CON\": \"CON\" disallowed as path element component on Windows",
        ),
        Some(
            "malformed import path \"x.y/CON\": \"CON\" disallowed as path element component on Windows",
        ),
        Some(
            "malformed file path \"x.y/CON\": \"CON\" disallowed as path element component on Windows",
        ),
    ),
    (
        "x.y/Con.txt",
        Some(
            "malformed module path \"x.y/Con.txt\": \"Con\" disallowed as path element component on Windows",
        ),
        Some(
            "malformed import path \"x.y/Con.txt\": \"Con\" disallowed as path element component on Windows",
        ),
        Some(
            "malformed file path \"x.y/Con.txt\": \"Con\" disallowed as path element component on Windows",
        ),
    ),
    (
        "x.y/lpt9.a.b",
        Some(
            "malformed module path \"x.y/lpt9.a.b\": \"lpt9\" disallowed as path element component on Windows",
        ),
        Some(
            "malformed import path \"x.y/lpt9.a.b\": \"lpt9\" disallowed as path element component on Windows",
        ),
        Some(
            "malformed file path \"x.y/lpt9.a.b\": \"lpt9\" disallowed as path element component on Windows",
        ),
    ),
    ("x.y/lpt0", None, None, None),
    (
        "x.y/COM¹",
        Some("malformed module path \"x.y/COM¹\": invalid char '¹'"),
        Some("malformed import path \"x.y/COM¹\": invalid char '¹'"),
        Some("malformed file path \"x.y/COM¹\": invalid char '¹'"),
    ),
    (
        "x.y/a b",
        Some("malformed module path \"x.y/a b\": invalid char ' '"),
        Some("malformed import path \"x.y/a b\": invalid char ' '"),
        None,
    ),
    (
        "a b/c",
        Some("malformed module path \"a b/c\": invalid char ' '"),
        Some("malformed import path \"a b/c\": invalid char ' '"),
        None,
    ),
    (
        "x.y/a\tb",
        Some("malformed module path \"x.y/a\\tb\": invalid char '\\t'"),
        Some("malformed import path \"x.y/a\\tb\": invalid char '\\t'"),
        Some("malformed file path \"x.y/a\\tb\": invalid char '\\t'"),
    ),
    (
        "x.y/ा",
        Some("malformed module path \"x.y/ा\": invalid char 'ा'"),
        Some("malformed import path \"x.y/ा\": invalid char 'ा'"),
        Some("malformed file path \"x.y/ा\": invalid char 'ा'"),
    ),
    (
        "x.y/हिंदी",
        Some("malformed module path \"x.y/हिंदी\": invalid char 'ह'"),
        Some("malformed import path \"x.y/हिंदी\": invalid char 'ह'"),
        Some("malformed file path \"x.y/हिंदी\": invalid char 'ि'"),
    ),
    (
        "x.y/ⅰ",
        Some("malformed module path \"x.y/ⅰ\": invalid char 'ⅰ'"),
        Some("malformed import path \"x.y/ⅰ\": invalid char 'ⅰ'"),
        Some("malformed file path \"x.y/ⅰ\": invalid char 'ⅰ'"),
    ),
    (
        "x.y/ǅ",
        Some("malformed module path \"x.y/ǅ\": invalid char 'ǅ'"),
        Some("malformed import path \"x.y/ǅ\": invalid char 'ǅ'"),
        None,
    ),
    (
        "x.y/ſ",
        Some("malformed module path \"x.y/ſ\": invalid char 'ſ'"),
        Some("malformed import path \"x.y/ſ\": invalid char 'ſ'"),
        None,
    ),
    ("gopkg.in/yaml.v2", None, None, None),
    ("gopkg.in/yaml.v0", None, None, None),
    (
        "gopkg.in/yaml.v01",
        Some("malformed module path \"gopkg.in/yaml.v01\": invalid version"),
        None,
        None,
    ),
    (
        "gopkg.in/yaml",
        Some("malformed module path \"gopkg.in/yaml\": invalid version"),
        None,
        None,
    ),
    ("gopkg.in/yaml.v2-unstable", None, None, None),
    ("gopkg.in/user/yaml.v3", None, None, None),
    (
        "gopkg.in/v2",
        Some("malformed module path \"gopkg.in/v2\": invalid version"),
        None,
        None,
    ),
    (
        "gopkg.in/.v2",
        Some("malformed module path \"gopkg.in/.v2\": leading dot in path element"),
        None,
        None,
    ),
    ("example.com/v2", None, None, None),
    ("example.com/x/v10", None, None, None),
    (
        "example.com/x/v02",
        Some("malformed module path \"example.com/x/v02\": invalid version"),
        None,
        None,
    ),
    ("example.com/x/v", None, None, None),
    (
        "example.com/x/v1.2",
        Some("malformed module path \"example.com/x/v1.2\": invalid version"),
        None,
        None,
    ),
    ("example.com/x/v2/sub", None, None, None),
    (
        "-example.com/x",
        Some("malformed module path \"-example.com/x\": leading dash"),
        Some("malformed import path \"-example.com/x\": leading dash"),
        None,
    ),
    ("example-.com/x", None, None, None),
    (
        "ex_ample.com/x",
        Some("malformed module path \"ex_ample.com/x\": invalid char '_' in first path element"),
        None,
        None,
    ),
    (
        "exa~mple.com/x",
        Some("malformed module path \"exa~mple.com/x\": invalid char '~' in first path element"),
        None,
        None,
    ),
    (
        "example.com~1/x",
        Some("malformed module path \"example.com~1/x\": invalid char '~' in first path element"),
        None,
        None,
    ),
    ("example.com/x~", None, None, None),
    ("example.com/x~a1", None, None, None),
    (
        "example.com/PROGRA~1",
        Some(
            "malformed module path \"example.com/PROGRA~1\": trailing tilde and digits in path element",
        ),
        Some(
            "malformed import path \"example.com/PROGRA~1\": trailing tilde and digits in path element",
        ),
        None,
    ),
    ("example.com/a.b~1.c", None, None, None),
    (
        "example.com/a~1.b",
        Some(
            "malformed module path \"example.com/a~1.b\": trailing tilde and digits in path element",
        ),
        Some(
            "malformed import path \"example.com/a~1.b\": trailing tilde and digits in path element",
        ),
        None,
    ),
    (
        "localhost/x",
        Some("malformed module path \"localhost/x\": missing dot in first path element"),
        None,
        None,
    ),
    ("127.0.0.1/repo.git", None, None, None),
    ("xn--80ak6aa92e.com/x", None, None, None),
    (
        "example.com/x.",
        Some("malformed module path \"example.com/x.\": trailing dot in path element"),
        Some("malformed import path \"example.com/x.\": trailing dot in path element"),
        Some("malformed file path \"example.com/x.\": trailing dot in path element"),
    ),
    (
        "example.com/.x",
        Some("malformed module path \"example.com/.x\": leading dot in path element"),
        None,
        None,
    ),
    (
        "example.com/...",
        Some("malformed module path \"example.com/...\": invalid path element \"...\""),
        Some("malformed import path \"example.com/...\": invalid path element \"...\""),
        Some("malformed file path \"example.com/...\": invalid path element \"...\""),
    ),
    (
        "example.com/.",
        Some("malformed module path \"example.com/.\": invalid path element \".\""),
        Some("malformed import path \"example.com/.\": invalid path element \".\""),
        Some("malformed file path \"example.com/.\": invalid path element \".\""),
    ),
    (
        "example.com/x/./y",
        Some("malformed module path \"example.com/x/./y\": invalid path element \".\""),
        Some("malformed import path \"example.com/x/./y\": invalid path element \".\""),
        Some("malformed file path \"example.com/x/./y\": invalid path element \".\""),
    ),
];

/// Generated from Go 1.26 `module.SplitPathVersion` (`None` = `ok == false`).
const SPLIT_PATH_VERSION_TESTS: &[(&str, Option<(&str, &str)>)] = &[
    ("x.y/z", Some(("x.y/z", ""))),
    ("x.y", Some(("x.y", ""))),
    ("", Some(("", ""))),
    ("/x.y/z", Some(("/x.y/z", ""))),
    ("x./z", Some(("x./z", ""))),
    (".x/z", Some((".x/z", ""))),
    ("-x/z", Some(("-x/z", ""))),
    ("x..y/z", Some(("x..y/z", ""))),
    ("x.y/z/../../w", Some(("x.y/z/../../w", ""))),
    ("x.y//z", Some(("x.y//z", ""))),
    ("x.y/z//w", Some(("x.y/z//w", ""))),
    ("x.y/z/", Some(("x.y/z/", ""))),
    ("x.y/z/v0", None),
    ("x.y/z/v1", None),
    ("x.y/z/v2", Some(("x.y/z", "/v2"))),
    ("x.y/z/v2.0", None),
    ("X.y/z", Some(("X.y/z", ""))),
    ("!x.y/z", Some(("!x.y/z", ""))),
    ("_x.y/z", Some(("_x.y/z", ""))),
    ("x.y!/z", Some(("x.y!/z", ""))),
    ("x.y\"/z", Some(("x.y\"/z", ""))),
    ("x.y#/z", Some(("x.y#/z", ""))),
    ("x.y$/z", Some(("x.y$/z", ""))),
    ("x.y%/z", Some(("x.y%/z", ""))),
    ("x.y&/z", Some(("x.y&/z", ""))),
    ("x.y'/z", Some(("x.y'/z", ""))),
    ("x.y(/z", Some(("x.y(/z", ""))),
    ("x.y)/z", Some(("x.y)/z", ""))),
    ("x.y*/z", Some(("x.y*/z", ""))),
    ("x.y+/z", Some(("x.y+/z", ""))),
    ("x.y,/z", Some(("x.y,/z", ""))),
    ("x.y-/z", Some(("x.y-/z", ""))),
    ("x.y./zt", Some(("x.y./zt", ""))),
    ("x.y:/z", Some(("x.y:/z", ""))),
    ("x.y;/z", Some(("x.y;/z", ""))),
    ("x.y</z", Some(("x.y</z", ""))),
    ("x.y=/z", Some(("x.y=/z", ""))),
    ("x.y>/z", Some(("x.y>/z", ""))),
    ("x.y?/z", Some(("x.y?/z", ""))),
    ("x.y@/z", Some(("x.y@/z", ""))),
    ("x.y[/z", Some(("x.y[/z", ""))),
    ("x.y\\/z", Some(("x.y\\/z", ""))),
    ("x.y]/z", Some(("x.y]/z", ""))),
    ("x.y^/z", Some(("x.y^/z", ""))),
    ("x.y_/z", Some(("x.y_/z", ""))),
    ("x.y`/z", Some(("x.y`/z", ""))),
    ("x.y{/z", Some(("x.y{/z", ""))),
    ("x.y}/z", Some(("x.y}/z", ""))),
    ("x.y~/z", Some(("x.y~/z", ""))),
    ("x.y/z!", Some(("x.y/z!", ""))),
    ("x.y/z\"", Some(("x.y/z\"", ""))),
    ("x.y/z#", Some(("x.y/z#", ""))),
    ("x.y/z$", Some(("x.y/z$", ""))),
    ("x.y/z%", Some(("x.y/z%", ""))),
    ("x.y/z&", Some(("x.y/z&", ""))),
    ("x.y/z'", Some(("x.y/z'", ""))),
    ("x.y/z(", Some(("x.y/z(", ""))),
    ("x.y/z)", Some(("x.y/z)", ""))),
    ("x.y/z*", Some(("x.y/z*", ""))),
    ("x.y/z++", Some(("x.y/z++", ""))),
    ("x.y/z,", Some(("x.y/z,", ""))),
    ("x.y/z-", Some(("x.y/z-", ""))),
    ("x.y/z.t", Some(("x.y/z.t", ""))),
    ("x.y/z/t", Some(("x.y/z/t", ""))),
    ("x.y/z:", Some(("x.y/z:", ""))),
    ("x.y/z;", Some(("x.y/z;", ""))),
    ("x.y/z<", Some(("x.y/z<", ""))),
    ("x.y/z=", Some(("x.y/z=", ""))),
    ("x.y/z>", Some(("x.y/z>", ""))),
    ("x.y/z?", Some(("x.y/z?", ""))),
    ("x.y/z@", Some(("x.y/z@", ""))),
    ("x.y/z[", Some(("x.y/z[", ""))),
    ("x.y/z\\", Some(("x.y/z\\", ""))),
    ("x.y/z]", Some(("x.y/z]", ""))),
    ("x.y/z^", Some(("x.y/z^", ""))),
    ("x.y/z_", Some(("x.y/z_", ""))),
    ("x.y/z`", Some(("x.y/z`", ""))),
    ("x.y/z{", Some(("x.y/z{", ""))),
    ("x.y/z}", Some(("x.y/z}", ""))),
    ("x.y/z~", Some(("x.y/z~", ""))),
    ("x.y/x.foo", Some(("x.y/x.foo", ""))),
    ("x.y/aux.foo", Some(("x.y/aux.foo", ""))),
    ("x.y/prn", Some(("x.y/prn", ""))),
    ("x.y/prn2", Some(("x.y/prn2", ""))),
    ("x.y/com", Some(("x.y/com", ""))),
    ("x.y/com1", Some(("x.y/com1", ""))),
    ("x.y/com1.txt", Some(("x.y/com1.txt", ""))),
    ("x.y/calm1", Some(("x.y/calm1", ""))),
    ("x.y/z~0", Some(("x.y/z~0", ""))),
    ("x.y/z~09", Some(("x.y/z~09", ""))),
    ("x.y/z09", Some(("x.y/z09", ""))),
    ("x.y/z09~", Some(("x.y/z09~", ""))),
    ("x.y/z09~09z", Some(("x.y/z09~09z", ""))),
    ("x.y/z09~09z~09", Some(("x.y/z09~09z~09", ""))),
    (
        "github.com/!123/logrus",
        Some(("github.com/!123/logrus", "")),
    ),
    (
        "github.com/user/unicode/испытание",
        Some(("github.com/user/unicode/испытание", "")),
    ),
    ("../x", Some(("../x", ""))),
    ("./y", Some(("./y", ""))),
    ("x:y", Some(("x:y", ""))),
    ("\\temp\\foo", Some(("\\temp\\foo", ""))),
    (".gitignore", Some((".gitignore", ""))),
    (
        ".github/ISSUE_TEMPLATE",
        Some((".github/ISSUE_TEMPLATE", "")),
    ),
    ("x☺y", Some(("x☺y", ""))),
    ("x.y/CON", Some(("x.y/CON", ""))),
    ("x.y/Con.txt", Some(("x.y/Con.txt", ""))),
    ("x.y/lpt9.a.b", Some(("x.y/lpt9.a.b", ""))),
    ("x.y/lpt0", Some(("x.y/lpt0", ""))),
    ("x.y/COM¹", Some(("x.y/COM¹", ""))),
    ("x.y/a b", Some(("x.y/a b", ""))),
    ("a b/c", Some(("a b/c", ""))),
    ("x.y/a\tb", Some(("x.y/a\tb", ""))),
    ("x.y/ा", Some(("x.y/ा", ""))),
    ("x.y/हिंदी", Some(("x.y/हिंदी", ""))),
    ("x.y/ⅰ", Some(("x.y/ⅰ", ""))),
    ("x.y/ǅ", Some(("x.y/ǅ", ""))),
    ("x.y/ſ", Some(("x.y/ſ", ""))),
    ("gopkg.in/yaml.v2", Some(("gopkg.in/yaml", ".v2"))),
    ("gopkg.in/yaml.v0", Some(("gopkg.in/yaml", ".v0"))),
    ("gopkg.in/yaml.v01", None),
    ("gopkg.in/yaml", None),
    (
        "gopkg.in/yaml.v2-unstable",
        Some(("gopkg.in/yaml", ".v2-unstable")),
    ),
    ("gopkg.in/user/yaml.v3", Some(("gopkg.in/user/yaml", ".v3"))),
    ("gopkg.in/v2", None),
    ("gopkg.in/.v2", Some(("gopkg.in/", ".v2"))),
    ("example.com/v2", Some(("example.com", "/v2"))),
    ("example.com/x/v10", Some(("example.com/x", "/v10"))),
    ("example.com/x/v02", None),
    ("example.com/x/v", Some(("example.com/x/v", ""))),
    ("example.com/x/v1.2", None),
    ("example.com/x/v2/sub", Some(("example.com/x/v2/sub", ""))),
    ("-example.com/x", Some(("-example.com/x", ""))),
    ("example-.com/x", Some(("example-.com/x", ""))),
    ("ex_ample.com/x", Some(("ex_ample.com/x", ""))),
    ("exa~mple.com/x", Some(("exa~mple.com/x", ""))),
    ("example.com~1/x", Some(("example.com~1/x", ""))),
    ("example.com/x~", Some(("example.com/x~", ""))),
    ("example.com/x~a1", Some(("example.com/x~a1", ""))),
    ("example.com/PROGRA~1", Some(("example.com/PROGRA~1", ""))),
    ("example.com/a.b~1.c", Some(("example.com/a.b~1.c", ""))),
    ("example.com/a~1.b", Some(("example.com/a~1.b", ""))),
    ("localhost/x", Some(("localhost/x", ""))),
    ("127.0.0.1/repo.git", Some(("127.0.0.1/repo.git", ""))),
    ("xn--80ak6aa92e.com/x", Some(("xn--80ak6aa92e.com/x", ""))),
    ("example.com/x.", Some(("example.com/x.", ""))),
    ("example.com/.x", Some(("example.com/.x", ""))),
    ("example.com/...", Some(("example.com/...", ""))),
    ("example.com/.", Some(("example.com/.", ""))),
    ("example.com/x/./y", Some(("example.com/x/./y", ""))),
];

#[test]
fn check_path_table() {
    for &(path, module_err, import_err, file_err) in CHECK_PATH_TESTS {
        for (kind, got, want) in [
            ("module", check_path(path), module_err),
            ("import", check_import_path(path), import_err),
            ("file", check_file_path(path), file_err),
        ] {
            match (got, want) {
                (Ok(()), None) => {}
                (Err(e), Some(want)) => {
                    // Go keeps printable non-ASCII runes in %q; `quote` escapes symbols such
                    // as '☺', so messages are only compared for ASCII paths.
                    if path.is_ascii() {
                        assert_eq!(e.0, want, "check {kind} path {path:?}");
                    }
                }
                (got, want) => panic!("check {kind} path {path:?}: got {got:?}, want {want:?}"),
            }
        }
        // ModulePath::parse and escape_path agree with CheckPath.
        assert_eq!(
            ModulePath::parse(path).is_ok(),
            module_err.is_none(),
            "parse {path:?}"
        );
        assert_eq!(
            escape_path(path).is_ok(),
            module_err.is_none(),
            "escape_path {path:?}"
        );
        // TestUnescapePath: an invalid module path never unescapes successfully.
        if module_err.is_some() {
            assert!(unescape_path(path).is_err(), "unescape_path {path:?}");
            assert!(
                ModulePath::from_escaped(path).is_err(),
                "from_escaped {path:?}"
            );
        }
    }
}

#[test]
fn split_path_version_table() {
    for &(path, want) in SPLIT_PATH_VERSION_TESTS {
        let got = split_path_version(path);
        assert_eq!(got, want, "split_path_version({path:?})");
        if let Some((prefix, major)) = got {
            assert_eq!(format!("{prefix}{major}"), path);
        }
    }
    // module_test.go splitPathVersionTests.
    for (prefix, major) in [
        ("x.y/z", ""),
        ("x.y/z", "/v2"),
        ("x.y/z", "/v3"),
        ("x.y/v", ""),
        ("gopkg.in/yaml", ".v0"),
        ("gopkg.in/yaml", ".v1"),
        ("gopkg.in/yaml", ".v2"),
        ("gopkg.in/yaml", ".v3"),
    ] {
        let path = format!("{prefix}{major}");
        assert_eq!(split_path_version(&path), Some((prefix, major)), "{path:?}");
    }
}

/// `module_test.go` `checkTests` (`module.Check`).
#[test]
fn check_version_table() {
    for (path, version, ok) in [
        ("github.com/go-yaml/yaml", "v0.8.0", true),
        ("github.com/go-yaml/yaml", "v1.0.0", true),
        ("github.com/go-yaml/yaml", "v2.0.0", false),
        ("github.com/go-yaml/yaml", "v2.1.5", false),
        ("github.com/go-yaml/yaml", "v3.0.0", false),
        ("github.com/go-yaml/yaml/v2", "v1.0.0", false),
        ("github.com/go-yaml/yaml/v2", "v2.0.0", true),
        ("github.com/go-yaml/yaml/v2", "v2.1.5", true),
        ("github.com/go-yaml/yaml/v2", "v3.0.0", false),
        ("gopkg.in/yaml.v0", "v0.8.0", true),
        ("gopkg.in/yaml.v0", "v1.0.0", false),
        ("gopkg.in/yaml.v0", "v2.0.0", false),
        ("gopkg.in/yaml.v0", "v2.1.5", false),
        ("gopkg.in/yaml.v0", "v3.0.0", false),
        ("gopkg.in/yaml.v1", "v0.8.0", false),
        ("gopkg.in/yaml.v1", "v1.0.0", true),
        ("gopkg.in/yaml.v1", "v2.0.0", false),
        ("gopkg.in/yaml.v1", "v2.1.5", false),
        ("gopkg.in/yaml.v1", "v3.0.0", false),
        // For gopkg.in, .v1 means v1 only (not v0), but old v0 pseudo-versions are accepted.
        ("gopkg.in/check.v1", "v0.0.0", false),
        (
            "gopkg.in/check.v1",
            "v0.0.0-20160102150405-abcdef123456",
            true,
        ),
        ("gopkg.in/yaml.v2", "v1.0.0", false),
        ("gopkg.in/yaml.v2", "v2.0.0", true),
        ("gopkg.in/yaml.v2", "v2.1.5", true),
        ("gopkg.in/yaml.v2", "v3.0.0", false),
        ("rsc.io/quote", "v17.0.0", false),
        ("rsc.io/quote", "v17.0.0+incompatible", true),
        ("rsc.io/quote", "0.1.0", false),
        ("rsc.io/quote", "v1.2", true),
    ] {
        let m = ModulePath::parse(path).unwrap();
        assert_eq!(
            m.check_version(version).is_ok(),
            ok,
            "check({path:?}, {version:?})"
        );
    }
    assert!(ModulePath::parse("rsc io/quote").is_err());
}

/// `module_test.go` `TestMatchPathMajor`.
#[test]
fn match_path_major_table() {
    for (v, path_major, want) in [
        ("v0.0.0", "", true),
        ("v0.0.0", "/v2", false),
        ("v0.0.0", ".v0", true),
        ("v0.0.0-20190510104115-cbcb75029529", ".v1", true),
        ("v1.0.0", "/v2", false),
        ("v1.0.0", ".v1", true),
        ("v1.0.0", ".v1-unstable", true),
        ("v2.0.0+incompatible", "", true),
        ("v2.0.0", "", false),
        ("v2.0.0", "/v2", true),
        ("v2.0.0", ".v2", true),
    ] {
        assert_eq!(
            match_path_major(v, path_major),
            want,
            "match_path_major({v:?}, {path_major:?})"
        );
    }
}

#[test]
fn check_path_major_messages() {
    let m = ModulePath::parse("example.com/m").unwrap();
    assert_eq!(check_path_major("v1.5.0", &m), Ok(()));
    assert_eq!(check_path_major("v2.0.0+incompatible", &m), Ok(()));
    assert_eq!(
        check_path_major("v2.0.0", &m).unwrap_err().0,
        r#"version "v2.0.0" invalid: should be v0 or v1, not v2"#
    );
    let m2 = ModulePath::parse("example.com/m/v2").unwrap();
    assert_eq!(m2.path_major(), "/v2");
    assert_eq!(m2.prefix(), "example.com/m");
    assert_eq!(check_path_major("v2.3.4", &m2), Ok(()));
    assert_eq!(
        check_path_major("v1.0.0", &m2).unwrap_err().0,
        r#"version "v1.0.0" invalid: should be v2, not v1"#
    );
    assert!(check_path_major("v3.0.0", &m2).is_err());
    let g = ModulePath::parse("gopkg.in/yaml.v3").unwrap();
    assert_eq!(g.path_major(), ".v3");
    assert_eq!(g.prefix(), "gopkg.in/yaml");
    assert!(check_path_major("v3.0.1", &g).is_ok());
    assert!(check_path_major("v2.0.0", &g).is_err());
}

#[test]
fn module_path_accessors() {
    let m = ModulePath::parse("github.com/Azure/azure-sdk-for-go").unwrap();
    assert_eq!(m.as_str(), "github.com/Azure/azure-sdk-for-go");
    assert_eq!(m.escaped(), "github.com/!azure/azure-sdk-for-go");
    assert_eq!(m.to_string(), "github.com/Azure/azure-sdk-for-go");
    assert_eq!(m.path_major(), "");
    let e = ModulePath::from_escaped("github.com/!azure/azure-sdk-for-go").unwrap();
    assert_eq!(e, m);
    assert!(ModulePath::from_escaped("github.com/Azure/azure-sdk-for-go").is_err());
}

#[test]
fn go_letters() {
    for (r, want) in [
        ('é', true),
        ('и', true),
        ('ǅ', true),  // Lt
        ('ʰ', true),  // Lm
        ('中', true), // Lo
        ('ⅰ', false), // Nl: alphabetic in Rust, not a letter in Go
        ('ा', false), // Mc (Other_Alphabetic)
        ('\u{345}', false),
        ('¹', false),
        ('☺', false),
        ('\u{200b}', false),
        ('\u{10FFFF}', false),
        ('𝒜', true),
    ] {
        assert_eq!(is_go_letter(r), want, "is_go_letter({r:?})");
    }
}

#[test]
fn quoting_never_leaks_control_bytes() {
    assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
    assert_eq!(quote("a\u{0}\u{1b}\n\t\u{7f}"), r#""a\x00\x1b\n\t\x7f""#);
    // As Go: printable symbols stay, invisible characters are escaped.
    assert_eq!(quote("é☺\u{200b}\u{1F600}"), "\"é☺\\u200b\u{1F600}\"");
    assert_eq!(quote_rune('\''), r"'\''");
    assert_eq!(quote_rune('"'), "'\"'");
}

/// Found by tests/integration/xmod_rules.rs: x/mod's ModuleError prints the version as it is
/// (a backslash stays one backslash); only control characters are escaped, to keep one line.
#[test]
fn check_version_errors_print_the_version_as_x_mod_does() {
    let m = ModulePath::parse("example.com/m").expect("valid");
    let err = m.check_version("a\\b\"é").expect_err("not semver");
    assert_eq!(
        err.to_string(),
        "example.com/m@a\\b\"é: invalid version: not a semantic version"
    );
    let err = m.check_version("v1\n").expect_err("not semver");
    assert_eq!(
        err.to_string(),
        "example.com/m@v1\\n: invalid version: not a semantic version"
    );
}

/// Found by tests/integration/xmod_rules.rs over the fuzz corpora: `%q` prints every character
/// Go considers printable (punctuation such as «, combining marks, emoji), not only letters
/// and digits. Expected output from Go 1.26's `fmt.Printf("%q")`.
#[test]
fn quote_prints_what_go_prints() {
    assert_eq!(
        quote("a«\u{5a6}\u{200b}\u{a0}\u{85}\u{1F600}\u{E0001} x"),
        "\"a«\u{5a6}\\u200b\\u00a0\\u0085\u{1F600}\\U000e0001 x\""
    );
}
