//! The `modgate` command: a thin CLI over the library (config → server).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

use modgate::config::{Config, StorageConfig};
use modgate::server::{self, Server};
use modgate::telemetry;

/// A Go module proxy (GOPROXY server) with sandboxed WebAssembly policy plugins.
#[derive(Debug, Parser)]
#[command(name = "modgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve GOPROXY requests until SIGTERM or SIGINT, then drain.
    Serve {
        /// Configuration file (TOML). Without one, the embedded defaults are used.
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Publish a module version from a directory: the zip is built exactly as the go command
    /// builds it, then committed into the storage that serves it (`--config`) or uploaded to a
    /// modgate server (`--to`). A version is never overwritten: other content under a published
    /// version is refused, the same content again is a no-op.
    Publish {
        /// The module's root directory (where its go.mod is).
        dir: PathBuf,
        /// The module path, e.g. `corp.example/team/lib`.
        #[arg(long)]
        module: std::ffi::OsString,
        /// The version, e.g. `v1.2.3` (its major version must match the module path).
        #[arg(long)]
        version: String,
        /// Configuration file naming the storage (the route matching the module decides).
        #[arg(long, short, value_name = "FILE", conflicts_with = "to")]
        config: Option<PathBuf>,
        /// Upload to the modgate server at this URL (`PUT <URL>/<module>/@v/<version>.zip`)
        /// instead of writing to local storage.
        #[arg(long, value_name = "URL")]
        to: Option<String>,
        /// Bearer token for `--to`; without one, a `.netrc` entry for the server's host
        /// (`NETRC` or `~/.netrc`) is sent as Basic credentials.
        #[arg(long, env = "MODGATE_TOKEN", hide_env_values = true, requires = "to")]
        token: Option<String>,
    },
    /// Build and try out plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Validate a configuration file (and its TLS files) without serving.
    CheckConfig {
        /// Configuration file (TOML).
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Build the plugin in DIR into a component modgate loads: a Go module (with Go 1.25 or
    /// later; `GOOS=wasip1` reactor, then made a component in-process) or a Rust crate
    /// (`cargo build --release --target wasm32-wasip2`). Prints the path, size and world.
    Build {
        /// The plugin's directory (its go.mod or Cargo.toml).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where to write the component (default: DIR/<module name>.wasm for Go, cargo's
        /// output for Rust).
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write the Go SDK (module modgate.dev/sdk, at the version matching this modgate) into DIR,
    /// for `modgate publish` to serve it to plugin authors like any private module.
    Sdk {
        /// A new (or empty) directory.
        dir: PathBuf,
    },
    /// Run a plugin component under modgate's runtime against requests and print its answers
    /// ("allow NAME [SCOPES]", "deny STATUS MESSAGE", "abstain", "route NAME", "none"). With
    /// expected answers (--expect, or `expect` in a cases file), exits 1 when one differs.
    Test {
        /// The component (.wasm).
        wasm: PathBuf,
        /// A request, `METHOD /path` (e.g. 'GET /corp.example/x/@v/list').
        #[arg(long, short)]
        request: Option<String>,
        /// A header of --request, `Name: value` (repeatable).
        #[arg(long = "header", short = 'H', value_name = "HEADER")]
        headers: Vec<String>,
        /// The answer --request must get, or its beginning ("allow", "deny 401", …).
        #[arg(long, requires = "request")]
        expect: Option<String>,
        /// A TOML file of cases: [config], [secrets] and [[case]] request/headers/expect.
        #[arg(long, value_name = "FILE")]
        cases: Option<PathBuf>,
    },
}

fn plugin_test(
    wasm: &Path,
    request: Option<String>,
    headers: Vec<String>,
    expect: Option<String>,
    cases: Option<&Path>,
) -> ExitCode {
    use modgate::plugin::trial;
    // What the plugin logs (and the host says about it) goes to stderr, readably.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .try_init();
    let mut all = match cases.map(trial::Cases::read).transpose() {
        Ok(cases) => cases.unwrap_or_default(),
        Err(e) => {
            eprintln!("modgate plugin test: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if let Some(request) = request {
        all.case.push(trial::Case {
            request,
            headers,
            peer: None,
            client: None,
            expect,
        });
    }
    if all.case.is_empty() {
        eprintln!("modgate plugin test: nothing to try (give --request or --cases)");
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    match trial::run(wasm, &all) {
        Ok(report) => {
            for line in &report.lines {
                println!("{line}");
            }
            if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("modgate plugin test: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exit status for an invalid configuration, so scripts can tell it from a runtime failure.
const EXIT_BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Plugin(PluginCommand::Test {
            wasm,
            request,
            headers,
            expect,
            cases,
        }) => plugin_test(&wasm, request, headers, expect, cases.as_deref()),
        Command::Plugin(PluginCommand::Build { dir, output }) => {
            match modgate::plugin::build::build(&dir, output.as_deref()) {
                Ok(built) => {
                    println!(
                        "{}: {} plugin, {} bytes, world {}",
                        built.path.display(),
                        built.language,
                        built.size,
                        built.worlds.join(", ")
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("modgate plugin build: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Plugin(PluginCommand::Sdk { dir }) => {
            use modgate::plugin::build::{GO_SDK_MODULE, GO_SDK_VERSION, write_go_sdk};
            match write_go_sdk(&dir) {
                Ok(files) => {
                    let dir = dir.display();
                    println!("wrote {GO_SDK_MODULE} {GO_SDK_VERSION} to {dir} ({files} files)");
                    println!(
                        "serve it with: modgate publish {dir} --module {GO_SDK_MODULE} --version {GO_SDK_VERSION} --config FILE"
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("modgate plugin sdk: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Publish {
            dir,
            module,
            version,
            config,
            to,
            token,
        } => match module_arg(&module).and_then(|module| match to {
            Some(to) => publish_to(&dir, module, &version, &to, token),
            None => publish(&dir, module, &version, config.as_deref()),
        }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("modgate: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Serve { config } => match serve(config.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("modgate: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The `--module` argument as text; a path that is not UTF-8 is refused in x/mod's words
/// (`malformed module path "\xff": invalid UTF-8`), quoted as Go's `%q` quotes it.
fn module_arg(arg: &std::ffi::OsStr) -> anyhow::Result<&str> {
    use std::os::unix::ffi::OsStrExt;
    arg.to_str().ok_or_else(|| {
        let quoted = modgate::goproxy::path::quote_bytes(arg.as_bytes());
        anyhow::anyhow!("malformed module path {quoted}: invalid UTF-8")
    })
}

fn publish(dir: &Path, module: &str, version: &str, config: Option<&Path>) -> anyhow::Result<()> {
    let config = Config::load(config)?;
    let module = modgate::goproxy::path::ModulePath::parse(module)
        .map_err(|e| anyhow::anyhow!("invalid module path {module:?}: {e}"))?;
    let route = config
        .routes
        .route(module.as_str())
        .ok_or_else(|| anyhow::anyhow!("{module}: no [[route]] in {} matches", config.origin))?;
    let stores = modgate::storage::open_stores_alone(&config)?;
    let store = stores.get(&route.storage).ok_or_else(|| {
        anyhow::anyhow!("route[{}]: unknown storage {}", route.index, route.storage)
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let published =
        runtime.block_on(modgate::publish::publish_dir(store, dir, &module, version))?;
    match published {
        modgate::publish::Published::Created(h) => {
            println!(
                "published {module}@{version} to storage {} ({} files)",
                store.name(),
                h.files
            );
            println!("{module} {version} {}", h.zip);
            println!("{module} {version}/go.mod {}", h.go_mod);
        }
        modgate::publish::Published::Unchanged(h) => {
            println!("{module}@{version} is already published with this content; nothing changed");
            println!("{module} {version} {}", h.zip);
            println!("{module} {version}/go.mod {}", h.go_mod);
        }
    }
    Ok(())
}

/// `publish --to`: build the zip into a temporary file, then upload it, with progress bars on a
/// terminal.
fn publish_to(
    dir: &Path,
    module: &str,
    version: &str,
    to: &str,
    token: Option<String>,
) -> anyhow::Result<()> {
    use modgate::publish::remote::{self, Credential};
    use std::io::IsTerminal as _;

    let module = modgate::goproxy::path::ModulePath::parse(module)
        .map_err(|e| anyhow::anyhow!("invalid module path {module:?}: {e}"))?;
    let credential = match token.filter(|t| !t.is_empty()) {
        Some(t) => Some(Credential::Bearer(t)),
        None => netrc_text().and_then(|text| remote::netrc_credential(&text, to)),
    };
    let show = std::io::stderr().is_terminal();
    let bar = |len: Option<u64>, what: &str| {
        if !show {
            return indicatif::ProgressBar::hidden();
        }
        let (bar, template) = match len {
            Some(len) => (
                indicatif::ProgressBar::new(len),
                "{msg:10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            ),
            None => (
                indicatif::ProgressBar::new_spinner(),
                "{msg:10} {spinner} {bytes} {bytes_per_sec}",
            ),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        bar
    };

    let mut zip = tempfile::Builder::new()
        .prefix("modgate-publish-")
        .suffix(".zip")
        .tempfile()
        .context("cannot create a temporary file for the zip")?;
    let building = bar(None, "building");
    let built = {
        let b = building.clone();
        modgate::publish::build_to_file(dir, &module, version, zip.as_file_mut(), move |n| {
            b.set_position(n)
        })?
    };
    building.finish_and_clear();
    let len = zip.as_file().metadata().map(|m| m.len()).unwrap_or(0);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let uploading = bar(Some(len), "uploading");
    let u = uploading.clone();
    let uploaded = runtime.block_on(remote::upload(
        to,
        &module,
        version,
        zip.path(),
        credential.as_ref(),
        move |n| u.set_position(n),
    ));
    uploading.finish_and_clear();
    let uploaded = uploaded?;
    if uploaded.created {
        println!(
            "published {module}@{version} to {to} ({} files, {len} bytes)",
            built.files
        );
    } else {
        println!(
            "{module}@{version} is already published at {to} with this content; nothing changed"
        );
    }
    print!("{}", uploaded.sums);
    // The server hashes what it received; it must be what was built here.
    if !uploaded.sums.contains(&built.zip_h1) {
        anyhow::bail!(
            "the server's hash for {module}@{version} differs from the local build ({})",
            built.zip_h1
        );
    }
    Ok(())
}

/// The `.netrc` file's text: `NETRC`, else `~/.netrc`.
fn netrc_text() -> Option<String> {
    let path = match std::env::var_os("NETRC") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".netrc"),
    };
    std::fs::read_to_string(path).ok()
}

fn check_config(file: &Path) -> ExitCode {
    let config = match Config::load(Some(file)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("modgate: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if let Some(tls) = &config.server.tls
        && let Err(e) = server::load_tls(tls)
    {
        eprintln!("modgate: {}: {e}", file.display());
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    println!("{}: ok", file.display());
    println!(
        "  listen {} ({})",
        config.server.listen,
        if config.server.tls.is_some() {
            "TLS"
        } else {
            "plain HTTP"
        }
    );
    for (name, storage) in &config.storage {
        println!("  storage {name}: {}", describe_storage(storage));
    }
    for route in config.routes.iter() {
        let patterns: Vec<&str> = route.patterns.iter().map(|p| p.as_str()).collect();
        let mut sources: Vec<String> = route
            .sources
            .entries
            .iter()
            .map(|e| e.base.clone())
            .collect();
        if let Some(git) = &route.git {
            let repos = git
                .mappings
                .iter()
                .map(|m| format!("git {} ({})", m.url, m.module_prefix))
                .chain(git.templates.iter().map(|t| format!("git {}", t.url)));
            if git.first {
                sources.splice(0..0, repos);
            } else {
                sources.extend(repos);
            }
        }
        let sources = if sources.is_empty() {
            "offline".to_owned()
        } else {
            sources.join(", ")
        };
        println!(
            "  route[{}] {} -> storage {}, sources: {sources}",
            route.index,
            patterns.join(","),
            route.storage
        );
    }
    ExitCode::SUCCESS
}

fn describe_storage(storage: &StorageConfig) -> String {
    match storage {
        StorageConfig::Fs { root } => format!("fs {}", root.display()),
        StorageConfig::S3 {
            endpoint,
            bucket,
            prefix,
        } => format!("s3 {endpoint} bucket {bucket} prefix {prefix:?}"),
        StorageConfig::Plugin { plugin } => format!("plugin {plugin}"),
    }
}

fn serve(path: Option<&Path>) -> anyhow::Result<()> {
    telemetry::init_logging()?;
    let config = Config::load(path)?;
    // Signals, the accept loop and reloads; connections are served on the server's own worker
    // threads (`server.workers`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("modgate-blocking")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        let server = Server::bind(&config, path).await?;
        // SIGHUP: re-read the configuration and swap the pipeline; a bad file keeps the old one.
        let gateway = std::sync::Arc::clone(server.handler());
        let mut hangups = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                if let Err(e) = gateway.reload_now().await {
                    tracing::error!(error = %e, "reload refused; the previous configuration stays in force");
                }
            }
        });
        // Every source a route may fetch from: proxies, and git repositories (as their URLs or
        // URL templates); none at all is an offline server.
        let upstreams: BTreeSet<String> = config
            .routes
            .iter()
            .flat_map(|r| {
                let proxies = r
                    .sources
                    .entries
                    .iter()
                    .map(|e| modgate::upstream::redact(&e.base));
                let git = r.git.iter().flat_map(|g| {
                    g.mappings
                        .iter()
                        .map(|m| format!("git {}", m.url))
                        .chain(g.templates.iter().map(|t| format!("git {}", t.url)))
                });
                proxies.chain(git).collect::<Vec<_>>()
            })
            .collect();
        let upstreams = upstreams.into_iter().collect::<Vec<_>>().join(", ");
        let goproxy_from = config.goproxy.as_ref().map_or("", |g| g.why.as_str());
        let storage = config
            .storage
            .iter()
            .map(|(name, s)| format!("{name}={}", describe_storage(s)))
            .collect::<Vec<_>>()
            .join(", ");
        tracing::info!(
            listen = %server.local_addr(),
            tls = config.server.tls.is_some(),
            workers = server.workers(),
            config = config.origin.as_str(),
            storage = storage.as_str(),
            routes = config.routes.iter().count(),
            upstreams = upstreams.as_str(),
            offline = upstreams.is_empty(),
            goproxy_from,
            version = env!("CARGO_PKG_VERSION"),
            "modgate listening"
        );
        server.serve(shutdown).await?;
        anyhow::Ok(())
    })
}

/// Resolves on the first SIGTERM or SIGINT. A second one exits at once, for an operator who
/// does not want to wait for the drain.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate()).context("cannot install a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install a SIGINT handler")?;
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown requested");
        let _ = first_tx.send(());
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::warn!(
            signal = name,
            "second signal: exiting without waiting for connections"
        );
        std::process::exit(130);
    });
    Ok(async move {
        // An Err means the signal task is gone, which only happens on runtime shutdown.
        let _ = first_rx.await;
    })
}
