#!/bin/sh
# The demo: set up, build (release), train the two-layer network.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
[ -d build ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
exec ./build/examples/two_layer "$@"
