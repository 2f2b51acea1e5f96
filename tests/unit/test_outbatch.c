/* outbatch: records reach their topic in the order added, through queue-full
 * retries; the librdkafka behaviour that order rests on; large records;
 * produce errors. librdkafka's mock cluster stands in for the broker (a
 * fault-injection test: a tiny producer queue, full all the time). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "outbatch.h"
#include "util.h"

#define PARTS 3

/* Kafka's Utils.murmur2 (the Java client's partitioner), written from its
 * definition, as the oracle of the partitions (checked against Kafka's
 * UtilsTest vectors in test_murmur2_oracle). */
static uint32_t kafka_murmur2(const void *data, size_t len) {
        const unsigned char *p = data;
        const uint32_t m = 0x5bd1e995;
        uint32_t h = 0x9747b28cu ^ (uint32_t)len;
        size_t i = 0;
        for (; len - i >= 4; i += 4) {
                uint32_t k = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 |
                             (uint32_t)p[i + 3] << 24;
                k *= m;
                k ^= k >> 24;
                k *= m;
                h *= m;
                h ^= k;
        }
        switch (len - i) {
        case 3: h ^= (uint32_t)p[i + 2] << 16; /* fall through */
        case 2: h ^= (uint32_t)p[i + 1] << 8;  /* fall through */
        case 1: h ^= p[i]; h *= m;
        }
        h ^= h >> 13;
        h *= m;
        h ^= h >> 15;
        return h;
}

static int32_t kafka_partition(const void *key, size_t len, int32_t partitions) {
        return (int32_t)((kafka_murmur2(key, len) & 0x7fffffff) % (uint32_t)partitions);
}

static void test_murmur2_oracle(void **state) {
        (void)state;
        static const struct {
                const char *key;
                int32_t want;
        } v[] = {{"21", -973932308},
                 {"foobar", -790332482},
                 {"a-little-bit-long-string", -985981536},
                 {"a-little-bit-longer-string", -1486304829},
                 {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
                 {"abc", 479470107}};
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
                assert_int_equal((int32_t)kafka_murmur2(v[i].key, strlen(v[i].key)), v[i].want);
}

static rd_kafka_t *producer(const char *brokers, const char *max_messages,
                            const char *max_bytes, const char *partitioner) {
        char err[512];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        assert_int_equal(rd_kafka_conf_set(c, "bootstrap.servers", brokers, err, sizeof(err)),
                         RD_KAFKA_CONF_OK);
        rd_kafka_conf_set(c, "queue.buffering.max.messages", max_messages, err, sizeof(err));
        rd_kafka_conf_set(c, "partitioner", partitioner, err, sizeof(err));
        rd_kafka_conf_set(c, "linger.ms", "1", err, sizeof(err));
        rd_kafka_conf_set(c, "log_level", "0", err, sizeof(err));
        if (max_bytes)
                rd_kafka_conf_set(c, "message.max.bytes", max_bytes, err, sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
        if (!rk)
                fail_msg("producer: %s", err);
        return rk;
}

/* A consumer of every partition of topic, from the beginning. */
static rd_kafka_t *consumer_of(const char *brokers, const char *topic) {
        char err[512];
        rd_kafka_conf_t *cc = rd_kafka_conf_new();
        rd_kafka_conf_set(cc, "bootstrap.servers", brokers, err, sizeof(err));
        rd_kafka_conf_set(cc, "group.id", "outbatch-test", err, sizeof(err));
        rd_kafka_conf_set(cc, "log_level", "0", err, sizeof(err));
        rd_kafka_t *consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof(err));
        assert_non_null(consumer);
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(PARTS);
        for (int p = 0; p < PARTS; p++)
                rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
                        RD_KAFKA_OFFSET_BEGINNING;
        assert_int_equal(rd_kafka_assign(consumer, parts), 0);
        rd_kafka_topic_partition_list_destroy(parts);
        return consumer;
}

/* What dmp_outbatch_flush relies on: after a QUEUE_FULL, every later
 * message of the batch fails too (none is enqueued behind a refused one). */
static void test_produce_batch_fails_the_rest(void **state) {
        (void)state;
        rd_kafka_t *rk = producer("127.0.0.1:1", "10", NULL, "murmur2_random"); /* none delivered */
        rd_kafka_topic_t *t = rd_kafka_topic_new(rk, "x", NULL);
        rd_kafka_message_t m[30];
        char keys[30][16];
        memset(m, 0, sizeof(m));
        for (int i = 0; i < 30; i++) {
                snprintf(keys[i], sizeof(keys[i]), "k%d", i);
                m[i].payload = m[i].key = keys[i];
                m[i].len = m[i].key_len = strlen(keys[i]);
        }
        assert_int_equal(rd_kafka_produce_batch(t, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, m,
                                                5),
                         5);
        assert_int_equal(rd_kafka_produce_batch(t, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, m,
                                                30),
                         5);
        for (int i = 0; i < 30; i++)
                assert_int_equal(m[i].err, i < 5 ? RD_KAFKA_RESP_ERR_NO_ERROR
                                                 : RD_KAFKA_RESP_ERR__QUEUE_FULL);
        rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE);
        rd_kafka_topic_destroy(t);
        rd_kafka_destroy(rk);
}

