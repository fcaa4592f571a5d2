#!/bin/bash
# CIFAR-10 with the resnet-caps preset on the 2-core CPU machine: dense training (crop-flip
# augmentation and per-channel normalisation, both on by default for colour data), then
# EagleEye backbone pruning to 75, 50 and 25% of the backbone's FLOPs (sparsities 0.25,
# 0.5, 0.75 of the FLOPs removed), each searched over 10 candidates, fine-tuned for one
# epoch on the first 10,000 training images and measured by `sweep` on the 10,000 test
# images. Run from the repository root; SPARSECAPS_CIFAR10 defaults to
# ../shared/datasets/cifar-10.
# These runs fine-tuned without augmentation (the default before 2026-11-29), hence
# --augment none.
set -euo pipefail
export SPARSECAPS_CIFAR10=${SPARSECAPS_CIFAR10:-../shared/datasets/cifar-10}
bin=${SPARSECAPS_BIN:-target/release/sparsecaps}
out=results/cifar10-resnet-caps
$bin train --preset resnet-caps --data cifar10 --epochs 2 --device cpu --out $out/dense
$bin sweep --model $out/dense/model.safetensors --method backbone --sparsities 0.25,0.5,0.75 \
  --finetune-epochs 1 --augment none --limit-train 10000 --candidates 10 --repeat 3 --device cpu --out $out/sweep
# the control: the dense model fine-tuned the same way, unpruned
$bin sweep --model $out/dense/model.safetensors --method backbone --sparsities 0 \
  --finetune-epochs 1 --augment none --limit-train 10000 --repeat 3 --device cpu --out $out/sweep-0
