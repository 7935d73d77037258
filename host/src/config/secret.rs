//! Secrets the config names (`grants.secrets`, a git source's `secret`): the value of the
//! environment variable of that name, or else the contents of the file named by the variable
//! `NAME_FILE` (the convention of container and systemd credentials), which must be readable by
//! its owner only, as ssh requires of a private key.

use std::path::Path;

/// The secret `name`: `Ok(None)` when neither `NAME` nor `NAME_FILE` is set (or `NAME` is
/// empty); an error, in one line, when `NAME_FILE` names a file that cannot be read or that
/// group or others may read.
pub(crate) fn lookup(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    if let Some(value) = env(name).filter(|v| !v.is_empty()) {
        return Ok(Some(value));
    }
    let Some(file) = env(&format!("{name}_FILE")).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    read_private_file(Path::new(&file))
        .map(Some)
        .map_err(|e| format!("{name}_FILE={file}: {e}"))
}

/// Whether `name` can name an environment variable (letters, digits and `_`).
pub(crate) fn is_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn read_private_file(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "mode {mode:04o} lets others read it (chmod 600 it, as for an ssh key)"
            ));
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    // A file written by an editor or `echo` ends in a newline that is not part of a password
    // (a key keeps its own line structure either way).
    Ok(match text.strip_suffix('\n') {
        Some(t) if !t.contains('\n') => t.strip_suffix('\r').unwrap_or(t).to_owned(),
        _ => text,
    })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn the_variable_then_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        let set_mode = |mode| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        set_mode(0o600);
        let path = file.display().to_string();

        let env = env_of(&[("T", "direct".into()), ("T_FILE", path.clone())]);
        assert_eq!(lookup("T", &env), Ok(Some("direct".into())));
        let env = env_of(&[("T", String::new()), ("T_FILE", path.clone())]);
        assert_eq!(lookup("T", &env), Ok(Some("s3cret".into())));
        assert_eq!(lookup("U", &env), Ok(None));

        set_mode(0o644);
        let e = lookup("T", &env).unwrap_err();
        assert!(e.contains("T_FILE=") && e.contains("mode 0644"), "{e}");

        // A multi-line value (a key) keeps every line.
        let key = "-----BEGIN-----\nabc\n-----END-----\n";
        std::fs::write(&file, key).unwrap();
        set_mode(0o400);
        assert_eq!(lookup("T", &env), Ok(Some(key.into())));

        let env = env_of(&[("T_FILE", dir.path().join("absent").display().to_string())]);
        assert!(lookup("T", &env).unwrap_err().contains("absent"));
    }

    #[test]
    fn names() {
        assert!(is_name("DEPLOY_KEY") && is_name("_x1"));
        assert!(!is_name("") && !is_name("1A") && !is_name("A-B") && !is_name("A B"));
    }
}
