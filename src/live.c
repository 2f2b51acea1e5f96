#include "live.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "dmpflow.h"
#include "query.h"

typedef struct sample {
        int64_t t_ms;
        uint64_t events, results;
        int64_t watermark_lag_ms; /* INT64_MIN: no stream time yet */
} sample_t;

typedef struct top_row {
        char key[DMP_LIVE_KEY_MAX];
        size_t key_len;
        int cut; /* the key was longer */
        int64_t start, end, count;
        double sum, mean;
} top_row_t;

/* The top keys of one window definition and measure. */
typedef struct top {
        const char *measure; /* the engine's */
        int64_t start, end;  /* tumbling, hopping: the latest closed window */
        uint64_t keys;       /* results of that window seen */
        int n;
        top_row_t rows[DMP_LIVE_TOP]; /* by sum, descending; keyed kinds: newest first */
} top_t;

typedef struct point {
        int64_t start;
        double mean;
        int64_t count;
} point_t;

/* The means of one group value over its last windows. */
typedef struct series {
        const char *group, *measure; /* the groups' */
        const dmp_window_t *window;
        char value[DMP_LIVE_KEY_MAX];
        size_t value_len;
        int npoints; /* in the ring, at most DMP_LIVE_POINTS */
        int head;    /* the oldest point */
        point_t points[DMP_LIVE_POINTS];
} series_t;

struct dmp_live {
        const dmp_conf_t *conf;
        dmp_engine_t *engine;
        sample_t history[DMP_LIVE_HISTORY]; /* a ring */
        uint64_t nsamples;
        top_t *tops[DMP_MAX_WINDOWS]; /* per window definition, one per measure */
        series_t series[DMP_LIVE_SERIES];
        int nseries;
        uint64_t series_hidden; /* group values not charted (DMP_LIVE_SERIES) */
};

dmp_live_t *dmp_live_new(const dmp_conf_t *conf, dmp_engine_t *e) {
        dmp_live_t *l = dmp_calloc(1, sizeof(*l));
        l->conf = conf;
        l->engine = e;
        for (int w = 0; w < dmp_engine_window_cnt(e); w++) {
                const dmp_window_t *win = dmp_engine_window(e, w);
                l->tops[w] = dmp_calloc((size_t)win->nmeasures, sizeof(top_t));
                for (int m = 0; m < win->nmeasures; m++) {
                        l->tops[w][m].measure = dmp_engine_measure_name(e, win->measures[m]);
                        l->tops[w][m].start = INT64_MIN;
                }
        }
        return l;
}

void dmp_live_destroy(dmp_live_t *l) {
        if (!l)
                return;
        for (int w = 0; w < DMP_MAX_WINDOWS; w++)
                free(l->tops[w]);
        free(l);
}

static void copy_key(char *dst, size_t *dst_len, int *cut, const char *key, size_t len) {
        *cut = len > DMP_LIVE_KEY_MAX;
        *dst_len = *cut ? DMP_LIVE_KEY_MAX : len;
        memcpy(dst, key, *dst_len);
}

/* ---- feeding ---- */

static top_t *top_of(dmp_live_t *l, const dmp_result_t *r) {
        int w = (int)(r->window - dmp_engine_window(l->engine, 0));
        if (w < 0 || w >= dmp_engine_window_cnt(l->engine))
                return NULL;
        for (int m = 0; m < r->window->nmeasures; m++) {
                top_t *t = &l->tops[w][m];
                if (t->measure == r->measure || !strcmp(t->measure, r->measure))
                        return t;
        }
        return NULL;
}

void dmp_live_result(dmp_live_t *l, const dmp_result_t *r) {
        if (!r->final)
                return;
        top_t *t = top_of(l, r);
        if (!t)
                return;
        int pos;
        if (dmp_window_is_keyed(r->window)) { /* the latest closed first */
                pos = 0;
        } else {
                if (r->start < t->start)
                        return; /* a partition behind the others */
                if (r->start > t->start) {
                        t->start = r->start;
                        t->end = r->end;
                        t->keys = 0;
                        t->n = 0;
                }
                t->keys++;
                double sum = r->agg->sum;
                if (t->n == DMP_LIVE_TOP && !(sum > t->rows[t->n - 1].sum))
                        return; /* the usual case: cheap */
                pos = t->n < DMP_LIVE_TOP ? t->n : DMP_LIVE_TOP - 1;
                while (pos > 0 && t->rows[pos - 1].sum < sum)
                        pos--;
        }
        int n = t->n < DMP_LIVE_TOP ? t->n + 1 : DMP_LIVE_TOP;
        memmove(&t->rows[pos + 1], &t->rows[pos], sizeof(top_row_t) * (size_t)(n - 1 - pos));
        t->n = n;
        top_row_t *row = &t->rows[pos];
        copy_key(row->key, &row->key_len, &row->cut, r->key, r->key_len);
        row->start = r->start;
        row->end = r->end;
        row->count = r->agg->count;
        row->sum = r->agg->sum;
        row->mean = r->agg->mean;
}

