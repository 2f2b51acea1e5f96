/* Group statistics: running and windowed statistics of measures per group
 * value, per input partition, combined over the partitions when emitted;
 * their persistence and queries. The miners are in patterns.c. See
 * groups.h, groups_int.h (the state's layout) and docs/PATTERNS.md. */
#include "groups.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "groups_int.h"
#include "util.h"
#include "wtable.h"

/* ---- compilation ---- */

/* Appends v to list[*n] unless it is there. */
static void list_add(int *list, int *n, int v) {
        for (int i = 0; i < *n; i++)
                if (list[i] == v)
                        return;
        list[(*n)++] = v;
}

static int compile_group(dmp_groups_t *g, dmp_group_conf_t *gc, dmp_decoder_t *dec, int nmeasures,
                         int nwindows) {
        gdef_t *gd = &g->groups[g->ngroups];
        char err[512];
        memset(gd, 0, sizeof(*gd));
        gd->name = gc->name;
        gd->topic = gc->topic;
        gd->label = -1;
        gd->bucket_measure = -1;
        if (*gc->field) {
                gd->label = dmp_decoder_label_field(dec, gc->field, err, sizeof(err));
                if (gd->label < 0) {
                        dmp_conf_error(g->conf, gc->line[0] ? gc->line[0] : gc->section_line,
                                       "[group %s] field: %s", gc->name, err);
                        return 1;
                }
        } else {
                gd->bucket_measure = dmp_conf_find_measure(g->conf, gc->bucket_measure,
                                                           strlen(gc->bucket_measure));
                gd->width = gc->bucket_width;
        }
        const char *s = gc->measures, *n;
        size_t l;
        /* each once: a longer list overflowed measures[] and windows[]
         * (fuzz finding, docs/FUZZING.md) */
        while (dmp_list_next(&s, &n, &l))
                list_add(gd->measures, &gd->nmeasures, dmp_conf_find_measure(g->conf, n, l));
        if (!gd->nmeasures)
                for (int m = 0; m < nmeasures; m++)
                        gd->measures[gd->nmeasures++] = m;
        s = gc->windows;
        while (dmp_list_next(&s, &n, &l)) {
                int wi = dmp_conf_find_window(g->conf, n, l);
                const dmp_window_t *w = &g->windows[wi];
                if (dmp_window_is_keyed(w)) {
                        dmp_conf_error(g->conf, gc->section_line,
                                       "[group %s] window %s: windowed group statistics need a "
                                       "tumbling or hopping window, not %s", gc->name, w->name,
                                       dmp_window_kind_name(w->kind));
                        return 1;
                }
                list_add(gd->windows, &gd->nwindows, wi);
        }
        (void)nwindows;
        g->ngroups++;
        return 0;
}

dmp_groups_t *dmp_groups_new(dmp_conf_t *conf, dmp_decoder_t *dec, const dmp_measure_t *measures,
                             int nmeasures, const dmp_window_t *windows, int nwindows,
                             const dmp_groups_sink_t *sink, int *errors) {
        *errors = 0;
        if (!conf->group_cnt && !conf->pattern_cnt)
                return NULL;
        dmp_groups_t *g = dmp_calloc(1, sizeof(*g));
        g->conf = conf;
        g->measures = measures;
        g->windows = windows;
        g->mark = INT64_MIN;
        g->sink = *sink;
        g->inst.partition = INSTANCE;
        dmp_wtable_init(&g->inst.run);
        dmp_wtable_init(&g->inst.hist);
        for (int i = 0; i < conf->group_cnt; i++)
                *errors += compile_group(g, &conf->groups[i], dec, nmeasures, nwindows);
        if (!*errors)
                for (int i = 0; i < conf->pattern_cnt; i++)
                        *errors += patterns_compile(g, &conf->patterns[i]);
        if (*errors) {
                dmp_groups_destroy(g);
                return NULL;
        }
        return g;
}

