/* What the engine's source files share (engine.h has the contract):
 * the per-partition task, its buckets and session / sliding key states,
 * the engine struct, and the functions one file offers the others.
 *
 * State of one input partition ("task"):
 *   - a hash table of entries keyed by (window definition, key, start):
 *       * tumbling / hopping: one entry per window, with one aggregate per
 *         measure of the definition;
 *       * session / sliding: one entry per key (start DMP_START_KEYSTATE)
 *         holding the key's open sessions, or its buffered records;
 *       * late counters: one entry per key with late events since its last
 *         result (start DMP_START_LATE);
 *   - per window definition, buckets of entries ordered by time: tumbling /
 *     hopping by window start (a window closes with its bucket), session /
 *     sliding by the bucket of the key's next close time;
 *   - the dirty list: entries to write or delete at the next commit.
 *
 * Entry lifecycle (flags of wtable.h, and two of the engine's):
 *   open     in the table (and a bucket); DIRTY while on the dirty list
 *   CLOSED   retired: out of the table, owned by the dirty list until the
 *            commit deletes it from the store (if PERSISTED) and frees it,
 *            or freed before if the store never held it (dirty_dead)
 *   ZOMBIE   a session / sliding key state closed and committed while
 *            buckets still reference it: freed with the last reference
 *   FREEING  collected by task_free (freeing every entry exactly once)
 *
 * Threads: the processing thread only. */
#ifndef DMP_ENGINE_INT_H
#define DMP_ENGINE_INT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "membudget.h"
#include "store.h"
#include "wtable.h"

/* late_mask and the dirty flags of a key's late windows are 32-bit masks of
 * window definitions. */
_Static_assert(DMP_MAX_WINDOWS <= 32, "window masks are uint32_t");

#define ENTRY_ZOMBIE  0x20 /* closed, committed, still referenced by buckets */
#define ENTRY_FREEING 0x40 /* collected for freeing (task_free) */

/* The stored value of a window entry (DMP_ENTRY_VERSION_WINDOW): version,
 * flags (DMP_ENTRY_EMITTED), nmeasures, then nmeasures dmp_agg_t; of a
 * session key (ENTRY_VERSION_KEYSTATE) or a sliding key
 * (ENTRY_VERSION_SLIDING): version, 0, nmeasures, 8 reserved bytes (0),
 * n:u32, then n items (KEYED_ITEM_SIZE each). Host byte order: state is not
 * portable across endianness. Version 2 sliding states (buffered records,
 * before Kafka Streams' window store was followed) are refused on load. */
#define ENTRY_VERSION_WINDOW   1
#define ENTRY_VERSION_KEYSTATE 2
#define ENTRY_VERSION_SLIDING  3
#define ENTRY_WINDOW_VALUE_LEN(nm) (3 + sizeof(dmp_agg_t) * (size_t)(nm))
#define ENTRY_KEYSTATE_HEAD_LEN 15

/* Entries of one window start (tumbling / hopping) or of one scheduling
 * bucket (session / sliding), in insertion order. */
typedef struct bucket {
        int64_t start; /* window start, or bucket id */
        int emitted;   /* tumbling / hopping: final results are out */
        size_t evicted; /* tumbling / hopping: entries evicted to the store */
        dmp_entry_t **v;
        size_t n, cap;
} bucket_t;

typedef struct bucket_list {
        bucket_t *b; /* sorted by start */
        size_t n, cap;
        /* tumbling / hopping: close_fixed has nothing to do while the stream
         * time is below due (valid if due_known; a new bucket clears it):
         * no scan of the buckets on every event that advances the stream
         * time (docs/PERFORMANCE.md "The core pipeline"). */
        int due_known;
        int64_t due;
        /* tumbling / hopping: memos of dmp_window_{last,first}_start_memo */
        int64_t last_memo, first_memo;
} bucket_list_t;

/* The state of one key of a session or sliding window definition. */
typedef struct keystate {
        int64_t sched;        /* the bucket id it is scheduled in, or INT64_MIN */
        uint32_t refs;        /* bucket references, stale ones included */
        uint32_t n, cap;      /* items */
        unsigned char *items; /* sessions or sliding windows, KEYED_ITEM_SIZE each */
} keystate_t;

/* An item, a session or a sliding window: two times, flags, then
 * nmeasures aggregates. A session: start and last event time, the items
 * sorted by last (then start). A sliding window [start, start + D]: start
 * and the largest event time aggregated in it (Kafka Streams' window
 * timestamp), the items sorted by start. */
