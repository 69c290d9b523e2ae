#!/usr/bin/env bash
# Authorized requests: the gateway with a cached token, the same gateway on
# an `auth: none` route, a cache miss on every request, and HAProxy 2.6
# doing the same HS256 check (jwt_verify + exp) in its config; the bare
# upstream for reference. Proxies pinned to BENCH_PROXY_CPU with one worker
# or thread, wrk and the upstream on BENCH_LOAD_CPU, logging off for all.
# Settings as for run.sh (BENCH_DURATION, BENCH_WARMUP, BENCH_ROUNDS,
# BENCH_BUILD, GATEWAY_BIN, BENCH_RESULTS_DIR); BENCH_CONNECTIONS is one count (64).
# GATEWAY_PREV_BIN adds an older build (none and cached), measured in the same run.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=run.sh
source "$BENCH_DIR/run.sh" # its functions and settings; its main does not run

CONNS="${BENCH_CONNECTIONS:-64}"
MISS_TOKENS=20000

# The gateway, one worker pinned to the proxy CPU; NAME picks its cache size.
start_gw() { # name port cache_capacity [binary]
    authz_yaml "$2" "$TMP/$1-store" "$3" >"$TMP/$1.yaml"
    ( cd "$TMP" && exec taskset -c "$PROXY_CPU" env GATEWAY_WORKERS=1 \
        "${4:-$GATEWAY_BIN}" serve --config "$TMP/$1.yaml" ) >"$TMP/$1.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_ready "$1" "$STARTED_PID" "$2"
}

# HAProxy 2.6, one thread, the same check the gateway makes on HS256:
# signature with the algorithm pinned, then exp.
start_haproxy() { # port
    mkdir -p "$TMP/haproxy"
    cat >"$TMP/haproxy/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    http-reuse always
frontend fe
    bind 127.0.0.1:$1
    http-request set-var(txn.bearer) http_auth_bearer
    http-request deny status 401 unless { var(txn.bearer) -m found }
    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
    http-request deny status 401 unless { var(txn.alg) -m str HS256 }
    http-request deny status 401 unless { var(txn.bearer),jwt_verify(txn.alg,"$SECRET") -m int 1 }
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
    http-request set-var(txn.now) date()
    http-request deny status 401 if { var(txn.exp),sub(txn.now) -m int le 0 }
    default_backend be
backend be
    server up 127.0.0.1:$UPSTREAM_PORT
CFG
    ( exec taskset -c "$PROXY_CPU" haproxy -db -f "$TMP/haproxy/haproxy.cfg" ) >"$TMP/haproxy.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    local i code
    for i in $(seq 100); do
        code="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$1$BENCH_PATH" || true)"
        [ "$code" = 200 ] && return 0
        alive "$STARTED_PID" || break
        sleep 0.1
    done
    tail -n 20 "$TMP/haproxy.log" >&2; die "haproxy did not start"
}

main_authz() {
    ensure_tools
    command -v haproxy >/dev/null || {
        log "installing Debian package: haproxy"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null
    }
    command -v curl >/dev/null || die "curl is needed"
    begin_run authz

    make_tokens "$TMP/one.txt" 1
    make_tokens "$TMP/many.txt" "$MISS_TOKENS"
    TOKEN="$(cat "$TMP/one.txt")"
    local ports
    read -r -a ports <<<"$(python3 "$HELPER" free-ports 5)"
    UPSTREAM_PORT="${ports[0]}"
    start_upstream "$UPSTREAM_PORT"
    start_gw gateway "${ports[1]}" 100000; local gw_pid="$STARTED_PID"
    start_gw gateway-miss "${ports[2]}" 1
    start_haproxy "${ports[3]}"
    local names=(upstream gateway-none gateway-cached gateway-miss haproxy)
    if [ -n "${GATEWAY_PREV_BIN:-}" ]; then
        start_gw gateway-prev "${ports[4]}" 100000 "$GATEWAY_PREV_BIN"
        names+=(prev-none prev-cached)
    fi

    local base="http://127.0.0.1" round k
    for ((round = 1; round <= ROUNDS; round++)); do
        for ((k = 0; k < ${#names[@]}; k++)); do
            case "${names[$(((k + round - 1) % ${#names[@]}))]}" in
                upstream) measure upstream "$round" "$base:$UPSTREAM_PORT$BENCH_PATH" ;;
                gateway-none) measure gateway-none "$round" "$base:${ports[1]}$BENCH_PATH" ;;
                gateway-cached) measure gateway-cached "$round" "$base:${ports[1]}/authed$BENCH_PATH" \
                    -H "Authorization: Bearer $TOKEN" ;;
                gateway-miss) TOKENS_FILE="$TMP/many.txt" measure gateway-miss "$round" \
                    "$base:${ports[2]}/authed$BENCH_PATH" -s "$BENCH_DIR/tokens.lua" ;;
                haproxy) measure haproxy "$round" "$base:${ports[3]}$BENCH_PATH" \
                    -H "Authorization: Bearer $TOKEN" ;;
                prev-none) measure prev-none "$round" "$base:${ports[4]}$BENCH_PATH" ;;
                prev-cached) measure prev-cached "$round" "$base:${ports[4]}/authed$BENCH_PATH" \
                    -H "Authorization: Bearer $TOKEN" ;;
            esac
        done
    done

    cat >"$OUT/meta.env" <<META
date=$(date '+%F %T %Z')
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
gateway=$GATEWAY_BIN, source $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), GATEWAY_WORKERS=1
previous=${GATEWAY_PREV_BIN:-none}
haproxy=$(haproxy -v | head -n1 | awk '{print $3}'), nbthread 1
connections=$CONNS
duration=$DURATION
rounds=$ROUNDS
proxy_cpu=$PROXY_CPU
load_cpu=$LOAD_CPU
gateway_vmhwm_kib=$(status_field "$gw_pid" VmHWM | awk '{print $1}')
notes=$NOTE
META
    cp "$TMP/gateway.yaml" "$TMP/haproxy/haproxy.cfg" "$OUT/" 2>/dev/null || true
    echo
    python3 "$BENCH_DIR/authz.py" "$OUT"
    python3 "$BENCH_DIR/chart.py" "$OUT" "Authorizer (bench/authz.sh)" >&2 ||
        log "warning: no chart (matplotlib could not be installed)"
    log "results in ${OUT#"$ROOT"/}"
}

main_authz "$@"
