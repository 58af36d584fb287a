#!/usr/bin/env bash
# Cold start through CRI on containerd 1.7.24: wasmoci's shim, and runwasi's
# containerd-shim-wasmtime-v1 side by side when a local copy of runwasi's source is given.
# Prints first-start and warm-start medians (N >= 20), idle shim RSS per pod, and ratios;
# then, on wasmoci's shim, the warm start of the real Python command and the idle RSS and
# PSS of 1 and 20 pods of hello (sleeping), the Python command (sleeping) and the Python
# HTTP component (serving nothing), built by componentize-py (benches/tools.py).
# Goals: warm start <= 0.5x runwasi, the Python command's within 10 ms of hello's; idle
# shim RSS <= 15 MiB per pod; marginal PSS per idle Python HTTP pod <= 5 MiB.
#
#   benches/cold_start.sh [--iterations N] [--pods N] [--runwasi DIR] [--breakdown]
#
# --breakdown runs containerd and the shims at debug level and lays each warm start out
# from the shim's timing marks and containerd's own lines (medians from CreateContainer).
#
# DIR is a checkout of github.com/containerd/runwasi (never committed here). It is built in
# release mode in place (its rust-toolchain.toml pins another toolchain: this script moves
# it aside; its workspace lists containerd-shim-wamr, whose git dependency is unreachable
# offline: this script leaves that crate out of the workspace). Building it needs
# libseccomp-dev and pkg-config (apt). Needs root (containerd), and what .ci/install
# installs. Numbers are printed, not asserted.
set -euo pipefail
cd "$(dirname "$0")/.."

iterations=20
pods=20
runwasi=""
breakdown=()
while [ $# -gt 0 ]; do
  case "$1" in
    --iterations) iterations="$2"; shift 2 ;;
    --pods) pods="$2"; shift 2 ;;
    --runwasi) runwasi="$2"; shift 2 ;;
    --breakdown) breakdown=(--breakdown); shift ;;
    *) echo "usage: $0 [--iterations N] [--pods N] [--runwasi DIR] [--breakdown]" >&2; exit 2 ;;
  esac
done

.ci/containerd-1.7
cargo build -q --release -p containerd-shim-wasmoci --bin containerd-shim-wasmoci-v1 --example cri_cold_start
peer=()
if [ -n "$runwasi" ]; then
  (
    cd "$runwasi"
    [ -f rust-toolchain.toml ] && mv rust-toolchain.toml rust-toolchain.toml.aside
    sed -i '/crates\/containerd-shim-wamr/d' Cargo.toml
    cargo build -q --release -p containerd-shim-wasmtime
  )
  peer=(--peer "runwasi=io.containerd.wasmtime.v1=$(cd "$runwasi" && pwd)/target/release/containerd-shim-wasmtime-v1")
fi
python=${WASMOCI_BENCH_CACHE:-$HOME/.cache/wasmoci-bench}/python
python3 benches/tools.py "$python" >/dev/null
target/release/examples/cri_cold_start --iterations "$iterations" --pods "$pods" \
  --python "$python" "${peer[@]}" "${breakdown[@]}"
