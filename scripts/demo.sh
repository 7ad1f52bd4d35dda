#!/bin/sh
# The demo: set up, build (release), train issue 16's CNN (conv 32 3×3,
# max pool 2, conv 64 3×3, max pool 2, dense 128, dense 10; ReLUs) with
# Adam (lr 1e-3, batch 128) on Fashion-MNIST for 5 epochs on 2 threads.
# Prints a progress line per epoch and the test accuracy; writes the model,
# the loss plot and the per-epoch log under build/demo/. About 1.5 minutes
# on a quiet 2-core machine, the build included.
# Extra arguments go to `tapegrad fit` (e.g. --epochs 10, --seed 2).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh dataset-fashion-mnist
[ -d build ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
data=/usr/share/datasets/fashion-mnist
out=build/demo
mkdir -p "$out"
./build/src/cli/tapegrad fit "idx:$data/train" --test-data "idx:$data/t10k" \
    --layers "conv2d 32 3 relu; maxpool 2; conv2d 64 3 relu; maxpool 2; flatten; dense 128 relu; dense 10" \
    --opt adam --lr 1e-3 --batch 128 --epochs 5 --val 0 \
    --threads 2 --seed 1 --save "$out/fashion.tgm" --plot "$out/fashion-loss.svg" \
    --log "$out/fashion-log.csv" "$@"
echo "demo: model $out/fashion.tgm, loss plot $out/fashion-loss.svg, log $out/fashion-log.csv"
echo "demo: its layers: ./build/src/cli/tapegrad summary $out/fashion.tgm"
