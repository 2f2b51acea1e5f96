/* The processing engine: construction, partitions, the hot path,
 * tumbling and hopping windows, commits. See engine.h for the contract and
 * engine_int.h for a partition's state and the entry lifecycle.
 *
 * Threads: the processing thread only. */
#include "engine.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder.h"
#include "engine_int.h"
#include "groups.h"
#include "log.h"
#include "measure.h"
#include "membudget.h"
#include "store.h"
#include "util.h"
#include "wtable.h"

/* Event times beyond +-2^60 ms (36 million years) are rejected. */
#define DMP_MAX_ABS_TIME_MS (INT64_C(1) << 60)

/* ---- compilation of the pipeline definition ---- */

static int compile_measures(dmp_engine_t *e, dmp_conf_t *conf) {
        int errors = 0;
        char err[512];
        for (int i = 0; i < conf->measure_cnt; i++) {
                dmp_measure_conf_t *mc = &conf->measures[i];
                int line = mc->line[0] ? mc->line[0] : mc->section_line;
                dmp_measure_t *m = &e->measures[e->nmeasures];
                if (dmp_measure_parse(m, mc->name, mc->expr, err, sizeof(err))) {
                        dmp_conf_error(conf, line, "[measure %s] expr: %s", mc->name, err);
                        errors++;
                        continue;
                }
                e->nmeasures++;
                for (int t = 0; t < m->nterms; t++) {
                        m->terms[t].slot = dmp_decoder_num_field(e->decoder, m->terms[t].field,
                                                                 err, sizeof(err));
                        if (m->terms[t].slot >= 0)
                                continue;
                        /* Suggest the nearest field name of the schema. */
                        const char *best = NULL, *n;
                        int best_d = 4;
                        for (int f = 0; (n = dmp_decoder_field_name(e->decoder, f)); f++) {
                                int d = dmp_edit_distance(m->terms[t].field, n);
                                if (d < best_d) {
                                        best_d = d;
                                        best = n;
                                }
                        }
                        dmp_conf_error(conf, line, "[measure %s] %s%s%s%s", mc->name, err,
                                       best ? " (did you mean \"" : "", best ? best : "",
                                       best ? "\"?)" : "");
                        errors++;
                }
        }
        return errors;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) {
        return v < lo ? lo : v > hi ? hi : v;
}

static void compile_windows(dmp_engine_t *e, const dmp_conf_t *conf) {
        for (int i = 0; i < conf->window_cnt; i++) {
                const dmp_window_conf_t *wc = &conf->windows[i];
                dmp_window_t *w = &e->windows[e->nwindows];
                w->name = dmp_strdup(wc->name);
                w->kind = wc->type;
                w->size = wc->size_ms;
                w->advance = w->kind == DMP_WINDOW_HOPPING ? wc->advance_ms : wc->size_ms;
                if (w->kind == DMP_WINDOW_SLIDING) /* [s, s+D] inclusive is [s, s+D+1) */
                        w->size = wc->size_ms + 1;
                w->gap = wc->gap_ms;
                w->grace = wc->grace_ms;
                w->retention = wc->retention_ms;
                w->emit = wc->emit;
                /* Session / sliding keys are scheduled in buckets of this
                 * width by their next close time; a bucket is checked at
                 * each stream time advance once its first ms is reached. */
                e->quantum[e->nwindows] = clamp64(
                        (w->kind == DMP_WINDOW_SESSION ? w->gap : w->size) / 8, 1, 1000);
                /* (validated: the conf's measure indexes are the engine's) */
                w->nmeasures = 0;
                const char *s = wc->measures, *n;
                size_t l;
                int mi;
                while (dmp_list_next(&s, &n, &l)) {
                        int dup = 0;
                        if ((mi = dmp_conf_find_measure(conf, n, l)) < 0)
                                continue;
                        /* once each: a longer list overflowed measures[]
                         * (fuzz finding, docs/FUZZING.md) */
                        for (int j = 0; j < w->nmeasures; j++)
                                dup |= w->measures[j] == mi;
                        if (!dup)
                                w->measures[w->nmeasures++] = mi;
                }
                if (w->nmeasures == 0) /* default: every measure */
                        for (int m = 0; m < e->nmeasures; m++)
                                w->measures[w->nmeasures++] = m;
                e->nwindows++;
        }
}

/* A hash of everything that gives stored state its meaning. */
static uint64_t pipeline_fingerprint(const dmp_engine_t *e) {
        char buf[8192];
        size_t n = 0;
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "v2|%s|%s|%s|", e->conf->input.topic,
                              e->conf->input.key_field, e->conf->input.time_field);
        for (int i = 0; i < e->nmeasures && n < sizeof(buf); i++) {
                n += (size_t)snprintf(buf + n, sizeof(buf) - n, "m:%s", e->measures[i].name);
                for (int t = 0; t < e->measures[i].nterms && n < sizeof(buf); t++)
                        n += (size_t)snprintf(buf + n, sizeof(buf) - n, ",%.17g*%s",
                                              e->measures[i].terms[t].coef,
                                              e->measures[i].terms[t].field);
        }
        for (int i = 0; i < e->nwindows && n < sizeof(buf); i++) {
                const dmp_window_t *w = &e->windows[i];
                n += (size_t)snprintf(buf + n, sizeof(buf) - n,
                                      "|w:%s,%d,%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64,
                                      w->name, (int)w->kind, w->size, w->advance, w->gap,
                                      w->grace);
                for (int m = 0; m < w->nmeasures && n < sizeof(buf); m++)
                        n += (size_t)snprintf(buf + n, sizeof(buf) - n, ",%d", w->measures[m]);
        }
        if (e->groups && n < sizeof(buf)) /* absent: the fingerprint of before groups */
                n += dmp_groups_describe(e->groups, buf + n, sizeof(buf) - n);
        if (n > sizeof(buf))
                n = sizeof(buf);
        return dmp_hash_stable(buf, n, 0);
}

