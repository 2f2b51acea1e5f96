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
#define RELEARN_MS 1000          /* a flush partitioned by librdkafka this often */

typedef int32_t partitioner_fn(const rd_kafka_topic_t *rkt, const void *key, size_t keylen,
                               int32_t partition_cnt, void *rkt_opaque, void *msg_opaque);

struct dmp_outbatch {
        rd_kafka_t *rk;
        rd_kafka_topic_t *rkt;
        partitioner_fn *partition; /* the configured one; NULL: librdkafka partitions */
        int keyless_ua;            /* consistent_random: a record without key is random */
        int32_t partition_cnt;     /* learnt (atomic: librdkafka's threads store it) */
        int64_t relearn_ms;        /* the next flush at or after it lets librdkafka partition */
        uint64_t flushes, partitioned;
        rd_kafka_message_t msgs[BATCH_MSGS];
        rd_kafka_message_t sorted[BATCH_MSGS]; /* msgs grouped by partition */
        int n;
        int32_t *counts; /* per partition + 1 (UA), for the grouping */
        size_t counts_cap;
        unsigned char *arena; /* the records' copies, until the flush */
        size_t used, cap;
};

/* The topic's partitioner: the configured one, and the partition count
 * librdkafka passes it, for the batch's own partitioning. */
static int32_t learning_partitioner(const rd_kafka_topic_t *rkt, const void *key, size_t keylen,
                                    int32_t partition_cnt, void *rkt_opaque, void *msg_opaque) {
        dmp_outbatch_t *b = rkt_opaque;
        __atomic_store_n(&b->partition_cnt, partition_cnt, __ATOMIC_RELAXED);
        return b->partition(rkt, key, keylen, partition_cnt, rkt_opaque, msg_opaque);
}

/* The partitioners a batch can run itself (random ones ask librdkafka which
 * partitions are available, under its lock: those stay with librdkafka). */
static const struct {
        const char *name;
        partitioner_fn *fn;
        int keyless_ua;
} partitioners[] = {
        {"consistent", rd_kafka_msg_partitioner_consistent, 0},
        {"consistent_random", rd_kafka_msg_partitioner_consistent, 1},
        {"murmur2", rd_kafka_msg_partitioner_murmur2, 0},
        /* murmur2_random and fnv1a_random are random for a NULL key only;
         * a batch's keys are never NULL (an empty key hashes) */
        {"murmur2_random", rd_kafka_msg_partitioner_murmur2_random, 0},
        {"fnv1a", rd_kafka_msg_partitioner_fnv1a, 0},
        {"fnv1a_random", rd_kafka_msg_partitioner_fnv1a_random, 0},
};

dmp_outbatch_t *dmp_outbatch_new(rd_kafka_t *rk, const char *topic, char *errstr,
                                 size_t errstr_size) {
        dmp_outbatch_t *b = dmp_calloc(1, sizeof(*b));
        b->rk = rk;
        rd_kafka_topic_conf_t *tc = rd_kafka_default_topic_conf_dup(rk);
        char name[64] = "";
        size_t name_size = sizeof(name);
        if (rd_kafka_topic_conf_get(tc, "partitioner", name, &name_size) != RD_KAFKA_CONF_OK)
                name[0] = '\0';
        for (size_t i = 0; i < DMP_ARRAY_SIZE(partitioners); i++)
                if (!strcmp(name, partitioners[i].name)) {
                        b->partition = partitioners[i].fn;
                        b->keyless_ua = partitioners[i].keyless_ua;
                }
        if (b->partition) {
                rd_kafka_topic_conf_set_partitioner_cb(tc, learning_partitioner);
                rd_kafka_topic_conf_set_opaque(tc, b);
        }
        b->rkt = rd_kafka_topic_new(rk, topic, tc); /* takes tc, also on failure */
        if (!b->rkt) {
                snprintf(errstr, errstr_size, "topic %s: %s", topic,
                         rd_kafka_err2str(rd_kafka_last_error()));
                free(b);
                return NULL;
        }
        b->cap = ARENA_BYTES;
        b->arena = dmp_malloc(b->cap);
        return b;
}

