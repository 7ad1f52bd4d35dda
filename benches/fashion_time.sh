#!/bin/sh
# Training time of the Fashion-MNIST demo recipe (issue 4's end-to-end
# target: 5 epochs, Adam, batch 128, 2 threads, <= 1.6 s of training): the
# sum of the epochs' time= fields (the training loops only: no loading, no
# evaluation), RUNS times (default 5) in each of two setups, alternated so
# that a slow spell of the host hits both:
#   with-test   the test set loaded and evaluated after each epoch, as in
#               fashion_accuracy.sh and the README's demo;
#   train-only  no --test-data (nothing but the training set in memory).
# On this VM the first is measurably slower per epoch than the second
# (benches/RESULTS.md, "Fashion-MNIST training time"); both are printed.
# Usage: sh benches/fashion_time.sh [BUILD_DIR] [RUNS]   (a release build)
set -eu
cd "$(dirname "$0")/.."
build=${1:-build-release}
runs=${2:-5}
[ -d "$build" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" >/dev/null
data=/usr/share/datasets/fashion-mnist
recipe="--hidden 256,128 --act relu --opt adam --lr 1e-3 --batch 128 --val 0 --threads 2 --epochs 5 --seed 1"

train_s() { # the training seconds of one run
    "$build/src/cli/tapegrad" fit "idx:$data/train" $recipe "$@" |
        grep -o 'time=[0-9.]*' | cut -d= -f2 | awk '{ s += $1 } END { printf "%.2f", s }'
}
median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

with="" only=""
for i in $(seq "$runs"); do
    a=$(train_s --test-data "idx:$data/t10k")
    b=$(train_s)
    echo "run $i: with-test train_s=$a train-only train_s=$b"
    with="$with $a" only="$only $b"
done
echo "median with-test train_s=$(echo "$with" | median) train-only train_s=$(echo "$only" | median) runs=$runs"
