#!/usr/bin/env bash
# Sign-ins per second at bcrypt cost 10 against the bound (hashing threads /
# single-hash time, measured in this run), and the latency of proxied
# `auth: none` requests while a sign-in storm runs, against their latency
# when idle. One command, one run; see bench/README.md. Settings:
#   BENCH_ROUNDS            rounds, medians reported (3)
#   BENCH_SIGNIN_DURATION   length of each measured run (20s)
#   BENCH_STORM_CONNECTIONS concurrent sign-in clients in the storm (8)
#   BENCH_PROBE_RATE        proxied requests per second of the latency probe (500)
#   BENCH_BUILD, GATEWAY_BIN, BENCH_RESULTS_DIR as for run.sh
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=run.sh
source "$BENCH_DIR/run.sh" # its functions and settings; its main does not run

SIGNIN_DURATION="${BENCH_SIGNIN_DURATION:-20s}"
STORM_CONNECTIONS="${BENCH_STORM_CONNECTIONS:-8}"
PROBE_RATE="${BENCH_PROBE_RATE:-500}"
PROBE_WORKERS=4
COST=10
export SIGNIN_USERS=64
HASH_BIN="$ROOT/target/release/examples/hash_time"
SECS="${SIGNIN_DURATION%s}"

start_identity_gateway() { # port
    local port="$1"
    cat >"$TMP/gateway.yaml" <<YAML
listen: 127.0.0.1:$port
log: { access: false }
auth:
  store: $TMP/store/users.redb
  bcrypt_cost: $COST
  endpoint_limit: off   # the storm is the point; the limit would refuse it
routes:
  - name: bench
    path: $BENCH_PATH
    upstream: http://127.0.0.1:$UPSTREAM_PORT
    auth: none
YAML
    # The gateway as shipped: every core, default workers and hashing threads.
    ( cd "$TMP" && exec "$GATEWAY_BIN" serve --config "$TMP/gateway.yaml" ) >"$TMP/gateway.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_ready gateway "$STARTED_PID" "$port"
}

make_users() { # port
    local i code
    for ((i = 1; i <= SIGNIN_USERS; i++)); do
        code="$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$1/signup" \
            -H 'content-type: application/json' \
            -d "{\"email\":\"bench$i@example.com\",\"password\":\"bench-Pa55word-$i\",\"firstName\":\"B\",\"lastName\":\"U\"}")"
        [ "$code" = 201 ] || die "sign-up of bench$i failed: $code"
    done
}

probe() { # port out: proxied GETs at a fixed rate
    hey -z "$SIGNIN_DURATION" -c "$PROBE_WORKERS" -q "$((PROBE_RATE / PROBE_WORKERS))" \
        "http://127.0.0.1:$1$BENCH_PATH" >"$2" 2>&1
}

storm() { # port duration out
    # A queued sign-in waits for the hashes ahead of it: a long timeout, so
    # that wrk counts every answer instead of dropping the slow ones.
    wrk -t1 -c"$STORM_CONNECTIONS" -d"$2" --timeout 30s --latency -s "$BENCH_DIR/signin.lua" \
        "http://127.0.0.1:$1" >"$3" 2>&1
}

main_signin() {
    ensure_tools
    command -v hey >/dev/null || {
        log "installing Debian package: hey"
        apt-get install -y -qq hey >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq hey >/dev/null; }
    }
    command -v curl >/dev/null || die "curl is needed"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    ensure_gateway_bin || die "no gateway binary"
    if [ ! -x "$HASH_BIN" ] || [ "$BUILD" = 1 ]; then
        (cd "$ROOT" && cargo build --release --example hash_time) || die "build of hash_time failed"
    fi

    OUT="${BENCH_RESULTS_DIR:-$BENCH_DIR/results/$(date +%F)-signin}"
    mkdir -p "$OUT"
    rm -f "$OUT"/*.txt "$OUT/meta.env"
    TMP="$(mktemp -d "${TMPDIR:-/tmp}/gateway-bench.XXXXXX")"
    chmod 755 "$TMP"
    local busy note=""
    if ! busy="$(python3 "$HELPER" cpu-busy 2 10)"; then
        log "warning: the machine is not idle ($busy)"
        note="machine not idle before start ($busy): figures unreliable"
    fi

    local ports gw_port
    read -r -a ports <<<"$(python3 "$HELPER" free-ports 2)"
    UPSTREAM_PORT="${ports[0]}"; gw_port="${ports[1]}"
    LOAD_CPU=0-1 start_upstream "$UPSTREAM_PORT"
    start_identity_gateway "$gw_port"
    local gw_pid="$STARTED_PID" threads
    make_users "$gw_port"
    threads="$(grep -o '"hashing_threads":[0-9]*' "$TMP/gateway.log" | head -n1 | cut -d: -f2)"
    [ -n "$threads" ] || die "no hashing_threads in the gateway log"
    log "gateway ready with $SIGNIN_USERS users, $threads hashing thread(s)"

    local round
    for ((round = 1; round <= ROUNDS; round++)); do
        "$HASH_BIN" "$COST" 30 >"$OUT/hash.r$round.txt"
        log "round $round: single hash mean, median $(cat "$OUT/hash.r$round.txt") ms"
        probe "$gw_port" "$OUT/probe-idle.r$round.txt"
        storm "$gw_port" "$SIGNIN_DURATION" "$OUT/storm-alone.r$round.txt"
        # The storm runs past both ends of the probe.
        storm "$gw_port" "$((SECS + 6))s" "$OUT/storm-mixed.r$round.txt" &
        local storm_pid=$!
        sleep 3
        probe "$gw_port" "$OUT/probe-storm.r$round.txt"
        wait "$storm_pid"
        alive "$gw_pid" || die "the gateway died during round $round"
        python3 "$BENCH_DIR/signin.py" brief "$OUT" "$round" >&2
    done

    cat >"$OUT/meta.env" <<META
date=$(date '+%F %T %Z')
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
nproc=$(nproc --all)
gateway=$GATEWAY_BIN, source $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), unpinned, default workers
hashing_threads=$threads
bcrypt_cost=$COST
rounds=$ROUNDS
duration=$SIGNIN_DURATION
storm_connections=$STORM_CONNECTIONS
probe_rate=$PROBE_RATE
probe_workers=$PROBE_WORKERS
users=$SIGNIN_USERS
gateway_vmhwm_kib=$(status_field "$gw_pid" VmHWM | awk '{print $1}')
notes=$note
META
    cp "$TMP/gateway.yaml" "$OUT/gateway.yaml"
    echo
    python3 "$BENCH_DIR/signin.py" report "$OUT"
    log "results in ${OUT#"$ROOT"/}"
}

main_signin "$@"
