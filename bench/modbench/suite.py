"""bench/run: modgate against Athens, goproxy, nginx and go's file:// proxy, side by side.

Workloads (issue 4): 1 warm small artifacts (wrk), 2 warm 100 MB zip (core.py, the
synthetic tree), 3 warm `go mod download` of a real dependency graph, 4 the same cold
(proxies fill from the hermetic upstream). Workload 5 (plugins on) is a hook below.
Writes docs/benchmarks.md. See bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import http.server
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from . import core
from .core import (CpuMeter, HarnessError, ModgateError, Server, log, median, popen, tail,
                   which)

# ---------------------------------------------------------------------------
# Pinned peers and the dependency graph

GOPROXY_MODULE = "github.com/goproxy/goproxy"
GOPROXY_VERSION = "v0.26.0"     # newest release tag the module proxy served here (2026-11)
ATHENS_MODULE = "github.com/gomods/athens"
# The module proxy here refuses every Athens version (403), so Athens is built from a source
# checkout (`--athens-src DIR` or ATHENS_SRC; bench/README.md says how to get one) of this tag.
ATHENS_VERSION = "v0.18.0"

# A real project's dependency graph: a web framework, a kubernetes client, a cloud SDK,
# gRPC, OpenTelemetry, Prometheus and viper. 207 modules in `go list -m all`, 307 module
# versions whose go.mod the client reads, ~200 MB of zips.
GRAPH_REQUIRES = {
    "github.com/aws/aws-sdk-go-v2/config": "v1.27.27",
    "github.com/aws/aws-sdk-go-v2/service/s3": "v1.58.0",
    "github.com/gin-gonic/gin": "v1.10.0",
    "github.com/prometheus/client_golang": "v1.20.0",
    "github.com/spf13/viper": "v1.19.0",
    "go.opentelemetry.io/otel/sdk": "v1.28.0",
    "google.golang.org/grpc": "v1.65.0",
    "k8s.io/client-go": "v0.31.0",
}
GRAPH_IMPORTS = [
    "github.com/aws/aws-sdk-go-v2/config", "github.com/aws/aws-sdk-go-v2/service/s3",
    "github.com/gin-gonic/gin", "github.com/prometheus/client_golang/prometheus",
    "github.com/spf13/viper", "go.opentelemetry.io/otel/sdk/trace", "google.golang.org/grpc",
    "k8s.io/client-go/kubernetes",
]

# Targets (issue 4). Ratios are modgate / peer in "speed" terms: for wall times that is
# peer time / modgate time, so above 1 is always better for modgate.
# `--baseline-bin`: another modgate build measured beside this one (a change must keep its
# speed: within 3 %).
BASELINE = "modgate (baseline)"
# Workload 4 only: modgate with checksum-database verification off (`sumdb = "off"`), beside
# the default (verification on against the hermetic upstream's copy of the public database).
SUMDB_OFF = "modgate (sumdb off)"

TARGETS = {
    ("w1", BASELINE): 0.97, ("w3", BASELINE): 0.97,
    ("w1", "nginx"): 1.0, ("w1", "athens"): 3.0, ("w1", "goproxy"): 1.5,
    ("w4", "athens"): 3.0, ("w4", "goproxy"): 1.5, ("w4", SUMDB_OFF): 0.91,
    ("w3", "file://"): 1 / 1.2,
}


def cache_dir(args) -> Path:
    if args.cache:
        return args.cache.resolve()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "modgate-bench"


def go_env(**extra: str) -> dict:
    """Environment for every go command the harness runs: no toolchain switching, and
    -mod=mod so go.mod may be completed."""
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod")
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path | None = None, env: dict | None = None,
        timeout: float = 900) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise HarnessError(f"{' '.join(cmd)} failed ({p.returncode}):\n{tail(p.stderr, 15)}")
    return p


# ---------------------------------------------------------------------------
# Peers: built once with the go command into the cache dir


@dataclass
class Peer:
    name: str
    version: str
    binary: Path | None
    problem: str = ""
    how: str = "built with `go build` from the module proxy"


def build_go_peer(cache: Path, name: str, module: str, version: str, pkg: str) -> Peer:
    """`go build` of a pinned release, in a throw-away module that requires it.

    Not `go install pkg@version`: that also reads the module's version list (for the
    deprecation notice), which the module proxy here refuses for these modules. The
    build uses the machine's GOPROXY, like `go install` would."""
    out = cache / "peers" / f"{name}-{version}" / name
    if out.is_file():
        return Peer(name, version, out)
    src = cache / "peers" / f"build-{name}-{version}"
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(f"module example.com/modgate-bench-peer\n\ngo 1.22\n\n"
                                f"require {module} {version}\n")
    log(f"building {name} {version} (go build, once; cached in {out.parent})")
    # The checksum database here does not answer for these modules: skip it for the
    # peer's own module only (its dependencies are still verified).
    env = go_env(GONOSUMDB=module, GOFLAGS="-mod=mod")
    try:
        run(["go", "build", "-o", str(out), pkg], cwd=src, env=env)
    except (HarnessError, subprocess.TimeoutExpired) as e:
        return Peer(name, version, None, str(e).splitlines()[-1][:300])
    return Peer(name, version, out)


def build_athens(cache: Path, src: Path | None) -> Peer:
    """Athens from a source checkout (the module proxy refuses Athens itself): `go build
    ./cmd/proxy` with `-mod=mod` (its dependencies come through the machine's GOPROXY), once
    per checked-out commit into the cache; the version is what the binary says it is."""
    if src is None:
        cached = sorted((cache / "peers").glob("athens-src-*/athens"))
        if not cached:
            return Peer("athens", ATHENS_VERSION, None,
                        "the module proxy refuses Athens: give a checkout of its "
                        f"{ATHENS_VERSION} tag with --athens-src DIR (or ATHENS_SRC)")
        binary = cached[-1]
    else:
        src = src.resolve()
        head = run(["git", "-C", str(src), "rev-parse", "--short=12", "HEAD"]).stdout.strip()
        binary = cache / "peers" / f"athens-src-{head}" / "athens"
        if not binary.is_file():
            log(f"building Athens from {src} at {head} (go build ./cmd/proxy, once; ~3 min)")
            try:
                run(["go", "build", "-o", str(binary), "./cmd/proxy"], cwd=src,
                    env=go_env(GOFLAGS="-mod=mod"), timeout=1800)
            except (HarnessError, subprocess.TimeoutExpired) as e:
                return Peer("athens", ATHENS_VERSION, None, str(e).splitlines()[-1][:300])
            described = subprocess.run(["git", "-C", str(src), "describe", "--tags", "--always"],
                                       capture_output=True, text=True).stdout.strip()
            (binary.parent / "version").write_text(described + "\n")
    # `athens -version` names the version only when the build stamped it (ldflags); else the
    # checkout's `git describe`, kept beside the binary.
    out = subprocess.run([str(binary), "-version"], capture_output=True, text=True)
    words = (out.stdout + out.stderr).replace("\t", " ").split()
    stamped = [w.strip(",") for w in words if w.startswith(("v0.", "v1."))]
    kept = binary.parent / "version"
    version = (stamped[0] if stamped else
               kept.read_text().strip() if kept.is_file() else "(version unknown)")
    return Peer("athens", version, binary, how=f"built with `go build` from a source checkout "
                                              f"({binary.parent.name})")


def proxy_description(binary: Path, root: Path, given: bool) -> str:
    """What modgate binary is measured: the checkout's commit when the harness built it, the
    binary's own `--version` and path when `--modgate-bin` named one."""
    if not given:
        return core.git_describe(root)
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    return f"{out.stdout.strip() or '(no --version)'} from {binary}"


# ---------------------------------------------------------------------------
# The hermetic upstream


@dataclass
class Graph:
    src: Path          # the module whose graph is downloaded (go.mod, go.sum, main.go)
    tree: Path         # $GOMODCACHE/cache/download of the graph: a GOPROXY tree
    modules: int       # modules in `go list -m all`
    mods: int          # .mod files (module versions of the graph)
    zips: int
    zip_bytes: int
    urls: list[str] = field(default_factory=list)   # .info and .mod paths, for wrk


