#!/usr/bin/env bash
# The admin API on a store of USERS users (docs/admin.md), redb and
# PostgreSQL in one run:
#  1. creating the users through POST /admin/users (one client, keep-alive,
#     bcrypt cost 4): users created per second;
#  2. wrk on three reads: the first page of 100 users, a page of 100 from
#     deep in the list (a cursor near the end), and a search (`q=`) that
#     matches one user in 100 and so reads every user: req/s and p99;
#  3. the proxied path (`auth: none`, 64 connections) on the same gateway
#     while nothing else runs, and while a client lists pages of 1000 users
#     in a loop: what an operator's listing costs the traffic.
# Gateways unpinned, default workers, as shipped; wrk pinned to
# BENCH_LOAD_CPU. Settings as for run.sh (BENCH_DURATION, BENCH_WARMUP,
# BENCH_ROUNDS, BENCH_BUILD, GATEWAY_BIN, BENCH_RESULTS_DIR); BENCH_ADMIN_USERS (10000).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=run.sh
source "$BENCH_DIR/run.sh" # its functions and settings; its main does not run
# shellcheck source=stores.sh
source "$BENCH_DIR/stores.sh"

USERS="${BENCH_ADMIN_USERS:-10000}"
CONNS=16
ADMIN_TOKEN="bench-admin-token-0123456789abcdefghij"

# run.sh's `measure` on one admin read, with the token.
admin_read() { # name round url
    measure "$1" "$2" "$3" -H "Authorization: Bearer $ADMIN_TOKEN"
}

main_admin() {
    begin_store_run admin 6
    local ports=("${PORTS[@]}")
    local pg
    pg="$(new_database admin)"
    local stores=(redb pg) name i port admin
    for i in 0 1; do
        name="${stores[$i]}"
        port="${ports[$((2 + 2 * i))]}"; admin="${ports[$((3 + 2 * i))]}"
        local store="$pg" line="admin: { listen: \"127.0.0.1:$admin\", token: \"$ADMIN_TOKEN\" }"
        [ "$name" = redb ] && store="$TMP/redb-store/users.redb"
        endpoint_yaml "$port" "$store" "$line" >"$TMP/$name.yaml"
        ( cd "$TMP" && exec "$GATEWAY_BIN" serve --config "$TMP/$name.yaml" ) >"$TMP/$name.log" 2>&1 &
        STARTED_PID=$!
        PIDS+=("$STARTED_PID")
        wait_ready "$name" "$STARTED_PID" "$port"
        python3 "$BENCH_DIR/admin.py" create "$admin" "$ADMIN_TOKEN" "$USERS" >"$OUT/$name-create.txt"
        log "$name: $(cat "$OUT/$name-create.txt")"
    done
    local round deep
    for ((round = 1; round <= ROUNDS; round++)); do
        for i in 0 1; do
            name="${stores[$i]}"
            port="${ports[$((2 + 2 * i))]}"; admin="${ports[$((3 + 2 * i))]}"
            deep="$(python3 "$BENCH_DIR/admin.py" cursor "$admin" "$ADMIN_TOKEN" $((USERS - 100)))"
            admin_read "$name-first" "$round" "http://127.0.0.1:$admin/admin/users?limit=100"
            admin_read "$name-deep" "$round" "http://127.0.0.1:$admin/admin/users?limit=100&after=$deep"
            admin_read "$name-search" "$round" "http://127.0.0.1:$admin/admin/users?limit=100&q=%40d7."
            CONNS=64
            measure "$name-proxy-idle" "$round" "http://127.0.0.1:$port$BENCH_PATH"
            python3 "$BENCH_DIR/admin.py" list-loop "$admin" "$ADMIN_TOKEN" >"$OUT/$name-lister.r$round.txt" &
            local lister=$!
            measure "$name-proxy-listing" "$round" "http://127.0.0.1:$port$BENCH_PATH"
            kill "$lister" 2>/dev/null || true
            wait "$lister" 2>/dev/null || true
            CONNS=16
        done
    done
    cat >"$OUT/meta.env" <<META
users=$USERS
bcrypt_cost=4
admin_connections=16
proxied_connections=64
META
    finish_run admin.py
}

main_admin "$@"
