/* Queries of the committed state and inspection of stored entries
 * (dmpflow state, /state/windows). See engine.h.
 *
 * Threads: the processing thread only (dmpflow state: the only thread). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "util.h"

/* ---- queries ---- */

typedef struct query_ctx {
        const dmp_engine_t *e;
        int wi;
        dmp_window_state_cb_t *cb;
        void *opaque;
} query_ctx_t;

static int query_one(void *opaque, int win, const char *key, size_t key_len, int64_t start,
                     const void *val, size_t len) {
        query_ctx_t *qc = opaque;
        const dmp_window_t *w = &qc->e->windows[qc->wi];
        (void)key;
        (void)key_len;
        if (win != qc->wi || start == DMP_START_LATE)
                return 0;
        dmp_agg_t aggs[DMP_MAX_MEASURES];
        uint8_t flags;
        if (engine_decode_window(qc->e, win, start, val, len, aggs, &flags) < 0)
                return -1;
        for (int j = 0; j < w->nmeasures; j++)
                if (aggs[j].count > 0)
                        qc->cb(qc->opaque, start, start + w->size,
                               qc->e->measures[w->measures[j]].name, &aggs[j],
                               (flags & DMP_ENTRY_EMITTED) != 0);
        return 0;
}

long dmp_engine_query_windows(const dmp_engine_t *e, int wi, const char *key, size_t key_len,
                              dmp_window_state_cb_t *cb, void *opaque, char *errstr,
                              size_t errstr_size) {
        if (wi < 0 || wi >= e->nwindows || dmp_window_is_keyed(&e->windows[wi])) {
                snprintf(errstr, errstr_size, "only tumbling and hopping windows can be queried");
                return -1;
        }
        query_ctx_t qc = {e, wi, cb, opaque};
        long n = 0;
        task_t *t;
        DMP_TASK_FOREACH(e, t) {
                long r = dmp_store_scan_key(e->store, t->partition, wi, key, key_len, query_one,
                                            &qc, errstr, errstr_size);
                if (r < 0)
                        return -1;
                n += r;
        }
        return n;
}

int dmp_engine_window_index(const dmp_engine_t *e, const char *name) {
        for (int i = 0; i < e->nwindows; i++)
                if (!strcmp(e->windows[i].name, name))
                        return i;
        return -1;
}

void dmp_engine_foreach_task(const dmp_engine_t *e, dmp_task_info_cb_t *cb, void *opaque) {
        task_t *t;
        DMP_TASK_FOREACH(e, t) {
                dmp_task_info_t ti = {t->partition, t->next_offset, t->stream_time, t->events,
                                      (uint64_t)t->table.cnt};
                cb(opaque, &ti);
        }
}


/* ---- inspection (dmpflow state) ---- */

int inspect_describe_agg(const dmp_agg_t *a, const char *name, char *out, size_t *n,
                        size_t out_size, char *errstr, size_t errstr_size) {
        const char *bad = NULL;
        double tol = 1e-9 * (fabs(a->min) + fabs(a->max) + 1.0);
        if (a->count < 0)
                bad = "negative count";
        else if (a->count == 0 && (a->sum != 0.0 || a->m2 != 0.0))
                bad = "empty aggregate with a sum";
        else if (a->count > 0 && !(a->min <= a->max && a->mean >= a->min - tol &&
                                   a->mean <= a->max + tol))
                bad = "not min <= mean <= max";
        else if (a->count > 0 && !(a->m2 >= -tol * tol * (double)a->count))
                bad = "negative M2";
        else if (isnan(a->sum) || isnan(a->mean))
                bad = "NaN";
        if (bad) {
                snprintf(errstr, errstr_size, "measure %s: %s (count %" PRId64 ", sum %.17g, "
                         "min %.17g, max %.17g, mean %.17g, m2 %.17g)", name, bad, a->count,
                         a->sum, a->min, a->max, a->mean, a->m2);
                return -1;
        }
        if (out && *n < out_size && a->count > 0)
                *n += (size_t)snprintf(out + *n, out_size - *n,
                                       " %s{count=%" PRId64 " sum=%.17g min=%.17g max=%.17g "
                                       "mean=%.17g stddev=%.17g}",
                                       name, a->count, a->sum, a->min, a->max, a->mean,
                                       dmp_agg_stddev(a));
        return 0;
}

int dmp_engine_describe_entry(const dmp_engine_t *e, int win, int64_t start, const void *val,
                              size_t len, char *out, size_t out_size, char *errstr,
                              size_t errstr_size) {
        const unsigned char *v = val;
        char tmp[1];
        if (!out) {
                out = tmp;
                out_size = 0;
        }
        size_t n = 0;
        if (win < 0 || win >= e->nwindows || len < 3) {
                snprintf(errstr, errstr_size, "window definition %d of %d, value of %zu bytes",
                         win, e->nwindows, len);
                return -1;
        }
        const dmp_window_t *w = &e->windows[win];
        if (out_size)
                n = (size_t)snprintf(out, out_size, "window %s", w->name);
        if (v[0] == ENTRY_VERSION_KEYSTATE || v[0] == ENTRY_VERSION_SLIDING) {
                if (start != DMP_START_KEYSTATE) {
                        snprintf(errstr, errstr_size, "window %s: malformed key state", w->name);
                        return -1;
                }
                return keyed_describe(e, w, v, len, out, &n, out_size, errstr, errstr_size);
        }
        int late = start == DMP_START_LATE;
        if (v[0] != ENTRY_VERSION_WINDOW || len != 3 + (size_t)v[2] * sizeof(dmp_agg_t) ||
            v[2] != (late ? 1 : w->nmeasures) || (!late && dmp_window_is_keyed(w)) ||
            (v[1] & ~DMP_ENTRY_EMITTED)) {
                snprintf(errstr, errstr_size, "window %s: malformed entry (version %d, %zu "
                         "bytes)", w->name, v[0], len);
                return -1;
        }
        if (!late && !engine_time_ok(start)) {
                snprintf(errstr, errstr_size, "window %s: start %" PRId64 " out of range",
                         w->name, start);
                return -1;
        }
        if (!late && dmp_floor_div(start, w->advance) * w->advance != start) {
                snprintf(errstr, errstr_size, "window %s: start %" PRId64 " not aligned to %"
                         PRId64, w->name, start, w->advance);
                return -1;
        }
        dmp_agg_t a[DMP_MAX_MEASURES];
        memcpy(a, v + 3, (size_t)v[2] * sizeof(dmp_agg_t));
        if (late) {
                if (a[0].count < 1) {
                        snprintf(errstr, errstr_size, "window %s: late count %" PRId64,
                                 w->name, a[0].count);
                        return -1;
                }
                if (n < out_size)
                        snprintf(out + n, out_size - n, " late events since the last result: %"
                                 PRId64, a[0].count);
                return 0;
        }
        if (n < out_size)
                n += (size_t)snprintf(out + n, out_size - n, " [%" PRId64 ", %" PRId64 ")%s",
                                      start, start + w->size,
                                      v[1] & DMP_ENTRY_EMITTED ? " emitted" : "");
        for (int j = 0; j < w->nmeasures; j++)
                if (inspect_describe_agg(&a[j], e->measures[w->measures[j]].name, out, &n, out_size,
                                 errstr, errstr_size))
                        return -1;
        return 0;
}

