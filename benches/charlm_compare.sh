#!/bin/sh
# examples/char_lm and benches/torch_charlm.py side by side (issue 17):
# tokens per second of one model on 1 and 2 threads, the engines alternated
# ROUNDS times so that load from elsewhere on the machine falls on both,
# then the median per engine and thread count.
#
#   sh benches/charlm_compare.sh [BUILD] [STEPS] [ROUNDS] [MODEL]
#
# BUILD (default build-release) must hold examples/char_lm; STEPS (default
# 200) training steps per run, ROUNDS (3), MODEL lstm (or gpt). Each run's
# `valid:` line goes to stderr, the medians to stdout.
set -eu
cd "$(dirname "$0")/.."
build=${1:-build-release} steps=${2:-200} rounds=${3:-3} model=${4:-lstm}
py=/usr/bin/python3
ninja -C "$build" examples/char_lm >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
for r in $(seq "$rounds"); do
    for th in 1 2; do
        "$build/examples/char_lm" --model "$model" --steps "$steps" --threads "$th" --sample 0 |
            grep '^valid:' | tee -a "$tmp/tapegrad.$th" >&2
        "$py" benches/torch_charlm.py --model "$model" --steps "$steps" --threads "$th" |
            grep '^valid:' | sed 's/^/torch /' | tee -a "$tmp/torch.$th" >&2
    done
done
echo "model=$model steps=$steps rounds=$rounds (median tokens/s)"
for th in 1 2; do
    for e in tapegrad torch; do
        sed 's/.*tokens\/s=\([0-9]*\).*/\1/' "$tmp/$e.$th" | sort -n |
            awk -v e="$e" -v th="$th" '{v[NR] = $1} END {printf "%s threads=%s tokens/s=%d\n", e, th, v[int((NR + 1) / 2)]}'
    done
done
