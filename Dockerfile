# syntax=docker/dockerfile:1
# Build:  docker build -t gateway .
# Run:    docker run -p 3000:3000 -p 127.0.0.1:9901:9901 -v gateway-data:/data gateway

# ---- build ------------------------------------------------------------------
FROM rust:1-slim-bookworm AS builder
WORKDIR /src
# Least to most often changed. Cargo.toml names [[test]] targets under tests/
# and an example; they are not compiled here, but copied so every target the
# manifest declares exists. (tests/browser/node_modules: see .dockerignore.)
COPY Cargo.toml Cargo.lock ./
COPY examples/ examples/
COPY tests/ tests/
COPY src/ src/
# BuildKit cache mounts keep the registry and target/ across builds, so a
# source change recompiles only this crate. target/ is a cache, not a layer:
# the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
 && install -m 0755 target/release/gateway /usr/local/bin/gateway

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim
# CA roots, used only for https upstreams (SSL_CERT_FILE overrides them).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Non-root user; /data is created owned by it so a new named volume inherits
# that ownership (a bind mount must be chowned to 10001 by the operator).
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin gateway \
 && install -d -o gateway -g gateway -m 0700 /data
COPY --from=builder /usr/local/bin/gateway /usr/local/bin/gateway
# Default config: listens on 0.0.0.0 (127.0.0.1 would be unreachable from
# outside the container), store on /data. Operators mount their own file or
# folder over /etc/gateway; keep `listen` on 0.0.0.0 and the store on /data.
COPY --chmod=0644 deploy/gateway.docker.yaml /etc/gateway/gateway.yaml
ENV GATEWAY_CONFIG=/etc/gateway/gateway.yaml
# User store and its generated JWT keys: must persist.
VOLUME /data
USER 10001:10001
# 3000: public HTTP. 9901: admin (/healthz, /readyz, /metrics) - publish it
# on a private interface only.
EXPOSE 3000 9901
# The gateway handles SIGTERM itself (drains for limits.shutdown_timeout,
# default 30s, longer than docker stop's 10s default: use --stop-timeout 45)
# and SIGHUP (reload); it spawns no children, so it needs no init as PID 1.
STOPSIGNAL SIGTERM
# No HEALTHCHECK: the slim image has no curl/wget to probe with. Point the
# orchestrator's readiness/liveness probes at GET /readyz and /healthz on 9901.
ENTRYPOINT ["gateway"]
CMD ["serve"]
