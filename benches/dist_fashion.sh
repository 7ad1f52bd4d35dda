#!/bin/sh
# Issue 19: the Fashion-MNIST demo MLP (784-256-128-10, Adam, batch 128, all
# 60,000 training images; fashion_common.sh) trained by
#   A  1 rank  x 2 threads   (tapegrad fit --threads 2)
#   B  2 ranks x 1 thread    (mpirun -np 2 tapegrad fit --threads 1)
#   C  1 rank  x 1 thread    (the single-rank compute of docs/distributed.md)
# alternated A B C, RUNS times (default 5), EPOCHS epochs each (default 2);
# prints each run's seconds per epoch (the time= fields: training loops only)
# and the medians; then bench_allreduce under mpirun -np 2.
# MODEL=cnn: issue 16's CNN (conv 32 3x3, pool, conv 64 3x3, pool, dense 128,
# dense 10) instead of the MLP, same recipe.
# Usage: [MODEL=cnn] sh benches/dist_fashion.sh [BUILD_DIR] [RUNS] [EPOCHS]  (a release build with -Dmpi)
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
# one: [mpirun -np 2] tapegrad fit with the model and THREADS (a function: the
# CNN's --layers value holds spaces).
one() {
    threads=$1
    shift
    if [ "${MODEL:-mlp}" = cnn ]; then
        "$@" "$cli" fit "idx:$data/train" --test-data "idx:$data/t10k" --layers \
            "conv2d 32 3 relu; maxpool 2; conv2d 64 3 relu; maxpool 2; flatten; dense 128 relu; dense 10" \
            --input-shape 1,28,28 --opt adam --lr 1e-3 --batch 128 --val 0 --epochs "$epochs" \
            --seed 1 --threads "$threads"
    else
        "$@" "$cli" fit "idx:$data/train" --test-data "idx:$data/t10k" $recipe --epochs "$epochs" \
            --seed 1 --threads "$threads"
    fi
}
a="" b="" c=""
for i in $(seq "$runs"); do
    ta=$(one 2 | per_epoch)
    tb=$(one 1 mpirun -np 2 --oversubscribe | per_epoch)
    tc=$(one 1 | per_epoch)
    echo "run $i (${MODEL:-mlp}): epoch_s 1x2threads=$ta 2ranksx1thread=$tb 1x1thread=$tc"
    a="$a $ta" b="$b $tb" c="$c $tc"
done
echo "fashion ${MODEL:-mlp} epoch_s median: 1 rank x 2 threads=$(echo "$a" | median)" \
    "2 ranks x 1 thread=$(echo "$b" | median) 1 rank x 1 thread=$(echo "$c" | median) runs=$runs"
[ "${MODEL:-mlp}" = cnn ] && exit 0
mpirun -np 2 --oversubscribe "$build/benches/bench_allreduce"
