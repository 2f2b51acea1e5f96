/* Patterns mined when windows close: topk (over keys or the groups of a
 * window), anomaly and threshold (over keys or groups). See groups.h,
 * groups_int.h and docs/PATTERNS.md.
 *
 * Threads: the processing thread only. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "groups_int.h"
#include "util.h"

/* ---- compilation ---- */

int patterns_compile(dmp_groups_t *g, dmp_pattern_conf_t *pc) {
        pdef_t *pd = &g->patterns[g->npatterns];
        memset(pd, 0, sizeof(*pd));
        pd->name = pc->name;
        pd->topic = pc->topic;
        pd->kind = pc->kind;
        pd->kind_name = dmp_conf_enum_name("pattern", "kind", pc->kind);
        pd->stat = pc->stat;
        pd->stat_name = dmp_conf_enum_name("pattern", "stat", pc->stat);
        pd->wi = dmp_conf_find_window(g->conf, pc->window, strlen(pc->window));
        pd->mi = dmp_conf_find_measure(g->conf, pc->measure, strlen(pc->measure));
        pd->gi = strncmp(pc->source, "group:", 6) ? -1 : dmp_conf_find_group(g->conf, pc->source + 6);
        pd->k = (int)pc->k;
        pd->desc = pc->order == DMP_ORDER_DESC;
        pd->z = pc->z;
        pd->min_count = pc->min_count;
        pd->has_above = !isnan(pc->above);
        pd->above = pc->above;
        pd->has_below = !isnan(pc->below);
        pd->below = pc->below;
        pd->consecutive = pc->consecutive;
        const dmp_window_t *w = &g->windows[pd->wi];
        if (pd->gi >= 0) {
                const gdef_t *gd = &g->groups[pd->gi];
                pd->gm = -1;
                for (int j = 0; j < gd->nmeasures; j++)
                        if (gd->measures[j] == pd->mi)
                                pd->gm = j;
                if (pd->gm < 0) {
                        dmp_conf_error(g->conf, pc->section_line,
                                       "[pattern %s] [group %s] does not keep measure %s",
                                       pc->name, gd->name, pc->measure);
                        return 1;
                }
        } else {
                int found = 0;
                for (int j = 0; j < w->nmeasures; j++)
                        found |= w->measures[j] == pd->mi;
                if (!found) {
                        dmp_conf_error(g->conf, pc->section_line,
                                       "[pattern %s] [window %s] does not aggregate measure %s",
                                       pc->name, w->name, pc->measure);
                        return 1;
                }
                if (pd->kind == DMP_PATTERN_TOPK && dmp_window_is_keyed(w)) {
                        dmp_conf_error(g->conf, pc->section_line,
                                       "[pattern %s] topk over keys needs a tumbling or hopping "
                                       "window (%s is %s)", pc->name, w->name,
                                       dmp_window_kind_name(w->kind));
                        return 1;
                }
        }
        g->npatterns++;
        return 0;
}

/* ---- patterns ---- */

double patterns_stat_value(dmp_stat_t stat, const dmp_agg_t *a) {
        switch (stat) {
        case DMP_STAT_SUM: return a->sum;
        case DMP_STAT_COUNT: return (double)a->count;
        case DMP_STAT_MIN: return a->min;
        case DMP_STAT_MAX: return a->max;
        default: return a->mean;
        }
}