#define ITEM_FLAGS_AT 16
#define ITEM_AGGS_AT 24
#define KEYED_ITEM_SIZE(nm) (ITEM_AGGS_AT + sizeof(dmp_agg_t) * (size_t)(nm))
/* Item flag: changed since the last update-mode result. */
#define ITEM_NEW 1
/* Item flag: closed and emitted. Emitted sessions are kept for
 * retention.ms, emitted sliding windows while Kafka Streams' window store
 * would still find them (engine_keyed.c); either way they are a prefix of
 * the key's items. */
#define ITEM_EMITTED 2

typedef struct task {
        int32_t partition;
        int64_t next_offset;    /* -1: none consumed and none stored */
        int64_t stream_time;    /* INT64_MIN: no event yet */
        int64_t idle_base_st;   /* stream time at the last record */
        int64_t idle_base_wall; /* wall-clock time of the last record */
        int meta_dirty;
        uint64_t events; /* records processed since the partition was opened */
        dmp_wtable_t table;
        bucket_list_t windows[DMP_MAX_WINDOWS];
        dmp_dirty_t dirty;    /* its dead: the entries dirty_dead() says are dead */
        uint64_t entry_bytes; /* entries, their keys and key states (entry_bytes()) */
        size_t evicted;       /* sum of the buckets' evicted: 0 keeps misses cheap */
        /* sliding: the largest window start written (Kafka Streams' window
         * store's observed stream time), INT64_MIN: none */
        int64_t sliding_top[DMP_MAX_WINDOWS];
} task_t;

struct dmp_engine {
        dmp_conf_t *conf;
        dmp_decoder_t *decoder;
        dmp_store_t *store;
        dmp_engine_sink_t sink;
        dmp_measure_t measures[DMP_MAX_MEASURES];
        int nmeasures;
        dmp_window_t windows[DMP_MAX_WINDOWS];
        int64_t quantum[DMP_MAX_WINDOWS]; /* session / sliding bucket width */
        int nwindows;
        task_t **tasks; /* indexed by partition */
        int32_t ntasks;
        unsigned char *valbuf; /* entry encoding buffer */
        size_t valbuf_cap;
        dmp_engine_stats_t stats;
        dmp_decode_err_t last_error; /* of the last failed dmp_engine_process */
        dmp_mem_split_t mem;         /* the memory budget and its shares */
        dmp_groups_t *groups;        /* [group] and [pattern] sections; NULL: none */
        char failure[512];           /* a state read failed: the next commit fails */
        uint64_t restored;           /* records of the restore in progress */
};


/* A session / sliding key's state (the entry's ext). */
static inline keystate_t *ks_of(const dmp_entry_t *en) {
        return en->ext;
}

static inline unsigned char *ks_item(const keystate_t *ks, size_t isz, uint32_t i) {
        return ks->items + (size_t)i * isz;
}

/* Whether a stored time is one the engine can have written: event times
 * are within +-2^60 ms (idle advances add wall-clock time) and durations
 * within 2^50, so the window arithmetic on times within +-2^61 cannot
 * overflow. Stored values out of it are corrupt, refused before use
 * (fuzz finding, docs/FUZZING.md). */
static inline int engine_time_ok(int64_t t) {
        return t >= -(INT64_C(1) << 61) && t <= INT64_C(1) << 61;
}

/* An int64 field of an item (items are unaligned byte arrays). */
static inline int64_t item_i64(const unsigned char *item, int at) {
        int64_t v;
        memcpy(&v, item + at, 8);
        return v;
}

/* ---- engine.c ---- */

/* The open task of partition, or NULL. */
static inline task_t *engine_task(const dmp_engine_t *e, int32_t partition) {
        return partition >= 0 && partition < e->ntasks ? e->tasks[partition] : NULL;
}
void engine_entry_free(dmp_entry_t *en);
/* The heap bytes of an entry with its key and key state (task_t.entry_bytes). */
uint64_t engine_entry_bytes(const dmp_engine_t *e, const dmp_entry_t *en);
/* The size of one session or record item of definition w. */
size_t engine_item_size(const dmp_window_t *w);
/* Takes an entry out of the table: deleted from the store at the next
 * commit. */
