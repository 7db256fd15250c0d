# netns_lib.sh - what the network-namespace tests share (sourced, not run):
# a cluster's "machines" as namespaces joined by veth pairs to a bridge in a
# fourth namespace (nothing is added to the root namespace; the 10.77.0.0/24
# addresses exist only inside them):
#
#   $NS_A 10.77.0.1, $NS_B 10.77.0.2, $NS_C 10.77.0.3; the bridge in $NS_BR
#
# The sourcing script defines say and skip first, and may define
# netns_cleanup_first, run first when the test ends. Every process it starts
# in the background goes into pids; whatever is left in the namespaces when
# the test ends is killed, the namespaces are deleted, the logs in $TMP are
# printed if it failed, and $TMP is removed.

# shellcheck source=shell_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/shell_lib.sh"

# netns_init NAME: the namespaces' names (unique per run: several checkouts
# may test at once on one machine), $TMP, and the cleanup at exit.
netns_init () {
    tag=cask$$-$RANDOM
    NS_A=$tag-a NS_B=$tag-b NS_C=$tag-c NS_BR=$tag-br
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/cask-$1.XXXXXX")
    pids=()
    created=()
    trap netns_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

netns_cleanup () {
    local rc=$? pid ns
    trap - EXIT INT TERM HUP
    if declare -F netns_cleanup_first >/dev/null; then netns_cleanup_first; fi
    stop_pids 2 "${pids[@]}"
    # Anything else left in our namespaces was started by this test.
    for ns in "${created[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    done
    wait 2>/dev/null || true
    for ns in "${created[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    if (( rc != 0 )); then print_logs 40 "$TMP"/*.log; fi
    rm -rf "$TMP"
    exit "$rc"
}

# (Processes in the background are started by ip netns exec itself, which
# execs them: $! is theirs, and the TERM of the cleanup reaches them.)
in_ns () { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# netns_network: the namespaces, the bridge and the veth pairs (the one of
# $NS_A is veth1 on the bridge, $NS_B's veth2, $NS_C's veth3; eth0 inside).
netns_network () {
    local ns host=1
    for ns in "$NS_BR" "$NS_A" "$NS_B" "$NS_C"; do
        ip netns add "$ns" || { (( ${#created[@]} )) || skip "cannot create network namespaces"; exit 1; }
        created+=("$ns")
        ip -n "$ns" link set lo up
    done
    ip -n "$NS_BR" link add br0 type bridge 2>/dev/null || skip "no bridge support in this kernel"
    ip -n "$NS_BR" link set br0 up
    for ns in "$NS_A" "$NS_B" "$NS_C"; do
        ip -n "$NS_BR" link add "veth$host" type veth peer name eth0 netns "$ns"
        ip -n "$NS_BR" link set "veth$host" master br0
        ip -n "$NS_BR" link set "veth$host" up
        ip -n "$ns" addr add "10.77.0.$host/24" dev eth0
        ip -n "$ns" link set eth0 up
        host=$((host + 1))
    done
}

# netns_broker BROKER_BIN: the broker in $NS_A on 10.77.0.1, bound; its
# address in $address, its pid first in pids.
netns_broker () {
    in_ns "$NS_A" "$1" --bind 'tcp://10.77.0.1:*' --endpoint-file "$TMP/broker.endpoint" \
        </dev/null >"$TMP/broker.log" 2>&1 &
    pids+=($!)
    local deadline=$((SECONDS + 10))
    until [[ -s $TMP/broker.endpoint ]]; do
        kill -0 "${pids[0]}" 2>/dev/null || { say "the broker exited"; exit 1; }
        (( SECONDS < deadline )) || { say "the broker did not bind in 10 s"; exit 1; }
        sleep 0.05
    done
    address=$(head -n 1 "$TMP/broker.endpoint")
}
