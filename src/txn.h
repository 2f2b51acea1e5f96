/* Kafka transactions of the commit protocol (docs/STATE.md "Changelog and
 * transactions"): a transactional producer is always inside a transaction,
 * and each commit ends it with the input offsets it reflects
 * (rd_kafka_send_offsets_to_transaction with the consumer group's
 * metadata, KIP-447: a member fenced out of the group cannot commit) and
 * begins the next. librdkafka's error classes are mapped to three
 * outcomes: committed, aborted (an abortable error: the transaction was
 * aborted, the caller rewinds its input and restores its state), fatal
 * (the producer is unusable, e.g. fenced by a newer instance with the same
 * transactional.id: the caller stops). Retriable errors are retried here.
 *
 * Ownership: borrows the producer and the consumer. Threads: the
 * processing thread. */
#ifndef DMP_TXN_H
#define DMP_TXN_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
        DMP_TXN_COMMITTED,
        DMP_TXN_ABORTED, /* nothing of the transaction is visible; a new one is open */
        DMP_TXN_FATAL,   /* the producer cannot go on */
} dmp_txn_result_t;

typedef struct dmp_txn dmp_txn_t;

typedef struct dmp_txn_stats {
        uint64_t commits, aborts;
        double commit_seconds, commit_max_seconds; /* commit_transaction's time */
} dmp_txn_stats_t;

/* Initializes the producer's transactions (fencing a previous instance of
 * its transactional.id and aborting what it left open) and begins the
 * first transaction. Blocks up to timeout_ms. NULL with errstr. */
dmp_txn_t *dmp_txn_new(rd_kafka_t *producer, int timeout_ms, char *errstr, size_t errstr_size);
/* Aborts an open transaction (nothing of it becomes visible). */
void dmp_txn_destroy(dmp_txn_t *t);

/* Commits the open transaction with `offsets` (the next input offsets;
 * may be empty) for the group of `consumer`, and begins the next. Blocks
 * until the coordinator has committed it (or timeout_ms per attempt). On
 * DMP_TXN_ABORTED / DMP_TXN_FATAL, errstr says why. */
dmp_txn_result_t dmp_txn_commit(dmp_txn_t *t, const rd_kafka_topic_partition_list_t *offsets,
                                rd_kafka_t *consumer, int timeout_ms, char *errstr,
                                size_t errstr_size);
/* Aborts the open transaction (e.g. a produce failed in it) and begins
 * the next: DMP_TXN_ABORTED, or DMP_TXN_FATAL with errstr. */
dmp_txn_result_t dmp_txn_abort(dmp_txn_t *t, const char *why, char *errstr,
                               size_t errstr_size);

const dmp_txn_stats_t *dmp_txn_stats(const dmp_txn_t *t);

#endif