def unescape(p: str) -> str:
    """Undo the GOPROXY case escaping ("!a" -> "A")."""
    out, bang = [], False
    for c in p:
        if c == "!":
            bang = True
            continue
        out.append(c.upper() if bang else c)
        bang = False
    return "".join(out)


def build_graph(cache: Path) -> Graph:
    base = cache / "upstream-v3"
    src, modcache = base / "src", base / "modcache"
    marker = base / "complete.json"
    if not marker.exists():
        shutil.rmtree(base, ignore_errors=True)
        src.mkdir(parents=True)
        log(f"building the hermetic upstream once in {base} (downloads through $GOPROXY)")
        req = "\n".join(f"\t{m} {v}" for m, v in GRAPH_REQUIRES.items())
        (src / "go.mod").write_text(f"module example.com/modgate-bench-graph\n\ngo 1.22\n\n"
                                    f"require (\n{req}\n)\n")
        imports = "\n".join(f'\t_ "{p}"' for p in GRAPH_IMPORTS)
        (src / "main.go").write_text(f"package main\n\nimport (\n{imports}\n)\n\nfunc main() {{}}\n")
        env = go_env(GOMODCACHE=str(modcache))
        run(["go", "mod", "tidy"], cwd=src, env=env)
        run(["go", "mod", "download", "all"], cwd=src, env=env)
        n = len(run(["go", "list", "-m", "all"], cwd=src, env=env).stdout.splitlines())
        # A real proxy has the .info and .zip of every version; the go command only fetched
        # the go.mod of versions it needs for the graph alone. Download those versions
        # whole, so proxies that fetch a version whole on a .mod request (goproxy does)
        # find it. The client still downloads only what it needs.
        tree = modcache / "cache" / "download"
        missing = [m for m in tree.rglob("*.mod")
                   if "/@v/" in str(m) and not m.with_suffix(".info").exists()]
        queries = [unescape(str(m.parent.parent.relative_to(tree))) + "@" + unescape(m.stem)
                   for m in missing]
        for i in range(0, len(queries), 50):
            run(["go", "mod", "download", *queries[i:i + 50]], cwd=src, env=env)
        marker.write_text(json.dumps({"modules": n}))
    tree = modcache / "cache" / "download"
    sumdb_latest(tree)
    mods = sorted(p for p in tree.rglob("*.mod") if "/@v/" in str(p))
    zips = [p for p in tree.rglob("*.zip") if "/@v/" in str(p)]
    g = Graph(src, tree, json.loads(marker.read_text())["modules"], len(mods), len(zips),
              sum(p.stat().st_size for p in zips))
    for m in mods:
        rel = "/" + str(m.relative_to(tree))
        info = m.with_suffix(".info")
        if info.exists():
            g.urls.append(rel[:-4] + ".info")
        g.urls.append(rel)
    return g


def partial_tile(f: Path) -> bytes | None:
    """A checksum-database hash tile `…/NNN.p/W` the go command never fetched, cut from a
    wider copy of the same tile it did fetch (a tile's first W hashes never change), as the
    database itself serves any width up to its current one."""
    if not f.parent.name.endswith(".p") or not f.name.isdigit() or not f.parent.is_dir():
        return None
    want = int(f.name) * 32
    index = f.parent.name.removesuffix(".p")
    candidates = [f.parent.parent / index] + sorted(
        (p for p in f.parent.iterdir() if p.name.isdigit() and int(p.name) * 32 > want),
        key=lambda p: int(p.name))
    for c in candidates:
        if c.is_file():
            data = c.read_bytes()
            if len(data) >= want:
                return data[:want]
    return None


def sumdb_latest(tree: Path) -> None:
    """Serves `sumdb/sum.golang.org/latest`: the newest signed tree among the cached lookups
    (the go command keeps its own `latest` outside the module cache)."""
    db = tree / "sumdb" / "sum.golang.org"
    if not (db / "lookup").is_dir() or (db / "latest").exists():
        return
    best, note = -1, b""
    for f in (db / "lookup").rglob("*"):
        if not f.is_file():
            continue
        data = f.read_bytes()
        i = data.find(b"\n\n")
        if i < 0:
            continue
        signed = data[i + 2:]
        lines = signed.split(b"\n")
        if len(lines) > 2 and lines[0] == b"go.sum database tree" and lines[1].isdigit():
            if int(lines[1]) > best:
                best, note = int(lines[1]), signed
    if best >= 0:
        (db / "latest").write_bytes(note)


class Upstream:
    """The graph's tree as a plain GOPROXY, counting requests (a thread of the harness)."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.seen: set[str] = set()
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle on, the body waits for the
            # client's delayed ACK of the headers (40 ms on Linux) on every kept-alive
            # request. Real proxies (nginx, Go's net/http) set TCP_NODELAY.
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def do_GET(self):
                path = urllib.parse.unquote(self.path.split("?", 1)[0])
                kind = path.rsplit("/", 1)[-1].rsplit(".", 1)[-1] if "/@v/" in path else "other"
                if path.endswith("/@v/list"):
                    kind = "list"
                with upstream.lock:
                    upstream.counts[kind] = upstream.counts.get(kind, 0) + 1
                    if path in upstream.seen:
                        upstream.counts["repeated"] = upstream.counts.get("repeated", 0) + 1
                    upstream.seen.add(path)
                f = (upstream.root / path.lstrip("/")).resolve()
                data = None
                if (upstream.root in f.parents and not f.is_file()
                        and "/sumdb/" in path and "/tile/" in path):
                    data = partial_tile(f)
                if data is None and (upstream.root not in f.parents or not f.is_file()
                                     or f.suffix in (".lock", ".partial")):
                    body = b"not found\n"
                    self.send_response(404)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if data is None:
                    data = f.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Quiet(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass    # clients that hang up early (broken pipe) are not an error here

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def take(self) -> dict[str, int]:
        with self.lock:
            c, self.counts, self.seen = self.counts, {}, set()
        return c

    def close(self):
        self.httpd.shutdown()


# ---------------------------------------------------------------------------
# Proxies under test (cold-capable): modgate, goproxy, Athens


def wait_http(srv: Server, path: str, timeout: float, cafile: Path | None = None) -> bool:
    """Ready when the server answers anything on path (over https: trusting `cafile`)."""
    import urllib.error
    import urllib.request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            return False
        try:
            context = tls_context(cafile) if cafile else None
            with urllib.request.urlopen(srv.base + path, timeout=2, context=context):
                return True
        except urllib.error.HTTPError:
            return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    return False


def start_proxy(name: str, binary: Path, upstream: str, work: Path,
                plugins: str | None = None, tls: tuple[Path, Path] | None = None) -> Server:
    """Start proxy `name` on empty storage. For modgate, `plugins` (workload 5) is None, "auth"
    (auth-token on the route) or "router" (router-prefix choosing a named route that has
    auth-token)."""
    d = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
    port = core.free_port()
    env = dict(os.environ)
    if name.startswith("modgate"):
        conf = d / "modgate.toml"
        conf.write_text(f"""\
# Generated by bench/run.
[server]
listen = "127.0.0.1:{port}"
access_log = false
{w5_tls(tls)}
[storage.local]
plugin = "storage-fs"
config = {{ root = {json.dumps(str(d / 'storage'))} }}

[upstream.hermetic]
goproxy = "{upstream}"

