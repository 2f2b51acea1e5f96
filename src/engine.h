/* The processing engine: decode -> measures -> windows -> groups and
 * patterns -> sink -> commit (docs/ARCHITECTURE.md).
 *
 * It knows nothing of Kafka: the daemon (or a test) feeds it records of
 * input partitions and commits it; everything it produces goes to the one
 * sink given at creation (results, group results, patterns, late copies).
 * State is kept per input partition ("task"), so a partition's state can
 * be opened and closed as the consumer group rebalances.
 *
 * Source files: engine.c (construction, partitions, the hot path, tumbling
 * and hopping windows, commits), engine_keyed.c (session and sliding
 * windows), engine_evict.c (eviction and the memory budget),
 * engine_inspect.c (queries and inspection of stored state); engine_int.h
 * is what they share.
 *
 * Threads: all functions run on the one processing thread. */
#ifndef DMP_ENGINE_H
#define DMP_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "agg.h"
#include "config.h"
#include "decoder.h"
#include "groups.h"
#include "store.h"
#include "window.h"

typedef struct dmp_result {
        const dmp_window_t *window;
        const char *measure;
        const char *key;
        size_t key_len;
        int64_t start;
        int64_t end;
        const dmp_agg_t *agg;
        int64_t late; /* late events of this key and window definition dropped
                       * since the key's previous result */
        int final;    /* the window has closed: no later result for it */
} dmp_result_t;

/* The record of the dmp_engine_process call in progress was late for at
 * least one window definition; its caller, which holds the record's bytes,
 * may copy it with its provenance ([output] late.topic). Only these: the
 * bytes kept alive to the end of the hot path cost ~1.5 % of its
 * instructions (docs/PERFORMANCE.md). */
typedef struct dmp_late_record {
        int32_t partition;
        int64_t offset;
        uint32_t late_mask; /* bit i: late for window definition i (it updated
                             * none of its windows) */
} dmp_late_record_t;

/* Where everything the engine produces goes. Each callback runs on the
 * processing thread; its argument is valid during the call only.
 *   result     each (key, window, measure) with count >= 1, when the window
 *              closes (final) or, in update mode, at dmp_engine_emit_updates
 *   group      group statistics (groups.h), at dmp_engine_emit_groups
 *   pattern    mined patterns (groups.h), at dmp_engine_emit_groups, or for
 *              anomalies and thresholds over keys when the key's window closes
 *   late       a late record, from dmp_engine_process; may be NULL
 *   caught_up  whether the consumer has read a partition to its end, given
 *              the next offset the engine will process (-1: none yet); the
 *              instance watermark of groups and patterns (docs/PATTERNS.md)
 *              and idle partitions wait for it. May be NULL: partitions
 *              without events are then left out of the watermark, and idle
 *              partitions never advance.
 *   changelog  each state change of a partition a commit makes
 *              (dmp_engine_commit_prepare), for the changelog topic
 *              (store.h dmp_store_log_cb_t); may be NULL: not logged. */
typedef int(dmp_caught_up_cb_t)(void *opaque, int32_t partition, int64_t next_offset);
typedef struct dmp_engine_sink {
        void (*result)(void *opaque, const dmp_result_t *r);
        void (*group)(void *opaque, const dmp_group_result_t *r);
        void (*pattern)(void *opaque, const dmp_pattern_result_t *r);
        void (*late)(void *opaque, const dmp_late_record_t *r);
        dmp_caught_up_cb_t *caught_up;
        dmp_store_log_cb_t *changelog;
        void *opaque;
} dmp_engine_sink_t;

