#!/usr/bin/env bash
# Operations benchmark: HTTPS termination (HTTP/1.1 keep-alive over TLS 1.3,
# ECDSA P-256) by the gateway against nginx doing the same, plus the plain
# listener, and optionally the previous build on the plain listener
# (GATEWAY_PREV_BIN) to show what per-request metrics cost. Proxies pinned
# to BENCH_PROXY_CPU with one worker, wrk and the bare upstream on
# BENCH_LOAD_CPU, logging off for all. Settings as for run.sh
# (BENCH_DURATION, BENCH_WARMUP, BENCH_ROUNDS, BENCH_BUILD, GATEWAY_BIN,
# BENCH_RESULTS_DIR); BENCH_CONNECTIONS is one count (64).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=run.sh
source "$BENCH_DIR/run.sh" # its functions and settings; its main does not run
CONNS="${BENCH_CONNECTIONS:-64}"
PREV_BIN="${GATEWAY_PREV_BIN:-}"

make_cert() { # dir
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=localhost" -addext "subjectAltName=IP:127.0.0.1" \
        -keyout "$1/bench.key" -out "$1/bench.crt" 2>/dev/null
}

start_gw_tls() { # name bin plain_port tls_port
    cat >"$TMP/$1.yaml" <<YAML
listen: 127.0.0.1:$3
$( [ -n "$4" ] && printf 'tls: { listen: "127.0.0.1:%s", cert: %s, key: %s }' "$4" "$TMP/bench.crt" "$TMP/bench.key" )
log: { access: false }
routes:
  - { name: bench, path: $BENCH_PATH, upstream: "http://127.0.0.1:$UPSTREAM_PORT", auth: none }
YAML
    ( cd "$TMP" && exec taskset -c "$PROXY_CPU" env GATEWAY_WORKERS=1 \
        "$2" serve --config "$TMP/$1.yaml" ) >"$TMP/$1.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_ready "$1" "$STARTED_PID" "$3"
}

start_nginx_tls() { # port
    mkdir -p "$TMP/nginx-tls"
    { nginx_common nginx-tls; cat <<CONF
    upstream bench_upstream {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 256;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$1 ssl backlog=4096;
        ssl_certificate $TMP/bench.crt;
        ssl_certificate_key $TMP/bench.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        keepalive_requests 10000000;
        location = $BENCH_PATH {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location / { return 404; }
    }
}
CONF
    } >"$TMP/nginx-tls/nginx.conf"
    launch_nginx nginx-tls "$PROXY_CPU"
    local i
    for i in $(seq 100); do
        curl -skf -o /dev/null "https://127.0.0.1:$1$BENCH_PATH" && return 0
        sleep 0.1
    done
    die "nginx (TLS) did not start"
}

main_tls() {
    ensure_tools
    command -v curl >/dev/null || die "curl is needed"
    command -v openssl >/dev/null || die "openssl is needed"
    begin_run tls
    make_cert "$TMP"
    local ports
    read -r -a ports <<<"$(python3 "$HELPER" free-ports 6)"
    UPSTREAM_PORT="${ports[0]}"
    start_upstream "$UPSTREAM_PORT"
    start_gw_tls gateway "$GATEWAY_BIN" "${ports[1]}" "${ports[2]}"; local gw_pid="$STARTED_PID"
    start_nginx_tls "${ports[3]}"
    local names=(upstream gateway-http gateway-https nginx-https)
    if [ -n "$PREV_BIN" ]; then
        start_gw_tls gateway-prev "$PREV_BIN" "${ports[4]}" ""
        names+=(gateway-prev-http)
    fi
    local round k
    for ((round = 1; round <= ROUNDS; round++)); do
        for ((k = 0; k < ${#names[@]}; k++)); do
            case "${names[$(((k + round - 1) % ${#names[@]}))]}" in
                upstream) measure upstream "$round" "http://127.0.0.1:$UPSTREAM_PORT$BENCH_PATH" ;;
                gateway-http) measure gateway-http "$round" "http://127.0.0.1:${ports[1]}$BENCH_PATH" ;;
                gateway-https) measure gateway-https "$round" "https://127.0.0.1:${ports[2]}$BENCH_PATH" ;;
                nginx-https) measure nginx-https "$round" "https://127.0.0.1:${ports[3]}$BENCH_PATH" ;;
                gateway-prev-http) measure gateway-prev-http "$round" "http://127.0.0.1:${ports[4]}$BENCH_PATH" ;;
            esac
        done
    done
    cat >"$OUT/meta.env" <<META
date=$(date '+%F %T %Z')
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
gateway=$GATEWAY_BIN, source $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), GATEWAY_WORKERS=1
previous=${PREV_BIN:-none}
nginx=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), worker_processes 1
connections=$CONNS
duration=$DURATION
rounds=$ROUNDS
proxy_cpu=$PROXY_CPU
load_cpu=$LOAD_CPU
gateway_vmhwm_kib=$(status_field "$gw_pid" VmHWM | awk '{print $1}')
notes=$NOTE
META
    cp "$TMP/gateway.yaml" "$TMP/nginx-tls/nginx.conf" "$OUT/" 2>/dev/null || true
    echo
    python3 "$BENCH_DIR/tls.py" "$OUT"
    log "results in ${OUT#"$ROOT"/}"
}

main_tls "$@"
