# dmpflow container: build stage on Debian bookworm, slim non-root runtime.
FROM debian:bookworm AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config librdkafka-dev libavro-dev librocksdb-dev libinih-dev \
        libjansson-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY include include
COPY src src
RUN make -j"$(nproc)"

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        librdkafka1 libavro23 librocksdb7.8 libinih1 libjansson4 && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/dmpflow dmpflow \
    && mkdir -p /var/lib/dmpflow /etc/dmpflow && chown dmpflow /var/lib/dmpflow
COPY --from=build /src/build/dmpflow /usr/local/bin/dmpflow
COPY config /etc/dmpflow
COPY schemas /usr/share/dmpflow/schemas
WORKDIR /usr/share/dmpflow
USER dmpflow
VOLUME /var/lib/dmpflow
ENTRYPOINT ["dmpflow"]
CMD ["run", "-c", "/etc/dmpflow/dmpflow.conf", "-o", "state.dir=/var/lib/dmpflow"]
