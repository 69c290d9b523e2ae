#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: a steady measure of
# the gateway's user-space cost on a host whose wall-clock figures move by
# ±15 % between runs (bench/README.md). Kernel time (loopback TCP, the
# syscalls) is not counted; run.sh measures the whole.
#
#   bench/instructions.sh NAME=BINARY [NAME=BINARY ...]
#
# Each binary serves run.sh's `auth: none` bench route to run.sh's bare nginx
# upstream, one worker, under valgrind. After a warm-up (pooled upstream
# connections open) the counters are zeroed, INSTR_REQUESTS (8000) GETs go
# over INSTR_CONNS (16) keep-alive connections, one in flight on each, and
# the count is divided by the requests. INSTR_ROUTE=limited measures run.sh's
# route under its generous rate limit; INSTR_ROUTE=authed measures the
# authorizer's route instead (authz.sh's config, one valid token, cached
# after the warm-up). Output: a table on stdout and, per
# binary, its 60 costliest functions (inclusive) in
# bench/results/<date>-instructions/ (BENCH_RESULTS_DIR).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=run.sh
source "$BENCH_DIR/run.sh" # its functions and settings; its main does not run
REQUESTS="${INSTR_REQUESTS:-8000}"
WARMUP_REQUESTS=2000
LOAD_CONNS="${INSTR_CONNS:-16}"
READY_SECS=120 # valgrind starts slowly

[ "$#" -ge 1 ] || die "usage: bench/instructions.sh NAME=BINARY [NAME=BINARY ...]"
ensure_tools
if ! command -v valgrind >/dev/null; then
    log "installing valgrind"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi

trap cleanup EXIT
trap 'exit 130' INT TERM
OUT="${BENCH_RESULTS_DIR:-$BENCH_DIR/results/$(date +%F)-instructions}"
mkdir -p "$OUT"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/gateway-instr.XXXXXX")"
chmod 755 "$TMP" # nginx workers run as an unprivileged user
mkdir -p "$TMP/cg" "$TMP/gw"

read -r UPSTREAM_PORT GW_PORT <<<"$(python3 "$HELPER" free-ports 2)"
start_upstream "$UPSTREAM_PORT"
ROUTE="${INSTR_ROUTE:-none}"
case "$ROUTE" in
    none)
        gateway_yaml "$GW_PORT" >"$TMP/gw/gateway.yaml"
        LOAD_PATH="$BENCH_PATH"
        ;;
    limited)
        gateway_yaml "$GW_PORT" limited >"$TMP/gw/gateway.yaml"
        LOAD_PATH="$BENCH_PATH"
        ;;
    authed)
        authz_yaml "$GW_PORT" "$TMP/gw/store" 100000 >"$TMP/gw/gateway.yaml"
        LOAD_PATH="/authed$BENCH_PATH"
        make_tokens "$TMP/token.txt" 1
        FIXED_LOAD_TOKEN="$(cat "$TMP/token.txt")"
        export FIXED_LOAD_TOKEN
        ;;
    *) die "INSTR_ROUTE is none, limited or authed" ;;
esac

rows=()
first=""
for arg in "$@"; do
    name="${arg%%=*}" bin="${arg#*=}"
    case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
    [ -x "$bin" ] || die "$name: no binary at $bin"
    profile="$TMP/cg/$name.out"
    ( cd "$TMP/gw" && exec taskset -c "$PROXY_CPU" env GATEWAY_WORKERS=1 \
        valgrind --tool=callgrind --callgrind-out-file="$profile" \
        "$bin" serve --config "$TMP/gw/gateway.yaml" ) >"$TMP/$name.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_ready "$name" "$pid" "$GW_PORT"
    python3 "$HELPER" fixed-load "$GW_PORT" "$LOAD_PATH" "$LOAD_CONNS" "$WARMUP_REQUESTS" "$BODY_BYTES" >/dev/null
    callgrind_control -z "$pid" >/dev/null
    sent="$(taskset -c "$LOAD_CPU" python3 "$HELPER" fixed-load "$GW_PORT" "$LOAD_PATH" "$LOAD_CONNS" "$REQUESTS" "$BODY_BYTES")"
    callgrind_control -d "$pid" >/dev/null
    stop_pid "$pid"
    total="$(callgrind_annotate "$profile.1" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)"
    [ -n "$total" ] || die "$name: no callgrind totals (see $TMP/$name.log)"
    per=$((total / sent))
    first="${first:-$per}"
    callgrind_annotate --inclusive=yes --threshold=100 "$profile.1" 2>/dev/null |
        sed -E 's#/root/.cargo/registry/src/index.crates.io-[^/]*/##; s#/rustc/[0-9a-f]*/##' |
        grep -E '^ *[0-9,]+ \(' | sed -n '1,60p' >"$OUT/$name.top.txt"
    rows+=("$(printf '| %s | %s | %d | %d | %s |' "$name" "$bin" "$sent" "$per" \
        "$(python3 -c "print(f'{$per / $first:.3f}x')")")")
    log "$name: $per instructions per request"
done

{
    echo "# Instructions per request (callgrind), $(date -u '+%F %T') UTC"
    echo
    echo "- route: \`GET $LOAD_PATH\` ($ROUTE), 1 KiB body from a bare nginx; one worker; $LOAD_CONNS keep-alive connections, one request in flight on each"
    echo "- counted: $REQUESTS requests after $WARMUP_REQUESTS warm-up requests; user space only"
    echo
    echo "| name | binary | requests | instructions / request | vs first |"
    echo "|---|---|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
} | tee "$OUT/summary.md"
