#!/bin/sh
# Training time of the Fashion-MNIST demo recipe (issue 4's end-to-end
# target: 5 epochs on the 60,000 training images, Adam, batch 128, 2
# threads, <= 1.6 s of training; fashion_common.sh): the sum of the epochs'
# time= fields, RUNS times (default 5) with seeds 1..RUNS, each run's and
# the median. The host moves this figure by up to 30 % within minutes: to
# compare two builds, use fashion_ab.sh.
# Usage: sh benches/fashion_time.sh [BUILD_DIR] [RUNS]   (a release build)
set -eu
cd "$(dirname "$0")/.."
. benches/fashion_common.sh
build=${1:-build-release}
runs=${2:-5}
[ -d "$build" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" >/dev/null

all=""
for i in $(seq "$runs"); do
    s=$(fit "$build/src/cli/tapegrad" "$i" 5 | train_seconds)
    echo "run $i (seed $i): train_s=$s"
    all="$all $s"
done
min=$(echo "$all" | tr ' ' '\n' | sed '/^$/d' | sort -n | head -n 1)
echo "fashion train_s median=$(echo "$all" | median) min=$min runs=$runs (target <= 1.6)"