/* 20,000 records of 41 keys through a producer queue of 64 messages: all
 * arrive, each key's in the order added and in the partition Kafka's
 * murmur2 gives it (the batches partition them themselves but
 * for the first), and one of 300 KB (more than the batch's arena). */
static void test_order_through_full_queue(void **state) {
        (void)state;
        char err[512];
        rd_kafka_conf_t *mc_conf = rd_kafka_conf_new();
        rd_kafka_conf_set(mc_conf, "log_level", "0", err, sizeof(err));
        rd_kafka_t *mc_rk = rd_kafka_new(RD_KAFKA_PRODUCER, mc_conf, err, sizeof(err));
        assert_non_null(mc_rk);
        rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(mc_rk, 1);
        assert_non_null(mc);
        const char *brokers = rd_kafka_mock_cluster_bootstraps(mc);
        assert_int_equal(rd_kafka_mock_topic_create(mc, "out", PARTS, 1), 0);

        rd_kafka_t *rk = producer(brokers, "64", NULL, "murmur2_random");
        dmp_outbatch_t *b = dmp_outbatch_new(rk, "out", err, sizeof(err));
        assert_non_null(b);
        enum { N = 20000, KEYS = 41, BIG = 10007, BIG_LEN = 300 * 1024 };
        char *big = dmp_malloc(BIG_LEN);
        for (int i = 0; i < N; i++) {
                char key[16], val[32];
                int kl = snprintf(key, sizeof(key), "k%d", i % KEYS);
                int vl = snprintf(val, sizeof(val), "%d", i);
                const char *v = val;
                size_t len = (size_t)vl;
                if (i == BIG) { /* the sequence number, then padding */
                        memset(big, ' ', BIG_LEN);
                        memcpy(big, val, (size_t)vl);
                        v = big;
                        len = BIG_LEN;
                }
                assert_int_equal(dmp_outbatch_add(b, v, len, key, (size_t)kl, err, sizeof(err)), 0);
                if (i % 3001 == 3000) {
                        assert_int_equal(dmp_outbatch_flush(b, err, sizeof(err)), 0);
                        assert_int_equal(dmp_outbatch_pending(b), 0);
                }
        }
        assert_int_equal(dmp_outbatch_flush(b, err, sizeof(err)), 0);
        assert_int_equal(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
        uint64_t own, flushes;
        dmp_outbatch_flushes(b, &own, &flushes);
        assert_true(flushes >= 20 && own >= 1 && own < flushes);

        /* read it all back */
        rd_kafka_t *consumer = consumer_of(brokers, "out");
        int last[KEYS], got = 0, key_part[KEYS];
        for (int k = 0; k < KEYS; k++)
                last[k] = -1, key_part[k] = -1;
        int64_t deadline = dmp_mono_ms() + 60000;
        while (got < N && dmp_mono_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 100);
                if (!m)
                        continue;
                if (!m->err) {
                        char key[16] = "", val[16] = "";
                        memcpy(key, m->key, m->key_len < 15 ? m->key_len : 15);
                        memcpy(val, m->payload, m->len < 15 ? m->len : 15);
                        int k = atoi(key + 1), seq = atoi(val);
                        assert_true(k >= 0 && k < KEYS && seq % KEYS == k);
                        if (seq <= last[k])
                                fail_msg("key %d: record %d after %d", k, seq, last[k]);
                        last[k] = seq;
                        if (key_part[k] < 0)
                                key_part[k] = m->partition;
                        assert_int_equal(m->partition, key_part[k]); /* one partition per key */
                        assert_int_equal(m->partition,
                                         kafka_partition(m->key, m->key_len, PARTS));
                        assert_int_equal(m->len, seq == BIG ? (size_t)BIG_LEN : strlen(val));
                        got++;
                }
                rd_kafka_message_destroy(m);
        }
        assert_int_equal(got, N);
        for (int k = 0; k < KEYS; k++) /* each key's last record arrived */
                assert_int_equal(last[k], (N - 1 - k) / KEYS * KEYS + k);
        rd_kafka_consumer_close(consumer);
        rd_kafka_destroy(consumer);

        /* a produce error other than a full queue is reported, naming the topic */
        rd_kafka_t *small = producer(brokers, "1000", "10000", "murmur2_random");
        dmp_outbatch_t *sb = dmp_outbatch_new(small, "out", err, sizeof(err));
        assert_int_equal(dmp_outbatch_add(sb, big, 20000, "k", 1, err, sizeof(err)), 0);
        assert_int_equal(dmp_outbatch_flush(sb, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "cannot produce to out"));
        assert_int_equal(dmp_outbatch_pending(sb), 0);
        dmp_outbatch_destroy(sb);
        rd_kafka_destroy(small);

        /* other partitioners: fnv1a and consistent_random as librdkafka runs
         * them (an empty key of consistent_random: random, librdkafka's) */
        static const char *const names[] = {"fnv1a_random", "consistent_random", "random"};
        for (size_t pi = 0; pi < 3; pi++) {
                char topic[32];
                snprintf(topic, sizeof(topic), "other-%zu", pi);
                assert_int_equal(rd_kafka_mock_topic_create(mc, topic, PARTS, 1), 0);
                rd_kafka_t *ork = producer(brokers, "100000", NULL, names[pi]);
                dmp_outbatch_t *ob = dmp_outbatch_new(ork, topic, err, sizeof(err));
                for (int round = 0; round < 2; round++) { /* the first: librdkafka's */
                        for (int i = 0; i < 300; i++) {
                                char key[16];
                                int kl = i % 50 ? snprintf(key, sizeof(key), "key-%d", i) : 0;
                                assert_int_equal(dmp_outbatch_add(ob, "v", 1, key, (size_t)kl, err,
                                                                  sizeof(err)),
                                                 0);
                        }
                        assert_int_equal(dmp_outbatch_flush(ob, err, sizeof(err)), 0);
                        /* delivered: librdkafka's partitioner has seen the count */
                        assert_int_equal(rd_kafka_flush(ork, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
                }
                dmp_outbatch_flushes(ob, &own, &flushes);
                assert_int_equal(flushes, 2);
                assert_int_equal(own, pi < 2 ? 1 : 0); /* random: always librdkafka's */
                assert_int_equal(rd_kafka_flush(ork, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
                dmp_outbatch_destroy(ob);
                rd_kafka_destroy(ork);
                if (pi == 2)
                        break;
                rd_kafka_t *oc = consumer_of(brokers, topic);
                int seen = 0;
                deadline = dmp_mono_ms() + 30000;
                while (seen < 600 && dmp_mono_ms() < deadline) {
                        rd_kafka_message_t *m = rd_kafka_consumer_poll(oc, 100);
                        if (!m)
                                continue;
                        if (!m->err) {
                                seen++;
                                if (m->key_len) {
                                        int32_t want = pi == 0 ? rd_kafka_msg_partitioner_fnv1a(
                                                                         NULL, m->key, m->key_len,
                                                                         PARTS, NULL, NULL)
                                                               : rd_kafka_msg_partitioner_consistent(
                                                                         NULL, m->key, m->key_len,
                                                                         PARTS, NULL, NULL);
                                        assert_int_equal(m->partition, want);
                                }
                        }
                        rd_kafka_message_destroy(m);
                }
                assert_int_equal(seen, 600);
                rd_kafka_consumer_close(oc);
                rd_kafka_destroy(oc);
        }

        free(big);
        dmp_outbatch_destroy(b);
        rd_kafka_destroy(rk);
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(mc_rk);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_murmur2_oracle),
                cmocka_unit_test(test_produce_batch_fails_the_rest),
                cmocka_unit_test(test_order_through_full_queue),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