{w5_routes(plugins, sumdb_off=name == SUMDB_OFF)}""")
        cmd, ready = [str(binary), "serve", "--config", str(conf)], "/healthz"
    elif name == "goproxy":
        # GOPROXY = the hermetic upstream only; the checksum DB is not proxied (offline).
        env.update(GOPROXY=upstream, GOSUMDB="off", GONOSUMDB="*", GOTOOLCHAIN="local",
                   GOMODCACHE=str(d / "gomodcache"))
        cmd = [str(binary), "server", "--address", f"127.0.0.1:{port}",
               "--cacher-dir", str(d / "storage"), "--temp-dir", str(d)]
        ready = "/"
    elif name == "athens":
        # Disk storage (its root must exist before start), sync download mode, strict
        # network mode; the `go mod download` it runs per version gets GOPROXY = the hermetic
        # upstream. ATHENS_GO_BINARY_ENV_VARS is split on ";" (EnvList.Decode in
        # pkg/config/config.go), not ",". ATHENS_GLOBAL_ENDPOINT is "not yet implemented".
        (d / "storage").mkdir()
        (d / "goget").mkdir()
        env.update(ATHENS_STORAGE_TYPE="disk", ATHENS_DISK_STORAGE_ROOT=str(d / "storage"),
                   ATHENS_PORT=f"127.0.0.1:{port}", ATHENS_DOWNLOAD_MODE="sync",
                   ATHENS_NETWORK_MODE="strict", ATHENS_GOGET_DIR=str(d / "goget"),
                   ATHENS_GOGET_WORKERS="8",
                   ATHENS_GO_BINARY_ENV_VARS=f"GOPROXY={upstream};GOSUMDB=off;GOTOOLCHAIN=local;"
                                             "GOFLAGS=-mod=mod",
                   ATHENS_LOG_LEVEL="error", GOPROXY=upstream, GOSUMDB="off")
        cmd, ready = [str(binary)], "/healthz"
    else:
        raise ValueError(name)
    log_path = d / "server.log"
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=d)
    scheme = "https" if tls else "http"
    srv = Server(name, proc, f"{scheme}://127.0.0.1:{port}", log_path)
    srv.dir = d
    if not wait_http(srv, ready, 30, tls[0] if tls else None):
        srv.stop()
        err = ModgateError if name == "modgate" else HarnessError
        raise err(f"{name} did not start:\n{tail(log_path.read_text(errors='replace'), 15)}")
    return srv


# Workload 5: the token every plugins-on client sends, and the config that checks it. Not a
# secret: it only opens the benchmark's own throw-away servers.
W5_TOKEN = "modgate-bench-token"

# The Go port of auth-token (plugins/go/auth-token, the same config and answers), built by
# workload 5 with `modgate plugin build`: the "[Go]" variants load it instead of the built-in.
w5_go_wasm: Path | None = None


def w5_tls(tls: tuple[Path, Path] | None) -> str:
    if not tls:
        return ""
    return f"tls = {{ cert = {json.dumps(str(tls[0]))}, key = {json.dumps(str(tls[1]))} }}\n"


def w5_certificate(work: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the go client sends `.netrc` credentials only
    over HTTPS), made with openssl."""
    cert, key = work / "w5-cert.pem", work / "w5-key.pem"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)])
    return cert, key


def w5_routes(plugins: str | None, sumdb_off: bool = False) -> str:
    """The modgate `[[route]]`s (and `[plugins.*]`) for a workload-5 variant."""
    plain = '[[route]]\nmatch = ["*"]\nstorage = "local"\nsources = ["hermetic"]\n'
    if sumdb_off:
        plain += 'sumdb = "off"\n'
    if plugins is None:
        return plain
    # Workload 9: warm `list`/`@latest` (kept for 10 minutes) without and with policies,
    # whose verdicts are remembered for as long.
    w9 = '[cache]\nlist_ttl = "10m"\n\n'
    if plugins == "w9-none":
        return w9 + plain
    if plugins == "w9-policies":
        return (w9 + '[plugins.cooldown]\nplugin = "policy-cooldown"\n'
                'config = { min_age = "1d" }\nlimits = { memo_ttl_ms = 600000 }\n\n'
                '[plugins.filter]\nplugin = "policy-filter"\n'
                'config = { rules = [ { modules = "example.com/never", action = "deny" } ] }\n'
                'limits = { memo_ttl_ms = 600000 }\n\n'
                + plain + 'policies = ["cooldown", "filter"]\n')
    # "-nomemo": the same plugins with `limits.memo_ttl_ms = 0`, so every request calls them
    # (what each call into the sandbox costs, without remembered answers).
    plugins, nomemo = plugins.removesuffix("-nomemo"), plugins.endswith("-nomemo")
    limits = "limits = { memo_ttl_ms = 0 }\n" if nomemo else ""
    source = 'plugin = "auth-token"'
    if plugins.startswith("go-"):
        plugins = plugins.removeprefix("go-")
        source = f"wasm = {json.dumps(str(w5_go_wasm))}"
    sha = hashlib.sha256(W5_TOKEN.encode()).hexdigest()
    tokens = (f'[plugins.tokens]\n{source}\n'
              f'config = {{ tokens = [{{ name = "bench", sha256 = "{sha}", '
              'scopes = ["read"], modules = ["*"] }] }\n' + limits + '\n')
    if plugins == "auth":
        return tokens + plain.replace('sources = ["hermetic"]\n',
                                      'sources = ["hermetic"]\nauth = ["tokens"]\n')
    if plugins.startswith("jwt-"):
        jwks, _ = w5_jwt(plugins.removeprefix("jwt-"))
        # memo off whatever the suffix: every request's token is verified.
        return ('[plugins.jwt]\nplugin = "auth-jwt"\nlimits = { memo_ttl_ms = 0 }\n'
                f'config = {{ issuers = ["bench"], audience = "modgate", jwks = {json.dumps(jwks)}, '
                'rules = [ { scopes = ["read"], modules = ["*"] } ] }\n\n'
                + plain.replace('sources = ["hermetic"]\n',
                                'sources = ["hermetic"]\nauth = ["jwt"]\n'))
    if plugins == "router":
        return (tokens + '[plugins.tenants]\nplugin = "router-prefix"\n'
                'config = { by_host = { "127.0.0.1" = "main" } }\n' + limits + '\n'
                '[[route]]\nmatch = ["*"]\nrouter = "tenants"\n\n'
                '[[route]]\nname = "main"\nstorage = "local"\nsources = ["hermetic"]\n'
                'auth = ["tokens"]\n')
    raise ValueError(plugins)


W5_JWT_TOKENS = 2000


