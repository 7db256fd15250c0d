#!/usr/bin/env bash
# setup.sh - gets a checkout of cask ready: installs the Debian packages it
# needs when they are missing (apt-get, as root; otherwise it says what to
# install and stops), then configures build/ with meson and builds it.
# Safe to run again: it only rebuilds what changed.
#
#   ./setup.sh && scripts/run-tutorial
#   ./setup.sh && meson test -C build --print-errorlogs
#
# BUILD_DIR picks another build directory; CI=true builds with -Dwerror=true.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

# chromium: the dashboard's test loads the pages in it, headless.
PACKAGES=(meson ninja-build pkg-config gcc libc6-dev libzmq3-dev libczmq-dev libcjson-dev check
          libmicrohttpd-dev chromium)
BUILD_DIR=${BUILD_DIR:-build}

say () { printf 'setup.sh: %s\n' "$*" >&2; }

missing_packages () {
    local package
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q 'install ok installed' \
            || printf '%s\n' "$package"
    done
}

install_packages () {
    local -a missing
    if ! command -v dpkg-query >/dev/null; then
        # Not Debian: check for the tools and libraries themselves.
        if command -v meson >/dev/null && command -v ninja >/dev/null \
            && pkg-config --exists libzmq libczmq libcjson check libmicrohttpd 2>/dev/null; then
            return 0
        fi
        say "install meson, ninja, pkg-config, a C compiler and the development files of libzmq, czmq, cJSON, Check and libmicrohttpd"
        exit 1
    fi
    mapfile -t missing < <(missing_packages)
    (( ${#missing[@]} )) || return 0
    if (( EUID != 0 )); then
        say "missing packages: ${missing[*]}"
        say "install them with: sudo apt-get install ${missing[*]}"
        exit 1
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" \
        || { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }
}

configure () {
    local -a options=()
    [[ ${CI:-} == true ]] && options+=(-Dwerror=true)
    if [[ -f $BUILD_DIR/build.ninja ]]; then
        if (( ${#options[@]} )); then meson configure "$BUILD_DIR" "${options[@]}"; fi
    elif [[ -f $BUILD_DIR/meson-private/coredata.dat ]]; then
        meson setup --reconfigure "$BUILD_DIR" "${options[@]}"
    else
        meson setup "$BUILD_DIR" "${options[@]}"
    fi
}

install_packages
configure
ninja -C "$BUILD_DIR"
