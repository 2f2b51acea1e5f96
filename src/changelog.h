/* The changelog topic (docs/STATE.md "Changelog and transactions"): every
 * change of an input partition's state goes, at each commit, to the same
 * partition of a compacted topic, in the Kafka transaction that also
 * commits the input offsets; a partition this instance is given is
 * restored from it -- from its local checkpoint to the end, read_committed
 * -- before any of its input is processed, so state moves with its
 * partition and is never rebuilt by re-reading input.
 *
 * Records: key = the family byte (store.h DMP_STORE_FAMILY_*) then the
 * RocksDB key; value = the stored value, or none (a tombstone) for a
 * deletion. The first record of every partition is the fingerprint record
 * (key DMP_CHANGELOG_FINGERPRINT_KEY, value the pipeline's u64 big-endian
 * fingerprint): a changelog written by another pipeline definition is
 * refused at startup.
 *
 * Ownership: the changelog borrows the (transactional) producer and the
 * engine it restores into. Threads: the processing thread. */
#ifndef DMP_CHANGELOG_H
#define DMP_CHANGELOG_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "engine.h"

#define DMP_CHANGELOG_FINGERPRINT_KEY "!fingerprint"

typedef struct dmp_changelog dmp_changelog_t;

/* A restore in progress, for metrics and /readyz. */
typedef struct dmp_restore_info {
        int32_t partition;
        int64_t from;     /* the changelog offset it started at */
        int64_t position; /* the next offset to read (-1: none read yet) */
        int64_t end;      /* the end of the changelog partition when known, else -1 */
        uint64_t records; /* records applied so far */
} dmp_restore_info_t;

typedef struct dmp_changelog_stats {
        uint64_t records_out;      /* records produced */
        uint64_t restored_records; /* records applied by restores, all partitions */
        uint64_t restores;         /* restores completed */
        uint64_t relogged;         /* records of local state logged once (relog) */
} dmp_changelog_stats_t;

/* Creates the changelog of conf ([state] changelog.topic, or
 * <group.id>-changelog), producing with `producer` (transactional; its
 * delivery reports of changelog records must reach dmp_changelog_delivered)
 * and restoring with a consumer of its own built from conf's [kafka].
 * NULL with errstr on failure. */
/* The changelog topic of conf: [state] changelog.topic, or
 * <group.id>-changelog. */
void dmp_changelog_topic_name(const dmp_conf_t *conf, char *buf, size_t size);

dmp_changelog_t *dmp_changelog_new(const dmp_conf_t *conf, rd_kafka_t *producer, char *errstr,
                                   size_t errstr_size);
void dmp_changelog_destroy(dmp_changelog_t *cl);
const char *dmp_changelog_topic(const dmp_changelog_t *cl);

/* The partition count of topic from the cluster's metadata, asked for all
 * topics (asking for one by name could auto-create it with the broker's
 * defaults); 0 if it does not exist, -1 with errstr. Blocks up to
 * timeout_ms. */
int32_t dmp_changelog_partitions_of(rd_kafka_t *rk, const char *topic, int timeout_ms,
                                    char *errstr, size_t errstr_size);

/* Creates the topic if it does not exist (input_partitions partitions,
 * cleanup.policy=compact), else checks that it has input_partitions
 * partitions and that each non-empty partition starts with the
 * fingerprint record of `fingerprint`. Blocks for admin and metadata
 * requests. Returns 0; -1 with errstr, and *config_error set when the
 * topic exists but does not fit (a configuration error: exit 2). */
int dmp_changelog_prepare(dmp_changelog_t *cl, int32_t input_partitions, uint64_t fingerprint,
                          int *config_error, char *errstr, size_t errstr_size);

/* The engine sink's changelog callback (dmp_store_log_cb_t; opaque: the
 * changelog): produces one record into the producer's open transaction. A
 * record that cannot be enqueued is reported by dmp_changelog_error. */
void dmp_changelog_log(void *opaque, int32_t partition, int family, const void *key,
                       size_t key_len, const void *val, size_t val_len);

/* 1 and errstr if producing a changelog record failed since the last
 * call (the transaction must then abort), else 0. */
int dmp_changelog_error(dmp_changelog_t *cl, char *errstr, size_t errstr_size);

/* Whether m (a delivery report of the producer) is a changelog record;
 * then dmp_changelog_delivered takes it. */
int dmp_changelog_owns(const dmp_changelog_t *cl, const rd_kafka_message_t *m);
void dmp_changelog_delivered(dmp_changelog_t *cl, const rd_kafka_message_t *m);

/* The offset from which replaying the partition's changelog reproduces the
 * state of the commit being prepared (conservative: the end of what was
 * delivered before it). -1 if unknown. */
int64_t dmp_changelog_checkpoint(const dmp_changelog_t *cl, int32_t partition);

/* Starts restoring the partitions of parts (their numbers; e must not have
 * them open), each from its local checkpoint or from the start (its local
 * state then dropped), in the background of dmp_changelog_serve. Asks the
 * end of each changelog partition first (one request): one with nothing
 * new is done at the next serve without reading. 0, or -1 with errstr. */
int dmp_changelog_restore(dmp_changelog_t *cl, dmp_engine_t *e,
                          const rd_kafka_topic_partition_list_t *parts, char *errstr,
                          size_t errstr_size);
/* Stops restoring p (revoked meanwhile); its store keeps what was applied
 * (replayed again, idempotently, from its checkpoint next time). */
void dmp_changelog_forget(dmp_changelog_t *cl, int32_t partition);

/* Serves the restores: applies what the restore consumer fetched (at most
 * max records) to e; for each partition that reached the end of its
 * changelog, writes it with its checkpoint and calls done(opaque, p); the
 * caller then opens the partition. Returns the records applied, or -1
 * with errstr (a restore that cannot go on: fatal). */
long dmp_changelog_serve(dmp_changelog_t *cl, dmp_engine_t *e, long max,
                         void (*done)(void *opaque, int32_t partition), void *opaque,
                         char *errstr, size_t errstr_size);

/* Restores in progress: their number, and each one's progress. */
int dmp_changelog_restoring(const dmp_changelog_t *cl);

/* The queue restores are read from (borrowed), for a wake-up on arrivals
 * (dmp_fetchq_watch). */
rd_kafka_queue_t *dmp_changelog_restore_queue(const dmp_changelog_t *cl);
void dmp_changelog_foreach_restore(const dmp_changelog_t *cl,
                                   void (*cb)(void *opaque, const dmp_restore_info_t *ri),
                                   void *opaque);
const dmp_changelog_stats_t *dmp_changelog_stats(const dmp_changelog_t *cl);

#endif
