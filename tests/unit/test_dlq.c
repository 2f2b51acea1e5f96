/* Unit tests of src/dlq.c against librdkafka's mock cluster (no broker):
 * dead letters arrive unchanged, with the documented headers, and are
 * counted per class; without a topic they are only counted. */
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

#include "dlq.h"
#include "log.h"

typedef struct mock {
        rd_kafka_t *mrk; /* owns the mock cluster */
        rd_kafka_mock_cluster_t *mc;
        rd_kafka_t *producer;
        char bootstraps[256];
} mock_t;

static void mock_open(mock_t *m) {
        char err[512];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "log_level", "0", NULL, 0);
        m->mrk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
        assert_non_null(m->mrk);
        m->mc = rd_kafka_mock_cluster_new(m->mrk, 1);
        assert_non_null(m->mc);
        snprintf(m->bootstraps, sizeof(m->bootstraps), "%s", rd_kafka_mock_cluster_bootstraps(m->mc));
        assert_int_equal(rd_kafka_mock_topic_create(m->mc, "dead", 1, 1), 0);
        c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "bootstrap.servers", m->bootstraps, NULL, 0);
        rd_kafka_conf_set(c, "log_level", "0", NULL, 0);
        m->producer = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
        assert_non_null(m->producer);
}

static void mock_close(mock_t *m) {
        rd_kafka_destroy(m->producer);
        rd_kafka_mock_cluster_destroy(m->mc);
        rd_kafka_destroy(m->mrk);
}

/* The value of header `name` as a NUL-terminated string (static buffer). */
static const char *header(const rd_kafka_message_t *msg, const char *name) {
        static char buf[512];
        rd_kafka_headers_t *h = NULL;
        const void *v;
        size_t n;
        if (rd_kafka_message_headers(msg, &h) || rd_kafka_header_get_last(h, name, &v, &n))
                return NULL;
        if (n >= sizeof(buf))
                n = sizeof(buf) - 1;
        memcpy(buf, v, n);
        buf[n] = '\0';
        return buf;
}

typedef struct sent {
        dmp_copy_rec_t r;
        dmp_decode_err_t cls;
        const char *msg;
} sent_t;

