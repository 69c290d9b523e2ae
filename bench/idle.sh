#!/usr/bin/env bash
# Memory per idle keep-alive connection: BENCH_IDLE (10000) HTTP/1.1 client
# connections, one proxied 1 KiB GET each, then idle; the RSS of the gateway
# and of nginx (its worker) before and after, one worker each, logging off.
# GATEWAY_PREV_BIN adds an older build. Settings as for run.sh (BENCH_BUILD,
# GATEWAY_BIN, BENCH_RESULTS_DIR). The client needs BENCH_IDLE + a few open
# files (ulimit -n) and as many loopback ports.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=run.sh
source "$BENCH_DIR/run.sh" # its functions and settings; its main does not run

IDLE="${BENCH_IDLE:-10000}"

hold() { # name port pid
    log "$1: $IDLE idle connections"
    python3 "$BENCH_DIR/idle.py" hold "$2" "$BENCH_PATH" "$IDLE" "$3" "$OUT/$1.json" >&2
}

main_idle() {
    ensure_tools
    begin_run idle
    [ "$(ulimit -n)" -gt $((IDLE + 100)) ] || die "ulimit -n is $(ulimit -n); $IDLE connections need more"
    local ports
    read -r -a ports <<<"$(python3 "$HELPER" free-ports 4)"
    UPSTREAM_PORT="${ports[0]}"
    start_upstream "$UPSTREAM_PORT"

    start_gateway "${ports[1]}"
    hold gateway "${ports[1]}" "$STARTED_PID"
    stop_pid "$STARTED_PID"

    start_nginx "${ports[2]}"
    local worker
    worker="$(children_of "$STARTED_PID" | awk '{print $1}')"
    [ -n "$worker" ] || die "no nginx worker process"
    hold nginx "${ports[2]}" "$worker"
    stop_pid "$STARTED_PID"

    if [ -n "${GATEWAY_PREV_BIN:-}" ]; then
        start_previous "${ports[3]}"
        hold previous "${ports[3]}" "$STARTED_PID"
        stop_pid "$STARTED_PID"
    fi

    cat >"$OUT/meta.env" <<META
date=$(date '+%F %T %Z')
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
gateway=$GATEWAY_BIN, source $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), GATEWAY_WORKERS=1
previous=${GATEWAY_PREV_BIN:-none}
nginx=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')
connections=$IDLE
notes=$NOTE
META
    echo
    python3 "$BENCH_DIR/idle.py" report "$OUT"
    log "results in ${OUT#"$ROOT"/}"
}

main_idle "$@"
