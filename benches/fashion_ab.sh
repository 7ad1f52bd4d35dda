#!/bin/sh
# Two builds of the CLI timed against each other on the Fashion-MNIST demo
# recipe (fashion_time.sh's: 5 epochs, t10k test set, Adam, batch 128, 2
# threads, seed 1), alternated run by run: the host moves the absolute time
# by up to 30 % within minutes, so a before/after comparison is only fair
# pair by pair. Prints each pair and both medians.
# Usage: sh benches/fashion_ab.sh CLI_A CLI_B [PAIRS]   (default 8 pairs)
#   e.g. git worktree add /tmp/old <commit> && (cd /tmp/old && meson setup
#        build-release --buildtype=release && ninja -C build-release)
#        sh benches/fashion_ab.sh /tmp/old/build-release/src/cli/tapegrad \
#           build-release/src/cli/tapegrad 10
set -eu
[ $# -ge 2 ] || { echo "usage: sh benches/fashion_ab.sh CLI_A CLI_B [PAIRS]" >&2; exit 2; }
a=$1 b=$2 pairs=${3:-8}
data=/usr/share/datasets/fashion-mnist
recipe="--hidden 256,128 --act relu --opt adam --lr 1e-3 --batch 128 --val 0 --threads 2 --epochs 5 --seed 1"

train_s() { # the epochs' time= fields summed: training only
    "$1" fit "idx:$data/train" --test-data "idx:$data/t10k" $recipe |
        grep -o 'time=[0-9.]*' | cut -d= -f2 | awk '{ s += $1 } END { printf "%.2f", s }'
}
median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

all_a="" all_b=""
for i in $(seq "$pairs"); do
    sa=$(train_s "$a")
    sb=$(train_s "$b")
    echo "pair $i: A=$sa B=$sb"
    all_a="$all_a $sa" all_b="$all_b $sb"
done
echo "fashion_ab median A=$(echo "$all_a" | median) B=$(echo "$all_b" | median) pairs=$pairs"
