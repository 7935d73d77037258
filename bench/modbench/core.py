#!/usr/bin/env python3
"""bench/run: modgate against nginx on the same warm GOPROXY tree.

One command: builds modgate, generates a module tree, starts modgate and nginx side by
side on 127.0.0.1, drives both with wrk under identical conditions and prints a
comparison table (also written as markdown). See bench/README.md for how to read it.

Exit status: 0 = everything measured (targets may still be MISSed; see the table),
1 = harness failure (tools, tree, nginx, wrk), 2 = modgate could not be measured
(build, start or byte-for-byte validation failed); nginx figures are still written.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import grp
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

MODULE_PREFIX = "example.com/bench"
BIG_MODULE = f"{MODULE_PREFIX}/big"
VERSION = "v1.0.0"
INFO_TIME = "2024-01-01T00:00:00Z"
MIB = 1024 * 1024
# `--baseline-bin`: the name another modgate build is measured under.
BASELINE = "modgate (baseline)"
MB = 1000 * 1000

TARGET_INFO_RATIO = 0.8
TARGET_MBPS_RATIO = 0.9
TARGET_RSS_MIB = 64


class HarnessError(Exception):
    """The bench itself could not run (missing tool, nginx or wrk failure)."""


class ModgateError(Exception):
    """modgate could not be built, started or did not serve the tree correctly."""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Tools


def ensure_tools() -> None:
    """Install nginx and wrk from the Debian archive when they are missing."""
    missing = [t for t in ("nginx", "wrk", "curl") if not which(t)]
    if not missing:
        return
    pkgs = {"nginx": "nginx-light", "wrk": "wrk", "curl": "curl"}
    wanted = [pkgs[t] for t in missing]
    if os.geteuid() != 0:
        raise HarnessError(f"missing {missing}; run as root or `apt-get install -y {' '.join(wanted)}`")
    log(f"installing {wanted} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *wanted]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL, check=False)
        if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            raise HarnessError(f"apt-get install {wanted} failed")
    still = [t for t in ("nginx", "wrk", "curl") if not which(t)]
    if still:
        raise HarnessError(f"still missing after install: {still}")


def which(tool: str) -> str | None:
    # nginx lives in /usr/sbin, which is not always on a non-root PATH.
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def tool_version(cmd: list[str]) -> str:
    """First line of `cmd`'s output, without the tool's own prefix or copyright."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    out = (p.stdout + p.stderr).strip().splitlines()
    first = out[0].strip() if out else "?"
    return first.removeprefix("nginx version: ").split(" Copyright")[0]


# ---------------------------------------------------------------------------
# modgate build


def repo_root() -> Path:
    here = Path(__file__).resolve().parent
    p = subprocess.run(["git", "-C", str(here), "rev-parse", "--show-toplevel"],
                       capture_output=True, text=True)
    return Path(p.stdout.strip()) if p.returncode == 0 else here.parent


def build_modgate(root: Path) -> Path:
    log(f"cargo build --release -p modgate (in {root})")
    p = subprocess.run(["cargo", "build", "--release", "-p", "modgate"], cwd=root,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise ModgateError("cargo build failed:\n" + tail(p.stderr, 30))
    meta = subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1"],
                          cwd=root, capture_output=True, text=True)
    if meta.returncode != 0:
        raise ModgateError("cargo metadata failed:\n" + tail(meta.stderr, 10))
    binary = Path(json.loads(meta.stdout)["target_directory"]) / "release" / "modgate"
    if not binary.is_file():
        raise ModgateError(f"build succeeded but {binary} does not exist")
    return binary


def tail(text: str, n: int) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def git_describe(root: Path) -> str:
    p = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h %s"],
                       capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return p.stdout.strip() + (" (+ local changes)" if dirty else "")


# ---------------------------------------------------------------------------
# The warm tree: <root>/<escaped module>/@v/<version>.{info,mod,zip,ziphash} (+ list for nginx)


def dirhash_h1(files: list[tuple[str, str]]) -> str:
    """golang.org/x/mod/sumdb/dirhash Hash1 over (name, hex sha256) pairs."""
    summary = "".join(f"{digest}  {name}\n" for name, digest in sorted(files))
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def self_test_dirhash() -> None:
    """The vectors from GOPROXY.md section 4, so a broken hash is a harness error."""
    sha = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    gomod = b"module example.com/m\n"
    checks = [
        (dirhash_h1([("go.mod", sha(b""))]), "h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY="),
        (dirhash_h1([("go.mod", sha(gomod))]), "h1:flS2VctbRrTv+sBE+VKgxx6hlkMGPVz9MGOmzMYFg3k="),
        (dirhash_h1([("example.com/m@v1.0.0/go.mod", sha(gomod)),
                     ("example.com/m@v1.0.0/a.go", sha(b"package a\n"))]),
         "h1:mf3ZgaLi4oSAsMraSF2c/29zuDnyW+GWSJW1ofY+5Bk="),
    ]
    for got, want in checks:
        if got != want:
            raise HarnessError(f"dirhash self-test failed: {got} != {want}")


def escape_path(path: str) -> str:
    """module.EscapePath: uppercase letters become '!' + lowercase."""
    return "".join("!" + c.lower() if c.isupper() else c for c in path)


@dataclass
class Tree:
    root: Path
    small: list[str]           # module paths
    info_paths: list[str]      # URL paths of every small .info
    big_zip_path: str          # URL path of the big zip
    big_zip_size: int
    big_zip_sha256: str


