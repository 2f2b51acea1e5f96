/* Dead letters: a record that cannot be processed (it cannot be decoded,
 * or its event time is out of range) goes unchanged -- same key, same
 * value -- to the dead-letter topic, with headers saying where it came from
 * and why, and is counted per error class; the partition moves on.
 *
 * Durability: dead letters go through the daemon's producer, so the commit
 * protocol covers them: the flush before each commit waits for their
 * acknowledgement, and a failed delivery fails the commit (the records are
 * then read, and dead-lettered, again after a restart). Nothing is dropped
 * silently: without a topic, dead letters are counted and logged only.
 *
 * Threads: the processing thread, except dmp_dlq_count (any thread; the
 * value may be slightly stale). */
#ifndef DMP_DLQ_H
#define DMP_DLQ_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "decoder.h"

/* Header names; values are UTF-8 text (numbers in decimal). */
#define DMP_DLQ_H_TOPIC     "dmpflow.source.topic"
#define DMP_DLQ_H_PARTITION "dmpflow.source.partition"
#define DMP_DLQ_H_OFFSET    "dmpflow.source.offset"
#define DMP_DLQ_H_TIMESTAMP "dmpflow.source.timestamp" /* ms; -1 if none */
#define DMP_DLQ_H_CLASS     "dmpflow.error.class"      /* dmp_decode_err_name() */
#define DMP_DLQ_H_MESSAGE   "dmpflow.error.message"

/* Where a dead letter came from. */
typedef struct dmp_dlq_record {
        const char *topic;
        int32_t partition;
        int64_t offset;
        int64_t timestamp; /* ms, -1 if none */
        const void *key;   /* may be NULL */
        size_t key_len;
        const void *value; /* may be NULL (a tombstone) */
        size_t len;
} dmp_dlq_record_t;

typedef struct dmp_dlq dmp_dlq_t;

/* producer is borrowed (it must outlive the DLQ); topic NULL or "": count
 * and log only. Never fails today; NULL with errstr is reserved. */
dmp_dlq_t *dmp_dlq_new(rd_kafka_t *producer, const char *topic, char *errstr,
                       size_t errstr_size);
void dmp_dlq_destroy(dmp_dlq_t *q);

/* Counts r under cls, logs it (the first 10 of each class, then every
 * 10,000th) and produces it to the topic. Returns 0, or -1 with errstr if
 * it cannot be produced (a fatal condition for the caller). */
int dmp_dlq_send(dmp_dlq_t *q, const dmp_dlq_record_t *r, dmp_decode_err_t cls,
                 const char *message, char *errstr, size_t errstr_size);

uint64_t dmp_dlq_count(const dmp_dlq_t *q, dmp_decode_err_t cls);

/* "truncated=2 varint=1" (classes with a count only; "none" if all zero). */
void dmp_dlq_format_counts(const dmp_dlq_t *q, char *buf, size_t size);

/* The last dead letters, for the live page (processing thread): where
 * each came from, its class and when (wall clock). Copies at most
 * DMP_DLQ_RECENT into out, oldest first, and returns how many. */
#define DMP_DLQ_RECENT 10
typedef struct dmp_dlq_recent {
        int32_t partition;
        int64_t offset;
        dmp_decode_err_t cls;
        int64_t at_ms;
} dmp_dlq_recent_t;
int dmp_dlq_recent(const dmp_dlq_t *q, dmp_dlq_recent_t *out);

#endif
