#include "dlq.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

struct dmp_dlq {
        rd_kafka_t *producer;
        char *topic; /* NULL: count and log only */
        _Atomic uint64_t counts[DMP_DECODE__CNT];
        dmp_dlq_recent_t recent[DMP_DLQ_RECENT]; /* a ring; processing thread */
        uint64_t nrecent;                        /* dead letters ever put in it */
};

dmp_dlq_t *dmp_dlq_new(rd_kafka_t *producer, const char *topic, char *errstr,
                       size_t errstr_size) {
        (void)errstr;
        (void)errstr_size;
        dmp_dlq_t *q = dmp_calloc(1, sizeof(*q));
        q->producer = producer;
        q->topic = topic && *topic ? dmp_strdup(topic) : NULL;
        return q;
}

void dmp_dlq_destroy(dmp_dlq_t *q) {
        if (!q)
                return;
        free(q->topic);
        free(q);
}

uint64_t dmp_dlq_count(const dmp_dlq_t *q, dmp_decode_err_t cls) {
        return (unsigned)cls < DMP_DECODE__CNT ? atomic_load(&q->counts[cls]) : 0;
}

void dmp_dlq_format_counts(const dmp_dlq_t *q, char *buf, size_t size) {
        size_t n = 0;
        buf[0] = '\0';
        for (int c = 1; c < DMP_DECODE__CNT && n < size; c++) {
                uint64_t v = atomic_load(&q->counts[c]);
                if (v)
                        n += (size_t)snprintf(buf + n, size - n, "%s%s=%" PRIu64, n ? " " : "",
                                              dmp_decode_err_name((dmp_decode_err_t)c), v);
        }
        if (!buf[0])
                snprintf(buf, size, "none");
}

int dmp_dlq_recent(const dmp_dlq_t *q, dmp_dlq_recent_t *out) {
        int n = q->nrecent < DMP_DLQ_RECENT ? (int)q->nrecent : DMP_DLQ_RECENT;
        for (int i = 0; i < n; i++)
                out[i] = q->recent[(q->nrecent - (uint64_t)n + (uint64_t)i) % DMP_DLQ_RECENT];
        return n;
}

static void add_header(rd_kafka_headers_t *h, const char *name, const char *value) {
        rd_kafka_header_add(h, name, -1, value, (ssize_t)strlen(value));
}

static void add_header_num(rd_kafka_headers_t *h, const char *name, int64_t v) {
        char s[24];
        snprintf(s, sizeof(s), "%" PRId64, v);
        add_header(h, name, s);
}

int dmp_dlq_send(dmp_dlq_t *q, const dmp_dlq_record_t *r, dmp_decode_err_t cls,
                 const char *message, char *errstr, size_t errstr_size) {
        if ((unsigned)cls >= DMP_DECODE__CNT)
                cls = DMP_DECODE_OK; /* a caller's bug; still never dropped */
        uint64_t n = atomic_fetch_add(&q->counts[cls], 1) + 1;
        q->recent[q->nrecent++ % DMP_DLQ_RECENT] =
                (dmp_dlq_recent_t){r->partition, r->offset, cls, dmp_now_ms()};
        if (n <= 10 || n % 10000 == 0) /* the counters tell the rest */
                dmp_warn("%s [%d] offset %" PRId64 ": %s: %s (%" PRIu64 " %s so far)%s", r->topic,
                         (int)r->partition, r->offset, dmp_decode_err_name(cls), message, n,
                         dmp_decode_err_name(cls), q->topic ? "" : "; no [output] dlq.topic");
        if (!q->topic)
                return 0;
        rd_kafka_headers_t *h = rd_kafka_headers_new(6);
        add_header(h, DMP_DLQ_H_TOPIC, r->topic);
        add_header_num(h, DMP_DLQ_H_PARTITION, r->partition);
        add_header_num(h, DMP_DLQ_H_OFFSET, r->offset);
        add_header_num(h, DMP_DLQ_H_TIMESTAMP, r->timestamp);
        add_header(h, DMP_DLQ_H_CLASS, dmp_decode_err_name(cls));
        add_header(h, DMP_DLQ_H_MESSAGE, message);
        for (;;) {
                /* On success the headers belong to librdkafka. */
                rd_kafka_resp_err_t err = rd_kafka_producev(
                        q->producer, RD_KAFKA_V_TOPIC(q->topic),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_KEY((void *)r->key, r->key ? r->key_len : 0),
                        RD_KAFKA_V_VALUE((void *)r->value, r->value ? r->len : 0),
                        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
                if (!err)
                        return 0;
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        rd_kafka_headers_destroy(h);
                        snprintf(errstr, errstr_size, "cannot produce to %s: %s", q->topic,
                                 rd_kafka_err2str(err));
                        return -1;
                }
                rd_kafka_poll(q->producer, 10); /* wait for room in the queue */
        }
}
