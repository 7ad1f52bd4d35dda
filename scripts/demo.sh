#!/bin/sh
# The demo: set up, build (release), train a 784-256-128-10 ReLU network
# with Adam (lr 1e-3, batch 128) on Fashion-MNIST for 5 epochs. Prints a
# progress line per epoch and the test accuracy; writes the model, the loss
# plot and the per-epoch log under build/demo/.
# Extra arguments go to `tapegrad fit` (e.g. --epochs 20, --seed 2).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh dataset-fashion-mnist
[ -d build ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
data=/usr/share/datasets/fashion-mnist
out=build/demo
mkdir -p "$out"
./build/src/cli/tapegrad fit "idx:$data/train" --test-data "idx:$data/t10k" \
    --hidden 256,128 --act relu --opt adam --lr 1e-3 --batch 128 --epochs 5 --val 0 \
    --threads 2 --seed 1 --save "$out/fashion.tgm" --plot "$out/fashion-loss.svg" \
    --log "$out/fashion-log.csv" "$@"
echo "demo: model $out/fashion.tgm, loss plot $out/fashion-loss.svg, log $out/fashion-log.csv"
# The CNN of the README (ten epochs do not fit the demo's three minutes on
# two cores), for whoever wants it next:
echo "demo: the CNN (test accuracy about 0.91 after 10 epochs):"
echo "  ./build/src/cli/tapegrad fit idx:$data/train --test-data idx:$data/t10k --epochs 10 \\"
echo "    --layers 'conv2d 32 3 relu; maxpool 2; conv2d 64 3 relu; maxpool 2; flatten; dense 128 relu; dense 10'"
