/* What groups.c and patterns.c share (groups.h has the contract).
 *
 * Every piece of state is a dmp_entry_t (wtable.h) whose `win` says what it
 * is (the top 4 bits) and for which definition:
 *   RUNNING  | gi            running statistics of group gi: one aggregate
 *                            per group measure, then one of the event times
 *   GWIN     | gi<<5 | wi    the same over the window starting at `start`
 *   KHIST    | pi            pattern pi's history of a key (on its partition)
 *   GHIST    | pi            pattern pi's history of a group (the instance's)
 *   KTOP     | pi            a key's result, a candidate of topk pi's window
 * A history holds the statistics of the subject's previous window values
 * (aggs[0]) and the current streak of threshold matches (aggs[1].count).
 * A RUNNING entry's ext, once it has had an event, is its window memo: per
 * window of the group (gdef_t.windows[j]), the GWIN entry of the latest
 * window start an event of the group value touched, or NULL; it saves
 * that entry's lookup for the next events, and is cleared of an entry
 * before the entry retires (memo_forget). It belongs to the entry.
 * Partition state is stored under the partition, the instance's histories
 * under partition -1.
 *
 * Threads: the processing thread only. */
#ifndef DMP_GROUPS_INT_H
#define DMP_GROUPS_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "groups.h"
#include "wtable.h"

enum { KIND_RUNNING = 0, KIND_GWIN = 1, KIND_KHIST = 2, KIND_GHIST = 3, KIND_KTOP = 4 };
#define WIN_ID(kind, n) ((int)(((kind) << 12) | (n)))
#define WIN_KIND(win)   ((win) >> 12)
#define INSTANCE        (-1) /* the store partition of the instance's histories */

typedef struct gdef {
        const char *name, *topic;
        int label;          /* label slot of the group field, or -1 */
        int bucket_measure; /* or: the bucketed measure */
        double width;
        int measures[DMP_MAX_MEASURES]; /* engine measure indexes */
        int nmeasures;
        int windows[DMP_MAX_WINDOWS];
        int nwindows;
} gdef_t;

/* A published pattern, kept for queries (its strings copied). */
typedef struct recent {
        dmp_pattern_result_t r;
        char *subject;
} recent_t;

typedef struct pdef {
        const char *name, *topic, *kind_name, *stat_name;
        dmp_pattern_kind_t kind;
        dmp_stat_t stat;
        int wi;  /* window definition */
        int gi;  /* -1: keys */
        int mi;  /* engine measure index */
        int gm;  /* group source: the measure's position in the group */
        int k, desc;
        double z;
        int64_t min_count;
        int has_above, has_below;
        double above, below;
        int64_t consecutive;
        recent_t recent[DMP_GROUPS_RECENT]; /* a ring: the last published */
        int nrecent, next_recent;
} pdef_t;

typedef struct gtask {
        int32_t partition;
        dmp_wtable_t run;  /* RUNNING and GWIN */
        dmp_wtable_t hist; /* KHIST (partitions) or GHIST (the instance) */
        dmp_entry_t **ktop; /* KTOP candidates, not looked up */
        size_t nktop, ktop_cap;
        /* ktop[krun_begin..nktop): the candidates admitted since the last
         * change of window start (krun_start), counted per pattern;
         * krun_begin > nktop: no run (ktop_admit starts one). */
        size_t krun_begin;
        int64_t krun_start;
        uint32_t krun_cnt[DMP_MAX_PATTERNS];
        dmp_dirty_t dirty; /* to write (or delete: DMP_ENTRY_CLOSED) at commit; its
                            * dead: retired entries the store never held */
        int64_t first_memo[DMP_MAX_WINDOWS]; /* dmp_window_first_start_memo's, per window */
} gtask_t;

/* A subject of a closed window: its combined aggregates. */
typedef struct subject {
        const char *key;
        size_t len;
        dmp_agg_t *aggs; /* of the group's measures (then the times), or the key's one */
} subject_t;

/* A topk candidate being ranked (ktop_prune). */
typedef struct ranked {
        subject_t s; /* first: rank_cmp reads it */
        size_t at;   /* index in its task's ktop */
} ranked_t;

struct dmp_groups {
        dmp_conf_t *conf;
        const dmp_measure_t *measures;
        const dmp_window_t *windows;
        gdef_t groups[DMP_MAX_GROUPS];
        int ngroups;
        pdef_t patterns[DMP_MAX_PATTERNS];
        int npatterns;
        gtask_t **tasks; /* by partition */
        int32_t ntasks;
        gtask_t inst;    /* the instance's histories */
        int inst_loaded;
        int64_t mark;    /* the highest instance watermark seen */
        dmp_groups_sink_t sink;
        dmp_groups_stats_t stats;
        unsigned char *buf; /* encoding buffer */
        size_t buf_cap;
        ranked_t *ranked; /* ktop_prune's scratch */
        size_t nranked;
};

/* An entry of a closing window and the task that holds it. */
typedef struct closing {
        gtask_t *t;
        dmp_entry_t *en;
} closing_t;


/* Byte order of subjects (group values, keys): memcmp, then the shorter
 * first. */
static inline int key_cmp(const char *a, size_t al, const char *b, size_t bl) {
        int c = memcmp(a, b, al < bl ? al : bl);
        return c ? c : (al > bl) - (al < bl);
}

/* ---- groups.c ---- */

/* The task of partition p, or NULL. */
static inline gtask_t *groups_task(const dmp_groups_t *g, int32_t p) {
        return p >= 0 && p < g->ntasks ? g->tasks[p] : NULL;
}
/* Takes en out of its table (NULL: a candidate list) for deletion at the
 * commit, or, if the store never held it, for freeing sooner. */
void groups_retire(dmp_groups_t *g, gtask_t *t, dmp_wtable_t *table, dmp_entry_t *en);
/* The entry of (win, start, key) in table, created if missing, marked
 * dirty. */
dmp_entry_t *groups_entry_get(dmp_groups_t *g, gtask_t *t, dmp_wtable_t *table, int win,
                              int64_t start, const char *key, size_t kl, int naggs);

/* ---- patterns.c ---- */

/* Compiles [pattern] section pc into g->patterns; 0, or 1 after adding the
 * error to g->conf. */
int patterns_compile(dmp_groups_t *g, dmp_pattern_conf_t *pc);
/* The value of statistic stat of a. */
double patterns_stat_value(dmp_stat_t stat, const dmp_agg_t *a);
/* Topk pattern pd over the n subjects of the window at start (sorted in
 * place); observations: the subjects ranked. */
void patterns_topk(dmp_groups_t *g, const pdef_t *pd, int64_t start, subject_t *subj, size_t n,
                   int64_t observations);
/* An anomaly or threshold pattern for one subject's window value; h is the
 * subject's history, updated. */
void patterns_judge(dmp_groups_t *g, gtask_t *t, const pdef_t *pd, dmp_entry_t *h,
                    int64_t start, const char *subject, size_t sl, const dmp_agg_t *agg);
/* Adds a topk candidate (KTOP) to the partition's list. */
void patterns_ktop_push(gtask_t *t, dmp_entry_t *en);
/* Topk over keys: ranks and retires the candidates of windows closed at
 * the mark. */
void patterns_close_key_topk(dmp_groups_t *g);

#endif
