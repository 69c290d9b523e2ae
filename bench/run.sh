#!/usr/bin/env bash
# One command, one run: the bare upstream, the gateway on an `auth: none` route
# and nginx as a plain keep-alive proxy, all on 127.0.0.1, measured with wrk.
# See bench/README.md for the method. Settings (environment):
#   BENCH_DURATION     measured run length per contender and scenario (10s)
#   BENCH_WARMUP       warm-up run before each measured run (3s)
#   BENCH_CONNECTIONS  connection counts, one scenario each ("64 256")
#   BENCH_THREADS      wrk threads (1)
#   BENCH_CONTENDERS   which to measure ("upstream gateway nginx")
#   BENCH_ROUNDS       rounds; each measures every contender once per scenario,
#                      the order rotated per round; the medians are reported (3)
#   BENCH_BUILD        auto: cargo build --release only if the binary is missing;
#                      1: always build; 0: never build (gateway skipped if missing)
#   GATEWAY_BIN        gateway binary (target/release/gateway)
#   GATEWAY_PREV_BIN   an older gateway build, measured in the same run as `previous`
#   BENCH_WORKERS      workers per proxy: GATEWAY_WORKERS and nginx worker_processes (1);
#                      above 1 the CPUs default to every core for all (unpinned)
#   BENCH_PROXY_CPU    CPU for the proxy under test (0; unpinned: all)
#   BENCH_LOAD_CPU     CPU for wrk and the bare upstream (1; unpinned: all)
#   BENCH_RESULTS_DIR  output folder (bench/results/<YYYY-MM-DD>-<host>)
#   BENCH_STRICT       1: exit 4 when a target is missed
# Exit status: 0 ok, 3 some run invalid (errors), 4 target missed (BENCH_STRICT=1),
# 1 set-up failure.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
HELPER="$BENCH_DIR/bench.py"

DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-3s}"
CONNECTIONS="${BENCH_CONNECTIONS:-64 256}"
THREADS="${BENCH_THREADS:-1}"
ROUNDS="${BENCH_ROUNDS:-3}"
CONTENDERS="${BENCH_CONTENDERS:-upstream gateway limited nginx${GATEWAY_PREV_BIN:+ previous}}"
BUILD="${BENCH_BUILD:-auto}"
GATEWAY_BIN="${GATEWAY_BIN:-$ROOT/target/release/gateway}"
case "$GATEWAY_BIN" in /*) ;; *) GATEWAY_BIN="$PWD/$GATEWAY_BIN" ;; esac # the gateway runs in a temp dir
WORKERS="${BENCH_WORKERS:-1}"
ALL_CPUS="0-$(($(nproc) - 1))"
ALL=""
[ "$WORKERS" = 1 ] || ALL=1
PROXY_CPU="${BENCH_PROXY_CPU:-${ALL:+$ALL_CPUS}}"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPU="${BENCH_LOAD_CPU:-${ALL:+$ALL_CPUS}}"
LOAD_CPU="${LOAD_CPU:-1}"
READY_SECS="${BENCH_READY_SECS:-20}"
NGINX_KEEPALIVE="${BENCH_NGINX_KEEPALIVE:-256}"
BODY_BYTES=1024
BENCH_PATH=/bench

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ------------------------------------------------------------------ tools

ensure_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    command -v taskset >/dev/null || missing+=(util-linux)
    command -v python3 >/dev/null || missing+=(python3)
    if [ "${#missing[@]}" -gt 0 ]; then
        local sudo=""
        if [ "$(id -u)" -ne 0 ]; then
            command -v sudo >/dev/null || die "missing ${missing[*]} and not root"
            sudo=sudo
        fi
        log "installing Debian packages: ${missing[*]}"
        $sudo apt-get update -qq
        # The nginx package may try to start the system service; we never use it.
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${missing[@]}" >/dev/null
    fi
    NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
    [ -x "$NGINX" ] || die "nginx not found after install"
    command -v wrk >/dev/null || die "wrk not found after install"
}

# ------------------------------------------------------------------ processes

PIDS=()
TMP=""

alive() {
    local st
    st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

children_of() { cat "/proc/$1/task/$1/children" 2>/dev/null || true; }

stop_pid() {
    local pid="$1" kids i
    alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
    kids="$(children_of "$pid")"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do alive "$pid" || break; sleep 0.05; done
    if alive "$pid"; then
        log "pid $pid ignored SIGTERM for 5 s; sending SIGKILL"
        for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
    [ -n "$TMP" ] && rm -rf "$TMP"
    exit "$rc"
}

# Readiness: an HTTP GET of the bench path answering 200 with the full body,
# polled until a deadline; fails at once if the process died.
wait_ready() { # name pid port
    if ! python3 "$HELPER" wait-http "$3" "$BENCH_PATH" "$2" "$READY_SECS" "$BODY_BYTES"; then
        log "$1 failed to start; its log:"
        tail -n 20 "$TMP/$1.log" >&2 || true
        exit 1
    fi
}

# ------------------------------------------------------------------ contenders
# Each start_X PORT starts one contender on 127.0.0.1:PORT, registers its PID
# for clean-up, waits until it answers GET /bench, and sets STARTED_PID.

nginx_common() { # name: shared top of both nginx configs (logging off)
    cat <<EOF
worker_processes $WORKERS;
worker_rlimit_nofile 65536;
pid $TMP/$1/nginx.pid;
error_log $TMP/$1/error.log crit;
events { worker_connections 16384; }
http {
    access_log off;
    server_tokens off;
    keepalive_timeout 300s;
    keepalive_requests 10000000;
    client_body_temp_path $TMP/$1/client_body;
    proxy_temp_path $TMP/$1/proxy;
    fastcgi_temp_path $TMP/$1/fastcgi;
    uwsgi_temp_path $TMP/$1/uwsgi;
    scgi_temp_path $TMP/$1/scgi;
EOF
}

launch_nginx() { # name cpu
    local name="$1" cpu="$2"
    ( exec taskset -c "$cpu" "$NGINX" -p "$TMP/$name/" -c "$TMP/$name/nginx.conf" \
        -e "$TMP/$name/error.log" -g 'daemon off;' ) >"$TMP/$name.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

# The bare upstream: its own nginx (BENCH_WORKERS workers), on the load CPU, fixed 1 KiB body.
start_upstream() { # port
    local port="$1" body
    body="$(python3 -c "import string; a = string.ascii_letters + string.digits; print((a * 100)[:$BODY_BYTES], end='')")"
    mkdir -p "$TMP/upstream"
    { nginx_common upstream; cat <<EOF
    server {
        listen 127.0.0.1:$port backlog=4096;
        location = $BENCH_PATH {
            default_type text/plain;
            return 200 "$body";
        }
        location / { return 404; }
    }
}
EOF
    } >"$TMP/upstream/nginx.conf"
    launch_nginx upstream "$LOAD_CPU"
    wait_ready upstream "$STARTED_PID" "$port"
}

# nginx as a plain reverse proxy with a keep-alive upstream pool, on the proxy CPU.
start_nginx() { # port
    local port="$1"
    mkdir -p "$TMP/nginx"
    { nginx_common nginx; cat <<EOF
    upstream bench_upstream {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive $NGINX_KEEPALIVE;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$port backlog=4096;
        location = $BENCH_PATH {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location / { return 404; }
    }
}
EOF
    } >"$TMP/nginx/nginx.conf"
    launch_nginx nginx "$PROXY_CPU"
    wait_ready nginx "$STARTED_PID" "$port"
}

# The gateway's bench config: one `auth: none` route to the bare upstream;
# with `limited`, under a per-client rate limit so generous it never refuses
# (what the limiter costs a request that passes it).
gateway_yaml() { # port [limited]
    cat <<EOF
listen: 127.0.0.1:$1
log: { access: false }
routes:
  - name: bench
    path: $BENCH_PATH
    upstream: http://127.0.0.1:$UPSTREAM_PORT
    auth: none
EOF
    [ -z "${2:-}" ] || cat <<EOF
    rate_limit: generous
rate_limits:
  generous: { rate: 1000000000/s, key: client_ip }
EOF
}

# The authorizer benchmarks' config (authz.sh, instructions.sh
# INSTR_ROUTE=authed): the `none` route and the `authed` one, which needs an
# HS256 token with `items:read` (make_tokens) and strips `/authed`.
SECRET="bench-access-secret-0123456789abcdef"

make_tokens() { # file count: HS256 access tokens as the gateway issues them, valid 1 h
    python3 - "$1" "$2" "$SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time
out, n, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"typ": "JWT", "alg": "HS256"}, separators=(",", ":")).encode())
now = int(time.time())
with open(out, "w") as f:
    for i in range(n):
        claims = {"sub": f"user-{i}", "email": f"u{i}@example.com", "firstName": "B", "lastName": "U",
                  "scope": "items:read", "sid": f"session-{i}", "iss": "gateway", "iat": now,
                  "exp": now + 3600, "jti": f"jti-{i}", "token_use": "access"}
        body = head + "." + b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
        f.write(f"{body}.{sig}\n")
PY
}

authz_yaml() { # port store_folder cache_capacity
    cat <<YAML
listen: 127.0.0.1:$1
log: { access: false }
auth:
  store: $2/users.redb
  access_token: { secret: "$SECRET" }
  cache_capacity: $3
routes:
  - { name: none, path: $BENCH_PATH, upstream: "http://127.0.0.1:$UPSTREAM_PORT", auth: none }
  - name: authed
    path: /authed$BENCH_PATH
    upstream: "http://127.0.0.1:$UPSTREAM_PORT"
    strip_prefix: /authed
    scopes: [items:read]
YAML
}

# The gateway, BENCH_WORKERS workers (GATEWAY_WORKERS), on the proxy CPU.
start_gateway() { # port [binary name [limited]]
    local port="$1" bin="${2:-$GATEWAY_BIN}" name="${3:-gateway}"
    gateway_yaml "$port" ${4:+limited} >"$TMP/$name.yaml"
    ( cd "$TMP" && exec taskset -c "$PROXY_CPU" env GATEWAY_WORKERS="$WORKERS" \
        "$bin" serve --config "$TMP/$name.yaml" ) >"$TMP/$name.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_ready "$name" "$STARTED_PID" "$port"
}

# The same gateway with a generous rate limit on the bench route.
start_limited() { # port
    start_gateway "$1" "$GATEWAY_BIN" limited limited
}

# An older build (GATEWAY_PREV_BIN), with the same config and pinning.
start_previous() { # port
    start_gateway "$1" "$GATEWAY_PREV_BIN" previous
}

# Set-up shared by the single-scenario benchmarks (authz.sh, tls.sh): traps,
# the results folder OUT (bench/results/<date>-SUFFIX), the work folder TMP,
# and NOTE saying whether the machine was busy before the start.
begin_run() { # suffix
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    ulimit -n 65536 2>/dev/null || true
    ensure_gateway_bin || die "no gateway binary"
    OUT="${BENCH_RESULTS_DIR:-$BENCH_DIR/results/$(date +%F)-$1}"
    mkdir -p "$OUT"
    rm -f "$OUT"/*.txt "$OUT"/*.cpu "$OUT/meta.env"
    TMP="$(mktemp -d "${TMPDIR:-/tmp}/gateway-bench.XXXXXX")"
    chmod 755 "$TMP" # nginx workers run as an unprivileged user
    local busy
    NOTE=""
    busy="$(python3 "$HELPER" cpu-busy 2 10)" || NOTE="machine not idle before start ($busy)"
}

# One contender, one round: warm-up, then a measured wrk run with the CPU
# counters read around it; CONNS connections, extra wrk arguments after URL.
measure() { # name round url [wrk args...]
    local name="$1" round="$2" url="$3"; shift 3
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$WARMUP" "$@" "$url" >/dev/null 2>&1 || true
    grep '^cpu[0-9]' /proc/stat >"$OUT/$name.r$round.cpu"
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$@" "$url" >"$OUT/$name.r$round.txt" 2>&1 || true
    { echo --; grep '^cpu[0-9]' /proc/stat; } >>"$OUT/$name.r$round.cpu"
    log "round $round  $(printf '%-16s' "$name") $(python3 "$HELPER" brief "$OUT/$name.r$round.txt")"
}

ensure_gateway_bin() { # returns 1 when the gateway must be skipped
    case "$BUILD" in
        1) log "cargo build --release"; (cd "$ROOT" && cargo build --release) || die "build failed" ;;
        auto) if [ ! -x "$GATEWAY_BIN" ]; then
                  log "gateway binary missing; cargo build --release"
                  (cd "$ROOT" && cargo build --release) || die "build failed"
              fi ;;
    esac
    if [ ! -x "$GATEWAY_BIN" ]; then
        log "gateway binary missing ($GATEWAY_BIN): skipping the gateway"
        return 1
    fi
}

# ------------------------------------------------------------------ measuring

status_field() { # pid field -> value from /proc/PID/status
    awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ +/, ""); print; exit }' "/proc/$1/status" 2>/dev/null || true
}

run_one() { # scenario contender connections round
    local scen="$1" who="$2" conns="$3" round="$4" port pid raw note="" rc=0
    port="${PORT[$who]}"; pid="${PID[$who]}"
    raw="$scen.$who.r$round.txt"
    local url="http://127.0.0.1:$port$BENCH_PATH"
    taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$conns" -d"$WARMUP" --latency "$url" \
        >"$OUT/$scen.$who.r$round.warmup.txt" 2>&1 || true
    # Per-CPU counters around the measured run: shows which side was the bottleneck.
    grep '^cpu[0-9]' /proc/stat >"$OUT/$scen.$who.r$round.cpu"
    taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$conns" -d"$DURATION" --latency "$url" \
        >"$OUT/$raw" 2>&1 || rc=$?
    { echo --; grep '^cpu[0-9]' /proc/stat; } >>"$OUT/$scen.$who.r$round.cpu"
    [ "$rc" -eq 0 ] || note="wrk exited $rc"
    alive "$pid" || note="${note:+$note; }$who died during the run"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$who" "$conns" "$round" "$raw" "$note" >>"$OUT/manifest.tsv"
    log "$(printf 'round %s  %-28s %-9s %s' "$round" "$scen" "$who" \
        "$(python3 "$HELPER" brief "$OUT/$raw")")${note:+ ($note)}"
}

main() {
    ensure_tools
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

    [ "$(nproc --all)" -ge 2 ] || die "needs 2 CPUs for the pinning (proxy on $PROXY_CPU, load on $LOAD_CPU)"

    local host
    host="$(hostname -s 2>/dev/null | tr -cd 'A-Za-z0-9._-' || true)"
    [ -n "$host" ] || host=box
    OUT="${BENCH_RESULTS_DIR:-$BENCH_DIR/results/$(date +%F)-$host}"
    mkdir -p "$OUT"
    rm -f "$OUT"/*.txt "$OUT"/*.cpu "$OUT/manifest.tsv" "$OUT/meta.env"
    : >"$OUT/manifest.tsv"
    TMP="$(mktemp -d "${TMPDIR:-/tmp}/gateway-bench.XXXXXX")"
    chmod 755 "$TMP" # nginx workers run as an unprivileged user

    local measured=() notes=() who busy
    # Nothing of ours runs yet: CPU use now is someone else's (a compile,
    # another benchmark) and skews every figure. Warn, and say so in the summary.
    if ! busy="$(python3 "$HELPER" cpu-busy 2 10)"; then
        log "warning: the machine is not idle ($busy); figures from this run are unreliable"
        notes+=("machine not idle before start ($busy): figures unreliable")
    else
        log "CPU use before start: $busy"
    fi
    for who in $CONTENDERS; do
        if [[ "$who" = gateway || "$who" = limited ]] && ! ensure_gateway_bin; then
            notes+=("gateway binary missing: gateway not measured")
            continue
        fi
        measured+=("$who")
    done

    # One free loopback port per process, chosen now (never fixed).
    declare -gA PORT PID
    local names=(upstream) ports i
    for who in "${measured[@]}"; do [ "$who" = upstream ] || names+=("$who"); done
    read -r -a ports <<<"$(python3 "$HELPER" free-ports "${#names[@]}")"
    for i in "${!names[@]}"; do PORT[${names[$i]}]="${ports[$i]}"; done
    UPSTREAM_PORT="${PORT[upstream]}"

    # The upstream always runs: the proxies need it.
    start_upstream "${PORT[upstream]}"; PID[upstream]="$STARTED_PID"
    log "upstream ready: pid ${PID[upstream]} on 127.0.0.1:${PORT[upstream]}"
    for who in "${measured[@]}"; do
        [ "$who" = upstream ] && continue
        "start_$who" "${PORT[$who]}"; PID[$who]="$STARTED_PID"
        log "$who ready: pid ${PID[$who]} on 127.0.0.1:${PORT[$who]}"
    done

    # Scenarios: one per connection count. Each round measures every contender
    # once per scenario, the contender order rotated by one each round so that
    # none is always first or last while the host's speed drifts.
    local conns scen round n="${#measured[@]}" k
    for ((round = 1; round <= ROUNDS; round++)); do
        for conns in $CONNECTIONS; do
            scen="h1_keepalive_c${conns}_get_1kib"
            for ((k = 0; k < n; k++)); do
                run_one "$scen" "${measured[$(((k + round - 1) % n))]}" "$conns" "$round"
            done
        done
    done

    # Peak RSS and pinning facts, read before clean-up.
    local gw_hwm="" gw_threads="" gw_cpus="" ngx_hwm="" ngx_worker gw_desc="not measured"
    if [ -n "${PID[gateway]:-}" ] && alive "${PID[gateway]}"; then
        gw_hwm="$(status_field "${PID[gateway]}" VmHWM | awk '{print $1}')"
        gw_threads="$(status_field "${PID[gateway]}" Threads)"
        gw_cpus="$(status_field "${PID[gateway]}" Cpus_allowed_list)"
        cp "$TMP/gateway.log" "$OUT/gateway.log" 2>/dev/null || true
    fi
    if [ -n "${PID[gateway]:-}" ]; then
        gw_desc="$GATEWAY_BIN, GATEWAY_WORKERS=$WORKERS"
        local rev
        rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no commit')"
        [ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] || rev="$rev + uncommitted changes"
        gw_desc="$gw_desc, source $rev, binary built $(date -r "$GATEWAY_BIN" '+%F %T')"
    fi
    if [ -n "${PID[nginx]:-}" ]; then
        ngx_worker="$(children_of "${PID[nginx]}" | awk '{print $1}')"
        [ -z "$ngx_worker" ] || ngx_hwm="$(status_field "$ngx_worker" VmHWM | awk '{print $1}')"
    fi
    cp "$TMP/gateway.yaml" "$OUT/gateway.yaml" 2>/dev/null || true
    cp "$TMP/nginx/nginx.conf" "$OUT/nginx-proxy.conf" 2>/dev/null || true
    cp "$TMP/upstream/nginx.conf" "$OUT/nginx-upstream.conf" 2>/dev/null || true

    local notes_joined=""
    [ "${#notes[@]}" -eq 0 ] || notes_joined="$(IFS='|'; echo "${notes[*]}")"
    cat >"$OUT/meta.env" <<EOF
date=$(date '+%F %T %Z')
host=$host
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
nproc=$(nproc --all)
kernel=$(uname -r)
wrk_version=$(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')
nginx_version=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
gateway=$gw_desc
threads=$THREADS
rounds=$ROUNDS
duration=$DURATION
warmup=$WARMUP
proxy_cpu=$PROXY_CPU
workers=$WORKERS
load_cpu=$LOAD_CPU
body_bytes=$BODY_BYTES
nginx_keepalive=$NGINX_KEEPALIVE
gateway_vmhwm_kib=$gw_hwm
gateway_threads=$gw_threads
gateway_cpus=$gw_cpus
nginx_worker_vmhwm_kib=$ngx_hwm
notes=$notes_joined
EOF

    local rc=0
    echo
    python3 "$HELPER" report "$OUT/manifest.tsv" "$OUT/meta.env" "$OUT" || rc=$?
    python3 "$BENCH_DIR/chart.py" "$OUT" "Plain keep-alive hop (bench/run.sh)" >&2 ||
        log "warning: no chart (matplotlib could not be installed)"
    echo
    log "results in ${OUT#"$ROOT"/}"
    if [ "$rc" -eq 3 ]; then
        log "some runs had errors and are marked INVALID"
        exit 3
    fi
    if [ "$rc" -eq 4 ] && [ "${BENCH_STRICT:-0}" = 1 ]; then exit 4; fi
    exit 0
}

# Sourced by the other bench scripts for its functions: run only when executed.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
