#!/usr/bin/env bash
# The paper-scale runs on a lent GPU machine, one job per device call, with the slim build
# (`--no-default-features`: no embedded MNIST or models, 22 MB xz), so that the binary, the
# data and a run's resume state travel in one call (64 MiB in all) and the results come back
# (8 files of at most 16 MiB each: bigger ones come back in 15 MiB parts, joined with `cat`).
# A lent task has 15 minutes of device time in all, machine start included: one job fits.
#
# Prepare here, in every fresh checkout (the kit is git-ignored): `bash scripts/gpu-kit.sh`
# after the full release build; then move assets/ (28 MB, tracked) out of the tree for the
# call, and back after. `CHECK=1 JOB=... bash scripts/gpu-runs.sh`, run here, checks the kit
# and the job's inputs, adds up what the call carries and prints its carry list: run it
# first, so that no device time goes to a missing file. Call with timeout_s 600.
# Jobs (DEADLINE_S: seconds the training may run, default 440, which leaves time for the
# export and two evaluations in the 600 s of a call; an H200 trains a `paper` epoch in about
# 12.5 s after a first one of about 40 s, so about 34 epochs fit):
#   JOB=fashion  carry .gl .gpu .data/fashion-mnist
#       `paper` dense on Fashion-MNIST, 2-pixel shifts (the >= 90.6% goal)
#   JOB=mnist    carry .gl .gpu .data/mnist
#       `paper` dense on MNIST with 2-pixel shifts (the 99.65% goal), to ship its model
#   The dense jobs stop at the deadline if their EPOCHS (36) have not ended; their resume
#   state (about 100 MB) cannot come back, so the model is the last finished epoch's.
#   Both models are sent, f32 (in parts) and f16, with `eval` of each there.
#   JOB=rem      carry .gl .gpu .data/mnist .run/RUN
#       goes on with the LOBSTER/REM run in .run/RUN (RUN=mnist-rem-small by default; copy
#       the run folder there, resume/ included) on the GPU until the deadline, or starts it
#       there (`small`, --recipe rem) when .run/RUN holds no model (a fresh checkout: resume
#       state is not in git); its metrics.csv then replaces the CPU run's in results/RUN
#       from epoch 1 (the same command, on another device)
#   JOB=prune    carry .gl .gpu .data/mnist .run/MODEL
#       removes SPARSITY (0.952: 95.1% of the capsules) of the primary capsules of
#       .run/MODEL (MODEL=model-f16.safetensors by default: copy the f16 file that JOB=mnist
#       sent back into .run/ as it is; it loads as it is), compacts it and trains the compact
#       model with 2-pixel shifts (lr decay 0.9, batch 128) until EPOCHS (20) or the deadline
#       (DEADLINE_S counts from the job's start here: pruning is inside it); sends it like the
#       dense jobs, with `eval` of the dense model it came from. Not yet run on a GPU; its
#       pruning step ran here on lavapipe (`paper`, 55/1152 capsules left)
#   Carry only the job's own part of .run: the REM state (25 MB) and a paper model (16 MB
#   f16) together with the rest are over 64 MiB.
# $OUT gets metrics.csv, config.json, log, the model and, for rem, the resume pair of the
# model's epoch in resume/: copy them back into results/RUN to go on later, on the next lent
# machine or here (`train --resume results/RUN --device cpu`: the run now records wgpu).
set -uo pipefail

# the paths a job's call carries (besides the tracked files)
job_carry() {
  case "${JOB:-}" in
    fashion) echo .gl .gpu .data/fashion-mnist ;;
    mnist) echo .gl .gpu .data/mnist ;;
    prune) echo .gl .gpu .data/mnist ".run/${MODEL:-model-f16.safetensors}" ;;
    rem) echo .gl .gpu .data/mnist ".run/${RUN:-mnist-rem-small}" ;;
  esac
}

# CHECK=1, here: is everything the job needs in place, and does the call fit 64 MiB?
check() {
  local paths bad=0 bytes tracked list
  paths=$(job_carry)
  [ -n "$paths" ] || { echo "JOB must be fashion, mnist, prune or rem"; return 2; }
  for p in $paths; do
    if [ -e "$p" ]; then
      continue
    elif [ "$JOB" = rem ] && [ "${p#.run/}" != "$p" ]; then
      echo "note: no $p: the REM run starts again there"
    else
      echo "missing: $p"
      bad=1
    fi
  done
  [ "$(ls .gl/*.deb 2>/dev/null | wc -l)" -ge 7 ] || { echo "missing: .gl/*.deb"; bad=1; }
  if [ -e assets ]; then
    echo "move assets/ out of the tree for the call (it is tracked and travels)"
    bad=1
  fi
  tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | awk '$2 == "total" {s += $1} END {print s + 0}')
  # shellcheck disable=SC2046 # the paths hold no spaces
  bytes=$(du -cb $(for p in $paths; do [ -e "$p" ] && echo "$p"; done) 2>/dev/null | awk '$2 == "total" {print $1}')
  echo "carried: $(((tracked + ${bytes:-0}) >> 20)) MiB of 64 (tracked files $((tracked >> 20)) MiB)"
  [ $((tracked + ${bytes:-0})) -lt $((64 << 20)) ] || bad=1
  list=$(for p in $paths; do printf '"%s",' "$p"; done)
  echo "carry: [${list%,}]"
  [ "$bad" = 0 ] && echo "ready" || { echo "not ready"; return 1; }
}
if [ -n "${CHECK:-}" ]; then
  cd "$(dirname "$0")/.." && check
  exit $?
