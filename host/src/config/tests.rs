use super::*;
use std::io::Write;

fn load_str(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("modgate.toml");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(toml.as_bytes()))
        .expect("write config");
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::load_with_env(Some(&path), move |k| {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
}

const MINIMAL: &str = r#"
[storage.local]
plugin = "storage-fs"
config = { root = "data" }

[upstream.public]
goproxy = "${GOPROXY}"

[[route]]
match = ["corp.example/*", "git.corp.example"]
storage = "local"

[[route]]
match = ["*"]
storage = "local"
sources = ["public"]
"#;

#[test]
fn embedded_defaults_resolve() {
    let c = Config::load_with_env(None, |_| None).expect("defaults load");
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    let route = c.routes.route("rsc.io/quote").expect("catch-all route");
    assert!(
        route.sources.is_offline(),
        "no GOPROXY in the environment means offline"
    );
    let Some(StorageConfig::Fs { root }) = c.storage.get("local") else {
        panic!("fs storage: {:?}", c.storage);
    };
    // Relative to the working directory (which other tests may change meanwhile), made
    // absolute.
    assert!(
        root.is_absolute() && root.ends_with("modgate-data"),
        "{root:?}"
    );
    // The backend is the embedded storage-fs plugin, with its root granted.
    let plugin = c
        .plugins
        .iter()
        .find(|p| p.name == "storage.local")
        .expect("storage plugin");
    assert_eq!(plugin.grants.dirs, std::slice::from_ref(root));
}

#[test]
fn upstream_comes_from_the_environment() {
    let c = Config::load_with_env(None, |k| {
        (k == "GOPROXY").then(|| "http://127.0.0.1:9/a|http://127.0.0.1:9/b,off".to_owned())
    })
    .expect("defaults load");
    let route = c.routes.route("rsc.io/quote").expect("route");
    let bases: Vec<_> = route
        .sources
        .entries
        .iter()
        .map(|e| e.base.as_str())
        .collect();
    assert_eq!(bases, ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]);
    assert!(route.sources.entries[0].fallthrough_on_error);
}

#[test]
fn routes_storage_paths_and_sources_resolve() {
    let c = load_str(MINIMAL, &[("GOPROXY", "http://127.0.0.1:1")]).expect("loads");
    let corp = c.routes.route("corp.example/team/x").expect("corp route");
    assert_eq!(corp.index, 0);
    assert!(corp.sources.is_offline());
    assert_eq!(
        c.routes.route("git.corp.example/x").map(|r| r.index),
        Some(0)
    );
    let public = c.routes.route("rsc.io/quote").expect("public route");
    assert_eq!(public.sources.entries.len(), 1);
    // Relative storage roots are relative to the config file's directory.
    let StorageConfig::Fs { root } = &c.storage["local"] else {
        panic!("fs storage");
    };
    assert!(root.is_absolute() && root.ends_with("data"), "{root:?}");
}

#[test]
fn unknown_keys_name_the_key_and_the_file() {
    let err = load_str(
        &format!("{MINIMAL}\n[server]\nlisten = \"127.0.0.1:1\"\nlistne = 1\n"),
        &[],
    )
    .expect_err("unknown key");
    let msg = err.to_string();
    assert!(msg.contains("listne"), "{msg}");
    assert!(msg.contains("modgate.toml"), "{msg}");

    let err = load_str(
        &MINIMAL.replace(
            "sources = [\"public\"]",
            "sources = [\"public\"]\nauht = []",
        ),
        &[],
    )
    .expect_err("unknown route key");
    let msg = err.to_string();
    assert!(
        msg.contains("auht") && msg.contains("modgate.toml"),
        "{msg}"
    );
}

