#!/usr/bin/env bash
# The account endpoints of docs/identity.md, redb and PostgreSQL in one run,
# wrk with 16 connections on each:
#  1. GET /sessions for a user with 10 to 12 live sessions (Bearer, cached token);
#  2. POST /refresh-token with the token the last rotation replaced, inside
#     `reuse_interval` (60 s): the grace answer, a fresh access token and
#     the current refresh token made again, each time;
#  3. POST /password-reset for an unknown email: the 202 alone;
#  4. POST /password-reset for a known email with `resend_interval: 0s`:
#     every request makes a token in the store and delivers it to a
#     webhook (the bare nginx upstream) after its 202; the deliveries made
#     and the requests dropped (too many pending) are read from /metrics.
# Gateways unpinned, default workers; wrk pinned to BENCH_LOAD_CPU.
# Settings as for run.sh (BENCH_DURATION, BENCH_WARMUP, BENCH_ROUNDS,
# BENCH_BUILD, GATEWAY_BIN, BENCH_RESULTS_DIR).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=run.sh
source "$BENCH_DIR/run.sh" # its functions and settings; its main does not run
# shellcheck source=stores.sh
source "$BENCH_DIR/stores.sh"

CONNS=16
HOOK_SECRET="bench-webhook-secret-0123456789abcdefgh"

# run.sh's `measure`, POSTing BODY to PATH_TO (bench/post.lua).
post_run() { # name round port path body
    PATH_TO="$4" BODY="$5" measure "$1" "$2" "http://127.0.0.1:$3" -s "$BENCH_DIR/post.lua"
}

main_accounts() {
    begin_store_run accounts 6
    local ports=("${PORTS[@]}")
    local pg
    pg="$(new_database accounts)"
    local stores=(redb pg) name i port admin
    for i in 0 1; do
        name="${stores[$i]}"
        port="${ports[$((2 + 2 * i))]}"; admin="${ports[$((3 + 2 * i))]}"
        local store="$pg"
        [ "$name" = redb ] && store="$TMP/redb-store/users.redb"
        endpoint_yaml "$port" "$store" "admin: { listen: \"127.0.0.1:$admin\" }" \
            "  password_reset: { webhook: \"http://127.0.0.1:$UPSTREAM_PORT$BENCH_PATH\", webhook_secret: \"$HOOK_SECRET\", resend_interval: 0s }" \
            | sed 's/^  refresh_token: { secret: \(.*\) }$/  refresh_token: { secret: \1, reuse_interval: 60s }/' >"$TMP/$name.yaml"
        ( cd "$TMP" && exec "$GATEWAY_BIN" serve --config "$TMP/$name.yaml" ) >"$TMP/$name.log" 2>&1 &
        STARTED_PID=$!
        PIDS+=("$STARTED_PID")
        wait_ready "$name" "$STARTED_PID" "$port"
        python3 "$BENCH_DIR/accounts.py" signup "$port" >"$OUT/$name-user.txt"
    done
    local round access replaced
    for ((round = 1; round <= ROUNDS; round++)); do
        for i in 0 1; do
            name="${stores[$i]}"
            port="${ports[$((2 + 2 * i))]}"; admin="${ports[$((3 + 2 * i))]}"
            # A fresh rotation each round, so the replaced token stays in the interval.
            read -r access replaced <<<"$(python3 "$BENCH_DIR/accounts.py" tokens "$port")"
            measure "$name-sessions" "$round" "http://127.0.0.1:$port/sessions" \
                -H "Authorization: Bearer $access"
            post_run "$name-grace" "$round" "$port" /refresh-token "{\"refreshToken\":\"$replaced\"}"
            post_run "$name-reset-unknown" "$round" "$port" /password-reset '{"email":"nobody@example.com"}'
            python3 "$BENCH_DIR/accounts.py" deliveries "$admin" >"$OUT/$name-deliveries-before.r$round.txt"
            post_run "$name-reset-known" "$round" "$port" /password-reset '{"email":"bench@example.com"}'
            sleep 2 # deliveries after the last 202s
            python3 "$BENCH_DIR/accounts.py" deliveries "$admin" >"$OUT/$name-deliveries-after.r$round.txt"
        done
    done
    cat >"$OUT/meta.env" <<META
sessions_per_user=10
connections=$CONNS
warmup=$WARMUP
bcrypt_cost=4
reuse_interval=60s
resend_interval=0s
META
    finish_run accounts.py
}

main_accounts "$@"