typedef struct dmp_engine_stats {
        uint64_t events_in;
        uint64_t decode_errors;
        uint64_t measure_undefined; /* (event, measure) pairs with a null field */
        uint64_t late_events;       /* (event, window definition) with no open window */
        uint64_t late_by_window[DMP_MAX_WINDOWS];
        uint64_t idle_advances;     /* stream time advances of idle partitions */
        uint64_t late_window_updates; /* tumbling / hopping (event, window) pairs
                                       * skipped as closed */
        /* Kafka Streams' dropped-records for the same input, per window
         * definition: tumbling / hopping: (event, closed window) pairs;
         * session: late events; sliding: late events plus the (event,
         * window) updates skipped as closed (docs/WINDOWS.md). */
        uint64_t late_instances_by_window[DMP_MAX_WINDOWS];
        uint64_t results_out;
        uint64_t windows_closed;
        uint64_t commits;
        uint64_t open_entries;
        /* Memory, bytes (updated at each commit and dmp_engine_over_budget):
         * the configured budget, the in-memory entries (with their table
         * slots and dirty list), RocksDB's block cache and memtables. */
        uint64_t mem_budget;
        uint64_t mem_entries;
        uint64_t mem_block_cache;
        uint64_t mem_memtables;
        uint64_t pressure_commits; /* commits made early because of the budget */
        uint64_t evictions;        /* clean entries freed under pressure */
        uint64_t reloads;          /* evicted entries read back from the store */
} dmp_engine_stats_t;

typedef struct dmp_engine dmp_engine_t;

/* Builds the engine from a validated configuration: reads the input schema,
 * compiles measures and windows, opens the state store.
 * On a configuration problem (e.g. a measure naming a field that is not in
 * the schema) it adds "file:line: message" errors to conf, sets
 * *config_error and returns NULL; on another failure (e.g. the store cannot
 * be opened) it returns NULL with errstr set. */
dmp_engine_t *dmp_engine_new(dmp_conf_t *conf, const dmp_engine_sink_t *sink,
                             int *config_error, char *errstr, size_t errstr_size);
void dmp_engine_destroy(dmp_engine_t *e);

/* Compiles the pipeline of conf (schema, measures, windows) without opening
 * anything; returns the number of "file:line: message" errors added. */
int dmp_engine_check(dmp_conf_t *conf);

/* Opens a partition's task, loading its state. *next_offset is the offset to
 * resume from, or -1 if the store has none. Idempotent. Returns 0 or -1. */
int dmp_engine_partition_open(dmp_engine_t *e, int32_t partition, int64_t *next_offset,
                              char *errstr, size_t errstr_size);

/* Releases a partition's memory. Commit first: uncommitted changes are lost
 * (and will be recomputed from the stored offset by whoever owns it next). */
void dmp_engine_partition_close(dmp_engine_t *e, int32_t partition);

/* Discards a partition's state, in memory and in the store (its windows,
 * groups, offset and stream time), and opens it again empty: it starts
 * over (resume.h: its stored offset is beyond its log's end). Every
 * commit handed to the store lands first. Returns 0 or -1 with errstr. */
int dmp_engine_partition_discard(dmp_engine_t *e, int32_t partition, char *errstr,
                                 size_t errstr_size);

/* Processes one record of an open partition. key/kafka_ts are the Kafka
 * message key and timestamp (used when no key/time field is configured).
 * A record late for some window definition goes to the sink's late.
 * Returns 0, or -1 if the record could not be decoded (counted; errstr
 * set; its offset is consumed all the same). */
int dmp_engine_process(dmp_engine_t *e, int32_t partition, int64_t offset, const void *key,
                       size_t key_len, int64_t kafka_ts, const void *payload, size_t len,
                       char *errstr, size_t errstr_size);

/* Whether the record of `partition` at `offset` is one to process: its
 * partition is open and the offset was not processed yet. A batch consumed
 * across a rebalance can hold records of a partition revoked meanwhile, or
 * records read again after the partition was reopened at its stored
 * offset: those are skipped. */
int dmp_engine_wants(const dmp_engine_t *e, int32_t partition, int64_t offset);

/* Advances the stream time of every partition that received no record for
 * idle_timeout_ms and is caught up (the sink's caught_up), by the
 * wall-clock time since its last record, and closes the windows that this
 * closes. */
void dmp_engine_idle_tick(dmp_engine_t *e, int64_t now_ms, int64_t idle_timeout_ms);

/* Emits the update-mode results of the windows changed since the previous
 * call. Call before making the emitted results durable and committing. */