static void task_free(gtask_t *t) {
        /* the retired ones first: they are in no table, and reading the
         * flags of the others after the tables freed them would be a read
         * after free (a task closed with changes not committed) */
        for (size_t i = 0; i < t->dirty.n; i++)
                if (t->dirty.v[i]->flags & DMP_ENTRY_CLOSED)
                        free(t->dirty.v[i]);
        for (size_t i = 0; i < t->run.cap; i++) {
                if (t->run.slots[i])
                        free(t->run.slots[i]->ext); /* a RUNNING entry's window memo */
                free(t->run.slots[i]);
        }
        for (size_t i = 0; i < t->hist.cap; i++)
                free(t->hist.slots[i]);
        for (size_t i = 0; i < t->nktop; i++)
                free(t->ktop[i]);
        dmp_wtable_clear(&t->run);
        dmp_wtable_clear(&t->hist);
        free(t->ktop);
        free(t->dirty.v);
}

void dmp_groups_destroy(dmp_groups_t *g) {
        if (!g)
                return;
        gtask_t *t;
        DMP_TASK_FOREACH(g, t) {
                task_free(t);
                free(t);
        }
        free(g->tasks);
        task_free(&g->inst);
        for (int i = 0; i < g->npatterns; i++)
                for (int j = 0; j < DMP_GROUPS_RECENT; j++)
                        free(g->patterns[i].recent[j].subject);
        free(g->buf);
        free(g->ranked);
        free(g);
}

const dmp_groups_stats_t *dmp_groups_stats(const dmp_groups_t *g) {
        return &g->stats;
}

size_t dmp_groups_describe(const dmp_groups_t *g, char *buf, size_t size) {
        size_t n = 0;
        for (int i = 0; i < g->ngroups && n < size; i++) {
                const gdef_t *gd = &g->groups[i];
                n += (size_t)snprintf(buf + n, size - n, "|g:%s,%d,%d,%.17g", gd->name, gd->label,
                                      gd->bucket_measure, gd->width);
                for (int j = 0; j < gd->nmeasures && n < size; j++)
                        n += (size_t)snprintf(buf + n, size - n, ",m%d", gd->measures[j]);
                for (int j = 0; j < gd->nwindows && n < size; j++)
                        n += (size_t)snprintf(buf + n, size - n, ",w%d", gd->windows[j]);
        }
        for (int i = 0; i < g->npatterns && n < size; i++) {
                const pdef_t *pd = &g->patterns[i];
                n += (size_t)snprintf(buf + n, size - n, "|p:%s,%d,%d,%d,%d,%d", pd->name,
                                      pd->kind, pd->wi, pd->gi, pd->mi, pd->stat);
        }
        return n < size ? n : size;
}

size_t dmp_groups_bucket_label(double x, double width, char *buf, size_t size) {
        double b = floor(x / width) * width;
        if (b == 0)
                b = 0; /* no "-0" */
        if (b == floor(b) && fabs(b) < 1e15) /* integral: its digits */
                return (size_t)snprintf(buf, size, "%.0f", b);
        return dmp_format_double(buf, size, b);
}

/* ---- entries ---- */

/* Takes en out of its table (or candidates) for deletion at the commit, or,
 * if the store never held it, to be freed by release_unstored (sooner). */
void groups_retire(dmp_groups_t *g, gtask_t *t, dmp_wtable_t *table, dmp_entry_t *en) {
        assert(!(en->flags & DMP_ENTRY_CLOSED)); /* retired once */
        if (table)
                dmp_wtable_remove(table, en);
        en->flags |= DMP_ENTRY_CLOSED;
        dmp_dirty_mark(&t->dirty, en);
        t->dirty.dead += !(en->flags & DMP_ENTRY_PERSISTED);
        g->stats.partials--;
}

/* dmp_dirty_compact's release: frees a retired entry the store never held
 * (nothing to delete at the commit). At a million events a second a commit
 * interval retired hundreds of thousands of topk candidates (Nexmark Q5),
 * held until the commit. */
static int release_unstored(void *opaque, dmp_entry_t *en) {
        (void)opaque;
        if (!dmp_entry_closed_unstored(en))
                return 0;
        free(en);
        return 1;
}

