#!/bin/sh
# Installs what tapegrad needs on Debian 12, only if missing: one
# `apt-get update`, then `apt-get install -y` of the missing packages.
# Usage: scripts/setup.sh [extra-package ...]
set -eu
pkgs="gcc clang libc6-dev pkg-config meson ninja-build libopenblas-dev zlib1g-dev libcjson-dev $*"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