/* Compiles the pipeline definition into e; returns the number of
 * configuration errors added to conf. */
static int engine_compile(dmp_engine_t *e, dmp_conf_t *conf) {
        char err[512];
        int sline = dmp_conf_line(conf, "input", "schema");
        /* format confluent: writer schemas come by id (see the daemon) */
        int confluent = conf->input.format == DMP_FORMAT_CONFLUENT;
        char *schema = NULL;
        if (conf->input.schema && *conf->input.schema &&
            !(schema = dmp_read_file(conf->input.schema, NULL, err, sizeof(err)))) {
                dmp_conf_error(conf, sline, "[input] schema: %s", err);
                return 1;
        }
        const char *rpath = conf->input.reader_schema;
        int rline = dmp_conf_line(conf, "input", "reader.schema");
        char *reader = *rpath ? dmp_read_file(rpath, NULL, err, sizeof(err)) : NULL;
        if (*rpath && !reader) {
                dmp_conf_error(conf, rline, "[input] reader.schema: %s", err);
                free(schema);
                return 1;
        }
        if (!schema && !reader) {
                dmp_conf_error(conf, 0, "[input] schema or reader.schema is required");
                return 1;
        }
        int bad = 0;
        e->decoder = dmp_decoder_new(reader ? reader : schema, conf->input.key_field,
                                     conf->input.time_field, err, sizeof(err));
        if (!e->decoder) {
                dmp_conf_error(conf, reader ? rline : sline, "[input] %s: %s",
                               reader ? rpath : conf->input.schema, err);
                bad = 1;
        } else if (reader && schema && !confluent &&
                   dmp_decoder_set_writer(e->decoder, schema, err, sizeof(err))) {
                dmp_conf_error(conf, sline, "[input] records of %s cannot be read as %s: %s",
                               conf->input.schema, rpath, err);
                bad = 1;
        }
        free(schema);
        free(reader);
        if (bad)
                return 1;
        dmp_decoder_reject_nonfinite(e->decoder, conf->input.nonfinite == DMP_NONFINITE_DEAD_LETTER);
        int errors = compile_measures(e, conf);
        if (!errors)
                compile_windows(e, conf);
        dmp_groups_sink_t gs = {e->sink.group, e->sink.pattern, e->sink.opaque};
        if (!errors)
                e->groups = dmp_groups_new(conf, e->decoder, e->measures, e->nmeasures, e->windows,
                                           e->nwindows, &gs, &errors);
        return errors;
}

dmp_engine_t *dmp_engine_compile(dmp_conf_t *conf) {
        dmp_engine_t *e = dmp_calloc(1, sizeof(*e));
        e->conf = conf;
        if (engine_compile(e, conf)) {
                dmp_engine_destroy(e);
                return NULL;
        }
        return e;
}

dmp_store_t *dmp_engine_store(dmp_engine_t *e) {
        return e->store;
}

uint64_t dmp_engine_fingerprint(const dmp_engine_t *e) {
        return pipeline_fingerprint(e);
}

int dmp_engine_check(dmp_conf_t *conf) {
        dmp_engine_t *e = dmp_calloc(1, sizeof(*e));
        e->conf = conf;
        int errors = engine_compile(e, conf);
        dmp_engine_destroy(e);
        return errors;
}

dmp_engine_t *dmp_engine_new(dmp_conf_t *conf, const dmp_engine_sink_t *sink,
                             int *config_error, char *errstr, size_t errstr_size) {
        dmp_engine_t *e = dmp_calloc(1, sizeof(*e));
        e->conf = conf;
        e->sink = *sink;
        *config_error = 0;
        if (engine_compile(e, conf)) {
                *config_error = 1;
                snprintf(errstr, errstr_size, "invalid configuration");
                dmp_engine_destroy(e);
                return NULL;
        }
        uint64_t budget = conf->state.memory_budget > 0 ? (uint64_t)conf->state.memory_budget
                                                        : dmp_mem_budget_default();
        dmp_mem_split(budget, &e->mem);
        e->stats.mem_budget = budget;
        dmp_store_opts_t so = {.block_cache_bytes = (size_t)e->mem.block_cache,
                               .memtable_bytes = (size_t)e->mem.memtables};
        e->store = dmp_store_open_opts(conf->state.dir, pipeline_fingerprint(e), &so, errstr,
                                       errstr_size);
        if (!e->store) {
                dmp_engine_destroy(e);
                return NULL;
        }
        if (sink->changelog)
                dmp_store_set_log(e->store, sink->changelog, sink->opaque);
        return e;
}

/* ---- entries and buckets ---- */

void engine_entry_free(dmp_entry_t *en) {
        if (en->ext) {
                free(((keystate_t *)en->ext)->items);
                free(en->ext);
        }
        free(en);
}

/* Frees every entry exactly once: open ones are in the table, closed ones in
 * the dirty list, zombies only in buckets; some are in several. */
static void task_free(task_t *t) {
        dmp_entry_t **all = NULL;
        size_t n = 0, cap = 0;
#define COLLECT(en)                                                        \
        do {                                                               \
                if (!((en)->flags & ENTRY_FREEING)) {                      \
                        (en)->flags |= ENTRY_FREEING;                      \
                        if (n == cap)                                      \
                                all = dmp_realloc(all, (cap = cap ? cap * 2 : 64) * sizeof(*all)); \
                        all[n++] = (en);                                   \
                }                                                          \
        } while (0)
        for (size_t i = 0; i < t->dirty.n; i++)
                COLLECT(t->dirty.v[i]);
        for (size_t i = 0; i < t->table.cap; i++)
                if (t->table.slots[i])
                        COLLECT(t->table.slots[i]);
        for (int w = 0; w < DMP_MAX_WINDOWS; w++) {
                for (size_t b = 0; b < t->windows[w].n; b++) {
                        for (size_t i = 0; i < t->windows[w].b[b].n; i++)
                                COLLECT(t->windows[w].b[b].v[i]);
                        free(t->windows[w].b[b].v);
                }
                free(t->windows[w].b);
        }
#undef COLLECT
        for (size_t i = 0; i < n; i++)
                engine_entry_free(all[i]);
        free(all);
        free(t->dirty.v);
        dmp_wtable_clear(&t->table);
        free(t);
}