void dmp_live_group(dmp_live_t *l, const dmp_group_result_t *r) {
        if (!r->window)
                return;
        size_t vl = r->value_len > DMP_LIVE_KEY_MAX ? DMP_LIVE_KEY_MAX : r->value_len;
        series_t *s = NULL;
        for (int i = 0; i < l->nseries && !s; i++) {
                series_t *c = &l->series[i];
                if (c->window == r->window && c->value_len == vl &&
                    !memcmp(c->value, r->value, vl) && !strcmp(c->group, r->group) &&
                    !strcmp(c->measure, r->measure))
                        s = c;
        }
        if (!s) {
                if (l->nseries == DMP_LIVE_SERIES) {
                        l->series_hidden++;
                        return;
                }
                s = &l->series[l->nseries++];
                memset(s, 0, sizeof(*s));
                s->group = r->group;
                s->measure = r->measure;
                s->window = r->window;
                memcpy(s->value, r->value, vl);
                s->value_len = vl;
        }
        if (s->npoints) {
                const point_t *last = &s->points[(s->head + s->npoints - 1) % DMP_LIVE_POINTS];
                if (r->start <= last->start)
                        return; /* not newer */
        }
        point_t p = {r->start, r->agg->mean, r->agg->count};
        if (s->npoints < DMP_LIVE_POINTS) {
                s->points[(s->head + s->npoints++) % DMP_LIVE_POINTS] = p;
        } else {
                s->points[s->head] = p;
                s->head = (s->head + 1) % DMP_LIVE_POINTS;
        }
}

/* ---- the documents ---- */

static void num(dmp_buf_t *b, double v) {
        if (isfinite(v))
                dmp_buf_printf(b, "%.17g", v);
        else
                dmp_buf_puts(b, "null");
}

typedef struct lag_ctx {
        int64_t now, max; /* INT64_MIN: none */
} lag_ctx_t;

static void task_lag(void *opaque, const dmp_task_info_t *ti) {
        lag_ctx_t *lc = opaque;
        if (ti->stream_time != INT64_MIN && lc->now - ti->stream_time > lc->max)
                lc->max = lc->now - ti->stream_time;
}

static void sample(dmp_live_t *l, const dmp_metrics_input_t *in) {
        if (l->nsamples) {
                const sample_t *last = &l->history[(l->nsamples - 1) % DMP_LIVE_HISTORY];
                if (in->now_ms - last->t_ms < 950) /* (called every 500 ms, with jitter) */
                        return;
        }
        const dmp_engine_stats_t *s = dmp_engine_stats(l->engine);
        lag_ctx_t lc = {in->now_ms, INT64_MIN};
        dmp_engine_foreach_task(l->engine, task_lag, &lc);
        l->history[l->nsamples++ % DMP_LIVE_HISTORY] =
                (sample_t){in->now_ms, s->events_in, s->results_out, lc.max};
}

/* The history as arrays of rates per second (the first sample has none). */
static void format_history(const dmp_live_t *l, dmp_buf_t *b) {
        uint64_t n = l->nsamples < DMP_LIVE_HISTORY ? l->nsamples : DMP_LIVE_HISTORY;
        uint64_t first = l->nsamples - n;
        const char *names[] = {"t_ms", "events_per_s", "results_per_s", "watermark_lag_ms"};
        dmp_buf_puts(b, "{\"interval_ms\": 1000");
        for (int k = 0; k < 4; k++) {
                dmp_buf_printf(b, ", \"%s\": [", names[k]);
                for (uint64_t i = first + 1; i < l->nsamples; i++) {
                        const sample_t *p = &l->history[(i - 1) % DMP_LIVE_HISTORY];
                        const sample_t *c = &l->history[i % DMP_LIVE_HISTORY];
                        double dt = (double)(c->t_ms - p->t_ms) / 1000.0;
                        if (i > first + 1)
                                dmp_buf_puts(b, ", ");
                        if (k == 0)
                                dmp_buf_printf(b, "%" PRId64, c->t_ms);
                        else if (k == 1)
                                num(b, dt > 0 ? (double)(c->events - p->events) / dt : 0);
                        else if (k == 2)
                                num(b, dt > 0 ? (double)(c->results - p->results) / dt : 0);
                        else if (c->watermark_lag_ms == INT64_MIN)
                                dmp_buf_puts(b, "null");
                        else
                                dmp_buf_printf(b, "%" PRId64, c->watermark_lag_ms);
                }
                dmp_buf_puts(b, "]");
        }
        dmp_buf_puts(b, "}");
}