@functools.lru_cache(maxsize=None)
def w5_jwt(alg: str) -> tuple[str, tuple[str, ...]]:
    """A throw-away signing key for `alg` (ES256 or RS256): its JWKS (JSON text) and
    W5_JWT_TOKENS distinct tokens it signed (a new `sub` and `jti` each), valid for a day."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    def uint(n: int, size: int | None = None) -> str:
        return b64(n.to_bytes(size or (n.bit_length() + 7) // 8, "big"))

    if alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
        pub = key.public_key().public_numbers()
        jwk = {"kty": "EC", "crv": "P-256", "x": uint(pub.x, 32), "y": uint(pub.y, 32)}

        def sign(data: bytes) -> bytes:
            r, s_ = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s_.to_bytes(32, "big")
    elif alg == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub = key.public_key().public_numbers()
        jwk = {"kty": "RSA", "n": uint(pub.n), "e": uint(pub.e)}

        def sign(data: bytes) -> bytes:
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise ValueError(alg)
    jwk["kid"] = f"bench-{alg.lower()}"
    header = b64(json.dumps({"alg": alg, "kid": jwk["kid"]}).encode())
    exp = int(time.time()) + 86400
    tokens = []
    for i in range(W5_JWT_TOKENS):
        claims = {"iss": "bench", "aud": "modgate", "sub": f"client-{i}", "jti": str(i),
                  "exp": exp}
        signing_input = f"{header}.{b64(json.dumps(claims).encode())}"
        tokens.append(f"{signing_input}.{b64(sign(signing_input.encode()))}")
    return json.dumps({"keys": [jwk]}), tuple(tokens)


def fill_urls(srv: Server, urls: list[str], authorization: str):
    """GET every URL once with `authorization`: fills the server's storage and fails (raises)
    if the credential is refused."""
    import urllib.request
    for u in urls:
        req = urllib.request.Request(srv.base + u, headers={"Authorization": authorization})
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()


# wrk: the URLs of workload 1 (args[1]) and, per request, the next token of args[2].
WRK_LUA_TOKENS = r"""
local paths, tokens = {}, {}
local idx, tok = 0, 0
function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  for line in io.lines(args[2]) do tokens[#tokens + 1] = line end
  idx, tok = math.random(#paths), math.random(#tokens)
end
function request()
  idx = idx % #paths + 1
  tok = tok % #tokens + 1
  return wrk.format("GET", paths[idx], {["Authorization"] = "Bearer " .. tokens[tok]})
end
""" + core.WRK_LUA_DONE

W5_JWT_VARIANTS = [("modgate+auth-jwt ES256, a new token per request", "jwt-ES256"),
                   ("modgate+auth-jwt RS256, a new token per request", "jwt-RS256")]


def workload5_jwt(servers: list[Server], binary: Path, up: Upstream, work: Path,
                  urlfile: Path, runs: int, secs: float, res: Results):
    """Workload 1 with auth-jwt checking a different token on every request (2000 tokens in
    rotation, memo off: no answer is remembered, every request pays a signature check),
    against modgate without plugins in the same rounds (issue 23)."""
    log("workload 5: auth-jwt, a new token per request (memo off)")
    script = work / "tokens.lua"
    script.write_text(WRK_LUA_TOKENS)
    plain = next(s for s in servers if s.name == "modgate")
    row = [plain]
    tokfiles = {}
    for name, plugins in W5_JWT_VARIANTS:
        _, tokens = w5_jwt(plugins.removeprefix("jwt-"))
        tokfiles[name] = work / f"w5-{plugins}.txt"
        tokfiles[name].write_text("\n".join(tokens) + "\n")
        srv = start_proxy("modgate", binary, up.url, work, plugins)
        srv.name = name
        servers.append(srv)
        row.append(srv)
        fill_urls(srv, urlfile.read_text().split(), f"Bearer {tokens[0]}")
    # The plain server ignores the header; it rotates over the first variant's tokens.
    tokfiles["modgate"] = tokfiles[W5_JWT_VARIANTS[0][0]]
    for srv in row:
        core.run_wrk(srv.base + "/", 64, 2, 2, script, [str(urlfile), str(tokfiles[srv.name])],
                     None)
    for i in range(runs):
        for srv in rotate(row, i):
            with CpuMeter(row, srv) as m:
                r = core.run_wrk(srv.base + "/", 64, 2, secs, script,
                                 [str(urlfile), str(tokfiles[srv.name])], None)
            r.server_cpu_s, r.foreign_pct = m.server_cpu_s, m.foreign_pct
            res.w5_jwt.setdefault(srv.name, []).append(r)
            log(f"  {srv.name} run {i + 1}: {r.rps:.0f} req/s p50 {r.p50_us / 1000:.2f} ms "
                f"p99 {r.p99_us / 1000:.2f} ms"
                + (f" ERRORS {r.errors}" if r.error_count else ""))


# ---------------------------------------------------------------------------
# go mod download through a proxy


@dataclass
class Download:
    secs: float
    ok: bool
    error: str = ""
    upstream: dict = field(default_factory=dict)
    foreign_pct: float = 0.0
    # CPU seconds the (first) server used during the download, its finished children included.
    server_cpu_s: float = 0.0


def go_download(graph: Graph, proxy: str, work: Path, servers: list[Server],
                extra_env: dict | None = None) -> Download:
    """`go mod download all` of the graph with an empty client cache.

    GOSUMDB=off: the run is offline and the checksum DB is not part of what is compared;
    every zip and go.mod is still checked against the graph's complete go.sum, which is
    what the go command does anyway for modules listed there (it consults the checksum DB
    only for modules missing from go.sum)."""
    # The client's module cache lives on tmpfs when there is one: unpacking ~200 modules
    # (and deleting them after) on the dev machines' disk costs more than the download.
    shm = Path("/dev/shm")
    d = Path(tempfile.mkdtemp(prefix="modgate-bench-client-",
                              dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else work))
    for f in ("go.mod", "go.sum", "main.go"):
        if not (f == "go.sum" and (extra_env or {}).get("W8_NO_GO_SUM")):
            shutil.copy(graph.src / f, d / f)
    env = go_env(GOPROXY=proxy, GOMODCACHE=str(d / "modcache"), GOSUMDB="off",
                 GONOSUMDB="", GOPRIVATE="", GONOPROXY="",
                 GOFLAGS="-mod=mod -modcacherw")   # writable: rm -rf is quick
    env.update(extra_env or {})
    meter = CpuMeter(servers, servers[0]) if servers else None
    t0 = time.monotonic()
    if meter:
        meter.__enter__()
    p = subprocess.run(["go", "mod", "download", "all"], cwd=d, env=env, capture_output=True,
                       text=True, timeout=900)
    secs = time.monotonic() - t0
    if meter:
        meter.__exit__(None, None, None)
    subprocess.run(["rm", "-rf", str(d)], check=False)
    return Download(secs, p.returncode == 0, tail(p.stderr, 6).replace("\n", " / ") if p.returncode else "",
                    foreign_pct=meter.foreign_pct if meter else 0.0,
                    server_cpu_s=meter.server_cpu_s if meter else 0.0)


# ---------------------------------------------------------------------------
# Workloads


@dataclass
class Results:
    w4: dict = field(default_factory=dict)    # proxy -> [Download]
    w4_client: dict = field(default_factory=dict)   # upstream requests of a direct client
    w3: dict = field(default_factory=dict)    # target -> [Download]
    w1: dict = field(default_factory=dict)    # server -> [WrkResult]
    w1_warm_errors: dict = field(default_factory=dict)
    w2_md: str = ""
    w5: dict = field(default_factory=dict)    # modgate variant -> [WrkResult]
    w5_calls: dict = field(default_factory=dict)   # (variant, plugin) -> (p50 s, p99 s, calls)
    w5_go: dict = field(default_factory=dict)  # modgate variant over https -> [Download]
    w5_jwt: dict = field(default_factory=dict)  # variant (a token per request) -> [WrkResult]
    w6: list = field(default_factory=list)     # isolation.Row per faulty plugin
    w7: object = None                          # s3.W7: storage-s3 against storage-fs
    w8: dict = field(default_factory=dict)    # "modgate" / "upstream (direct)" -> [Download]
    w9: dict = field(default_factory=dict)    # variant -> [WrkResult]
    notes: list = field(default_factory=list)


def rotate(xs: list, i: int) -> list:
    i %= max(1, len(xs))
    return xs[i:] + xs[:i]


def workload4(graph, up: Upstream, bins: dict, work: Path, runs: int, res: Results) -> dict:
    """Cold: each run starts each proxy on empty storage. The last run's servers stay up
    (now warm) for workloads 3 and 1."""
    log("workload 4: cold go mod download through each proxy, and straight from the upstream")
    warm: dict[str, Server] = {}
    # The go client straight at the upstream is the physical floor of a cold fill: measured
    # every run, in the rotation with the proxies, like them.
    direct = "upstream (direct)"
    names = list(bins) + [direct]
    for i in range(runs):
        for name in rotate(names, i):
            if name == direct:
                up.take()
                d = go_download(graph, up.url, work, [])
                res.w4_client = up.take()
                res.w4.setdefault(direct, []).append(d)
                if not d.ok:
                    res.notes.append(f"download straight from the upstream failed: `{d.error}`")
                log(f"  {name} run {i + 1}: {d.secs:.1f}s")
                continue
            srv = start_proxy(name, bins[name], up.url, work)
            up.take()
            d = go_download(graph, srv.base, work, [srv])
            d.upstream = up.take()
            res.w4.setdefault(name, []).append(d)
            if not d.ok:
                res.notes.append(f"cold download through {name} failed: `{d.error}`")
            log(f"  {name} run {i + 1}: {d.secs:.1f}s, upstream {requests(d.upstream)} "
                f"requests, {'ok' if d.ok else 'FAILED ' + d.error}")
            if srv.proc.poll() is not None:
                res.notes.append(f"**{name} exited during the cold download**: "
                                 f"{tail(srv.log_path.read_text(errors='replace'), 3)}")
            if i == runs - 1 and srv.proc.poll() is None and name != SUMDB_OFF:
                warm[name] = srv
            else:
                srv.stop()
                shutil.rmtree(srv.dir, ignore_errors=True)
    return warm


W9_VARIANTS = [("modgate, no policies", "w9-none"),
               ("modgate+policy-cooldown+policy-filter", "w9-policies")]


def workload9(graph, binary: Path, up: Upstream, work: Path, runs: int, secs: float,
              res: Results):
    """Warm `list` and `@latest` of every module of the graph, without and with upstream
    policies on the route (their verdicts remembered): req/s and latency with wrk."""
    import urllib.request
    modules = sorted({u.split("/@v/", 1)[0] for u in graph.urls})
    urls = [f"{m}/@v/list" for m in modules] + [f"{m}/@latest" for m in modules]
    log(f"workload 9: warm list and @latest, {len(urls)} URLs, without and with policies")
    urlfile = work / "w9-urls.txt"
    urlfile.write_text("\n".join(urls) + "\n")
    script = work / "rotate.lua"
    script.write_text(core.WRK_LUA_ROTATE)
    servers = []
    try:
        for name, plugins in W9_VARIANTS:
            srv = start_proxy("modgate", binary, up.url, work, plugins)
            srv.name = name
            servers.append(srv)
            for u in urls:      # warm: lists cached, verdicts remembered
                try:
                    with urllib.request.urlopen(srv.base + u, timeout=60) as r:
                        r.read()
                except urllib.error.HTTPError:
                    pass        # a module without a release has no @latest (404): as upstream
        wrk_rounds(servers, script, urlfile, runs, secs, res.w9, [])
    finally:
        for srv in servers:
            srv.stop()


def workload8(graph, binary: Path, up: Upstream, work: Path, runs: int, res: Results):
    """Cold, with the go command's own checksum checks on (GOSUMDB=sum.golang.org, no go.sum:
    every version is looked up), through modgate (which verifies too, and serves the client's
    lookups and tiles from the same cache) and straight at the upstream."""
    log("workload 8: cold go mod download all, client GOSUMDB on, through modgate and direct")
    db = graph.tree / "sumdb" / "sum.golang.org"
    (db / "supported").touch()
    direct = "upstream (direct)"
    for i in range(runs):
        for name in rotate(["modgate", direct], i):
            gopath = Path(tempfile.mkdtemp(prefix="modgate-bench-gopath-", dir=work))
            env = {"GOSUMDB": "sum.golang.org", "GOPATH": str(gopath), "W8_NO_GO_SUM": "1"}
            srv = None if name == direct else start_proxy("modgate", binary, up.url, work)
            up.take()
            d = go_download(graph, up.url if srv is None else srv.base, work,
                            [] if srv is None else [srv], env)
            d.upstream = up.take()
            res.w8.setdefault(name, []).append(d)
            if not d.ok:
                res.notes.append(f"workload 8 through {name} failed: `{d.error}`")
            log(f"  {name} run {i + 1}: {d.secs:.1f}s, upstream {requests(d.upstream)} "
                f"requests ({d.upstream.get('other', 0)} sumdb), {'ok' if d.ok else 'FAILED ' + d.error}")
            if srv is not None:
                srv.stop()
                shutil.rmtree(srv.dir, ignore_errors=True)
            shutil.rmtree(gopath, ignore_errors=True)


def workload3(graph, targets: dict, work: Path, runs: int, servers: list, res: Results):
    log("workload 3: warm go mod download (empty client cache)")
    names = list(targets)
    for i in range(runs):
        for name in rotate(names, i):
            d = go_download(graph, targets[name], work, servers)
            res.w3.setdefault(name, []).append(d)
            if not d.ok:
                res.notes.append(f"warm download through {name} failed: `{d.error}`")
            log(f"  {name} run {i + 1}: {d.secs:.2f}s {'ok' if d.ok else 'FAILED ' + d.error}")


def workload1(graph, servers: list[Server], work: Path, runs: int, secs: float, res: Results):
    import urllib.error
    import urllib.request
    log(f"workload 1: .info/.mod over {len(graph.urls)} URLs, wrk 64 conns")
    urlfile = work / "w1-urls.txt"
    urlfile.write_text("\n".join(graph.urls) + "\n")
    script = work / "rotate.lua"
    script.write_text(core.WRK_LUA_ROTATE)
    for srv in servers:         # warm every URL once and check it
        bad = []
        for u in graph.urls:
            try:
                with urllib.request.urlopen(srv.base + u, timeout=60) as r:
                    body = r.read()
                    if u.endswith(".mod") and body != (graph.tree / u.lstrip("/")).read_bytes():
                        bad.append(f"{u}: body differs from upstream")
            except (urllib.error.URLError, OSError) as e:
                bad.append(f"{u}: {e}")
        res.w1_warm_errors[srv.name] = bad
        if bad:
            res.notes.append(f"{srv.name}: {len(bad)} of {len(graph.urls)} workload-1 URLs "
                             f"failed when warmed, e.g. {bad[0]}")
    wrk_rounds(servers, script, urlfile, runs, secs, res.w1)


def wrk_rounds(servers: list[Server], script: Path, urlfile: Path, runs: int, secs: float,
               table: dict, extra: list[str] | None = None):
    """wrk -t2 -c64 rotating over `urlfile`: a short warm-up per server, then `runs` rounds
    in rotating server order, each run's result (with the server's CPU) appended to
    `table[server name]`."""
    for srv in servers:
        core.run_wrk(srv.base + "/", 64, 2, 2, script, [str(urlfile)], None, extra)
    for i in range(runs):
        for srv in rotate(servers, i):
            with CpuMeter(servers, srv) as m:
                r = core.run_wrk(srv.base + "/", 64, 2, secs, script, [str(urlfile)], None,
                                 extra)
            r.server_cpu_s, r.foreign_pct = m.server_cpu_s, m.foreign_pct
            table.setdefault(srv.name, []).append(r)
            log(f"  {srv.name} run {i + 1}: {r.rps:.0f} req/s p50 {r.p50_us / 1000:.2f} ms "
                f"p99 {r.p99_us / 1000:.2f} ms"
                + (f" ERRORS {r.errors}" if r.error_count else ""))


def workload2(args, binary: Path, cache: Path, work: Path, res: Results, runs: int, secs: int,
              goproxy: Path | None):
    """The warm-tree measurement of core.py (modgate, nginx and, when built, goproxy serving
    the tree as its cache), embedded."""
    log("workload 2: 100 MB zip (bench/modbench/core.py)")
    out = work / "w2.md"
    cmd = [sys.executable, "-m", "modbench.core", "--out", str(out), "--runs", str(runs),
           "--seconds", str(secs), "--modgate-bin", str(binary), "--wait-quiet", "0"]
    if goproxy:
        cmd += ["--goproxy-bin", str(goproxy)]
    if args.baseline_bin:
        cmd += ["--baseline-bin", str(args.baseline_bin.resolve())]
    if args.nice:
        cmd += ["--nice", str(args.nice)]
    p = subprocess.run(cmd, cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                       text=True)
    if out.exists():
        res.w2_md = out.read_text()
    if p.returncode != 0:
        res.notes.append(f"workload 2 exited {p.returncode}: {tail(p.stderr, 3)}")


W5_VARIANTS = [("modgate", None), ("modgate+auth-token", "auth"),
               ("modgate+auth-token+router", "router"),
               ("modgate+auth-token, memo off", "auth-nomemo"),
               ("modgate+auth-token+router, memo off", "router-nomemo"),
               ("modgate+auth-token [Go]", "go-auth"),
               ("modgate+auth-token [Go], memo off", "go-auth-nomemo")]


def tls_context(cert: Path):
    import ssl
    return ssl.create_default_context(cafile=str(cert))


def metric_value(metrics: str, family: str, plugin: str) -> float:
    """The value of a plugin's counter in modgate's /metrics (0 when absent)."""
    prefix = f'{family}{{plugin="{plugin}"}} '
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):].split()[0])
    return 0.0


def histogram_quantiles(metrics: str, family: str, plugin: str) -> tuple[float, float, int]:
    """p50 and p99 (seconds, linear within the bucket) and the count of a plugin's latency
    histogram in modgate's /metrics."""
    buckets = []
    for ln in metrics.splitlines():
        if ln.startswith(f"{family}_bucket{{") and f'plugin="{plugin}"' in ln:
            le = ln.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(ln.split()[-1])))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0

    def q(p: float) -> float:
        want, prev_le, prev_n = p * total, 0.0, 0.0
        for le, n in buckets:
            if n >= want:
                if le == float("inf"):
                    return prev_le
                return prev_le + (le - prev_le) * ((want - prev_n) / max(n - prev_n, 1e-9))
            prev_le, prev_n = le, n
        return prev_le
    return (q(0.5), q(0.99), int(total)) if total else (0.0, 0.0, 0)


