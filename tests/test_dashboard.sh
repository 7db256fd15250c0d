#!/usr/bin/env bash
# test_dashboard.sh - the broker's dashboard in a real browser: Debian's
# chromium, headless, loads the pages while a graph runs on a real cluster
# and the test checks what they show.
#
# 1. A cask-broker with its dashboard on a free port of 127.0.0.1
#    (--dashboard 127.0.0.1:0), two cask-workers of 2 threads, all on
#    loopback; tests/dashboard_client keeps a graph running (chains of
#    naps, pairs of bytes made one on w1, one on w2, and their digests,
#    which fetch from a peer; a task that errs; in waves of ~5 s, each
#    checked by the client).
# 2. The dashboard's address comes from the broker's REPORT (cask-status,
#    key "dashboard"), as an operator would find it.
# 3. Chromium renders each page with a budget of virtual time, which lets
#    the pages poll the JSON API several times, then dumps the DOM:
#      /status   2 workers, 4 threads, tasks in the graph, tasks done, and
#                bars drawn in the task stream (the page's count, #nbars);
#      /graph    nodes drawn (#ngraph);
#      /workers  a row per worker in the table (tr.worker-row), 2 of them;
#    and every page says the broker is live (no failed request). /status
#    comes last, when its task stream has seconds of work to show.
# 4. A screenshot of each page, 1400x1000, while the graph still runs:
#    dashboard.png, dashboard-graph.png, dashboard-workers.png in
#    SHOTS_DIR (default: the build directory).
# 5. Once its first wave is checked, the client stops; it must have found
#    every value right.
#
# Skips (exit 77) only when chromium is not installed ($CASK_CHROMIUM names
# another binary). Chromium gets a private HOME and profile in a temporary
# directory, and nothing this test starts outlives it. ~8 s.
#
#   tests/test_dashboard.sh [BUILD_DIR [SHOTS_DIR]]
#   (BUILD_DIR default: $CASK_BUILD_DIR, else build/)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
BUILD_DIR=$(cd "${1:-${CASK_BUILD_DIR:-$SCRIPT_DIR/../build}}" && pwd)
SHOTS_DIR=${2:-$BUILD_DIR}

say () { printf 'test_dashboard: %s\n' "$*" >&2; }
# shellcheck source=shell_lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/shell_lib.sh"
skip () { say "SKIP: $*"; exit 77; }

CHROMIUM=${CASK_CHROMIUM:-}
if [[ -z $CHROMIUM ]]; then
    CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
fi
[[ -n $CHROMIUM && -x $CHROMIUM ]] || skip "chromium is not installed (apt-get install chromium)"

BROKER=$BUILD_DIR/broker/cask-broker
WORKER=$BUILD_DIR/worker/cask-worker
STATUS=$BUILD_DIR/scripts/cask-status
CLIENT=$BUILD_DIR/tests/dashboard_client
LIB=$BUILD_DIR/tests/libcask_testlib.so
for file in "$BROKER" "$WORKER" "$STATUS" "$CLIENT" "$LIB"; do
    [[ -e $file ]] || { say "missing $file"; exit 1; }
done
mkdir -p "$SHOTS_DIR"

CHAINS=16 LENGTH=8 NAP_MS=150      # a wave: 128 naps of 150 ms + 8 bytes on 4 threads, ~5 s
WAVE_S=30                           # the first wave's check, at most
CLIENT_S=90                         # the client's own limit, should the test be killed
BUDGET_MS=3000                      # virtual time per page: several polls of each
BROWSER_S=60                        # one chromium run, at most

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cask-dashboard.XXXXXX")
pids=()
client=                             # these two while they run
browser=