void dmp_engine_emit_updates(dmp_engine_t *e);

/* Emits the running group statistics changed since the previous call, and
 * the windowed group statistics and patterns of the windows closed at the
 * instance watermark (docs/PATTERNS.md). Call after dmp_engine_emit_updates
 * (whose final update-mode results feed topk over keys), before
 * committing. No-op without [group] or [pattern] sections. */
void dmp_engine_emit_groups(dmp_engine_t *e);

/* Writes dirty state, deletions of emitted windows and the partitions'
 * offsets and stream times in one atomic batch. The caller must first make
 * sure every result emitted so far is durably published. The batch is
 * written by the store's writer thread: this returns once it is handed
 * over (having waited for the previous one). Returns 0, or -1 if this or
 * the previous commit failed. Same as dmp_engine_commit_prepare then
 * dmp_engine_commit_write. */
int dmp_engine_commit(dmp_engine_t *e, char *errstr, size_t errstr_size);

/* A commit in two steps, for a commit that is also a Kafka transaction
 * (docs/STATE.md): prepare builds the batch, passing every change to the
 * sink's changelog, and clears the dirty state (the in-memory state is then
 * that of the commit); write hands the batch to the writer, once the
 * transaction is committed. If it is not, abandon drops the batch: the
 * caller must then close and restore every partition (the in-memory state
 * is ahead of the store). checkpoint adds a partition's changelog
 * checkpoint to the prepared batch. */
int dmp_engine_commit_prepare(dmp_engine_t *e, char *errstr, size_t errstr_size);
void dmp_engine_commit_checkpoint(dmp_engine_t *e, int32_t partition, int64_t offset);
int dmp_engine_commit_write(dmp_engine_t *e, char *errstr, size_t errstr_size);
void dmp_engine_commit_abandon(dmp_engine_t *e);

/* ---- restoring a partition from its changelog ---- */

/* Before restoring a partition that is not open: its local checkpoint
 * (1, *checkpoint set; 0: none) and whether the store holds state of it
 * (*local). -1 with errstr on a read error. */
int dmp_engine_restore_begin(dmp_engine_t *e, int32_t partition, int64_t *checkpoint,
                             int *local, char *errstr, size_t errstr_size);
/* Drops the partition's local state (a restore from the changelog's start:
 * in the next batch, before the records). */
void dmp_engine_restore_drop(dmp_engine_t *e, int32_t partition);
/* Applies one changelog record of the partition: its key as the sink's
 * changelog wrote it (the family byte, then the store key) and its value
 * (NULL: deleted). Writes the batch every so often. 0, or -1 with errstr
 * (a record that is not this partition's state). */
int dmp_engine_restore_record(dmp_engine_t *e, int32_t partition, const void *key,
                              size_t key_len, const void *val, size_t val_len, char *errstr,
                              size_t errstr_size);
/* Ends a restore: records the checkpoint `next` (the changelog offset after
 * the last record replayed) and writes everything, waiting for it; then
 * dmp_engine_partition_open loads the partition. 0, or -1 with errstr. */
int dmp_engine_restore_end(dmp_engine_t *e, int32_t partition, int64_t next, char *errstr,
                           size_t errstr_size);
/* Passes the partition's whole stored state to the sink's changelog, as
 * puts: a local state the changelog lacks (written before the changelog
 * was enabled) is logged once. Returns the records, or -1 with errstr. */
long dmp_engine_relog(dmp_engine_t *e, int32_t partition, char *errstr, size_t errstr_size);
/* Waits until every commit handed over is written: 0, or -1 if one failed. */
int dmp_engine_sync(dmp_engine_t *e, char *errstr, size_t errstr_size);

/* Whether the state's memory is over its budget (entries over their share,
 * or the total over the budget); the caller then commits early (counted
 * in pressure_commits). Cheap: a
 * sum over the open partitions and two RocksDB property reads. */
int dmp_engine_over_budget(dmp_engine_t *e);