def workload5(graph, binary: Path, up: Upstream, work: Path, runs: int, secs: float,
              res: Results):
    """Workload 1 against modgate with no plugins, with auth-token on the route, and with a
    router plugin choosing the route plus auth-token: req/s, latency, and each plugin's own
    call latency from modgate's metrics (issue 3 acceptance 5)."""
    import urllib.request
    log(f"workload 5: workload 1 with plugins on, {len(graph.urls)} URLs, wrk 64 conns")
    urlfile = work / "w5-urls.txt"
    urlfile.write_text("\n".join(graph.urls) + "\n")
    script = work / "rotate.lua"
    script.write_text(core.WRK_LUA_ROTATE)
    auth = ["-H", f"Authorization: Bearer {W5_TOKEN}"]
    global w5_go_wasm
    w5_go_wasm = work / "auth-token-go.wasm"
    run([str(binary), "plugin", "build", str(core.repo_root() / "plugins" / "go" / "auth-token"),
         "-o", str(w5_go_wasm)], env={**os.environ, "GOWORK": "off", "GOFLAGS": "-mod=mod"})
    servers = []
    try:
        for name, plugins in W5_VARIANTS:
            srv = start_proxy("modgate", binary, up.url, work, plugins)
            srv.name = name
            servers.append(srv)
            fill_urls(srv, graph.urls, f"Bearer {W5_TOKEN}")
        wrk_rounds(servers, script, urlfile, runs, secs, res.w5, auth)
        workload5_jwt(servers, binary, up, work, urlfile, runs, secs, res)
        # Workload 3 with auth-token: `go mod download all` over HTTPS (the go command sends
        # `.netrc` credentials only over HTTPS), warm, against the same server without plugins.
        cert, key = w5_certificate(work)
        tls_servers = []
        for name, plugins in (("modgate (https)", None), ("modgate+auth-token (https)", "auth")):
            srv = start_proxy("modgate", binary, up.url, work, plugins, (cert, key))
            srv.name = name
            tls_servers.append(srv)
            servers.append(srv)
        # `.netrc` names host:port when the URL has a port (the go command matches both).
        netrc = work / "w5-netrc"
        netrc.write_text("".join(
            f"machine {s.base.split('://', 1)[1]} login bench password {W5_TOKEN}\n"
            for s in tls_servers))
        env = {"SSL_CERT_FILE": str(cert), "NETRC": str(netrc)}
        for srv in tls_servers:      # fill
            d = go_download(graph, srv.base, work, [srv], env)
            if not d.ok:
                raise HarnessError(f"workload 5: filling {srv.name} failed: {d.error}")
        for i in range(runs):
            for srv in rotate(tls_servers, i):
                d = go_download(graph, srv.base, work, [srv], env)
                res.w5_go.setdefault(srv.name, []).append(d)
                log(f"  {srv.name} go mod download run {i + 1}: {d.secs:.2f}s "
                    f"{'ok' if d.ok else 'FAILED ' + d.error}")
        for srv in servers[1:]:
            with urllib.request.urlopen(srv.base + "/metrics", timeout=10,
                                        context=tls_context(cert)) as r:
                metrics = r.read().decode()
            for plugin in ("tokens", "tenants"):
                p50, p99, n = histogram_quantiles(
                    metrics, "modgate_plugin_call_duration_seconds", plugin)
                hits = metric_value(metrics, "modgate_plugin_memo_hits_total", plugin)
                if n or hits:
                    res.w5_calls[(srv.name, plugin)] = (p50, p99, n, hits)
    finally:
        for srv in servers:
            srv.stop()


