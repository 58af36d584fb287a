#!/usr/bin/env python3
"""`wasmoci push`/`pull` vs `skopeo copy`, oras 1.2 and oras-py, on a fresh local registry.

Artifacts of 1 KiB, 10 MiB and 256 MiB (a core module whose data segment holds random
bytes, stored with `wasmoci build --module` in an OCI layout) are pushed to and pulled from
Debian's docker-registry on 127.0.0.1, by each tool, several runs each (a fresh repository
or destination every run). Prints median wall time, client CPU and peak RSS per tool and the
ratios, and checks that a re-push of identical content uploads 0 blob bytes. `mount`: a
second push into a new repository of the same registry (wasmoci from the store it pulled
into, skopeo from the layout it pushed), which both should do by mounting. Goals (issue
"Registry client"): >= 1.25x faster than the fastest peer at 256 MiB for push and pull;
client peak RSS <= 64 MiB for a 256 MiB blob; (issue "Performance"): pull <= 0.8 client
CPU-s per GB and >= 1.5x faster than oras 1.2 at 256 MiB. The registry's own CPU time over
each tool's pushes is printed beside the client's: a push can go no faster than it.

    benches/push_pull.py [--runs N] [--sizes 1KiB,10MiB,256MiB] [--no-oras]

oras 1.2 is Debian trixie's `oras` package, unpacked into `target/tools/oras-1.2` by
`.ci/debian-tool` (as the CI harness unpacks containerd); it copies between the registry
and an OCI layout (`oras cp`), as skopeo and wasmoci do. oras-py is installed once into a
virtualenv under `$WASMOCI_BENCH_CACHE` (default `~/.cache/wasmoci-bench`); `--no-oras`
leaves both out. Needs docker-registry and skopeo
(`.ci/install`). Numbers are printed, not asserted.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("WASMOCI_BENCH_CACHE", Path.home() / ".cache" / "wasmoci-bench"))


def leb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def module_with(payload: bytes) -> bytes:
    pages = max(1, -(-len(payload) // 65536))
    memory = b"\x01" + b"\x00" + leb(pages)
    segment = b"\x00" + b"\x41\x00\x0b" + leb(len(payload)) + payload
    data = b"\x01" + segment
    section = lambda i, body: bytes([i]) + leb(len(body)) + body
    return b"\0asm\x01\0\0\0" + section(5, memory) + section(11, data)


def parse_size(text: str) -> int:
    for unit, scale in (("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30)):
        if text.endswith(unit):
            return int(text[: -len(unit)]) * scale
    return int(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(argv, env=None):
    """(wall seconds, CPU seconds, peak RSS MiB) of one run, from GNU time (a child's
    `ru_maxrss` seen from Python would include Python's own pages copied at fork)."""
    with tempfile.NamedTemporaryFile("r") as stats:
        done = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", stats.name, *map(str, argv)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        if done.returncode != 0:
            raise SystemExit(f"{argv[0]} failed: {done.stderr.decode()}")
        wall, user, system, rss_kib = stats.read().split()[-4:]
    return float(wall), float(user) + float(system), int(rss_kib) / 1024


def oras() -> Path | None:
    venv = CACHE / "oras-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"installing oras-py into {venv}", file=sys.stderr)
        try:
            sh = lambda *a: subprocess.run([str(x) for x in a], check=True, stdout=subprocess.DEVNULL)
            sh(sys.executable, "-m", "venv", venv)
            sh(python, "-m", "pip", "install", "-q", "oras")
        except subprocess.CalledProcessError:
            return None
    return python


ORAS_PUSH = """
import sys, oras.client
c = oras.client.OrasClient(hostname=sys.argv[1], insecure=True)
c.push(target=sys.argv[2], files=[sys.argv[3] + ":application/wasm"], disable_path_validation=True)
"""
ORAS_PULL = """
import sys, oras.client
c = oras.client.OrasClient(hostname=sys.argv[1], insecure=True)
c.pull(target=sys.argv[2], outdir=sys.argv[3])
"""


def process_cpu(pid: int) -> float:
    """User + system CPU seconds `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1KiB,10MiB,256MiB")
    parser.add_argument("--no-oras", action="store_true")
    args = parser.parse_args()

    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "wasmoci-cli"], cwd=ROOT, check=True)
    ours = ROOT / "target" / "release" / "wasmoci"
    py = None if args.no_oras else oras()
    oras_cli = None
    if not args.no_oras:
        subprocess.run([ROOT / ".ci" / "debian-tool", "trixie", "oras", "oras-1.2", "usr/bin/oras",
                        "version"], check=True, stdout=subprocess.DEVNULL)
        oras_cli = ROOT / "target" / "tools" / "oras-1.2" / "usr" / "bin" / "oras"
    with tempfile.TemporaryDirectory(prefix="wasmoci-bench-") as tmp:
        tmp = Path(tmp)
        port = free_port()
        addr = f"127.0.0.1:{port}"
        (tmp / "reg.yml").write_text(
            f"version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\n"
            f"storage: {{filesystem: {{rootdirectory: {tmp / 'regdata'}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: {addr}}}\n")
        registry = subprocess.Popen(["docker-registry", "serve", tmp / "reg.yml"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            env = dict(os.environ, WASMOCI_HOME=str(tmp / "home"))
            print(f"{'size':>8} {'op':5} {'tool':9} {'wall s':>8} {'cpu s':>8} {'rss MiB':>8} {'registry cpu s':>12}")
            for size_text in args.sizes.split(","):
                size = parse_size(size_text)

                def artifact(name):
                    # Fresh random content for every tool and run: no tool may skip an
                    # upload, or mount a blob another run already pushed (skopeo's blob
                    # info cache would).
                    wasm = tmp / f"{name}.wasm"
                    wasm.write_bytes(module_with(os.urandom(size)))
                    layout = tmp / f"{name}-layout"
                    subprocess.run([ours, "build", wasm, "--module", "--tag", "big:1.0.0", "--layout", layout],
                                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
                    return wasm, layout

                results = {}
                registry_cpu = {}
                layout = None

                def measure_registry(argv, env=None):
                    before = process_cpu(registry.pid)
                    result = measure(argv, env)
                    return result, process_cpu(registry.pid) - before

                def record(key, measured):
                    result, cpu = measured
                    results.setdefault(key, []).append(result)
                    registry_cpu.setdefault(key, []).append(cpu)

                for run in range(args.runs):
                    repo = f"{addr}/bench{size}/r{run}"
                    _, layout = artifact(f"w-{size}-{run}")
                    record(("push", "wasmoci"), measure_registry(
                        [ours, "push", f"oci:{layout}:big:1.0.0", f"{repo}-w:1", "--quiet"], env))
                    _, skopeo_layout = artifact(f"s-{size}-{run}")
                    record(("push", "skopeo"), measure_registry(
                        ["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                         f"oci:{skopeo_layout}:big:1.0.0", f"docker://{repo}-s:1"]))
                    if oras_cli:
                        _, oras_layout = artifact(f"oc-{size}-{run}")
                        # By digest: oras reads `PATH:TAG` at the last colon, and the tag
                        # holds one.
                        index = json.loads((oras_layout / "index.json").read_text())
                        manifest = index["manifests"][0]["digest"]
                        record(("push", "oras"), measure_registry(
                            [oras_cli, "cp", "--from-oci-layout", f"{oras_layout}@{manifest}",
                             "--to-plain-http", f"{repo}-oc:1"]))
                    if py:
                        oras_wasm, _ = artifact(f"o-{size}-{run}")
                        record(("push", "oras-py"), measure_registry(
                            [py, "-c", ORAS_PUSH, addr, f"{repo}-o:1", oras_wasm]))
                    home = tmp / f"pull-home-{size}-{run}"
                    record(("pull", "wasmoci"), measure_registry(
                        [ours, "pull", f"{repo}-w:1", "--quiet"], dict(env, WASMOCI_HOME=str(home))))
                    record(("pull", "skopeo"), measure_registry(
                        ["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                         f"docker://{repo}-w:1", f"oci:{tmp / f'skopeo-{size}-{run}'}:x"]))
                    if oras_cli:
                        record(("pull", "oras"), measure_registry(
                            [oras_cli, "cp", "--from-plain-http", f"{repo}-w:1",
                             "--to-oci-layout", f"{tmp / f'oras-cli-{size}-{run}'}:x"]))
                    if py:
                        record(("pull", "oras-py"), measure_registry(
                            [py, "-c", ORAS_PULL, addr, f"{repo}-o:1", tmp / f"oras-{size}-{run}"]))
                    # A second push into a new repository of the same registry: wasmoci from
                    # the store it pulled into (it remembers where each blob came from),
                    # skopeo from the layout it pushed (its blob-info cache): both mount.
                    record(("mount", "wasmoci"), measure_registry(
                        [ours, "push", f"{repo}-w:1", f"{repo}-wm:1", "--quiet"],
                        dict(env, WASMOCI_HOME=str(home))))
                    record(("mount", "skopeo"), measure_registry(
                        ["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                         f"oci:{skopeo_layout}:big:1.0.0", f"docker://{repo}-sm:1"]))
                    shutil.rmtree(home, ignore_errors=True)
                for (op, tool), runs in results.items():
                    wall = statistics.median(r[0] for r in runs)
                    cpu = statistics.median(r[1] for r in runs)
                    rss = max(r[2] for r in runs)
                    served = statistics.median(registry_cpu[(op, tool)])
                    print(f"{size_text:>8} {op:5} {tool:9} {wall:8.3f} {cpu:8.3f} {rss:8.1f} {served:12.3f}")
                pull_cpu = statistics.median(r[1] for r in results[("pull", "wasmoci")])
                print(f"{size_text:>8} pull: wasmoci client CPU {pull_cpu / (size / 1e9):.2f} CPU-s per GB (goal <= 0.8 at 256 MiB)")
                if ("pull", "oras") in results:
                    oras_wall = statistics.median(r[0] for r in results[("pull", "oras")])
                    ours_wall = statistics.median(r[0] for r in results[("pull", "wasmoci")])
                    print(f"{size_text:>8} pull: wasmoci is {oras_wall / ours_wall:.2f}x as fast as oras 1.2 (goal >= 1.5x at 256 MiB)")
                for op in ("push", "pull", "mount"):
                    ours_wall = statistics.median(r[0] for r in results[(op, "wasmoci")])
                    peers = {t: statistics.median(r[0] for r in v) for (o, t), v in results.items()
                             if o == op and t != "wasmoci"}
                    best = min(peers, key=peers.get)
                    print(f"{size_text:>8} {op}: wasmoci is {peers[best] / ours_wall:.2f}x as fast as the fastest peer ({best})")
                again = subprocess.run([ours, "push", f"oci:{layout}:big:1.0.0", f"{addr}/bench{size}/r{args.runs - 1}-w:1", "--json", "--quiet"],
                                       check=True, capture_output=True, env=env).stdout
                print(f"{size_text:>8} re-push of identical content uploaded {json.loads(again)['uploaded_bytes']} blob bytes")
        finally:
            registry.terminate()
            registry.wait()


if __name__ == "__main__":
    main()
