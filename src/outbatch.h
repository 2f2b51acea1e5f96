/* Batched producing of output records: one batch per output topic, handed
 * to librdkafka with rd_kafka_produce_batch (partitioned by the producer's
 * configured partitioner, RD_KAFKA_PARTITION_UA), which costs the calling
 * thread ~0.6-0.8 of rd_kafka_produce's CPU per message (bench/produce_bench,
 * docs/PERFORMANCE.md).
 *
 * Order: a topic's records are enqueued in the order they were added. When
 * the producer's queue is full, rd_kafka_produce_batch enqueues a prefix of
 * the batch and fails every later message with QUEUE_FULL (librdkafka
 * 2.0.2, checked by tests/unit/test_outbatch.c); the flush then serves the
 * producer (delivery reports free room) and goes on from the first failed
 * one. Should a librdkafka enqueue a message after a failed one, the flush
 * reports the lost order as an error instead of publishing out of order.
 *
 * The caller flushes before it flushes the producer (a commit) and when it
 * has nothing more to add for a while (after each batch of input); a batch
 * also flushes itself when full.
 *
 * Threads: a batch is used by one thread (the processing thread). */
#ifndef DMP_OUTBATCH_H
#define DMP_OUTBATCH_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

typedef struct dmp_outbatch dmp_outbatch_t;

/* A batch for topic rkt of producer rk; neither is owned. */
dmp_outbatch_t *dmp_outbatch_new(rd_kafka_t *rk, rd_kafka_topic_t *rkt);
void dmp_outbatch_destroy(dmp_outbatch_t *b);

/* Adds a copy of the record (value, key). Returns 0, or -1 with errstr if a
 * flush it needed failed (see dmp_outbatch_flush). */
int dmp_outbatch_add(dmp_outbatch_t *b, const void *value, size_t len, const void *key,
                     size_t key_len, char *errstr, size_t errstr_size);

/* Enqueues every added record with the producer, waiting (serving the
 * producer, 10 ms at a time) while its queue is full. Returns 0, or -1 with
 * errstr for any other produce error or a lost order; the records not
 * enqueued are then dropped. */
int dmp_outbatch_flush(dmp_outbatch_t *b, char *errstr, size_t errstr_size);

/* Records added and not yet flushed. */
size_t dmp_outbatch_pending(const dmp_outbatch_t *b);

#endif