# ---------------------------------------------------------------------------
# Report


def speed_ratio(m: list, p: list, attr: str, lower_better: bool) -> float | None:
    if not m or not p:
        return None
    mv, pv = median([getattr(x, attr) for x in m]), median([getattr(x, attr) for x in p])
    if not mv or not pv:
        return None
    return pv / mv if lower_better else mv / pv


def spread(xs: list[float], f: str) -> str:
    if not xs:
        return "—"
    if len(xs) == 1:
        return format(xs[0], f)
    return f"{format(median(xs), f)} ({format(min(xs), f)}–{format(max(xs), f)})"


def verdict(r: float | None, target: float | None) -> str:
    if target is None or r is None:
        return "info"
    return "PASS" if r >= target else "**MISS**"


def fmt_target(t: float | None, w: str, peer: str) -> str:
    if t is None:
        return "—"
    if w == "w3":
        return "modgate ≤ 1.2× file:// time"
    return f"≥ {t:g}×"


def report(args, res: Results, graph: Graph, peers: dict, modgate_desc: str, busy,
           secs: float, runs: int) -> str:
    o = ["# Benchmarks: modgate against Athens, goproxy, nginx and `file://`", ""]
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), "?")
    o.append(f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}; command: "
             f"`bench/run {' '.join(args.argv)}`".rstrip())
    o.append(f"- machine: {os.cpu_count()} CPUs ({cpu}), {platform.release()}, "
             f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; "
             "servers, load generators and the go client share the same CPUs: compare ratios, "
             "not absolute figures. "
             + ("Quiet-machine wait skipped." if busy is None else
                f"Machine {busy:.0f}% busy with other work just before the measurements."))
    o.append(f"- modgate {modgate_desc}; {core.tool_version(['go', 'version'])}; "
             f"nginx {core.tool_version([which('nginx') or 'nginx', '-v'])}; "
             f"{core.tool_version(['wrk', '-v'])}")
    for p in peers.values():
        o.append(f"- {p.name} {p.version}: " + (p.how if p.binary
                                                else f"**unavailable** ({p.problem})"))
    o.append(f"- hermetic upstream: the dependency graph of {len(GRAPH_REQUIRES)} real modules "
             f"({', '.join(GRAPH_REQUIRES)}): {graph.modules} modules in `go list -m all`, "
             f"{graph.mods} module versions (go.mod files), {graph.zips} zips "
             f"({graph.zip_bytes / 1e6:.0f} MB), served from `$GOMODCACHE/cache/download` by a "
             "threaded Python server in the harness that counts requests.")
    o.append(f"- {runs} run(s) per figure; a cell is the median (min–max of the runs).")
    o.append("")
    o.append("## Results")
    o.append("ratio = modgate / peer in speed: req/s ÷ req/s, peer time ÷ modgate time. "
             "Above 1: modgate is faster.")
    o.append("")
    o.append("| workload | metric | server | figure | ratio modgate/peer | target | verdict |")
    o.append("|---|---|---|---:|---:|---|---|")
    m1 = res.w1.get("modgate", [])
    for name, rs in res.w1.items():
        r = None if name == "modgate" else speed_ratio(m1, rs, "rps", False)
        t = TARGETS.get(("w1", name))
        o.append(f"| 1 warm .info/.mod, 64 conns | req/s | {name} | "
                 f"{spread([x.rps for x in rs], '.0f')} | {num(r)} | "
                 f"{fmt_target(t, 'w1', name) if name != 'modgate' else ''} | "
                 f"{verdict(r, t) if name != 'modgate' else ''} |")
    for name, rs in res.w1.items():
        r = None if name == "modgate" else speed_ratio(m1, rs, "p99_us", True)
        o.append(f"| 1 warm .info/.mod, 64 conns | p99 ms | {name} | "
                 f"{spread([x.p99_us / 1000 for x in rs], '.2f')} | {num(r)} | | |")
    for name, rs in res.w1.items():
        o.append(f"| 1 warm .info/.mod, 64 conns | server CPU µs/req | {name} | "
                 f"{spread([x.server_cpu_s * 1e6 / max(1, x.requests) for x in rs], '.1f')} "
                 f"| | | |")
    m3 = res.w3.get("modgate", [])
    for name, rs in res.w3.items():
        r = None if name == "modgate" else speed_ratio(m3, rs, "secs", True)
        t = TARGETS.get(("w3", name))
        o.append(f"| 3 warm `go mod download all` | wall s | {name} | "
                 f"{spread([x.secs for x in rs], '.2f')}{failed(rs)} | {num(r)} | "
                 f"{fmt_target(t, 'w3', name)} | {verdict(r, t) if name != 'modgate' else ''} |")
    m4 = res.w4.get("modgate", [])
    for name, rs in res.w4.items():
        # For the direct client the ratio is modgate's to the floor (≤ 1: what a proxy costs).
        r = None if name == "modgate" else speed_ratio(m4, rs, "secs", True)
        t = TARGETS.get(("w4", name))
        up = (requests(res.w4_client) if name == "upstream (direct)"
              else spread([float(requests(x.upstream)) for x in rs], '.0f'))
        o.append(f"| 4 cold `go mod download all` | wall s | {name} | "
                 f"{spread([x.secs for x in rs], '.2f')}{failed(rs)} | {num(r)} | "
                 f"{fmt_target(t, 'w4', name)} | {verdict(r, t) if name != 'modgate' else ''} |")
        o.append(f"| 4 cold | upstream requests | {name} | {up} | | | |")
        if name != "upstream (direct)":
            cpu = None if name == "modgate" else speed_ratio(m4, rs, "server_cpu_s", True)
            o.append(f"| 4 cold | server CPU s | {name} | "
                     f"{spread([x.server_cpu_s for x in rs], '.1f')} | {num(cpu)} | | |")
    if not any("athens" in w for w in (res.w1, res.w3, res.w4)):
        o.append("| 1, 3, 4 | all | athens | not measured: not available here (see above) "
                 "| | ≥ 3× | n/a |")
    m5 = res.w5.get("modgate", [])
    for name, rs in res.w5.items():
        # Here the ratio is variant / no plugins: the share of the throughput that is kept.
        r = None if name == "modgate" else speed_ratio(rs, m5, "rps", False)
        # The memo-off variants show what every call into the sandbox costs; the target is
        # for modgate as configured by default.
        t = None if name == "modgate" or "memo off" in name else 0.9
        o.append(f"| 5 warm .info/.mod with plugins, 64 conns | req/s | {name} | "
                 f"{spread([x.rps for x in rs], '.0f')} | "
                 f"{'' if r is None else f'{r:.2f}× of no plugins'} | "
                 f"{'' if t is None else '≥ 0.90× (≤ 10 % drop)'} | {verdict(r, t) if t else ''} |")
        # The Go port against the built-in Rust plugin, in the same rounds.
        rust = res.w5.get(name.replace(" [Go]", ""), [])
        if " [Go]" in name and rust:
            g = speed_ratio(rs, rust, "rps", False)
            goal, gt = ("≥ 0.95× (within 5 %)", 0.95) if "memo off" not in name else ("", None)
            o.append(f"| 5 warm .info/.mod with plugins, 64 conns | req/s, Go / Rust | {name} | "
                     f"| {num(g)} of the Rust plugin | {goal} | {verdict(g, gt) if gt else ''} |")
    for name, rs in res.w5.items():
        p50 = median([x.p50_us for x in rs]) / 1000
        p99 = median([x.p99_us for x in rs]) / 1000
        added = ""
        if name != "modgate" and m5:
            added = (f"{p50 - median([x.p50_us for x in m5]) / 1000:+.3f} / "
                     f"{p99 - median([x.p99_us for x in m5]) / 1000:+.3f} ms vs no plugins")
        o.append(f"| 5 warm .info/.mod with plugins, 64 conns | p50 / p99 ms | {name} | "
                 f"{p50:.2f} / {p99:.2f} | {added} | | |")
    def kept_rows(table: dict, base: str, workload: str, of: str, target: float, goal: str):
        """Rows of req/s (p50 / p99) per variant, as a share of `base`'s in the same rounds."""
        for name, rs in table.items():
            r = None if name == base else speed_ratio(rs, table.get(base, []), "rps", False)
            p50 = median([x.p50_us for x in rs]) / 1000
            p99 = median([x.p99_us for x in rs]) / 1000
            o.append(f"| {workload} | req/s (p50 / p99 ms) | {name} | "
                     f"{spread([x.rps for x in rs], '.0f')} ({p50:.2f} / {p99:.2f}) | "
                     f"{'' if r is None else f'{r:.2f}× of {of}'} | "
                     f"{'' if r is None else goal} | {verdict(r, target) if r is not None else ''} |")

    kept_rows(res.w5_jwt, "modgate",
              "5 warm .info/.mod, auth-jwt, a new token per request (memo off), 64 conns",
              "no plugins", 0.5, "≥ 0.5×")
    kept_rows(res.w9, W9_VARIANTS[0][0], "9 warm list + @latest, 64 conns", "no policies",
              0.95, "≥ 0.95× (≤ 5 % drop)")
    g5 = res.w5_go.get("modgate (https)", [])
    for name, rs in res.w5_go.items():
        r = None if name == "modgate (https)" else speed_ratio(rs, g5, "secs", True)
        o.append(f"| 5 warm `go mod download all`, https + .netrc | wall s | {name} | "
                 f"{spread([x.secs for x in rs], '.2f')}{failed(rs)} | "
                 f"{'' if r is None else f'{r:.2f}× of no plugins'} | | |")
    if not res.w5:
        o.append("| 5 plugins on | — | — | not run (`--only` without 5) | | | |")
    if res.w7 is not None:
        from . import s3
        o += s3.report_rows(res.w7)
    if res.w8:
        m8, d8 = res.w8.get("modgate", []), res.w8.get("upstream (direct)", [])
        for name, rs in res.w8.items():
            r = None if name == "modgate" else speed_ratio(m8, rs, "secs", True)
            up = ", ".join(f"{requests(x.upstream)} ({x.upstream.get('other', 0)} sumdb)"
                           for x in rs)
            o.append(f"| 8 cold `go mod download all`, client GOSUMDB on, no go.sum | wall s | "
                     f"{name} | {spread([x.secs for x in rs], '.2f')}{failed(rs)} | "
                     f"{'' if r is None else f'modgate/direct {r:.2f}×'} | ≥ 0.95 (≤ 1.05× direct) | "
                     f"upstream requests: {up} |")
    if res.w5_calls:
        o.append("")
        o.append("## Workload 5: time inside each plugin call")
        o.append("From modgate's `modgate_plugin_call_duration_seconds` histogram over all of "
                 "workload 5's requests (quantiles interpolated within buckets): the host's "
                 "whole call, instance checkout and answer checks included.")
        o.append("")
        o.append("Requests answered from a plugin's remembered answers (`memo`) call nothing "
                 "and are counted apart (`modgate_plugin_memo_hits_total`).")
        o.append("")
        o.append("| variant | plugin | calls | memo hits | p50 µs | p99 µs |")
        o.append("|---|---|---:|---:|---:|---:|")
        for (variant, plugin), (p50, p99, n, hits) in res.w5_calls.items():
            o.append(f"| {variant} | {plugin} | {n} | {hits:.0f} | "
                     f"{p50 * 1e6:.1f} | {p99 * 1e6:.1f} |")
    if res.w6:
        from . import isolation
        o += isolation.report(res.w6)
    o.append("")
    o.append("## Upstream requests by kind (cold, last run)")
    o.append("")
    o.append("| client | requests by kind |")
    o.append("|---|---|")
    o.append(f"| go client straight at the upstream | {fmt_counts(res.w4_client)} |")
    for name, rs in res.w4.items():
        if rs and rs[-1].upstream:
            o.append(f"| {name} | {fmt_counts(rs[-1].upstream)} |")
    o.append("")
    o.append("## Raw runs")
    o.append("Each cell: figure (% of the machine used by other processes during the run).")
    o.append("")
    o.append("| workload | server | runs |")
    o.append("|---|---|---|")
    for name, rs in res.w1.items():
        o.append(f"| 1 req/s | {name} | " + ", ".join(
            f"{x.rps:.0f} ({x.foreign_pct:.0f}%)" for x in rs)
            + (f" **{sum(x.error_count for x in rs)} errors**"
               if any(x.error_count for x in rs) else "") + " |")
        o.append(f"| 1 p99 ms | {name} | " + ", ".join(f"{x.p99_us / 1000:.2f}" for x in rs) + " |")
    for w, table in (("3 s", res.w3), ("4 s", res.w4)):
        for name, rs in table.items():
            o.append(f"| {w} | {name} | " + ", ".join(
                f"{x.secs:.2f} ({x.foreign_pct:.0f}%)" + ("" if x.ok else " FAILED")
                for x in rs) + " |")
    foreign = ([x.foreign_pct for rs in res.w1.values() for x in rs]
               + [x.foreign_pct for t in (res.w3, res.w4) for rs in t.values() for x in rs])
    if foreign and median(foreign) > 10:
        res.notes.append(f"**the machine was busy with other work** during the runs (median "
                         f"{median(foreign):.0f}% of its CPU, max {max(foreign):.0f}%): "
                         "figures are depressed and ratios noisy; not figures to quote.")
    if res.notes:
        o.append("")
        o.append("## Notes from this run")
        o += [f"- {n}" for n in res.notes]
    closing = Path(__file__).resolve().parent.parent / "closing-note.md"
    if closing.exists():
        o.append("")
        o.append(closing.read_text().rstrip())
    private = Path(__file__).resolve().parent.parent / "private-results.md"
    if private.exists():
        # Written by bench/private; kept when this report is rewritten.
        o.append("")
        o.append(private.read_text().rstrip())
    if res.w2_md:
        o.append("")
        o.append("## Workload 2: warm 100 MB zip (modgate vs nginx and goproxy, synthetic tree)")
        o.append("")
        o += ["#" + ln if ln.startswith("#") else ln for ln in res.w2_md.splitlines()[1:]]
    return "\n".join(o) + "\n"


