#!/bin/sh
# Fashion-MNIST accuracy of the demo recipe (issue 3): 784-256-128-10 ReLU,
# Adam lr 1e-3, batch 128, 5 epochs, seeds 1 2 3 -> the median test
# accuracy; then one longer run (EPOCHS_LONG, default 20 epochs, seed 1)
# with the per-epoch test accuracy in its log.
# Usage: sh benches/fashion_accuracy.sh [BUILD_DIR]   (a release build)
set -eu
cd "$(dirname "$0")/.."
. benches/fashion_common.sh
build=${1:-build-release}
[ -d "$build" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" >/dev/null
accs=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT INT TERM
for seed in 1 2 3; do
    fit "$build/src/cli/tapegrad" "$seed" 5 >"$log"
    line=$(tail -n 1 "$log")
    train_s=$(train_seconds <"$log")
    echo "seed $seed: $line train_s=$train_s"
    accs="$accs ${line##*accuracy=}"
done
echo "$accs" | tr ' ' '\n' | sed '/^$/d' | sort -n | sed -n 2p | sed 's/^/median test accuracy (5 epochs, 3 seeds): /'
long=${EPOCHS_LONG:-20}
fit "$build/src/cli/tapegrad" 1 "$long" --log "$build/fashion-long.csv" | tail -n 1 |
    sed "s/^/$long epochs, seed 1: /"
echo "per-epoch test accuracy of the long run: $build/fashion-long.csv (column test_accuracy)"