/* Adds a topk candidate (KTOP) to the partition's list. */
void patterns_ktop_push(gtask_t *t, dmp_entry_t *en) {
        if (t->nktop == t->ktop_cap) {
                t->ktop_cap = t->ktop_cap ? t->ktop_cap * 2 : 64;
                t->ktop = dmp_realloc(t->ktop, t->ktop_cap * sizeof(*t->ktop));
        }
        t->ktop[t->nktop++] = en;
}

/* The running statistics of en's group (a RUNNING entry of some partition)
 * combined over every partition from `from` on, into comb (nmeasures + 1
 * aggregates); with clear_changed their CHANGED flags are cleared. */
static void combine_running(dmp_groups_t *g, const dmp_entry_t *en, int32_t from,
                            dmp_agg_t *comb, int clear_changed) {
        const gdef_t *gd = &g->groups[en->win & 0xfff];
        for (int j = 0; j <= gd->nmeasures; j++)
                dmp_agg_init(&comb[j]);
        for (int32_t q = from; q < g->ntasks; q++) {
                gtask_t *u = g->tasks[q];
                dmp_entry_t *o = u ? dmp_wtable_find(&u->run, en->hash, en->win, 0,
                                                     dmp_entry_key(en), en->key_len)
                                   : NULL;
                if (!o)
                        continue;
                for (int j = 0; j <= gd->nmeasures; j++)
                        dmp_agg_merge(&comb[j], &o->aggs[j]);
                if (clear_changed)
                        o->flags &= (uint8_t)~DMP_ENTRY_CHANGED;
        }
}

/* The entry of (win, start, key) in table, created if missing, marked
 * dirty; key_hash is dmp_hash_bytes(key, kl, 0) (computed once per event
 * for all of a group's entries). */
static inline __attribute__((always_inline)) dmp_entry_t *
entry_get_hashed(dmp_groups_t *g, gtask_t *t, dmp_wtable_t *table, int win, int64_t start,
                 const char *key, size_t kl, uint64_t key_hash, int naggs) {
        uint64_t h = dmp_entry_hash(key_hash, win, start);
        dmp_entry_t *en = dmp_wtable_find(table, h, win, start, key, kl);
        if (!en) {
                en = dmp_entry_new(h, win, start, key, kl, naggs);
                dmp_wtable_insert(table, en);
                g->stats.partials++;
        }
        dmp_dirty_mark(&t->dirty, en);
        return en;
}

dmp_entry_t *groups_entry_get(dmp_groups_t *g, gtask_t *t, dmp_wtable_t *table, int win,
                              int64_t start, const char *key, size_t kl, int naggs) {
        return entry_get_hashed(g, t, table, win, start, key, kl, dmp_hash_bytes(key, kl, 0),
                                naggs);
}

static inline __attribute__((always_inline)) void
add_values(const gdef_t *gd, dmp_entry_t *en, int64_t ts, const double *vals,
           uint64_t defined) {
        for (int j = 0; j < gd->nmeasures; j++)
                if (defined >> gd->measures[j] & 1)
                        dmp_agg_add(&en->aggs[j], vals[gd->measures[j]]);
        /* aggs[nmeasures]: the time of the last update in max, with a count
         * so that Chan's merge keeps it; nothing reads its other fields, so
         * they are not updated (a division fewer per entry per event). */
        dmp_agg_t *last = &en->aggs[gd->nmeasures];
        last->count++;
        if ((double)ts > last->max)
                last->max = (double)ts;
        en->flags |= DMP_ENTRY_CHANGED;
}

int dmp_groups_values_too_long(const dmp_groups_t *g, const dmp_event_t *ev, char *errstr,
                               size_t errstr_size) {
        for (int gi = 0; gi < g->ngroups; gi++) {
                const gdef_t *gd = &g->groups[gi];
                if (gd->label >= 0 && ev->label_len[gd->label] > DMP_KEY_MAX) {
                        snprintf(errstr, errstr_size, "[group %s]: the value is %u bytes long; "
                                 "at most %d are kept in state", gd->name,
                                 (unsigned)ev->label_len[gd->label], DMP_KEY_MAX);
                        return 1;
                }
        }
        return 0;
}