void dmp_engine_destroy(dmp_engine_t *e) {
        if (!e)
                return;
        task_t *t;
        DMP_TASK_FOREACH(e, t)
                task_free(t);
        free(e->tasks);
        for (int i = 0; i < e->nmeasures; i++)
                dmp_measure_clear(&e->measures[i]);
        for (int i = 0; i < e->nwindows; i++)
                free(e->windows[i].name);
        dmp_groups_destroy(e->groups);
        dmp_decoder_destroy(e->decoder);
        dmp_store_close(e->store);
        free(e->valbuf);
        free(e);
}

/* Takes an entry out of the table: it is deleted from the store at the
 * next commit. */
void engine_retire(task_t *t, dmp_entry_t *en) {
        assert(!(en->flags & DMP_ENTRY_CLOSED)); /* retired once */
        dmp_wtable_remove(&t->table, en);
        en->flags |= DMP_ENTRY_CLOSED;
        dmp_dirty_mark(&t->dirty, en);
}

/* A closed entry the store never held and nothing emits again: the commit
 * would only free it, so release_dead frees such entries before (at high
 * rates a commit interval closes hundreds of thousands: docs/STATE.md
 * "Closed windows"). */
static int dirty_dead(const dmp_engine_t *e, const dmp_entry_t *en) {
        return dmp_entry_closed_unstored(en) && !en->ext &&
               (e->windows[en->win].emit == DMP_EMIT_FINAL || !(en->flags & DMP_ENTRY_CHANGED));
}

typedef struct release_ctx {
        dmp_engine_t *e;
        task_t *t;
} release_ctx_t;

/* dmp_dirty_compact's release: frees en if it is dead (dirty_dead). */
static int release_dead(void *opaque, dmp_entry_t *en) {
        release_ctx_t *rc = opaque;
        if (!dirty_dead(rc->e, en))
                return 0;
        rc->t->entry_bytes -= engine_entry_bytes(rc->e, en);
        engine_entry_free(en);
        return 1;
}

/* Returns the bucket of `start` in bl, creating it in order if needed. */
bucket_t *engine_bucket_get(bucket_list_t *bl, int64_t start) {
        size_t i = bl->n;
        while (i > 0 && bl->b[i - 1].start > start) /* new buckets are usually last */
                i--;
        if (i > 0 && bl->b[i - 1].start == start)
                return &bl->b[i - 1];
        if (bl->n == bl->cap) {
                bl->cap = bl->cap ? bl->cap * 2 : 8;
                bl->b = dmp_realloc(bl->b, bl->cap * sizeof(*bl->b));
        }
        memmove(&bl->b[i + 1], &bl->b[i], (bl->n - i) * sizeof(*bl->b));
        bl->b[i] = (bucket_t){.start = start};
        bl->n++;
        bl->due_known = 0;
        assert((i == 0 || bl->b[i - 1].start < start) &&
               (i + 1 == bl->n || bl->b[i + 1].start > start)); /* sorted, unique */
        return &bl->b[i];
}

bucket_t *engine_bucket_find(bucket_list_t *bl, int64_t start) {
        for (size_t i = bl->n; i > 0; i--) {
                if (bl->b[i - 1].start == start)
                        return &bl->b[i - 1];
                if (bl->b[i - 1].start < start)
                        break;
        }
        return NULL;
}

void engine_bucket_push(bucket_t *b, dmp_entry_t *en) {
        if (b->n == b->cap) {
                b->cap = b->cap ? b->cap * 2 : 16;
                b->v = dmp_realloc(b->v, b->cap * sizeof(*b->v));
        }
        b->v[b->n++] = en;
}

/* Removes the first n buckets of bl (their vectors must be freed). */
void engine_buckets_drop_front(bucket_list_t *bl, size_t n) {
        if (!n)
                return;
        memmove(bl->b, bl->b + n, (bl->n - n) * sizeof(*bl->b));
        bl->n -= n;
}

/* ---- entry encoding in the store ---- */

static unsigned char *valbuf_reserve(dmp_engine_t *e, size_t n) {
        if (n > e->valbuf_cap) {
                e->valbuf_cap = n * 2;
                e->valbuf = dmp_realloc(e->valbuf, e->valbuf_cap);
        }
        return e->valbuf;
}

size_t engine_item_size(const dmp_window_t *w) {
        return KEYED_ITEM_SIZE(w->nmeasures);
}

/* The heap bytes of an entry: the entry with its aggregates and key, and a
 * session / sliding key's state with its item array. Counted in
 * task_t.entry_bytes when an entry is made or grows, uncounted when freed. */
uint64_t engine_entry_bytes(const dmp_engine_t *e, const dmp_entry_t *en) {
        uint64_t n = sizeof(*en) + sizeof(dmp_agg_t) * en->nmeasures + en->key_len;
        if (en->ext)
                n += sizeof(keystate_t) +
                     (uint64_t)((const keystate_t *)en->ext)->cap * engine_item_size(&e->windows[en->win]);
        return n;
}

/* The stored value of an entry (engine_int.h: ENTRY_VERSION_*), in
 * e->valbuf. */
