#!/usr/bin/env bash
# Prepares, in a fresh checkout, what scripts/gpu-runs.sh carries to a lent GPU machine
# (all git-ignored): .gpu/sparsecaps.xz (the slim build: no embedded MNIST or models),
# .gl/ (the Vulkan loader's Debian packages, which that machine lacks), and .data/ (MNIST
# and Fashion-MNIST from ../shared). Run it after the full release build: the slim build
# then takes a minute or two, and the full one is relinked at the end (seconds).
# Then, for the device call: move assets/ (28 MB, tracked) out of the tree, run
# `JOB=... bash scripts/gpu-runs.sh` carrying .gl .gpu and the job's data, move assets/ back.
set -euo pipefail
cd "$(dirname "$0")/.."
for d in mnist fashion-mnist; do
  [ -d "../shared/datasets/$d" ] || { echo "no ../shared/datasets/$d" >&2; exit 2; }
done

cargo build --release --no-default-features
mkdir -p .gpu
strip -o .gpu/sparsecaps target/release/sparsecaps
xz -6 -T2 -f .gpu/sparsecaps
cargo build --release

gl_packages=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
if [ "$(ls .gl/*.deb 2>/dev/null | wc -l)" -lt "${#gl_packages[@]}" ]; then
  # amd64 packages whatever this machine is, with their own package lists (the device
  # tool's README): the loader and the libraries the NVIDIA driver's ICD loads
  mkdir -p .gl /tmp/amd64/partial
  apt_opts=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
  apt-get "${apt_opts[@]}" update -qq
  (cd .gl && apt-get "${apt_opts[@]}" download "${gl_packages[@]}")
fi

mkdir -p .data .run
for d in mnist fashion-mnist; do
  [ -d ".data/$d" ] || cp -r "../shared/datasets/$d" .data/
done
# CIFAR=1: CIFAR-10's JPEG copy for scripts/gpu-cifar.sh (55 MB: it travels alone)
if [ -n "${CIFAR:-}" ] && [ ! -d .cifar/cifar-10 ]; then
  mkdir -p .cifar && cp -r ../shared/datasets/cifar-10 .cifar/
fi
du -sh .gpu .gl .data/* .cifar 2>/dev/null | sed 's/^/kit: /'