static void test_dead_letters_arrive_unchanged_with_headers(void **state) {
        (void)state;
        mock_t m;
        mock_open(&m);
        char err[512];
        dmp_dlq_t *q = dmp_dlq_new(m.producer, "dead", err, sizeof(err));
        assert_non_null(q);
        static const unsigned char bin[] = {0x00, 0xff, 0x80, 0x00, 0x7f};
        sent_t sent[] = {
                {{"events", 3, 1234, 1700000000123, "user-1", 6, bin, sizeof(bin)},
                 DMP_DECODE_TRUNCATED, "malformed Avro record: truncated (at byte 4)"},
                {{"events", 0, 0, -1, NULL, 0, "x", 1}, DMP_DECODE_VARINT, "varint"},
                {{"other.topic", 7, INT64_C(9007199254740993), 5, "k", 1, NULL, 0},
                 DMP_DECODE_TRUNCATED, "an empty value"},
                {{"events", 1, 2, 3, "k2", 2, "abc", 3}, DMP_DECODE_TIME_RANGE,
                 "event time 2305843009213693952 is out of range"},
        };
        const int n = (int)(sizeof(sent) / sizeof(sent[0]));
        for (int i = 0; i < n; i++)
                assert_int_equal(dmp_dlq_send(q, &sent[i].r, sent[i].cls, sent[i].msg, err,
                                              sizeof(err)), 0);
        assert_int_equal(rd_kafka_flush(m.producer, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_int_equal(dmp_dlq_count(q, DMP_DECODE_TRUNCATED), 2);
        assert_int_equal(dmp_dlq_count(q, DMP_DECODE_VARINT), 1);
        assert_int_equal(dmp_dlq_count(q, DMP_DECODE_TIME_RANGE), 1);
        assert_int_equal(dmp_dlq_count(q, DMP_DECODE_UNION), 0);
        char counts[256];
        dmp_dlq_format_counts(q, counts, sizeof(counts));
        assert_string_equal(counts, "truncated=2 varint=1 time_range=1");

        /* read them back */
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "bootstrap.servers", m.bootstraps, NULL, 0);
        rd_kafka_conf_set(c, "group.id", "t", NULL, 0);
        rd_kafka_conf_set(c, "log_level", "0", NULL, 0);
        rd_kafka_t *cons = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
        assert_non_null(cons);
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, "dead", 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
        assert_int_equal(rd_kafka_assign(cons, l), 0);
        rd_kafka_topic_partition_list_destroy(l);
        int got = 0;
        for (int tries = 0; got < n && tries < 200; tries++) {
                rd_kafka_message_t *msg = rd_kafka_consumer_poll(cons, 100);
                if (!msg)
                        continue;
                if (msg->err) {
                        rd_kafka_message_destroy(msg);
                        continue;
                }
                const sent_t *s = &sent[got];
                assert_int_equal(msg->len, s->r.value ? s->r.len : 0);
                if (msg->len)
                        assert_memory_equal(msg->payload, s->r.value, msg->len);
                assert_int_equal(msg->key_len, s->r.key ? s->r.key_len : 0);
                if (msg->key_len)
                        assert_memory_equal(msg->key, s->r.key, msg->key_len);
                char num[32];
                assert_string_equal(header(msg, DMP_COPY_H_TOPIC), s->r.topic);
                snprintf(num, sizeof(num), "%d", (int)s->r.partition);
                assert_string_equal(header(msg, DMP_COPY_H_PARTITION), num);
                snprintf(num, sizeof(num), "%lld", (long long)s->r.offset);
                assert_string_equal(header(msg, DMP_COPY_H_OFFSET), num);
                snprintf(num, sizeof(num), "%lld", (long long)s->r.timestamp);
                assert_string_equal(header(msg, DMP_COPY_H_TIMESTAMP), num);
                assert_string_equal(header(msg, DMP_DLQ_H_CLASS), dmp_decode_err_name(s->cls));
                assert_string_equal(header(msg, DMP_DLQ_H_MESSAGE), s->msg);
                rd_kafka_message_destroy(msg);
                got++;
        }
        assert_int_equal(got, n);
        rd_kafka_consumer_close(cons);
        rd_kafka_destroy(cons);
        dmp_dlq_destroy(q);
        mock_close(&m);
}

/* Without a topic: counted, nothing produced. */
static void test_count_only(void **state) {
        (void)state;
        char err[256];
        dmp_log_level = DMP_LOG_ERROR; /* 10 warnings per class otherwise */
        dmp_dlq_t *q = dmp_dlq_new(NULL, "", err, sizeof(err));
        assert_non_null(q);
        char counts[256];
        dmp_dlq_format_counts(q, counts, sizeof(counts));
        assert_string_equal(counts, "none");
        dmp_copy_rec_t r = {"events", 0, 5, 6, NULL, 0, "v", 1};
        for (int i = 0; i < 25; i++)
                assert_int_equal(dmp_dlq_send(q, &r, DMP_DECODE_UNION, "bad branch", err,
                                              sizeof(err)), 0);
        assert_int_equal(dmp_dlq_count(q, DMP_DECODE_UNION), 25);
        dmp_dlq_format_counts(q, counts, sizeof(counts));
        assert_string_equal(counts, "union=25");
        dmp_dlq_destroy(q);
}

/* The last dead letters kept for the live page: the newest
 * DMP_DLQ_RECENT, oldest first, with where they came from. */
static void test_recent(void **state) {
        (void)state;
        char err[256];
        dmp_dlq_t *q = dmp_dlq_new(NULL, NULL, err, sizeof(err));
        dmp_dlq_recent_t rec[DMP_DLQ_RECENT];
        assert_int_equal(dmp_dlq_recent(q, rec), 0);
        for (int i = 0; i < 3; i++) {
                dmp_copy_rec_t r = {"events", 2, 100 + i, -1, NULL, 0, "v", 1};
                assert_int_equal(dmp_dlq_send(q, &r, DMP_DECODE_TRAILING, "x", err, sizeof(err)), 0);
        }
        assert_int_equal(dmp_dlq_recent(q, rec), 3);
        assert_int_equal(rec[0].offset, 100);
        assert_int_equal(rec[2].offset, 102);
        assert_int_equal(rec[2].partition, 2);
        assert_int_equal(rec[2].cls, DMP_DECODE_TRAILING);
        assert_true(rec[2].at_ms > 0);
        for (int i = 0; i < 25; i++) {
                dmp_copy_rec_t r = {"events", i % 4, 1000 + i, -1, NULL, 0, "v", 1};
                assert_int_equal(dmp_dlq_send(q, &r, DMP_DECODE_VARINT, "x", err, sizeof(err)), 0);
        }
        assert_int_equal(dmp_dlq_recent(q, rec), DMP_DLQ_RECENT);
        for (int i = 0; i < DMP_DLQ_RECENT; i++) {
                assert_int_equal(rec[i].offset, 1000 + 25 - DMP_DLQ_RECENT + i);
                assert_int_equal(rec[i].cls, DMP_DECODE_VARINT);
        }
        dmp_dlq_destroy(q);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dead_letters_arrive_unchanged_with_headers),
                cmocka_unit_test(test_count_only),
                cmocka_unit_test(test_recent),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
