//! Git sources over SSH, as companies reach their git servers: a real OpenSSH server (Debian's
//! `openssh-server`) on 127.0.0.1 with a throw-away host key and one authorized deploy key,
//! serving repositories through `git-upload-pack`; an HTTPS git server asking for credentials
//! (`git http-backend` behind rustls, with a CA made here) on another route of the same
//! modgate. The go command downloads through modgate and must get the versions and hashes it
//! gets in direct mode from the same repositories (over `git daemon`).
//!
//! Without `sshd` the test says how to install it and skips; under `CI=1` it fails instead
//! (`.ci/run` installs it).

#![expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::gitsource::{ROOT, bare_clone, commit, git, https_git_server, make_main_repo};
use crate::harness::{GoEnv, Modgate, Setup, free_port, get, one_line_problem, wait_for_port};
use crate::zipbuild::{direct_env, git_daemon};

const SSHD: &str = "/usr/sbin/sshd";

/// An OpenSSH server on 127.0.0.1 for the current user, stopped on drop.
struct Sshd {
    child: Child,
    port: u16,
    user: String,
    /// The authorized deploy key (private, mode 0600).
    key: PathBuf,
    /// A key the server does not know.
    other_key: PathBuf,
    /// The server's host key, as a known_hosts file.
    known_hosts: PathBuf,
    /// A known_hosts file with some other host key for the same address.
    stranger_hosts: PathBuf,
    /// A known_hosts file that knows only some other address.
    elsewhere_hosts: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "modgate-test", "-f"])
        .arg(path)
        .output()
        .expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

impl Sshd {
    /// `None` (after saying why) when sshd is not installed and this is not CI.
    fn start(dir: &Path) -> Option<Self> {
        if !Path::new(SSHD).exists() {
            let how = "sshd is not installed: apt-get install -y openssh-server";
            assert!(std::env::var_os("CI").is_none(), "{how}");
            eprintln!("skipped: {how}");
            return None;
        }
        let dir = dir.join("sshd");
        std::fs::create_dir_all(&dir).unwrap();
        let host_pub = keygen(&dir.join("host_key"));
        let client_pub = keygen(&dir.join("deploy_key"));
        keygen(&dir.join("other_key"));
        let stranger_pub = keygen(&dir.join("stranger_host_key"));
        std::fs::write(dir.join("authorized_keys"), client_pub).unwrap();
        let port = free_port();
        let entry = |key: &str| {
            let mut parts = key.split_whitespace();
            format!(
                "[127.0.0.1]:{port} {} {}\n",
                parts.next().unwrap(),
                parts.next().unwrap()
            )
        };
        std::fs::write(dir.join("known_hosts"), entry(&host_pub)).unwrap();
        std::fs::write(dir.join("stranger_hosts"), entry(&stranger_pub)).unwrap();
        std::fs::write(
            dir.join("elsewhere_hosts"),
            entry(&host_pub).replace("127.0.0.1", "127.0.0.2"),
        )
        .unwrap();
        // sshd (as root) wants its privilege-separation directory, which Debian's service
        // unit creates at boot.
        let _ = std::fs::create_dir_all("/run/sshd");
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\n\
                 AuthorizedKeysFile {}\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
                 AcceptEnv GIT_PROTOCOL\nLogLevel ERROR\n",
                dir.join("host_key").display(),
                dir.join("authorized_keys").display(),
            ),
        )
        .unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
            .spawn()
            .expect("start sshd");
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_owned();
        let sshd = Self {
            child,
            port,
            user,
            key: dir.join("deploy_key"),
            other_key: dir.join("other_key"),
            known_hosts: dir.join("known_hosts"),
            stranger_hosts: dir.join("stranger_hosts"),
            elsewhere_hosts: dir.join("elsewhere_hosts"),
        };
        wait_for_port(([127, 0, 0, 1], port).into(), "sshd");
        Some(sshd)
    }

    /// `ssh://user@127.0.0.1:port/<path>` for a repository at the absolute `path`.
    fn url(&self, path: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            path.display()
        )
    }
}

/// A rustls server config for the certificate `test_pki` makes.
fn tls_config(cert: &Path, key: &Path) -> std::sync::Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    std::sync::Arc::new(config)
}

