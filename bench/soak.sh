#!/usr/bin/env bash
# Soak: does the gateway's memory (VmRSS) and open-fd count stay flat under a
# long, steady, mixed load? One gateway (unpinned, default workers, as
# shipped) with the built-in identity endpoints, a public and a protected
# route to the bare nginx upstream of run.sh; bench/soak.py drives a
# rate-limited mix (~220 requests/s nominal: proxied requests with and without valid
# tokens, garbage tokens and requests, malformed HTTP, resets, slow heads,
# idle connections, sign-ups, sign-ins, refreshes, sign-outs) and samples
# /proc/PID once a second; bench/soak_plot.py plots and judges the samples.
# See bench/README.md. Settings:
#   SOAK_SECONDS      length of the load (600)
#   SOAK_RATE         multiplier on every rate in soak.py (1.0)
#   SOAK_USERS        sign-ups in all (300)
#   SOAK_KINDS        comma-separated subset of soak.py's kinds (all), to find
#                     which traffic a growth comes with
#   BENCH_BUILD, GATEWAY_BIN, BENCH_RESULTS_DIR as for run.sh
# Output: bench/results/<date>-soak/{soak.csv,soak.png,summary.txt,counts.json,
# gateway.yaml,gateway.log,nginx-upstream.conf}. Exit 0 when the run was clean
# and flat, 1 otherwise.
set -euo pipefail

# The command as given, with the settings that shape it, for the summary.
COMMAND="$(for v in SOAK_SECONDS SOAK_RATE SOAK_USERS SOAK_KINDS GATEWAY_BIN BENCH_BUILD BENCH_RESULTS_DIR; do
    [ -z "${!v+x}" ] || printf '%s=%q ' "$v" "${!v}"; done)$0${*:+ $*}"
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=run.sh
source "$BENCH_DIR/run.sh" # its functions and settings; its main does not run

SOAK_SECONDS="${SOAK_SECONDS:-600}"
SOAK_RATE="${SOAK_RATE:-1.0}"
SOAK_USERS="${SOAK_USERS:-300}"
ACCESS_SECRET="soak-access-secret-0123456789abcdef0123"
REFRESH_SECRET="soak-refresh-secret-0123456789abcdef012"

ensure_soak_tools() { # nginx (the upstream) and python3; no wrk needed here
    command -v python3 >/dev/null || die "python3 is needed"
    NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
    if [ ! -x "$NGINX" ]; then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        log "installing Debian package: nginx"
        $sudo apt-get update -qq
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null
        NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
    fi
    [ -x "$NGINX" ] || die "nginx not found"
}

# Shorter connection timeouts and decision-cache TTL than the defaults, so
# that everything bounded by time (idle and slow connections, cached
# decisions) reaches its steady size inside the warm-up minute; bcrypt at
# its minimum (4) so sign-ins and sign-ups are cheap; the sign-in limit at
# 5 per minute per email, which only soak.py's failed sign-ins (10 unknown
# emails) ever reach.
start_soak_gateway() { # port admin_port
    cat >"$TMP/gateway.yaml" <<YAML
listen: 127.0.0.1:$1
admin: { listen: 127.0.0.1:$2 }
log: { access: false }
limits:
  header_timeout: 5s
  idle_timeout: 20s
auth:
  store: $TMP/store/users.redb
  access_token: { secret: "$ACCESS_SECRET", ttl: 15m }
  refresh_token: { secret: "$REFRESH_SECRET", ttl: 7d }
  bcrypt_cost: 4
  endpoint_limit: off
  cache_ttl: 30s
  signin_limit: { failures: 5, window: 1m }
routes:
  - name: public
    path: $BENCH_PATH
    upstream: http://127.0.0.1:$UPSTREAM_PORT
    auth: none
  - name: protected
    path: /api$BENCH_PATH
    upstream: http://127.0.0.1:$UPSTREAM_PORT
    strip_prefix: /api
YAML
    "$GATEWAY_BIN" check --config "$TMP/gateway.yaml" >&2 || die "the soak config does not validate"
    ( cd "$TMP" && exec "$GATEWAY_BIN" serve --config "$TMP/gateway.yaml" ) >"$TMP/gateway.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_ready gateway "$STARTED_PID" "$1"
}

metrics_total() { # admin_port: sum of gateway_requests_total over all series
    curl -s --max-time 10 "http://127.0.0.1:$1/metrics" 2>/dev/null |
        awk '/^gateway_requests_total[{ ]/ { s += $NF } END { printf "%d", s }'
}

