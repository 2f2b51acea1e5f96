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

int dmp_dlq_send(dmp_dlq_t *q, const dmp_copy_rec_t *r, dmp_decode_err_t cls,
                 const char *message, char *errstr, size_t errstr_size) {
        if ((unsigned)cls >= DMP_DECODE__CNT)
                cls = DMP_DECODE_OK; /* a caller's bug; still never dropped */
        uint64_t n = atomic_fetch_add(&q->counts[cls], 1) + 1;
        q->recent[q->nrecent++ % DMP_DLQ_RECENT] =
                (dmp_dlq_recent_t){r->partition, r->offset, cls, dmp_now_ms()};
        char lc[64]; /* one line per class per interval (log.h) */
        snprintf(lc, sizeof(lc), "dead letter %s", dmp_decode_err_name(cls));
        dmp_log_repeated(DMP_LOG_WARN, lc, "%s [%d] offset %" PRId64 ": %s: %s (%" PRIu64
                         " %s so far)%s", r->topic, (int)r->partition, r->offset,
                         dmp_decode_err_name(cls), message, n, dmp_decode_err_name(cls),
                         q->topic ? "" : "; no [output] dlq.topic");
        if (!q->topic)
                return 0;
        const char *why[] = {DMP_DLQ_H_CLASS, dmp_decode_err_name(cls), DMP_DLQ_H_MESSAGE, message};
        return dmp_copy_produce(q->producer, q->topic, r, why, 2, errstr, errstr_size);
}