static size_t entry_encode(dmp_engine_t *e, const dmp_entry_t *en, unsigned char **out) {
        unsigned char *p;
        size_t len;
        if (en->ext) {
                const keystate_t *ks = en->ext;
                size_t isz = engine_item_size(&e->windows[en->win]);
                len = ENTRY_KEYSTATE_HEAD_LEN + (size_t)ks->n * isz;
                p = valbuf_reserve(e, len);
                p[0] = e->windows[en->win].kind == DMP_WINDOW_SLIDING ? ENTRY_VERSION_SLIDING
                                                                      : ENTRY_VERSION_KEYSTATE;
                p[1] = 0;
                p[2] = (unsigned char)e->windows[en->win].nmeasures;
                memset(p + 3, 0, 8);
                memcpy(p + 11, &ks->n, 4);
                memcpy(p + ENTRY_KEYSTATE_HEAD_LEN, ks->items, (size_t)ks->n * isz);
        } else {
                len = ENTRY_WINDOW_VALUE_LEN(en->nmeasures);
                p = valbuf_reserve(e, len);
                p[0] = ENTRY_VERSION_WINDOW;
                p[1] = en->flags & DMP_ENTRY_EMITTED;
                p[2] = en->nmeasures;
                memcpy(p + 3, en->aggs, sizeof(dmp_agg_t) * en->nmeasures);
        }
        *out = p;
        return len;
}

int engine_decode_window(const dmp_engine_t *e, int win, int64_t start, const void *val,
                         size_t len, dmp_agg_t *aggs, uint8_t *flags) {
        const unsigned char *v = val;
        if (win < 0 || win >= e->nwindows || len < 3 || v[0] != ENTRY_VERSION_WINDOW ||
            (v[1] & ~DMP_ENTRY_EMITTED) || len != ENTRY_WINDOW_VALUE_LEN(v[2]))
                return -1;
        const dmp_window_t *w = &e->windows[win];
        int late = start == DMP_START_LATE;
        if (v[2] != (late ? 1 : w->nmeasures) || (!late && dmp_window_is_keyed(w)) ||
            (!late && !engine_time_ok(start)))
                return -1;
        memcpy(aggs, v + 3, sizeof(dmp_agg_t) * v[2]);
        *flags = v[1];
        return v[2];
}

/* ---- results ---- */

/* Takes the key's late count since its previous result (and resets it). */
static int64_t take_late(task_t *t, int win, const char *key, size_t kl, uint64_t key_hash) {
        uint64_t h = dmp_entry_hash(key_hash, win, DMP_START_LATE);
        dmp_entry_t *le = dmp_wtable_find(&t->table, h, win, DMP_START_LATE, key, kl);
        if (!le)
                return 0;
        int64_t n = le->aggs[0].count;
        engine_retire(t, le);
        return n;
}

void engine_emit_aggs(dmp_engine_t *e, task_t *t, int win, const char *key, size_t kl,
                      int64_t start, int64_t end, const dmp_agg_t *aggs, int final) {
        const dmp_window_t *w = &e->windows[win];
        int64_t late = take_late(t, win, key, kl, dmp_hash_bytes(key, kl, 0));
        for (int j = 0; j < w->nmeasures; j++) {
                if (aggs[j].count == 0)
                        continue;
                dmp_result_t r = {
                        .window = w,
                        .measure = e->measures[w->measures[j]].name,
                        .key = key,
                        .key_len = kl,
                        .start = start,
                        .end = end,
                        .agg = &aggs[j],
                        .late = late,
                        .final = final,
                };
                e->sink.result(e->sink.opaque, &r);
                e->stats.results_out++;
                if (final && e->groups)
                        dmp_groups_key_result(e->groups, t->partition, win, w->measures[j], key,
                                              kl, start, end, &aggs[j]);
        }
}

static void emit_window_entry(dmp_engine_t *e, task_t *t, dmp_entry_t *en, int final) {
        const dmp_window_t *w = &e->windows[en->win];
        engine_emit_aggs(e, t, en->win, dmp_entry_key(en), en->key_len, en->start, en->start + w->size,
                  en->aggs, final);
}

void engine_count_late(dmp_engine_t *e, task_t *t, int win, const char *key, size_t kl,
                       uint64_t key_hash) {
        e->stats.late_events++;
        e->stats.late_by_window[win]++;
        uint64_t h = dmp_entry_hash(key_hash, win, DMP_START_LATE);
        dmp_entry_t *le = dmp_wtable_find(&t->table, h, win, DMP_START_LATE, key, kl);
        if (!le) {
                le = dmp_entry_new(h, win, DMP_START_LATE, key, kl, 1);
                dmp_wtable_insert(&t->table, le);
                t->entry_bytes += engine_entry_bytes(e, le);
        }
        le->aggs[0].count++;
        dmp_dirty_mark(&t->dirty, le);
}

/* ---- tumbling and hopping windows ---- */

/* Emits the windows closed at the task's stream time, purges those past
 * their retention; close_windows calls it only when bl->due (the next
 * close or purge) has come or is unknown. */
