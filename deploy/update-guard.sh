#!/bin/sh
# Run an update command only when no deployment is live.
#
#   update-guard.sh [--lock PATH] [--wait SECONDS] -- COMMAND [ARG...]
#
# Takes the agent's deployment lock (default /run/lfr-agent/deployment.lock)
# for the whole run of COMMAND, so a deployment cannot start mid-update and an
# update never starts mid-deployment. Exit codes: COMMAND's own, or
#   75  a deployment is live (the lock is held, or unreadable); nothing was run
#   2   bad usage
set -eu

lock=/run/lfr-agent/deployment.lock
wait_s=0
while [ $# -gt 0 ]; do
    case "$1" in
        --lock) [ $# -ge 2 ] || { echo "update-guard: --lock needs a path" >&2; exit 2; }; lock=$2; shift 2 ;;
        --wait) [ $# -ge 2 ] || { echo "update-guard: --wait needs seconds" >&2; exit 2; }; wait_s=$2; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "update-guard: no command given (see --help)" >&2; exit 2; }
case "$wait_s" in ''|*[!0-9]*) echo "update-guard: --wait must be whole seconds, got '$wait_s'" >&2; exit 2 ;; esac

if [ ! -e "$lock" ]; then
    # No lock file: the agent is not installed or its runtime directory is gone,
    # so no deployment can be live.
    echo "update-guard: no deployment lock at $lock; running update" >&2
    exec "$@"
fi

if [ ! -r "$lock" ]; then
    echo "update-guard: cannot read $lock (run as root)" >&2
    exit 75
fi
exec 9<"$lock"
if [ "$wait_s" -gt 0 ]; then
    got_lock() { flock -w "$wait_s" 9; }
else
    got_lock() { flock -n 9; }
fi
if ! got_lock; then
    holder=$(head -c 512 "$lock" 2>/dev/null | tr -d '\n' || true)
    echo "update-guard: a deployment is live, update refused: ${holder:-lock held} ($lock)" >&2
    exit 75
fi
# This shell holds the lock until COMMAND ends; COMMAND itself does not get the descriptor.
rc=0
"$@" 9<&- || rc=$?
exit "$rc"
