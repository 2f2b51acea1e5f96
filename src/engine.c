#include "engine.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder.h"
#include "log.h"
#include "measure.h"
#include "store.h"
#include "util.h"
#include "wtable.h"

/* Event times beyond +-2^60 ms (36 million years) are rejected. */
#define DMP_MAX_ABS_TIME_MS (INT64_C(1) << 60)

/* Entries of one window start, in creation order. */
typedef struct bucket {
        int64_t start;
        dmp_entry_t **v;
        size_t n, cap;
} bucket_t;

/* The windows of one definition in one partition, sorted by start. With a
 * fixed size per definition, end order is start order, so windows close
 * from the front. */
typedef struct bucket_list {
        bucket_t *b;
        size_t n, cap;
} bucket_list_t;

typedef struct task {
        int32_t partition;
        int64_t next_offset; /* -1: none consumed and none stored */
        int64_t stream_time; /* INT64_MIN: no event yet */
        int meta_dirty;
        dmp_wtable_t table;
        bucket_list_t windows[DMP_MAX_WINDOWS];
        dmp_entry_t **dirty; /* entries to write or delete at the next commit */
        size_t ndirty, dirty_cap;
} task_t;

struct dmp_engine {
        dmp_conf_t *conf;
        dmp_decoder_t *decoder;
        dmp_store_t *store;
        dmp_emit_cb_t *emit;
        void *opaque;
        dmp_measure_t measures[DMP_MAX_MEASURES];
        int nmeasures;
        dmp_window_t windows[DMP_MAX_WINDOWS];
        int nwindows;
        task_t **tasks; /* indexed by partition */
        int32_t ntasks;
        dmp_engine_stats_t stats;
        dmp_decode_err_t last_error; /* of the last failed dmp_engine_process */
};

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

static int find_measure(const dmp_engine_t *e, const char *name, size_t len) {
        for (int i = 0; i < e->nmeasures; i++)
                if (strlen(e->measures[i].name) == len && !strncmp(e->measures[i].name, name, len))
                        return i;
        return -1;
}

static void compile_windows(dmp_engine_t *e, const dmp_conf_t *conf) {
        for (int i = 0; i < conf->window_cnt; i++) {
                const dmp_window_conf_t *wc = &conf->windows[i];
                dmp_window_t *w = &e->windows[e->nwindows++];
                w->name = dmp_strdup(wc->name);
                w->kind = !strcmp(wc->type, "hopping") ? DMP_WINDOW_HOPPING : DMP_WINDOW_TUMBLING;
                w->size = wc->size_ms;
                w->advance = w->kind == DMP_WINDOW_HOPPING ? wc->advance_ms : wc->size_ms;
                w->grace = wc->grace_ms;
                w->nmeasures = 0;
                const char *s = wc->measures;
                while (*s) {
                        while (*s == ' ' || *s == ',')
                                s++;
                        size_t l = strcspn(s, ", ");
                        int m;
                        if (l && (m = find_measure(e, s, l)) >= 0)
                                w->measures[w->nmeasures++] = m;
                        s += l;
                }
                if (w->nmeasures == 0) /* default: every measure */
                        for (int m = 0; m < e->nmeasures; m++)
                                w->measures[w->nmeasures++] = m;
        }
}

/* A hash of everything that gives stored state its meaning. */
static uint64_t pipeline_fingerprint(const dmp_engine_t *e) {
        char buf[8192];
        size_t n = 0;
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "v1|%s|%s|%s|", e->conf->input.topic,
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
                                      "|w:%s,%d,%" PRId64 ",%" PRId64 ",%" PRId64, w->name,
                                      (int)w->kind, w->size, w->advance, w->grace);
                for (int m = 0; m < w->nmeasures && n < sizeof(buf); m++)
                        n += (size_t)snprintf(buf + n, sizeof(buf) - n, ",%d", w->measures[m]);
        }
        if (n > sizeof(buf))
                n = sizeof(buf);
        return dmp_hash_bytes(buf, n, 0);
}

/* Compiles the pipeline definition into e; returns the number of
 * configuration errors added to conf. */
static int engine_compile(dmp_engine_t *e, dmp_conf_t *conf) {
        char err[512];
        int sline = dmp_conf_line(conf, "input", "schema");
        /* format confluent: writer schemas come by id (see the daemon) */
        int confluent = !strcmp(conf->input.format, "confluent");
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
        int errors = compile_measures(e, conf);
        if (!errors)
                compile_windows(e, conf);
        return errors;
}

int dmp_engine_check(dmp_conf_t *conf) {
        dmp_engine_t *e = dmp_calloc(1, sizeof(*e));
        e->conf = conf;
        int errors = engine_compile(e, conf);
        dmp_engine_destroy(e);
        return errors;
}