static __attribute__((noinline)) void close_fixed(dmp_engine_t *e, task_t *t, int wi) {
        const dmp_window_t *w = &e->windows[wi];
        bucket_list_t *bl = &t->windows[wi];
        int64_t st = t->stream_time;
        size_t i;
        for (i = 0; i < bl->n && dmp_window_closed(w, bl->b[i].start, st); i++) {
                bucket_t *b = &bl->b[i];
                if (b->emitted)
                        continue;
                if (b->evicted)
                        evict_reload_bucket(e, t, wi, b);
                b->emitted = 1;
                e->stats.windows_closed++;
                for (size_t k = 0; k < b->n; k++) {
                        dmp_entry_t *en = b->v[k];
                        if (w->emit == DMP_EMIT_FINAL)
                                emit_window_entry(e, t, en, 1);
                        else /* its last update, marked final, goes at the commit */
                                en->flags |= DMP_ENTRY_CHANGED;
                        en->flags |= DMP_ENTRY_EMITTED;
                        if (w->retention > 0)
                                dmp_dirty_mark(&t->dirty, en); /* persist the emitted mark */
                }
        }
        size_t purge = 0;
        while (purge < bl->n && bl->b[purge].emitted &&
               bl->b[purge].start + w->size + w->grace + w->retention <= st) {
                bucket_t *b = &bl->b[purge];
                for (size_t k = 0; k < b->n; k++) {
                        engine_retire(t, b->v[k]);
                        t->dirty.dead += (size_t)dirty_dead(e, b->v[k]);
                }
                free(b->v);
                purge++;
        }
        engine_buckets_drop_front(bl, purge);
        dmp_dirty_compact(&t->dirty, release_dead, &(release_ctx_t){e, t});
        /* Buckets before i are emitted (open buckets start after every
         * closed one), so the next work is closing bucket i or purging the
         * first bucket, whichever comes first. */
        i = i > purge ? i - purge : 0;
        bl->due = i < bl->n ? bl->b[i].start + w->size + w->grace : INT64_MAX;
        if (bl->n && bl->b[0].emitted) {
                int64_t purge_at = bl->b[0].start + w->size + w->grace + w->retention;
                if (purge_at < bl->due)
                        bl->due = purge_at;
        }
        bl->due_known = 1;
}

static void fixed_event(dmp_engine_t *e, task_t *t, int wi, int64_t ts, const char *k,
                        size_t kl, uint64_t key_hash, const double *vals, uint64_t defined) {
        const dmp_window_t *w = &e->windows[wi];
        int open = 0;
        bucket_list_t *bl = &t->windows[wi];
        int64_t last = dmp_window_last_start_memo(w, ts, &bl->last_memo);
        for (int64_t s = dmp_window_first_start_memo(w, ts, &bl->first_memo); s <= last;
             s += w->advance) {
                if (dmp_window_closed(w, s, t->stream_time)) {
                        e->stats.late_window_updates++;
                        e->stats.late_instances_by_window[wi]++;
                        continue;
                }
                open = 1;
                uint64_t h = dmp_entry_hash(key_hash, wi, s);
                dmp_entry_t *en = dmp_wtable_find(&t->table, h, wi, s, k, kl);
                if (!en) {
                        bucket_t *b = t->evicted ? engine_bucket_find(&t->windows[wi], s) : NULL;
                        if (b && b->evicted)
                                en = evict_reload_entry(e, t, b, wi, k, kl, s, h);
                }
                if (!en) {
                        en = dmp_entry_new(h, wi, s, k, kl, w->nmeasures);
                        dmp_wtable_insert(&t->table, en);
                        t->entry_bytes += engine_entry_bytes(e, en);
                        engine_bucket_push(engine_bucket_get(&t->windows[wi], s), en);
                }
                for (int j = 0; j < w->nmeasures; j++)
                        if (defined & (1ULL << w->measures[j]))
                                dmp_agg_add(&en->aggs[j], vals[w->measures[j]]);
                en->flags |= DMP_ENTRY_CHANGED;
                dmp_dirty_mark(&t->dirty, en);
        }
        if (!open)
                engine_count_late(e, t, wi, k, kl, key_hash);
}

static inline __attribute__((always_inline)) void close_windows(dmp_engine_t *e, task_t *t) {
        for (int wi = 0; wi < e->nwindows; wi++) {
                if (dmp_window_is_keyed(&e->windows[wi]))
                        keyed_close(e, t, wi);
                else if (!t->windows[wi].due_known || t->stream_time >= t->windows[wi].due)
                        close_fixed(e, t, wi); /* (the test inline: runs per event) */
        }
}

/* ---- partitions ---- */

void engine_state_read_failed(dmp_engine_t *e, task_t *t, const char *what) {
        if (!e->failure[0])
                snprintf(e->failure, sizeof(e->failure), "partition %d: %s", (int)t->partition,
                         what);
        dmp_error("partition %d: %s", (int)t->partition, what);
}

int engine_load_entry(void *opaque, int win, const char *key, size_t key_len, int64_t start,
                      const void *val, size_t len) {
        load_ctx_t *lc = opaque;
        dmp_engine_t *e = lc->e;
        if (win < 0 || win >= e->nwindows || len < 1)
                return -1;
        uint64_t h = dmp_entry_hash(dmp_hash_bytes(key, key_len, 0), win, start);
        if (*(const unsigned char *)val == ENTRY_VERSION_KEYSTATE ||
            *(const unsigned char *)val == ENTRY_VERSION_SLIDING)
                return keyed_load(lc, win, key, key_len, h, val, len);
        dmp_agg_t aggs[DMP_MAX_MEASURES];
        uint8_t flags;
        int naggs = engine_decode_window(e, win, start, val, len, aggs, &flags);
        if (naggs < 0)
                return -1;
        int late = start == DMP_START_LATE;
        if (lc->lazy && !late && !(flags & DMP_ENTRY_EMITTED) &&
            lc->t->entry_bytes > e->mem.entries / 2) {
                /* Over half the share while opening a partition: leave it in
                 * the store, to be reloaded on touch or close (eviction). */
                engine_bucket_get(&lc->t->windows[win], start)->evicted++;
                lc->t->evicted++;
                return 0;
        }
        dmp_entry_t *en = dmp_entry_new(h, win, start, key, key_len, naggs);
        lc->t->entry_bytes += engine_entry_bytes(e, en);
        memcpy(en->aggs, aggs, (size_t)naggs * sizeof(dmp_agg_t));
        en->flags = DMP_ENTRY_PERSISTED | (flags & DMP_ENTRY_EMITTED);
        dmp_wtable_insert(&lc->t->table, en);
        if (!late) {
                bucket_t *b = engine_bucket_get(&lc->t->windows[win], start);
                engine_bucket_push(b, en);
                if (en->flags & DMP_ENTRY_EMITTED)
                        b->emitted = 1;
        }
        return 0;
}

