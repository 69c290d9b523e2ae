# What the user-store benchmarks share (sourced after run.sh, whose log,
# die, PIDS, TMP and SECRET they use): a throwaway PostgreSQL server
# (Debian's `postgresql`, installed if missing, a cluster in the run's temp
# folder on a loopback port, fsync on, stopped by PID with the rest at the
# end), and the gateway config with the built-in endpoints.

PG_USER=postgres

start_postgres() { # port
    local bin
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
    [ -x "$bin/initdb" ] || {
        log "installing Debian package: postgresql"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
        bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
    }
    install -d -o "$PG_USER" -m 700 "$TMP/pg"
    setpriv --reuid "$PG_USER" --regid "$PG_USER" --init-groups \
        "$bin/initdb" -D "$TMP/pg/data" -U postgres -A trust -E UTF8 >"$TMP/initdb.log" 2>&1 ||
        { cat "$TMP/initdb.log" >&2; die "initdb failed"; }
    # Durable as shipped (fsync on): acknowledged means on disk here too.
    ( exec setpriv --reuid "$PG_USER" --regid "$PG_USER" --init-groups \
        "$bin/postgres" -D "$TMP/pg/data" -p "$1" -k "$TMP/pg" \
        -c listen_addresses=127.0.0.1 -c max_connections=200 ) >"$TMP/postgres.log" 2>&1 &
    PIDS+=("$!")
    local i
    for i in $(seq 200); do
        psql -h 127.0.0.1 -p "$1" -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1 && break
        sleep 0.05
    done
    psql -h 127.0.0.1 -p "$1" -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null || die "postgres did not start"
}

new_database() { # name -> URL
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atqc "CREATE DATABASE $1" >/dev/null
    echo "postgres://postgres@127.0.0.1:$PG_PORT/$1"
}


# A gateway with the built-in endpoints on STORE, bcrypt cost 4, one
# `auth: none` route to the upstream; an extra top-level line and extra
# `auth:` lines (indented two spaces) if given.
endpoint_yaml() { # port store [extra line] [extra auth lines]
    cat <<YAML
listen: 127.0.0.1:$1
${3:-}
log: { access: false }
auth:
  store: "$2"
  endpoint_limit: off   # load from one client IP; the limit would refuse it
  bcrypt_cost: 4
  access_token: { secret: "$SECRET" }
  refresh_token: { secret: "bench-refresh-secret-0123456789abcdef" }
${4:-}
routes:
  - { name: none, path: $BENCH_PATH, upstream: "http://127.0.0.1:$UPSTREAM_PORT", auth: none }
YAML
}

# Ends a run: the settings every report reads (after the run's own lines in
# meta.env), the configs, then the report.
finish_run() { # report.py
    cat >>"$OUT/meta.env" <<META
date=$(date '+%F %T %Z')
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
nproc=$(nproc --all)
gateway=$GATEWAY_BIN, source $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
postgres=$(psql --version | awk '{print $3}'), fsync on, same machine
duration=$DURATION
rounds=$ROUNDS
proxy_cpu=$PROXY_CPU
load_cpu=$LOAD_CPU
notes=$NOTE
META
    cp "$TMP"/*.yaml "$OUT/" 2>/dev/null || true
    echo
    python3 "$BENCH_DIR/$1" report "$OUT"
    log "results in ${OUT#"$ROOT"/}"
}

# Starts a run: tools, the output folder, NPORTS free ports in PORTS (the
# first two for the upstream and PostgreSQL, both started here).
begin_store_run() { # name nports
    ensure_tools
    command -v psql >/dev/null || die "psql is needed (Debian package postgresql-client)"
    begin_run "$1"
    read -r -a PORTS <<<"$(python3 "$HELPER" free-ports "$2")"
    UPSTREAM_PORT="${PORTS[0]}"; PG_PORT="${PORTS[1]}"
    start_upstream "$UPSTREAM_PORT"
    start_postgres "$PG_PORT"
}