#[test]
fn bad_values_name_the_key_and_the_file() {
    let cases = [
        (
            MINIMAL.replace(
                "storage = \"local\"\nsources",
                "storage = \"nope\"\nsources",
            ),
            "route[1].storage",
        ),
        (
            MINIMAL.replace("sources = [\"public\"]", "sources = [\"missing\"]"),
            "route[1].sources",
        ),
        (
            MINIMAL.replace("\"storage-fs\"", "\"storage-ftp\""),
            "storage.local.plugin",
        ),
        (
            MINIMAL.replace("root = \"data\"", "rot = \"data\""),
            "`storage.local.config`: unknown field `rot`",
        ),
        (
            format!("[server]\nlisten = \"localhost\"\n{MINIMAL}"),
            "server.listen",
        ),
        (
            format!("[server]\nworkers = 5000\n{MINIMAL}"),
            "server.workers",
        ),
        (
            MINIMAL.replace("\"${GOPROXY}\"", "\"ftp://x\""),
            "upstream.public.goproxy",
        ),
        (
            MINIMAL.replace("\"corp.example/*\", ", "\"[a-\", "),
            "route[0].match",
        ),
    ];
    for (toml, key) in cases {
        let msg = load_str(&toml, &[]).expect_err(key).to_string();
        assert!(
            msg.contains(key) && msg.contains("modgate.toml"),
            "{key}: {msg}"
        );
    }
    let msg = load_str("[server]\nheader_timeout = \"soon\"\n", &[])
        .expect_err("bad duration")
        .to_string();
    assert!(
        msg.contains("header_timeout") && msg.contains("modgate.toml"),
        "{msg}"
    );
}

#[test]
#[expect(
    clippy::result_large_err,
    reason = "figment::Jail's closure signature is fixed by figment"
)]
fn environment_overrides_file_values() {
    // figment reads MODGATE_* from the process environment; Jail sets it only for this closure.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("modgate.toml");
    std::fs::write(&path, MINIMAL).expect("write");
    figment::Jail::expect_with(|jail| {
        jail.set_env("MODGATE_SERVER__MAX_CONNECTIONS", "7");
        let c = Config::load_with_env(Some(&path), |_| None).expect("loads");
        assert_eq!(c.server.max_connections, 7);
        Ok(())
    });
}

#[test]
fn env_expansion() {
    let env = |k: &str| (k == "A").then(|| "x".to_owned());
    assert_eq!(expand_env("${A},${B}|z", &env).expect("ok"), "x,|z");
    assert!(expand_env("${A", &env).is_err());
    assert!(expand_env("${A-B}", &env).is_err());
}

#[test]
fn parse_errors_are_one_line_naming_the_file() {
    let msg = load_str("x = [", &[]).expect_err("bad toml").to_string();
    assert_eq!(msg.lines().count(), 1, "{msg}");
    assert!(
        msg.contains("modgate.toml") && msg.contains("line 1"),
        "{msg}"
    );
    assert!(!msg.contains("default."), "{msg}");
}

fn git_route(sources: &str) -> String {
    format!(
        r#"
[storage.local]
plugin = "storage-fs"
config = {{ root = "data" }}

[upstream.public]
goproxy = "http://127.0.0.1:9"

[git]
cache_dir = "clones"
fetch_ttl = "5m"

[[route]]
match = ["corp.example"]
storage = "local"
sources = {sources}
"#
    )
}

