/* Batched producing of output records: see outbatch.h. */
#include "outbatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Records per rd_kafka_produce_batch call: the per-call saving levels off
 * long before (bench/produce_bench batches 1000). */
#define BATCH_MSGS 1024
#define ARENA_BYTES (128 * 1024) /* values and keys; grows for a larger record */

struct dmp_outbatch {
        rd_kafka_t *rk;
        rd_kafka_topic_t *rkt;
        rd_kafka_message_t msgs[BATCH_MSGS];
        int n;
        unsigned char *arena; /* the records' copies, until the flush */
        size_t used, cap;
};

dmp_outbatch_t *dmp_outbatch_new(rd_kafka_t *rk, rd_kafka_topic_t *rkt) {
        dmp_outbatch_t *b = dmp_calloc(1, sizeof(*b));
        b->rk = rk;
        b->rkt = rkt;
        b->cap = ARENA_BYTES;
        b->arena = dmp_malloc(b->cap);
        return b;
}

void dmp_outbatch_destroy(dmp_outbatch_t *b) {
        if (!b)
                return;
        free(b->arena);
        free(b);
}

size_t dmp_outbatch_pending(const dmp_outbatch_t *b) {
        return (size_t)b->n;
}

int dmp_outbatch_add(dmp_outbatch_t *b, const void *value, size_t len, const void *key,
                     size_t key_len, char *errstr, size_t errstr_size) {
        size_t need = len + key_len;
        if (b->n == BATCH_MSGS || need > b->cap - b->used) {
                if (dmp_outbatch_flush(b, errstr, errstr_size))
                        return -1;
                if (need > b->cap) { /* empty now: nothing points into it */
                        free(b->arena);
                        b->cap = need;
                        b->arena = dmp_malloc(b->cap);
                }
        }
        unsigned char *p = b->arena + b->used;
        if (len)
                memcpy(p, value, len);
        if (key_len)
                memcpy(p + len, key, key_len);
        b->used += need;
        rd_kafka_message_t *m = &b->msgs[b->n++];
        memset(m, 0, sizeof(*m));
        m->payload = p;
        m->len = len;
        m->key = p + len;
        m->key_len = key_len;
        return 0;
}

int dmp_outbatch_flush(dmp_outbatch_t *b, char *errstr, size_t errstr_size) {
        int off = 0, rc = 0;
        while (off < b->n) {
                rd_kafka_produce_batch(b->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                                       b->msgs + off, b->n - off);
                int full = -1; /* the first QUEUE_FULL */
                for (int i = off; i < b->n && rc == 0; i++) {
                        rd_kafka_resp_err_t err = b->msgs[i].err;
                        if (full < 0 && err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                                full = i;
                        } else if (err && err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                                snprintf(errstr, errstr_size, "cannot produce to %s: %s",
                                         rd_kafka_topic_name(b->rkt), rd_kafka_err2str(err));
                                rc = -1;
                        } else if (full >= 0 && !err) {
                                snprintf(errstr, errstr_size,
                                         "producing to %s: librdkafka enqueued a record after "
                                         "one it refused (queue full): their order is lost",
                                         rd_kafka_topic_name(b->rkt));
                                rc = -1;
                        }
                }
                if (rc || full < 0)
                        break;
                off = full;
                rd_kafka_poll(b->rk, 10); /* delivery reports make room */
        }
        b->n = 0;
        b->used = 0;
        return rc;
}
