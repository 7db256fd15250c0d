#!/usr/bin/env bash
# test_install.sh - what `meson install` installs is enough for a user:
# installs the build into a temp dir (meson install --destdir) and, with
# only that tree (its cask.pc through PKG_CONFIG_PATH, its lib dir through
# LD_LIBRARY_PATH, its bin dir first on PATH), builds a task library and a
# client with `cc ... $(pkg-config --cflags --libs cask)`, starts a broker
# and two workers with the installed cask-cluster, checks they are the
# installed binaries, runs the client, checks what it prints and what the
# installed `cask status` says of the cluster, and stops.
#
#   tests/test_install.sh BUILD_DIR    (meson test runs it: suite integration)
#
# Exits 77 (meson's "skipped") when there is no C compiler, pkg-config or
# meson on PATH.
# CASK_SANITIZE (meson's b_sanitize) builds the client and the library
# with the same sanitizers as libcask, which they must load first.
set -euo pipefail

say () { printf 'test_install: %s\n' "$*" >&2; }
# shellcheck source=shell_lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/shell_lib.sh"
fail () { say "FAILED: $*"; exit 1; }

BUILD_DIR=$(cd "${1:?usage: test_install.sh BUILD_DIR}" && pwd)
CC=${CC:-cc}
command -v "$CC" >/dev/null || { say "no C compiler ($CC): skipped"; exit 77; }
command -v pkg-config >/dev/null || { say "no pkg-config: skipped"; exit 77; }
command -v meson >/dev/null || { say "no meson on PATH: skipped"; exit 77; }

# Nothing may come from the build tree or the checkout.
unset CASK_BUILD_DIR CASK_BIN_DIR CASK_BROKER_BIN CASK_WORKER_BIN CASK_BROKER

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cask-install.XXXXXX")
DESTDIR=$WORK/root
RUNDIR=$WORK/run
status=1

# shellcheck disable=SC2317  # (run from the EXIT trap)
finish () {
    if [[ -n ${BIN_DIR:-} && -d $RUNDIR ]]; then
        "$BIN_DIR/cask-cluster" stop --dir "$RUNDIR" --grace 5 2>/dev/null || true
    fi
    if (( status != 0 )); then print_logs 30 "$RUNDIR"/*.log; fi
    rm -rf "$WORK"
}
trap finish EXIT

meson install -C "$BUILD_DIR" --destdir "$DESTDIR" --no-rebuild --quiet \
    || fail "meson install --destdir $DESTDIR"

# Where meson put things: found, not assumed (prefix and libdir vary).
pc=$(find "$DESTDIR" -name cask.pc -path '*/pkgconfig/*' | head -n 1)
[[ -n $pc ]] || fail "no cask.pc installed"
cluster=$(find "$DESTDIR" -name cask-cluster -type f | head -n 1)
[[ -n $cluster ]] || fail "no cask-cluster installed"
LIB_DIR=$(dirname "$(dirname "$pc")")
BIN_DIR=$(dirname "$cluster")
for program in cask-broker cask-worker cask-status cask; do
    [[ -x $BIN_DIR/$program ]] || fail "$program is not installed in $BIN_DIR"
done
[[ -e $LIB_DIR/libcask.so ]] || fail "no libcask.so in $LIB_DIR"

export PKG_CONFIG_PATH=$LIB_DIR/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$DESTDIR      # cask.pc names the final paths
export LD_LIBRARY_PATH=$LIB_DIR             # not meson test's, the build's
export PATH=$BIN_DIR:$PATH
cask_flags=$(pkg-config --cflags --libs cask) || fail "pkg-config --cflags --libs cask"
say "pkg-config --cflags --libs cask: $cask_flags"
read -r -a cask_flags <<<"$cask_flags"
flags=(-Wall -Wextra -Werror)
if [[ -n ${CASK_SANITIZE:-} && $CASK_SANITIZE != none ]]; then
    flags+=("-fsanitize=$CASK_SANITIZE")
fi

cat >"$WORK/tasks.c" <<'EOF'
#include <cask/cask_task.h>

static int triple (cask_call_t *call)
{
    int64_t x;
    if (cask_arg_int64 (call, 0, &x))
        return -1;
    return cask_return_int64 (call, 3 * x);
}

static int add (cask_call_t *call)
{
    int64_t x, y;
    if (cask_arg_int64 (call, 0, &x) || cask_arg_int64 (call, 1, &y))
        return -1;
    return cask_return_int64 (call, x + y);
}

CASK_LIBRARY (
    CASK_EXPORT (triple, "3 x")
    CASK_EXPORT (add, "x + y")
)
EOF

cat >"$WORK/client.c" <<'EOF'
#include <stdio.h>
#include <cask/cask.h>

int main (int argc, char *argv [])
{
    if (argc != 3)
        return 2;
    cask_client_t *client = cask_client_new (argv [1], 10000);
    if (!client) {
        fprintf (stderr, "client: %s\n", cask_client_last_error ());
        return 1;
    }
    int rc = 1;
    cask_future_t *x = NULL, *y = NULL;
    int64_t result;
    if (cask_client_register (client, argv [2], 10000) == 0
    &&  (x = cask_submit (client, "triple", cask_int64 (14), NULL))
    &&  (y = cask_submit (client, "add", cask_future_arg (x), cask_int64 (58), NULL))
    &&  cask_future_int64 (y, 30000, &result) == 0) {
        printf ("add (triple (14), 58) = %lld\n", (long long) result);
        rc = 0;
    }
    else
        fprintf (stderr, "client: %s%s\n", cask_client_error (client),
                 y ? cask_future_error (y) : "");
    cask_future_destroy (&x);
    cask_future_destroy (&y);
    cask_client_destroy (&client);
    return rc;
}
EOF

"$CC" "${flags[@]}" -shared -fPIC "$WORK/tasks.c" "${cask_flags[@]}" -o "$WORK/libtasks.so" \
    || fail "cannot build a task library with pkg-config --cflags --libs cask"
"$CC" "${flags[@]}" "$WORK/client.c" "${cask_flags[@]}" -o "$WORK/client" \
    || fail "cannot build a client with pkg-config --cflags --libs cask"

line=$(cd "$WORK" && "$BIN_DIR/cask-cluster" start --workers 2 --nthreads 2 \
       --bind 'tcp://127.0.0.1:*' --dir "$RUNDIR") || fail "cask-cluster start"
broker=${line#CASK_BROKER=}
for pidfile in "$RUNDIR"/*.pid; do
    name=$(basename "$pidfile" .pid)
    pid=$(cat "$pidfile")
    exe=$(readlink -f "/proc/$pid/exe") || fail "$name is not running"
    [[ $exe == "$DESTDIR"/* ]] || fail "$name runs $exe, not the installed binary"
    if [[ $name == worker-* ]] && ! grep -q "$DESTDIR/.*/libcask\.so" "/proc/$pid/maps"; then
        fail "$name did not load the installed libcask.so"
    fi
done

output=$("$WORK/client" "$broker" "$WORK/libtasks.so") || fail "the client failed"
say "client: $output"
[[ $output == "add (triple (14), 58) = 100" ]] || fail "the client printed \"$output\""
output=$("$BIN_DIR/cask" status "$broker") || fail "cask status"
grep -Eq '^workers +2, 4 threads$' <<<"$output" || fail "cask status printed: $output"
"$BIN_DIR/cask-cluster" stop --dir "$RUNDIR" --grace 5 || fail "cask-cluster stop"
status=0
say "ok"
