#!/usr/bin/env bash
# sparsecaps against the PyTorch CapsNet of scripts/pytorch/ on the CPU, in alternating
# rounds (this machine's speed drifts, so both sides are timed close together), then the
# app's slider (`bench --app`) and the `paper` step by stage. One JSON line per measurement.
#   PYTHON: a Python with torch (default /tmp/torch/bin/python, see scripts/pytorch/README.md)
#   BIN: the sparsecaps binary (default target/release/sparsecaps); ROUNDS (default 2)
set -u
cd "$(dirname "$0")/.." || exit 2
py=${PYTHON:-/tmp/torch/bin/python}
bin=${BIN:-target/release/sparsecaps}
ours() { "$bin" bench --preset "$1" --device cpu --repeat 5 --json "${@:2}" 2>/dev/null | grep '^{'; }
torch() { (cd scripts/pytorch && "$py" capsnet_bench.py --preset "$1" --batch 128 --repeat 5 --threads 2 2>&1 | tail -n 1); }
for round in $(seq "${ROUNDS:-2}"); do
  echo "round $round"
  echo "ours paper: $(ours paper)"
  echo "torch paper: $(torch paper)"
  echo "torch small: $(torch small)"
  echo "ours small: $(ours small --batch 128)"
done
echo "ours small app: $(ours small --app)"
echo "ours paper profile: $(ours paper --profile)"