void dmp_groups_event(dmp_groups_t *g, int32_t partition, int64_t stream_time,
                      const dmp_event_t *ev, int64_t ts, const double *vals, uint64_t defined) {
        gtask_t *t = groups_task(g, partition);
        if (!t)
                return;
        for (int gi = 0; gi < g->ngroups; gi++) {
                const gdef_t *gd = &g->groups[gi];
                char bucket[40];
                const char *v;
                size_t vl;
                if (gd->label >= 0) {
                        v = ev->label[gd->label];
                        vl = ev->label_len[gd->label];
                } else if (defined >> gd->bucket_measure & 1) {
                        vl = dmp_groups_bucket_label(vals[gd->bucket_measure], gd->width, bucket,
                                                     sizeof(bucket));
                        v = bucket;
                } else {
                        continue; /* no bucket for an undefined measure */
                }
                assert(vl <= DMP_KEY_MAX); /* (longer: dmp_groups_values_too_long) */
                uint64_t vh = dmp_hash_bytes(v, vl, 0);
                dmp_entry_t *run = entry_get_hashed(g, t, &t->run, WIN_ID(KIND_RUNNING, gi), 0, v,
                                                    vl, vh, gd->nmeasures + 1);
                add_values(gd, run, ts, vals, defined);
                dmp_entry_t **memo = run->ext; /* the window memo (see the top) */
                if (!memo && gd->nwindows)
                        memo = run->ext = dmp_calloc((size_t)gd->nwindows, sizeof(*memo));
                for (int j = 0; j < gd->nwindows; j++) {
                        int wi = gd->windows[j];
                        const dmp_window_t *w = &g->windows[wi];
                        int id = WIN_ID(KIND_GWIN, gi << 5 | wi);
                        for (int64_t s = dmp_window_first_start_memo(w, ts, &t->first_memo[wi]);
                             s <= ts; s += w->advance) {
                                int64_t closes = s + w->size + w->grace;
                                if (closes <= stream_time || closes <= g->mark) {
                                        g->stats.late_group_updates++;
                                        continue;
                                }
                                dmp_entry_t *en = memo[j];
                                if (en && en->start == s) {
                                        dmp_dirty_mark(&t->dirty, en);
                                } else {
                                        en = entry_get_hashed(g, t, &t->run, id, s, v, vl, vh,
                                                              gd->nmeasures + 1);
                                        if (s + w->advance > ts) /* the latest window: the next
                                                                  * events' too */
                                                memo[j] = en;
                                }
                                add_values(gd, en, ts, vals, defined);
                        }
                }
        }
}

/* ---- emitting ---- */

/* The last update time kept as a double (aggs[nmeasures].max), as an
 * int64_t: saturated, so that a corrupt stored value stays defined (fuzz
 * finding, docs/FUZZING.md). */
static int64_t last_update_of(double t) {
        if (!(t > -9.2e18))
                return INT64_MIN; /* NaN too */
        return t < 9.2e18 ? (int64_t)t : INT64_MAX;
}

static void group_out(dmp_groups_t *g, const gdef_t *gd, const dmp_window_t *w, int64_t start,
                      const char *v, size_t vl, const dmp_agg_t *aggs) {
        for (int j = 0; j < gd->nmeasures; j++) {
                if (aggs[j].count == 0)
                        continue;
                dmp_group_result_t r = {
                        .group = gd->name, .topic = gd->topic, .value = v, .value_len = vl,
                        .measure = g->measures[gd->measures[j]].name, .window = w,
                        .start = w ? start : 0, .end = w ? start + w->size : 0, .agg = &aggs[j],
                        .last_update = last_update_of(aggs[gd->nmeasures].max)};
                g->stats.group_results++;
                if (g->sink.group)
                        g->sink.group(g->sink.opaque, &r);
        }
}