int dmp_engine_partition_open(dmp_engine_t *e, int32_t partition, int64_t *next_offset,
                              char *errstr, size_t errstr_size) {
        task_t *t = engine_task(e, partition);
        if (t) {
                *next_offset = t->next_offset;
                return 0;
        }
        if (partition < 0) {
                snprintf(errstr, errstr_size, "invalid partition %d", (int)partition);
                return -1;
        }
        if (partition >= e->ntasks) {
                e->tasks = dmp_realloc(e->tasks, sizeof(*e->tasks) * (size_t)(partition + 1));
                memset(e->tasks + e->ntasks, 0,
                       sizeof(*e->tasks) * (size_t)(partition + 1 - e->ntasks));
                e->ntasks = partition + 1;
        }
        t = dmp_calloc(1, sizeof(*t));
        t->partition = partition;
        t->next_offset = -1;
        t->stream_time = INT64_MIN;
        for (int wi = 0; wi < DMP_MAX_WINDOWS; wi++)
                t->sliding_top[wi] = INT64_MIN;
        dmp_wtable_init(&t->table);
        int r = dmp_store_get_meta(e->store, partition, &t->next_offset, &t->stream_time, errstr,
                                   errstr_size);
        if (r > 0 && (t->next_offset < -1 ||
                      (t->stream_time != INT64_MIN && !engine_time_ok(t->stream_time)))) {
                snprintf(errstr, errstr_size, "partition %d: corrupt metadata (offset %" PRId64
                         ", stream time %" PRId64 ")", (int)partition, t->next_offset,
                         t->stream_time);
                r = -1;
        }
        if (r < 0) {
                task_free(t);
                return -1;
        }
        load_ctx_t lc = {.e = e, .t = t, .lazy = 1};
        long n = dmp_store_scan(e->store, partition, engine_load_entry, &lc, errstr, errstr_size);
        if (n < 0 || (e->groups && dmp_groups_partition_open(e->groups, e->store, partition,
                                                             errstr, errstr_size))) {
                task_free(t);
                return -1;
        }
        t->idle_base_st = t->stream_time;
        t->idle_base_wall = dmp_now_ms();
        e->tasks[partition] = t;
        dmp_info("partition %d: restored %ld state entries, resuming at offset %" PRId64
                 ", stream time %" PRId64, (int)partition, n, t->next_offset,
                 t->stream_time == INT64_MIN ? (int64_t)-1 : t->stream_time);
        *next_offset = t->next_offset;
        return 0;
}

/* Restore batches are written every RESTORE_BATCH records, so that a large
 * restore does not hold its whole state in one batch. */
#define RESTORE_BATCH 50000

int dmp_engine_restore_begin(dmp_engine_t *e, int32_t partition, int64_t *checkpoint,
                             int *local, char *errstr, size_t errstr_size) {
        int64_t next, st;
        assert(!engine_task(e, partition));
        int r = dmp_store_get_meta(e->store, partition, &next, &st, errstr, errstr_size);
        if (r < 0)
                return -1;
        *local = r;
        e->restored = 0;
        return dmp_store_get_checkpoint(e->store, partition, checkpoint, errstr, errstr_size);
}

void dmp_engine_restore_drop(dmp_engine_t *e, int32_t partition) {
        dmp_store_drop_partition(e->store, partition);
}

int dmp_engine_restore_record(dmp_engine_t *e, int32_t partition, const void *key,
                              size_t key_len, const void *val, size_t val_len, char *errstr,
                              size_t errstr_size) {
        const unsigned char *k = key;
        if (key_len < 1) {
                snprintf(errstr, errstr_size, "partition %d: a changelog record without a key",
                         (int)partition);
                return -1;
        }
        if (dmp_store_apply_logged(e->store, partition, k[0], k + 1, key_len - 1, val, val_len,
                                   errstr, errstr_size))
                return -1;
        if (++e->restored % RESTORE_BATCH == 0)
                return dmp_store_commit_async(e->store, errstr, errstr_size);
        return 0;
}

int dmp_engine_restore_end(dmp_engine_t *e, int32_t partition, int64_t next, char *errstr,
                           size_t errstr_size) {
        dmp_store_put_checkpoint(e->store, partition, next);
        return dmp_store_commit(e->store, errstr, errstr_size);
}

long dmp_engine_relog(dmp_engine_t *e, int32_t partition, char *errstr, size_t errstr_size) {
        if (!e->sink.changelog)
                return 0;
        return dmp_store_replay(e->store, partition, e->sink.changelog, e->sink.opaque, errstr,
                                errstr_size);
}

void dmp_engine_partition_close(dmp_engine_t *e, int32_t partition) {
        task_t *t = engine_task(e, partition);
        if (!t)
                return;
        task_free(t);
        e->tasks[partition] = NULL;
        if (e->groups)
                dmp_groups_partition_close(e->groups, partition);
}

int dmp_engine_partition_discard(dmp_engine_t *e, int32_t partition, char *errstr,
                                 size_t errstr_size) {
        int64_t next;
        dmp_engine_partition_close(e, partition);
        if (dmp_store_sync(e->store, errstr, errstr_size))
                return -1;
        dmp_store_drop_partition(e->store, partition);
        if (dmp_store_commit(e->store, errstr, errstr_size))
                return -1;
        return dmp_engine_partition_open(e, partition, &next, errstr, errstr_size);
}

/* ---- the hot path ---- */

int dmp_engine_wants(const dmp_engine_t *e, int32_t partition, int64_t offset) {
        const task_t *t = engine_task(e, partition);
        return t && offset >= t->next_offset;
}

