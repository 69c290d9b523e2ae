#!/usr/bin/env bash
# The two user stores in one run (docs/clusters.md):
#  1. the built-in endpoints: sign-ups, sign-ins and refreshes per second and
#     their p99, on redb, on PostgreSQL with one gateway, and on PostgreSQL
#     with two gateways sharing the database (the load split between them);
#     bcrypt cost 4, so that the store's cost shows rather than the hash's;
#     gateways unpinned with their default workers, as shipped;
#  2. proxied requests with a cached bearer token on a protected route, redb
#     store vs PostgreSQL store, one worker pinned to BENCH_PROXY_CPU as in
#     authz.sh: the cache-hit path never touches the database, so the two
#     should not differ beyond noise.
# A throwaway PostgreSQL 15 server (Debian's `postgresql`) runs in the work
# folder on a free loopback port, stopped by PID at the end.
# Settings as for run.sh (BENCH_DURATION, BENCH_WARMUP, BENCH_ROUNDS,
# BENCH_BUILD, GATEWAY_BIN, BENCH_RESULTS_DIR); BENCH_CONNECTIONS is one
# count (64 for the proxied part; the endpoints use BENCH_ENDPOINT_CONNECTIONS, 16).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=run.sh
source "$BENCH_DIR/run.sh" # its functions and settings; its main does not run
# shellcheck source=stores.sh
source "$BENCH_DIR/stores.sh"

CONNS="${BENCH_CONNECTIONS:-64}"
ENDPOINT_CONNS="${BENCH_ENDPOINT_CONNECTIONS:-16}"
USERS=256

start_endpoint_gw() { # name port store
    endpoint_yaml "$2" "$3" >"$TMP/$1.yaml"
    ( cd "$TMP" && exec "$GATEWAY_BIN" serve --config "$TMP/$1.yaml" ) >"$TMP/$1.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_ready "$1" "$STARTED_PID" "$2"
}

# USERS accounts (bench<i>@example.com) and one refresh token per account,
# signed up through PORT; the tokens go to FILE.
make_accounts() { # port file
    local i
    : >"$2"
    for ((i = 1; i <= USERS; i++)); do
        curl -sf -X POST "http://127.0.0.1:$1/signup" -H 'content-type: application/json' \
            -d "{\"email\":\"bench$i@example.com\",\"password\":\"bench-Pa55word-$i\",\"firstName\":\"B\",\"lastName\":\"U\"}" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["refresh_token"])' >>"$2" ||
            die "sign-up of bench$i failed"
    done
}

# One endpoint load on the gateways at PORTS (the connections split
# between them), wrk per gateway at once; outputs NAME.rROUND.gN.txt.
endpoint_load() { # name round op ports...
    local name="$1" round="$2" op="$3"; shift 3
    local ports=("$@") n=${#@} k pids=() per=$((ENDPOINT_CONNS / ${#@}))
    for ((k = 0; k < n; k++)); do
        local script args=()
        case "$op" in
            signup) script=signup.lua ;;
            signin) script=signin.lua ;;
            refresh) script=refresh.lua
                # Each wrk its own slice of the tokens: a token is used once.
                split -n "l/$((k + 1))/$n" "$TMP/refresh-$name.txt" >"$TMP/refresh-$name.$k.txt" ;;
        esac
        SIGNUP_PREFIX="$name-r$round-g$k" SIGNIN_USERS=$USERS REFRESH_FILE="$TMP/refresh-$name.$k.txt" \
            wrk -t1 -c"$per" -d"$DURATION" --timeout 10s --latency -s "$BENCH_DIR/$script" \
            "http://127.0.0.1:${ports[$k]}" >"$OUT/$name-$op.r$round.g$k.txt" 2>&1 &
        pids+=("$!")
    done
    for k in "${pids[@]}"; do wait "$k"; done
    log "round $round  $(printf '%-12s %-8s' "$name" "$op") $(python3 "$BENCH_DIR/store.py" brief "$OUT" "$name-$op.r$round")"
}

