#!/bin/sh
# Training time of the Fashion-MNIST demo recipe (issue 4's end-to-end
# target: 5 epochs on the 60,000 training images, Adam, batch 128, 2
# threads, <= 1.6 s of training): the sum of the epochs' time= fields (the
# training loops only: no loading, no evaluation), RUNS times (default 5),
# each run's and the median. The test set is t10k, as in
# fashion_accuracy.sh (without --test-data the CLI would hold out 20 % of
# the training set and train on 48,000 images).
# Usage: sh benches/fashion_time.sh [BUILD_DIR] [RUNS]   (a release build)
set -eu
cd "$(dirname "$0")/.."
build=${1:-build-release}
runs=${2:-5}
[ -d "$build" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" >/dev/null
data=/usr/share/datasets/fashion-mnist
recipe="--hidden 256,128 --act relu --opt adam --lr 1e-3 --batch 128 --val 0 --threads 2 --epochs 5"

all=""
for i in $(seq "$runs"); do
    s=$("$build/src/cli/tapegrad" fit "idx:$data/train" --test-data "idx:$data/t10k" $recipe \
        --seed "$i" | grep -o 'time=[0-9.]*' | cut -d= -f2 | awk '{ s += $1 } END { printf "%.2f", s }')
    echo "run $i (seed $i): train_s=$s"
    all="$all $s"
done
med=$(echo "$all" | tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
min=$(echo "$all" | tr ' ' '\n' | sed '/^$/d' | sort -n | head -n 1)
echo "fashion train_s median=$med min=$min runs=$runs (target <= 1.6)"
