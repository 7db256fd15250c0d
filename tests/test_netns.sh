#!/usr/bin/env bash
# test_netns.sh - a cluster across three "machines": network namespaces
# joined by veth pairs to a bridge in a fourth namespace (nothing is added
# to the root namespace; the 10.77.0.0/24 addresses exist only inside the
# namespaces this test creates):
#
#   A 10.77.0.1  cask-broker, then the client (examples/custom_workloads)
#   B 10.77.0.2  cask-worker --listen tcp://10.77.0.2:*
#   C 10.77.0.3  cask-worker --listen tcp://10.77.0.3:*
#
# The tutorial's chains and tree sums move results between B and C, so both
# workers must report fetches from peers and GETs served. Skips (exit 77)
# unless run as root with ip (iproute2) and bridge support.
#
#   tests/test_netns.sh [BUILD_DIR]     (default: $CASK_BUILD_DIR, else build/)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
BUILD_DIR=$(cd "${1:-${CASK_BUILD_DIR:-$SCRIPT_DIR/../build}}" && pwd)

say () { printf 'test_netns: %s\n' "$*" >&2; }
skip () { say "SKIP: $*"; exit 77; }

# cask-ssh-workers --dry-run: the exact ssh commands, whoever runs this.
SSH_WORKERS=$SCRIPT_DIR/../scripts/cask-ssh-workers
dry=$(CASK_SSH="ssh -p 2222" "$SSH_WORKERS" --broker tcp://10.9.0.1:8786 --hosts 10.9.0.2,me@10.9.0.3 \
    --workers 2 --nthreads 3 --dry-run)
expect_dry () {
    local host=$1 ip=$2
    printf '%s\n' "ssh -p 2222 -n $host 'd=.cask-ssh;mkdir -p \"\$d\" || exit 1;ip=$ip;[ -n \"\$ip\" ] || { echo \"$ip: no address to listen on\" >&2; exit 1; };for f in \"\$d\"/worker-*.pid; do [ -e \"\$f\" ] && ! kill -0 \"\$(cat \"\$f\")\" 2>/dev/null && rm -f \"\$f\"; done;i=0;n=0;started=;while [ \$n -lt 2 ]; do while [ -e \"\$d/worker-\$i.pid\" ]; do i=\$((i + 1)); done; mkdir -p \"\$d/worker-\$i\"; nohup cask-worker tcp://10.9.0.1:8786 --nthreads 3 --listen \"tcp://\$ip:*\" --dir \"\$d/worker-\$i\" --name \"$ip-worker-\$i\" </dev/null >>\"\$d/worker-\$i.log\" 2>&1 & echo \$! >\"\$d/worker-\$i.pid\"; started=\"\$started \$i:\$!\"; echo \"$ip: worker-\$i (pid \$!) -> tcp://10.9.0.1:8786, listening on tcp://\$ip:*, log \$d/worker-\$i.log\"; n=\$((n + 1)); done;sleep 1;rc=0;for w in \$started; do kill -0 \"\${w#*:}\" 2>/dev/null || { echo \"$ip: worker-\${w%%:*} exited:\" >&2; tail -n 5 \"\$d/worker-\${w%%:*}.log\" >&2; rc=1; }; done;exit \$rc'"
}
expected=$(expect_dry 10.9.0.2 10.9.0.2; expect_dry me@10.9.0.3 10.9.0.3)
if [[ $dry != "$expected" ]]; then
    say "cask-ssh-workers --dry-run printed:"; printf '%s\n' "$dry" >&2
    say "expected:"; printf '%s\n' "$expected" >&2
    exit 1
fi
dry=$("$SSH_WORKERS" stop --hosts n1 --grace 3 --dir /var/run/cask --dry-run)
[[ $dry == "ssh -o BatchMode=yes -n n1 'd=/var/run/cask;pids=;"*"[ \$s -lt 3 ]"*"stopped \$# workers of \$d\"'" ]] \
    || { say "cask-ssh-workers stop --dry-run printed: $dry"; exit 1; }
say "cask-ssh-workers --dry-run: ok"

(( EUID == 0 )) || skip "needs root (network namespaces)"
command -v ip >/dev/null || skip "needs ip (iproute2)"

BROKER=$BUILD_DIR/broker/cask-broker
WORKER=$BUILD_DIR/worker/cask-worker
STATUS=$BUILD_DIR/scripts/cask-status
CLIENT=$BUILD_DIR/examples/custom_workloads
LIB=$BUILD_DIR/examples/libtutorial.so
for file in "$BROKER" "$WORKER" "$STATUS" "$CLIENT" "$LIB"; do
    [[ -e $file ]] || { say "missing $file"; exit 1; }