dmp_engine_t *dmp_engine_new(dmp_conf_t *conf, dmp_emit_cb_t *emit, void *opaque,
                             int *config_error, char *errstr, size_t errstr_size) {
        dmp_engine_t *e = dmp_calloc(1, sizeof(*e));
        e->conf = conf;
        e->emit = emit;
        e->opaque = opaque;
        *config_error = 0;
        if (engine_compile(e, conf)) {
                *config_error = 1;
                snprintf(errstr, errstr_size, "invalid configuration");
                dmp_engine_destroy(e);
                return NULL;
        }
        e->store = dmp_store_open(conf->state.dir, pipeline_fingerprint(e), errstr, errstr_size);
        if (!e->store) {
                dmp_engine_destroy(e);
                return NULL;
        }
        return e;
}

/* ---- tasks ---- */

static void task_free(task_t *t) {
        /* Closed entries are only in the dirty list, open ones only in the
         * table (the dirty list may point at them too): free each once. */
        for (size_t i = 0; i < t->ndirty; i++)
                if (t->dirty[i]->flags & DMP_ENTRY_CLOSED)
                        free(t->dirty[i]);
        free(t->dirty);
        for (size_t i = 0; i < t->table.cap; i++)
                if (t->table.slots[i])
                        free(t->table.slots[i]);
        dmp_wtable_clear(&t->table);
        for (int w = 0; w < DMP_MAX_WINDOWS; w++) {
                for (size_t b = 0; b < t->windows[w].n; b++)
                        free(t->windows[w].b[b].v);
                free(t->windows[w].b);
        }
        free(t);
}

void dmp_engine_destroy(dmp_engine_t *e) {
        if (!e)
                return;
        for (int32_t p = 0; p < e->ntasks; p++)
                if (e->tasks[p])
                        task_free(e->tasks[p]);
        free(e->tasks);
        for (int i = 0; i < e->nmeasures; i++)
                dmp_measure_clear(&e->measures[i]);
        for (int i = 0; i < e->nwindows; i++)
                free(e->windows[i].name);
        dmp_decoder_destroy(e->decoder);
        dmp_store_close(e->store);
        free(e);
}

static task_t *task_get(const dmp_engine_t *e, int32_t partition) {
        return partition >= 0 && partition < e->ntasks ? e->tasks[partition] : NULL;
}

static void mark_dirty(task_t *t, dmp_entry_t *en) {
        if (en->flags & DMP_ENTRY_DIRTY)
                return;
        en->flags |= DMP_ENTRY_DIRTY;
        if (t->ndirty == t->dirty_cap) {
                t->dirty_cap = t->dirty_cap ? t->dirty_cap * 2 : 256;
                t->dirty = dmp_realloc(t->dirty, t->dirty_cap * sizeof(*t->dirty));
        }
        t->dirty[t->ndirty++] = en;
}

/* Adds en to the bucket of its window start, keeping buckets sorted. */
static void bucket_add(task_t *t, dmp_entry_t *en) {
        bucket_list_t *bl = &t->windows[en->win];
        size_t i = bl->n;
        while (i > 0 && bl->b[i - 1].start > en->start) /* new windows are usually last */
                i--;
        if (i == 0 || bl->b[i - 1].start != en->start) {
                if (bl->n == bl->cap) {
                        bl->cap = bl->cap ? bl->cap * 2 : 8;
                        bl->b = dmp_realloc(bl->b, bl->cap * sizeof(*bl->b));
                }
                memmove(&bl->b[i + 1], &bl->b[i], (bl->n - i) * sizeof(*bl->b));
                bl->b[i] = (bucket_t){.start = en->start};
                bl->n++;
                i++;
        }
        bucket_t *b = &bl->b[i - 1];
        if (b->n == b->cap) {
                b->cap = b->cap ? b->cap * 2 : 16;
                b->v = dmp_realloc(b->v, b->cap * sizeof(*b->v));
        }
        b->v[b->n++] = en;
}

static void emit_entry(dmp_engine_t *e, const dmp_entry_t *en) {
        const dmp_window_t *w = &e->windows[en->win];
        for (int j = 0; j < en->nmeasures; j++) {
                if (en->aggs[j].count == 0)
                        continue;
                dmp_result_t r = {
                        .window = w,
                        .measure = e->measures[w->measures[j]].name,
                        .key = dmp_entry_key(en),
                        .key_len = en->key_len,
                        .start = en->start,
                        .end = en->start + w->size,
                        .agg = &en->aggs[j],
                };
                e->emit(e->opaque, &r);
                e->stats.results_out++;
        }
}