static void pattern_out(dmp_groups_t *g, const pdef_t *pd, int64_t start,
                        const char *subject, size_t sl, const dmp_agg_t *agg, int rank,
                        double score, double mean, double stddev, int64_t observations,
                        const char *direction) {
        const dmp_window_t *w = &g->windows[pd->wi];
        dmp_pattern_result_t r = {
                .pattern = pd->name, .kind = pd->kind_name, .topic = pd->topic, .window = w,
                .start = start, .end = start + w->size,
                .source = pd->gi >= 0 ? g->groups[pd->gi].name : "key",
                .subject = subject, .subject_len = sl,
                .measure = g->measures[pd->mi].name, .stat = pd->stat_name, .rank = rank,
                .value = patterns_stat_value(pd->stat, agg), .score = score, .mean = mean,
                .stddev = stddev, .count = agg->count, .observations = observations,
                .direction = direction};
        g->stats.patterns++;
        if (g->sink.pattern)
                g->sink.pattern(g->sink.opaque, &r);
        pdef_t *w_pd = &g->patterns[pd - g->patterns]; /* keep it for queries */
        recent_t *rc = &w_pd->recent[w_pd->next_recent];
        free(rc->subject);
        rc->r = r;
        rc->subject = dmp_strndup(subject, sl);
        rc->r.subject = rc->subject;
        w_pd->next_recent = (w_pd->next_recent + 1) % DMP_GROUPS_RECENT;
        if (w_pd->nrecent < DMP_GROUPS_RECENT)
                w_pd->nrecent++;
}

/* An anomaly or threshold pattern for one subject's window value; h is the
 * subject's history, updated. */
void patterns_judge(dmp_groups_t *g, gtask_t *t, const pdef_t *pd, dmp_entry_t *h, int64_t start,
                  const char *subject, size_t sl, const dmp_agg_t *agg) {
        double x = patterns_stat_value(pd->stat, agg);
        if (pd->kind == DMP_PATTERN_ANOMALY) {
                dmp_agg_t *prev = &h->aggs[0];
                double sd = dmp_agg_stddev(prev);
                if (prev->count >= pd->min_count && sd > 0) {
                        double z = (x - prev->mean) / sd;
                        if (fabs(z) > pd->z)
                                pattern_out(g, pd, start, subject, sl, agg, 0, z, prev->mean, sd,
                                            prev->count, z > 0 ? "high" : "low");
                }
                dmp_agg_add(prev, x);
        } else {
                int above = pd->has_above && x > pd->above;
                int below = pd->has_below && x < pd->below;
                int64_t *streak = &h->aggs[1].count;
                if (!above && !below) {
                        *streak = 0;
                } else if (++*streak >= pd->consecutive) {
                        pattern_out(g, pd, start, subject, sl, agg, 0,
                                    above ? x - pd->above : x - pd->below, 0, 0, *streak,
                                    above ? "above" : "below");
                }
        }
        dmp_dirty_mark(&t->dirty, h);
}

static void ktop_admit(dmp_groups_t *g, gtask_t *t, const pdef_t *pd, dmp_entry_t *c);

/* A topk candidate (KTOP) is the key's result (aggs[0]) and, bounded, the
 * count of the candidates ktop_admit dropped for it (aggs[1].count): they
 * count among a pattern's observations. */
static int64_t ktop_dropped(const dmp_entry_t *c) {
        return c->nmeasures >= 2 ? c->aggs[1].count : 0;
}

void dmp_groups_key_result(dmp_groups_t *g, int32_t partition, int wi, int mi, const char *key,
                           size_t key_len, int64_t start, int64_t end, const dmp_agg_t *agg) {
        gtask_t *t = groups_task(g, partition);
        (void)end;
        if (!t)
                return;
        for (int pi = 0; pi < g->npatterns; pi++) {
                const pdef_t *pd = &g->patterns[pi];
                if (pd->gi >= 0 || pd->wi != wi || pd->mi != mi)
                        continue;
                if (pd->kind == DMP_PATTERN_TOPK) {
                        dmp_entry_t *c = dmp_entry_new(0, WIN_ID(KIND_KTOP, pi), start, key,
                                                       key_len, 2);
                        c->aggs[0] = *agg;
                        ktop_admit(g, t, pd, c);
                        g->stats.partials++;
                        dmp_dirty_mark(&t->dirty, c);
                } else {
                        dmp_entry_t *h = groups_entry_get(g, t, &t->hist, WIN_ID(KIND_KHIST, pi), 0, key,
                                                   key_len, 2);
                        patterns_judge(g, t, pd, h, start, key, key_len, agg);
                }
        }
}

