#!/usr/bin/env bash
# `resnet-caps` on CIFAR-10 on a lent GPU machine, in two calls made back to back (the binary
# and the JPEG copy do not fit in one call's 64 MiB, and a warm machine keeps /tmp):
#
#   here, once:   `bash scripts/gpu-kit.sh` (the slim binary in .gpu/, the Vulkan packages in
#                 .gl/ and, with CIFAR=1, the JPEG copy in .cifar/cifar-10; all git-ignored),
#                 then move assets/ (27 MB, tracked) out of the tree for both calls
#   call 1, carry [".gl", ".gpu"]:  PHASE=1 bash scripts/gpu-cifar.sh
#   call 2, carry [".cifar"], at once (the machine goes back after 30 s idle):
#                 PHASE=2 DEADLINE_S=500 EPOCHS=40 bash scripts/gpu-cifar.sh
#   a later call on the same warm machine goes on with PHASE=3 (train --resume).
#   Phases 2 and 3 need the binary that phase 1 left in /tmp: on a machine that went back
#   in between they stop at once and say so (run phase 1 again).
# $OUT gets metrics.csv, config.json and model.safetensors (8 MB): the run's resume state
# stays on the machine.
set -uo pipefail
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
run=/tmp/cifar-resnet-caps
case "${PHASE:-1}" in
  1)
    for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
    ldconfig 2>/dev/null || true
    xz -d -T0 -c .gpu/sparsecaps.xz > /tmp/sparsecaps && chmod +x /tmp/sparsecaps
    timeout 200 /tmp/sparsecaps bench --preset resnet-caps --device wgpu --batch 128 --repeat 5 --json 2>&1 |
      grep -v '%\]'
    ;;
  2 | 3)
    [ -x /tmp/sparsecaps ] || { echo "no /tmp/sparsecaps: a cold machine, run PHASE=1 first"; exit 3; }
    ;;&
  2)
    timeout "${DEADLINE_S:-500}" /tmp/sparsecaps train --preset resnet-caps --data .cifar/cifar-10 \
      --device wgpu --batch 128 --epochs "${EPOCHS:-40}" --lr-decay "${DECAY:-0.92}" --out "$run" 2>&1 |
      tr '\r' '\n' | grep -E '^(epoch .*acc|finished|error)'
    ;;
  3)
    timeout "${DEADLINE_S:-500}" /tmp/sparsecaps train --resume "$run" --epochs "${EPOCHS:-60}" 2>&1 |
      tr '\r' '\n' | grep -E '^(epoch .*acc|finished|error)'
    ;;
esac
for f in metrics.csv config.json model.safetensors; do cp "$run/$f" "$out/" 2>/dev/null; done
true
