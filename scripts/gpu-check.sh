#!/usr/bin/env bash
# The GPU checks of the engine-speed work, as one script for a lent GPU machine:
#  1. benchmarks and per-stage profiles of `paper` (twice: the second run finds the autotune
#     results the first persisted) and `small`;
#  2. `paper` on MNIST for EPOCHS (default 2) epochs as it trains by default (the split on
#     the device): the epoch time after warm-up;
#  3. if LONG_S is set, a long `paper` run with Sabour et al.'s 2-pixel shift until the
#     script has run LONG_S seconds (the accuracy goal of the paper-scale issue), its
#     metrics.csv per epoch.
# Output goes to stdout and $OUT/log; metrics.csv files and bench JSON lines to $OUT if set.
#
# Prepare here (the working tree that travels is capped at 64 MiB): `bash scripts/gpu-kit.sh`
# (the slim binary in .gpu/, without embedded MNIST; the Vulkan loader's Debian packages in
# .gl/; MNIST in .data/mnist), then move assets/ out of the tree for the call, and back after.
# Then run there, carrying .gl, .gpu and .data/mnist:  LONG_S=500 bash scripts/gpu-check.sh
# (LONG_S counts the whole script: keep it under the call's 600 s).
# Knobs: EPOCHS, LONG_S, LONG_DECAY (0.93), SPARSECAPS_PRIMARY_CONV (conv or gather).
#
# Learnt on 2026-11-28 (H200): the whole script took 518 s of a 900 s budget with LONG_S=530.
# A warm machine keeps /tmp between calls (a run there can go on with `train --resume`), but
# a path carried by one call and not named by the next is removed there. CIFAR-10's JPEG
# copy (55 MB) and this binary (48 MB xz) do not fit in one call's 64 MiB: copy the binary to
# /tmp in a first call, then carry the data in a second call made at once (30 s idle window).
set -uo pipefail
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
exec > >(tee "$out/log") 2>&1
for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
ldconfig 2>/dev/null || true
bin=/tmp/sparsecaps
xz -d -T0 -c .gpu/sparsecaps.xz > "$bin" && chmod +x "$bin" || exit 1
# the slim build reads MNIST from this folder
export SPARSECAPS_MNIST=$PWD/.data/mnist
start=$(date +%s)
stamp() { echo "[$(($(date +%s) - start)) s] $*"; }
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null
bench() { # preset, repeat, tag
  stamp "bench $1 ($3)"
  timeout 120 "$bin" bench --preset "$1" --device wgpu --repeat "$2" --profile --json 2>&1 |
    tr '\r' '\n' | grep -v '^\s*$' | grep -v -E '^\s*(bench|profile) ' | tee -a "$out/bench.txt"
}
bench paper 9 cold
stamp "autotune cache: $(du -sh target/environment 2>/dev/null || echo none)"
bench paper 9 "autotune cache warm"
bench small 9 cold
train() { # tag, seconds, args...
  local tag=$1 secs=$2
  shift 2
  stamp "train $tag: $*"
  timeout "$secs" "$bin" train --preset paper --data mnist --device wgpu --out "/tmp/$tag" "$@" 2>&1 |
    tr '\r' '\n' | grep -v '^\s*$' | grep -v '^\[' | tail -n 8
  cp "/tmp/$tag/metrics.csv" "$out/$tag-metrics.csv" 2>/dev/null
  cat "/tmp/$tag/metrics.csv" 2>/dev/null | cut -d, -f1-7
}
train paper-epochs 200 --epochs "${EPOCHS:-2}"
# LONG_S is the script's whole budget in seconds: the long run gets what is left of it
left=$(( ${LONG_S:-0} - ($(date +%s) - start) - 15 ))
if [ -n "${LONG_S:-}" ] && [ "$left" -gt 60 ]; then
  (sleep 60; for _ in 1 2 3 4 5; do
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null; sleep 2
  done) &
  train paper-shift "$left" --epochs 200 --augment shift --lr-decay "${LONG_DECAY:-0.93}"
fi
stamp "done"