main_soak() {
    ensure_soak_tools
    command -v curl >/dev/null || die "curl is needed"
    begin_run soak # traps, OUT, TMP, NOTE; builds the gateway only when BENCH_BUILD says so
    rm -f "$OUT/soak.csv" "$OUT/soak.png" "$OUT/counts.json" "$OUT/gateway.log"

    local ports gw_port admin_port gw_pid
    read -r -a ports <<<"$(python3 "$HELPER" free-ports 3)"
    UPSTREAM_PORT="${ports[0]}"; gw_port="${ports[1]}"; admin_port="${ports[2]}"
    LOAD_CPU=0-1 start_upstream "$UPSTREAM_PORT" # run.sh's nginx, 1 KiB GET /bench, unpinned here
    start_soak_gateway "$gw_port" "$admin_port"
    gw_pid="$STARTED_PID"
    log "gateway pid $gw_pid on 127.0.0.1:$gw_port (admin $admin_port), upstream on $UPSTREAM_PORT"
    log "soak: ${SOAK_SECONDS}s of mixed load, then ~45-65 s of drain and idle sampling"
    [ -z "$NOTE" ] || log "warning: $NOTE"

    local started rc_load=0 rc_plot=0
    started="$(date '+%F %T %Z')"
    python3 "$BENCH_DIR/soak.py" --port "$gw_port" --pid "$gw_pid" --seconds "$SOAK_SECONDS" \
        --secret "$ACCESS_SECRET" --csv "$OUT/soak.csv" --counts "$OUT/counts.json" \
        --rate-scale "$SOAK_RATE" --users "$SOAK_USERS" --store "$TMP/store/users.redb" \
        --upstream-port "$UPSTREAM_PORT" ${SOAK_KINDS:+--kinds "$SOAK_KINDS"} \
        >"$TMP/counts.txt" || rc_load=$?
    cat "$TMP/counts.txt"

    # The gateway's own count, then a clean stop: SIGTERM must end it.
    local gw_total="n/a" stop_note
    if alive "$gw_pid"; then
        gw_total="$(metrics_total "$admin_port")"
        local t0 t1 grc=0
        t0="$(date +%s.%N)"
        kill -TERM "$gw_pid"
        for _ in $(seq 400); do alive "$gw_pid" || break; sleep 0.1; done
        if alive "$gw_pid"; then
            stop_note="did NOT exit within 40 s of SIGTERM"
            rc_load=1
        else
            wait "$gw_pid" || grc=$?
            t1="$(date +%s.%N)"
            stop_note="exited $grc $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s after SIGTERM"
            [ "$grc" -eq 0 ] || rc_load=1
        fi
    else
        stop_note="was not running at the end"
        rc_load=1
    fi
    cp "$TMP/gateway.log" "$OUT/gateway.log" 2>/dev/null || true
    cp "$TMP/gateway.yaml" "$OUT/gateway.yaml"
    cp "$TMP/upstream/nginx.conf" "$OUT/nginx-upstream.conf" 2>/dev/null || true

    local label
    label="$(basename "$GATEWAY_BIN") built $(date -r "$GATEWAY_BIN" '+%F %T'), source $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $started"
    python3 "$BENCH_DIR/soak_plot.py" "$OUT/soak.csv" "$OUT/soak.png" --label "$label" \
        >"$TMP/verdict.txt" || rc_plot=$?
    cat "$TMP/verdict.txt"

    local warns errs
    warns="$(grep -c '"level":"WARN' "$OUT/gateway.log" || true)"
    errs="$(grep -c '"level":"ERROR' "$OUT/gateway.log" || true)"
    {
        echo "gateway soak, $started"
        echo "command: $COMMAND"
        echo "gateway: $GATEWAY_BIN (built $(date -r "$GATEWAY_BIN" '+%F %T'), source $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$([ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] || echo ' + uncommitted changes')), unpinned, default workers"
        echo "machine: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc --all) CPUs, kernel $(uname -r)"
        echo "settings: SOAK_SECONDS=$SOAK_SECONDS SOAK_RATE=$SOAK_RATE SOAK_USERS=$SOAK_USERS SOAK_KINDS=${SOAK_KINDS:-all}; config in gateway.yaml"
        [ -z "$NOTE" ] || echo "note: $NOTE"
        echo
        echo "== requests per kind and outcome (bench/soak.py)"
        cat "$TMP/counts.txt"
        echo "gateway_requests_total (its /metrics, at the end of the load): $gw_total"
        echo
        echo "== memory and file descriptors (bench/soak_plot.py; samples in soak.csv, plot in soak.png)"
        cat "$TMP/verdict.txt"
        echo
        echo "== gateway process"
        echo "log lines: $warns WARN, $errs ERROR (gateway.log)"
        echo "shutdown: $stop_note"
        echo
        if [ "$rc_load" -eq 0 ] && [ "$rc_plot" -eq 0 ]; then
            echo "RESULT: PASS (clean and flat)"
        else
            echo "RESULT: FAIL (load exit $rc_load, flatness exit $rc_plot)"
        fi
    } >"$OUT/summary.txt"
    echo
    log "gateway $stop_note; log: $warns WARN, $errs ERROR lines"
    log "results in ${OUT#"$ROOT"/}"
    if [ "$rc_load" -ne 0 ] || [ "$rc_plot" -ne 0 ]; then
        log "FAIL (load exit $rc_load, flatness exit $rc_plot)"
        exit 1
    fi
    log "PASS: clean and flat"
}

main_soak "$@"