int dmp_engine_process(dmp_engine_t *e, int32_t partition, int64_t offset, const void *key,
                       size_t key_len, int64_t kafka_ts, const void *payload, size_t len,
                       char *errstr, size_t errstr_size) {
        task_t *t = engine_task(e, partition);
        e->last_error = DMP_DECODE_OK;
        if (!t) {
                snprintf(errstr, errstr_size, "partition %d is not open", (int)partition);
                return -1;
        }
        int64_t prev_offset = t->next_offset;
        t->next_offset = offset + 1;
        t->meta_dirty = 1;
        e->stats.events_in++;
        t->events++;

        dmp_event_t ev;
        if (dmp_decoder_decode(e->decoder, payload, len, &ev, errstr, errstr_size)) {
                e->last_error = dmp_decoder_last_error(e->decoder);
                if (e->last_error == DMP_DECODE_UNAVAILABLE) { /* not consumed: retried */
                        t->next_offset = prev_offset;
                        e->stats.events_in--;
                        t->events--;
                        return -1;
                }
                e->stats.decode_errors++;
                return -1;
        }
        const char *k = *e->conf->input.key_field ? ev.key : (key ? key : "");
        size_t kl = *e->conf->input.key_field ? ev.key_len : (key ? key_len : 0);
        if (kl > DMP_KEY_MAX || (e->groups && dmp_groups_values_too_long(e->groups, &ev, errstr,
                                                                          errstr_size))) {
                if (kl > DMP_KEY_MAX) /* (never cut: keys that differ beyond would merge) */
                        snprintf(errstr, errstr_size, "the key is %zu bytes long; at most %d "
                                 "are kept in state", kl, DMP_KEY_MAX);
                e->last_error = DMP_DECODE_KEY_TOO_LONG;
                e->stats.decode_errors++;
                return -1;
        }
        int64_t ts = ev.has_time ? ev.time_ms : kafka_ts;
        if (ts < -DMP_MAX_ABS_TIME_MS || ts > DMP_MAX_ABS_TIME_MS) {
                /* keeps window arithmetic far from int64 overflow */
                snprintf(errstr, errstr_size, "event time %" PRId64 " is out of range", ts);
                e->last_error = DMP_DECODE_TIME_RANGE;
                e->stats.decode_errors++;
                return -1;
        }

        int advanced = 0;
        int64_t st_before = t->stream_time;
        if (ts > t->stream_time) {
                t->stream_time = ts;
                advanced = 1;
        }
        if (e->conf->input.idle_timeout_ms > 0) { /* a clock read per event otherwise */
                t->idle_base_st = t->stream_time;
                t->idle_base_wall = dmp_now_ms();
        }

        double vals[DMP_MAX_MEASURES];
        uint64_t defined = 0;
        for (int m = 0; m < e->nmeasures; m++) {
                if (dmp_measure_eval(&e->measures[m], ev.num, ev.defined, &vals[m]))
                        defined |= 1ULL << m;
                else
                        e->stats.measure_undefined++;
        }

        /* Order: the stream time advances, the windows it closes are
         * emitted, then the event updates its open windows or is late. */
        if (advanced)
                close_windows(e, t);
        uint64_t key_hash = dmp_hash_bytes(k, kl, 0);
        uint32_t late_mask = 0;
        for (int wi = 0; wi < e->nwindows; wi++) {
                uint64_t late_before = e->stats.late_by_window[wi];
                switch (e->windows[wi].kind) {
                case DMP_WINDOW_TUMBLING:
                case DMP_WINDOW_HOPPING:
                        fixed_event(e, t, wi, ts, k, kl, key_hash, vals, defined);
                        break;
                case DMP_WINDOW_SESSION:
                        keyed_session_event(e, t, wi, ts, st_before, k, kl, key_hash, vals,
                                            defined);
                        break;
                case DMP_WINDOW_SLIDING:
                        keyed_sliding_event(e, t, wi, ts, k, kl, key_hash, vals, defined);
                        break;
                }
                if (e->stats.late_by_window[wi] != late_before)
                        late_mask |= 1u << wi;
        }
        if (e->groups)
                dmp_groups_event(e->groups, partition, t->stream_time, &ev, ts, vals, defined);
        if (late_mask && e->sink.late) {
                dmp_late_record_t lr = {partition, offset, late_mask};
                e->sink.late(e->sink.opaque, &lr);
        }
        return 0;
}

void dmp_engine_idle_tick(dmp_engine_t *e, int64_t now_ms, int64_t idle_timeout_ms) {
        task_t *t;
        if (!e->sink.caught_up)
                return;
        DMP_TASK_FOREACH(e, t) {
                if (t->idle_base_st == INT64_MIN || now_ms - t->idle_base_wall < idle_timeout_ms ||
                    !e->sink.caught_up(e->sink.opaque, t->partition, t->next_offset))
                        continue;
                int64_t st = t->idle_base_st + (now_ms - t->idle_base_wall);
                if (st <= t->stream_time)
                        continue;
                t->stream_time = st;
                t->meta_dirty = 1;
                e->stats.idle_advances++;
                close_windows(e, t);
        }
}

/* The least stream time of the open partitions (INT64_MIN: none): every
 * window that closes by it has closed on all of them. A partition without
 * any event holds it back, unless it is known to be empty (read to its end:
 * the caught-up callback), so that its first records are not too late. */
static int64_t instance_watermark(const dmp_engine_t *e) {
        int64_t wm = INT64_MAX;
        task_t *t;
        DMP_TASK_FOREACH(e, t) {
                if (t->stream_time == INT64_MIN) {
                        if (e->sink.caught_up &&
                            !e->sink.caught_up(e->sink.opaque, t->partition, t->next_offset))
                                return INT64_MIN;
                        continue;
                }
                if (t->stream_time < wm)
                        wm = t->stream_time;
        }
        return wm == INT64_MAX ? INT64_MIN : wm;
}

