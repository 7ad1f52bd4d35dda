#!/bin/sh
# Two builds of the CLI timed against each other on the Fashion-MNIST demo
# recipe (fashion_common.sh; 5 epochs, seed 1), alternated run by run: the
# host moves the absolute time by up to 30 % within minutes, so a
# before/after comparison is only fair pair by pair. Prints each pair and
# both medians.
# Usage: sh benches/fashion_ab.sh CLI_A CLI_B [PAIRS]   (default 8 pairs)
#   e.g. git worktree add /tmp/old <commit> && (cd /tmp/old && meson setup
#        build-release --buildtype=release && ninja -C build-release)
#        sh benches/fashion_ab.sh /tmp/old/build-release/src/cli/tapegrad \
#           build-release/src/cli/tapegrad 10
set -eu
[ $# -ge 2 ] || { echo "usage: sh benches/fashion_ab.sh CLI_A CLI_B [PAIRS]" >&2; exit 2; }
. "$(dirname "$0")/fashion_common.sh"
a=$1 b=$2 pairs=${3:-8}

all_a="" all_b=""
for i in $(seq "$pairs"); do
    sa=$(fit "$a" 1 5 | train_seconds)
    sb=$(fit "$b" 1 5 | train_seconds)
    echo "pair $i: A=$sa B=$sb"
    all_a="$all_a $sa" all_b="$all_b $sb"
done
echo "fashion_ab median A=$(echo "$all_a" | median) B=$(echo "$all_b" | median) pairs=$pairs"
