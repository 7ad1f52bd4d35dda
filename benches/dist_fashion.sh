#!/bin/sh
# Issue 19: the Fashion-MNIST demo MLP (784-256-128-10, Adam, batch 128, all
# 60,000 training images; fashion_common.sh) trained by
#   A  1 rank  x 2 threads   (tapegrad fit --threads 2)
#   B  2 ranks x 1 thread    (mpirun -np 2 tapegrad fit --threads 1)
#   C  1 rank  x 1 thread    (the single-rank compute of docs/distributed.md)
# alternated A B C, RUNS times (default 5), EPOCHS epochs each (default 2);
# prints each run's seconds per epoch (the time= fields: training loops only)
# and the medians; then bench_allreduce under mpirun -np 2.
# Usage: sh benches/dist_fashion.sh [BUILD_DIR] [RUNS] [EPOCHS]  (a release build with -Dmpi)
set -eu
cd "$(dirname "$0")/.."
. benches/fashion_common.sh
build=${1:-build-release}
runs=${2:-5}
epochs=${3:-2}
[ -d "$build" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cli="$build/src/cli/tapegrad"
per_epoch() { train_seconds | awk -v e="$epochs" '{ printf "%.3f", $1 / e }'; }
a="" b="" c=""
for i in $(seq "$runs"); do
    ta=$(fit "$cli" 1 "$epochs" --threads 2 | per_epoch)
    tb=$(mpirun -np 2 --oversubscribe "$cli" fit "idx:$data/train" --test-data "idx:$data/t10k" \
        $recipe --epochs "$epochs" --seed 1 --threads 1 | per_epoch)
    tc=$(fit "$cli" 1 "$epochs" --threads 1 | per_epoch)
    echo "run $i: epoch_s 1x2threads=$ta 2ranksx1thread=$tb 1x1thread=$tc"
    a="$a $ta" b="$b $tb" c="$c $tc"
done
echo "fashion epoch_s median: 1 rank x 2 threads=$(echo "$a" | median)" \
    "2 ranks x 1 thread=$(echo "$b" | median) 1 rank x 1 thread=$(echo "$c" | median) runs=$runs"
mpirun -np 2 --oversubscribe "$build/benches/bench_allreduce"