static void str_field(dmp_buf_t *b, const char *sep, const char *name, const char *v) {
        dmp_buf_printf(b, "%s\"%s\": ", sep, name);
        dmp_json_string(b, v, strlen(v));
}

static void format_status(const dmp_live_t *l, const dmp_metrics_input_t *in, dmp_buf_t *b) {
        const dmp_engine_t *e = l->engine;
        dmp_buf_printf(b, "{\"version\": \"%s\", \"now_ms\": %" PRId64, DMPFLOW_VERSION,
                       in->now_ms);
        str_field(b, ", ", "input_topic", in->input_topic);
        str_field(b, ", ", "output_topic", in->output_topic);
        str_field(b, ", ", "group_id", l->conf->input.group_id);
        dmp_buf_printf(b, ", \"rss_bytes\": %ld, \"metrics\": ", dmp_rss_bytes());
        dmp_metrics_format_json(b, e, in);
        dmp_buf_puts(b, ", \"history\": ");
        format_history(l, b);
        dmp_buf_puts(b, ", \"recent_dead_letters\": [");
        dmp_dlq_recent_t rec[DMP_DLQ_RECENT];
        int n = dmp_dlq_recent(in->dlq, rec);
        for (int i = n - 1; i >= 0; i--) /* newest first */
                dmp_buf_printf(b, "%s{\"partition\": %d, \"offset\": %" PRId64
                               ", \"class\": \"%s\", \"at_ms\": %" PRId64 "}",
                               i < n - 1 ? ", " : "", (int)rec[i].partition, rec[i].offset,
                               dmp_decode_err_name(rec[i].cls), rec[i].at_ms);
        dmp_buf_puts(b, "], \"windows\": [");
        for (int w = 0; w < dmp_engine_window_cnt(e); w++) {
                const dmp_window_t *win = dmp_engine_window(e, w);
                str_field(b, w ? "}, {" : "{", "name", win->name);
                str_field(b, ", ", "kind", dmp_window_kind_name(win->kind));
                dmp_buf_printf(b, ", \"size_ms\": %" PRId64 ", \"queryable\": %s, \"measures\": [",
                               win->size, dmp_window_is_keyed(win) ? "false" : "true");
                for (int m = 0; m < win->nmeasures; m++) {
                        const char *name = dmp_engine_measure_name(e, win->measures[m]);
                        if (m)
                                dmp_buf_puts(b, ", ");
                        dmp_json_string(b, name, strlen(name));
                }
                dmp_buf_puts(b, "]");
        }
        dmp_buf_puts(b, dmp_engine_window_cnt(e) ? "}]}\n" : "]}\n");
}

static void format_tops(const dmp_live_t *l, dmp_buf_t *b) {
        const dmp_engine_t *e = l->engine;
        int n = 0;
        dmp_buf_puts(b, "\"top\": [");
        for (int w = 0; w < dmp_engine_window_cnt(e); w++) {
                const dmp_window_t *win = dmp_engine_window(e, w);
                for (int m = 0; m < win->nmeasures; m++) {
                        const top_t *t = &l->tops[w][m];
                        str_field(b, n++ ? ", {" : "{", "window", win->name);
                        str_field(b, ", ", "kind", dmp_window_kind_name(win->kind));
                        str_field(b, ", ", "measure", t->measure);
                        if (dmp_window_is_keyed(win) || t->start == INT64_MIN)
                                dmp_buf_puts(b, ", \"start\": null, \"end\": null, \"keys\": null");
                        else
                                dmp_buf_printf(b, ", \"start\": %" PRId64 ", \"end\": %" PRId64
                                               ", \"keys\": %" PRIu64, t->start, t->end, t->keys);
                        dmp_buf_puts(b, ", \"rows\": [");
                        for (int i = 0; i < t->n; i++) {
                                const top_row_t *r = &t->rows[i];
                                dmp_buf_puts(b, i ? ", {\"key\": " : "{\"key\": ");
                                dmp_json_string(b, r->key, r->key_len);
                                dmp_buf_printf(b, ", \"cut\": %s, \"start\": %" PRId64
                                               ", \"end\": %" PRId64 ", \"count\": %" PRId64
                                               ", \"sum\": ", r->cut ? "true" : "false", r->start,
                                               r->end, r->count);
                                num(b, r->sum);
                                dmp_buf_puts(b, ", \"mean\": ");
                                num(b, r->mean);
                                dmp_buf_puts(b, "}");
                        }
                        dmp_buf_puts(b, "]}");
                }
        }
        dmp_buf_puts(b, "]");
}