cleanup () {
    local rc=$?
    trap - EXIT INT TERM HUP
    # The client first: it releases its futures and says goodbye
    # shellcheck disable=SC2086  # (empty when not running)
    stop_pids 2 $browser $client "${pids[@]}"
    if (( rc != 0 )); then print_logs 30 "$TMP"/*.log; fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

now_ms () { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
since () { printf '%d.%03d s' $(( ($(now_ms) - $1) / 1000 )) $(( ($(now_ms) - $1) % 1000 )); }
START=$(now_ms)

# --- the cluster ----------------------------------------------------------
"$BROKER" --bind 'tcp://127.0.0.1:*' --endpoint-file "$TMP/broker.endpoint" \
    --dashboard 127.0.0.1:0 </dev/null >"$TMP/broker.log" 2>&1 &
pids+=($!)
deadline=$((SECONDS + 10))
until [[ -s $TMP/broker.endpoint ]]; do
    kill -0 "${pids[0]}" 2>/dev/null || { say "the broker exited"; exit 1; }
    (( SECONDS < deadline )) || { say "the broker did not bind in 10 s"; exit 1; }
    sleep 0.05
done
address=$(head -n 1 "$TMP/broker.endpoint")
for name in w1 w2; do
    mkdir -p "$TMP/$name"
    "$WORKER" "$address" --nthreads 2 --dir "$TMP/$name" --name "$name" \
        </dev/null >"$TMP/worker-$name.log" 2>&1 &
    pids+=($!)
done
"$STATUS" --timeout 15000 --wait-workers 2 --count "$address" >/dev/null \
    || { say "the broker does not report 2 workers"; exit 1; }

# The dashboard's address, from the broker's REPORT
report=$("$STATUS" "$address") || { say "no REPORT from $address"; exit 1; }
url=$(tr -d '\n' <<<"$report" | grep -o '"dashboard"[[:space:]]*:[[:space:]]*"[^"]*"' \
      | head -n 1 | sed 's/.*:[[:space:]]*"\(.*\)"$/\1/') || true
[[ $url =~ ^http://127\.0\.0\.1:[0-9]+/status$ ]] \
    || { say "the REPORT has no dashboard address like http://127.0.0.1:PORT/status: '${url:-}'"; exit 1; }
base=${url%/status}
say "broker on $address, dashboard at $url, 2 workers joined after $(since "$START")"

# --- the graph ------------------------------------------------------------
"$CLIENT" "$address" "$LIB" "$CHAINS" "$LENGTH" "$NAP_MS" "$CLIENT_S" w1 w2 \
    </dev/null >"$TMP/client.log" 2>&1 &
client=$!
# Some tasks done first, so that the task stream has bars to draw
deadline=$((SECONDS + 20))
until (( $(grep -o '^progress [0-9]*' "$TMP/client.log" 2>/dev/null | tail -n 1 | cut -d' ' -f2 \
          || echo 0) >= 8 )); do
    kill -0 "$client" 2>/dev/null || { say "the client exited"; exit 1; }
    (( SECONDS < deadline )) || { say "8 tasks not done in 20 s"; exit 1; }
    sleep 0.05
done
say "the graph runs: $(grep '^progress' "$TMP/client.log" | tail -n 1) after $(since "$START")"

# --- the browser ----------------------------------------------------------
# A private home and profile: chromium writes nothing outside $TMP.
mkdir -p "$TMP/home"
CHROME_FLAGS=(--headless --no-sandbox --disable-gpu --user-data-dir="$TMP/profile"
    --no-first-run --no-default-browser-check --disable-extensions --disable-sync
    --disable-background-networking --disable-component-update --disable-default-apps
    --disable-breakpad --mute-audio --hide-scrollbars "--window-size=1400,1000"
    --virtual-time-budget="$BUDGET_MS")

# browse LOG ARGS...: one run of chromium. It runs under timeout, which
# puts it and its helpers in a process group of their own and kills that
# group past BROWSER_S; in the background so that the cleanup can signal it.
browse () {
    local log=$1 rc=0
    shift
    HOME=$TMP/home XDG_CONFIG_HOME=$TMP/home/.config XDG_CACHE_HOME=$TMP/home/.cache \
        timeout -s KILL "$BROWSER_S" "$CHROMIUM" "${CHROME_FLAGS[@]}" "$@" \
        </dev/null >"$TMP/$log.out" 2>>"$TMP/chromium.log" &
    browser=$!
    wait "$browser" || rc=$?
    browser=
    (( rc == 0 )) || { say "chromium failed (exit $rc): $*"; return 1; }
}

# dom_number FILE ID: the number in the element of that id, or nothing
dom_number () {
    { grep -o "id=\"$2\"[^>]*>[0-9,]*<" "$1" | head -n 1 | sed 's/.*>\([0-9,]*\)<$/\1/' | tr -d ,; } || true
}

# page NAME PATH: the page's DOM in $TMP/NAME.out after BUDGET_MS of
# virtual time, its screenshot in SHOTS_DIR; fails if the page is not live
page () {
    local name=$1 path=$2 t0
    t0=$(now_ms)
    browse "$name" --dump-dom "$base$path"
    grep -q 'id="conn" class="conn ok"' "$TMP/$name.out" || {
        say "$path does not say the broker is live: $(grep -o 'id="conn"[^<]*' "$TMP/$name.out" || echo 'no #conn')"
        return 1
    }
    local shot=$SHOTS_DIR/dashboard${3:+-$3}.png
    rm -f "$shot"
    browse "$name-shot" --screenshot="$shot" "$base$path"
    [[ -s $shot && $(head -c 4 "$shot" | tail -c 3) == PNG ]] \
        || { say "no screenshot of $path in $shot"; return 1; }
    say "$path rendered and saved in $(since "$t0"): $shot"
}

# worker_names FILE: the names in the first column of the page's worker rows
worker_names () {
    { grep -o '<tr class="worker-row[^>]*><td[^>]*>[^<]*' "$1" | sed 's/.*>//' | sort | tr '\n' ' '; } || true
}

failures=0
check () {  # check WHAT CONDITION...: counts a failure and says it
    local what=$1
    shift
    if "$@"; then say "ok: $what"; else say "FAILED: $what"; failures=$((failures + 1)); fi
}

page graph /graph graph
ngraph=$(dom_number "$TMP/graph.out" ngraph)
say "/graph shows ngraph=${ngraph:-?} of ntotal=$(dom_number "$TMP/graph.out" ntotal)" \
    "in $(dom_number "$TMP/graph.out" nlayers) layers"
check "/graph: nodes drawn" test "${ngraph:-0}" -gt 0

page workers /workers workers
rows=$(grep -o 'class="worker-row[ "]' "$TMP/workers.out" | wc -l)
say "/workers shows $rows rows, nworkers=$(dom_number "$TMP/workers.out" nworkers)"
check "/workers: 2 rows in the table" test "$rows" -eq 2
check "/workers: w1 and w2 by name" test "$(worker_names "$TMP/workers.out")" = "w1 w2 "

page status /status
nworkers=$(dom_number "$TMP/status.out" nworkers)
nthreads=$(dom_number "$TMP/status.out" nthreads)
ntasks=$(dom_number "$TMP/status.out" ntasks)
ndone=$(dom_number "$TMP/status.out" ndone)
nbars=$(dom_number "$TMP/status.out" nbars)
say "/status shows nworkers=${nworkers:-?} nthreads=${nthreads:-?} ntasks=${ntasks:-?}" \
    "nprocessing=$(dom_number "$TMP/status.out" nprocessing) nmemory=$(dom_number "$TMP/status.out" nmemory)" \
    "nerred=$(dom_number "$TMP/status.out" nerred) ndone=${ndone:-?} nbars=${nbars:-?}"
check "/status: 2 workers" test "${nworkers:-0}" -eq 2
check "/status: 4 threads" test "${nthreads:-0}" -eq 4
check "/status: tasks in the graph" test "${ntasks:-0}" -gt 0
check "/status: tasks done" test "${ndone:-0}" -gt 0
check "/status: bars in the task stream" test "${nbars:-0}" -gt 0
check "/status: w1 and w2 in its workers table" test "$(worker_names "$TMP/status.out")" = "w1 w2 "

# --- the client's own checks ----------------------------------------------
# At least one wave checked (they are ~5 s), so the graph that ran is right
deadline=$((SECONDS + WAVE_S))
until grep -q '^wave 0 ok' "$TMP/client.log"; do
    kill -0 "$client" 2>/dev/null || { say "the client exited while the browser looked"; exit 1; }
    (( SECONDS < deadline )) || { say "the client's first wave not done in $WAVE_S s"; exit 1; }
    sleep 0.1
done
kill -TERM "$client"
rc=0
wait "$client" || rc=$?
say "client: $(grep -c '^wave [0-9]* ok' "$TMP/client.log" || true) waves checked, $(tail -n 1 "$TMP/client.log")"
check "the client found every value right" test "$rc" -eq 0
client=

(( failures == 0 )) || { say "$failures checks failed"; exit 1; }
say "passed in $(since "$START")"
