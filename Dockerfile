# syntax=docker/dockerfile:1
#
# ferrox in a container (docs/install.md):
#   docker build -t ferrox .
#   docker run -d --name ferrox -p 8080:8080 -v ferrox-data:/var/lib/ferrox ferrox
#
# The configuration is /etc/ferrox/ferrox.toml (deploy/ferrox.toml, copied
# in below); mount your own over it. The data directory /var/lib/ferrox is a
# volume: keep it when the container is replaced.

# The builder: the toolchain of Cargo.toml's rust-version.
FROM rust:1.89-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ferrox \
    && install -m 0755 target/release/ferrox /usr/local/bin/ferrox

FROM debian:bookworm-slim
# ca-certificates: the roots that https:// receivers are checked against.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A fixed uid and gid, so that a volume's owner is the same in every image.
RUN groupadd --system --gid 10001 ferrox \
    && useradd --system --uid 10001 --gid ferrox --home-dir /var/lib/ferrox --shell /usr/sbin/nologin ferrox \
    && install -d -o ferrox -g ferrox -m 0750 /var/lib/ferrox \
    && install -d -m 0755 /etc/ferrox
COPY --from=builder /usr/local/bin/ferrox /usr/local/bin/ferrox
COPY deploy/ferrox.toml /etc/ferrox/ferrox.toml
USER ferrox:ferrox
WORKDIR /var/lib/ferrox
VOLUME ["/var/lib/ferrox"]
EXPOSE 8080
ENV RUST_LOG=info
# Liveness from /healthz, with bash's /dev/tcp: the image has no HTTP
# client, and needs none.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
# SIGTERM stops the engine cleanly (docker stop sends it); give it time
# with `docker stop -t 60`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ferrox"]
CMD ["serve", "--config", "/etc/ferrox/ferrox.toml"]