/* Running statistics changed since the last emit, combined over the
 * partitions. */
static void emit_running(dmp_groups_t *g) {
        gtask_t *t;
        DMP_TASK_FOREACH(g, t) {
                for (size_t i = 0; i < t->dirty.n; i++) {
                        dmp_entry_t *en = t->dirty.v[i];
                        if (WIN_KIND(en->win) != KIND_RUNNING || !(en->flags & DMP_ENTRY_CHANGED) ||
                            (en->flags & DMP_ENTRY_CLOSED))
                                continue;
                        dmp_agg_t comb[DMP_MAX_MEASURES + 1];
                        combine_running(g, en, 0, comb, 1);
                        group_out(g, &g->groups[en->win & 0xfff], NULL, 0, dmp_entry_key(en),
                                  en->key_len, comb);
                }
        }
}

/* Clears en (a GWIN entry of task t, about to retire) from its group
 * value's window memo. */
static void memo_forget(dmp_groups_t *g, gtask_t *t, const dmp_entry_t *en) {
        int gi = (en->win >> 5) & 0x7f, wi = en->win & 31, id = WIN_ID(KIND_RUNNING, gi);
        const char *key = dmp_entry_key(en);
        uint64_t h = dmp_entry_hash(dmp_hash_bytes(key, en->key_len, 0), id, 0);
        const dmp_entry_t *run = dmp_wtable_find(&t->run, h, id, 0, key, en->key_len);
        dmp_entry_t **memo = run ? run->ext : NULL;
        for (int j = 0; memo && j < g->groups[gi].nwindows; j++)
                if (g->groups[gi].windows[j] == wi && memo[j] == en)
                        memo[j] = NULL;
}

static int closing_cmp(const void *x, const void *y) {
        const dmp_entry_t *a = ((const closing_t *)x)->en, *b = ((const closing_t *)y)->en;
        if (a->start != b->start)
                return a->start < b->start ? -1 : 1;
        if (a->win != b->win)
                return a->win < b->win ? -1 : 1;
        return key_cmp(dmp_entry_key(a), a->key_len, dmp_entry_key(b), b->key_len);
}

/* Group windows closed at the mark: combined, emitted, mined, deleted. */
static void close_group_windows(dmp_groups_t *g) {
        closing_t *c = NULL;
        size_t n = 0, cap = 0;
        gtask_t *t;
        DMP_TASK_FOREACH(g, t) {
                for (size_t i = 0; i < t->run.cap; i++) {
                        dmp_entry_t *en = t->run.slots[i];
                        if (!en || WIN_KIND(en->win) != KIND_GWIN)
                                continue;
                        const dmp_window_t *w = &g->windows[en->win & 31];
                        if (en->start + w->size + w->grace > g->mark)
                                continue;
                        if (n == cap) {
                                cap = cap ? cap * 2 : 64;
                                c = dmp_realloc(c, cap * sizeof(*c));
                        }
                        c[n++] = (closing_t){t, en};
                }
        }
        if (n > 1)
                qsort(c, n, sizeof(*c), closing_cmp);
        subject_t *subj = dmp_calloc(n ? n : 1, sizeof(*subj));
        dmp_agg_t *aggs = dmp_calloc(n ? n * (DMP_MAX_MEASURES + 1) : 1, sizeof(*aggs));
        for (size_t i = 0; i < n;) { /* one (window, group definition) at a time */
                const dmp_entry_t *first = c[i].en;
                int gi = (first->win >> 5) & 0x7f, wi = first->win & 31;
                const gdef_t *gd = &g->groups[gi];
                const dmp_window_t *w = &g->windows[wi];
                size_t ns = 0, j = i;
                while (j < n && c[j].en->start == first->start && c[j].en->win == first->win) {
                        /* one subject: the same group value in several partitions */
                        subject_t *s = &subj[ns];
                        s->key = dmp_entry_key(c[j].en);
                        s->len = c[j].en->key_len;
                        s->aggs = &aggs[ns * (DMP_MAX_MEASURES + 1)];
                        for (int m = 0; m <= gd->nmeasures; m++)
                                dmp_agg_init(&s->aggs[m]);
                        while (j < n && c[j].en->start == first->start &&
                               c[j].en->win == first->win &&
                               !key_cmp(dmp_entry_key(c[j].en), c[j].en->key_len, s->key, s->len)) {
                                for (int m = 0; m <= gd->nmeasures; m++)
                                        dmp_agg_merge(&s->aggs[m], &c[j].en->aggs[m]);
                                j++;
                        }
                        group_out(g, gd, w, first->start, s->key, s->len, s->aggs);
                        ns++;
                }
                for (int pi = 0; pi < g->npatterns; pi++) {
                        const pdef_t *pd = &g->patterns[pi];
                        if (pd->gi != gi || pd->wi != wi)
                                continue;
                        if (pd->kind == DMP_PATTERN_TOPK) {
                                patterns_topk(g, pd, first->start, subj, ns, (int64_t)ns);
                                continue;
                        }
                        for (size_t s = 0; s < ns; s++) {
                                if (subj[s].aggs[pd->gm].count == 0)
                                        continue;
                                dmp_entry_t *h = groups_entry_get(g, &g->inst, &g->inst.hist,
                                                           WIN_ID(KIND_GHIST, pi), 0, subj[s].key,
                                                           subj[s].len, 2);
                                patterns_judge(g, &g->inst, pd, h, first->start, subj[s].key, subj[s].len,
                                      &subj[s].aggs[pd->gm]);
                        }
                }
                for (; i < j; i++) { /* after the patterns: subjects point into them */
                        memo_forget(g, c[i].t, c[i].en);
                        groups_retire(g, c[i].t, &c[i].t->run, c[i].en);
                }
        }
        free(aggs);
        free(subj);
        free(c);
}

