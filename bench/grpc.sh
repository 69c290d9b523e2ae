#!/usr/bin/env bash
# Unary gRPC calls per second (docs/grpc.md), in one run and under the same
# conditions: straight to the server (`direct`), through the gateway (an
# `upstream_protocol: h2` route, `auth: none`, one worker) and through
# nginx `grpc_pass` (one worker, a keep-alive upstream pool). Proxies on
# BENCH_PROXY_CPU; the load generator and the server (bench/grpc_load.rs,
# tonic, one thread each) on BENCH_LOAD_CPU; logging off for all.
# BENCH_GRPC_CONNECTIONS (4) HTTP/2 connections, BENCH_GRPC_IN_FLIGHT
# ("64 256") calls outstanding, one scenario each; 64-byte messages.
# Other settings as for run.sh (BENCH_DURATION, BENCH_WARMUP, BENCH_ROUNDS,
# BENCH_BUILD, GATEWAY_BIN, BENCH_RESULTS_DIR). Output: summary.md and
# results.json in bench/results/<date>-grpc.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=run.sh
source "$BENCH_DIR/run.sh" # its functions and settings; its main does not run

GRPC_CONNS="${BENCH_GRPC_CONNECTIONS:-4}"
IN_FLIGHT="${BENCH_GRPC_IN_FLIGHT:-64 256}"
SECS="${DURATION%s}"
WARM="${WARMUP%s}"

loader_bin() {
    (cd "$ROOT" && cargo bench --bench grpc_load --no-run --message-format=json 2>/dev/null) |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "grpc_load" and m.get("executable"):
        print(m["executable"])'
}

wait_port() { # name pid port
    local i
    for i in $(seq 200); do
        alive "$2" || { tail -n 20 "$TMP/$1.log" >&2; die "$1 exited"; }
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $3), 0.2).close()" 2>/dev/null && return 0
        sleep 0.05
    done
    die "$1 did not listen on $3"
}

start_grpc_nginx() { # port
    mkdir -p "$TMP/nginx"
    { nginx_common nginx; cat <<CONF
    upstream grpc_upstream {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 512;   # nginx runs one call per upstream connection: room for every call in flight
    }
    server {
        listen 127.0.0.1:$1 http2 backlog=4096;
        http2_max_concurrent_streams 1000;
        location / { grpc_pass grpc://grpc_upstream; }
    }
}
CONF
    } >"$TMP/nginx/nginx.conf"
    launch_nginx nginx "$PROXY_CPU"
    wait_port nginx "$STARTED_PID" "$1"
}

start_grpc_gateway() { # port
    cat >"$TMP/gateway.yaml" <<YAML
listen: 127.0.0.1:$1
log: { access: false }
limits: { h2_max_streams: 1000 }
routes:
  - { name: grpc, path: "/bench.Echo/*", upstream: "http://127.0.0.1:$UPSTREAM_PORT", upstream_protocol: h2, auth: none }
YAML
    ( cd "$TMP" && exec taskset -c "$PROXY_CPU" env GATEWAY_WORKERS=1 \
        "$GATEWAY_BIN" serve --config "$TMP/gateway.yaml" ) >"$TMP/gateway.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_port gateway "$STARTED_PID" "$1"
}

# One contender, one round: a warm-up, then the measured load with the CPU
# counters read around it. Output NAME.rROUND.json and .cpu.
grpc_measure() { # name round port in_flight
    taskset -c "$LOAD_CPU" "$LOADER" load "127.0.0.1:$3" "$GRPC_CONNS" "$4" "$WARM" >/dev/null
    grep '^cpu[0-9]' /proc/stat >"$OUT/$1.r$2.cpu"
    taskset -c "$LOAD_CPU" "$LOADER" load "127.0.0.1:$3" "$GRPC_CONNS" "$4" "$SECS" >"$OUT/$1.r$2.json"
    { echo --; grep '^cpu[0-9]' /proc/stat; } >>"$OUT/$1.r$2.cpu"
    log "round $2  $(printf '%-14s' "$1") $(cat "$OUT/$1.r$2.json")"
}

main_grpc() {
    ensure_tools
    begin_run grpc
    log "building bench/grpc_load.rs (cargo bench --no-run)"
    LOADER="$(loader_bin | tail -n1)"
    [ -x "$LOADER" ] || die "no grpc_load binary"
    read -r UPSTREAM_PORT GW_PORT NGINX_PORT <<<"$(python3 "$HELPER" free-ports 3)"
    ( exec taskset -c "$LOAD_CPU" "$LOADER" serve "$UPSTREAM_PORT" ) >"$TMP/server.log" 2>&1 &
    PIDS+=("$!")
    wait_port server "$!" "$UPSTREAM_PORT"
    start_grpc_gateway "$GW_PORT"
    start_grpc_nginx "$NGINX_PORT"
    local round n name port
    for ((round = 1; round <= ROUNDS; round++)); do
        for n in $IN_FLIGHT; do
            for name in direct gateway nginx; do
                case "$name" in
                    direct) port="$UPSTREAM_PORT" ;;
                    gateway) port="$GW_PORT" ;;
                    nginx) port="$NGINX_PORT" ;;
                esac
                grpc_measure "$name-c$n" "$round" "$port" "$n"
            done
        done
    done
    cat >"$OUT/meta.env" <<META
date=$(date '+%F %T %Z')
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
nproc=$(nproc --all)
gateway=$GATEWAY_BIN, source $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
nginx=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')
connections=$GRPC_CONNS
in_flight=$IN_FLIGHT
duration=$DURATION
rounds=$ROUNDS
proxy_cpu=$PROXY_CPU
load_cpu=$LOAD_CPU
notes=$NOTE
META
    cp "$TMP"/*.yaml "$TMP/nginx/nginx.conf" "$OUT/" 2>/dev/null || true
    python3 "$BENCH_DIR/grpc.py" "$OUT"
    log "results in ${OUT#"$ROOT"/}"
}

main_grpc "$@"