/* Emits and retires every window closed at the task's stream time. */
static void close_windows(dmp_engine_t *e, task_t *t) {
        for (int wi = 0; wi < e->nwindows; wi++) {
                const dmp_window_t *w = &e->windows[wi];
                bucket_list_t *bl = &t->windows[wi];
                size_t closed = 0;
                while (closed < bl->n && dmp_window_closed(w, bl->b[closed].start, t->stream_time)) {
                        bucket_t *b = &bl->b[closed];
                        for (size_t i = 0; i < b->n; i++) {
                                dmp_entry_t *en = b->v[i];
                                emit_entry(e, en);
                                dmp_wtable_remove(&t->table, en);
                                en->flags |= DMP_ENTRY_CLOSED;
                                mark_dirty(t, en);
                        }
                        free(b->v);
                        e->stats.windows_closed++;
                        closed++;
                }
                if (closed) {
                        memmove(bl->b, bl->b + closed, (bl->n - closed) * sizeof(*bl->b));
                        bl->n -= closed;
                }
        }
}

typedef struct load_ctx {
        dmp_engine_t *e;
        task_t *t;
        int bad;
} load_ctx_t;

static void load_agg(void *opaque, int win, const char *key, size_t key_len, int64_t start,
                     const dmp_agg_t *aggs, int n) {
        load_ctx_t *lc = opaque;
        if (win >= lc->e->nwindows || n != lc->e->windows[win].nmeasures) {
                lc->bad++;
                return;
        }
        uint64_t h = dmp_entry_hash(dmp_hash_bytes(key, key_len, 0), win, start);
        dmp_entry_t *en = dmp_entry_new(h, win, start, key, key_len, n);
        memcpy(en->aggs, aggs, sizeof(*aggs) * (size_t)n);
        en->flags = DMP_ENTRY_PERSISTED;
        dmp_wtable_insert(&lc->t->table, en);
        bucket_add(lc->t, en);
}

int dmp_engine_partition_open(dmp_engine_t *e, int32_t partition, int64_t *next_offset,
                              char *errstr, size_t errstr_size) {
        task_t *t = task_get(e, partition);
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
        dmp_wtable_init(&t->table);
        int r = dmp_store_get_meta(e->store, partition, &t->next_offset, &t->stream_time, errstr,
                                   errstr_size);
        if (r < 0) {
                task_free(t);
                return -1;
        }
        load_ctx_t lc = {.e = e, .t = t};
        long n = dmp_store_scan(e->store, partition, load_agg, &lc, errstr, errstr_size);
        if (n < 0 || lc.bad) {
                if (lc.bad)
                        snprintf(errstr, errstr_size,
                                 "partition %d: %d stored aggregates do not match the windows",
                                 (int)partition, lc.bad);
                task_free(t);
                return -1;
        }
        e->tasks[partition] = t;
        dmp_info("partition %d: restored %ld open windows, resuming at offset %" PRId64
                 ", stream time %" PRId64, (int)partition, n, t->next_offset,
                 t->stream_time == INT64_MIN ? (int64_t)-1 : t->stream_time);
        *next_offset = t->next_offset;
        return 0;
}

void dmp_engine_partition_close(dmp_engine_t *e, int32_t partition) {
        task_t *t = task_get(e, partition);
        if (!t)
                return;
        task_free(t);
        e->tasks[partition] = NULL;
}

/* ---- the hot path ---- */