void engine_retire(task_t *t, dmp_entry_t *en);
/* The bucket of `start` in bl, created in order if needed; or NULL. */
bucket_t *engine_bucket_get(bucket_list_t *bl, int64_t start);
bucket_t *engine_bucket_find(bucket_list_t *bl, int64_t start);
void engine_bucket_push(bucket_t *b, dmp_entry_t *en);
/* Removes the first n buckets of bl (their vectors must be freed). */
void engine_buckets_drop_front(bucket_list_t *bl, size_t n);
/* Emits the results of a key's window (one per measure with a count), with
 * the key's late count since its previous result; final results also feed
 * the patterns over keys. */
void engine_emit_aggs(dmp_engine_t *e, task_t *t, int win, const char *key, size_t kl,
                      int64_t start, int64_t end, const dmp_agg_t *aggs, int final);
/* Counts a late event of the key for definition win. */
void engine_count_late(dmp_engine_t *e, task_t *t, int win, const char *key, size_t kl,
                       uint64_t key_hash);
/* Decodes the stored value of a window entry of definition win (a window,
 * or with start DMP_START_LATE a late counter): its aggregates into aggs
 * (at least DMP_MAX_MEASURES) and *flags. Returns the number of
 * aggregates, or -1 if the value is malformed. */
int engine_decode_window(const dmp_engine_t *e, int win, int64_t start, const void *val,
                         size_t len, dmp_agg_t *aggs, uint8_t *flags);

/* Loading stored entries into a task (dmp_store_entry_cb_t's opaque). */
typedef struct load_ctx {
        dmp_engine_t *e;
        task_t *t;
        int lazy; /* partition open: entries past the budget stay in the store */
} load_ctx_t;
int engine_load_entry(void *opaque, int win, const char *key, size_t key_len, int64_t start,
                      const void *val, size_t len);
/* A state read failed: logged, and the next commit fails. */
void engine_state_read_failed(dmp_engine_t *e, task_t *t, const char *what);

/* ---- engine_keyed.c: session and sliding windows ---- */

/* A new, empty key state entry of definition wi, in the table. */
dmp_entry_t *keyed_new(task_t *t, int wi, const char *k, size_t kl, uint64_t h);
/* Loads a stored key state (ENTRY_VERSION_KEYSTATE value). 0 or -1. */
int keyed_load(load_ctx_t *lc, int win, const char *key, size_t key_len, uint64_t h,
               const void *val, size_t len);
/* Schedules the key state in the bucket of its next close time. */
void keyed_schedule(dmp_engine_t *e, task_t *t, dmp_entry_t *en);
/* st_before: the stream time before this event advanced it. */
void keyed_session_event(dmp_engine_t *e, task_t *t, int wi, int64_t ts, int64_t st_before,
                         const char *k, size_t kl, uint64_t key_hash, const double *vals,
                         uint64_t defined);
void keyed_sliding_event(dmp_engine_t *e, task_t *t, int wi, int64_t ts, const char *k,
                         size_t kl, uint64_t key_hash, const double *vals, uint64_t defined);
/* Emits what closed at the task's stream time in definition wi. */
void keyed_close(dmp_engine_t *e, task_t *t, int wi);
/* Update mode: the key's changed open windows. */
void keyed_emit_updates(dmp_engine_t *e, task_t *t, dmp_entry_t *en);
/* Checks a stored key state and describes it (dmp_engine_describe_entry). */
int keyed_describe(const dmp_engine_t *e, const dmp_window_t *w, const unsigned char *v,
                   size_t len, char *out, size_t *n, size_t out_size, char *errstr,
                   size_t errstr_size);

/* ---- engine_evict.c: eviction and the memory budget ---- */

/* The evicted entry (wi, key, s) of bucket b read back into the table; NULL
 * if the store has none. */
dmp_entry_t *evict_reload_entry(dmp_engine_t *e, task_t *t, bucket_t *b, int wi, const char *k,
                                size_t kl, int64_t s, uint64_t h);
/* Brings back (or emits from the store) the evicted entries of a closing
 * window. */
void evict_reload_bucket(dmp_engine_t *e, task_t *t, int wi, bucket_t *b);
/* After a commit over the entries' share: evicts clean entries of every
 * task down to half the share. */
void evict_after_commit(dmp_engine_t *e);
/* Recomputes the memory figures of e->stats. */
void evict_mem_update(dmp_engine_t *e);

/* ---- engine_inspect.c ---- */

/* Describes one aggregate into out (at *n) after checking its invariants:
 * 0, or -1 with errstr. */
int inspect_describe_agg(const dmp_agg_t *a, const char *name, char *out, size_t *n,
                         size_t out_size, char *errstr, size_t errstr_size);

#endif
