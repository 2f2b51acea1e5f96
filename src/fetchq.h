/* The consumer's fetched messages, on a queue of their own, served by
 * callback.
 *
 * Why: librdkafka 2.0's rd_kafka_consume_batch_queue() takes the consumer
 * queue's lock once per message it hands over (rd_kafka_q_serve_rkmessages),
 * and that lock is the one the broker thread appends fetched messages
 * under. rd_kafka_consume_callback_queue() moves what is queued under one
 * lock and calls back per message, but it cannot serve the consumer queue:
 * a rebalance op there would reach its message path, which asserts on any op
 * that is not a message or an error. So each assigned partition's queue is
 * forwarded here (rd_kafka_queue_forward, which sets the queue's "forwarded
 * by the application" flag, so the fetcher's start does not forward it
 * back to the consumer queue), and this queue holds messages, consumer
 * errors and barriers only; rebalances and other events stay on the
 * consumer queue (rd_kafka_consume_batch_queue with timeout 0, each round
 * of the daemon's loop). Measured: 8-14 % less CPU per
 * event end to end (docs/PERFORMANCE.md).
 *
 * A partition that is not forwarded (librdkafka has no queue for it) keeps
 * its messages on the consumer queue, where rd_kafka_consume_batch_queue()
 * returns them: slower, still correct. Order holds either way: a
 * partition's messages are on one queue at a time (forwarding moves what
 * a partition's own queue holds, in order).
 *
 * Threads: everything on the consumer's poll thread, except the wake-up
 * writes librdkafka's threads do on the eventfd (rd_kafka_queue_io_event)
 * and dmp_fetchq_wake(). */
#ifndef DMP_FETCHQ_H
#define DMP_FETCHQ_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

typedef struct dmp_fetchq dmp_fetchq_t;

/* A fetch queue for consumer (borrowed: destroy the fetch queue after
 * rd_kafka_consumer_close, before rd_kafka_destroy). NULL with errstr if
 * the wake-up eventfd cannot be made. */
dmp_fetchq_t *dmp_fetchq_new(rd_kafka_t *consumer, char *errstr, size_t errstr_size);

/* Forwards the partitions' queues here. Call it before assigning them (a
 * forward after the fetcher started would leave the messages fetched
 * meanwhile on the consumer queue); calling it again is harmless. */
void dmp_fetchq_forward(dmp_fetchq_t *fq, const rd_kafka_topic_partition_list_t *parts);

/* Forwards the current assignment's queues again. librdkafka starts a
 * partition's fetcher only once the fetchers of earlier revocations have
 * stopped (a stop clears its queue's forwarding), so the forward made when
 * the partition was assigned holds; this is the defence should one ever be
 * lost, which would leave that partition's messages unserved. The daemon
 * calls it once a second. */
void dmp_fetchq_reforward(dmp_fetchq_t *fq);

/* Calls on_message for each message queued now, in order (the message is
 * librdkafka's and valid during the call only; messages of a partition
 * sought or revoked meanwhile are dropped by librdkafka). Returns how many
 * ops were served (messages and dropped ones). */
int dmp_fetchq_serve(dmp_fetchq_t *fq, void (*on_message)(rd_kafka_message_t *m, void *opaque),
                     void *opaque);

/* Messages queued here (for the fetch waker). */
size_t dmp_fetchq_length(const dmp_fetchq_t *fq);

/* The consumer queue (borrowed, valid until dmp_fetchq_destroy): the
 * caller serves it each round, with a zero timeout. */
rd_kafka_queue_t *dmp_fetchq_events(const dmp_fetchq_t *fq);

/* Waits at most timeout_ms until this queue or the consumer queue has
 * something (it may return early). */
void dmp_fetchq_wait(dmp_fetchq_t *fq, int timeout_ms);

/* Makes q (another queue, borrowed: say a second consumer's) end
 * dmp_fetchq_wait() too when it becomes non-empty. Undo it with
 * dmp_fetchq_unwatch() before q or fq is destroyed. */
void dmp_fetchq_watch(dmp_fetchq_t *fq, rd_kafka_queue_t *q);
void dmp_fetchq_unwatch(dmp_fetchq_t *fq, rd_kafka_queue_t *q);

/* Ends the current or next dmp_fetchq_wait() early (any thread): e.g. an
 * HTTP state query waits for the processing thread. */
void dmp_fetchq_wake(dmp_fetchq_t *fq);

/* Seeks a partition of consumer to offset, without waiting: the seek is
 * queued to the partition before anything the caller does next (a resume),
 * and messages fetched before it are dropped. Returns 0, or -1 with errstr
 * when librdkafka refuses it at once (say, a partition it does not hold).
 * Why not wait: librdkafka before 2.1.0 waits timeout_ms microseconds, not
 * milliseconds, for a seek (#4230): a 5 s wait lasted 5 ms, and a busy
 * consumer's seek "timed out". */
int dmp_fetchq_seek(rd_kafka_t *consumer, const char *topic, int32_t partition, int64_t offset,
                    char *errstr, size_t errstr_size);

void dmp_fetchq_destroy(dmp_fetchq_t *fq);

#endif