done

# shellcheck source=netns_lib.sh
. "$SCRIPT_DIR/netns_lib.sh"
netns_cleanup_first () {
    [[ -n ${CASK_SSH:-} ]] && "$SSH_WORKERS" stop --hosts 10.77.0.2,10.77.0.3 --dir run \
        --grace 2 >/dev/null 2>&1
    return 0
}
netns_init netns
netns_network

# --- the cluster ------------------------------------------------------------
netns_broker "$BROKER"
say "broker in $NS_A on $address"

# The workers, started by scripts/cask-ssh-workers through a stand-in for
# ssh that runs the remote command in the host's namespace (home: $TMP/HOST).
# B's listen address comes from its host name, C's from its route to A.
cat >"$TMP/fake-ssh" <<EOF
#!/bin/sh
[ "\$1" = -n ] || exit 255
case \$2 in 10.77.0.2) ns=$NS_B ;; 10.77.0.3) ns=$NS_C ;; *) exit 255 ;; esac
mkdir -p "$TMP/\$2" && cd "$TMP/\$2" && exec ip netns exec "\$ns" sh -c "\$3"
EOF
chmod +x "$TMP/fake-ssh"
export CASK_SSH=$TMP/fake-ssh
ssh_workers () { "$SSH_WORKERS" "$@" --worker-bin "$WORKER" --dir run; }
ssh_workers start --broker "$address" --hosts 10.77.0.2 --nthreads 2 >&2
ssh_workers start --broker "$address" --hosts 10.77.0.3 --nthreads 2 --listen-ip-from-host >&2
in_ns "$NS_A" "$STATUS" --timeout 15000 --wait-workers 2 --count "$address" >/dev/null \
    || { say "the broker does not report 2 workers"; exit 1; }

# The workers' peer endpoints, as the broker knows them.
report=$(in_ns "$NS_A" "$STATUS" --timeout 5000 "$address")
mapfile -t endpoints < <(grep -o '"endpoint":[[:space:]]*"[^"]*"' <<<"$report" | sed 's/.*"\(tcp:[^"]*\)"/\1/')
(( ${#endpoints[@]} == 2 )) || { say "expected 2 worker endpoints in: $report"; exit 1; }
for endpoint in "${endpoints[@]}"; do
    [[ $endpoint == tcp://10.77.0.[23]:* ]] || { say "worker endpoint $endpoint is not in B or C"; exit 1; }
done
say "workers at ${endpoints[*]}"

# --- the client -------------------------------------------------------------
if ! in_ns "$NS_A" timeout 60 "$CLIENT" "$address" "$LIB" >"$TMP/client.log" 2>&1; then
    say "custom_workloads failed"
    cat "$TMP/client.log" >&2
    exit 1
fi
grep -q '= 98688$' "$TMP/client.log" || { say "no tree sum of 98688 in the client's output"; exit 1; }
say "custom_workloads: ok (98688)"

# --- data moved between B and C ---------------------------------------------
number () { grep -o "\"$1\":[[:space:]]*[0-9]*" <<<"$2" | grep -o '[0-9]*$' || echo 0; }
for endpoint in "${endpoints[@]}"; do
    report=$(in_ns "$NS_A" "$STATUS" --timeout 5000 "$endpoint")
    fetches=$(number fetches_from_peers "$report")
    served=$(number gets_served "$report")
    say "$endpoint: fetches_from_peers $fetches, gets_served $served"
    (( fetches > 0 )) || { say "$endpoint fetched nothing from its peer"; exit 1; }
    (( served > 0 )) || { say "$endpoint served no GETs"; exit 1; }
done

# --- cask-ssh-workers status and stop ---------------------------------------
ssh_workers status --hosts 10.77.0.2,10.77.0.3 | tee "$TMP/status.out" >&2
(( $(grep -c ' running ' "$TMP/status.out") == 2 )) || { say "cask-ssh-workers status: not 2 running"; exit 1; }
ssh_workers stop --hosts 10.77.0.2,10.77.0.3 >&2
(( $(in_ns "$NS_A" "$STATUS" --timeout 5000 --count "$address") == 0 )) \
    || { say "the broker still reports workers after cask-ssh-workers stop"; exit 1; }
say "ok"
