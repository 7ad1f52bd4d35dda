#!/bin/sh
# Issue 16's CNN on Fashion-MNIST, tapegrad against PyTorch 1.13 side by
# side: for each seed, one tapegrad run (benches/bench_cnn, the C API; the
# CLI's `fit --layers` can replace it) and then one PyTorch run
# (benches/torch_cnn.py), alternated so that both see the same load. Same
# model, recipe (Adam 1e-3, batch 128, inputs in [0, 1]), threads and epochs.
#
# Usage: sh benches/fashion_cnn.sh [--epochs 10] [--seeds "1 2 3"] [--threads 2]
#                                  [--bn] [--limit N] [--build build-rel] [--logs DIR]
#
# Prints each run's median epoch time (the training loop only; wall clock and
# the process's CPU time) and final test accuracy, then a table: medians over
# seeds of the accuracy and of the epoch times, and tapegrad / PyTorch for the
# times. --limit N trains on the first N images only (for timing: fewer
# images, same per-step work). Logs: DIR/{tg,torch}-sSEED.log.
set -eu
cd "$(dirname "$0")/.."
epochs=10 seeds="1 2 3" threads=2 bn="" limit=0 build=build-rel logs=""
while [ $# -gt 0 ]; do
    case $1 in
    --epochs) epochs=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --bn) bn=--bn; shift ;;
    --limit) limit=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --logs) logs=$2; shift 2 ;;
    *) echo "usage: sh benches/fashion_cnn.sh [--epochs N] [--seeds \"1 2 3\"] [--threads T]" \
            "[--bn] [--limit N] [--build DIR] [--logs DIR]" >&2; exit 2 ;;
    esac
done
[ -n "$logs" ] || logs=$(mktemp -d)
mkdir -p "$logs"
[ -d "$build" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" benches/bench_cnn >/dev/null
torch=/usr/bin/python3

# med < numbers, one a line: the median (mean of the two middles if even).
med() {
    sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2];
                                        else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# epoch_med LOG [FIELD]: the median of its epochs' time= (or cpu=) fields;
# acc LOG: final accuracy.
epoch_med() { grep -o "${2:-time}=[0-9.]*" "$1" | cut -d= -f2 | med; }
acc() { grep -o 'test: accuracy=[0-9.]*' "$1" | cut -d= -f2; }

# line NAME LOG: one run's summary.
line() {
    echo "$1 epoch_s=$(epoch_med "$2") cpu_s=$(epoch_med "$2" cpu) acc=$(acc "$2")" \
        "load=$(cut -d' ' -f1 /proc/loadavg)"
}

echo "fashion_cnn: epochs=$epochs threads=$threads ${bn:-no-bn} limit=$limit seeds=$seeds" \
    "load=$(cut -d' ' -f1-3 /proc/loadavg)"
for s in $seeds; do
    "$build/benches/bench_cnn" --epochs "$epochs" --seed "$s" --threads "$threads" $bn \
        --limit "$limit" >"$logs/tg-s$s.log"
    line "tapegrad seed=$s" "$logs/tg-s$s.log"
    $torch benches/torch_cnn.py --epochs "$epochs" --seed "$s" --threads "$threads" $bn \
        --limit "$limit" >"$logs/torch-s$s.log"
    line "pytorch  seed=$s" "$logs/torch-s$s.log"
done

tg_t=$(for s in $seeds; do epoch_med "$logs/tg-s$s.log"; done | med)
pt_t=$(for s in $seeds; do epoch_med "$logs/torch-s$s.log"; done | med)
tg_c=$(for s in $seeds; do epoch_med "$logs/tg-s$s.log" cpu; done | med)
pt_c=$(for s in $seeds; do epoch_med "$logs/torch-s$s.log" cpu; done | med)
tg_a=$(for s in $seeds; do acc "$logs/tg-s$s.log"; done | med)
pt_a=$(for s in $seeds; do acc "$logs/torch-s$s.log"; done | med)
echo
ratio() { echo "$1 $2" | awk '{ printf "%.2f", $1 / $2 }'; }
echo "| engine | threads | epochs | s/epoch (median) | CPU s/epoch | test accuracy (median of seeds) |"
echo "|---|---|---|---|---|---|"
echo "| tapegrad | $threads | $epochs | $tg_t | $tg_c | $tg_a |"
echo "| PyTorch 1.13 | $threads | $epochs | $pt_t | $pt_c | $pt_a |"
echo "| tapegrad / PyTorch | | | $(ratio "$tg_t" "$pt_t") | $(ratio "$tg_c" "$pt_c") |" \
    "$(echo "$tg_a $pt_a" | awk '{ printf "%+.4f", $1 - $2 }') |"
echo "logs: $logs"