void dmp_groups_emit(dmp_groups_t *g, int64_t watermark) {
        emit_running(g);
        if (watermark > g->mark)
                g->mark = watermark;
        if (g->mark == INT64_MIN)
                return;
        close_group_windows(g);
        patterns_close_key_topk(g);
        gtask_t *t;
        DMP_TASK_FOREACH(g, t) /* what they retired */
                dmp_dirty_compact(&t->dirty, release_unstored, NULL);
}

/* ---- persistence ---- */

/* Store key: win:be16 start:be64 (sign flipped) subject. */
static size_t encode_key(dmp_groups_t *g, const dmp_entry_t *en) {
        size_t need = 10 + en->key_len + sizeof(dmp_agg_t) * en->nmeasures;
        if (need > g->buf_cap) {
                g->buf_cap = need * 2;
                g->buf = dmp_realloc(g->buf, g->buf_cap);
        }
        g->buf[0] = (unsigned char)(en->win >> 8);
        g->buf[1] = (unsigned char)en->win;
        uint64_t s = (uint64_t)en->start ^ (UINT64_C(1) << 63);
        for (int i = 0; i < 8; i++)
                g->buf[2 + i] = (unsigned char)(s >> (56 - 8 * i));
        memcpy(g->buf + 10, dmp_entry_key(en), en->key_len);
        return 10 + en->key_len;
}

static void persist_task(dmp_groups_t *g, gtask_t *t, dmp_store_t *st) {
        for (size_t i = 0; i < t->dirty.n; i++) {
                dmp_entry_t *en = t->dirty.v[i];
                if (dmp_entry_closed_unstored(en))
                        continue; /* nothing to delete */
                size_t kl = encode_key(g, en);
                if (en->flags & DMP_ENTRY_CLOSED) {
                        dmp_store_delete_group(st, t->partition, (const char *)g->buf, kl);
                } else {
                        /* the aggregates as they are in memory (host byte order) */
                        size_t vl = sizeof(dmp_agg_t) * en->nmeasures;
                        memcpy(g->buf + kl, en->aggs, vl);
                        dmp_store_put_group(st, t->partition, (const char *)g->buf, kl,
                                            g->buf + kl, vl);
                }
        }
}

