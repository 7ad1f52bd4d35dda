#!/bin/sh
# Every tapegrad benchmark from a release build, one command:
#
#   sh benches/run_all.sh            # bench_step (all 16), bench_overhead, bench_alloc,
#                                    # bench_pool, bench_fill, bench_update
#   sh benches/run_all.sh --torch    # and the PyTorch side by side (compare.sh)
#
# Builds build-release (meson --buildtype=release) if it is absent, rebuilds
# it otherwise. The same three benches also run under
# `meson test --benchmark -C build-release --verbose`.
# Environment: BUILD (default build-release).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-release}

if [ ! -d "$BUILD" ]; then
    meson setup "$BUILD" --buildtype=release >/dev/null
fi
ninja -C "$BUILD" >/dev/null

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
"./$BUILD/benches/bench_step"
"./$BUILD/benches/bench_overhead"
"./$BUILD/benches/bench_overhead" --anomaly
"./$BUILD/benches/bench_alloc"
"./$BUILD/benches/bench_alloc" --threads 1
"./$BUILD/benches/bench_pool"
"./$BUILD/benches/bench_fill"
"./$BUILD/benches/bench_update"

if [ "${1:-}" = "--torch" ]; then
    echo
    BUILD="$BUILD" sh benches/compare.sh
fi
