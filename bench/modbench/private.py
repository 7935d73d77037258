"""bench/private: module zips for private modules, modgate against golang.org/x/mod/zip.

Creates a ~50 MB git repository, then, several times each:
  - git cold: modgate serves the first zip of v1.0.0 from a git source (a `git daemon` remote,
    fresh clone cache and fresh storage): clone + build + check + commit + send;
  - publish: `modgate publish DIR` of the same tree into fresh local storage (process wall time:
    config, zip build, h1 hashes, fsync, commit);
  - x/mod: `zip.CreateFromDir` on the same directory (bench/zipbench, built with the go command;
    x/mod comes through the go command's configured module proxy), and separately
    `dirhash.HashZip` of its result, timed inside the Go program.
Reports medians and ratios into a section of docs/benchmarks.md (and bench/private-results.md,
which bench/run embeds when it rewrites the report). See bench/README.md.
"""
import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

MODULE = "corp.example/big"
VERSION = "v1.0.0"
# Tagged on the same commit: its zip is built from an already fetched clone.
WARM_VERSION = "v1.0.1"
BEGIN = "<!-- bench/private: begin -->"
END = "<!-- bench/private: end -->"

WORDS = ("func return package import type struct interface error nil string int byte "
         "context value channel select range defer go map slice append copy len cap make "
         "new panic recover const var if else for switch case default break continue").split()


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def git(cwd: Path, *args: str) -> str:
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=str(cwd),
               GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@example.com",
               GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@example.com",
               GIT_AUTHOR_DATE="2024-01-01T00:00:00Z", GIT_COMMITTER_DATE="2024-01-01T00:00:00Z")
    return run(["git", *args], cwd=cwd, env=env).stdout.strip()


def make_tree(tree: Path, size_mb: int) -> tuple[int, int]:
    """Go-like text files (60 % of the bytes, compressible) and random blobs (40 %)."""
    rng = random.Random(42)
    tree.mkdir(parents=True)
    (tree / "go.mod").write_text(f"module {MODULE}\n\ngo 1.22\n")
    (tree / "LICENSE").write_text("bench\n")
    total, files = 0, 2
    text_bytes = size_mb * 6 // 10 << 20
    i = 0
    while total < text_bytes:
        d = tree / f"pkg{i % 40:02d}"
        d.mkdir(exist_ok=True)
        body = [f"package pkg{i % 40:02d}\n"]
        n = 0
        while n < 20_000:
            line = " ".join(rng.choice(WORDS) for _ in range(12)) + "\n"
            body.append(line)
            n += len(line)
        data = "".join(body)
        (d / f"f{i:04d}.go").write_text(data)
        total += len(data)
        files += 1
        i += 1
    blobs = tree / "testdata"
    blobs.mkdir()
    j = 0
    while total < size_mb << 20:
        data = rng.randbytes(1 << 20)
        (blobs / f"blob{j:02d}.bin").write_bytes(data)
        total += len(data)
        files += 1
        j += 1
    return files, total


def build_modgate(args) -> Path:
    if args.modgate_bin:
        return args.modgate_bin
    target = Path(os.environ.get("CARGO_TARGET_DIR", repo_root() / "target"))
    subprocess.run(["cargo", "build", "--release", "-p", "modgate"], cwd=repo_root(), check=True)
    return target / "release" / "modgate"


def build_zipbench(work: Path) -> Path:
    out = work / "zipbench"
    run(["go", "build", "-o", str(out), "."], cwd=repo_root() / "bench" / "zipbench")
    return out


def storage_config(path: Path, storage: Path, extra: str = "", port: int = 0) -> None:
    path.write_text(f"""[server]
listen = "127.0.0.1:{port}"
access_log = false

[storage.local]
plugin = "storage-fs"
config = {{ root = "{storage}" }}
{extra}""")


