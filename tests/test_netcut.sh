#!/usr/bin/env bash
# test_netcut.sh - a worker's link cut while a graph runs, then mended.
# Network namespaces joined by veth pairs to a bridge in a fourth namespace,
# as tests/netns_lib.sh makes them (nothing is added to the root namespace):
#
#   A 10.77.0.1  cask-broker, and the client (tests/netcut_client)
#   B 10.77.0.2  cask-worker --name wB
#   C 10.77.0.3  cask-worker --name wC
#
# 1. The client submits naps, pairs of bytes to digest and a task that
#    fails. Once a third of its futures are done, C's cable is pulled: its
#    veth goes down on the bridge's side (CASK_NETCUT_HOW=peer: eth0 down
#    inside C instead), so nothing tells either end. Heartbeats (1 s, 4
#    missed: PROTOCOL.md HEARTBEAT) must make the broker let C go within
#    CUT_GONE_S; what C held or ran is run again on B, and the client must
#    end with every value right and the failing task erred, within
#    CLIENT_S.
# 2. The link comes back: C, having heard nothing from the broker, must have
#    started afresh and join again (a new worker id) within REJOIN_S.
# 3. The client runs again, smaller: both workers must do tasks.
#
# Prints the timings. Skips (exit 77) unless run as root with ip (iproute2)
# and bridge support. Leaves no namespace or process behind, however it ends.
#
#   tests/test_netcut.sh [BUILD_DIR]     (default: $CASK_BUILD_DIR, else build/)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
BUILD_DIR=$(cd "${1:-${CASK_BUILD_DIR:-$SCRIPT_DIR/../build}}" && pwd)

say () { printf 'test_netcut: %s\n' "$*" >&2; }
skip () { say "SKIP: $*"; exit 77; }

(( EUID == 0 )) || skip "needs root (network namespaces)"
command -v ip >/dev/null || skip "needs ip (iproute2)"
ip netns list >/dev/null 2>&1 || skip "ip netns does not work here"

BROKER=$BUILD_DIR/broker/cask-broker
WORKER=$BUILD_DIR/worker/cask-worker
STATUS=$BUILD_DIR/scripts/cask-status
CLIENT=$BUILD_DIR/tests/netcut_client
LIB=$BUILD_DIR/tests/libcask_testlib.so
for file in "$BROKER" "$WORKER" "$STATUS" "$CLIENT" "$LIB"; do
    [[ -e $file ]] || { say "missing $file"; exit 1; }
done

HOW=${CASK_NETCUT_HOW:-bridge}
[[ $HOW == bridge || $HOW == peer ]] || { say "CASK_NETCUT_HOW is bridge or peer, not $HOW"; exit 1; }
NAPS=60 NAP_MS=300 PAIRS=12     # ~6 s on two workers of 2 threads, ~11 s with the cut
CUT_GONE_S=10                   # heartbeats: 4 s of silence, checked each 1 s
CLIENT_S=45                     # the whole first graph, cut and all
REJOIN_S=15                     # C: 4 s of silence, then a new connection

