/* Groups and mined patterns (docs/PATTERNS.md): running and windowed
 * statistics of measures per group, and the miners (topk, anomaly,
 * threshold) evaluated when windows close.
 *
 * State is kept per input partition as mergeable partial aggregates
 * (agg.h: count, mean, M2, min, max combine by Chan's formulas) and
 * combined over the partitions the instance holds when emitting. A
 * windowed group statistic, and a topk over keys, is final when its window
 * has closed on every partition that has seen an event (the instance
 * watermark: the least of their stream times); anomalies and thresholds
 * over keys are found when the key's window closes on its partition.
 * Partials, histories and pending candidates are persisted in the store's
 * "groups" family with the offsets they reflect (dmp_groups_persist).
 *
 * Source files: groups.c (group statistics, persistence, queries) and
 * patterns.c (the miners); groups_int.h is what they share.
 *
 * Ownership: the engine owns the groups; they keep pointers into the
 * configuration, measures and windows, which outlive them.
 * Threads: the processing thread only. */
#ifndef DMP_GROUPS_H
#define DMP_GROUPS_H

#include <stddef.h>
#include <stdint.h>

#include "agg.h"
#include "config.h"
#include "decoder.h"
#include "measure.h"
#include "store.h"
#include "window.h"

typedef struct dmp_group_result {
        const char *group; /* [group NAME] */
        const char *topic;
        const char *value; /* the group */
        size_t value_len;
        const char *measure;
        const dmp_window_t *window; /* NULL: running statistics since the start */
        int64_t start, end;         /* the window (running: 0, 0) */
        const dmp_agg_t *agg;
        int64_t last_update; /* the largest event time that updated it */
} dmp_group_result_t;

typedef struct dmp_pattern_result {
        const char *pattern, *kind, *topic;
        const dmp_window_t *window;
        int64_t start, end;
        const char *source; /* "key", or the group's name */
        const char *subject; /* the key or group value */
        size_t subject_len;
        const char *measure, *stat;
        int rank;            /* topk: 1 for the first; others 0 */
        double value;        /* the statistic over the window */
        double score;        /* topk: value; anomaly: z; threshold: value - bound */
        double mean, stddev; /* anomaly: of the previous windows' values */
        int64_t count;       /* events the value rests on */
        int64_t observations; /* anomaly: previous windows; threshold: consecutive
                               * windows; topk: candidates ranked */
        const char *direction; /* high|low, above|below, desc|asc */
} dmp_pattern_result_t;

/* Where results go; the results' memory is valid during the call only. */
typedef struct dmp_groups_sink {
        void (*group)(void *opaque, const dmp_group_result_t *r);
        void (*pattern)(void *opaque, const dmp_pattern_result_t *r);
        void *opaque;
} dmp_groups_sink_t;

typedef struct dmp_groups_stats {
        uint64_t group_results;
        uint64_t patterns;
        uint64_t late_group_updates; /* (event, group window) pairs skipped as closed */
        uint64_t partials;           /* partial aggregates, histories and candidates held */
} dmp_groups_stats_t;

typedef struct dmp_groups dmp_groups_t;

/* Compiles the [group] and [pattern] sections of conf: registers the group
 * fields with dec, resolves measures and windows; results go to sink (its
 * callbacks may be NULL: not published). Adds "file:line: message"
 * errors to conf and counts them in *errors. NULL (and *errors 0) when conf
 * has none. */
dmp_groups_t *dmp_groups_new(dmp_conf_t *conf, dmp_decoder_t *dec, const dmp_measure_t *measures,
                             int nmeasures, const dmp_window_t *windows, int nwindows,
                             const dmp_groups_sink_t *sink, int *errors);
void dmp_groups_destroy(dmp_groups_t *g);

/* Appends what defines the state's meaning (for the pipeline fingerprint). */
size_t dmp_groups_describe(const dmp_groups_t *g, char *buf, size_t size);

/* Loads a partition's partials from st (and, the first time, the
 * instance's histories). Returns 0 or -1 with errstr. */
int dmp_groups_partition_open(dmp_groups_t *g, dmp_store_t *st, int32_t partition,
                              char *errstr, size_t errstr_size);
/* Releases a partition's partials (commit first). */
void dmp_groups_partition_close(dmp_groups_t *g, int32_t partition);

/* Whether one of ev's group values is longer than DMP_KEY_MAX (store.h):
 * 1 with errstr naming the group (the record is then a dead letter, class
 * key_too_long, and dmp_groups_event is not called for it), else 0. */
int dmp_groups_values_too_long(const dmp_groups_t *g, const dmp_event_t *ev, char *errstr,
                               size_t errstr_size);

/* Applies an event of an open partition whose stream time (after this
 * event) is stream_time; vals[m] is measure m's value when bit m of
 * defined is set. */
void dmp_groups_event(dmp_groups_t *g, int32_t partition, int64_t stream_time,
                      const dmp_event_t *ev, int64_t ts, const double *vals, uint64_t defined);

/* A key's final result of window definition wi and measure mi on its
 * partition (for patterns over keys). */
void dmp_groups_key_result(dmp_groups_t *g, int32_t partition, int wi, int mi, const char *key,
                           size_t key_len, int64_t start, int64_t end, const dmp_agg_t *agg);

/* Emits the running statistics that changed since the last call, and the
 * windows (with their patterns) closed at the instance watermark (the
 * least stream time of the partitions that have one; INT64_MIN: none). */
void dmp_groups_emit(dmp_groups_t *g, int64_t watermark);

/* Adds the changed partials to the store's pending batch; after the batch
 * is written, dmp_groups_committed(). */
void dmp_groups_persist(dmp_groups_t *g, dmp_store_t *st);
void dmp_groups_committed(dmp_groups_t *g);

const dmp_groups_stats_t *dmp_groups_stats(const dmp_groups_t *g);

/* Live state queries (processing thread). The running statistics of [group
 * name] (of one group value, or all when value is NULL), combined over the
 * open partitions: cb per group with count >= 1. Returns the number of
 * results, or -1 if there is no such group definition. */
int dmp_groups_query(dmp_groups_t *g, const char *name, const char *value, size_t value_len,
                     void (*cb)(void *opaque, const dmp_group_result_t *r), void *opaque);
/* The last n (at most DMP_GROUPS_RECENT) records of [pattern name], oldest
 * first; -1 if there is no such pattern. */
#define DMP_GROUPS_RECENT 100
int dmp_groups_recent_patterns(dmp_groups_t *g, const char *name, int n,
                               void (*cb)(void *opaque, const dmp_pattern_result_t *r),
                               void *opaque);

/* The group value of a bucketed measure value: floor(x / width) * width,
 * formatted as its digits when integral (below 1e15), else as the shortest
 * %g that reads back as the same double.
 * Returns the length written to buf (at least 32 bytes). */
size_t dmp_groups_bucket_label(double x, double width, char *buf, size_t size);

#endif
