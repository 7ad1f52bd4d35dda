#!/bin/sh
# The tests: set up, then
#  1. gcc with AddressSanitizer + UndefinedBehaviorSanitizer, warnings as
#     errors, the whole suite;
#  2. clang, warnings as errors, the whole suite.
# Each prints meson's summary (Ok / Fail counts); exit non-zero on failure.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
if [ ! -d build-san ]; then
    CC=gcc meson setup build-san -Dbuildtype=debugoptimized -Db_sanitize=address,undefined \
        -Dwerror=true >/dev/null
fi
meson test -C build-san --print-errorlogs
if [ ! -d build-clang ]; then
    CC=clang meson setup build-clang -Dbuildtype=release -Dwerror=true >/dev/null
fi
meson test -C build-clang --print-errorlogs