fi

out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
main() {
for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
ldconfig 2>/dev/null || true
# always the carried binary: a warm machine may still hold an older one
bin=/tmp/sparsecaps
xz -d -T0 -c .gpu/sparsecaps.xz > "$bin" && chmod +x "$bin" || return 1
export SPARSECAPS_MNIST=$PWD/.data/mnist
start=$(date +%s)
stamp() { echo "[$(($(date +%s) - start)) s] $*"; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
deadline=${DEADLINE_S:-440}

# trains with the given arguments until the deadline; the last finished epoch is kept
train() {
  stamp "train $*"
  timeout "$deadline" "$bin" train --device wgpu "$@" 2>&1 | tr '\r' '\n' | grep -v '^\s*$' |
    grep -v '^\[' | tail -n 12
}

# copies a file to $OUT, in 15 MiB parts when it is over what comes back whole (16 MiB)
send() { # file, name under $OUT
  local f=$1 name=$2
  [ -e "$f" ] || return 0
  mkdir -p "$(dirname "$out/$name")"
  if [ "$(stat -c %s "$f")" -gt $(((16 << 20) - 4096)) ]; then
    split -b 15M -d "$f" "$out/$name.part-"
  else
    cp "$f" "$out/$name"
  fi
}

# sends a dense run's files, its model and the model as f16, with eval of both (data: $2)
send_dense() { # run folder, data
  local run=$1 data=$2
  for f in metrics.csv config.json model.safetensors; do send "$run/$f" "$f"; done
  rm -f /tmp/model-f16.safetensors # a warm machine may hold an older one
  timeout 60 "$bin" export --model "$run/model.safetensors" --f16 --out /tmp/model-f16.safetensors &&
    send /tmp/model-f16.safetensors model-f16.safetensors
  cut -d, -f1-7 "$run/metrics.csv" 2>/dev/null
  for m in "$run/model.safetensors" /tmp/model-f16.safetensors; do
    [ -e "$m" ] && timeout 60 "$bin" eval --model "$m" --data "$data" --device wgpu --json 2>&1 |
      tail -n 1
  done
}

# the epoch a model file was saved after (its info metadata), empty if unreadable
model_epoch() {
  python3 -c 'import json,struct,sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]
print(json.loads(json.loads(f.read(n))["__metadata__"]["info"])["epochs"])' "$1" 2>/dev/null
}

case "${JOB:-}" in
  fashion)
    train --preset paper --data .data/fashion-mnist --augment shift --lr-decay "${DECAY:-0.92}" \
      --epochs "${EPOCHS:-36}" --out /tmp/fashion-paper
    send_dense /tmp/fashion-paper .data/fashion-mnist
    ;;
  mnist)
    train --preset paper --data mnist --augment shift --lr-decay "${DECAY:-0.92}" \
      --epochs "${EPOCHS:-36}" --out /tmp/mnist-paper
    send_dense /tmp/mnist-paper mnist
    ;;
  prune)
    model=.run/${MODEL:-model-f16.safetensors}
    [ -e "$model" ] || { echo "no model $model"; return 1; }
    timeout 60 "$bin" eval --model "$model" --data mnist --device wgpu --json 2>&1 | tail -n 1
    stamp "prune $model"
    timeout 150 "$bin" prune --model "$model" --method capsules --sparsity "${SPARSITY:-0.952}" \
      --device wgpu --out /tmp/pruned.safetensors 2>&1 | tail -n 3 &&
      timeout 60 "$bin" export --model /tmp/pruned.safetensors --compact \
        --out /tmp/compact.safetensors || return 1
    deadline=$((deadline - ($(date +%s) - start)))
    [ "$deadline" -gt 60 ] || { echo "no time left to train after pruning"; return 1; }
    train --init /tmp/compact.safetensors --data mnist --augment shift --lr-decay 0.9 --batch 128 \
      --epochs "${EPOCHS:-20}" --out /tmp/mnist-pruned
    send_dense /tmp/mnist-pruned mnist
    ;;
  rem)
    run=.run/${RUN:-mnist-rem-small}
    if [ -e "$run/model.safetensors" ]; then
      train --resume "$run" --epochs "${EPOCHS:-1000}"
    else
      # a fresh checkout has no resume state (it is git-ignored): the run starts again, the
      # command of results/commands.txt on this device
      train --preset small --data mnist --recipe rem --epochs "${EPOCHS:-1000}" --out "$run"
    fi
    for f in metrics.csv config.json model.safetensors; do send "$run/$f" "$f"; done
    # a run stopped between writing a resume pair and its model leaves two pairs: send the
    # model's own (all of them if its epoch cannot be read)
    epoch=$(model_epoch "$run/model.safetensors")
    for f in "$run"/resume/epoch-${epoch:-*}.*; do send "$f" "resume/$(basename "$f")"; done
    tail -n 5 "$run/metrics.csv"
    ;;
  *)
    echo "JOB must be fashion, mnist, prune or rem"
    return 2
    ;;
esac
stamp "done"
ls -la "$out" "$out/resume" 2>/dev/null
}
main 2>&1 | tee "$out/log"
