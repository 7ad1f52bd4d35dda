#!/bin/sh
# Runs every libFuzzer target fuzz_* for a bounded time.
# Usage: [FUZZ_SEED=N] fuzz/run.sh [SECONDS_PER_TARGET] [TARGET ...]   (default 60 s, all)
#
# Builds build-fuzz first if it does not exist (clang, ASan + UBSan, the
# library instrumented for coverage; b_lundef=false because clang does not
# link the sanitizer runtimes into shared libraries):
#   CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined \
#       -Db_lundef=false -Dbuildtype=debugoptimized
# For each target: replays the saved crashes fuzz/regressions/TARGET/* (each
# must now pass), then fuzzes from the seed corpus fuzz/corpus/TARGET (read
# only) and a working corpus build-fuzz/fuzz-corpus/TARGET that grows from
# run to run. A crash, leak, sanitizer report, timeout (30 s) or out-of-memory
# (2 GiB) saves the input as fuzz/regressions/TARGET/crash-... (leak-...,
# timeout-..., oom-...) and fails the target. Prints each target's executions
# (libFuzzer's stat::number_of_executed_units), its corpus and the distinct
# inputs the library refused; exits non-zero if any target failed.
set -u
cd "$(dirname "$0")/.."
secs="${1:-60}"
[ $# -gt 0 ] && shift
targets="${*:-csv idx model api safetensors}"
build=build-fuzz

if [ ! -d "$build" ]; then
    CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debugoptimized >/dev/null || { echo "fuzz: meson setup failed"; exit 1; }
fi
ninja -C "$build" $(for t in $targets; do printf 'fuzz/fuzz_%s ' "$t"; done) >"$build/fuzz-build.log" 2>&1 ||
    { cat "$build/fuzz-build.log"; echo "fuzz: build failed"; exit 1; }

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export OPENBLAS_NUM_THREADS=1
# FUZZ_SEED=N fixes libFuzzer's seed: the run then follows one sequence of
# mutations (coverage feedback is deterministic), so a gate such as CI sees
# a prefix of what a longer run with the same seed already explored; unset,
# every run explores anew.
seed_opt=""
[ -n "${FUZZ_SEED:-}" ] && seed_opt="-seed=$FUZZ_SEED"
passed=0
failed=0
total=0
for t in $targets; do
    exe="$build/fuzz/fuzz_$t"
    log="$build/fuzz-$t.log"
    work="$build/fuzz-corpus/$t"
    crashes="fuzz/regressions/$t"
    mkdir -p "$work" "$crashes"
    ok=1
    # 1. The saved crashes: each one is a regression test.
    saved=$(find "$crashes" -type f ! -name '*.md' | sort)
    if [ -n "$saved" ]; then
        # shellcheck disable=SC2086
        if ! "$exe" -runs=1 $saved >"$build/fuzz-$t-regressions.log" 2>&1; then
            ok=0
            echo "fuzz_$t: a saved crash still fails ($build/fuzz-$t-regressions.log):"
            grep -E "ERROR|SUMMARY|property violated|Running:" "$build/fuzz-$t-regressions.log" | tail -n 5
        fi
    fi
    # 2. Fuzzing, bounded in time.
    before=$(find "$crashes" -type f | wc -l)
    rc=0
    # shellcheck disable=SC2086
    "$exe" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=30 $seed_opt \
        -print_final_stats=1 -artifact_prefix="$crashes/" "$work" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    stats=$(grep '^fuzz stats:' "$log" | tail -n 1 | sed 's/^fuzz stats: target=[a-z]* //')
    corpus=$(find "$work" -type f | wc -l)
    total=$((total + ${execs:-0}))
    if [ "$rc" -ne 0 ]; then
        ok=0
        after=$(find "$crashes" -type f | wc -l)
        echo "fuzz_$t: FAILED (exit $rc, $((after - before)) new input(s) in $crashes/; log $log):"
        grep -E "ERROR|SUMMARY|property violated|Test unit written" "$log" | tail -n 8
    fi
    echo "fuzz_$t: ${execs:-0} executions in ${secs} s, corpus $corpus inputs, $stats"
    if [ "$ok" -eq 1 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "fuzz: $total executions in all"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