#[test]
fn the_go_command_downloads_over_ssh_and_https_sources_on_two_routes() {
    let base = tempfile::tempdir().unwrap();
    let Some(sshd) = Sshd::start(base.path()) else {
        return;
    };
    // The repositories: the main one (tags, a branch, a subdirectory module) over ssh, a
    // small one over https with credentials.
    let srv = base.path().join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    let h = make_main_repo(&base.path().join("work"));
    bare_clone(
        base.path(),
        &base.path().join("work"),
        &srv.join("repo.git"),
    );
    let tls_module = "127.0.0.1/tls.git";
    let tls_work = base.path().join("tls-work");
    std::fs::create_dir_all(&tls_work).unwrap();
    git(&tls_work, &["init", "-q", "-b", "main"]);
    commit(
        &tls_work,
        "2024-03-03T03:03:03Z",
        &[
            (
                "go.mod",
                format!("module {tls_module}\n\ngo 1.21\n").as_bytes(),
            ),
            ("t.go", b"package t\n"),
        ],
        "1",
    );
    git(&tls_work, &["tag", "v1.0.0"]);
    commit(
        &tls_work,
        "2024-04-04T04:04:04Z",
        &[("t.go", b"package t\n// 2\n")],
        "2",
    );
    bare_clone(base.path(), &tls_work, &srv.join("tls.git"));

    // A monorepo one directory down, for a URL template: the template's first candidate root
    // (`127.0.0.1/team`) is no repository, which the remote says over ssh, and is skipped.
    let mono = "127.0.0.1/team/mono.git";
    let mono_work = base.path().join("mono-work");
    std::fs::create_dir_all(&mono_work).unwrap();
    git(&mono_work, &["init", "-q", "-b", "main"]);
    commit(
        &mono_work,
        "2024-05-05T05:05:05Z",
        &[
            ("go.mod", format!("module {mono}\n").as_bytes()),
            ("m.go", b"package m\n"),
            ("sub/go.mod", format!("module {mono}/sub\n").as_bytes()),
            ("sub/s.go", b"package sub\n"),
        ],
        "1",
    );
    git(&mono_work, &["tag", "v1.0.0"]);
    git(&mono_work, &["tag", "sub/v1.2.0"]);
    std::fs::create_dir_all(srv.join("team")).unwrap();
    bare_clone(base.path(), &mono_work, &srv.join("team/mono.git"));

    let (_daemon, daemon_port) = git_daemon(&srv);
    let direct = direct_env(daemon_port);
    let (ca, cert, key) = crate::tls::test_pki(base.path());
    let https_port = https_git_server(&srv, tls_config(&cert, &key));

    // The deploy key by file (`DEPLOY_KEY_FILE`, mode 0600), the wrong key by value.
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let ssh_source = |module: &str, secret: &str, known_hosts: &Path| {
        format!(
            "{{ git = {}, module = {}, secret = {}, known_hosts = {} }}",
            q(&sshd.url(&srv.join("repo.git"))),
            q(module),
            q(secret),
            q(known_hosts.to_str().unwrap())
        )
    };
    let route = |module: &str, source: String| {
        format!(
            "\n[[route]]\nmatch = [{}]\nstorage = \"local\"\nsources = [{source}]\n",
            q(module)
        )
    };
    let wrong_key = "127.0.0.1/wrongkey.git";
    let stranger = "127.0.0.1/stranger.git";
    let unknown = "127.0.0.1/unknown.git";
    let mut setup = Setup::new(&base.path().join("storage"), None);
    setup.extra_toml = format!(
        "\n[git]\ncache_dir = {}\n{}{}{}{}{}{}",
        q(base.path().join("clones").to_str().unwrap()),
        route(ROOT, ssh_source(ROOT, "DEPLOY_KEY", &sshd.known_hosts)),
        route(
            tls_module,
            format!(
                "{{ git = {}, module = {}, username = \"user\", secret = \"GIT_TOKEN\" }}",
                q(&format!("https://127.0.0.1:{https_port}/tls.git")),
                q(tls_module)
            )
        ),
        route(
            "127.0.0.1/team",
            format!(
                "{{ git = {}, secret = \"DEPLOY_KEY\", known_hosts = {} }}",
                q(&format!(
                    "ssh://{}@127.0.0.1:{}{}/{{path}}",
                    sshd.user,
                    sshd.port,
                    srv.display()
                )),
                q(sshd.known_hosts.to_str().unwrap())
            )
        ),
        route(
            wrong_key,
            ssh_source(wrong_key, "OTHER_KEY", &sshd.known_hosts)
        ),
        route(
            stranger,
            ssh_source(stranger, "DEPLOY_KEY", &sshd.stranger_hosts)
        ),
        route(
            unknown,
            ssh_source(unknown, "DEPLOY_KEY", &sshd.elsewhere_hosts)
        ),
    );
    setup.env = vec![
        (
            "DEPLOY_KEY_FILE".into(),
            sshd.key.to_str().unwrap().to_owned(),
        ),
        (
            "OTHER_KEY".into(),
            std::fs::read_to_string(&sshd.other_key).unwrap(),
        ),
        ("GIT_TOKEN".into(), "secret".into()),
        // The https git server's certificate is from the test's CA.
        ("SSL_CERT_FILE".into(), ca.to_str().unwrap().to_owned()),
    ];
    let mg = Modgate::start(setup);
    let proxied = GoEnv::new(&mg.url());

    let sum = |env: &GoEnv, query: &str| {
        let out = env.run(&["mod", "download", "-json", query]);
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        ["Version", "Sum", "GoModSum"].map(|k| doc[k].as_str().unwrap_or_default().to_owned())
    };
    let sub = format!("{ROOT}/sub");
    let queries = [
        // A tagged version, a branch's pseudo-version, a commit on main, a module in a
        // subdirectory of the same repository, and the https route's tag and branch.
        format!("{ROOT}@v1.1.0"),
        format!("{ROOT}@feature"),
        format!("{ROOT}@{}", &h["c7"][..12]),
        format!("{sub}@v0.1.0"),
        format!("{sub}@latest"),
        format!("{tls_module}@v1.0.0"),
        format!("{tls_module}@main"),
        format!("{mono}@v1.0.0"),
        format!("{mono}/sub@v1.2.0"),
    ];
    for query in &queries {
        let theirs = sum(&direct, query);
        assert!(
            !theirs[1].is_empty(),
            "the reference for {query}: {theirs:?}"
        );
        assert_eq!(sum(&proxied, query), theirs, "{query}");
    }
    let versions = |env: &GoEnv, m: &str| env.run(&["list", "-m", "-versions", m]);
    let mono_sub = format!("{mono}/sub");
    for m in [ROOT, sub.as_str(), tls_module, mono, &mono_sub] {
        assert_eq!(versions(&proxied, m), versions(&direct, m), "{m} versions");
    }

    // A key the server refuses, a server whose host key is not the configured one, and a
    // server known_hosts does not know at all: a one-line 502 naming the source, soon, never a
    // prompt, a hang or trust on first use; the other routes keep serving.
    let ssh_url = sshd.url(&srv.join("repo.git"));
    for (module, why) in [
        (wrong_key, "Permission denied"),
        (stranger, "Host key verification failed"),
        (unknown, "No ED25519 host key is known for [127.0.0.1]"),
    ] {
        let started = Instant::now();
        let r = get(&mg, &format!("/{module}/@v/list"));
        let took = started.elapsed();
        if let Some(problem) = one_line_problem(&r.body) {
            panic!("{module}: {problem}");
        }
        let line = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 502, "{module}: {line}");
        assert!(
            line.contains(&ssh_url),
            "{module}: names the source: {line}"
        );
        assert!(line.contains(why), "{module}: says why: {line}");
        assert!(took < Duration::from_secs(20), "{module}: took {took:?}");
    }
    assert_eq!(
        sum(&proxied, &format!("{ROOT}@v1.0.0")),
        sum(&direct, &format!("{ROOT}@v1.0.0"))
    );
    // One clone per repository that answered (ssh, https, the monorepo); nothing is left of
    // the refused fetches or of the template's probe of a directory that is no repository.
    let clones = std::fs::read_dir(base.path().join("clones"))
        .unwrap()
        .count();
    assert_eq!(clones, 3);
    let logs = mg.logs();
    assert!(
        !logs.contains("BEGIN OPENSSH PRIVATE KEY"),
        "a key reached the logs"
    );
}
