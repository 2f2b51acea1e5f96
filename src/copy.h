/* Copies of input records with their provenance: a dead letter (dlq.c) or
 * a late event (the daemon's late.topic) goes to its topic unchanged --
 * same key, same value -- with headers saying where it came from, plus the
 * caller's own headers (why it was copied).
 *
 * Durability: copies go through the daemon's producer, so the commit
 * protocol covers them like results (docs/STATE.md).
 *
 * Threads: the processing thread. */
#ifndef DMP_COPY_H
#define DMP_COPY_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/* Provenance header names; values are UTF-8 text (numbers in decimal). */
#define DMP_COPY_H_TOPIC     "dmpflow.source.topic"
#define DMP_COPY_H_PARTITION "dmpflow.source.partition"
#define DMP_COPY_H_OFFSET    "dmpflow.source.offset"
#define DMP_COPY_H_TIMESTAMP "dmpflow.source.timestamp" /* ms; -1 if none */
/* Why a late copy was made: the window definitions it was late for,
 * comma-separated. */
#define DMP_COPY_H_LATE_WINDOWS "dmpflow.late.windows"

/* An input record and where it came from. */
typedef struct dmp_copy_rec {
        const char *topic;
        int32_t partition;
        int64_t offset;
        int64_t timestamp; /* the Kafka timestamp, ms; -1 if none */
        const void *key;   /* may be NULL */
        size_t key_len;
        const void *value; /* may be NULL (a tombstone) */
        size_t len;
} dmp_copy_rec_t;

/* Produces a copy of r to topic with the provenance headers and then the
 * nextra (name, value) pairs of extra, waiting for room in the producer's
 * queue if it is full. Returns 0, or -1 with errstr (a fatal condition for
 * the caller: the copy would be lost). */
int dmp_copy_produce(rd_kafka_t *producer, const char *topic, const dmp_copy_rec_t *r,
                     const char *const *extra, int nextra, char *errstr, size_t errstr_size);

#endif
