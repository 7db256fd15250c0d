# shellcheck shell=bash
# shell_lib.sh - what the shell tests share at their end (sourced, not run):
# stopping the processes they started, and showing the logs of a failed
# run. The sourcing script defines say first.

# stop_pids GRACE_S PID...: TERM to each, then KILL to each still alive
# GRACE_S seconds later (counted per process, in tenths).
stop_pids () {
    local tenths=$(( $1 * 10 )) pid i
    shift
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for (( i = 0; i < tenths; i++ )); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}

# print_logs LINES FILE...: the last LINES lines of each FILE that is not
# empty, under its name, on stderr.
print_logs () {
    local lines=$1 log
    shift
    for log in "$@"; do
        [[ -s $log ]] || continue
        say "----- $log (last lines) -----"
        tail -n "$lines" "$log" >&2
    done
}