def wait_http(url: str, deadline: float) -> None:
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def git_cold(modgate: Path, work: Path, git_port: int) -> tuple[float, float, str]:
    """Seconds until the first zip is fully received, seconds for a second version of the
    same commit (the clone is warm: build, check, commit, send), and the h1 stored."""
    run_dir = Path(tempfile.mkdtemp(dir=work, prefix="cold-"))
    port = free_port()
    cfg = run_dir / "modgate.toml"
    storage_config(cfg, run_dir / "storage", f"""
[git]
cache_dir = "{run_dir / 'clones'}"

[[route]]
match = ["corp.example"]
storage = "local"
sources = [{{ git = "git://127.0.0.1:{git_port}/big.git", module = "{MODULE}" }}]
""", port)
    proc = subprocess.Popen([str(modgate), "serve", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/healthz", time.time() + 30)
        def fetch(version: str) -> float:
            start = time.perf_counter()
            with urllib.request.urlopen(f"{base}/{MODULE}/@v/{version}.zip", timeout=600) as r:
                while r.read(1 << 20):
                    pass
            return time.perf_counter() - start
        secs = fetch(VERSION)
        warm = fetch(WARM_VERSION)
    finally:
        proc.terminate()
        proc.wait()
    h1 = (run_dir / "storage" / MODULE / "@v" / f"{VERSION}.ziphash").read_text().strip()
    shutil.rmtree(run_dir)
    return secs, warm, h1


def git_clone(work: Path, git_port: int) -> float:
    """The same transfer with the git program: `git clone --bare`."""
    dst = work / "clone-ref.git"
    start = time.perf_counter()
    run(["git", "clone", "-q", "--bare", f"git://127.0.0.1:{git_port}/big.git", str(dst)])
    secs = time.perf_counter() - start
    shutil.rmtree(dst)
    return secs


def publish(modgate: Path, work: Path, tree: Path) -> tuple[float, str]:
    run_dir = Path(tempfile.mkdtemp(dir=work, prefix="pub-"))
    cfg = run_dir / "modgate.toml"
    storage_config(cfg, run_dir / "storage", """
[[route]]
match = ["corp.example"]
storage = "local"
""")
    start = time.perf_counter()
    run([str(modgate), "publish", str(tree), "--module", MODULE, "--version", VERSION,
         "--config", str(cfg)])
    secs = time.perf_counter() - start
    h1 = (run_dir / "storage" / MODULE / "@v" / f"{VERSION}.ziphash").read_text().strip()
    shutil.rmtree(run_dir)
    return secs, h1


def xmod(zipbench: Path, work: Path, tree: Path) -> dict:
    out = work / "xmod.zip"
    r = run([str(zipbench), "-dir", str(tree), "-module", MODULE, "-version", VERSION,
             "-out", str(out)])
    out.unlink()
    return json.loads(r.stdout)


def section(res: dict) -> str:
    med = {k: statistics.median(v) for k, v in res["times"].items()}
    spread = {k: f"{min(v):.2f}–{max(v):.2f}" for k, v in res["times"].items()}
    go = med["xmod_create"]
    go_hash = med["xmod_create"] + med["xmod_hash"]
    rows = [
        ("modgate: first zip from the git source (cold: clone, build, check, commit, send)",
         "git_cold", go),
        ("`git clone --bare` of the same remote (the transfer alone, by the git program)",
         "git_clone", None),
        ("modgate: zip of another version of the fetched clone (build, check, commit, send)",
         "git_warm", go),
        ("`modgate publish DIR` (process: build, hashes, fsync, commit)", "publish", go),
        ("x/mod `zip.CreateFromDir` (in-process, written and synced)", "xmod_create", None),
        ("x/mod `dirhash.HashZip` of that zip", "xmod_hash", None),
    ]
    o = [BEGIN, "## Private modules: zips from git and `modgate publish` vs x/mod (`bench/private`)",
         "",
         f"- date: {res['date']}; command: `bench/private {' '.join(res['argv'])}`",
         f"- machine: {os.cpu_count()} CPUs, shared with other work (load average at start "
         f"{res['load']}); compare ratios, not absolute figures.",
         f"- modgate {res['modgate']}; {res['go']}; golang.org/x/mod {res['xmod']}",
         f"- tree: {res['files']} files, {res['bytes'] / 2**20:.0f} MiB (60 % Go-like text, "
         f"40 % random blobs); one commit tagged {VERSION} and {WARM_VERSION}, served by `git daemon` on 127.0.0.1; "
         f"zip {res['zip_mb']:.1f} MiB",
         f"- {res['runs']} runs each; median (min–max) seconds. Every run checked that modgate's "
         "`h1:` equals x/mod's.",
         "",
         "| what | seconds | x/mod CreateFromDir ÷ this |",
         "|---|---|---|"]
    for label, key, ref in rows:
        ratio = f"{ref / med[key]:.2f}×" if ref else ""
        o.append(f"| {label} | {med[key]:.2f} ({spread[key]}) | {ratio} |")
    o += ["",
          f"`modgate publish` against x/mod CreateFromDir + HashZip (what a publish must "
          f"compute): {go_hash / med['publish']:.2f}×. Above 1: modgate is faster.",
          END]
    return "\n".join(o) + "\n"


def write_report(text: str, out: Path) -> None:
    (repo_root() / "bench" / "private-results.md").write_text(text)
    doc = out.read_text() if out.exists() else ""
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END + "\n", 1) if END + "\n" in rest else rest.split(END, 1)
        doc = head + text + tail
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    out.write_text(doc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size-mb", type=int, default=50)
    ap.add_argument("--modgate-bin", type=Path)
    ap.add_argument("--out", type=Path, default=repo_root() / "docs" / "benchmarks.md")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    args = ap.parse_args()

    modgate = build_modgate(args)
    work = Path(tempfile.mkdtemp(prefix="modgate-bench-private-"))
    daemon = None
    try:
        zipbench = build_zipbench(work)
        tree = work / "tree"
        files, nbytes = make_tree(tree, args.size_mb)
        git(tree, "init", "-q", "-b", "main")
        git(tree, "add", "-A")
        git(tree, "commit", "-q", "-m", "big")
        git(tree, "tag", VERSION)
        git(tree, "tag", WARM_VERSION)
        srv = work / "srv"
        srv.mkdir()
        git(work, "clone", "-q", "--bare", str(tree), str(srv / "big.git"))
        git_port = free_port()
        daemon = subprocess.Popen(["git", "daemon", "--export-all", "--listen=127.0.0.1",
                                   "--reuseaddr", f"--port={git_port}",
                                   f"--base-path={srv}", str(srv)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", git_port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

        times = {"git_cold": [], "git_clone": [], "git_warm": [], "publish": [],
                 "xmod_create": [], "xmod_hash": []}
        zip_bytes = 0
        for i in range(args.runs):
            g = xmod(zipbench, work, tree)
            times["xmod_create"].append(g["create_s"])
            times["xmod_hash"].append(g["hash_s"])
            zip_bytes = g["bytes"]
            secs, warm, h1 = git_cold(modgate, work, git_port)
            assert h1 == g["h1"], f"git zip {h1} != x/mod {g['h1']}"
            times["git_cold"].append(secs)
            times["git_warm"].append(warm)
            times["git_clone"].append(git_clone(work, git_port))
            secs, h1 = publish(modgate, work, tree)
            assert h1 == g["h1"], f"publish zip {h1} != x/mod {g['h1']}"
            times["publish"].append(secs)
            print(f"run {i + 1}: git cold {times['git_cold'][-1]:.2f}s (git clone "
                  f"{times['git_clone'][-1]:.2f}s), warm {warm:.2f}s, publish "
                  f"{times['publish'][-1]:.2f}s, x/mod create {g['create_s']:.2f}s + hash "
                  f"{g['hash_s']:.2f}s", file=sys.stderr)

        head = run(["git", "rev-parse", "--short", "HEAD"], cwd=repo_root()).stdout.strip()
        xmod_version = run(["go", "list", "-m", "-f", "{{.Version}}", "golang.org/x/mod"],
                           cwd=repo_root() / "bench" / "zipbench").stdout.strip()
        res = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "argv": sys.argv[1:],
            "load": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
            "modgate": head,
            "go": run(["go", "version"]).stdout.strip(),
            "xmod": xmod_version,
            "files": files,
            "bytes": nbytes,
            "zip_mb": zip_bytes / 2**20,
            "runs": args.runs,
            "times": times,
        }
        text = section(res)
        write_report(text, args.out)
        print(text)
    finally:
        if daemon:
            daemon.terminate()
            daemon.wait()
        if args.keep:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