void dmp_outbatch_destroy(dmp_outbatch_t *b) {
        if (!b)
                return;
        rd_kafka_topic_destroy(b->rkt);
        free(b->counts);
        free(b->arena);
        free(b);
}

size_t dmp_outbatch_pending(const dmp_outbatch_t *b) {
        return (size_t)b->n;
}

void dmp_outbatch_flushes(const dmp_outbatch_t *b, uint64_t *partitioned, uint64_t *all) {
        *partitioned = b->partitioned;
        *all = b->flushes;
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
        m->key = p + len; /* never NULL */
        m->key_len = key_len;
        return 0;
}

/* Partitions msgs into b->sorted, grouped by partition in a stable order
 * (librdkafka looks a partition up when it changes from one message to the
 * next); UA (librdkafka partitions) first. */
static void partition_batch(dmp_outbatch_t *b, int32_t cnt) {
        if ((size_t)cnt + 1 > b->counts_cap) {
                b->counts_cap = (size_t)cnt + 1;
                b->counts = dmp_realloc(b->counts, b->counts_cap * sizeof(*b->counts));
        }
        memset(b->counts, 0, ((size_t)cnt + 1) * sizeof(*b->counts));
        for (int i = 0; i < b->n; i++) {
                rd_kafka_message_t *m = &b->msgs[i];
                int32_t p = RD_KAFKA_PARTITION_UA;
                if (m->key_len || !b->keyless_ua)
                        p = b->partition(b->rkt, m->key, m->key_len, cnt, NULL, NULL);
                if (p < 0 || p >= cnt)
                        p = RD_KAFKA_PARTITION_UA;
                m->partition = p;
                b->counts[p + 1]++;
        }
        int32_t at = 0;
        for (int32_t p = 0; p <= cnt; p++) { /* counts -> first slots */
                int32_t c = b->counts[p];
                b->counts[p] = at;
                at += c;
        }
        for (int i = 0; i < b->n; i++)
                b->sorted[b->counts[b->msgs[i].partition + 1]++] = b->msgs[i];
}

/* After a refused record, librdkafka partitions the next batches again:
 * with explicit partitions, rd_kafka_produce_batch leaks each record whose
 * partition it cannot find (a refused or deleted topic; 2.0.2 to at least
 * 2.15, rdkafka_msg.c "if (unlikely(!rktp))"), while its partitioner path
 * frees them. */
void dmp_outbatch_relearn(dmp_outbatch_t *b) {
        b->relearn_ms = 0;
}

int dmp_outbatch_flush(dmp_outbatch_t *b, char *errstr, size_t errstr_size) {
        if (!b->n)
                return 0;
        rd_kafka_message_t *msgs = b->msgs;
        int flags = RD_KAFKA_MSG_F_COPY;
        int32_t cnt = __atomic_load_n(&b->partition_cnt, __ATOMIC_RELAXED);
        int64_t now = dmp_mono_ms();
        b->flushes++;
        if (b->partition && cnt > 0 && now < b->relearn_ms) {
                partition_batch(b, cnt);
                msgs = b->sorted;
                flags |= RD_KAFKA_MSG_F_PARTITION;
                b->partitioned++;
        } else {
                b->relearn_ms = now + RELEARN_MS; /* this one: librdkafka partitions */
        }
        int off = 0, rc = 0;
        while (off < b->n) {
                rd_kafka_produce_batch(b->rkt, RD_KAFKA_PARTITION_UA, flags, msgs + off,
                                       b->n - off);
                int full = -1; /* the first QUEUE_FULL */
                for (int i = off; i < b->n && rc == 0; i++) {
                        rd_kafka_resp_err_t err = msgs[i].err;
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
        if (rc)
                dmp_outbatch_relearn(b);
        b->n = 0;
        b->used = 0;
        return rc;
}