void dmp_engine_emit_updates(dmp_engine_t *e) {
        task_t *t;
        DMP_TASK_FOREACH(e, t) {
                for (size_t i = 0; i < t->dirty.n; i++) {
                        dmp_entry_t *en = t->dirty.v[i];
                        if (!(en->flags & DMP_ENTRY_CHANGED))
                                continue;
                        en->flags &= (uint8_t)~DMP_ENTRY_CHANGED;
                        const dmp_window_t *w = &e->windows[en->win];
                        if (w->emit != DMP_EMIT_UPDATE)
                                continue;
                        if (en->ext) {
                                if (!(en->flags & DMP_ENTRY_CLOSED))
                                        keyed_emit_updates(e, t, en);
                        } else {
                                emit_window_entry(e, t, en,
                                                  dmp_window_closed(w, en->start, t->stream_time));
                        }
                }
        }
}

void dmp_engine_emit_groups(dmp_engine_t *e) {
        if (e->groups)
                dmp_groups_emit(e->groups, instance_watermark(e));
}

int dmp_engine_sync(dmp_engine_t *e, char *errstr, size_t errstr_size) {
        return dmp_store_sync(e->store, errstr, errstr_size);
}

int dmp_engine_commit(dmp_engine_t *e, char *errstr, size_t errstr_size) {
        if (dmp_engine_commit_prepare(e, errstr, errstr_size))
                return -1;
        return dmp_engine_commit_write(e, errstr, errstr_size);
}

int dmp_engine_commit_prepare(dmp_engine_t *e, char *errstr, size_t errstr_size) {
        if (e->failure[0]) { /* state the engine needed could not be read */
                snprintf(errstr, errstr_size, "%s", e->failure);
                return -1;
        }
        task_t *t;
        DMP_TASK_FOREACH(e, t) {
                /* Each dirty entry is in the list once (DMP_ENTRY_DIRTY), so it
                 * is written once per commit; unsorted (docs/PERFORMANCE.md). */
                int32_t p = t->partition;
                for (size_t i = 0; i < t->dirty.n; i++) {
                        dmp_entry_t *en = t->dirty.v[i];
                        assert(en->flags & DMP_ENTRY_DIRTY);
                        if (en->flags & DMP_ENTRY_CLOSED) {
                                if (en->flags & DMP_ENTRY_PERSISTED)
                                        dmp_store_delete_agg(e->store, p, en->win,
                                                             dmp_entry_key(en), en->key_len,
                                                             en->start);
                        } else {
                                unsigned char *v;
                                size_t vl = entry_encode(e, en, &v);
                                dmp_store_put_entry(e->store, p, en->win, dmp_entry_key(en),
                                                    en->key_len, en->start, v, vl);
                        }
                }
                if (t->meta_dirty)
                        dmp_store_put_meta(e->store, p, t->next_offset, t->stream_time);
        }
        if (e->groups)
                dmp_groups_persist(e->groups, e->store);
        return 0;
}

void dmp_engine_commit_checkpoint(dmp_engine_t *e, int32_t partition, int64_t offset) {
        dmp_store_put_checkpoint(e->store, partition, offset);
}

void dmp_engine_commit_abandon(dmp_engine_t *e) {
        dmp_store_discard(e->store);
}

int dmp_engine_commit_write(dmp_engine_t *e, char *errstr, size_t errstr_size) {
        if (dmp_store_commit_async(e->store, errstr, errstr_size))
                return -1;
        if (e->groups)
                dmp_groups_committed(e->groups);
        task_t *t;
        DMP_TASK_FOREACH(e, t) {
                for (size_t i = 0; i < t->dirty.n; i++) {
                        dmp_entry_t *en = t->dirty.v[i];
                        if (!(en->flags & DMP_ENTRY_CLOSED)) {
                                en->flags = (uint8_t)((en->flags & (DMP_ENTRY_EMITTED |
                                                                    DMP_ENTRY_CHANGED)) |
                                                      DMP_ENTRY_PERSISTED);
                        } else if (en->ext && ks_of(en)->refs > 0) {
                                assert(dmp_window_is_keyed(&e->windows[en->win]));
                                en->flags = DMP_ENTRY_CLOSED | ENTRY_ZOMBIE;
                        } else {
                                t->entry_bytes -= engine_entry_bytes(e, en);
                                engine_entry_free(en);
                        }
                }
                dmp_dirty_clear(&t->dirty);
                t->meta_dirty = 0;
        }
        e->stats.commits++;
        evict_mem_update(e);
        if (e->stats.mem_entries > e->mem.entries)
                evict_after_commit(e);
        uint64_t open = 0;
        DMP_TASK_FOREACH(e, t)
                open += t->table.cnt;
        e->stats.open_entries = open;
        return 0;
}

void dmp_engine_foreach_partition(dmp_engine_t *e, dmp_partition_cb_t *cb, void *opaque) {
        task_t *t;
        DMP_TASK_FOREACH(e, t)
                cb(opaque, t->partition, t->next_offset);
}

const dmp_engine_stats_t *dmp_engine_stats(const dmp_engine_t *e) {
        return &e->stats;
}

dmp_decode_err_t dmp_engine_last_error(const dmp_engine_t *e) {
        return e->last_error;
}

void dmp_engine_set_schema_provider(dmp_engine_t *e, dmp_schema_provider_t *provider,
                                    void *opaque) {
        dmp_decoder_set_confluent(e->decoder, provider, opaque);
        dmp_decoder_set_schema_cache(e->decoder, (size_t)e->conf->input.registry_cache_size);
}

dmp_groups_t *dmp_engine_groups(dmp_engine_t *e) {
        return e->groups;
}

const dmp_groups_stats_t *dmp_engine_groups_stats(const dmp_engine_t *e) {
        return e->groups ? dmp_groups_stats(e->groups) : NULL;
}

int dmp_engine_window_cnt(const dmp_engine_t *e) {
        return e->nwindows;
}

const dmp_window_t *dmp_engine_window(const dmp_engine_t *e, int i) {
        return &e->windows[i];
}

const char *dmp_engine_measure_name(const dmp_engine_t *e, int i) {
        return e->measures[i].name;
}