main_store() {
    command -v curl >/dev/null || die "curl is needed"
    begin_store_run store 8
    local ports=("${PORTS[@]}")

    # 1. The endpoints. Each contender gets its own store, accounts and
    #    refresh tokens (the tokens are made again before each refresh run:
    #    a rotated token cannot be used twice).
    local pg1 pg2
    pg1="$(new_database one)"; pg2="$(new_database two)"
    start_endpoint_gw redb "${ports[2]}" "$TMP/redb-store/users.redb"
    start_endpoint_gw pg1 "${ports[3]}" "$pg1"
    start_endpoint_gw pg2a "${ports[4]}" "$pg2"
    start_endpoint_gw pg2b "${ports[5]}" "$pg2"
    make_accounts "${ports[2]}" "$TMP/refresh-redb.txt"
    make_accounts "${ports[3]}" "$TMP/refresh-pg1.txt"
    make_accounts "${ports[4]}" "$TMP/refresh-pg2.txt"
    local round
    for ((round = 1; round <= ROUNDS; round++)); do
        for op in signup signin refresh; do
            endpoint_load redb "$round" "$op" "${ports[2]}"
            endpoint_load pg1 "$round" "$op" "${ports[3]}"
            endpoint_load pg2 "$round" "$op" "${ports[4]}" "${ports[5]}"
        done
        # Fresh tokens for the next round's refreshes (these were rotated).
        if ((round < ROUNDS)); then
            USERS=$((ENDPOINT_CONNS * 4))
            for c in redb:2 pg1:3 pg2:4; do
                local name="${c%%:*}" idx="${c##*:}" i
                : >"$TMP/refresh-$name.txt"
                for ((i = 1; i <= USERS; i++)); do
                    curl -sf -X POST "http://127.0.0.1:${ports[$idx]}/signin" -H 'content-type: application/json' \
                        -d "{\"email\":\"bench$i@example.com\",\"password\":\"bench-Pa55word-$i\"}" |
                        python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["refresh_token"])' \
                        >>"$TMP/refresh-$name.txt"
                done
            done
            USERS=256
        fi
    done
    for name in redb pg1 pg2a pg2b; do
        local pid
        pid="$(pgrep -f "config $TMP/$name.yaml" | head -n1)"
        [ -n "$pid" ] && stop_pid "$pid"
    done

    # 2. Proxied requests with a cached token: redb vs PostgreSQL, pinned.
    make_tokens "$TMP/one.txt" 1
    TOKEN="$(cat "$TMP/one.txt")"
    local pg3
    pg3="$(new_database proxied)"
    authz_yaml "${ports[6]}" "$TMP/redb-proxied" 100000 >"$TMP/proxy-redb.yaml"
    authz_yaml "${ports[7]}" "$TMP/unused" 100000 |
        sed "s|store: .*|store: \"$pg3\"|" >"$TMP/proxy-pg.yaml"
    local name port
    for name in proxy-redb proxy-pg; do
        port="$(awk '/^listen:/ { sub(/.*:/, "", $2); print $2 }' "$TMP/$name.yaml")"
        ( cd "$TMP" && exec taskset -c "$PROXY_CPU" env GATEWAY_WORKERS=1 \
            "$GATEWAY_BIN" serve --config "$TMP/$name.yaml" ) >"$TMP/$name.log" 2>&1 &
        STARTED_PID=$!
        PIDS+=("$STARTED_PID")
        wait_ready "$name" "$STARTED_PID" "$port"
    done
    local names=(proxy-redb proxy-pg) k
    local xact_sql="SELECT xact_commit FROM pg_stat_database WHERE datname = 'proxied'"
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atqc "$xact_sql" >"$OUT/proxied-xact.txt"
    for ((round = 1; round <= ROUNDS; round++)); do
        for ((k = 0; k < 2; k++)); do
            name="${names[$(((k + round - 1) % 2))]}"
            port="$(awk '/^listen:/ { sub(/.*:/, "", $2); print $2 }' "$TMP/$name.yaml")"
            measure "$name" "$round" "http://127.0.0.1:$port/authed$BENCH_PATH" \
                -H "Authorization: Bearer $TOKEN"
        done
    done
    # What the PostgreSQL gateway asked its database while serving part 2:
    # only the revocation feed's backstop read (every 5 s), whatever the
    # number of requests.
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atqc "$xact_sql" >>"$OUT/proxied-xact.txt"

    cat >"$OUT/meta.env" <<META
bcrypt_cost=4
endpoint_connections=$ENDPOINT_CONNS (split between the gateways of a contender)
proxied_connections=$CONNS
META
    finish_run store.py
}

main_store "$@"
