#!/bin/bash
# CIFAR-10 with the mobilenet-caps preset on the 2-core CPU machine: dense training for 1
# epoch, then `sweep --method backbone` at 0 (the control: the dense model fine-tuned the
# same way) and 0.5 (EagleEye, 10 candidates, half the backbone's FLOPs removed), each
# fine-tuned for one epoch on the first 10,000 training images. Run from the repository
# root; SPARSECAPS_CIFAR10 defaults to ../shared/datasets/cifar-10.
# These runs fine-tuned without augmentation (the default before 2026-11-29), hence
# --augment none.
set -euo pipefail
export SPARSECAPS_CIFAR10=${SPARSECAPS_CIFAR10:-../shared/datasets/cifar-10}
bin=${SPARSECAPS_BIN:-target/release/sparsecaps}
out=results/cifar10-mobilenet-caps
$bin train --preset mobilenet-caps --data cifar10 --epochs 1 --device cpu --out $out/dense
$bin sweep --model $out/dense/model.safetensors --method backbone --sparsities 0,0.5 \
  --finetune-epochs 1 --augment none --limit-train 10000 --candidates 10 --repeat 3 --device cpu --out $out/sweep
