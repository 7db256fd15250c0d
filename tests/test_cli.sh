#!/usr/bin/env bash
# test_cli.sh - the operator's command `cask` and the JSON log lines, on a
# real cluster on loopback: a broker (--dashboard on a free port, JSON log
# lines at level debug) and two workers (JSON, level info). tests/cli_client
# leaves a known graph in the broker and holds it: 20 inc in memory, one
# add of two of them (two dependencies), one goes_wrong erred. Then:
#   - cask status, cask workers, cask tasks (--limit, --state), as text
#     (the numbers in the summary and the rows of the tables) and as JSON
#     (parsed by python3: the same numbers), the endpoint given or taken
#     from $CASK_BROKER;
#   - exit status 2 with a usage on bad usage, 1 naming the endpoint when
#     no broker answers, 0 and the subcommands for --help;
#   - cask-status --count still answers 2;
#   - every line the broker and the workers logged is one JSON object with
#     time, level, process, pid and message;
#   - once the client lets go, cask status shows the graph empty.
#
#   tests/test_cli.sh BUILD_DIR    (meson test runs it: suite integration)
set -euo pipefail

say () { printf 'test_cli: %s\n' "$*" >&2; }
# shellcheck source=shell_lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/shell_lib.sh"
fail () { say "FAILED: $*"; exit 1; }

BUILD_DIR=$(cd "${1:?usage: test_cli.sh BUILD_DIR}" && pwd)
BROKER_BIN=${CASK_BROKER_BIN:-$BUILD_DIR/broker/cask-broker}
WORKER_BIN=${CASK_WORKER_BIN:-$BUILD_DIR/worker/cask-worker}
CASK=$BUILD_DIR/scripts/cask
STATUS=$BUILD_DIR/scripts/cask-status
CLIENT=$BUILD_DIR/tests/cli_client
LIBRARY=${CASK_TUTORIAL_LIB:-$BUILD_DIR/examples/libtutorial.so}
N=20                                    # inc tasks: with add and goes_wrong, 22

unset CASK_BROKER CASK_LOG_FORMAT CASK_LOG_LEVEL
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cask-cli.XXXXXX")
pids=()
status=1