/* Iterates the open partitions: next offset to consume (-1 if none yet). */
typedef void(dmp_partition_cb_t)(void *opaque, int32_t partition, int64_t next_offset);
void dmp_engine_foreach_partition(dmp_engine_t *e, dmp_partition_cb_t *cb, void *opaque);

const dmp_engine_stats_t *dmp_engine_stats(const dmp_engine_t *e);

/* Why the last dmp_engine_process() that returned -1 failed, for dead
 * letters (DMP_DECODE_OK for a failure that is not the record's fault). */
dmp_decode_err_t dmp_engine_last_error(const dmp_engine_t *e);

/* Input in the Confluent wire format, writer schemas from provider (see
 * dmp_decoder_set_confluent). A record whose schema cannot be had now
 * (DMP_DECODE_UNAVAILABLE) is not consumed: the caller must offer it again. */
void dmp_engine_set_schema_provider(dmp_engine_t *e, dmp_schema_provider_t *provider,
                                    void *opaque);

/* Compiles conf's pipeline without opening the state store, for
 * inspection (dmpflow state). NULL after adding "file:line" errors. */
dmp_engine_t *dmp_engine_compile(dmp_conf_t *conf);
/* The engine's state store (NULL for dmp_engine_compile's), for tests and
 * tests/fuzz/fuzz_state.c, which plant stored values in it. */
dmp_store_t *dmp_engine_store(dmp_engine_t *e);
/* The hash of the definitions that give stored state its meaning. */
uint64_t dmp_engine_fingerprint(const dmp_engine_t *e);

/* Decodes a stored window entry (dmp_store_scan's win, start, value),
 * checks its invariants (encoding, sizes, count >= 0, min <= mean <= max,
 * M2 >= 0, aligned starts, ordered sessions / records) and, if out is not
 * NULL, describes it on one line. Returns 0, or -1 with errstr. */
int dmp_engine_describe_entry(const dmp_engine_t *e, int win, int64_t start, const void *val,
                              size_t len, char *out, size_t out_size, char *errstr,
                              size_t errstr_size);

/* The committed state (as of the last commit: what RocksDB holds) of a
 * key's windows of tumbling or hopping definition wi, over the open
 * partitions: cb once per window and measure with a count, in start order.
 * final: the window's final result is published (kept for retention).
 * Returns the entries read, or -1 with errstr. */
typedef void(dmp_window_state_cb_t)(void *opaque, int64_t start, int64_t end,
                                    const char *measure, const dmp_agg_t *agg, int final);
long dmp_engine_query_windows(const dmp_engine_t *e, int wi, const char *key, size_t key_len,
                              dmp_window_state_cb_t *cb, void *opaque, char *errstr,
                              size_t errstr_size);
/* The index of window definition name, or -1. */
int dmp_engine_window_index(const dmp_engine_t *e, const char *name);

/* The open partitions, for metrics. */
typedef struct dmp_task_info {
        int32_t partition;
        int64_t next_offset; /* -1: none yet */
        int64_t stream_time; /* INT64_MIN: no event yet */
        uint64_t events;     /* records processed since it was opened */
        uint64_t entries;    /* entries in memory */
} dmp_task_info_t;
typedef void(dmp_task_info_cb_t)(void *opaque, const dmp_task_info_t *ti);
void dmp_engine_foreach_task(const dmp_engine_t *e, dmp_task_info_cb_t *cb, void *opaque);

/* The groups (for queries), or NULL without [group] or [pattern] sections. */
dmp_groups_t *dmp_engine_groups(dmp_engine_t *e);
/* Their counters, or NULL without [group] or [pattern] sections. */
const dmp_groups_stats_t *dmp_engine_groups_stats(const dmp_engine_t *e);

/* The compiled definitions, for callers that print or encode results. */
int dmp_engine_window_cnt(const dmp_engine_t *e);
const dmp_window_t *dmp_engine_window(const dmp_engine_t *e, int i);
/* The name of measure i (an index of dmp_window_t.measures). */
const char *dmp_engine_measure_name(const dmp_engine_t *e, int i);

#endif
