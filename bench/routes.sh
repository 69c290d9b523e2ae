#!/usr/bin/env bash
# Routing cost against the number of routes: one gateway with 5,001 routes
# (`/svc{i}/items/{id}/*`, the echo target), asked for the first route, the
# 2,501st, the last, and a path no route matches (404), one worker pinned to
# BENCH_PROXY_CPU, wrk on BENCH_LOAD_CPU. GATEWAY_PREV_BIN adds an older
# build with the same config, measured in the same run. Settings as for
# run.sh (BENCH_DURATION, BENCH_WARMUP, BENCH_ROUNDS, BENCH_BUILD,
# GATEWAY_BIN, BENCH_RESULTS_DIR); BENCH_CONNECTIONS is one count (64);
# BENCH_ROUTES the number of routes (5001).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=run.sh
source "$BENCH_DIR/run.sh" # its functions and settings; its main does not run

CONNS="${BENCH_CONNECTIONS:-64}"
ROUTES="${BENCH_ROUTES:-5001}"

routes_yaml() { # port
    echo "listen: 127.0.0.1:$1"
    echo "log: { access: false }"
    echo "routes:"
    local i
    for ((i = 0; i < ROUTES; i++)); do
        echo "  - { name: svc$i, path: \"/svc$i/items/{id}/*\", echo: true, auth: none }"
    done
}

start_routes_gw() { # name port binary
    routes_yaml "$2" >"$TMP/$1.yaml"
    ( cd "$TMP" && exec taskset -c "$PROXY_CPU" env GATEWAY_WORKERS=1 \
        "$3" serve --config "$TMP/$1.yaml" ) >"$TMP/$1.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    local i
    for i in $(seq 200); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/svc0/items/1/x" || true)" = 200 ] && return 0
        alive "$STARTED_PID" || break
        sleep 0.1
    done
    tail -n 20 "$TMP/$1.log" >&2; die "$1 did not start"
}

main_routes() {
    ensure_tools
    command -v curl >/dev/null || die "curl is needed"
    begin_run routes
    local ports
    read -r -a ports <<<"$(python3 "$HELPER" free-ports 2)"
    start_routes_gw gateway "${ports[0]}" "$GATEWAY_BIN"
    local gw_pid="$STARTED_PID" builds=(gateway)
    if [ -n "${GATEWAY_PREV_BIN:-}" ]; then
        start_routes_gw previous "${ports[1]}" "$GATEWAY_PREV_BIN"
        builds+=(previous)
    fi
    local middle=$((ROUTES / 2)) last=$((ROUTES - 1))
    local -A url=([first]="/svc0/items/1/x" [middle]="/svc$middle/items/1/x"
        [last]="/svc$last/items/1/x" [404]="/nope/items/1/x")
    local names=() b w
    for b in "${builds[@]}"; do for w in first middle last 404; do names+=("$b-$w"); done; done

    local round k name port
    for ((round = 1; round <= ROUNDS; round++)); do
        for ((k = 0; k < ${#names[@]}; k++)); do
            name="${names[$(((k + round - 1) % ${#names[@]}))]}"
            case "$name" in gateway-*) port="${ports[0]}" ;; *) port="${ports[1]}" ;; esac
            measure "$name" "$round" "http://127.0.0.1:$port${url[${name#*-}]}"
        done
    done

    cat >"$OUT/meta.env" <<META
date=$(date '+%F %T %Z')
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
gateway=$GATEWAY_BIN, source $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), GATEWAY_WORKERS=1
previous=${GATEWAY_PREV_BIN:-none}
routes=$ROUTES
connections=$CONNS
duration=$DURATION
rounds=$ROUNDS
proxy_cpu=$PROXY_CPU
load_cpu=$LOAD_CPU
gateway_vmhwm_kib=$(status_field "$gw_pid" VmHWM | awk '{print $1}')
notes=$NOTE
META
    echo
    python3 "$BENCH_DIR/routes.py" "$OUT"
    log "results in ${OUT#"$ROOT"/}"
}

main_routes "$@"