int dmp_engine_process(dmp_engine_t *e, int32_t partition, int64_t offset, const void *key,
                       size_t key_len, int64_t kafka_ts, const void *payload, size_t len,
                       char *errstr, size_t errstr_size) {
        task_t *t = task_get(e, partition);
        e->last_error = DMP_DECODE_OK;
        if (!t) {
                snprintf(errstr, errstr_size, "partition %d is not open", (int)partition);
                return -1;
        }
        int64_t prev_offset = t->next_offset;
        t->next_offset = offset + 1;
        t->meta_dirty = 1;
        e->stats.events_in++;

        dmp_event_t ev;
        if (dmp_decoder_decode(e->decoder, payload, len, &ev, errstr, errstr_size)) {
                e->last_error = dmp_decoder_last_error(e->decoder);
                if (e->last_error == DMP_DECODE_UNAVAILABLE) { /* not consumed: retried */
                        t->next_offset = prev_offset;
                        e->stats.events_in--;
                        return -1;
                }
                e->stats.decode_errors++;
                return -1;
        }
        const char *k = *e->conf->input.key_field ? ev.key : (key ? key : "");
        size_t kl = *e->conf->input.key_field ? ev.key_len : (key ? key_len : 0);
        if (kl > UINT16_MAX)
                kl = UINT16_MAX; /* keys are bounded to 64 KiB - 1 in state */
        int64_t ts = ev.has_time ? ev.time_ms : kafka_ts;
        if (ts < -DMP_MAX_ABS_TIME_MS || ts > DMP_MAX_ABS_TIME_MS) {
                /* keeps window arithmetic far from int64 overflow */
                snprintf(errstr, errstr_size, "event time %" PRId64 " is out of range", ts);
                e->last_error = DMP_DECODE_TIME_RANGE;
                e->stats.decode_errors++;
                return -1;
        }

        int advanced = 0;
        if (ts > t->stream_time) {
                t->stream_time = ts;
                advanced = 1;
        }

        double vals[DMP_MAX_MEASURES];
        uint64_t defined = 0;
        for (int m = 0; m < e->nmeasures; m++) {
                if (dmp_measure_eval(&e->measures[m], ev.num, ev.defined, &vals[m]))
                        defined |= 1ULL << m;
                else
                        e->stats.measure_undefined++;
        }

        uint64_t key_hash = dmp_hash_bytes(k, kl, 0);
        for (int wi = 0; wi < e->nwindows; wi++) {
                const dmp_window_t *w = &e->windows[wi];
                int open = 0;
                int64_t last = dmp_window_last_start(w, ts);
                for (int64_t s = dmp_window_first_start(w, ts); s <= last; s += w->advance) {
                        if (dmp_window_closed(w, s, t->stream_time)) {
                                e->stats.late_window_updates++;
                                continue;
                        }
                        open = 1;
                        uint64_t h = dmp_entry_hash(key_hash, wi, s);
                        dmp_entry_t *en = dmp_wtable_find(&t->table, h, wi, s, k, kl);
                        if (!en) {
                                en = dmp_entry_new(h, wi, s, k, kl, w->nmeasures);
                                dmp_wtable_insert(&t->table, en);
                                bucket_add(t, en);
                        }
                        for (int j = 0; j < w->nmeasures; j++)
                                if (defined & (1ULL << w->measures[j]))
                                        dmp_agg_add(&en->aggs[j], vals[w->measures[j]]);
                        mark_dirty(t, en);
                }
                if (!open)
                        e->stats.late_events++;
        }
        if (advanced)
                close_windows(e, t);
        return 0;
}

int dmp_engine_commit(dmp_engine_t *e, char *errstr, size_t errstr_size) {
        for (int32_t p = 0; p < e->ntasks; p++) {
                task_t *t = e->tasks[p];
                if (!t)
                        continue;
                for (size_t i = 0; i < t->ndirty; i++) {
                        dmp_entry_t *en = t->dirty[i];
                        if (en->flags & DMP_ENTRY_CLOSED) {
                                if (en->flags & DMP_ENTRY_PERSISTED)
                                        dmp_store_delete_agg(e->store, p, en->win,
                                                             dmp_entry_key(en), en->key_len,
                                                             en->start);
                        } else {
                                dmp_store_put_agg(e->store, p, en->win, dmp_entry_key(en),
                                                  en->key_len, en->start, en->aggs,
                                                  en->nmeasures);
                        }
                }
                if (t->meta_dirty)
                        dmp_store_put_meta(e->store, p, t->next_offset, t->stream_time);
        }
        if (dmp_store_commit(e->store, errstr, errstr_size))
                return -1;
        uint64_t open = 0;
        for (int32_t p = 0; p < e->ntasks; p++) {
                task_t *t = e->tasks[p];
                if (!t)
                        continue;
                for (size_t i = 0; i < t->ndirty; i++) {
                        dmp_entry_t *en = t->dirty[i];
                        if (en->flags & DMP_ENTRY_CLOSED)
                                free(en);
                        else
                                en->flags = DMP_ENTRY_PERSISTED;
                }
                t->ndirty = 0;
                t->meta_dirty = 0;
                open += t->table.cnt;
        }
        e->stats.open_entries = open;
        e->stats.commits++;
        return 0;
}

void dmp_engine_foreach_partition(dmp_engine_t *e, dmp_partition_cb_t *cb, void *opaque) {
        for (int32_t p = 0; p < e->ntasks; p++)
                if (e->tasks[p])
                        cb(opaque, p, e->tasks[p]->next_offset);
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
}

int dmp_engine_window_cnt(const dmp_engine_t *e) {
        return e->nwindows;
}

const dmp_window_t *dmp_engine_window(const dmp_engine_t *e, int i) {
        return &e->windows[i];
}
