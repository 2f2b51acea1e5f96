# dmpflow container: build stage on Debian bookworm, slim non-root runtime.
# Build: docker build -t dmpflow .   Run: see docker-compose.yml, deploy/k8s/.
FROM debian:bookworm AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config librdkafka-dev libavro-dev librocksdb-dev libinih-dev \
        libjansson-dev libcurl4-openssl-dev libmicrohttpd-dev libjemalloc-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY include include
COPY src src
COPY schemas schemas
RUN make -j"$(nproc)" all

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        librdkafka1 libavro23 librocksdb7.8 libinih1 libjansson4 libcurl4 libmicrohttpd12 libjemalloc2 \
        ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/dmpflow dmpflow \
    && mkdir -p /var/lib/dmpflow /etc/dmpflow && chown dmpflow /var/lib/dmpflow
COPY --from=build /src/build/dmpflow /usr/local/bin/dmpflow
COPY config /etc/dmpflow
COPY schemas /usr/share/dmpflow/schemas
# schemas/... paths in configs resolve here
WORKDIR /usr/share/dmpflow
USER 10001
# state (RocksDB) on a volume; the HTTP endpoint ([http] port) for probes and Prometheus
VOLUME /var/lib/dmpflow
EXPOSE 9464
ENTRYPOINT ["dmpflow"]
CMD ["run", "-c", "/etc/dmpflow/dmpflow.conf", "-o", "state.dir=/var/lib/dmpflow", \
     "-o", "http.address=0.0.0.0", "-o", "http.port=9464"]