#[test]
fn git_sources_resolve_in_order() {
    let c = load_str(
        &git_route(
            r#"[{ git = "https://git.corp.example/{path}.git", secret = "GIT_TOKEN" },
                { git = "/srv/mono.git", module = "corp.example/mono" }, "public"]"#,
        ),
        &[("GIT_TOKEN", "t0ken")],
    )
    .expect("loads");
    let route = c.routes.route("corp.example/x").expect("route");
    let git = route.git.as_ref().expect("git sources");
    assert!(git.first, "git entries listed before the upstream");
    assert_eq!(git.templates.len(), 1);
    let creds = git.templates[0].credentials.as_ref().expect("credentials");
    assert_eq!(
        creds,
        &crate::gitsource::Credentials::Basic {
            username: "modgate".into(),
            password: "t0ken".into()
        }
    );
    assert_eq!(git.mappings[0].module_prefix, "corp.example/mono");
    assert_eq!(route.sources.entries.len(), 1);
    assert!(c.git.cache_dir.ends_with("clones") && c.git.cache_dir.is_absolute());
    assert_eq!(c.git.fetch_ttl, Duration::from_secs(300));
    assert!(!route.is_offline());

    let c = load_str(&git_route(r#"["public", { git = "/srv/{module}" }]"#), &[]).expect("loads");
    let route = c.routes.route("corp.example/x").expect("route");
    assert!(!route.git.as_ref().expect("git").first);
}

#[test]
fn git_source_errors_name_the_key() {
    let err = |sources: &str, env: &[(&str, &str)]| {
        load_str(&git_route(sources), env)
            .expect_err("must be refused")
            .to_string()
    };
    let e = err(r#"[{ git = "/srv/mono.git" }]"#, &[]);
    assert!(e.contains("`route[0].sources[0].module`: missing"), "{e}");
    let e = err(
        r#"[{ git = "https://git.corp.example/{path}.git", secret = "GIT_TOKEN" }]"#,
        &[],
    );
    assert!(
        e.contains(
            "`route[0].sources[0].secret`: neither GIT_TOKEN nor GIT_TOKEN_FILE is set in the environment"
        ),
        "{e}"
    );
    let e = err(
        r#"[{ git = "http://git.corp.example/{path}.git", secret = "GIT_TOKEN" }]"#,
        &[("GIT_TOKEN", "x")],
    );
    assert!(e.contains("only ever sent to https://"), "{e}");
    let e = err(
        r#"[{ git = "/a/{path}" }, "public", { git = "/b/{path}" }]"#,
        &[],
    );
    assert!(
        e.contains("`route[0].sources[2]`: git sources must be listed together"),
        "{e}"
    );
    let e = err(r#"[{ git = "/a/{path}", branch = "main" }]"#, &[]);
    assert!(
        e.contains("`route[0].sources[0].branch`: unknown key"),
        "{e}"
    );
    let e = err(
        r#"[{ git = "/srv/x.git", module = "other.example/x" }]"#,
        &[],
    );
    assert!(e.contains("not matched by the route's `match`"), "{e}");
    let e = err(
        r#"[{ git = "svn://git.corp.example/x", module = "corp.example/x" }]"#,
        &[],
    );
    assert!(e.contains("scheme svn is not supported"), "{e}");
    let e = err(r#"["nowhere"]"#, &[]);
    assert!(
        e.contains("`route[0].sources`: no [upstream.nowhere] table"),
        "{e}"
    );
    assert!(e.contains("modgate.toml"), "names the file: {e}");
}

#[test]
fn uploads_and_publish_settings() {
    let text = git_route("[]") + "uploads = \"open\"\n\n[publish]\nmax_upload_bytes = 1024\n";
    let c = load_str(&text, &[]).expect("loads");
    assert_eq!(c.publish.max_upload_bytes, 1024);
    let route = c.routes.route("corp.example/x").expect("route");
    assert_eq!(route.uploads, Uploads::Open);
    let e = load_str(&(git_route("[]") + "uploads = \"sometimes\"\n"), &[])
        .expect_err("bad mode")
        .to_string();
    assert!(e.contains("uploads"), "{e}");
}

#[test]
fn workers_default_to_one_per_cpu() {
    let c = load_str(MINIMAL, &[]).expect("loads");
    assert_eq!(c.server.workers, 0);
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    assert_eq!(c.server.worker_threads(), cpus);
    let c = load_str(&format!("[server]\nworkers = 3\n{MINIMAL}"), &[]).expect("loads");
    assert_eq!(c.server.worker_threads(), 3);
}

#[test]
fn compiled_plugins_are_cached_where_the_user_keeps_caches_unless_told_otherwise() {
    let cache = |toml: &str, env: &[(&str, &str)]| {
        load_str(&format!("{toml}\n{MINIMAL}"), env)
            .expect("loads")
            .server
            .plugin_cache
    };
    let home = [("HOME", "/home/gw")];
    assert_eq!(
        cache("", &home),
        Some(PathBuf::from("/home/gw/.cache/modgate/plugins"))
    );
    let xdg = [("HOME", "/home/gw"), ("XDG_CACHE_HOME", "/var/cache/gw")];
    assert_eq!(
        cache("", &xdg),
        Some(PathBuf::from("/var/cache/gw/modgate/plugins"))
    );
    // systemd's CacheDirectory= (the first, when it gives several) wins.
    let systemd = [
        ("HOME", "/home/gw"),
        ("CACHE_DIRECTORY", "/var/cache/modgate:/x"),
    ];
    assert_eq!(
        cache("", &systemd),
        Some(PathBuf::from("/var/cache/modgate/plugins"))
    );
    // Nowhere to put it (or only a relative HOME): compiled at every start.
    assert_eq!(cache("", &[("HOME", "relative")]), None);
    assert_eq!(cache("[server]\nplugin_cache = \"off\"", &home), None);
    // A path is relative to the config file.
    let own = load_str(
        &format!("[server]\nplugin_cache = \"jit\"\n{MINIMAL}"),
        &home,
    )
    .expect("loads");
    let dir = own.server.plugin_cache.expect("a directory");
    assert!(
        dir.is_absolute() && dir.ends_with("jit"),
        "{}",
        dir.display()
    );
    let err =
        load_str(&format!("[server]\nplugin_cache = \"\"\n{MINIMAL}"), &home).expect_err("empty");
    assert!(err.to_string().contains("server.plugin_cache"), "{err}");
}

#[test]
fn mutual_tls_settings_resolve_and_a_crl_needs_a_client_ca() {
    let tls = |table: &str| {
        load_str(
            &format!("[server.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n{table}\n{MINIMAL}"),
            &[],
        )
    };
    let plain = tls("").expect("loads").server.tls.expect("tls");
    assert_eq!(
        (plain.client_ca, plain.client_auth),
        (None, ClientAuth::Required)
    );
    assert_eq!(plain.watch, Duration::from_secs(10));
    let mutual = tls("client_ca = \"ca.pem\"\nclient_auth = \"optional\"\nclient_crls = [\"a.crl\"]\nwatch = \"0s\"")
        .expect("loads")
        .server
        .tls
        .expect("tls");
    assert!(
        mutual
            .client_ca
            .as_deref()
            .is_some_and(|p| p.is_absolute() && p.ends_with("ca.pem"))
    );
    assert_eq!(mutual.client_auth, ClientAuth::Optional);
    assert!(mutual.client_crls[0].is_absolute());
    assert!(mutual.watch.is_zero());
    let err = tls("client_crls = [\"a.crl\"]").expect_err("a CRL without a CA");
    assert!(err.to_string().contains("server.tls.client_crls"), "{err}");
    let err = tls("client_auth = \"sometimes\"").expect_err("unknown mode");
    assert!(err.to_string().contains("client_auth"), "{err}");
}

#[test]
fn an_upstream_at_the_servers_own_address_is_refused() {
    // The embedded defaults listen on 127.0.0.1:8080; a developer's `go env -w
    // GOPROXY=http://localhost:8080` would make modgate ask itself.
    for own in [
        "http://127.0.0.1:8080",
        "http://localhost:8080/,direct",
        "https://proxy.corp.example|http://[::1]:8080",
    ] {
        let e = Config::load_with_env(None, |k| (k == "GOPROXY").then(|| own.to_owned()))
            .expect_err(own)
            .to_string();
        assert!(
            e.contains("upstream.public.goproxy") && e.contains("own address"),
            "{own}: {e}"
        );
    }
    // Another port, or another host, is an upstream like any other.
    for other in ["http://127.0.0.1:8081", "http://proxy.corp.example:8080"] {
        Config::load_with_env(None, |k| (k == "GOPROXY").then(|| other.to_owned()))
            .unwrap_or_else(|e| panic!("{other}: {e}"));
    }
}

#[test]
fn checksum_database_settings_resolve_and_bad_ones_name_the_key() {
    let c = load_str(MINIMAL, &[("GOPROXY", "http://127.0.0.1:1")]).expect("loads");
    assert_eq!(c.gosumdb.name, "sum.golang.org");
    assert!(c.gosumdb.key.starts_with("sum.golang.org+033de0ae+"));
    assert!(c.gosumdb.dir.ends_with("modgate-sumdb"));
    let routes: Vec<_> = c.routes.iter().collect();
    // Verification is on where there are proxies, and only there.
    assert!(!routes[0].sumdb.verifies("corp.example/x"));
    assert!(routes[1].sumdb.verifies("github.com/x/y"));

    let (_, vkey) = crate::sumdb::note::Signer::generate("sum.corp.example").expect("key");
    let text = format!(
        "[gosumdb]\ndb = \"{vkey}\"\ndir = \"state\"\n{MINIMAL}nosumdb = [\"partner.example/*,b.example\"]\n"
    );
    let c = load_str(&text, &[("GOPROXY", "http://127.0.0.1:1")]).expect("loads");
    assert_eq!(c.gosumdb.name, "sum.corp.example");
    let route = c.routes.iter().nth(1).expect("second route");
    assert!(!route.sumdb.verifies("partner.example/x"));
    assert!(!route.sumdb.verifies("b.example/y"));
    assert!(route.sumdb.verifies("c.example/y"));
    let off = load_str(
        &format!("{MINIMAL}sumdb = \"off\"\n"),
        &[("GOPROXY", "http://127.0.0.1:1")],
    )
    .expect("loads");
    assert!(!off.routes.iter().nth(1).expect("route").sumdb.verify);

    for (text, key) in [
        (
            format!("[gosumdb]\ndb = \"sum.corp.example\"\n{MINIMAL}"),
            "gosumdb.db",
        ),
        (
            format!("[gosumdb]\ndb = \"{vkey} https://x\"\n{MINIMAL}"),
            "gosumdb.db",
        ),
        (
            format!("[gosumdb]\ndb = \"a+b+c\"\n{MINIMAL}"),
            "gosumdb.db",
        ),
        (
            MINIMAL.replace(
                "storage = \"local\"\n\n[[route]]",
                "storage = \"local\"\nsumdb = \"verify\"\n\n[[route]]",
            ),
            "route[0].sumdb",
        ),
        (format!("{MINIMAL}sumdb = \"maybe\"\n"), "sumdb"),
        (
            format!("{MINIMAL}nosumdb = [\"[a-\"]\n"),
            "route[1].nosumdb",
        ),
    ] {
        let msg = load_str(&text, &[("GOPROXY", "http://127.0.0.1:1")])
            .expect_err(key)
            .to_string();
        assert!(msg.contains(key), "{key}: {msg}");
    }
}

const TEST_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----\n";

#[test]
fn ssh_sources_take_a_key_secret_and_known_hosts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let known = dir.path().join("known_hosts");
    std::fs::write(
        &known,
        "git.corp.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\n",
    )
    .expect("write");
    let known = known.display().to_string();
    for url in [
        "ssh://git@git.corp.example:2222/{path}.git",
        "git@git.corp.example:{path}.git",
    ] {
        let c = load_str(
            &git_route(&format!(
                r#"[{{ git = "{url}", secret = "DEPLOY_KEY", known_hosts = "{known}" }}]"#
            )),
            &[("DEPLOY_KEY", TEST_KEY)],
        )
        .expect("loads");
        let route = c.routes.route("corp.example/x").expect("route");
        let t = &route.git.as_ref().expect("git").templates[0];
        assert_eq!(t.url, url);
        match t.credentials.as_ref().expect("credentials") {
            crate::gitsource::Credentials::Ssh { key, known_hosts } => {
                assert_eq!(key, TEST_KEY);
                assert_eq!(known_hosts.display().to_string(), known);
            }
            other => panic!("{other:?}"),
        }
    }

    let err = |source: &str, env: &[(&str, &str)]| {
        load_str(&git_route(&format!("[{source}]")), env)
            .expect_err("must be refused")
            .to_string()
    };
    let key = &[("DEPLOY_KEY", TEST_KEY)];
    let url = "ssh://git@git.corp.example/{path}.git";
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: Vec<(String, Env<'_>, &str)> = vec![
        (
            format!(r#"{{ git = "{url}", known_hosts = "{known}" }}"#),
            key,
            "`route[0].sources[0].secret`: missing: an ssh source needs the deploy key",
        ),
        (
            format!(r#"{{ git = "{url}", secret = "DEPLOY_KEY" }}"#),
            key,
            "`route[0].sources[0].known_hosts`: missing: an ssh source needs a known_hosts file",
        ),
        (
            format!(r#"{{ git = "{url}", secret = "DEPLOY_KEY", known_hosts = "{known}" }}"#),
            &[("DEPLOY_KEY", "hunter2")],
            "`route[0].sources[0].secret`: DEPLOY_KEY does not hold a private key",
        ),
        (
            format!(
                r#"{{ git = "{url}", secret = "DEPLOY_KEY", known_hosts = "/nonexistent/kh" }}"#
            ),
            key,
            "`route[0].sources[0].known_hosts`: /nonexistent/kh: No such file",
        ),
        (
            format!(
                r#"{{ git = "{url}", secret = "DEPLOY_KEY", known_hosts = "{known}", username = "git" }}"#
            ),
            key,
            "`route[0].sources[0].username`: not used with ssh",
        ),
        (
            format!(
                r#"{{ git = "https://git.corp.example/{{path}}.git", known_hosts = "{known}" }}"#
            ),
            key,
            "`route[0].sources[0].known_hosts`: only used with ssh sources",
        ),
        (
            format!(r#"{{ git = "{url}", secret = "DEPLOY-KEY", known_hosts = "{known}" }}"#),
            key,
            "`route[0].sources[0].secret`: `DEPLOY-KEY` is not an environment variable name",
        ),
    ];
    for (source, env, want) in cases {
        let e = err(&source, env);
        assert!(e.contains(want), "{source}: {e}");
    }
}

#[test]
fn acme_settings_resolve_and_bad_ones_name_their_key() {
    let acme = |tls: &str, acme: &str| {
        load_str(
            &format!("[server.tls]\n{tls}\n[server.tls.acme]\n{acme}\n{MINIMAL}"),
            &[],
        )
    };
    let ok = acme(
        "",
        "domains = [\"Proxy.Corp.example\", \"proxy.corp.example\"]",
    )
    .expect("loads")
    .server
    .tls
    .expect("tls");
    let a = ok.acme.as_ref().expect("acme");
    assert_eq!(a.domains, ["proxy.corp.example"]);
    assert_eq!(a.directory, acme::DEFAULT_DIRECTORY);
    assert_eq!(a.challenge, Challenge::TlsAlpn01);
    assert_eq!(a.renew_before, Duration::from_secs(30 * 24 * 3600));
    assert!(a.dir.is_absolute() && a.dir.ends_with("acme"));
    // The certificate and its key are the one file ACME writes.
    assert_eq!(ok.cert, a.dir.join("certificate.pem"));
    assert_eq!(ok.key, ok.cert);

    for (tls, table, key) in [
        ("", "domains = []", "server.tls.acme.domains"),
        (
            "",
            "domains = [\"*.corp.example\"]",
            "server.tls.acme.domains",
        ),
        ("", "domains = [\"10.0.0.1\"]", "server.tls.acme.domains"),
        ("", "domains = [\"a..b\"]", "server.tls.acme.domains"),
        (
            "",
            "domains = [\"a\"]\ndirectory = \"http://ca/dir\"",
            "server.tls.acme.directory",
        ),
        (
            "",
            "domains = [\"a\"]\ncontact = [\"ops@corp\"]",
            "server.tls.acme.contact",
        ),
        (
            "",
            "domains = [\"a\"]\nchallenge = \"http-01\"",
            "server.tls.acme.http_listen",
        ),
        ("", "domains = [\"a\"]\nchallenge = \"dns-01\"", "challenge"),
        (
            "",
            "domains = [\"a\"]\ncheck_every = \"0s\"",
            "server.tls.acme.check_every",
        ),
        ("cert = \"c.pem\"", "domains = [\"a\"]", "server.tls.cert"),
        ("key = \"k.pem\"", "domains = [\"a\"]", "server.tls.key"),
    ] {
        let err = acme(tls, table).expect_err(table);
        assert!(err.to_string().contains(key), "{table}: {err}");
    }
    // Without ACME, the files are required.
    let err =
        load_str(&format!("[server.tls]\nkey = \"k.pem\"\n{MINIMAL}"), &[]).expect_err("no cert");
    let err = err.to_string();
    assert!(err.contains("`server.tls.cert`: missing"), "{err}");
}
