/* Dead letters: a record that cannot be processed (it cannot be decoded,
 * or its event time is out of range) goes unchanged to the dead-letter
 * topic with its provenance (copy.h) and headers saying why, and is counted
 * per error class; the partition moves on.
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

#include "copy.h"
#include "decoder.h"

/* Why: header names beyond the provenance (copy.h DMP_COPY_H_*). */
#define DMP_DLQ_H_CLASS   "dmpflow.error.class" /* dmp_decode_err_name() */
#define DMP_DLQ_H_MESSAGE "dmpflow.error.message"

typedef struct dmp_dlq dmp_dlq_t;

/* producer is borrowed (it must outlive the DLQ); topic NULL or "": count
 * and log only. Never fails today; NULL with errstr is reserved. */
dmp_dlq_t *dmp_dlq_new(rd_kafka_t *producer, const char *topic, char *errstr,
                       size_t errstr_size);
void dmp_dlq_destroy(dmp_dlq_t *q);

/* Counts r under cls, logs it (one line per class per repeat interval,
 * log.h dmp_log_repeated) and produces it to the topic. Returns 0, or -1 with errstr if
 * it cannot be produced (a fatal condition for the caller). */
int dmp_dlq_send(dmp_dlq_t *q, const dmp_copy_rec_t *r, dmp_decode_err_t cls,
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
