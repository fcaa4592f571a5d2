#!/usr/bin/env bash
# sparsecaps against the PyTorch CapsNet of scripts/pytorch/ on the CPU, in alternating
# rounds (this machine's speed drifts, so both sides are timed close together), then the
# app's slider (`bench --app`) and the `paper` step by stage. One JSON line per measurement.
# Pause any training run on the machine first (kill -STOP PID, then kill -CONT PID).
#   PYTHON: a Python with torch (default /tmp/torch/bin/python, see scripts/pytorch/README.md)
#   BIN: the sparsecaps binary (default target/release/sparsecaps); ROUNDS (default 2)
set -u
cd "$(dirname "$0")/.." || exit 2
py=${PYTHON:-/tmp/torch/bin/python}
bin=${BIN:-target/release/sparsecaps}
ours() { "$bin" bench --preset "$1" --device cpu --repeat 5 --json "${@:2}" 2>/dev/null | grep '^{'; }
torch() { (cd scripts/pytorch && "$py" capsnet_bench.py --preset "$1" --batch "${2:-128}" --repeat 5 --threads 2 2>&1 | tail -n 1); }
for round in $(seq "${ROUNDS:-2}"); do
  echo "round $round"
  echo "ours paper: $(ours paper)"
  echo "torch paper: $(torch paper)"
  echo "torch small: $(torch small)"
  echo "ours small: $(ours small --batch 128)"
  # the backbone preset at its training batch, on 28x28 grey inputs on both sides (what
  # `bench --preset` feeds it)
  echo "ours resnet-caps b64: $(ours resnet-caps --batch 64)"
  echo "torch resnet-caps b64: $(torch resnet-caps 64)"
done
echo "ours small app: $(ours small --app)"
echo "ours paper profile: $(ours paper --profile)"
