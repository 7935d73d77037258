//! Starting and stopping modgate, free ports, config files, and the go command in an isolated
//! environment.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A port that was free a moment ago: bind `127.0.0.1:0`, read the port, let it go.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Waits (up to 20 s) until something accepts connections on `addr`; `what` names it.
pub fn wait_for_port(addr: std::net::SocketAddr, what: &str) {
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what} did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A directory shared by every test of this build (cargo's per-target scratch space).
pub fn shared_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&d).expect("create shared test dir");
    d
}

/// A program the tests run as a real server (versitygw, pebble): on `PATH`, else where
/// `go install` puts it (`$(go env GOPATH)/bin`).
pub fn installed_tool(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    on_path.or_else(|| {
        let out = Command::new(go_binary())
            .args(["env", "GOPATH"])
            .output()
            .ok()?;
        let gopath = String::from_utf8(out.stdout).ok()?;
        let bin = PathBuf::from(gopath.trim()).join("bin").join(name);
        bin.is_file().then_some(bin)
    })
}

/// Builds `main_go` (package main) against `golang.org/x/mod` as vendored in GOROOT, offline, into
/// a binary in the shared directory `name`: an oracle that answers as the go command's own code.
pub fn xmod_program(name: &str, main_go: &str) -> PathBuf {
    let go = go_binary();
    let goroot = Command::new(&go)
        .args(["env", "GOROOT"])
        .output()
        .expect("go env GOROOT");
    let goroot = PathBuf::from(String::from_utf8_lossy(&goroot.stdout).trim());
    let root = shared_dir(name);
    let xmod = root.join("xmod");
    let _ = std::fs::remove_dir_all(&xmod);
    copy_tree(&goroot.join("src/cmd/vendor/golang.org/x/mod"), &xmod);
    std::fs::write(xmod.join("go.mod"), "module golang.org/x/mod\n\ngo 1.23\n")
        .expect("write x/mod's go.mod");
    let prog = root.join("prog");
    std::fs::create_dir_all(&prog).expect("create the program's directory");
    std::fs::write(
        prog.join("go.mod"),
        "module oracle\n\ngo 1.23\n\nrequire golang.org/x/mod v0.0.0\n\nreplace golang.org/x/mod => ../xmod\n",
    )
    .expect("write the program's go.mod");
    std::fs::write(prog.join("main.go"), main_go).expect("write main.go");
    let bin = root.join("oracle");
    let out = Command::new(&go)
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&prog)
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOWORK", "off")
        .env("GOCACHE", shared_dir("gocache"))
        .output()
        .expect("run go build");
    assert!(
        out.status.success(),
        "building the {name} oracle failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a directory");
    for e in std::fs::read_dir(from).expect("read a directory") {
        let e = e.expect("a directory entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("a file type").is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).expect("copy a file");
        }
    }
}

/// The last `lines` lines of a file, for failure messages.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// modgate

