#!/usr/bin/env bash
# The GPU checks of the engine-speed work, as one script for a lent GPU machine: benchmarks
# and per-stage profiles of the `paper` and `small` presets, then a 2-epoch `paper` run on
# MNIST (its epoch times and accuracy). Output goes to stdout; metrics.csv to $OUT if set.
#
# Prepare here (the working tree that travels is capped at 64 MiB, and a stripped binary
# with its embedded MNIST and models is ~42 MB xz-compressed):
#   mkdir -p .gpu && strip -o .gpu/sparsecaps target/release/sparsecaps && xz -6 .gpu/sparsecaps
#   (.gl/ holds the Vulkan loader's Debian packages: see the device tool's README)
#   move assets/ out of the tree for the call (it is embedded in the binary), and back after
# Then run there, carrying .gl and .gpu:  bash scripts/gpu-check.sh
# Knobs: EPOCHS (default 2), SPARSECAPS_PRIMARY_CONV (conv or gather, to compare the forms).
set -uo pipefail
for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
ldconfig 2>/dev/null || true
bin=.gpu/sparsecaps
[ -e "$bin.xz" ] && xz -d -T0 "$bin.xz"
chmod +x "$bin"
start=$(date +%s)
stamp() { echo "[$(($(date +%s) - start)) s] $*"; }
for preset in paper small; do
  stamp "bench $preset"
  timeout 120 "$bin" bench --preset "$preset" --device wgpu --repeat 9 --profile --json 2>&1 | tail -n 10
done
stamp "paper, ${EPOCHS:-2} epochs of MNIST"
timeout 400 "$bin" train --preset paper --data mnist --epochs "${EPOCHS:-2}" --device wgpu --out /tmp/gpu-run 2>&1 |
  tr '\r' '\n' | grep -v '^\s*$' | grep -v '^\[' | tail -n 12
[ -n "${OUT:-}" ] && cp /tmp/gpu-run/metrics.csv "$OUT/" 2>/dev/null
stamp done