# shellcheck disable=SC2317  # (run from the EXIT trap)
finish () {
    [[ -n ${to_client:-} ]] && exec {to_client}>&-
    stop_pids 5 "${pids[@]}"
    if (( status != 0 )); then print_logs 30 "$WORK"/*.log "$WORK"/*.err; fi
    rm -rf "$WORK"
}
trap finish EXIT

# run WANT COMMAND...: runs COMMAND, its stdout into $WORK/out and its
# stderr into $WORK/err; fails unless it exits with WANT.
run () {
    local want=$1 rc=0
    shift
    "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
    (( rc == want )) || fail "$* exited with $rc, not $want: $(cat "$WORK/err")"
}

# has PATTERN [FILE]: FILE ($WORK/out) has a line matching the extended
# regular expression PATTERN.
has () {
    grep -Eq -- "$1" "${2:-$WORK/out}" \
        || fail "no line matches '$1' in:"$'\n'"$(cat "${2:-$WORK/out}")"
}

# count PATTERN: the number of lines of $WORK/out matching PATTERN.
count () { grep -Ec -- "$1" "$WORK/out" || true; }

# json CODE: runs the python3 CODE with d the JSON document in $WORK/out;
# CODE asserts what it must.
json () {
    python3 -c "import json, sys
d = json.load(open(sys.argv[1]))
$1" "$WORK/out" || fail "cask printed: $(head -c 2000 "$WORK/out")"
}

# wait_for FILE PATTERN: waits up to 20 s for a line matching PATTERN.
wait_for () {
    for _ in $(seq 200); do
        grep -Eq -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "no '$2' in $1 after 20 s"
}

# --- bad usage, help, and no broker, before any cluster -----------------
run 0 "$CASK" --help
for command in status workers tasks; do has "^  $command "; done
run 2 "$CASK"
has '^usage: cask' "$WORK/err"
run 2 "$CASK" frobnicate
has '^usage: cask' "$WORK/err"
run 2 "$CASK" tasks --state bogus
run 2 "$CASK" status --limit 3
run 2 "$CASK" tasks --limit 0
run 1 "$CASK" status --timeout 300 tcp://127.0.0.1:1
has 'tcp://127\.0\.0\.1:1 ' "$WORK/err"
run 1 env CASK_BROKER=127.0.0.1:1 "$CASK" workers --timeout 300
has 'tcp://127\.0\.0\.1:1 ' "$WORK/err"

# --- the cluster --------------------------------------------------------
"$BROKER_BIN" --bind 'tcp://127.0.0.1:*' --endpoint-file "$WORK/endpoint" \
    --dashboard 127.0.0.1:0 --log-format json --log-level debug \
    >"$WORK/broker.out" 2>"$WORK/broker.log" &
broker_pid=$!
pids+=("$broker_pid")
wait_for "$WORK/endpoint" '^tcp://'
wait_for "$WORK/broker.out" 'dashboard at '
endpoint=$(cat "$WORK/endpoint")
dashboard=$(sed -n 's/^cask-broker: dashboard at //p' "$WORK/broker.out")
for name in cli-w1 cli-w2; do
    "$WORKER_BIN" "$endpoint" --nthreads 2 --name "$name" --log-format json --log-level info \
        2>"$WORK/$name.log" &
    pids+=($!)
done
run 0 "$STATUS" --wait-workers 2 --timeout 15000 --count "$endpoint"
[[ $(cat "$WORK/out") == 2 ]] || fail "cask-status --count printed $(cat "$WORK/out")"

mkfifo "$WORK/to_client"
"$CLIENT" "$endpoint" "$LIBRARY" "$N" <"$WORK/to_client" >"$WORK/client.out" \
    2>"$WORK/client.err" &
client_pid=$!
exec {to_client}>"$WORK/to_client"
wait_for "$WORK/client.out" '^ready$'
say "cluster at $endpoint, dashboard $dashboard, the graph in place"

# --- cask status ----------------------------------------------------------
check_status_text () {
    has "^broker +$endpoint, up [0-9]"
    has "^dashboard +$dashboard\$"
    has '^clients +1$'
    has '^workers +2, 4 threads$'
    has '^tasks +22: 0 waiting, 0 processing, 21 in memory, 1 erred, 0 released$'
    has '^memory +broker [0-9.]+ (B|KiB|MiB|GiB), workers [0-9.]+ (B|KiB|MiB|GiB) resident; [0-9.]+ (B|KiB) held, 0 B spilled$'
    has '^function +waiting +processing +done +erred$'
    has '^inc +0 +0 +20 +0$'
    has '^add +0 +0 +1 +0$'
    has '^goes_wrong +0 +0 +0 +1$'
}
run 0 "$CASK" status "$endpoint"
check_status_text
run 0 env CASK_BROKER="$endpoint" "$CASK" status
check_status_text
run 0 "$CASK" status --json --timeout 5000 "${endpoint#tcp://}"
json "
assert len(d['workers']) == 2, d['workers']
assert d['tasks'] == {'waiting': 0, 'processing': 0, 'memory': 21, 'erred': 1, 'released': 0,
                      'total': 22}, d['tasks']
assert d['dashboard'] == '$dashboard', d['dashboard']
assert d['clients'] == 1 and d['libraries'] == 1 and d['rss_bytes'] > 0, d
assert 'inc' in d['functions'] and d['time'] > 1.7e9, d
progress = {p['function']: (p['waiting'], p['processing'], p['done'], p['erred'])
            for p in d['progress']}
assert progress == {'inc': (0, 0, 20, 0), 'add': (0, 0, 1, 0), 'goes_wrong': (0, 0, 0, 1)}, progress
"

# --- cask workers ---------------------------------------------------------
run 0 "$CASK" workers "$endpoint"
has '^id +name +endpoint +threads +inflight +done +cpu +rss +limit +held +spilled +paused +last seen$'
size='[0-9.]+ (B|KiB|MiB|GiB|TiB)'
for name in cli-w1 cli-w2; do           # ids in the order they joined, 1 and 2
    has "^[12] +$name +tcp://127\.0\.0\.1:[0-9]+ +2 +0 +[0-9]+ +[0-9.]+% +$size +$size +$size +0 B +no +[0-9.]+ s ago\$"
done
(( $(count '^[0-9]+ +cli-w') == 2 )) || fail "not 2 rows of workers: $(cat "$WORK/out")"
has '^1 +cli-w'
has '^2 +cli-w'
run 0 "$CASK" workers --json "$endpoint"
json "
workers = d['workers']
assert sorted(w['name'] for w in workers) == ['cli-w1', 'cli-w2'], workers
assert all(w['nthreads'] == 2 and w['inflight'] == 0 and not w['paused'] for w in workers)
assert all(w['rss_bytes'] > 0 and w['last_seen'] < 5 and w['memory_limit'] > 0 for w in workers)
assert sum(w['tasks_done'] for w in workers) == 22, workers
assert sum(w['bytes_held'] for w in workers) > 0, workers
"

# --- cask tasks -----------------------------------------------------------
run 0 "$CASK" tasks "$endpoint"
has '^key +function +state +worker +nbytes +deps$'
(( $(count '^inc-[0-9a-f]+ +inc +memory +[12] +8 B +0$') == N )) \
    || fail "not $N inc tasks in memory: $(cat "$WORK/out")"
(( $(count '^add-[0-9a-f]+ +add +memory +[12] +8 B +2$') == 1 )) \
    || fail "no add task with 2 deps: $(cat "$WORK/out")"
(( $(count '^goes_wrong-[0-9a-f]+ +goes_wrong +erred +[-12] +0 B +0$') == 1 )) \
    || fail "no goes_wrong task erred: $(cat "$WORK/out")"
(( $(wc -l <"$WORK/out") == 23 )) || fail "not 22 tasks and a header: $(cat "$WORK/out")"
! grep -q 'shown' "$WORK/out" || fail "all tasks were shown, yet cask says otherwise"
run 0 "$CASK" tasks --json "$endpoint"
json "
tasks = d['tasks']
assert d['total'] == 22 and not d['truncated'] and len(tasks) == 22, d
add = [t for t in tasks if t['function'] == 'add']
assert len(add) == 1 and len(add[0]['deps']) == 2, add
assert all(tasks[i]['function'] == 'inc' for i in add[0]['deps']), add
"
run 0 "$CASK" tasks --limit 5 "$endpoint"
(( $(count '^[a-z_]+-[0-9a-f]+ ') == 5 )) || fail "not 5 tasks: $(cat "$WORK/out")"
has '^5 of 22 tasks shown'
run 0 "$CASK" tasks --limit 5 --json "$endpoint"
json "assert d['truncated'] and d['total'] == 22 and len(d['tasks']) == 5, d"
run 0 "$CASK" tasks --state erred --json "$endpoint"
json "
assert d['total'] == 1 and len(d['tasks']) == 1, d
assert d['tasks'][0]['function'] == 'goes_wrong' and d['tasks'][0]['state'] == 'erred', d
"
run 0 "$CASK" tasks --state memory --limit 3 "$endpoint"
(( $(count '^[a-z_]+-[0-9a-f]+ +[a-z_]+ +memory ') == 3 )) || fail "not 3 tasks in memory: $(cat "$WORK/out")"
has '^3 of 21 memory tasks shown'
run 0 "$CASK" tasks --state waiting "$endpoint"
has '^no waiting tasks$'

# --- the log lines, as they are while the cluster runs --------------------
check_log () {
    python3 - "$@" <<'EOF' || fail "$1 is not JSON log lines"
import json, re, sys
path, process, pid, least = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
levels = set()
with open(path, encoding='utf-8') as log:
    lines = log.read().splitlines()
for line in lines:
    d = json.loads(line)
    assert list(d) == ['time', 'level', 'process', 'pid', 'message'], line
    assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z', d['time']), line
    assert d['level'] in ('error', 'warning', 'info', 'debug'), line
    assert d['process'] == process and isinstance(d['message'], str), line
    assert pid == '-' or d['pid'] == int(pid), line
    levels.add(d['level'])
assert least in levels, (least, levels)
print(len(lines), 'lines,', ', '.join(sorted(levels)))
EOF
}
say "broker log: $(check_log "$WORK/broker.log" cask-broker "$broker_pid" debug)"
grep -q '"level": "info", .*"message": "worker [0-9]+ joined' -E "$WORK/broker.log" \
    || fail "the broker did not log the workers joining at level info"
for name in cli-w1 cli-w2; do
    # the worker runs in a child of the nanny started: its own pid
    say "$name log: $(check_log "$WORK/$name.log" "$name" - info)"
done

# --- the client lets go: the graph empties --------------------------------
exec {to_client}>&-
unset to_client
wait "$client_pid" || fail "cli_client failed: $(cat "$WORK/client.err")"
for _ in $(seq 50); do
    run 0 "$CASK" status "$endpoint"
    grep -Eq '^tasks +0: ' "$WORK/out" && grep -Eq '^clients +0$' "$WORK/out" && break
    sleep 0.1
done
has '^tasks +0: 0 waiting, 0 processing, 0 in memory, 0 erred, 0 released$'
run 0 "$CASK" tasks "$endpoint"
has '^no tasks$'
status=0
say "ok"