/// A command that runs `program` in a session of its own, as a service runs (systemd and
/// containers give each service its own scheduling group): modgate's plugin threads
/// (`server.plugin_priority = "idle"`) then yield to modgate's own workers, not to every busy
/// process of the test run. `setsid` (util-linux) execs the program in place (a spawned child
/// is not a process group leader), so the child's pid is modgate's.
pub fn in_own_session(program: impl AsRef<std::ffi::OsStr>) -> Command {
    // Found on this process's PATH: the child's may be set to something without it.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let setsid = std::env::split_paths(&path)
        .map(|d| d.join("setsid"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/bin/setsid"));
    let mut c = Command::new(setsid);
    c.arg(program);
    c
}

/// What goes into one modgate config file.
#[derive(Clone)]
pub struct Setup {
    pub storage_root: PathBuf,
    /// The upstream GOPROXY list; `None` for an offline route (storage only).
    pub upstream: Option<String>,
    /// PEM certificate chain and key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The body of `[server.tls.acme]`: serve HTTPS with a certificate from an ACME CA.
    pub acme: Option<String>,
    pub list_ttl: String,
    pub not_found_ttl: String,
    /// `[upstream.hermetic]` `timeout` and `retries`.
    pub upstream_timeout: String,
    pub upstream_retries: u32,
    /// TOML inserted before the catch-all route: `[plugins.*]` tables and earlier `[[route]]`s.
    pub extra_toml: String,
    /// The body of `[storage.local]` (the catch-all route's storage) instead of `storage-fs` at
    /// `storage_root`.
    pub local_storage: Option<String>,
    /// Environment variables of the modgate process (secrets).
    pub env: Vec<(String, String)>,
    /// More keys of the catch-all `[[route]]` (TOML lines).
    pub catch_all_extra: String,
    /// Routes with upstream proxies verify against `[gosumdb]` (modgate's default); off
    /// unless a test sets it, as fixture modules are in no checksum database.
    pub sumdb: bool,
    /// Plugin timing as a production server has it: threads at `SCHED_IDLE` and each plugin's
    /// own (or the default 50 ms) deadline. Off unless a test is about that timing: the suite
    /// shares two cores between many servers and go commands, where a call can wait longer
    /// than 50 ms for a CPU, so elsewhere plugin threads run at normal priority and a plugin
    /// without a `limits.timeout_ms` of its own gets 5 s (a test that sets one keeps it).
    pub production_plugin_timing: bool,
}

impl Setup {
    pub fn new(storage_root: &Path, upstream: Option<&str>) -> Self {
        Self {
            storage_root: storage_root.to_path_buf(),
            upstream: upstream.map(str::to_string),
            tls: None,
            acme: None,
            list_ttl: "60s".into(),
            not_found_ttl: "60s".into(),
            upstream_timeout: "30s".into(),
            upstream_retries: 2,
            extra_toml: String::new(),
            local_storage: None,
            env: Vec::new(),
            catch_all_extra: String::new(),
            sumdb: false,
            production_plugin_timing: false,
        }
    }

    /// The TOML config (see the interface contract in the issue).
    pub fn render(&self, port: u16) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let p = |p: &Path| q(p.to_str().expect("utf-8 path"));
        let mut s = format!("[server]\nlisten = \"127.0.0.1:{port}\"\naccess_log = true\n");
        if !self.production_plugin_timing {
            s += "plugin_priority = \"normal\"\n";
        }
        if let Some((cert, key)) = &self.tls {
            s += &format!("tls = {{ cert = {}, key = {} }}\n", p(cert), p(key));
        }
        if let Some(acme) = &self.acme {
            s += &format!("\n[server.tls.acme]\n{acme}\n");
        }
        s += &format!(
            "\n[cache]\nlist_ttl = {}\nnot_found_ttl = {}\n\n[storage.local]\n",
            q(&self.list_ttl),
            q(&self.not_found_ttl),
        );
        match &self.local_storage {
            Some(table) => s += &format!("{table}\n"),
            None => {
                s += &format!(
                    "plugin = \"storage-fs\"\nconfig = {{ root = {} }}\n",
                    p(&self.storage_root)
                );
            }
        }
        let sources = match &self.upstream {
            Some(list) => {
                // Never skipped after failures unless a test is about that
                // (`MODGATE_UPSTREAM__HERMETIC__SKIP_AFTER`): many tests make the upstream
                // fail on purpose and then expect the next request to reach it.
                s += &format!(
                    "\n[upstream.hermetic]\ngoproxy = {}\ntimeout = {}\nretries = {}\nskip_after = 0\n",
                    q(list),
                    q(&self.upstream_timeout),
                    self.upstream_retries
                );
                "[\"hermetic\"]"
            }
            None => "[]",
        };
        let sources = if self.sumdb {
            sources.to_owned()
        } else {
            format!("{sources}\nsumdb = \"off\"")
        };
        s += &self.extra_toml.replace("SOURCES", &sources);
        s += &format!(
            "\n[[route]]\nmatch = [\"*\"]\nstorage = \"local\"\nsources = {sources}\n{}\n",
            self.catch_all_extra
        );
        if self.production_plugin_timing {
            s
        } else {
            with_test_deadlines(s)
        }
    }
}

/// `config` with `limits.timeout_ms = 5000` in every `[plugins.NAME]` that sets no deadline of
/// its own (see [`Setup::production_plugin_timing`]); text that does not parse is returned as
/// it is, for the config loader to refuse.
fn with_test_deadlines(config: String) -> String {
    let Ok(mut doc) = config.parse::<toml::Table>() else {
        return config;
    };
    let plugins = doc.get_mut("plugins").and_then(toml::Value::as_table_mut);
    for plugin in plugins
        .into_iter()
        .flat_map(|t| t.iter_mut().map(|(_, v)| v))
    {
        let Some(plugin) = plugin.as_table_mut() else {
            continue;
        };
        let limits = plugin
            .entry("limits")
            .or_insert_with(|| toml::Table::new().into());
        if let Some(limits) = limits.as_table_mut() {
            limits
                .entry("timeout_ms")
                .or_insert(toml::Value::Integer(5000));
        }
    }
    toml::to_string(&doc).expect("a parsed config serializes")
}

/// A running modgate process. Killed (and its logs shown, if the test is failing) on drop.
pub struct Modgate {
    child: Option<Child>,
    pub port: u16,
    pub setup: Setup,
    dir: TempDir,
    generation: u32,
}

impl Modgate {
    /// Writes the config, starts `modgate serve --config FILE` and waits until `/healthz` answers 200.
    pub fn start(setup: Setup) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("modgate-run-")
            .tempdir()
            .expect("tempdir");
        let mut m = Self {
            child: None,
            port: 0,
            setup,
            dir,
            generation: 0,
        };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        self.generation += 1;
        self.port = free_port();
        let config = self.dir.path().join("modgate.toml");
        std::fs::write(&config, self.setup.render(self.port)).expect("write config");
        let out = std::fs::File::create(self.log_path("stdout")).expect("stdout log");
        let err = std::fs::File::create(self.log_path("stderr")).expect("stderr log");
        let child = in_own_session(env!("CARGO_BIN_EXE_modgate"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .env("RUST_BACKTRACE", "1")
            .envs(self.setup.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn modgate");
        self.child = Some(child);
        self.wait_ready();
    }

    pub fn log_path(&self, stream: &str) -> PathBuf {
        self.dir
            .path()
            .join(format!("{stream}.{}.log", self.generation))
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                // Drop shows the logs.
                panic!("modgate exited during startup with {status}");
            }
            let ready = if self.setup.tls.is_some() || self.setup.acme.is_some() {
                TcpStream::connect(self.addr()).is_ok()
            } else {
                raw_request(
                    self.addr(),
                    "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                )
                .is_ok_and(|r| r.status == 200)
            };
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "modgate did not become ready in 30s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The modgate process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("modgate is running").id()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http://127.0.0.1:PORT` (or `https://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.setup.tls.is_some() || self.setup.acme.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The tails of stdout and stderr of the current (or last) process.
    pub fn logs(&self) -> String {
        format!(
            "--- modgate stdout (tail) ---\n{}\n--- modgate stderr (tail) ---\n{}\n---",
            tail(&self.log_path("stdout"), 40),
            tail(&self.log_path("stderr"), 40)
        )
    }

    /// SIGKILL (what `Child::kill` sends on Unix): no chance to clean up, like a power cut
    /// for the process.
    pub fn sigkill(&mut self) {
        self.stop();
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`) with the `kill` command: the workspace
    /// forbids `unsafe`, so `libc::kill` is out of reach.
    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("modgate is running").id();
        let ok = Command::new("kill")
            .args(["-s", name, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -s {name} {pid} failed");
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut()?.try_wait().ok().flatten() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Rewrites the running process's config file with `setup` (same port) without signalling
    /// it: follow with `signal("HUP")` to reload.
    pub fn rewrite_config(&mut self, setup: Setup) {
        self.setup = setup;
        let config = self.dir.path().join("modgate.toml");
        std::fs::write(&config, self.setup.render(self.port)).expect("write config");
    }

    /// Replaces the config file with `setup` rendered for this process's port, atomically
    /// (temp + rename: a reload never reads half a file), without signalling it. Unlike
    /// [`rewrite_config`](Self::rewrite_config) it leaves `self.setup` alone, so it works through
    /// a shared reference (from another thread).
    pub fn swap_config(&self, setup: &Setup) {
        let config = self.dir.path().join("modgate.toml");
        let tmp = self.dir.path().join("modgate.toml.tmp");
        std::fs::write(&tmp, setup.render(self.port)).expect("write config");
        std::fs::rename(&tmp, &config).expect("rename config");
    }

    /// Replaces the config file with arbitrary text (to test refused reloads).
    pub fn write_raw_config(&self, text: &str) {
        std::fs::write(self.dir.path().join("modgate.toml"), text).expect("write config");
    }

    /// Waits until the current process's stdout or stderr contains `needle` `count` times.
    pub fn wait_for_log(&self, needle: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let text = format!(
                "{}{}",
                std::fs::read_to_string(self.log_path("stdout")).unwrap_or_default(),
                std::fs::read_to_string(self.log_path("stderr")).unwrap_or_default()
            );
            if text.matches(needle).count() >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a new process on the same config (storage root, upstream), on a fresh port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Same as [`restart`](Self::restart) but with a changed setup (e.g. offline).
    pub fn restart_with(&mut self, setup: Setup) {
        self.stop();
        self.setup = setup;
        self.spawn();
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Modgate {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 (no client library normalizing the path)

/// A response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A keep-alive HTTP/1.1 connection that sends GETs and reads `Content-Length` bodies.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    /// A connection whose reads give up after `patience`.
    pub fn open(addr: SocketAddr, patience: Duration) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(patience))?;
        Ok(Conn {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    /// `GET path` (a response with a `Content-Length` body).
    pub fn get(&mut self, path: &str) -> std::io::Result<RawResponse> {
        self.request("GET", path, &[], b"")
    }

    /// `method path` with more header lines and a body (a response with a `Content-Length`
    /// body).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: &[u8],
    ) -> std::io::Result<RawResponse> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for h in headers {
            head += h;
            head += "\r\n";
        }
        if !body.is_empty() {
            head += &format!("Content-Length: {}\r\n", body.len());
        }
        head += "\r\n";
        self.writer.write_all(head.as_bytes())?;
        self.writer.write_all(body)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| std::io::Error::other("no Content-Length"))?;
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body)?;
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }
}

/// Sends `request` verbatim (it should say `Connection: close`) and reads the response to EOF.
/// The value of the `/metrics` line of `mg` that starts with `line_start` (the metric's name
/// and labels, e.g. `modgate_rate_limited_total{limit="x",kind="requests"}`), 0 if absent.
pub fn metric(mg: &Modgate, line_start: &str) -> f64 {
    let text = String::from_utf8(get(mg, "/metrics").body).expect("metrics are text");
    metric_in(&text, line_start)
}

/// The value of the line of a `/metrics` text that starts with `line_start`, 0 if absent.
pub fn metric_in(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `GET path` on a fresh connection to `mg` (no client normalises the path).
pub fn get(mg: &Modgate, path: &str) -> RawResponse {
    raw_request(
        mg.addr(),
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    )
    .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

pub fn raw_request(addr: SocketAddr, request: &str) -> std::io::Result<RawResponse> {
    raw_request_bytes(addr, request.as_bytes())
}

pub fn raw_request_bytes(addr: SocketAddr, request: &[u8]) -> std::io::Result<RawResponse> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.set_write_timeout(Some(Duration::from_secs(20)))?;
    // A server may answer (431) and close before reading the whole request: that is fine.
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let r = s.read_to_end(&mut buf);
    if buf.is_empty() {
        r?;
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed without a response",
        ));
    }
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> std::io::Result<RawResponse> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad("non-UTF-8 head"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("empty"))?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(&format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    } else if let Some(len) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_str = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_str.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// Why `body` is not an error body the go command can show in full — one line (exactly one
/// `\n`, at the end), at most 648 bytes, no control characters (GOPROXY.md §1) — or `None`.
pub fn one_line_problem(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let problem = if body.len() <= 1 {
        "empty error body"
    } else if body.len() > 648 {
        "error body longer than 648 bytes"
    } else if !body.ends_with(b"\n") {
        "error body does not end with a newline"
    } else if body.iter().filter(|&&b| b == b'\n').count() != 1 {
        "error body is not one line"
    } else if body[..body.len() - 1]
        .iter()
        .any(|&b| b < 0x20 || b == 0x7f)
    {
        "error body holds control characters"
    } else {
        return None;
    };
    Some(format!("{problem}: {text:?}"))
}

// ---------------------------------------------------------------------------------------------
// The go command

/// The `go` binary from PATH. These tests need the real go command as the client; a machine
/// without it fails here, loudly, instead of skipping.
pub fn go_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("go"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the `go` command is not on PATH ({}): the integration tests use the real go \
                 client as the judge of modgate's answers; install Go (1.21 or later) and put it on PATH",
                path.to_string_lossy()
            )
        })
}

/// An isolated go environment: its own HOME, GOPATH, GOMODCACHE and a scratch module, a shared
/// GOCACHE, no checksum database, the given GOPROXY.
pub struct GoEnv {
    dir: TempDir,
    pub goproxy: String,
    extra: Vec<(String, String)>,
}

impl GoEnv {
    pub fn new(goproxy: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("modgate-go-")
            .tempdir()
            .expect("tempdir");
        for d in ["home", "gopath", "modcache", "work"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        // Telemetry off, as `go telemetry off` would write it: otherwise the go command writes
        // counters under HOME and may leave a detached child doing so after the test is gone.
        let telemetry = dir.path().join("home/.config/go/telemetry");
        std::fs::create_dir_all(&telemetry).expect("mkdir telemetry");
        std::fs::write(telemetry.join("mode"), "off").expect("write telemetry mode");
        std::fs::write(
            dir.path().join("work/go.mod"),
            "module example.com/scratch\n\ngo 1.21\n",
        )
        .expect("write go.mod");
        Self {
            dir,
            goproxy: goproxy.to_string(),
            extra: Vec::new(),
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.extra.push((key.to_string(), value.to_string()));
        self
    }

    pub fn modcache(&self) -> PathBuf {
        self.dir.path().join("modcache")
    }

    /// The scratch module the commands run in.
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(go_binary());
        c.args(args).current_dir(self.work()).env_clear();
        let root = self.dir.path();
        c.env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", root.join("home"))
            .env("GOPATH", root.join("gopath"))
            .env("GOMODCACHE", self.modcache())
            .env("GOCACHE", shared_dir("gocache"))
            .env("GOFLAGS", "-mod=mod -modcacherw")
            .env("GOPROXY", &self.goproxy)
            .env("GOSUMDB", "off")
            .env("GONOSUMDB", "*")
            .env("GOTOOLCHAIN", "local")
            .env("GO111MODULE", "on")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("TMPDIR", std::env::temp_dir());
        for (k, v) in &self.extra {
            c.env(k, v);
        }
        c
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("run go {args:?}: {e}"))
    }

    /// Runs go and returns stdout; panics with everything go said if it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "`go {}` with GOPROXY={} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
            args.join(" "),
            self.goproxy,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("go output is UTF-8")
    }

    /// `go mod download -json` of `queries`: one JSON object per module version.
    pub fn download(&self, queries: &[String]) -> Vec<serde_json::Value> {
        let mut args = vec!["mod", "download", "-json"];
        args.extend(queries.iter().map(String::as_str));
        let out = self.run(&args);
        let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&out)
            .into_iter()
            .collect::<Result<_, _>>()
            .expect("go mod download -json prints JSON objects");
        for d in &docs {
            assert!(
                d.get("Error").is_none(),
                "go mod download reported an error: {d}"
            );
        }
        docs
    }

    /// Files under `$GOMODCACHE/cache/download` that hold module content (`.info`, `.mod`,
    /// `.zip`, `.ziphash`), by relative path.
    pub fn download_cache(&self) -> BTreeMap<String, Vec<u8>> {
        let root = self.modcache().join("cache/download");
        let mut out = BTreeMap::new();
        for f in walk(&root) {
            let rel = f
                .strip_prefix(&root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            if rel.starts_with("sumdb/") {
                continue;
            }
            if [".info", ".mod", ".zip", ".ziphash"]
                .iter()
                .any(|e| rel.ends_with(e))
            {
                out.insert(rel, std::fs::read(&f).expect("read cache file"));
            }
        }
        out
    }

    pub fn read_work(&self, name: &str) -> String {
        std::fs::read_to_string(self.work().join(name)).unwrap_or_default()
    }
}

/// Every regular file under `root`, recursively (none if it does not exist).
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(_) => out.push(p),
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}

/// Every path (files and directories) under `root`, relative, for before/after comparisons.
pub fn snapshot(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            out.push(
                p.strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .into_owned(),
            );
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// What a command printed, stdout then stderr.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A finished command's stdout and stderr, as one text for assertions and failure messages.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