def write_version(root: Path, module: str, gomod: bytes, zip_writer) -> Path:
    """Write .info/.mod/.zip/.ziphash/list of one version; zip_writer(zf, prefix) -> [(name, sha)]."""
    vdir = root / escape_path(module) / "@v"
    vdir.mkdir(parents=True, exist_ok=True)
    prefix = f"{module}@{VERSION}/"
    zpath = vdir / f"{VERSION}.zip"
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_STORED) as zf:
        hashed = [(prefix + "go.mod", hashlib.sha256(gomod).hexdigest())]
        zf.writestr(zipfile.ZipInfo(prefix + "go.mod", (2024, 1, 1, 0, 0, 0)), gomod)
        hashed += zip_writer(zf, prefix)
    (vdir / f"{VERSION}.ziphash").write_text(dirhash_h1(hashed))
    (vdir / f"{VERSION}.mod").write_bytes(gomod)
    # .info last: it is the commit marker in modgate's storage layout.
    (vdir / f"{VERSION}.info").write_text(json.dumps({"Version": VERSION, "Time": INFO_TIME},
                                                     separators=(",", ":")) + "\n")
    # modgate computes list itself; nginx serves this file.
    (vdir / "list").write_text(VERSION + "\n")
    return zpath


def make_tree(root: Path, n_small: int, big_mib: int) -> Tree:
    self_test_dirhash()
    t0 = time.monotonic()
    small = []
    for i in range(n_small):
        module = f"{MODULE_PREFIX}/m{i:03d}"
        src = f"package m{i:03d}\n\n// N is {i}.\nconst N = {i}\n".encode()

        def one_file(zf, prefix, src=src, i=i):
            name = f"{prefix}m{i:03d}.go"
            zf.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), src)
            return [(name, hashlib.sha256(src).hexdigest())]

        write_version(root, module, f"module {module}\n\ngo 1.21\n".encode(), one_file)
        small.append(module)

    # The big module: a few files of incompressible random data, stored (not deflated),
    # so the zip is ~big_mib MiB on disk and on the wire.
    n_files = 4
    per_file = big_mib * MIB // n_files
    chunk = 4 * MIB

    def big_files(zf, prefix):
        out = []
        for f in range(n_files):
            name = f"{prefix}data/blob{f}.bin"
            h = hashlib.sha256()
            info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            with zf.open(info, "w") as w:
                left = per_file
                while left:
                    b = os.urandom(min(chunk, left))
                    h.update(b)
                    w.write(b)
                    left -= len(b)
            out.append((name, h.hexdigest()))
        return out

    zpath = write_version(root, BIG_MODULE, f"module {BIG_MODULE}\n\ngo 1.21\n".encode(), big_files)
    # Everything world-readable: nginx workers run as nobody when started as root.
    for dirpath, _dirs, files in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    zsha = sha256_file(zpath)
    log(f"tree: {n_small} small versions + {zpath.stat().st_size / MIB:.1f} MiB zip "
        f"in {time.monotonic() - t0:.1f}s at {root}")
    return tree_from(root, small, zpath, zsha)


def tree_from(root: Path, small: list[str], zpath: Path, zsha: str) -> Tree:
    return Tree(
        root=root,
        small=small,
        info_paths=[f"/{escape_path(m)}/@v/{VERSION}.info" for m in small],
        big_zip_path=f"/{escape_path(BIG_MODULE)}/@v/{VERSION}.zip",
        big_zip_size=zpath.stat().st_size,
        big_zip_sha256=zsha,
    )


def load_tree(root: Path) -> Tree:
    """Reuse a tree made by an earlier run (--tree DIR)."""
    zpath = root / escape_path(BIG_MODULE) / "@v" / f"{VERSION}.zip"
    small = sorted(f"{MODULE_PREFIX}/{p.name}" for p in (root / MODULE_PREFIX).iterdir()
                   if p.name != "big" and (p / "@v" / f"{VERSION}.info").is_file())
    if not zpath.is_file() or not small:
        raise HarnessError(f"{root} does not look like a bench tree")
    return tree_from(root, small, zpath, sha256_file(zpath))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(4 * MIB):
            h.update(b)
    return h.hexdigest()


