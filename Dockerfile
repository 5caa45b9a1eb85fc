# sip-edge container image: built with the Swift toolchain on Debian 12, run on debian:bookworm-slim as a non-root
# user. No container engine runs on the machine this repository is developed on: this file is checked by hadolint
# (scripts/check-deploy.sh), not built there.

FROM swift:6.3-bookworm AS build
# Debian's -dev packages sip-edge links against (io_uring, OpenSSL, c-ares, jemalloc).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends liburing-dev libssl-dev libc-ares-dev libjemalloc-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY CSources CSources
COPY Sources Sources
COPY Tests Tests
RUN swift build -c release --product sip-edge --static-swift-stdlib \
    && install -D -m 0755 "$(swift build -c release --show-bin-path)/sip-edge" /out/sip-edge

FROM debian:bookworm-slim
# Runtime libraries only; curl for the HEALTHCHECK. Versions follow Debian 12's security updates (not pinned).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends liburing2 libssl3 libc-ares2 libjemalloc2 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 sipedge \
    && useradd --system --uid 10001 --gid sipedge --no-create-home --shell /usr/sbin/nologin sipedge
COPY --from=build /out/sip-edge /usr/local/bin/sip-edge
COPY deploy/container/sip-edge.yaml /etc/sip-edge/sip-edge.yaml
# SIP over UDP and TCP, TLS, WebSocket (when websocket.listen is set), admin HTTP (/metrics, /health).
EXPOSE 5060/udp 5060/tcp 5061/tcp 8080/tcp 8443/tcp 9090/tcp
USER 10001:10001
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9090/health/live"]
ENTRYPOINT ["/usr/local/bin/sip-edge", "run", "--config", "/etc/sip-edge/sip-edge.yaml"]
