#!/bin/sh
# tapegrad against PyTorch, side by side: bench_step and torch_step.py on the
# same configurations, then one table.
#
#   sh benches/compare.sh [--batch N] [--dtype f32|f64] [--threads N] [--seconds S]
#
# Builds build-release (meson, --buildtype=release) if it is absent, and
# rebuilds it (ninja) otherwise. For each thread count, torch runs with
# OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=<threads>
# (torch on 1 thread, OpenBLAS on <threads>); bench_step runs tapegrad's
# step on its own pool (tg_set_threads, OpenBLAS on one thread) and its
# floor on OpenBLAS's <threads> threads. Each floor_us is measured in
# the process it belongs to; ratio_tg and ratio_torch are each engine's step
# over its own floor, floor_us in the table is tapegrad's.
# Environment: BUILD (default build-release), PYTHON (default /usr/bin/python3).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-release}
PYTHON=${PYTHON:-/usr/bin/python3}

batches="1 32 128 1024"
dtypes="f32 f64"
threads="1 2"
seconds=0.5
while [ $# -gt 0 ]; do
    case "$1" in
    --batch) batches="$2"; shift 2 ;;
    --dtype) dtypes="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    *) echo "usage: compare.sh [--batch N] [--dtype f32|f64] [--threads N] [--seconds S]" >&2
       exit 1 ;;
    esac
done

if [ ! -d "$BUILD" ]; then
    meson setup "$BUILD" --buildtype=release >/dev/null
fi
ninja -C "$BUILD" benches/bench_step >/dev/null

if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
    echo "compare.sh: $PYTHON cannot import torch (apt-get install python3-torch)" >&2
    exit 1
fi

# Another process on the 2 cores skews everything, 2 threads most.
load=$(cut -d' ' -f1 /proc/loadavg)
echo "# load average at start: $load (on $(nproc) cores)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
for t in $threads; do
    for b in $batches; do
        for d in $dtypes; do
            "./$BUILD/benches/bench_step" --batch "$b" --dtype "$d" --threads "$t" \
                --seconds "$seconds" | tee -a "$tmp/tg.txt"
            OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS="$t" \
                "$PYTHON" benches/torch_step.py --batch "$b" --dtype "$d" --threads "$t" \
                --seconds "$seconds" | sed 's/^step /torch /' | tee -a "$tmp/torch.txt"
        done
    done
done

echo
# join the two on (batch, dtype, threads)
awk '
function field(line, key,    n, i, kv, a) {
    n = split(line, a, " ")
    for (i = 1; i <= n; i++) { split(a[i], kv, "="); if (kv[1] == key) return kv[2] }
    return ""
}
FNR == NR { k = field($0, "batch") " " field($0, "dtype") " " field($0, "threads")
            tus[k] = field($0, "us"); tfl[k] = field($0, "floor_us"); tr[k] = field($0, "ratio")
            next }
{ k = field($0, "batch") " " field($0, "dtype") " " field($0, "threads")
  keys[++nk] = k; gus[k] = field($0, "us"); gfl[k] = field($0, "floor_us"); gr[k] = field($0, "ratio") }
END {
    printf "%-6s %-5s %-7s %12s %10s %10s %9s %11s %11s\n", "batch", "dtype", "threads",
           "tapegrad_us", "torch_us", "floor_us", "ratio_tg", "ratio_torch", "torch/tg"
    for (i = 1; i <= nk; i++) {
        k = keys[i]; split(k, p, " ")
        printf "%-6s %-5s %-7s %12s %10s %10s %9s %11s %11.2f\n", p[1], p[2], p[3], gus[k],
               tus[k], gfl[k], gr[k], tr[k], (gus[k] > 0 ? tus[k] / gus[k] : 0)
    }
}' "$tmp/torch.txt" "$tmp/tg.txt"
