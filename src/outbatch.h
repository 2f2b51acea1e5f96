/* Batched producing of output records: one batch per output topic, handed
 * to librdkafka with rd_kafka_produce_batch, which costs the calling thread
 * less than rd_kafka_produce per message (bench/produce_bench,
 * docs/PERFORMANCE.md), least when a batch names each record's partition
 * and holds a partition's records together.
 *
 * Partitions: a batch partitions its records itself, with the function of
 * the topic's configured `partitioner` (rd_kafka_msg_partitioner_*) and the
 * partition count librdkafka last passed to that partitioner. It learns the
 * count by leaving the partitioning to librdkafka (RD_KAFKA_PARTITION_UA)
 * for its first flush and then for one flush a second, so a partition count
 * that grows is followed within about a second (a Java producer follows it
 * at its next metadata refresh). With `partitioner = random`, or a
 * consistent_random record without a key, librdkafka partitions.
 *
 * Order: a topic's records are enqueued in the order they were added, per
 * partition. When the producer's queue is full, rd_kafka_produce_batch
 * enqueues a prefix of the batch and fails every later message with
 * QUEUE_FULL (librdkafka 2.0.2, checked by tests/unit/test_outbatch.c); the
 * flush then serves the producer (delivery reports free room) and goes on
 * from the first failed one. Should a librdkafka enqueue a message after a
 * failed one, the flush reports the lost order as an error instead of
 * publishing out of order.
 *
 * The caller flushes before it flushes the producer (a commit) and when it
 * has nothing more to add for a while (after each batch of input); a batch
 * also flushes itself when full.
 *
 * Threads: a batch is used by one thread (the processing thread); only the
 * partitioner callback it installs runs on librdkafka's threads too. */
#ifndef DMP_OUTBATCH_H
#define DMP_OUTBATCH_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dmp_outbatch dmp_outbatch_t;

/* A batch for `topic` of producer rk (not owned), with its own topic handle
 * (the producer's default topic configuration and a partitioner callback).
 * NULL with errstr on error. */
dmp_outbatch_t *dmp_outbatch_new(rd_kafka_t *rk, const char *topic, char *errstr,
                                 size_t errstr_size);
/* Destroys the batch and its topic handle (records not flushed are lost). */
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

/* The next flush lets librdkafka partition (and learn the partitions
 * again): after a failed delivery, for the topic may now be refused or
 * gone (see dmp_outbatch_flush in outbatch.c). Main thread. */
void dmp_outbatch_relearn(dmp_outbatch_t *b);

/* Records added and not yet flushed. */
size_t dmp_outbatch_pending(const dmp_outbatch_t *b);

/* Flushes so far that partitioned their records themselves, and all. */
void dmp_outbatch_flushes(const dmp_outbatch_t *b, uint64_t *partitioned, uint64_t *all);

#endif