def num(r: float | None) -> str:
    return "" if r is None else f"{r:.2f}×"


def failed(rs: list) -> str:
    n = sum(1 for x in rs if not x.ok)
    return f" (**{n} failed**)" if n else ""


def requests(c: dict) -> int:
    """Upstream requests in a count dict ("repeated" is a subset, not more requests)."""
    return sum(v for k, v in c.items() if k != "repeated")


def fmt_counts(c: dict) -> str:
    return f"{requests(c)}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))


# ---------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run (1 run, 3 s)")
    ap.add_argument("--out", type=Path, help="markdown report (default docs/benchmarks.md)")
    ap.add_argument("--runs", type=int, help="runs per figure (default 3, quick 1)")
    ap.add_argument("--seconds", type=int, help="seconds per wrk/zip run (default 10, quick 3)")
    ap.add_argument("--modgate-bin", type=Path, help="use this binary instead of cargo build")
    ap.add_argument("--baseline-bin", type=Path, help="also measure this modgate build (e.g. "
                    "main before a change) in workloads 1, 2, 3 and 4, as \"modgate (baseline)\"")
    ap.add_argument("--athens-src", type=Path, help="a checkout of Athens to build it from "
                    f"(its {ATHENS_VERSION} tag; default $ATHENS_SRC, else the last one built)")
    ap.add_argument("--cache", type=Path, help="peers and upstream cache "
                    "(default $XDG_CACHE_HOME/modgate-bench)")
    ap.add_argument("--only", default="1,2,3,4,5,6,7,8,9",
                    help="workloads to run (default 1,2,3,4,5,6,7)")
    ap.add_argument("--wait-quiet", type=float, help="wait up to N s for a quiet machine "
                    "(default 120, quick 0); fails (exit 3) if it never gets quiet, "
                    "unless --anyway")
    ap.add_argument("--anyway", action="store_true", help="measure even on a busy machine")
    ap.add_argument("--nice", type=int, default=0, help="passed to workload 2")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    args = ap.parse_args()
    args.argv = sys.argv[1:]
    runs = args.runs or (1 if args.quick else 3)
    secs = args.seconds or (3 if args.quick else 10)
    wait = args.wait_quiet if args.wait_quiet is not None else (0 if args.quick else 120)
    only = {w.strip() for w in args.only.split(",")}

    root = core.repo_root()
    out_path = args.out or root / "docs" / "benchmarks.md"
    core.ensure_tools()
    cache = cache_dir(args)
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="modgate-bench2-"))
    os.chmod(work, 0o755)
    log(f"work dir {work}, cache {cache}")
    res = Results()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    servers: list[Server] = []
    up = None
    code = 0
    try:
        binary = args.modgate_bin.resolve() if args.modgate_bin else core.build_modgate(root)
        peers = {
            "goproxy": build_go_peer(cache, "goproxy", GOPROXY_MODULE, GOPROXY_VERSION,
                                     f"{GOPROXY_MODULE}/cmd/goproxy"),
            "athens": build_athens(cache, args.athens_src or (
                Path(os.environ["ATHENS_SRC"]) if os.environ.get("ATHENS_SRC") else None)),
        }
        for p in peers.values():
            if not p.binary:
                log(f"{p.name} {p.version} unavailable: {p.problem}")
        graph = build_graph(cache)
        log(f"graph: {graph.modules} modules, {graph.mods} go.mod, {graph.zips} zips, "
            f"{len(graph.urls)} workload-1 URLs")
        busy = core.wait_quiet(wait) if wait else None
        if busy is not None and busy >= 15 and not args.anyway:
            raise HarnessError(f"the machine stayed {busy:.0f}% busy for {wait:g}s; "
                               "rerun later or pass --anyway")
        up = Upstream(graph.tree)
        bins = {"modgate": binary, **{n: p.binary for n, p in peers.items() if p.binary}}
        if args.baseline_bin:
            bins[BASELINE] = args.baseline_bin.resolve()
        if "4" in only:
            bins[SUMDB_OFF] = binary
        warm = {}
        if only & {"1", "3", "4"}:
            warm = workload4(graph, up, bins, work, runs if "4" in only else 1, res)
            if "4" not in only:
                res.w4.clear()
            servers = list(warm.values())
            # nginx's workers run as nobody: give them a readable (hard-linked) copy.
            ngroot = work / "upstream-tree"
            if subprocess.run(["cp", "-al", str(graph.tree), str(ngroot)]).returncode:
                shutil.rmtree(ngroot, ignore_errors=True)
                shutil.copytree(graph.tree, ngroot)
            subprocess.run(["chmod", "-R", "a+rX", str(ngroot)], check=False)
            ng = core.start_nginx(SimpleNamespace(root=ngroot), work, None)
            servers.append(ng)
        if "3" in only:
            targets = {s.name: s.base for s in servers}
            targets["file://"] = "file://" + str(graph.tree)
            workload3(graph, targets, work, runs, servers, res)
        if "1" in only:
            workload1(graph, servers, work, runs, secs, res)
        for s in servers:
            s.stop()
        servers = []
        if "5" in only:
            workload5(graph, binary, up, work, runs, secs, res)
        if "6" in only:
            from . import isolation
            res.w6 = isolation.workload6(graph, binary, up, work, runs, secs, root)
        if "7" in only:
            from . import s3
            res.w7 = s3.workload7(binary, work, runs, secs)
        if "8" in only:
            workload8(graph, binary, up, work, runs, res)
        if "9" in only:
            workload9(graph, binary, up, work, runs, secs, res)
        if "2" in only:
            workload2(args, binary, cache, work, res, runs, secs, peers["goproxy"].binary)
        md = report(args, res, graph, peers,
                    proxy_description(binary, root, args.modgate_bin is not None), busy,
                    secs, runs)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(md)
        print(md)
        log(f"wrote {out_path}")
    except ModgateError as e:
        log(f"modgate failed: {e}")
        code = 2
    except HarnessError as e:
        log(f"HARNESS FAILURE: {e}")
        code = 1
    except KeyboardInterrupt:
        log("interrupted")
        code = 1
    finally:
        for s in servers:
            s.stop()
        if up:
            up.close()
        if args.keep:
            log(f"kept {work}")
        else:
            subprocess.run(["chmod", "-R", "u+w", str(work)], check=False)
            shutil.rmtree(work, ignore_errors=True)
    return code