def warm_page_cache(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                while fh.read(4 * MIB):
                    pass


# ---------------------------------------------------------------------------
# Servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    base: str
    log_path: Path
    cpus: str | None = None

    def pids(self) -> list[int]:
        """The server's pid and its direct children (nginx workers)."""
        root = self.proc.pid
        out = [root]
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            # comm may hold spaces/parens: the fields after the last ')' are fixed.
            fields = stat[stat.rfind(")") + 2:].split()
            if len(fields) > 1 and fields[1] == str(root):
                out.append(int(d))
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            # nginx: SIGQUIT = graceful; both servers also honour SIGTERM.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


AUTOGROUP_NICE = 0


def set_autogroup_nice(pid: int, nice: int) -> None:
    """With sched_autogroup (Debian's default) every session is one scheduling group and
    niceness only counts inside it; the group's own niceness is what weighs against other
    sessions' builds. Servers run in their own session, so each gets its group set too."""
    global AUTOGROUP_NICE
    AUTOGROUP_NICE = nice
    path = Path(f"/proc/{pid}/autogroup")
    if path.exists():
        path.write_text(str(nice))


def popen(cmd: list[str], log_path: Path, cpus: str | None,
          env: dict[str, str] | None = None) -> subprocess.Popen:
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    if AUTOGROUP_NICE:
        try:
            set_autogroup_nice(proc.pid, AUTOGROUP_NICE)
        except OSError as e:
            log(f"cannot set the autogroup niceness of {cmd[0]}: {e}")
    return proc


def start_nginx(tree: Tree, work: Path, cpus: str | None) -> Server:
    prefix = work / "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    user = ""
    if os.geteuid() == 0:
        # Workers drop to nobody; Debian has no group "nobody", hence nogroup.
        group = "nogroup"
        try:
            grp.getgrnam(group)
        except KeyError:
            group = "nobody"
        user = f"user nobody {group};"
    conf = prefix / "nginx.conf"
    conf.write_text(f"""\
# Generated by bench/run.
{user}
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 65;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{
        application/json info;
        application/zip zip;
        text/plain mod;
    }}
    default_type application/octet-stream;
    charset_types text/plain;
    server {{
        listen 127.0.0.1:{port};
        root {tree.root};
        location = /healthz {{ return 200 "ok\\n"; }}
        location ~ /@v/list$ {{ default_type text/plain; charset utf-8; }}
        location ~ \\.mod$ {{ charset utf-8; }}
    }}
}}
""")
    log_path = prefix / "stdout.log"
    proc = popen([which("nginx") or "nginx", "-e", str(prefix / "error.log"), "-p", str(prefix),
                  "-c", str(conf), "-g", "daemon off;"], log_path, cpus)
    srv = Server("nginx", proc, f"http://127.0.0.1:{port}", log_path, cpus)
    if not wait_ready(srv, 15):
        err = (prefix / "error.log")
        detail = tail(log_path.read_text(errors="replace"), 10)
        if err.exists():
            detail += "\n" + tail(err.read_text(errors="replace"), 10)
        srv.stop()
        raise HarnessError(f"nginx did not become ready:\n{detail}")
    return srv


def start_modgate(binary: Path, tree: Tree, work: Path, cpus: str | None) -> Server:
    mdir = work / "modgate"
    mdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = mdir / "modgate.toml"
    conf.write_text(f"""\
# Generated by bench/run.
[server]
listen = "127.0.0.1:{port}"
access_log = false

[storage.local]
plugin = "storage-fs"
config = {{ root = {json.dumps(str(tree.root))} }}

[[route]]
match = ["*"]
storage = "local"
sources = []      # offline: serve the warm tree only
""")
    log_path = mdir / "modgate.log"
    env_cmd = [str(binary), "serve", "--config", str(conf)]
    proc = popen(env_cmd, log_path, cpus)
    srv = Server("modgate", proc, f"http://127.0.0.1:{port}", log_path, cpus)
    if not wait_ready(srv, 30):
        detail = tail(log_path.read_text(errors="replace"), 20) or "(no output)"
        code = proc.poll()
        srv.stop()
        why = (f"exited with status {code}" if code is not None
               else "did not answer 200 on /healthz within 30s")
        raise ModgateError(f"modgate {why}; its output:\n{detail}")
    return srv


def start_goproxy(binary: Path, tree: Tree, work: Path, cpus: str | None) -> Server:
    """goproxy (`goproxy server`) serving the warm tree as its cache: its `--cacher-dir` layout
    is a GOPROXY tree, and versioned artifacts found there are served without an upstream
    (`GOPROXY=off`, so a miss could not reach anything)."""
    gdir = work / "goproxy"
    gdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ, GOPROXY="off", GOSUMDB="off", GONOSUMDB="*", GOTOOLCHAIN="local",
               GOMODCACHE=str(gdir / "gomodcache"))
    log_path = gdir / "goproxy.log"
    cmd = [str(binary), "server", "--address", f"127.0.0.1:{port}",
           "--cacher-dir", str(tree.root), "--temp-dir", str(gdir)]
    proc = popen(cmd, log_path, cpus, env)
    srv = Server("goproxy", proc, f"http://127.0.0.1:{port}", log_path, cpus)
    # goproxy has no health endpoint: ready once it serves a file of the tree.
    if wait_ready(srv, 30, tree.info_paths[0]):
        return srv
    srv.stop()
    raise HarnessError("goproxy did not serve the tree: "
                       + tail(log_path.read_text(errors="replace"), 10).replace("\n", " / "))


def wait_ready(srv: Server, timeout: float, path: str = "/healthz") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(srv.base + path, timeout=2) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


def fetch(url: str, sha: bool = False) -> tuple[int, dict, bytes | str]:
    """GET url; returns (status, headers, body or sha256 hex of the body)."""
    try:
        r = urllib.request.urlopen(url, timeout=60)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    with r:
        if not sha:
            return r.status, dict(r.headers), r.read()
        h = hashlib.sha256()
        while b := r.read(MIB):
            h.update(b)
        return r.status, dict(r.headers), h.hexdigest()


def validate(srv: Server, tree: Tree, check_list: bool = True) -> list[str]:
    """Byte-compare a sample of responses with the files; returns the problems found. (`list`
    is skipped for goproxy: it asks the upstream for lists, and there is none.)"""
    problems = []
    samples = [tree.info_paths[0], tree.info_paths[-1],
               tree.info_paths[0].replace(".info", ".mod")]
    for p in samples:
        status, _h, body = fetch(srv.base + p)
        want = (tree.root / p.lstrip("/")).read_bytes()
        if status != 200 or body != want:
            problems.append(f"GET {p}: status {status}, body {body[:80]!r} != file {want[:80]!r}")
    status, _h, body = fetch(srv.base + tree.info_paths[0].replace(f"{VERSION}.info", "list"))
    if check_list and (status != 200 or VERSION not in body.decode(errors="replace")):
        problems.append(f"GET list: status {status}, body {body[:80]!r}")
    status, headers, digest = fetch(srv.base + tree.big_zip_path, sha=True)
    clen = {k.lower(): v for k, v in headers.items()}.get("content-length")
    if status != 200 or digest != tree.big_zip_sha256:
        problems.append(f"GET big zip: status {status}, sha256 {str(digest)[:16]}… != file")
    elif clen != str(tree.big_zip_size):
        problems.append(f"GET big zip: Content-Length {clen} != {tree.big_zip_size}")
    return problems


# ---------------------------------------------------------------------------
# Load generation (wrk) and memory sampling

WRK_LUA_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"bytes":%d,"duration_us":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""

# Rotates over every .info URL of the tree (one pre-formatted request per path, so the
# per-request Lua cost is a table lookup). Each thread starts at a different offset.
WRK_LUA_ROTATE = r"""
local reqs = {}
local idx = 0
function init(args)
  for line in io.lines(args[1]) do
    reqs[#reqs + 1] = wrk.format("GET", line)
  end
  idx = math.random(#reqs)
end
function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end
""" + WRK_LUA_DONE


