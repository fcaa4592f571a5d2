#!/usr/bin/env bash
# Regenerates the evidence in README ("Does pruning pay off?"): trains the `small` preset on
# MNIST and Fashion-MNIST, dense and with LOBSTER, then sweeps magnitude and capsule pruning
# over each dense model. Every command, with its wall time, is appended to $OUT/commands.txt.
#
#   scripts/reproduce.sh                      # the full run (CPU, about 2.5 hours on 2 cores)
#   STAGES=sweep scripts/reproduce.sh         # only the sweeps (the trained models exist)
#   STAGES=ship scripts/reproduce.sh          # only the pruned models shipped in assets/ (into runs/)
#
# Knobs (environment): SPARSECAPS (the binary), OUT (tables, curves; small files),
# RUNS (trained and pruned models; large files), PRESET, MNIST_EPOCHS, FASHION_EPOCHS,
# DATASETS, FASHION (folder with Fashion-MNIST's four IDX files), DEVICE, SEED,
# LIMIT_TRAIN / LIMIT_TEST (train and test on the first N images only), FINETUNE_LIMIT
# (images a sweep fine-tunes on), REPEAT (timed repetitions per benchmark), STAGES (train,
# sweep and/or ship). A run whose model already
# exists is not trained again, so an interrupted run resumes where it stopped.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SPARSECAPS="${SPARSECAPS:-$here/target/release/sparsecaps}"
OUT="${OUT:-$here/results}"
RUNS="${RUNS:-$here/runs}"
PRESET="${PRESET:-small}"
MNIST_EPOCHS="${MNIST_EPOCHS:-4}"
FASHION_EPOCHS="${FASHION_EPOCHS:-3}"
DATASETS="${DATASETS:-mnist fashion-mnist}"
FASHION="${FASHION:-$here/../shared/datasets/fashion-mnist}"
DEVICE="${DEVICE:-cpu}"
SEED="${SEED:-42}"
SPARSITIES="${SPARSITIES:-0,0.5,0.9,0.95,0.99}"
FINETUNE_LIMIT="${FINETUNE_LIMIT:-10000}"
REPEAT="${REPEAT:-5}"
STAGES="${STAGES:-train sweep ship}"
# LOBSTER's knobs: lambda, threshold step after every epoch, 5% validation-loss tolerance
LOBSTER=(--prune lobster --lambda 1e-3 --pwe 0 --twt 0.05)

if [[ ! -x "$SPARSECAPS" ]]; then
    echo "reproduce.sh: $SPARSECAPS not found; run cargo build --release first" >&2
    exit 2
fi
mkdir -p "$OUT" "$RUNS"
limits=()
[[ -n "${LIMIT_TRAIN:-}" ]] && limits+=(--limit-train "$LIMIT_TRAIN")
[[ -n "${LIMIT_TEST:-}" ]] && limits+=(--limit-test "$LIMIT_TEST")

# Runs a sparsecaps command, logs it with its wall time in $OUT/commands.txt.
run() {
    local start=$SECONDS
    echo "+ sparsecaps $*" >&2
    "$SPARSECAPS" "$@"
    echo "sparsecaps $*  # wall $((SECONDS - start)) s" >> "$OUT/commands.txt"
}

# The --data value and the epochs of a dataset name.
data_arg() { if [[ $1 == fashion-mnist ]]; then echo "$FASHION"; else echo "$1"; fi; }
epochs_of() { if [[ $1 == fashion-mnist ]]; then echo "$FASHION_EPOCHS"; else echo "$MNIST_EPOCHS"; fi; }

train() {
    local name=$1 dir="$RUNS/$1-$2"
    shift 2
    if [[ ! -f "$dir/model.safetensors" ]]; then
        run train --data "$(data_arg "$name")" --preset "$PRESET" --epochs "$(epochs_of "$name")" \
            --seed "$SEED" --device "$DEVICE" "${limits[@]}" "$@" --out "$dir"
    fi
    mkdir -p "$OUT/$(basename "$dir")"
    cp "$dir/metrics.csv" "$dir/config.json" "$OUT/$(basename "$dir")/"
}

sweep() {
    local name=$1 method=$2 sparsities=$3 model=$4 tag=$5
    shift 5
    local dir="$RUNS/$name-sweep-$tag"
    run sweep --model "$model" --method "$method" --sparsities "$sparsities" \
        --data "$(data_arg "$name")" --device "$DEVICE" --repeat "$REPEAT" "${limits[@]}" "$@" --out "$dir"
    mkdir -p "$OUT/$name-sweep-$tag"
    cp "$dir/sweep.csv" "$dir/sweep.md" "$dir/sweep.svg" "$OUT/$name-sweep-$tag/"
}

for name in $DATASETS; do
    if [[ " $STAGES " == *" train "* ]]; then
        train "$name" dense
        train "$name" lobster "${LOBSTER[@]}"
    fi
    if [[ " $STAGES " == *" sweep "* ]]; then
        dense="$RUNS/$name-dense/model.safetensors"
        ft=(--finetune-epochs 1 --limit-train "$FINETUNE_LIMIT")
        [[ -n "${LIMIT_TRAIN:-}" ]] && ft=(--finetune-epochs 1)
        sweep "$name" magnitude "$SPARSITIES" "$dense" magnitude "${ft[@]}"
        sweep "$name" capsules "$SPARSITIES" "$dense" capsules "${ft[@]}"
        # the LOBSTER model as trained, compacted and timed against the dense one
        sweep "$name" magnitude 0 "$RUNS/$name-lobster/model.safetensors" lobster --baseline "$dense"
    fi
    if [[ " $STAGES " == *" ship "* && $name == mnist ]]; then
        # the pruned model in assets/: 75% of the capsules, one full epoch of fine-tuning
        run prune --model "$RUNS/$name-dense/model.safetensors" --method capsules --sparsity 0.75 \
            --finetune-epochs 1 --lr 3e-4 --device "$DEVICE" "${limits[@]}" --out "$RUNS/$name-capsules75.safetensors"
        run export --model "$RUNS/$name-capsules75.safetensors" --compact --out "$RUNS/$name-capsules75-compact.safetensors"
        # ... and 95.1% of the capsules (548 of 576): compacted, then the compact model trained
        # 5 epochs with 2-pixel shifts (at its own, smaller cost) and stored as f16
        caps95="$RUNS/$name-capsules95"
        if [[ ! -f "$caps95-ft/model.safetensors" ]]; then
            run prune --model "$RUNS/$name-dense/model.safetensors" --method capsules --sparsity 0.952 \
                --device "$DEVICE" "${limits[@]}" --out "$caps95.safetensors"
            run export --model "$caps95.safetensors" --compact --out "$caps95-compact.safetensors"
            run train --init "$caps95-compact.safetensors" --data mnist --augment shift --epochs 5 \
                --lr-decay 0.9 --batch 32 --seed "$SEED" --device "$DEVICE" "${limits[@]}" --out "$caps95-ft"
        elif (( $(wc -l < "$caps95-ft/metrics.csv") < 6 )); then
            # an interrupted run goes on to its 5 epochs (a finished one is left as it is)
            run train --resume "$caps95-ft" --epochs 5
        fi
        run export --model "$caps95-ft/model.safetensors" --f16 --out "$RUNS/$name-small-95.safetensors"
        mkdir -p "$OUT/$name-capsules95/conv1-0"
        cp "$caps95-ft/metrics.csv" "$caps95-ft/config.json" "$OUT/$name-capsules95/conv1-0/"
    fi
done
echo "reproduce.sh: tables in $OUT" >&2
