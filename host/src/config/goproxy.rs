//! Where `${GOPROXY}` comes from when a config refers to it (the embedded defaults do): the
//! `GOPROXY` environment variable when it is set, else the go command's own setting
//! (`go env GOPROXY`: its default, or what `go env -w` wrote), as a developer's go command
//! would use it. Most developers never set the variable; their proxy is the go command's.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The value `${GOPROXY}` stands for, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoproxyOrigin {
    /// `None`: no upstream (offline).
    pub value: Option<String>,
    /// For the start-up line: where the value came from, or why there is none.
    pub why: String,
}

impl GoproxyOrigin {
    /// The `GOPROXY` variable when set (even empty or `off`: the operator said so), else
    /// `go env GOPROXY` when a go command is on `PATH`, else none.
    pub fn resolve() -> Self {
        if let Some(value) = std::env::var_os("GOPROXY") {
            return GoproxyOrigin {
                value: Some(value.to_string_lossy().into_owned()),
                why: "the GOPROXY environment variable".into(),
            };
        }
        match go_env_goproxy(Path::new("go")) {
            Ok(value) => GoproxyOrigin {
                why: "`go env GOPROXY` (GOPROXY is not set; the go command's own setting)".into(),
                value: Some(value),
            },
            Err(why) => GoproxyOrigin {
                value: None,
                why: format!("none: GOPROXY is not set and {why}"),
            },
        }
    }
}

/// How long `go env` may take before modgate starts without it.
const GO_ENV_TIMEOUT: Duration = Duration::from_secs(10);

/// What `go env GOPROXY` prints, run with `go` (a name looked up on `PATH`, or a path).
/// `GOTOOLCHAIN=local`: a go.mod in the working directory must not make it download a
/// toolchain first.
pub fn go_env_goproxy(go: &Path) -> Result<String, String> {
    let mut child = Command::new(go)
        .args(["env", "GOPROXY"])
        .env("GOTOOLCHAIN", "local")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "no go command is on PATH".to_string(),
            _ => format!("`go env GOPROXY` could not run: {e}"),
        })?;
    let deadline = std::time::Instant::now() + GO_ENV_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`go env GOPROXY` did not answer in {GO_ENV_TIMEOUT:?}"
                ));
            }
            Err(e) => return Err(format!("`go env GOPROXY`: {e}")),
        }
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("`go env GOPROXY`: {e}"))?;
    if !output.status.success() {
        return Err(format!("`go env GOPROXY` failed ({})", output.status));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_go_command_is_named() {
        let e = go_env_goproxy(Path::new("/nonexistent/go")).expect_err("no such program");
        assert_eq!(e, "no go command is on PATH");
    }

    /// A stand-in go command (a shell script) whose `go env GOPROXY` prints a proxy.
    #[cfg(unix)]
    #[test]
    fn reads_the_go_commands_setting() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let go = dir.path().join("go");
        std::fs::write(
            &go,
            "#!/bin/sh\n[ \"$1 $2\" = \"env GOPROXY\" ] && [ \"$GOTOOLCHAIN\" = local ] && echo 'http://127.0.0.1:9/p,direct' && exit 0\nexit 2\n",
        )
        .expect("write");
        std::fs::set_permissions(&go, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(
            go_env_goproxy(&go).as_deref(),
            Ok("http://127.0.0.1:9/p,direct")
        );
    }
}