/* The topk order: by value (NaN last), then subject bytes. */
static const pdef_t *rank_pd;
static int rank_cmp(const void *x, const void *y) {
        const subject_t *a = x, *b = y;
        int j = rank_pd->gi >= 0 ? rank_pd->gm : 0;
        double va = patterns_stat_value(rank_pd->stat, &a->aggs[j]);
        double vb = patterns_stat_value(rank_pd->stat, &b->aggs[j]);
        if (isnan(va) || isnan(vb)) {
                if (!isnan(va) || !isnan(vb))
                        return isnan(va) ? 1 : -1;
        } else if (va != vb) {
                return (va < vb) == rank_pd->desc ? 1 : -1;
        }
        return key_cmp(a->key, a->len, b->key, b->len);
}

/* A partition keeps at most 2k candidates per topk pattern and window
 * start, and at least its k best (the top k over all partitions is among
 * them: one total order, the value, then the subject's bytes): when a
 * pattern's run reaches 2k, ktop_prune sorts it and retires all but the k
 * best, so each admission costs O(log k) amortized and no scan. A window's
 * final results arrive together at its close (final mode), so they form
 * one run; results of several window starts interleaved (update mode)
 * start new runs and only keep more. */

/* Retires all but the k best of pattern pi's candidates in t's run; the
 * best one takes over their count of dropped candidates (observations). */
static void ktop_prune(dmp_groups_t *g, gtask_t *t, const pdef_t *pd, int pi) {
        if (g->nranked < t->krun_cnt[pi]) {
                g->nranked = t->krun_cnt[pi];
                g->ranked = dmp_realloc(g->ranked, g->nranked * sizeof(*g->ranked));
        }
        ranked_t *r = g->ranked;
        size_t m = 0;
        for (size_t i = t->krun_begin; i < t->nktop; i++) {
                dmp_entry_t *o = t->ktop[i];
                if ((o->win & 0xfff) == pi && m < t->krun_cnt[pi])
                        r[m++] = (ranked_t){{dmp_entry_key(o), o->key_len, o->aggs}, i};
        }
        rank_pd = pd;
        qsort(r, m, sizeof(*r), rank_cmp);
        int64_t dropped = 0;
        for (size_t j = (size_t)pd->k; j < m; j++) {
                dmp_entry_t *o = t->ktop[r[j].at];
                dropped += 1 + ktop_dropped(o);
                groups_retire(g, t, NULL, o); /* (deleted at the commit if stored) */
                t->ktop[r[j].at] = NULL;
        }
        dmp_entry_t *best = t->ktop[r[0].at];
        if (best->nmeasures >= 2) { /* (always: a run holds no loaded entry) */
                best->aggs[1].count += dropped;
                dmp_dirty_mark(&t->dirty, best);
        }
        size_t keep = t->krun_begin;
        for (size_t i = t->krun_begin; i < t->nktop; i++)
                if (t->ktop[i])
                        t->ktop[keep++] = t->ktop[i];
        t->nktop = keep;
        t->krun_cnt[pi] = (uint32_t)(m < (size_t)pd->k ? m : (size_t)pd->k);
}

/* Adds candidate c (a new KTOP entry of pattern pd's window c->start) to
 * t's list; always keeps it (a later prune may retire it). */
static void ktop_admit(dmp_groups_t *g, gtask_t *t, const pdef_t *pd, dmp_entry_t *c) {
        int pi = c->win & 0xfff;
        if (t->krun_begin > t->nktop || c->start != t->krun_start) {
                t->krun_begin = t->nktop;
                t->krun_start = c->start;
                memset(t->krun_cnt, 0, sizeof(t->krun_cnt));
        }
        if (t->krun_cnt[pi] >= 2 * (uint32_t)pd->k)
                ktop_prune(g, t, pd, pi);
        patterns_ktop_push(t, c);
        t->krun_cnt[pi]++;
}