/* Group values charted together: one chart per (group, window, measure),
 * in the order the statistics first appeared. */
static void format_groups(const dmp_live_t *l, dmp_buf_t *b) {
        char done[DMP_LIVE_SERIES] = {0};
        int charts = 0;
        dmp_buf_puts(b, ", \"groups\": [");
        for (int i = 0; i < l->nseries; i++) {
                if (done[i])
                        continue;
                const series_t *s0 = &l->series[i];
                str_field(b, charts++ ? ", {" : "{", "group", s0->group);
                str_field(b, ", ", "window", s0->window->name);
                str_field(b, ", ", "measure", s0->measure);
                dmp_buf_puts(b, ", \"series\": [");
                int ns = 0;
                for (int j = i; j < l->nseries; j++) {
                        const series_t *s = &l->series[j];
                        if (done[j] || s->window != s0->window || strcmp(s->group, s0->group) ||
                            strcmp(s->measure, s0->measure))
                                continue;
                        done[j] = 1;
                        dmp_buf_puts(b, ns++ ? ", {\"value\": " : "{\"value\": ");
                        dmp_json_string(b, s->value, s->value_len);
                        dmp_buf_puts(b, ", \"points\": [");
                        for (int k = 0; k < s->npoints; k++) {
                                const point_t *p = &s->points[(s->head + k) % DMP_LIVE_POINTS];
                                dmp_buf_printf(b, "%s[%" PRId64 ", ", k ? ", " : "", p->start);
                                num(b, p->mean);
                                dmp_buf_printf(b, ", %" PRId64 "]", p->count);
                        }
                        dmp_buf_puts(b, "]}");
                }
                dmp_buf_puts(b, "]}");
        }
        dmp_buf_printf(b, "], \"groups_hidden\": %" PRIu64, l->series_hidden);
}

/* A pattern of the feed, formatted (its record is valid during the
 * callback only). */
typedef struct feed_item {
        int64_t end;
        int rank, order;
        char *json;
} feed_item_t;

typedef struct feed_ctx {
        feed_item_t *items;
        int n, cap;
} feed_ctx_t;

static void feed_add(void *opaque, const dmp_pattern_result_t *r) {
        feed_ctx_t *fc = opaque;
        if (fc->n == fc->cap) {
                fc->cap = fc->cap ? fc->cap * 2 : 64;
                fc->items = dmp_realloc(fc->items, sizeof(feed_item_t) * (size_t)fc->cap);
        }
        dmp_buf_t j = {0};
        dmp_query_pattern_json(&j, r);
        fc->items[fc->n] = (feed_item_t){r->end, r->rank, fc->n, j.p};
        fc->n++;
}

/* Newest window first; within one, in the order published. */
static int feed_cmp(const void *a, const void *b) {
        const feed_item_t *x = a, *y = b;
        if (x->end != y->end)
                return x->end > y->end ? -1 : 1;
        return x->order < y->order ? -1 : x->order > y->order;
}

static void format_patterns(const dmp_live_t *l, dmp_buf_t *b) {
        feed_ctx_t fc = {0};
        dmp_groups_t *g = dmp_engine_groups(l->engine);
        for (int i = 0; g && i < l->conf->pattern_cnt; i++)
                dmp_groups_recent_patterns(g, l->conf->patterns[i].name, DMP_LIVE_PATTERNS,
                                           feed_add, &fc);
        if (fc.n)
                qsort(fc.items, (size_t)fc.n, sizeof(feed_item_t), feed_cmp);
        dmp_buf_puts(b, ", \"patterns\": [");
        for (int i = 0; i < fc.n; i++) {
                if (i < DMP_LIVE_PATTERNS) {
                        if (i)
                                dmp_buf_puts(b, ", ");
                        dmp_buf_puts(b, fc.items[i].json);
                }
                free(fc.items[i].json);
        }
        free(fc.items);
        dmp_buf_puts(b, "]");
}

void dmp_live_format(dmp_live_t *l, const dmp_metrics_input_t *in, dmp_buf_t *status,
                     dmp_buf_t *results) {
        sample(l, in);
        format_status(l, in, status);
        dmp_buf_printf(results, "{\"now_ms\": %" PRId64 ", ", in->now_ms);
        format_tops(l, results);
        format_groups(l, results);
        format_patterns(l, results);
        dmp_buf_puts(results, "}\n");
}