void dmp_groups_persist(dmp_groups_t *g, dmp_store_t *st) {
        gtask_t *t;
        DMP_TASK_FOREACH(g, t)
                persist_task(g, t, st);
        persist_task(g, &g->inst, st);
}

static void committed_task(gtask_t *t) {
        for (size_t i = 0; i < t->dirty.n; i++) {
                dmp_entry_t *en = t->dirty.v[i];
                if (en->flags & DMP_ENTRY_CLOSED)
                        free(en);
                else
                        en->flags = (uint8_t)((en->flags & ~DMP_ENTRY_DIRTY) | DMP_ENTRY_PERSISTED);
        }
        dmp_dirty_clear(&t->dirty);
}

void dmp_groups_committed(dmp_groups_t *g) {
        gtask_t *t;
        DMP_TASK_FOREACH(g, t)
                committed_task(t);
        committed_task(&g->inst);
}

typedef struct load_ctx {
        dmp_groups_t *g;
        gtask_t *t;
} load_ctx_t;

/* Whether a stored entry (win, start, naggs) is one this pipeline makes:
 * a known kind of a defined group, window or pattern, with its number of
 * aggregates and a start in range. A corrupt or foreign store fails to
 * load instead of indexing past the definitions (fuzz finding,
 * docs/FUZZING.md). */
static int stored_entry_valid(const dmp_groups_t *g, int win, int64_t start, int naggs) {
        int n = win & 0xfff;
        /* window starts are event times' (within +-2^60 ms), others 0 */
        int64_t lim = (int64_t)1 << 61;
        if (WIN_KIND(win) == KIND_GWIN || WIN_KIND(win) == KIND_KTOP ? start < -lim || start > lim
                                                                     : start != 0)
                return 0;
        switch (WIN_KIND(win)) {
        case KIND_RUNNING:
                return n < g->ngroups && naggs == g->groups[n].nmeasures + 1;
        case KIND_GWIN: {
                int gi = n >> 5, wi = n & 31, listed = 0;
                if (gi >= g->ngroups || naggs != g->groups[gi].nmeasures + 1)
                        return 0;
                for (int j = 0; j < g->groups[gi].nwindows; j++)
                        listed |= g->groups[gi].windows[j] == wi;
                return listed;
        }
        case KIND_KHIST:
        case KIND_GHIST:
                return n < g->npatterns && naggs == 2 &&
                       (g->patterns[n].gi >= 0) == (WIN_KIND(win) == KIND_GHIST);
        case KIND_KTOP:
                return n < g->npatterns && g->patterns[n].kind == DMP_PATTERN_TOPK &&
                       g->patterns[n].gi < 0 && (naggs == 1 || naggs == 2);
        default:
                return 0;
        }
}

static int load_one(void *opaque, const char *key, size_t key_len, const void *val,
                    size_t val_len) {
        load_ctx_t *lc = opaque;
        if (key_len < 10 || val_len % sizeof(dmp_agg_t) || !val_len ||
            val_len / sizeof(dmp_agg_t) > DMP_MAX_MEASURES + 1)
                return -1;
        const unsigned char *k = (const unsigned char *)key;
        int win = k[0] << 8 | k[1];
        uint64_t s = 0;
        for (int i = 0; i < 8; i++)
                s = s << 8 | k[2 + i];
        int64_t start = (int64_t)(s ^ (UINT64_C(1) << 63));
        size_t sl = key_len - 10;
        int naggs = (int)(val_len / sizeof(dmp_agg_t));
        if (!stored_entry_valid(lc->g, win, start, naggs))
                return -1;
        int kind = WIN_KIND(win);
        dmp_entry_t *en = dmp_entry_new(dmp_entry_hash(dmp_hash_bytes(key + 10, sl, 0), win, start),
                                        win, start, key + 10, sl, naggs);
        memcpy(en->aggs, val, val_len);
        en->flags = DMP_ENTRY_PERSISTED;
        gtask_t *t = lc->t;
        if (kind == KIND_KTOP) {
                en->hash = 0;
                patterns_ktop_push(t, en);
                t->krun_begin = SIZE_MAX; /* not of a run: kept until the close */
        } else {
                dmp_wtable_insert(kind == KIND_RUNNING || kind == KIND_GWIN ? &t->run : &t->hist,
                                  en);
        }
        lc->g->stats.partials++;
        return 0;
}