/* observations: the subjects ranked (n, and the candidates ktop_admit dropped). */
void patterns_topk(dmp_groups_t *g, const pdef_t *pd, int64_t start, subject_t *subj, size_t n,
                 int64_t observations) {
        rank_pd = pd; /* qsort has no context argument in C11 */
        qsort(subj, n, sizeof(*subj), rank_cmp);
        int j = pd->gi >= 0 ? pd->gm : 0;
        for (size_t r = 0; r < n && r < (size_t)pd->k; r++) {
                const dmp_agg_t *a = &subj[r].aggs[j];
                if (a->count == 0)
                        continue;
                pattern_out(g, pd, start, subj[r].key, subj[r].len, a, (int)r + 1,
                            patterns_stat_value(pd->stat, a), 0, 0, observations, pd->desc ? "desc" : "asc");
        }
}

static int ktop_cmp(const void *x, const void *y) {
        const dmp_entry_t *a = ((const closing_t *)x)->en, *b = ((const closing_t *)y)->en;
        if (a->win != b->win)
                return a->win < b->win ? -1 : 1;
        if (a->start != b->start)
                return a->start < b->start ? -1 : 1;
        return 0;
}

/* Topk over keys: the candidates of windows closed at the mark. */
void patterns_close_key_topk(dmp_groups_t *g) {
        closing_t *c = NULL;
        size_t n = 0, cap = 0;
        gtask_t *t;
        DMP_TASK_FOREACH(g, t) {
                size_t keep = 0;
                for (size_t i = 0; i < t->nktop; i++) {
                        dmp_entry_t *en = t->ktop[i];
                        const dmp_window_t *w = &g->windows[g->patterns[en->win & 0xfff].wi];
                        if (en->start + w->size + w->grace > g->mark) {
                                t->ktop[keep++] = en;
                                continue;
                        }
                        if (n == cap) {
                                cap = cap ? cap * 2 : 64;
                                c = dmp_realloc(c, cap * sizeof(*c));
                        }
                        c[n++] = (closing_t){t, en};
                }
                t->nktop = keep;
                t->krun_begin = SIZE_MAX;
        }
        if (n > 1)
                qsort(c, n, sizeof(*c), ktop_cmp);
        subject_t *subj = dmp_calloc(n ? n : 1, sizeof(*subj));
        for (size_t i = 0; i < n;) {
                const dmp_entry_t *first = c[i].en;
                size_t ns = 0, j = i;
                int64_t obs = 0;
                for (; j < n && c[j].en->win == first->win && c[j].en->start == first->start; j++) {
                        subj[ns++] = (subject_t){dmp_entry_key(c[j].en), c[j].en->key_len,
                                                 c[j].en->aggs};
                        obs += 1 + ktop_dropped(c[j].en);
                }
                patterns_topk(g, &g->patterns[first->win & 0xfff], first->start, subj, ns, obs);
                for (; i < j; i++)
                        groups_retire(g, c[i].t, NULL, c[i].en);
        }
        free(subj);
        free(c);
}

int dmp_groups_recent_patterns(dmp_groups_t *g, const char *name, int n,
                               void (*cb)(void *opaque, const dmp_pattern_result_t *r),
                               void *opaque) {
        for (int i = 0; i < g->npatterns; i++) {
                const pdef_t *pd = &g->patterns[i];
                if (strcmp(pd->name, name))
                        continue;
                if (n > pd->nrecent)
                        n = pd->nrecent;
                for (int k = n; k > 0; k--) {
                        int at = (pd->next_recent - k + DMP_GROUPS_RECENT) % DMP_GROUPS_RECENT;
                        cb(opaque, &pd->recent[at].r);
                }
                return n;
        }
        return -1;
}
