#!/bin/sh
# Two builds of tapegrad side by side on one host, alternated: compare.sh
# (bench_step and torch_step.py) with the first build, then the second,
# ROUNDS times, so that load from elsewhere on the machine falls on both;
# then the per-configuration medians over the rounds of each build.
#
#   sh benches/compare_ab.sh OLD_BUILD NEW_BUILD [ROUNDS] [compare.sh options]
#
# Each build directory must hold benches/bench_step (compare.sh rebuilds it
# with ninja). Raw tables go to stderr, the medians to stdout.
set -eu
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: compare_ab.sh OLD_BUILD NEW_BUILD [ROUNDS] [options]" >&2; exit 1; }
old=$1 new=$2
shift 2
rounds=3
case "${1:-}" in [0-9]*) rounds=$1; shift ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
for r in $(seq "$rounds"); do
    for b in old new; do
        eval dir=\$$b
        BUILD=$dir sh benches/compare.sh "$@" >"$tmp/$b.$r" 2>&1
        echo "## round $r: $b ($dir)" >&2
        cat "$tmp/$b.$r" >&2
    done
done
# The table rows (batch dtype threads tapegrad_us torch_us floor_us ...) of
# every round, one median per column and configuration.
for b in old new; do
    eval dir=\$$b
    echo "# $b: $dir, median of $rounds rounds"
    cat "$tmp/$b".* | awk '$1 ~ /^[0-9]+$/ && NF == 9' | sort -k1,1n -k2,2 -k3,3n | awk '
    function med(s,    n, a, i, j, t) {
        n = split(s, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { k = $1 " " $2 " " $3; if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
      for (c = 4; c <= 9; c++) v[k, c] = v[k, c] " " $c }
    END {
        printf "%-6s %-5s %-7s %12s %10s %10s %9s %11s %9s\n", "batch", "dtype", "threads",
               "tapegrad_us", "torch_us", "floor_us", "ratio_tg", "ratio_torch", "torch/tg"
        for (i = 1; i <= nk; i++) { split(keys[i], p, " ")
            printf "%-6s %-5s %-7s %12.1f %10.1f %10.1f %9.3f %11.3f %9.2f\n", p[1], p[2], p[3],
                   med(v[keys[i], 4]), med(v[keys[i], 5]), med(v[keys[i], 6]), med(v[keys[i], 7]),
                   med(v[keys[i], 8]), med(v[keys[i], 9]) }
    }'
done
