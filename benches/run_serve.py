#!/usr/bin/env python3
"""`wasmoci serve` vs `wasmtime serve`, and a warm `wasmoci run` vs `wasmtime run`.

serve: the same hello `wasi:http` component, both with the pooling allocator, the server
pinned to core 0 and `wrk` to core 1, several runs; prints requests/s and p99 latency of
each and the ratios. Goals: >= 1.0x wasmtime's requests/s, <= 1.1x its p99.

run: the hello `wasi:cli/run` command, warm (compiled artifact cached): `wasmoci run` after
`wasmoci compile`, `wasmtime run -C cache=y` after one warm-up, and `wasmtime run
--allow-precompiled` on a `wasmtime compile` output (wasmtime's best configuration). Goals:
<= 1.0x `wasmtime run` with its cache, within 1.2x of the precompiled run.

    benches/run_serve.py [--runs N] [--duration SECONDS] [--connections N]

wasmtime-cli 48.0.8 is installed once into `$WASMOCI_BENCH_CACHE` (default
`~/.cache/wasmoci-bench`) with the issue's lean features plus `compile` and `cache` (so its
cache and precompiled runs can be measured): about 7 minutes. wasmoci is built in release
mode; `wrk` comes from Debian (`apt-get install wrk`). Numbers are printed, not asserted.
"""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("WASMOCI_BENCH_CACHE", Path.home() / ".cache" / "wasmoci-bench"))
FEATURES = ("run,serve,compile,cache,cranelift,component-model,component-model-async,"
            "pooling-allocator,parallel-compilation,wat")


def sh(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, **kw)


def wasmtime() -> Path:
    root = CACHE / "wasmtime-48.0.8"
    binary = root / "bin" / "wasmtime"
    if not binary.exists():
        print(f"installing wasmtime-cli 48.0.8 into {root} (about 7 minutes)", file=sys.stderr)
        sh("cargo", "install", "--locked", "--root", root, "wasmtime-cli", "--version", "48.0.8",
           "--no-default-features", "--features", FEATURES)
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, limit: float = 30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def wrk(url: str, duration: int, connections: int):
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
        check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} failed responses")
    return rps, float(p99.group(1)) * scale


def bench_server(argv_for_port, runs, duration, connections):
    rps, p99 = [], []
    for _ in range(runs):
        port = free_port()
        server = subprocess.Popen(["taskset", "-c", "0", *map(str, argv_for_port(port))],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(port)
            url = f"http://127.0.0.1:{port}/"
            wrk(url, 1, connections)  # warm-up
            r, p = wrk(url, duration, connections)
            rps.append(r)
            p99.append(p)
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
    return statistics.median(rps), statistics.median(p99)


def wall(argv, runs, env=None):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(a) for a in argv], check=True, stdout=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--starts", type=int, default=30)
    args = parser.parse_args()

    wt = wasmtime()
    sh("cargo", "build", "--release", "--locked", "-q", "-p", "wasmoci-cli", cwd=ROOT)
    ours = ROOT / "target" / "release" / "wasmoci"
    with tempfile.TemporaryDirectory(prefix="wasmoci-bench-") as tmp:
        tmp = Path(tmp)
        sh("cargo", "run", "-q", "--locked", "-p", "wasmoci-testdata", "--example", "fixtures", "--",
           tmp / "fixtures", cwd=ROOT, stdout=subprocess.DEVNULL)
        http = tmp / "fixtures" / "http-hello.wasm"
        hello = tmp / "fixtures" / "hello.wasm"
        env = dict(os.environ, WASMOCI_HOME=str(tmp / "home"))
        os.environ["WASMOCI_HOME"] = env["WASMOCI_HOME"]

        print(f"serve: {args.runs} runs of {args.duration}s, {args.connections} connections, "
              "server on core 0, wrk on core 1, medians")
        sh(ours, "compile", http, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        o = bench_server(lambda p: [ours, "serve", http, "--listen", f"127.0.0.1:{p}"],
                         args.runs, args.duration, args.connections)
        w = bench_server(lambda p: [wt, "serve", "-O", "pooling-allocator=y", "--addr", f"127.0.0.1:{p}", http],
                         args.runs, args.duration, args.connections)
        print(f"  wasmoci serve   {o[0]:10.0f} req/s   p99 {o[1]:7.2f} ms")
        print(f"  wasmtime serve  {w[0]:10.0f} req/s   p99 {w[1]:7.2f} ms")
        print(f"  ratio: requests/s {o[0] / w[0]:.2f}x (goal >= 1.0x), p99 {o[1] / w[1]:.2f}x (goal <= 1.1x)")

        print(f"run (warm): {args.starts} starts each, median wall time")
        sh(ours, "compile", hello, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ours_run = wall([ours, "run", hello], args.starts, env)
        sh(wt, "run", "-C", "cache=y", hello, stdout=subprocess.DEVNULL)
        wt_cached = wall([wt, "run", "-C", "cache=y", hello], args.starts)
        cwasm = tmp / "hello.cwasm"
        sh(wt, "compile", hello, "-o", cwasm)
        wt_pre = wall([wt, "run", "--allow-precompiled", cwasm], args.starts)
        print(f"  wasmoci run (cache hit)            {ours_run * 1000:7.2f} ms")
        print(f"  wasmtime run -C cache=y (warm)     {wt_cached * 1000:7.2f} ms")
        print(f"  wasmtime run --allow-precompiled   {wt_pre * 1000:7.2f} ms")
        print(f"  ratio vs wasmtime's cache {ours_run / wt_cached:.2f}x (goal <= 1.0x); "
              f"vs precompiled {ours_run / wt_pre:.2f}x (goal <= 1.2x)")


if __name__ == "__main__":
    main()
