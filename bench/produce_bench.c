/* What one result costs the processing thread in librdkafka's producer,
 * by API: the figures behind "produce batching" in docs/PERFORMANCE.md.
 *
 *   each     rd_kafka_produce per message, partitioner per message (what
 *            src/daemon.c does)
 *   batch    rd_kafka_produce_batch of BATCH messages, partitioner per
 *            message
 *   fixed    rd_kafka_produce_batch of BATCH messages to one partition
 *            (the caller would have to partition and group them itself)
 *
 * N messages of 70 bytes (a window result's size) keyed user_<i % 10000>,
 * with dmpflow's producer settings; the figure is the calling thread's CPU
 * time per message (CLOCK_THREAD_CPUTIME_ID), keys formatted beforehand.
 * Needs a broker and an existing topic.
 * Usage: produce_bench BROKERS TOPIC [N] */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#define BATCH 1000
#define KEYS 10000

static double thread_cpu_s(void) {
        struct timespec t;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
        return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what, const char *err) {
        fprintf(stderr, "produce_bench: %s: %s\n", what, err);
        exit(1);
}

/* One pass of mode over n messages; returns ns of thread CPU per message. */
static double run_mode(const char *brokers, const char *topic, const char *mode, long n,
                       char (*keys)[16], const size_t *klen) {
        char err[512];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        const char *const settings[][2] = {
                {"bootstrap.servers", brokers},       {"linger.ms", "5"},
                {"enable.idempotence", "true"},       {"delivery.report.only.error", "true"},
                {"partitioner", "murmur2_random"},    {"queue.buffering.max.messages", "2000000"},
        };
        for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
                if (rd_kafka_conf_set(c, settings[i][0], settings[i][1], err, sizeof(err)))
                        die(settings[i][0], err);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
        if (!rk)
                die("rd_kafka_new", err);
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        const struct rd_kafka_metadata *md;
        if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) || md->topic_cnt != 1 ||
            md->topics[0].partition_cnt < 1)
                die(topic, "no such topic");
        int partitions = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
        unsigned char value[70];
        memset(value, 'x', sizeof(value));
        rd_kafka_message_t *batch = dmp_calloc(BATCH, sizeof(*batch));
        double t0 = thread_cpu_s();
        if (!strcmp(mode, "each")) {
                for (long i = 0; i < n; i++)
                        while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                                                value, sizeof(value), keys[i % KEYS],
                                                klen[i % KEYS], NULL))
                                rd_kafka_poll(rk, 10);
        } else {
                int fixed = !strcmp(mode, "fixed");
                for (long i = 0; i < n; i += BATCH) {
                        for (int j = 0; j < BATCH; j++)
                                batch[j] = (rd_kafka_message_t){
                                        .payload = value, .len = sizeof(value),
                                        .key = keys[(i + j) % KEYS],
                                        .key_len = klen[(i + j) % KEYS]};
                        int32_t p = fixed ? (int32_t)(i / BATCH % partitions)
                                          : RD_KAFKA_PARTITION_UA;
                        if (rd_kafka_produce_batch(rkt, p, RD_KAFKA_MSG_F_COPY, batch, BATCH) !=
                            BATCH)
                                die(mode, "a message was not enqueued");
                }
        }
        double ns = (thread_cpu_s() - t0) * 1e9 / (double)n;
        if (rd_kafka_flush(rk, 60000))
                die(mode, "not all messages were delivered within 60 s");
        free(batch);
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        return ns;
}

int main(int argc, char **argv) {
        if (argc < 3)
                die("usage", "produce_bench BROKERS TOPIC [N]");
        long n = argc > 3 ? atol(argv[3]) : 1000000;
        n -= n % BATCH;
        if (n <= 0)
                die("N", "want at least 1000 messages");
        static char keys[KEYS][16];
        static size_t klen[KEYS];
        for (int i = 0; i < KEYS; i++) {
                memcpy(keys[i], "user_", 5);
                klen[i] = 5 + dmp_format_long(keys[i] + 5, i);
        }
        printf("thread CPU ns per 70-byte message, %ld messages, batches of %d\n", n, BATCH);
        static const char *const modes[] = {"each", "batch", "fixed"};
        for (int round = 0; round < 2; round++)
                for (int m = 0; m < 3; m++)
                        printf("%-6s %6.0f\n", modes[m],
                               run_mode(argv[1], argv[2], modes[m], n, keys, klen));
        return 0;
}