int dmp_groups_partition_open(dmp_groups_t *g, dmp_store_t *st, int32_t partition,
                              char *errstr, size_t errstr_size) {
        if (partition < 0)
                return 0;
        if (!g->inst_loaded) {
                load_ctx_t lc = {g, &g->inst};
                if (dmp_store_scan_groups(st, INSTANCE, load_one, &lc, errstr, errstr_size) < 0)
                        return -1;
                g->inst_loaded = 1;
        }
        if (groups_task(g, partition))
                return 0;
        if (partition >= g->ntasks) {
                g->tasks = dmp_realloc(g->tasks, sizeof(*g->tasks) * (size_t)(partition + 1));
                for (int32_t p = g->ntasks; p <= partition; p++)
                        g->tasks[p] = NULL;
                g->ntasks = partition + 1;
        }
        gtask_t *t = dmp_calloc(1, sizeof(*t));
        t->partition = partition;
        dmp_wtable_init(&t->run);
        dmp_wtable_init(&t->hist);
        g->tasks[partition] = t;
        load_ctx_t lc = {g, t};
        if (dmp_store_scan_groups(st, partition, load_one, &lc, errstr, errstr_size) < 0) {
                dmp_groups_partition_close(g, partition);
                return -1;
        }
        return 0;
}

void dmp_groups_partition_close(dmp_groups_t *g, int32_t partition) {
        gtask_t *t = groups_task(g, partition);
        if (!t)
                return;
        g->stats.partials -= t->run.cnt + t->hist.cnt + t->nktop;
        task_free(t);
        free(t);
        g->tasks[partition] = NULL;
}

/* ---- queries ---- */

int dmp_groups_query(dmp_groups_t *g, const char *name, const char *value, size_t value_len,
                     void (*cb)(void *opaque, const dmp_group_result_t *r), void *opaque) {
        int gi = -1;
        for (int i = 0; i < g->ngroups; i++)
                if (!strcmp(g->groups[i].name, name))
                        gi = i;
        if (gi < 0)
                return -1;
        const gdef_t *gd = &g->groups[gi];
        int win = WIN_ID(KIND_RUNNING, gi), n = 0;
        /* every distinct value of any partition, combined over all of them;
         * a value is reported by the first partition that has it */
        for (int32_t p = 0; p < g->ntasks; p++) {
                gtask_t *t = g->tasks[p];
                for (size_t i = 0; t && i < t->run.cap; i++) {
                        dmp_entry_t *en = t->run.slots[i];
                        if (!en || en->win != win ||
                            (value && (en->key_len != value_len ||
                                       memcmp(dmp_entry_key(en), value, value_len))))
                                continue;
                        int seen = 0;
                        for (int32_t q = 0; q < p && !seen; q++)
                                seen = g->tasks[q] &&
                                       dmp_wtable_find(&g->tasks[q]->run, en->hash, win, 0,
                                                       dmp_entry_key(en), en->key_len);
                        if (seen)
                                continue;
                        dmp_agg_t comb[DMP_MAX_MEASURES + 1];
                        combine_running(g, en, p, comb, 0);
                        for (int j = 0; j < gd->nmeasures; j++) {
                                if (!comb[j].count)
                                        continue;
                                dmp_group_result_t r = {
                                        .group = gd->name, .topic = gd->topic,
                                        .value = dmp_entry_key(en), .value_len = en->key_len,
                                        .measure = g->measures[gd->measures[j]].name,
                                        .agg = &comb[j],
                                        .last_update = last_update_of(comb[gd->nmeasures].max)};
                                cb(opaque, &r);
                                n++;
                        }
                }
        }
        return n;
}