# shellcheck source=netns_lib.sh
. "$SCRIPT_DIR/netns_lib.sh"
netns_init netcut
now_ms () { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
since () { printf '%d.%03d s' $(( ($(now_ms) - $1) / 1000 )) $(( ($(now_ms) - $1) % 1000 )); }
START=$(now_ms)

# --- the network ------------------------------------------------------------
netns_network
# C's link: its veth on the bridge (a pulled cable), or its own eth0.
link_c () {
    if [[ $HOW == bridge ]]; then ip -n "$NS_BR" link set veth3 "$1"
    else ip -n "$NS_C" link set eth0 "$1"; fi
}

# --- the cluster ------------------------------------------------------------
netns_broker "$BROKER"
for host in B C; do
    ns=NS_$host ip=$([[ $host == B ]] && echo 10.77.0.2 || echo 10.77.0.3)
    mkdir -p "$TMP/w$host"
    ip netns exec "${!ns}" "$WORKER" "$address" --nthreads 2 --listen "tcp://$ip:*" \
        --dir "$TMP/w$host" --name "w$host" --verbose </dev/null >"$TMP/worker-$host.log" 2>&1 &
    pids+=($!)
done

status () {
    in_ns "$NS_A" "$STATUS" --timeout "${2:-5000}" "${1:-$address}" \
        || { say "no REPORT from ${1:-$address}"; return 1; }
}
count () { in_ns "$NS_A" "$STATUS" --timeout 2000 --count "$address" 2>/dev/null || echo '?'; }
# worker_field NAME FIELD REPORT: that number of the worker named NAME in
# the broker's REPORT (its fields up to the nested "resources"), or nothing
worker_field () {
    { tr -d ' \n\t' <<<"$3" | grep -o "{[^{}]*\"name\":\"$1\"[^{}]*" | grep -o "\"$2\":[0-9]*" \
        | head -n 1 | cut -d: -f2; } || true
}
in_ns "$NS_A" "$STATUS" --timeout 15000 --wait-workers 2 --count "$address" >/dev/null \
    || { say "the broker does not report 2 workers"; exit 1; }
report=$(status)
id_c=$(worker_field wC id "$report")
say "broker on $address, workers wB ($(worker_field wB id "$report")) and wC ($id_c) joined" \
    "after $(since "$START")"

# --- 1. the cut ---------------------------------------------------------------
# client_run NAME NAPS PAIRS TIMEOUT_S: starts the client in A, its pid in $client
client_run () {
    ip netns exec "$NS_A" timeout -s KILL "$(( $4 + 5 ))" \
        "$CLIENT" "$address" "$LIB" "$2" "$NAP_MS" "$3" "$(( $4 * 1000 ))" \
        </dev/null >"$TMP/$1.log" 2>&1 &
    client=$!
    pids+=("$client")
}
client_run client1 "$NAPS" "$PAIRS" "$CLIENT_S"
T0=$(now_ms)
total=$((NAPS + 2 * PAIRS + 2))
deadline=$((SECONDS + 30))
until (( $(grep -o '^progress [0-9]*' "$TMP/client1.log" | tail -n 1 | cut -d' ' -f2 || echo 0) \
        >= total / 3 )); do
    kill -0 "$client" 2>/dev/null || { say "the client exited before the cut"; exit 1; }
    (( SECONDS < deadline )) || { say "a third of the futures not done in 30 s"; exit 1; }
    sleep 0.05
done
link_c down
T_CUT=$(now_ms)
say "cut wC's link ($HOW) after $(since "$T0"), $(grep '^progress' "$TMP/client1.log" | tail -n 1)"
# What C had at the cut, as the broker saw it (it cannot know yet)
report=$(status)
done_c=$(worker_field wC tasks_done "$report")
say "at the cut: wC done ${done_c:-?}, in flight $(worker_field wC inflight "$report");" \
    "wB done $(worker_field wB tasks_done "$report")"
(( ${done_c:-0} > 0 )) || { say "wC had done no task at the cut: the cut tests nothing"; exit 1; }

# The broker lets C go
deadline=$((T_CUT + CUT_GONE_S * 1000))
until [[ $(count) == 1 ]]; do
    (( $(now_ms) < deadline )) \
        || { say "the broker still counts wC ${CUT_GONE_S} s after the cut"; exit 1; }
    sleep 0.2
done
say "the broker let wC go $(since "$T_CUT") after the cut"
# For the heartbeats, not for a closed connection (nothing closed it)
grep -q "worker $id_c missed its heartbeats: wC" "$TMP/broker.log" \
    || { say "the broker's log does not say wC missed its heartbeats"; exit 1; }
sed -n "s/^.*cask-broker: \(worker $id_c silent for .*\)/broker: \1/p" "$TMP/broker.log" >&2

# The client ends, every value right
rc=0
wait "$client" || rc=$?
T_END=$(now_ms)
if (( rc != 0 )); then
    say "the client failed (exit $rc) $(since "$T0") after it started"
    cat "$TMP/client1.log" >&2
    exit 1
fi
(( T_END - T0 <= CLIENT_S * 1000 )) || { say "the client took more than $CLIENT_S s"; exit 1; }
expected_sum=$((NAPS * (NAPS - 1) / 2))
grep -q "^sum $expected_sum " "$TMP/client1.log" || { say "no sum of $expected_sum"; exit 1; }
grep -q "^digests ok ($PAIRS)" "$TMP/client1.log" || { say "the digests are not all right"; exit 1; }
grep -q '^error ok' "$TMP/client1.log" || { say "the failing task did not err right"; exit 1; }
say "client: sum $expected_sum, $PAIRS digests and the error right, in" \
    "$(( (T_END - T0) / 1000 )).$(printf %03d $(( (T_END - T0) % 1000 ))) s" \
    "($(( (T_END - T_CUT) / 1000 )).$(printf %03d $(( (T_END - T_CUT) % 1000 ))) s after the cut)"
report=$(status)
say "after: wB done $(worker_field wB tasks_done "$report"), $(count) worker(s)"

# --- 2. the link mended -------------------------------------------------------
link_c up
T_UP=$(now_ms)
deadline=$((T_UP + REJOIN_S * 1000))
until [[ $(count) == 2 ]]; do
    (( $(now_ms) < deadline )) \
        || { say "wC did not join again ${REJOIN_S} s after the link came back"; exit 1; }
    sleep 0.2
done
report=$(status)
new_id_c=$(worker_field wC id "$report")
say "wC joined again $(since "$T_UP") after the link came back, as worker ${new_id_c:-?} (was $id_c);" \
    "wC's log: $(grep -c 'connecting to the broker again' "$TMP/worker-C.log") reconnect(s)"
[[ -n $new_id_c && $new_id_c != "$id_c" ]] \
    || { say "wC came back with id ${new_id_c:-none}, not a new one"; exit 1; }

# --- 3. both at work again ------------------------------------------------------
client_run client2 16 4 30
T2=$(now_ms)
rc=0
wait "$client" || rc=$?
if (( rc != 0 )); then
    say "the second client failed (exit $rc)"
    cat "$TMP/client2.log" >&2
    exit 1
fi
grep -q '^sum 120 ' "$TMP/client2.log" || { say "the second client's sum is not 120"; exit 1; }
report=$(status)
done_c=$(worker_field wC tasks_done "$report")
say "second client right in $(since "$T2"): wB done $(worker_field wB tasks_done "$report")," \
    "wC done ${done_c:-?}"
(( ${done_c:-0} > 0 )) || { say "wC did no task after it joined again"; exit 1; }
say "ok ($HOW cut; $(since "$START") in all)"
