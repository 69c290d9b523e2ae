#!/usr/bin/env bash
# A/A check: a stand-in for the gateway binary that runs nginx with the same
# proxy config as the nginx contender, built from the gateway.yaml that
# bench/run.sh writes. Run
#   GATEWAY_BIN=bench/aa-gateway.sh BENCH_BUILD=0 bench/run.sh
# and "gateway / nginx" should come out near 1.00x; how far it strays is the
# noise of this machine. Only the `serve --config PATH` form run.sh uses is
# understood. Its peak RSS is the nginx master's, not meaningful.
set -euo pipefail
[ "${1:-}" = serve ] && [ "${2:-}" = --config ] && [ -n "${3:-}" ] || {
    echo "usage: $0 serve --config PATH" >&2
    exit 2
}
cfg="$3"
dir="$(cd "$(dirname "$cfg")" && pwd)/aa-gateway"
mkdir -p "$dir"
listen="$(awk '$1 == "listen:" { print $2 }' "$cfg")"
upstream="$(awk '$1 == "upstream:" { print $2; exit }' "$cfg")"
path="$(awk '$1 == "path:" { print $2; exit }' "$cfg")"
cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile 65536;
pid $dir/nginx.pid;
error_log $dir/error.log crit;
events { worker_connections 16384; }
http {
    access_log off;
    server_tokens off;
    keepalive_timeout 300s;
    keepalive_requests 10000000;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    upstream bench_upstream {
        server ${upstream#http://};
        keepalive ${BENCH_NGINX_KEEPALIVE:-256};
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }
    server {
        listen $listen backlog=4096;
        location = $path {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location / { return 404; }
    }
}
CONF
exec "$(command -v nginx || echo /usr/sbin/nginx)" -p "$dir/" -c "$dir/nginx.conf" \
    -e "$dir/error.log" -g 'daemon off;'