@dataclass
class WrkResult:
    requests: int
    bytes: int
    duration_us: int
    errors: dict
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int
    server_cpu_s: float = 0.0   # CPU time the server used during the run
    foreign_pct: float = 0.0    # machine CPU used by processes outside the bench, in %

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6)

    @property
    def mbps(self) -> float:
        return self.bytes / (self.duration_us / 1e6) / MB

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def run_wrk(url: str, conns: int, threads: int, seconds: float, script: Path,
            script_args: list[str], cpus: str | None,
            extra: list[str] | None = None) -> WrkResult:
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{max(1, round(seconds))}s",
           "--timeout", "120s", *(extra or []), "-s", str(script), url]
    if script_args:
        cmd += ["--", *script_args]
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        raise HarnessError(f"wrk did not finish: {' '.join(cmd)}") from None
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if p.returncode != 0 or line is None:
        raise HarnessError(f"wrk failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    d = json.loads(line[len("BENCH_JSON "):])
    errors = {k: d[k] for k in ("connect", "read", "write", "status", "timeout")}
    return WrkResult(d["requests"], d["bytes"], d["duration_us"], errors,
                     d["p50_us"], d["p90_us"], d["p99_us"], d["max_us"])


def run_zipload(base: str, path: str, conns: int, seconds: float, expected: int) -> WrkResult:
    """Download `path` over `conns` keep-alive connections for `seconds`; count body bytes.

    Why not wrk: wrk reads in 8 KiB chunks and parses every byte, so on this 2-CPU box it
    burns more CPU than the server and caps a loopback download at ~1 GB/s. Plain threads
    doing 1 MiB recv_into (the GIL is released in recv) cost a fraction of that, so the
    server's own cost decides the figure. Bytes of unfinished downloads count too.
    """
    host, port = base.removeprefix("http://").rsplit(":", 1)
    start = time.monotonic()
    deadline = start + seconds
    lock = threading.Lock()
    total = {"bytes": 0, "requests": 0}
    errors = {k: 0 for k in ("connect", "read", "write", "status", "timeout")}
    lat: list[float] = []
    req = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()

    def worker():
        buf = bytearray(MIB)
        view = memoryview(buf)
        got = done = 0
        my_lat = []
        my_err = {k: 0 for k in errors}
        sock = None
        while time.monotonic() < deadline and sum(my_err.values()) < 20:
            try:
                if sock is None:
                    try:
                        sock = socket.create_connection((host, int(port)), timeout=60)
                    except OSError:
                        my_err["connect"] += 1
                        time.sleep(0.05)
                        continue
                t0 = time.monotonic()
                sock.sendall(req)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError("closed before headers")
                    head += chunk
                head, _, rest = head.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                hdrs = {k.strip().lower(): v.strip() for k, _, v in
                        (ln.partition(":") for ln in lines[1:])}
                if lines[0].split()[1:2] != ["200"] or hdrs.get("content-length") != str(expected):
                    my_err["status"] += 1
                    sock.close()
                    sock = None
                    break
                got += len(rest)
                left = expected - len(rest)
                while left > 0:
                    n = sock.recv_into(view[:min(left, MIB)])
                    if n == 0:
                        raise ConnectionError("closed mid-body")
                    got += n
                    left -= n
                    if time.monotonic() >= deadline:
                        break
                if left == 0:
                    done += 1
                    my_lat.append(time.monotonic() - t0)
                    if hdrs.get("connection", "").lower() == "close":
                        sock.close()
                        sock = None
            except socket.timeout:
                my_err["timeout"] += 1
                sock = None
            except OSError:
                my_err["read"] += 1
                sock = None
        if sock is not None:
            sock.close()
        with lock:
            total["bytes"] += got
            total["requests"] += done
            lat.extend(my_lat)
            for k, v in my_err.items():
                errors[k] += v

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
        if t.is_alive():
            raise HarnessError("zip download thread did not finish")
    elapsed = time.monotonic() - start
    lat.sort()

    def pct(p: float) -> int:
        return int(lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1e6) if lat else 0

    return WrkResult(total["requests"], total["bytes"], int(elapsed * 1e6), errors,
                     pct(50), pct(90), pct(99), pct(100))


def proc_status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/<pid>/status we care about."""
    out = {}
    try:
        for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = ln.partition(":")
            if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads"):
                out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def mem_snapshot(srv: Server) -> dict[str, int]:
    """Sum over the server's processes (nginx: master + workers)."""
    total: dict[str, int] = {}
    for pid in srv.pids():
        for k, v in proc_status(pid).items():
            total[k] = total.get(k, 0) + v
    total["procs"] = len(srv.pids())
    return total


CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # Everything but idle and iowait. irq/softirq stay in: the kernel also charges the
    # softirq work it does in a process's context to that process's stime, so leaving
    # them out made the bench's own loopback traffic look like negative "other load".
    total = sum(f[:8])          # guest time is already inside user
    return total - f[3] - f[4], total


def proc_ticks(pid: int) -> int:
    """CPU ticks of `pid`: its threads (utime + stime) and its children that exited and were
    waited for (cutime + cstime): Athens runs a `go mod download` per version, and that CPU
    is the server's, not other load."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rfind(")") + 2:].split()
    return sum(int(f) for f in fields[11:15])


class CpuMeter:
    """Server CPU time during a run, and how busy the machine was with *other* work.

    foreign = machine busy ticks - server - this harness - its children (wrk): other
    sessions compiling on the same 2 CPUs show up here, and make a run suspect.
    """

    def __init__(self, servers: list[Server], measured: Server):
        self.servers, self.measured = servers, measured

    def _ours(self) -> tuple[int, int, int]:
        import resource
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        harness = (own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime) * CLK_TCK
        all_servers = sum(proc_ticks(p) for s in self.servers for p in s.pids())
        measured = sum(proc_ticks(p) for p in self.measured.pids())
        return int(harness), all_servers, measured

    def __enter__(self):
        self.t0 = self._ours(), machine_ticks()
        return self

    def __exit__(self, *exc):
        (h0, a0, m0), (b0, t0) = self.t0
        (h1, a1, m1), (b1, t1) = self._ours(), machine_ticks()
        self.server_cpu_s = (m1 - m0) / CLK_TCK
        foreign = (b1 - b0) - (a1 - a0) - (h1 - h0)
        self.foreign_pct = max(0.0, 100.0 * foreign / max(1, t1 - t0))


def wait_quiet(max_wait: float, busy_limit: float = 15.0) -> float:
    """Wait (up to max_wait s) for a 1-s window with the machine < busy_limit % busy."""
    deadline = time.monotonic() + max_wait
    while True:
        b0, t0 = machine_ticks()
        time.sleep(1)
        b1, t1 = machine_ticks()
        busy = 100.0 * (b1 - b0) / max(1, t1 - t0)
        if busy < busy_limit or time.monotonic() >= deadline:
            return busy
        log(f"machine {busy:.0f}% busy with other work; waiting to start")


class RssSampler:
    """Samples the summed VmRSS/RssAnon of a server every `period` seconds."""

    def __init__(self, srv: Server, period: float = 0.05):
        self.srv, self.period = srv, period
        self.peak_rss = self.peak_anon = 0
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.pids = self.srv.pids()
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    def _run(self):
        while not self._stop.is_set():
            rss = anon = 0
            for pid in self.pids:
                s = proc_status(pid)
                rss += s.get("VmRSS", 0)
                anon += s.get("RssAnon", 0)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_anon = max(self.peak_anon, anon)
            self.samples += 1
            self._stop.wait(self.period)


# ---------------------------------------------------------------------------
# The bench


@dataclass
class Plan:
    runs: int
    info_secs: float
    zip1_secs: float
    zip32_secs: float
    info_conns: int = 64
    zip_conns: int = 32
    wrk_threads: int = 2
    zip_client: str = "py"
    server_cpus: str | None = None
    wrk_cpus: str | None = None


@dataclass
class Results:
    info: dict[str, list[WrkResult]] = field(default_factory=dict)
    zip1: dict[str, list[WrkResult]] = field(default_factory=dict)
    zip32: dict[str, list[WrkResult]] = field(default_factory=dict)
    rss_peak: dict[str, RssSampler] = field(default_factory=dict)
    mem: dict[str, list[tuple[str, dict[str, int]]]] = field(default_factory=dict)


class ServerDied(Exception):
    """A server exited while being measured."""

    def __init__(self, srv: Server):
        code = srv.proc.returncode
        how = (f"was killed by {signal.Signals(-code).name}" if code < 0
               else f"exited with status {code}")
        if code == -signal.SIGTERM:
            # The harness only stops servers after measuring, so someone else did it.
            how += " from outside the bench (a broad `pkill`/`killall` elsewhere?)"
        super().__init__(f"{srv.name} {how}; last output: "
                         + tail(srv.log_path.read_text(errors="replace"), 5).replace("\n", " / "))
        self.srv = srv


def measure(servers: list[Server], tree: Tree, plan: Plan, work: Path, res: Results) -> None:
    """Fills `res` run by run, so what was measured survives a ServerDied."""
    rotate = work / "rotate.lua"
    rotate.write_text(WRK_LUA_ROTATE)
    done = work / "done.lua"
    done.write_text(WRK_LUA_DONE)
    paths = work / "info-paths.txt"
    paths.write_text("\n".join(tree.info_paths) + "\n")

    def info_run(s: Server, secs: float) -> WrkResult:
        return run_wrk(s.base + tree.info_paths[0], plan.info_conns, plan.wrk_threads, secs,
                       rotate, [str(paths)], plan.wrk_cpus)

    def zip_run(s: Server, conns: int, secs: float) -> WrkResult:
        if plan.zip_client == "wrk":
            return run_wrk(s.base + tree.big_zip_path, conns, min(conns, plan.wrk_threads), secs,
                           done, [], plan.wrk_cpus)
        return run_zipload(s.base, tree.big_zip_path, conns, secs, tree.big_zip_size)

    def snap(stage: str):
        for s in servers:
            res.mem.setdefault(s.name, []).append((stage, mem_snapshot(s)))

    def series(label: str, into: dict[str, list[WrkResult]], load, rss: bool = False):
        for i in range(plan.runs):
            # Alternate which server goes first so drift (other load, caches) cancels out.
            for s in (servers if i % 2 == 0 else list(reversed(servers))):
                if s.proc.poll() is not None:
                    raise ServerDied(s)
                sampler = RssSampler(s) if rss else None
                with CpuMeter(servers, s) as cpu:
                    if sampler:
                        with sampler:
                            r = load(s)
                    else:
                        r = load(s)
                r.server_cpu_s, r.foreign_pct = cpu.server_cpu_s, cpu.foreign_pct
                if s.proc.poll() is not None:
                    raise ServerDied(s)
                into.setdefault(s.name, []).append(r)
                if sampler:
                    prev = res.rss_peak.get(s.name)
                    if prev is None or sampler.peak_rss > prev.peak_rss:
                        res.rss_peak[s.name] = sampler
                fig = (f"{r.rps:8.0f} req/s  p50 {r.p50_us / 1000:.2f} ms  "
                       f"p99 {r.p99_us / 1000:.2f} ms" if label == ".info"
                       else f"{r.mbps:6.0f} MB/s ({r.requests} zips)")
                extra = f"  peak RSS {sampler.peak_rss / 1024:.1f} MiB" if sampler else ""
                errs = f"  ERRORS {r.errors}" if r.error_count else ""
                log(f"{label:7} {i + 1}/{plan.runs} {s.name:8} {fig}  server CPU "
                    f"{r.server_cpu_s:.1f}s  other load {r.foreign_pct:.0f}%{extra}{errs}")

    snap("after start + validation")
    log("warm-up: 2 s of .info load per server")
    for s in servers:
        info_run(s, 2)

    series(".info", res.info, lambda s: info_run(s, plan.info_secs))
    snap("after .info load")
    series("zip×1", res.zip1, lambda s: zip_run(s, 1, plan.zip1_secs))
    snap("after 1-conn zip")
    series(f"zip×{plan.zip_conns}", res.zip32, lambda s: zip_run(s, plan.zip_conns,
                                                                plan.zip32_secs), rss=True)
    snap(f"after {plan.zip_conns}-conn zip")
    time.sleep(2)
    snap("2 s idle later")


# ---------------------------------------------------------------------------
# Report


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fmt_ratio(m: float | None, n: float | None) -> str:
    if m is None or n is None or n == 0:
        return "n/a"
    return f"{m / n:.2f}×"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "**MISS**")


def report(res: Results | None, plan: Plan, tree: Tree, args, notes: list[str],
           modgate_desc: str, modgate_status: str) -> str:
    def med(kind: dict[str, list[WrkResult]], name: str, attr: str) -> float | None:
        runs = kind.get(name) if kind else None
        return median([getattr(r, attr) for r in runs]) if runs else None

    def num(x: float | None, f: str) -> str:
        return "—" if x is None else format(x, f)

    rows = []
    gp = res is not None and bool(res.info.get("goproxy"))
    if res is not None:
        m_rps, n_rps = med(res.info, "modgate", "rps"), med(res.info, "nginx", "rps")
        ok = None if m_rps is None or n_rps is None else m_rps >= TARGET_INFO_RATIO * n_rps
        g_rps = med(res.info, "goproxy", "rps")
        rows.append([f".info req/s ({plan.info_conns} conns)", num(m_rps, ".0f"), num(n_rps, ".0f"),
                     fmt_ratio(m_rps, n_rps), f"≥ {TARGET_INFO_RATIO}× nginx", verdict(ok),
                     num(g_rps, ".0f"), fmt_ratio(m_rps, g_rps)])
        for p in ("p50", "p99"):
            mv = med(res.info, "modgate", f"{p}_us")
            nv = med(res.info, "nginx", f"{p}_us")
            gv = med(res.info, "goproxy", f"{p}_us")
            rows.append([f".info latency {p} (ms)", num(mv and mv / 1000, ".2f"),
                         num(nv and nv / 1000, ".2f"), fmt_ratio(mv, nv), "—", "info",
                         num(gv and gv / 1000, ".2f"), fmt_ratio(mv, gv)])
        for label, kind, conns in (("1 conn", res.zip1, 1), (f"{plan.zip_conns} conns", res.zip32,
                                                             plan.zip_conns)):
            mv, nv = med(kind, "modgate", "mbps"), med(kind, "nginx", "mbps")
            gv = med(kind, "goproxy", "mbps")
            ok = None if mv is None or nv is None else mv >= TARGET_MBPS_RATIO * nv
            rows.append([f"100 MB zip MB/s ({label})", num(mv, ".0f"), num(nv, ".0f"),
                         fmt_ratio(mv, nv), f"≥ {TARGET_MBPS_RATIO}× nginx", verdict(ok),
                         num(gv, ".0f"), fmt_ratio(mv, gv)])
        # CPU cost per unit of work: less sensitive to other load than throughput.
        cost = {}
        for name in ("modgate", "nginx", "goproxy"):
            runs = res.info.get(name)
            cost[("info", name)] = (median([r.server_cpu_s * 1e6 / max(1, r.requests) for r in runs])
                                    if runs else None)
            runs = res.zip32.get(name)
            cost[("zip", name)] = (median([r.server_cpu_s / max(1e-9, r.bytes / 1e9) for r in runs])
                                   if runs else None)
        rows.append(["server CPU µs per .info", num(cost[("info", "modgate")], ".1f"),
                     num(cost[("info", "nginx")], ".1f"),
                     fmt_ratio(cost[("info", "modgate")], cost[("info", "nginx")]), "—", "info",
                     num(cost[("info", "goproxy")], ".1f"),
                     fmt_ratio(cost[("info", "modgate")], cost[("info", "goproxy")])])
        rows.append([f"server CPU s per GB of zip ({plan.zip_conns} conns)",
                     num(cost[("zip", "modgate")], ".2f"), num(cost[("zip", "nginx")], ".2f"),
                     fmt_ratio(cost[("zip", "modgate")], cost[("zip", "nginx")]), "—", "info",
                     num(cost[("zip", "goproxy")], ".2f"),
                     fmt_ratio(cost[("zip", "modgate")], cost[("zip", "goproxy")])])
        hwm = {}
        for name in ("modgate", "nginx", "goproxy"):
            snaps = res.mem.get(name)
            sampled = res.rss_peak[name].peak_rss if name in res.rss_peak else 0
            hwm[name] = (max([sampled] + [s.get("VmHWM", 0) for _st, s in snaps]) / 1024
                         if snaps else None)
        ok = None if hwm["modgate"] is None else hwm["modgate"] < TARGET_RSS_MIB
        rows.append([f"peak RSS, VmHWM (MiB), {plan.zip_conns}× zip",
                     num(hwm["modgate"], ".1f"), num(hwm["nginx"], ".1f"),
                     fmt_ratio(hwm["modgate"], hwm["nginx"]), f"modgate < {TARGET_RSS_MIB} MiB",
                     verdict(ok), num(hwm["goproxy"], ".1f"),
                     fmt_ratio(hwm["modgate"], hwm["goproxy"])])
        if not gp:
            rows = [r[:6] for r in rows]

    out = [f"# modgate vs nginx{' and goproxy' if gp else ''}: warm-tree benchmark", ""]
    out.append(f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; command: `bench/run "
               f"{' '.join(args.argv)}`".rstrip() + "")
    out.append(f"- modgate: {modgate_desc} — **{modgate_status}**")
    out.append(f"- nginx {tool_version([which('nginx') or 'nginx', '-v'])}: "
               f"`worker_processes auto` ({os.cpu_count()}), sendfile on, access_log off")
    zc = ("the harness's downloader (one thread per connection, keep-alive, 1 MiB reads)"
          if plan.zip_client == "py" else f"wrk, {plan.wrk_threads} threads")
    out.append(f"- load: {plan.runs} run(s) per metric, median shown. `.info`: "
               f"{tool_version(['wrk', '-v'])}, {plan.wrk_threads} threads, "
               f"{plan.info_conns} conns, {plan.info_secs:g} s, rotating over "
               f"{len(tree.info_paths)} distinct `.info` URLs. Zip: {zc}, "
               f"{plan.zip1_secs:g} s × 1 conn and {plan.zip32_secs:g} s × {plan.zip_conns} "
               f"conns, all on one {tree.big_zip_size / MIB:.0f} MiB stored zip")
    cpu = "?"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    nice = f", everything at niceness {args.nice}" if args.nice else ""
    pin = (f"servers pinned to CPU {plan.server_cpus}, wrk to CPU {plan.wrk_cpus}"
           if plan.server_cpus else "no pinning: servers and wrk share all CPUs") + nice
    out.append(f"- machine: {os.cpu_count()} CPUs ({cpu}), {platform.release()}; "
               f"**the load generator runs on the same CPUs as the server** ({pin}), so "
               f"absolute figures are lower than on separate machines; the ratio is the point")
    out.append("")
    if gp:
        out.append("| metric | modgate | nginx | ratio | target | verdict | goproxy | "
                   "modgate / goproxy |")
        out.append("|---|---:|---:|---:|---|---|---:|---:|")
    else:
        out.append("| metric | modgate | nginx | ratio | target | verdict |")
        out.append("|---|---:|---:|---:|---|---|")
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    out.append("")
    if res is not None and res.info.get(BASELINE):
        out.append(f"Against `{BASELINE}` (`--baseline-bin`), measured in the same rotation: "
                   "a change must keep modgate's speed (target ≥ 0.97×).")
        out.append("")
        out.append("| metric | modgate | baseline | modgate / baseline | target | verdict |")
        out.append("|---|---:|---:|---:|---|---|")
        for label, kind, attr in ((f".info req/s ({plan.info_conns} conns)", res.info, "rps"),
                                  ("100 MB zip MB/s (1 conn)", res.zip1, "mbps"),
                                  (f"100 MB zip MB/s ({plan.zip_conns} conns)", res.zip32,
                                   "mbps")):
            mv, bv = med(kind, "modgate", attr), med(kind, BASELINE, attr)
            ok = None if mv is None or bv is None else mv >= 0.97 * bv
            out.append(f"| {label} | {num(mv, '.0f')} | {num(bv, '.0f')} | {fmt_ratio(mv, bv)} "
                       f"| ≥ 0.97× | {verdict(ok)} |")
        out.append("")
    out.append("MB = 10⁶ bytes of zip body per second of run time (unfinished downloads "
               "count); latency = wrk's per-request time from send to last byte; ratio = modgate / nginx (for latency "
               "and RSS lower is better). nginx RSS is the sum over master + workers.")
    if notes:
        out.append("")
        out.append("## Notes")
        out += [f"- {n}" for n in notes]
    if res is not None:
        out.append("")
        out.append("## Raw runs")
        out.append("Each cell: figure (server CPU seconds, % of the machine used by other "
                   "processes during the run).")
        out.append("")
        out.append("| metric | server | runs |")
        out.append("|---|---|---|")
        for label, kind, attr, f in ((".info req/s", res.info, "rps", ".0f"),
                                     (".info p99 ms", res.info, "p99_us", None),
                                     ("zip MB/s ×1", res.zip1, "mbps", ".0f"),
                                     (f"zip MB/s ×{plan.zip_conns}", res.zip32, "mbps", ".0f")):
            for name, runs in kind.items():
                vals = [(format(getattr(r, attr), f) if f else f"{getattr(r, attr) / 1000:.2f}")
                        + f" ({r.server_cpu_s:.1f}s, {r.foreign_pct:.0f}%)" for r in runs]
                errs = sum(r.error_count for r in runs)
                out.append(f"| {label} | {name} | {', '.join(vals)}"
                           + (f" (**{errs} errors**)" if errs else "") + " |")
        out.append("")
        out.append("## Memory timeline (MiB, summed over the server's processes)")
        out.append("| server | stage | VmRSS | RssAnon | RssFile | VmHWM | threads |")
        out.append("|---|---|---:|---:|---:|---:|---:|")
        for name, snaps in res.mem.items():
            for stage, s in snaps:
                out.append(f"| {name} | {stage} | {s.get('VmRSS', 0) / 1024:.1f} | "
                           f"{s.get('RssAnon', 0) / 1024:.1f} | {s.get('RssFile', 0) / 1024:.1f} | "
                           f"{s.get('VmHWM', 0) / 1024:.1f} | {s.get('Threads', 0)} |")
        for name, sm in res.rss_peak.items():
            out.append(f"| {name} | sampled peak during {plan.zip_conns}× zip "
                       f"({sm.samples} samples / 50 ms) | {sm.peak_rss / 1024:.1f} | "
                       f"{sm.peak_anon / 1024:.1f} | | | |")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="~1 minute smoke run (1 × 3 s per metric)")
    ap.add_argument("--out", type=Path, help="markdown report path (default bench/results.md)")
    ap.add_argument("--runs", type=int, help="runs per metric (default 3, quick 1)")
    ap.add_argument("--seconds", type=int, help="seconds per run (default 10, quick 3)")
    ap.add_argument("--modgate-bin", type=Path, help="use this binary instead of cargo build")
    ap.add_argument("--nginx-only", action="store_true", help="skip modgate (harness check)")
    ap.add_argument("--tree", type=Path, help="reuse (or create) the module tree in this dir")
    ap.add_argument("--small", type=int, default=200, help="number of small module versions")
    ap.add_argument("--big-mib", type=int, default=100, help="size of the big zip's data, MiB")
    ap.add_argument("--pin", choices=("none", "split"), default="none",
                    help="none: everything shares all CPUs (default); split: servers on CPU 0, "
                         "wrk on CPU 1")
    ap.add_argument("--zip-client", choices=("py", "wrk"), default="py",
                    help="zip downloader: py = threads with 1 MiB reads (default), wrk")
    ap.add_argument("--wait-quiet", type=float,
                    help="wait up to this many seconds for the machine to be < 15%% busy before "
                         "measuring (default 30, quick 0)")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the servers and the load at this niceness (e.g. -10, needs root) "
                         "so other work on a shared machine disturbs the runs less")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (tree, configs, logs)")
    ap.add_argument("--goproxy-bin", type=Path,
                    help="also measure this `goproxy` binary, serving the tree as its cache")
    ap.add_argument("--baseline-bin", type=Path,
                    help="also measure this modgate build (e.g. main before a change) as "
                         "\"modgate (baseline)\"")
    args = ap.parse_args()
    args.argv = sys.argv[1:]

    if args.wait_quiet is None:
        args.wait_quiet = 0 if args.quick else 30
    runs = args.runs or (1 if args.quick else 3)
    secs = args.seconds or (3 if args.quick else 10)
    plan = Plan(runs=runs, info_secs=secs, zip1_secs=secs, zip32_secs=secs)
    plan.zip_client = args.zip_client
    if args.nice:
        # Set before any thread or child exists: both servers, wrk and the downloader
        # threads inherit it, so the comparison stays fair.
        try:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
            # The harness shares its autogroup with the caller's shell: restore it at exit.
            own = Path("/proc/self/autogroup")
            if own.exists():
                old = own.read_text().split("nice")[-1].strip()
                atexit.register(lambda: own.write_text(old))
            set_autogroup_nice(os.getpid(), args.nice)
        except OSError as e:
            log(f"cannot set niceness {args.nice}: {e}")
            return 1
    if args.pin == "split":
        plan.server_cpus, plan.wrk_cpus, plan.wrk_threads = "0", "1", 1
        # The harness itself (zip downloader threads, RSS sampler) is load too.
        os.sched_setaffinity(0, {1})
    root = repo_root()
    out_path = args.out or (root / "bench" / "results.md")

    ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="modgate-bench-"))
    os.chmod(work, 0o755)
    log(f"work dir {work}")
    servers: list[Server] = []
    notes: list[str] = []
    modgate_desc = git_describe(root)
    modgate_status = "skipped (--nginx-only)" if args.nginx_only else "measured"
    exit_code = 0
    res = None
    tree = None

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        binary = None
        if not args.nginx_only:
            try:
                binary = args.modgate_bin or build_modgate(root)
            except ModgateError as e:
                modgate_status, exit_code = "FAILED to build", 2
                notes.append(f"modgate build failed: `{tail(str(e), 3)}`")
                log(str(e))

        if args.tree and (args.tree / MODULE_PREFIX).is_dir():
            tree = load_tree(args.tree.resolve())
            log(f"reusing tree at {tree.root}")
        else:
            tree_root = (args.tree or work / "tree").resolve()
            tree_root.mkdir(parents=True, exist_ok=True)
            os.chmod(tree_root, 0o755)
            tree = make_tree(tree_root, args.small, args.big_mib)
        warm_page_cache(tree.root)

        servers.append(start_nginx(tree, work, plan.server_cpus))
        log(f"nginx up at {servers[-1].base} (pids {servers[-1].pids()})")
        problems = validate(servers[-1], tree)
        if problems:
            raise HarnessError("nginx does not serve the tree correctly:\n" + "\n".join(problems))

        if binary is not None:
            try:
                srv = start_modgate(binary, tree, work, plan.server_cpus)
                servers.append(srv)
                log(f"modgate up at {srv.base} (pid {srv.proc.pid})")
                problems = validate(srv, tree)
                if problems:
                    raise ModgateError("modgate does not serve the tree byte-for-byte:\n"
                                       + "\n".join(problems))
            except ModgateError as e:
                log(str(e))
                modgate_status, exit_code = "FAILED (not measured)", 2
                notes.append("modgate: " + str(e).replace("\n", " / ")[:600])
                for s in [s for s in servers if s.name == "modgate"]:
                    s.stop()
                    servers.remove(s)

        if args.goproxy_bin:
            srv = start_goproxy(args.goproxy_bin, tree, work, plan.server_cpus)
            servers.append(srv)
            log(f"goproxy up at {srv.base} (pid {srv.proc.pid})")
            problems = validate(srv, tree, check_list=False)
            if problems:
                raise HarnessError("goproxy does not serve the tree byte-for-byte:\n"
                                   + "\n".join(problems))

        if args.baseline_bin:
            srv = start_modgate(args.baseline_bin, tree, work / "baseline", plan.server_cpus)
            srv.name = BASELINE
            servers.append(srv)
            log(f"modgate (baseline) up at {srv.base} (pid {srv.proc.pid})")
            problems = validate(srv, tree)
            if problems:
                raise HarnessError("the baseline modgate does not serve the tree:\n"
                                   + "\n".join(problems))

        if args.wait_quiet > 0:
            busy = wait_quiet(args.wait_quiet)
            log(f"machine {busy:.0f}% busy before the measurements")
        t0 = time.monotonic()
        res = Results()
        try:
            measure(servers, tree, plan, work, res)
        except ServerDied as e:
            log(str(e))
            notes.append(f"**{e}** — measuring stopped there; figures below are partial")
            if e.srv.name != "modgate":
                raise HarnessError(str(e)) from None
            modgate_status, exit_code = "DIED during the bench", 2
        log(f"measurements took {time.monotonic() - t0:.0f}s")
        foreign = [r.foreign_pct for kind in (res.info, res.zip1, res.zip32)
                   for runs in kind.values() for r in runs]
        if foreign and median(foreign) > 10:
            notes.append(f"**the machine was busy with other work** during the runs (median "
                         f"{median(foreign):.0f}% of its CPU, max {max(foreign):.0f}%; some of "
                         f"that only fills cycles a run leaves idle, e.g. with 1 connection): "
                         f"absolute figures are depressed and ratios noisy; the CPU-cost rows "
                         f"hold up better. Rerun on a quiet machine (or with `--nice -10`) for "
                         f"figures to quote.")
        for name, kind in (("info", res.info), ("zip×1", res.zip1), ("zip×N", res.zip32)):
            for srv_name, runs in kind.items():
                errs = [r.errors for r in runs if r.error_count]
                if errs:
                    notes.append(f"{srv_name} {name}: the client saw errors {errs} — "
                                 f"figures suspect")
    except HarnessError as e:
        log(f"HARNESS FAILURE: {e}")
        notes.append(f"harness failure: {str(e).splitlines()[0]}")
        exit_code = 1
    except KeyboardInterrupt:
        log("interrupted")
        exit_code = 1
    finally:
        for s in servers:
            s.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    if tree is not None:
        md = report(res, plan, tree, args, notes, modgate_desc, modgate_status)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(md)
        print(md)
        log(f"wrote {out_path}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
