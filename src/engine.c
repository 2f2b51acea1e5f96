/* The processing engine. See engine.h for the contract.
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
 * Entry lifetime: an entry is owned by the table while it is in it; once
 * removed it is CLOSED and owned by the dirty list until the commit deletes
 * it from the store; a session / sliding entry still referenced by buckets
 * then lingers as a ZOMBIE until its last bucket reference is dropped. */
#include "engine.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder.h"
#include "groups.h"
#include "log.h"
#include "measure.h"
#include "membudget.h"
#include "store.h"
#include "util.h"
#include "wtable.h"

/* Event times beyond +-2^60 ms (36 million years) are rejected. */
#define DMP_MAX_ABS_TIME_MS (INT64_C(1) << 60)

#define ENTRY_ZOMBIE  0x20 /* closed, committed, still referenced by buckets */
#define ENTRY_FREEING 0x40 /* collected for freeing (task_free) */

#define ENTRY_VERSION_WINDOW   1
#define ENTRY_VERSION_KEYSTATE 2

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
         * time is below due (valid if due_known; a new bucket clears it).
         * Saves its scan of the buckets on every event that advances the
         * stream time: ~140 instructions per event (callgrind, core row). */
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
        int64_t emitted_upto; /* sliding: candidate windows with start <= this are done */
        unsigned char *items; /* sessions or records, fixed size each */
} keystate_t;

/* A session item: start, last, flags, then nmeasures aggregates. */
#define SESSION_FLAGS_AT 16
#define SESSION_AGGS_AT 24
#define SESSION_ITEM_SIZE(nm) (SESSION_AGGS_AT + sizeof(dmp_agg_t) * (size_t)(nm))
/* A sliding record: time, stream time at arrival, defined mask, flags,
 * values. */
#define RECORD_FLAGS_AT 20
#define RECORD_ITEM_SIZE(nm) (24 + sizeof(double) * (size_t)(nm))
/* Item flag: changed since the last update-mode result (session), or
 * arrived since then (sliding record). */
#define ITEM_NEW 1
/* Session flag: closed and emitted, kept for retention.ms. Such sessions
 * are a prefix of the key's list (they closed before every open one). */
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
        dmp_caught_up_cb_t *caught_up; /* may be NULL */
        void *caught_up_opaque;
        char failure[512];           /* a state read failed: the next commit fails */
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

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) {
        return v < lo ? lo : v > hi ? hi : v;
}

static void compile_windows(dmp_engine_t *e, const dmp_conf_t *conf) {
        for (int i = 0; i < conf->window_cnt; i++) {
                const dmp_window_conf_t *wc = &conf->windows[i];
                dmp_window_t *w = &e->windows[e->nwindows];
                w->name = dmp_strdup(wc->name);
                w->kind = !strcmp(wc->type, "hopping")   ? DMP_WINDOW_HOPPING
                          : !strcmp(wc->type, "sliding") ? DMP_WINDOW_SLIDING
                          : !strcmp(wc->type, "session") ? DMP_WINDOW_SESSION
                                                         : DMP_WINDOW_TUMBLING;
                w->size = wc->size_ms;
                w->advance = w->kind == DMP_WINDOW_HOPPING ? wc->advance_ms : wc->size_ms;
                if (w->kind == DMP_WINDOW_SLIDING) /* [s, s+D] inclusive is [s, s+D+1) */
                        w->size = wc->size_ms + 1;
                w->gap = wc->gap_ms;
                w->grace = wc->grace_ms;
                w->retention = wc->retention_ms;
                w->emit = !strcmp(wc->emit, "update") ? DMP_EMIT_UPDATE : DMP_EMIT_FINAL;
                /* Session / sliding keys are scheduled in buckets of this
                 * width by their next close time; a bucket is checked at
                 * each stream time advance once its first ms is reached. */
                e->quantum[e->nwindows] = clamp64(
                        (w->kind == DMP_WINDOW_SESSION ? w->gap : w->size) / 8, 1, 1000);
                w->nmeasures = 0;
                const char *s = wc->measures;
                while (*s) {
                        while (*s == ' ' || *s == ',')
                                s++;
                        size_t l = strcspn(s, ", ");
                        int m, dup = 0;
                        if (l && (m = find_measure(e, s, l)) >= 0) {
                                /* once each: a longer list overflowed measures[]
                                 * (fuzz finding, docs/FUZZING.md) */
                                for (int j = 0; j < w->nmeasures; j++)
                                        dup |= w->measures[j] == m;
                                if (!dup)
                                        w->measures[w->nmeasures++] = m;
                        }
                        s += l;
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
        dmp_decoder_reject_nonfinite(e->decoder, !strcmp(conf->input.nonfinite, "dead-letter"));
        int errors = compile_measures(e, conf);
        if (!errors)
                compile_windows(e, conf);
        if (!errors)
                e->groups = dmp_groups_new(conf, e->decoder, e->measures, e->nmeasures, e->windows,
                                           e->nwindows, &errors);
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
        return e;
}

/* ---- entries and buckets ---- */

static void entry_free(dmp_entry_t *en) {
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
                entry_free(all[i]);
        free(all);
        free(t->dirty.v);
        dmp_wtable_clear(&t->table);
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
        dmp_groups_destroy(e->groups);
        dmp_decoder_destroy(e->decoder);
        dmp_store_close(e->store);
        free(e->valbuf);
        free(e);
}

static task_t *task_get(const dmp_engine_t *e, int32_t partition) {
        return partition >= 0 && partition < e->ntasks ? e->tasks[partition] : NULL;
}

/* Takes an entry out of the table: it is deleted from the store at the
 * next commit. */
static void retire(task_t *t, dmp_entry_t *en) {
        dmp_wtable_remove(&t->table, en);
        en->flags |= DMP_ENTRY_CLOSED;
        dmp_dirty_mark(&t->dirty, en);
}

/* A closed entry the store never held and nothing emits again: the commit
 * would only free it. release_dead frees such entries before: at 3 M
 * events/s a 1 s commit interval closed ~500 k of them (10 k keys, 60 s
 * windows), which held ~60 MB until the commit (peak RSS 106 MB). */
static int dirty_dead(const dmp_engine_t *e, const dmp_entry_t *en) {
        return dmp_entry_closed_unstored(en) && !en->ext &&
               (e->windows[en->win].emit == DMP_EMIT_FINAL || !(en->flags & DMP_ENTRY_CHANGED));
}

static uint64_t entry_bytes(const dmp_engine_t *e, const dmp_entry_t *en);

typedef struct release_ctx {
        dmp_engine_t *e;
        task_t *t;
} release_ctx_t;

/* dmp_dirty_compact's release: frees en if it is dead (dirty_dead). */
static int release_dead(void *opaque, dmp_entry_t *en) {
        release_ctx_t *rc = opaque;
        if (!dirty_dead(rc->e, en))
                return 0;
        rc->t->entry_bytes -= entry_bytes(rc->e, en);
        entry_free(en);
        return 1;
}

/* Returns the bucket of `start` in bl, creating it in order if needed. */
static bucket_t *bucket_get(bucket_list_t *bl, int64_t start) {
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
        return &bl->b[i];
}

static void bucket_push(bucket_t *b, dmp_entry_t *en) {
        if (b->n == b->cap) {
                b->cap = b->cap ? b->cap * 2 : 16;
                b->v = dmp_realloc(b->v, b->cap * sizeof(*b->v));
        }
        b->v[b->n++] = en;
}

/* Removes the first n buckets of bl (their vectors must be freed). */
static void buckets_drop_front(bucket_list_t *bl, size_t n) {
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

static size_t item_size(const dmp_window_t *w) {
        return w->kind == DMP_WINDOW_SESSION ? SESSION_ITEM_SIZE(w->nmeasures)
                                             : RECORD_ITEM_SIZE(w->nmeasures);
}

/* The heap bytes of an entry: the entry with its aggregates and key, and a
 * session / sliding key's state with its item array. Counted in
 * task_t.entry_bytes when an entry is made or grows, uncounted when freed. */
static uint64_t entry_bytes(const dmp_engine_t *e, const dmp_entry_t *en) {
        uint64_t n = sizeof(*en) + sizeof(dmp_agg_t) * en->nmeasures + en->key_len;
        if (en->ext)
                n += sizeof(keystate_t) +
                     (uint64_t)((const keystate_t *)en->ext)->cap * item_size(&e->windows[en->win]);
        return n;
}

/* Values are in host byte order (state is not portable across
 * architectures of different endianness). */
static size_t entry_encode(dmp_engine_t *e, const dmp_entry_t *en, unsigned char **out) {
        unsigned char *p;
        size_t len;
        if (en->ext) {
                const keystate_t *ks = en->ext;
                size_t isz = item_size(&e->windows[en->win]);
                len = 3 + 8 + 4 + (size_t)ks->n * isz;
                p = valbuf_reserve(e, len);
                p[0] = ENTRY_VERSION_KEYSTATE;
                p[1] = 0;
                p[2] = (unsigned char)e->windows[en->win].nmeasures;
                memcpy(p + 3, &ks->emitted_upto, 8);
                memcpy(p + 11, &ks->n, 4);
                memcpy(p + 15, ks->items, (size_t)ks->n * isz);
        } else {
                len = 3 + sizeof(dmp_agg_t) * en->nmeasures;
                p = valbuf_reserve(e, len);
                p[0] = ENTRY_VERSION_WINDOW;
                p[1] = en->flags & DMP_ENTRY_EMITTED;
                p[2] = en->nmeasures;
                memcpy(p + 3, en->aggs, sizeof(dmp_agg_t) * en->nmeasures);
        }
        *out = p;
        return len;
}

/* ---- results ---- */

/* Takes the key's late count since its previous result (and resets it). */
static int64_t take_late(task_t *t, int win, const char *key, size_t kl, uint64_t key_hash) {
        uint64_t h = dmp_entry_hash(key_hash, win, DMP_START_LATE);
        dmp_entry_t *le = dmp_wtable_find(&t->table, h, win, DMP_START_LATE, key, kl);
        if (!le)
                return 0;
        int64_t n = le->aggs[0].count;
        retire(t, le);
        return n;
}

static void emit_aggs(dmp_engine_t *e, task_t *t, int win, const char *key, size_t kl,
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
                e->emit(e->opaque, &r);
                e->stats.results_out++;
                if (final && e->groups)
                        dmp_groups_key_result(e->groups, t->partition, win, w->measures[j], key,
                                              kl, start, end, &aggs[j]);
        }
}

static void emit_window_entry(dmp_engine_t *e, task_t *t, dmp_entry_t *en, int final) {
        const dmp_window_t *w = &e->windows[en->win];
        emit_aggs(e, t, en->win, dmp_entry_key(en), en->key_len, en->start, en->start + w->size,
                  en->aggs, final);
}

static void count_late(dmp_engine_t *e, task_t *t, int win, const char *key, size_t kl,
                       uint64_t key_hash) {
        e->stats.late_events++;
        e->stats.late_by_window[win]++;
        uint64_t h = dmp_entry_hash(key_hash, win, DMP_START_LATE);
        dmp_entry_t *le = dmp_wtable_find(&t->table, h, win, DMP_START_LATE, key, kl);
        if (!le) {
                le = dmp_entry_new(h, win, DMP_START_LATE, key, kl, 1);
                dmp_wtable_insert(&t->table, le);
                t->entry_bytes += entry_bytes(e, le);
        }
        le->aggs[0].count++;
        dmp_dirty_mark(&t->dirty, le);
}

/* ---- eviction (memory budget) ----
 *
 * Under memory pressure, right after a commit, clean tumbling / hopping
 * entries (in the store, not dirty, not emitted, no pending update) are
 * freed and counted in their window's bucket (bucket_t.evicted). A touch of
 * an evicted entry reloads it with one point get (only in buckets that
 * evicted something, so the common miss of a new key costs nothing); a
 * window closing with evicted entries reloads them with one scan of the
 * partition before emitting. Session / sliding key states and late
 * counters are not evicted. */

static int load_entry(void *opaque, int win, const char *key, size_t key_len, int64_t start,
                      const void *val, size_t len);

typedef struct load_ctx {
        dmp_engine_t *e;
        task_t *t;
        int lazy; /* partition open: entries past the budget stay in the store */
} load_ctx_t;

static void state_read_failed(dmp_engine_t *e, task_t *t, const char *what) {
        if (!e->failure[0])
                snprintf(e->failure, sizeof(e->failure), "partition %d: %s", (int)t->partition,
                         what);
        dmp_error("partition %d: %s", (int)t->partition, what);
}

static bucket_t *bucket_find(bucket_list_t *bl, int64_t start) {
        for (size_t i = bl->n; i > 0; i--) {
                if (bl->b[i - 1].start == start)
                        return &bl->b[i - 1];
                if (bl->b[i - 1].start < start)
                        break;
        }
        return NULL;
}

/* Reloads the evicted entry (wi, key, s) of bucket b; NULL if the store has
 * none (a key new to that window). */
static dmp_entry_t *reload_entry(dmp_engine_t *e, task_t *t, bucket_t *b, int wi,
                                 const char *k, size_t kl, int64_t s, uint64_t h) {
        void *v;
        size_t vl;
        char err[256];
        int r = dmp_store_get_entry(e->store, t->partition, wi, k, kl, s, &v, &vl, err,
                                    sizeof(err));
        if (r <= 0) {
                if (r < 0)
                        state_read_failed(e, t, err);
                return NULL;
        }
        load_ctx_t lc = {e, t, 0};
        int bad = load_entry(&lc, wi, k, kl, s, v, vl);
        free(v);
        if (bad) {
                state_read_failed(e, t, "corrupt state entry on reload");
                return NULL;
        }
        b->evicted--;
        t->evicted--;
        e->stats.reloads++;
        return dmp_wtable_find(&t->table, h, wi, s, k, kl);
}

typedef struct reload_ctx {
        load_ctx_t lc;
        int win;
        int64_t start;
        int stream; /* emit and delete instead of loading */
} reload_ctx_t;

static void emit_aggs(dmp_engine_t *e, task_t *t, int win, const char *key, size_t kl,
                      int64_t start, int64_t end, const dmp_agg_t *aggs, int final);

static int reload_one(void *opaque, int win, const char *key, size_t key_len, int64_t start,
                      const void *val, size_t len) {
        reload_ctx_t *rc = opaque;
        if (win != rc->win || start != rc->start)
                return 0;
        uint64_t h = dmp_entry_hash(dmp_hash_bytes(key, key_len, 0), win, start);
        if (dmp_wtable_find(&rc->lc.t->table, h, win, start, key, key_len))
                return 0; /* in memory: newer than the store */
        rc->lc.e->stats.reloads++;
        if (!rc->stream)
                return load_entry(&rc->lc, win, key, key_len, start, val, len);
        /* Emitted straight from the store and deleted with the next commit,
         * so that closing a window never brings it all back into memory. */
        dmp_engine_t *e = rc->lc.e;
        const unsigned char *v = val;
        const dmp_window_t *w = &e->windows[win];
        if (len != 3 + sizeof(dmp_agg_t) * (size_t)w->nmeasures || v[0] != ENTRY_VERSION_WINDOW ||
            v[2] != w->nmeasures)
                return -1;
        dmp_agg_t aggs[DMP_MAX_MEASURES];
        memcpy(aggs, v + 3, sizeof(dmp_agg_t) * (size_t)w->nmeasures);
        emit_aggs(e, rc->lc.t, win, key, key_len, start, start + w->size, aggs, 1);
        dmp_store_delete_agg(e->store, rc->lc.t->partition, win, key, key_len, start);
        return 0;
}

/* Brings back every evicted entry of a closing window; in final mode
 * without retention, emits them from the store instead (their final result
 * is all that is left to do with them). */
static void reload_bucket(dmp_engine_t *e, task_t *t, int wi, bucket_t *b) {
        char err[256];
        const dmp_window_t *w = &e->windows[wi];
        reload_ctx_t rc = {{e, t, 0}, wi, b->start,
                           w->emit == DMP_EMIT_FINAL && w->retention == 0};
        if (dmp_store_scan(e->store, t->partition, reload_one, &rc, err, sizeof(err)) < 0)
                state_read_failed(e, t, err);
        t->evicted -= b->evicted;
        b->evicted = 0;
}

/* Evicts clean tumbling / hopping entries, newest windows first, until
 * *bytes <= target. */
static void evict(dmp_engine_t *e, task_t *t, uint64_t *bytes, uint64_t target) {
        for (int wi = 0; wi < e->nwindows && *bytes > target; wi++) {
                if (dmp_window_is_keyed(&e->windows[wi]))
                        continue;
                bucket_list_t *bl = &t->windows[wi];
                /* CHANGED matters in update mode only (a pending update) */
                uint8_t ok = DMP_ENTRY_PERSISTED |
                             (e->windows[wi].emit == DMP_EMIT_FINAL ? DMP_ENTRY_CHANGED : 0);
                for (size_t i = bl->n; i > 0 && *bytes > target; i--) {
                        bucket_t *b = &bl->b[i - 1];
                        if (b->emitted)
                                continue;
                        size_t keep = 0;
                        for (size_t k = 0; k < b->n; k++) {
                                dmp_entry_t *en = b->v[k];
                                if (*bytes <= target || (en->flags & ~ok) ||
                                    !(en->flags & DMP_ENTRY_PERSISTED)) {
                                        b->v[keep++] = en;
                                        continue;
                                }
                                uint64_t sz = entry_bytes(e, en);
                                dmp_wtable_remove(&t->table, en);
                                entry_free(en);
                                t->entry_bytes -= sz;
                                *bytes -= sz;
                                b->evicted++;
                                t->evicted++;
                                e->stats.evictions++;
                        }
                        b->n = keep;
                }
        }
        dmp_wtable_fit(&t->table);
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
                        reload_bucket(e, t, wi, b);
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
                        retire(t, b->v[k]);
                        t->dirty.dead += (size_t)dirty_dead(e, b->v[k]);
                }
                free(b->v);
                purge++;
        }
        buckets_drop_front(bl, purge);
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
                        continue;
                }
                open = 1;
                uint64_t h = dmp_entry_hash(key_hash, wi, s);
                dmp_entry_t *en = dmp_wtable_find(&t->table, h, wi, s, k, kl);
                if (!en) {
                        bucket_t *b = t->evicted ? bucket_find(&t->windows[wi], s) : NULL;
                        if (b && b->evicted)
                                en = reload_entry(e, t, b, wi, k, kl, s, h);
                }
                if (!en) {
                        en = dmp_entry_new(h, wi, s, k, kl, w->nmeasures);
                        dmp_wtable_insert(&t->table, en);
                        t->entry_bytes += entry_bytes(e, en);
                        bucket_push(bucket_get(&t->windows[wi], s), en);
                }
                for (int j = 0; j < w->nmeasures; j++)
                        if (defined & (1ULL << w->measures[j]))
                                dmp_agg_add(&en->aggs[j], vals[w->measures[j]]);
                en->flags |= DMP_ENTRY_CHANGED;
                dmp_dirty_mark(&t->dirty, en);
        }
        if (!open)
                count_late(e, t, wi, k, kl, key_hash);
}

/* ---- session and sliding windows: per-key state ---- */

static keystate_t *ks_of(const dmp_entry_t *en) {
        return en->ext;
}

static unsigned char *ks_item(const keystate_t *ks, size_t isz, uint32_t i) {
        return ks->items + (size_t)i * isz;
}

static int64_t item_i64(const unsigned char *item, int at) {
        int64_t v;
        memcpy(&v, item + at, 8);
        return v;
}

static void ks_remove(keystate_t *ks, size_t isz, uint32_t i, uint32_t cnt) {
        memmove(ks_item(ks, isz, i), ks_item(ks, isz, i + cnt), (size_t)(ks->n - i - cnt) * isz);
        ks->n -= cnt;
}

/* Makes room for an item at position i and returns it. */
static unsigned char *ks_insert(task_t *t, keystate_t *ks, size_t isz, uint32_t i) {
        if (ks->n == ks->cap) {
                t->entry_bytes += (ks->cap ? ks->cap : 4) * isz;
                ks->cap = ks->cap ? ks->cap * 2 : 4;
                ks->items = dmp_realloc(ks->items, (size_t)ks->cap * isz);
        }
        memmove(ks_item(ks, isz, i + 1), ks_item(ks, isz, i), (size_t)(ks->n - i) * isz);
        ks->n++;
        return ks_item(ks, isz, i);
}

static dmp_entry_t *keystate_new(task_t *t, int wi, const char *k, size_t kl, uint64_t h) {
        dmp_entry_t *en = dmp_entry_new(h, wi, DMP_START_KEYSTATE, k, kl, 0);
        keystate_t *ks = dmp_calloc(1, sizeof(*ks));
        ks->sched = INT64_MIN;
        ks->emitted_upto = INT64_MIN;
        en->ext = ks;
        dmp_wtable_insert(&t->table, en);
        t->entry_bytes += sizeof(*en) + kl + sizeof(*ks);
        return en;
}

/* Sliding: the smallest candidate window start > after, or INT64_MAX.
 * Candidates are each record's right window [t+1, t+1+D] and, if it was
 * open when the record arrived, its left window [t-D, t]. */
static int64_t sliding_next_start(const dmp_window_t *w, const keystate_t *ks, int64_t after) {
        int64_t best = INT64_MAX;
        size_t isz = RECORD_ITEM_SIZE(w->nmeasures);
        for (uint32_t i = 0; i < ks->n; i++) {
                const unsigned char *r = ks_item(ks, isz, i);
                int64_t rt = item_i64(r, 0), rst = item_i64(r, 8);
                int64_t left = rt - (w->size - 1);
                if (left > after && rt + 1 + w->grace > rst && left < best)
                        best = left;
                if (rt + 1 > after && rt + 1 < best)
                        best = rt + 1;
        }
        return best;
}

static uint64_t session_flags(const unsigned char *s) {
        uint64_t flags;
        memcpy(&flags, s + SESSION_FLAGS_AT, 8);
        return flags;
}

static void session_set_flags(unsigned char *s, uint64_t flags) {
        memcpy(s + SESSION_FLAGS_AT, &flags, 8);
}

/* The index of the key's first open session (after the retained ones). */
static uint32_t session_first_open(const dmp_window_t *w, const keystate_t *ks) {
        size_t isz = SESSION_ITEM_SIZE(w->nmeasures);
        uint32_t i = 0;
        while (i < ks->n && (session_flags(ks_item(ks, isz, i)) & ITEM_EMITTED))
                i++;
        return i;
}

/* Aggregates the records contributing to the sliding window starting at s
 * (those in it that came while it was open). Returns whether any defined
 * value reached it; *has_new (if not NULL): whether a record flagged
 * ITEM_NEW contributed. */
static int sliding_aggregate(const dmp_window_t *w, const keystate_t *ks, int64_t s,
                             dmp_agg_t *aggs, int *has_new) {
        size_t isz = RECORD_ITEM_SIZE(w->nmeasures);
        int any = 0;
        for (int j = 0; j < w->nmeasures; j++)
                dmp_agg_init(&aggs[j]);
        if (has_new)
                *has_new = 0;
        for (uint32_t i = 0; i < ks->n; i++) {
                const unsigned char *r = ks_item(ks, isz, i);
                int64_t rt = item_i64(r, 0);
                if (rt < s)
                        continue;
                if (rt >= s + w->size)
                        break; /* records are sorted by time */
                if (s + w->size + w->grace <= item_i64(r, 8))
                        continue; /* the window was closed when it came */
                uint32_t mask, flags;
                memcpy(&mask, r + 16, 4);
                memcpy(&flags, r + RECORD_FLAGS_AT, 4);
                if (has_new && (flags & ITEM_NEW))
                        *has_new = 1;
                for (int j = 0; j < w->nmeasures; j++) {
                        double v;
                        memcpy(&v, r + 24 + 8 * j, 8);
                        if (mask & (1u << j)) {
                                dmp_agg_add(&aggs[j], v);
                                any = 1;
                        }
                }
        }
        return any;
}

/* Update mode: emits the key's open sessions that changed, or its open
 * sliding windows that a new record reached, and clears the marks. */
static void keyed_emit_updates(dmp_engine_t *e, task_t *t, dmp_entry_t *en) {
        const dmp_window_t *w = &e->windows[en->win];
        keystate_t *ks = ks_of(en);
        const char *key = dmp_entry_key(en);
        if (w->kind == DMP_WINDOW_SESSION) {
                size_t isz = SESSION_ITEM_SIZE(w->nmeasures);
                for (uint32_t i = session_first_open(w, ks); i < ks->n; i++) {
                        unsigned char *s = ks_item(ks, isz, i);
                        uint64_t flags = session_flags(s);
                        if (!(flags & ITEM_NEW))
                                continue;
                        session_set_flags(s, flags & ~(uint64_t)ITEM_NEW);
                        dmp_agg_t aggs[DMP_MAX_MEASURES];
                        memcpy(aggs, s + SESSION_AGGS_AT, sizeof(dmp_agg_t) * (size_t)w->nmeasures);
                        emit_aggs(e, t, en->win, key, en->key_len, item_i64(s, 0),
                                  item_i64(s, 8) + 1, aggs, 0);
                }
                return;
        }
        size_t isz = RECORD_ITEM_SIZE(w->nmeasures);
        /* Every open candidate, in start order. */
        for (int64_t s = ks->emitted_upto; (s = sliding_next_start(w, ks, s)) != INT64_MAX;) {
                dmp_agg_t aggs[DMP_MAX_MEASURES];
                int has_new;
                if (sliding_aggregate(w, ks, s, aggs, &has_new) && has_new)
                        emit_aggs(e, t, en->win, key, en->key_len, s, s + w->size, aggs, 0);
        }
        for (uint32_t i = 0; i < ks->n; i++) {
                uint32_t flags = 0;
                memcpy(ks_item(ks, isz, i) + RECORD_FLAGS_AT, &flags, 4);
        }
}

/* The stream time at which the key's next window closes, or INT64_MAX. */
static int64_t keyed_next_close(const dmp_window_t *w, const keystate_t *ks) {
        if (ks->n == 0)
                return INT64_MAX;
        if (w->kind == DMP_WINDOW_SESSION) {
                size_t isz = SESSION_ITEM_SIZE(w->nmeasures);
                uint32_t i = session_first_open(w, ks);
                int64_t c = i < ks->n ? dmp_session_close_time(w, item_i64(ks_item(ks, isz, i), 8))
                                      : INT64_MAX;
                if (i > 0) { /* the first retained session's purge time */
                        int64_t purge = dmp_session_close_time(w, item_i64(ks->items, 8)) +
                                        w->retention;
                        if (purge < c)
                                c = purge;
                }
                return c;
        }
        int64_t s = sliding_next_start(w, ks, ks->emitted_upto);
        return s == INT64_MAX ? INT64_MAX : s + w->size + w->grace;
}

static void keyed_schedule(dmp_engine_t *e, task_t *t, dmp_entry_t *en) {
        keystate_t *ks = ks_of(en);
        int64_t c = keyed_next_close(&e->windows[en->win], ks);
        if (c == INT64_MAX)
                return;
        int64_t id = dmp_floor_div(c, e->quantum[en->win]);
        if (ks->sched == id)
                return;
        ks->sched = id;
        ks->refs++;
        bucket_push(bucket_get(&t->windows[en->win], id), en);
}

/* Emits every session / sliding window of the key closed at stream time
 * st, drops what no open window needs, retires the entry once empty. */
static void keyed_close_ready(dmp_engine_t *e, task_t *t, dmp_entry_t *en) {
        const dmp_window_t *w = &e->windows[en->win];
        keystate_t *ks = ks_of(en);
        int64_t st = t->stream_time;
        const char *key = dmp_entry_key(en);
        int changed = 0;
        if (w->kind == DMP_WINDOW_SESSION) {
                size_t isz = SESSION_ITEM_SIZE(w->nmeasures);
                uint32_t i = session_first_open(w, ks);
                while (i < ks->n &&
                       dmp_session_close_time(w, item_i64(ks_item(ks, isz, i), 8)) <= st) {
                        unsigned char *s = ks_item(ks, isz, i);
                        dmp_agg_t aggs[DMP_MAX_MEASURES];
                        memcpy(aggs, s + SESSION_AGGS_AT, sizeof(dmp_agg_t) * (size_t)w->nmeasures);
                        emit_aggs(e, t, en->win, key, en->key_len, item_i64(s, 0),
                                  item_i64(s, 8) + 1, aggs, 1);
                        e->stats.windows_closed++;
                        session_set_flags(s, ITEM_EMITTED); /* retained, or purged below */
                        i++;
                        changed = 1;
                }
                uint32_t purge = 0; /* retained sessions past their retention */
                while (purge < ks->n &&
                       (session_flags(ks_item(ks, isz, purge)) & ITEM_EMITTED) &&
                       dmp_session_close_time(w, item_i64(ks_item(ks, isz, purge), 8)) +
                                       w->retention <= st)
                        purge++;
                if (purge) {
                        ks_remove(ks, isz, 0, purge);
                        changed = 1;
                }
        } else {
                size_t isz = RECORD_ITEM_SIZE(w->nmeasures);
                int64_t s;
                while ((s = sliding_next_start(w, ks, ks->emitted_upto)) != INT64_MAX &&
                       s + w->size + w->grace <= st) {
                        dmp_agg_t aggs[DMP_MAX_MEASURES];
                        /* A candidate no defined value reached is no window: it
                         * emits nothing and leaves the late count for the next. */
                        if (sliding_aggregate(w, ks, s, aggs, NULL)) {
                                emit_aggs(e, t, en->win, key, en->key_len, s, s + w->size,
                                          aggs, 1);
                                e->stats.windows_closed++;
                        }
                        ks->emitted_upto = s;
                        changed = 1;
                }
                /* Records before every open (or retained) window are done with. */
                uint32_t drop = 0;
                while (drop < ks->n && item_i64(ks_item(ks, isz, drop), 0) <
                                               st - w->grace - w->size - w->retention)
                        drop++;
                if (drop) {
                        ks_remove(ks, isz, 0, drop);
                        changed = 1;
                }
        }
        if (!changed)
                return;
        if (ks->n == 0)
                retire(t, en);
        else
                dmp_dirty_mark(&t->dirty, en);
}

/* The key's live session / sliding state after emitting what has closed at
 * the stream time (step 2 of the order per event), or NULL; *h is its
 * entry hash. */
static dmp_entry_t *keyed_lookup_ready(dmp_engine_t *e, task_t *t, int wi, const char *k,
                                       size_t kl, uint64_t key_hash, uint64_t *h) {
        *h = dmp_entry_hash(key_hash, wi, DMP_START_KEYSTATE);
        dmp_entry_t *en = dmp_wtable_find(&t->table, *h, wi, DMP_START_KEYSTATE, k, kl);
        if (!en)
                return NULL;
        keyed_close_ready(e, t, en);
        return (en->flags & DMP_ENTRY_CLOSED) ? NULL : en;
}

static void session_event(dmp_engine_t *e, task_t *t, int wi, int64_t ts, const char *k,
                          size_t kl, uint64_t key_hash, const double *vals, uint64_t defined) {
        const dmp_window_t *w = &e->windows[wi];
        size_t isz = SESSION_ITEM_SIZE(w->nmeasures);
        int64_t st = t->stream_time;
        uint64_t h;
        dmp_entry_t *en = keyed_lookup_ready(e, t, wi, k, kl, key_hash, &h);
        keystate_t *ks = en ? ks_of(en) : NULL;

        /* The session this event makes: it and every open session within
         * the gap of it. */
        int64_t mstart = ts, mlast = ts;
        uint32_t open0 = ks ? session_first_open(w, ks) : 0;
        uint32_t first = open0, cnt = 0;
        for (uint32_t i = open0; ks && i < ks->n; i++) {
                const unsigned char *s = ks_item(ks, isz, i);
                int64_t ss = item_i64(s, 0), sl = item_i64(s, 8);
                if (ss - w->gap <= ts && ts <= sl + w->gap) {
                        if (!cnt)
                                first = i;
                        cnt++;
                        if (ss < mstart)
                                mstart = ss;
                        if (sl > mlast)
                                mlast = sl;
                } else if (ss - w->gap > ts) {
                        if (!cnt)
                                first = i;
                        break;
                } else {
                        first = i + 1;
                }
        }
        if (mlast + w->grace < st) { /* Kafka Streams: merged end < stream time - grace */
                count_late(e, t, wi, k, kl, key_hash);
                return;
        }
        if (!en) {
                en = keystate_new(t, wi, k, kl, h);
                ks = ks_of(en);
                first = 0;
                cnt = 0;
        }
        dmp_agg_t aggs[DMP_MAX_MEASURES];
        for (int j = 0; j < w->nmeasures; j++) {
                dmp_agg_init(&aggs[j]);
                if (defined & (1ULL << w->measures[j]))
                        dmp_agg_add(&aggs[j], vals[w->measures[j]]);
        }
        for (uint32_t i = first; i < first + cnt; i++) {
                const unsigned char *s = ks_item(ks, isz, i);
                for (int j = 0; j < w->nmeasures; j++) {
                        dmp_agg_t part;
                        memcpy(&part, s + SESSION_AGGS_AT + sizeof(dmp_agg_t) * (size_t)j,
                               sizeof(part));
                        dmp_agg_merge(&aggs[j], &part);
                }
        }
        if (cnt)
                ks_remove(ks, isz, first, cnt);
        unsigned char *s = ks_insert(t, ks, isz, first);
        memcpy(s, &mstart, 8);
        memcpy(s + 8, &mlast, 8);
        uint64_t flags = ITEM_NEW;
        memcpy(s + SESSION_FLAGS_AT, &flags, 8);
        memcpy(s + SESSION_AGGS_AT, aggs, sizeof(dmp_agg_t) * (size_t)w->nmeasures);
        en->flags |= DMP_ENTRY_CHANGED;
        dmp_dirty_mark(&t->dirty, en);
        keyed_schedule(e, t, en);
}

static void sliding_event(dmp_engine_t *e, task_t *t, int wi, int64_t ts, const char *k,
                          size_t kl, uint64_t key_hash, const double *vals, uint64_t defined) {
        const dmp_window_t *w = &e->windows[wi];
        size_t isz = RECORD_ITEM_SIZE(w->nmeasures);
        int64_t st = t->stream_time;
        uint64_t h;
        dmp_entry_t *en = keyed_lookup_ready(e, t, wi, k, kl, key_hash, &h);
        if (ts + w->size + w->grace <= st) { /* even [ts, ts + D] is closed */
                count_late(e, t, wi, k, kl, key_hash);
                return;
        }
        if (!en)
                en = keystate_new(t, wi, k, kl, h);
        keystate_t *ks = ks_of(en);
        uint32_t pos = ks->n;
        while (pos > 0 && item_i64(ks_item(ks, isz, pos - 1), 0) > ts)
                pos--;
        unsigned char *r = ks_insert(t, ks, isz, pos);
        uint32_t mask = 0;
        memcpy(r, &ts, 8);
        memcpy(r + 8, &st, 8);
        for (int j = 0; j < w->nmeasures; j++) {
                double v = 0.0;
                if (defined & (1ULL << w->measures[j])) {
                        mask |= 1u << j;
                        v = vals[w->measures[j]];
                }
                memcpy(r + 24 + 8 * j, &v, 8);
        }
        memcpy(r + 16, &mask, 4);
        uint32_t flags = ITEM_NEW;
        memcpy(r + RECORD_FLAGS_AT, &flags, 4);
        en->flags |= DMP_ENTRY_CHANGED;
        dmp_dirty_mark(&t->dirty, en);
        keyed_schedule(e, t, en);
}

/* Fires the scheduling buckets of a session / sliding definition that hold
 * close times <= stream time: each key closes exactly what has closed and
 * is rescheduled; keys not due yet go back to the same bucket, which is
 * checked again when the stream time advances. */
static void close_keyed(dmp_engine_t *e, task_t *t, int wi) {
        bucket_list_t *bl = &t->windows[wi];
        int64_t q = e->quantum[wi];
        while (bl->n && bl->b[0].start * q <= t->stream_time) {
                bucket_t b = bl->b[0]; /* detach: rescheduling may add buckets */
                buckets_drop_front(bl, 1);
                for (size_t i = 0; i < b.n; i++) {
                        dmp_entry_t *en = b.v[i];
                        keystate_t *ks = ks_of(en);
                        ks->refs--;
                        if (en->flags & ENTRY_ZOMBIE) {
                                if (ks->refs == 0) {
                                        t->entry_bytes -= entry_bytes(e, en);
                                        entry_free(en);
                                }
                                continue;
                        }
                        if (ks->sched != b.start || (en->flags & DMP_ENTRY_CLOSED))
                                continue; /* stale: it moved, or was retired */
                        ks->sched = INT64_MIN;
                        if (keyed_next_close(&e->windows[wi], ks) <= t->stream_time)
                                keyed_close_ready(e, t, en);
                        if (!(en->flags & DMP_ENTRY_CLOSED))
                                keyed_schedule(e, t, en);
                }
                free(b.v);
                if (bl->n && bl->b[0].start == b.start)
                        break; /* what is left of it is not due yet */
        }
}

static inline __attribute__((always_inline)) void close_windows(dmp_engine_t *e, task_t *t) {
        for (int wi = 0; wi < e->nwindows; wi++) {
                if (dmp_window_is_keyed(&e->windows[wi]))
                        close_keyed(e, t, wi);
                else if (!t->windows[wi].due_known || t->stream_time >= t->windows[wi].due)
                        close_fixed(e, t, wi); /* (the test inline: runs per event) */
        }
}

/* ---- partitions ---- */

/* Whether a stored time is one the engine can have written: event times
 * are within +-2^60 ms (idle advances add wall-clock time) and durations
 * within 2^50, so the window arithmetic on times within +-2^61 cannot
 * overflow. A corrupt or foreign store is refused instead (fuzz finding,
 * docs/FUZZING.md). */
static int stored_time_ok(int64_t t) {
        return t >= -(INT64_C(1) << 61) && t <= INT64_C(1) << 61;
}

/* The times of a stored key state: sessions [start, last] in order,
 * records in time order, all in range. */
static int stored_keystate_ok(const dmp_window_t *w, const unsigned char *items, uint32_t n,
                              int64_t emitted_upto) {
        size_t isz = item_size(w);
        int64_t prev = INT64_MIN;
        if (emitted_upto != INT64_MIN && !stored_time_ok(emitted_upto))
                return 0;
        for (uint32_t i = 0; i < n; i++) {
                int64_t t0 = item_i64(items + (size_t)i * isz, 0);
                int64_t t1 = item_i64(items + (size_t)i * isz, 8);
                if (!stored_time_ok(t0) || !stored_time_ok(t1))
                        return 0;
                if (w->kind == DMP_WINDOW_SESSION ? t0 > t1 || (i && t0 <= prev) : t0 < prev)
                        return 0;
                prev = w->kind == DMP_WINDOW_SESSION ? t1 : t0;
        }
        return 1;
}

static int load_entry(void *opaque, int win, const char *key, size_t key_len, int64_t start,
                      const void *val, size_t len) {
        load_ctx_t *lc = opaque;
        dmp_engine_t *e = lc->e;
        const unsigned char *v = val;
        if (win >= e->nwindows || len < 3)
                return -1;
        const dmp_window_t *w = &e->windows[win];
        uint64_t h = dmp_entry_hash(dmp_hash_bytes(key, key_len, 0), win, start);
        dmp_entry_t *en;
        if (v[0] == ENTRY_VERSION_KEYSTATE) {
                uint32_t n;
                size_t isz = item_size(w);
                if (start != DMP_START_KEYSTATE || !dmp_window_is_keyed(w) ||
                    v[2] != w->nmeasures || len < 15)
                        return -1;
                memcpy(&n, v + 11, 4);
                int64_t upto;
                memcpy(&upto, v + 3, 8);
                if (len != 15 + (size_t)n * isz || !stored_keystate_ok(w, v + 15, n, upto))
                        return -1;
                en = keystate_new(lc->t, win, key, key_len, h);
                keystate_t *ks = ks_of(en);
                memcpy(&ks->emitted_upto, v + 3, 8);
                ks->items = dmp_malloc((size_t)n * isz);
                memcpy(ks->items, v + 15, (size_t)n * isz);
                ks->n = ks->cap = n;
                lc->t->entry_bytes += (uint64_t)n * isz;
                en->flags = DMP_ENTRY_PERSISTED;
                keyed_schedule(e, lc->t, en);
                return 0;
        }
        if (v[0] != ENTRY_VERSION_WINDOW || len != 3 + (size_t)v[2] * sizeof(dmp_agg_t))
                return -1;
        int late = start == DMP_START_LATE;
        if (v[2] != (late ? 1 : w->nmeasures) || (!late && dmp_window_is_keyed(w)) ||
            (!late && !stored_time_ok(start)))
                return -1;
        if (lc->lazy && !late && !(v[1] & DMP_ENTRY_EMITTED) &&
            lc->t->entry_bytes > e->mem.entries / 2) {
                /* Over half the share while opening a partition: leave it in
                 * the store, to be reloaded on touch or close (eviction). */
                bucket_get(&lc->t->windows[win], start)->evicted++;
                lc->t->evicted++;
                return 0;
        }
        en = dmp_entry_new(h, win, start, key, key_len, v[2]);
        lc->t->entry_bytes += entry_bytes(e, en);
        memcpy(en->aggs, v + 3, (size_t)v[2] * sizeof(dmp_agg_t));
        en->flags = DMP_ENTRY_PERSISTED | (v[1] & DMP_ENTRY_EMITTED);
        dmp_wtable_insert(&lc->t->table, en);
        if (!late) {
                bucket_t *b = bucket_get(&lc->t->windows[win], start);
                bucket_push(b, en);
                if (en->flags & DMP_ENTRY_EMITTED)
                        b->emitted = 1;
        }
        return 0;
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
        if (r > 0 && (t->next_offset < -1 ||
                      (t->stream_time != INT64_MIN && !stored_time_ok(t->stream_time)))) {
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
        long n = dmp_store_scan(e->store, partition, load_entry, &lc, errstr, errstr_size);
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

void dmp_engine_partition_close(dmp_engine_t *e, int32_t partition) {
        task_t *t = task_get(e, partition);
        if (!t)
                return;
        task_free(t);
        e->tasks[partition] = NULL;
        if (e->groups)
                dmp_groups_partition_close(e->groups, partition);
}

/* ---- the hot path ---- */

int dmp_engine_wants(const dmp_engine_t *e, int32_t partition, int64_t offset) {
        const task_t *t = task_get(e, partition);
        return t && offset >= t->next_offset;
}

int dmp_engine_process(dmp_engine_t *e, int32_t partition, int64_t offset, const void *key,
                       size_t key_len, int64_t kafka_ts, const void *payload, size_t len,
                       uint32_t *late_mask, char *errstr, size_t errstr_size) {
        task_t *t = task_get(e, partition);
        *late_mask = 0;
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
        for (int wi = 0; wi < e->nwindows; wi++) {
                uint64_t late_before = e->stats.late_by_window[wi];
                switch (e->windows[wi].kind) {
                case DMP_WINDOW_TUMBLING:
                case DMP_WINDOW_HOPPING:
                        fixed_event(e, t, wi, ts, k, kl, key_hash, vals, defined);
                        break;
                case DMP_WINDOW_SESSION:
                        session_event(e, t, wi, ts, k, kl, key_hash, vals, defined);
                        break;
                case DMP_WINDOW_SLIDING:
                        sliding_event(e, t, wi, ts, k, kl, key_hash, vals, defined);
                        break;
                }
                if (e->stats.late_by_window[wi] != late_before)
                        *late_mask |= 1u << wi;
        }
        if (e->groups)
                dmp_groups_event(e->groups, partition, t->stream_time, &ev, ts, vals, defined);
        return 0;
}

void dmp_engine_idle_tick(dmp_engine_t *e, int64_t now_ms, int64_t idle_timeout_ms,
                          dmp_caught_up_cb_t *caught_up, void *opaque) {
        for (int32_t p = 0; p < e->ntasks; p++) {
                task_t *t = e->tasks[p];
                if (!t || t->idle_base_st == INT64_MIN ||
                    now_ms - t->idle_base_wall < idle_timeout_ms ||
                    !caught_up(opaque, p, t->next_offset))
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
        for (int32_t p = 0; p < e->ntasks; p++) {
                const task_t *t = e->tasks[p];
                if (!t)
                        continue;
                if (t->stream_time == INT64_MIN) {
                        if (e->caught_up &&
                            !e->caught_up(e->caught_up_opaque, p, t->next_offset))
                                return INT64_MIN;
                        continue;
                }
                if (t->stream_time < wm)
                        wm = t->stream_time;
        }
        return wm == INT64_MAX ? INT64_MIN : wm;
}

void dmp_engine_set_caught_up(dmp_engine_t *e, dmp_caught_up_cb_t *cb, void *opaque) {
        e->caught_up = cb;
        e->caught_up_opaque = opaque;
}

void dmp_engine_emit_updates(dmp_engine_t *e) {
        for (int32_t p = 0; p < e->ntasks; p++) {
                task_t *t = e->tasks[p];
                if (!t)
                        continue;
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
        if (e->groups)
                dmp_groups_emit(e->groups, instance_watermark(e));
}

static void engine_mem_update(dmp_engine_t *e);

int dmp_engine_sync(dmp_engine_t *e, char *errstr, size_t errstr_size) {
        return dmp_store_sync(e->store, errstr, errstr_size);
}

int dmp_engine_commit(dmp_engine_t *e, char *errstr, size_t errstr_size) {
        if (e->failure[0]) { /* state the engine needed could not be read */
                snprintf(errstr, errstr_size, "%s", e->failure);
                return -1;
        }
        for (int32_t p = 0; p < e->ntasks; p++) {
                task_t *t = e->tasks[p];
                if (!t)
                        continue;
                /* Each dirty entry is in the list once (DMP_ENTRY_DIRTY), so it
                 * is written once per commit. Not sorted: sorting the list in
                 * store key order made RocksDB's memtable inserts cheap but
                 * cost more (bench_windows, 1 M keys x 5 windows: glibc qsort
                 * +10 % commit time, and its temporary buffer's malloc/free
                 * triggered malloc_consolidate, slowing the hot path's entry
                 * allocations by ~30 %). */
                for (size_t i = 0; i < t->dirty.n; i++) {
                        dmp_entry_t *en = t->dirty.v[i];
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
        if (dmp_store_commit_async(e->store, errstr, errstr_size))
                return -1;
        if (e->groups)
                dmp_groups_committed(e->groups);
        uint64_t open = 0;
        for (int32_t p = 0; p < e->ntasks; p++) {
                task_t *t = e->tasks[p];
                if (!t)
                        continue;
                for (size_t i = 0; i < t->dirty.n; i++) {
                        dmp_entry_t *en = t->dirty.v[i];
                        if (!(en->flags & DMP_ENTRY_CLOSED)) {
                                en->flags = (uint8_t)((en->flags & (DMP_ENTRY_EMITTED |
                                                                    DMP_ENTRY_CHANGED)) |
                                                      DMP_ENTRY_PERSISTED);
                        } else if (en->ext && ks_of(en)->refs > 0) {
                                en->flags = DMP_ENTRY_CLOSED | ENTRY_ZOMBIE;
                        } else {
                                t->entry_bytes -= entry_bytes(e, en);
                                entry_free(en);
                        }
                }
                dmp_dirty_clear(&t->dirty);
                t->meta_dirty = 0;
                open += t->table.cnt;
        }
        e->stats.commits++;
        engine_mem_update(e);
        if (e->stats.mem_entries > e->mem.entries) {
                /* Everything is clean now: evict down to half the share, so
                 * that the next eviction is some time away. */
                uint64_t bytes = e->stats.mem_entries;
                for (int32_t p = 0; p < e->ntasks; p++)
                        if (e->tasks[p])
                                evict(e, e->tasks[p], &bytes, e->mem.entries / 2);
                open = 0;
                for (int32_t p = 0; p < e->ntasks; p++)
                        if (e->tasks[p])
                                open += e->tasks[p]->table.cnt;
                engine_mem_update(e);
        }
        e->stats.open_entries = open;
        return 0;
}

static void engine_mem_update(dmp_engine_t *e) {
        uint64_t entries = 0;
        for (int32_t p = 0; p < e->ntasks; p++) {
                const task_t *t = e->tasks[p];
                if (t)
                        entries += t->entry_bytes + dmp_wtable_bytes(&t->table) +
                                   t->dirty.cap * sizeof(*t->dirty.v);
        }
        e->stats.mem_entries = entries;
        dmp_store_mem_usage(e->store, &e->stats.mem_block_cache, &e->stats.mem_memtables);
}

int dmp_engine_over_budget(dmp_engine_t *e) {
        engine_mem_update(e);
        int over = e->stats.mem_entries > e->mem.entries ||
                   e->stats.mem_entries + e->stats.mem_block_cache + e->stats.mem_memtables >
                           e->stats.mem_budget;
        e->stats.pressure_commits += (uint64_t)over;
        return over;
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
        dmp_decoder_set_schema_cache(e->decoder, (size_t)e->conf->input.registry_cache_size);
}

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
        const unsigned char *v = val;
        (void)key;
        (void)key_len;
        if (win != qc->wi || start == DMP_START_LATE)
                return 0;
        if (len != 3 + sizeof(dmp_agg_t) * (size_t)w->nmeasures || v[0] != ENTRY_VERSION_WINDOW)
                return -1;
        for (int j = 0; j < w->nmeasures; j++) {
                dmp_agg_t a;
                memcpy(&a, v + 3 + j * sizeof(dmp_agg_t), sizeof(a));
                if (a.count > 0)
                        qc->cb(qc->opaque, start, start + w->size,
                               qc->e->measures[w->measures[j]].name, &a,
                               (v[1] & DMP_ENTRY_EMITTED) != 0);
        }
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
        for (int32_t p = 0; p < e->ntasks; p++) {
                if (!e->tasks[p])
                        continue;
                long r = dmp_store_scan_key(e->store, p, wi, key, key_len, query_one, &qc, errstr,
                                            errstr_size);
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
        for (int32_t p = 0; p < e->ntasks; p++) {
                const task_t *t = e->tasks[p];
                if (!t)
                        continue;
                dmp_task_info_t ti = {p, t->next_offset, t->stream_time, t->events,
                                      (uint64_t)t->table.cnt};
                cb(opaque, &ti);
        }
}

void dmp_engine_set_groups_sink(dmp_engine_t *e, const dmp_groups_sink_t *sink) {
        if (e->groups)
                dmp_groups_set_sink(e->groups, sink);
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

/* ---- inspection (dmpflow state) ---- */

/* Checks one aggregate; appends it to out. Returns 0 or -1 (errstr). */
static int describe_agg(const dmp_agg_t *a, const char *name, char *out, size_t *n,
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
        if (v[0] == ENTRY_VERSION_KEYSTATE) {
                uint32_t cnt;
                size_t isz = item_size(w);
                if (start != DMP_START_KEYSTATE || !dmp_window_is_keyed(w) ||
                    v[2] != w->nmeasures || len < 15 ||
                    (memcpy(&cnt, v + 11, 4), len != 15 + (size_t)cnt * isz)) {
                        snprintf(errstr, errstr_size, "window %s: malformed key state", w->name);
                        return -1;
                }
                if (n < out_size)
                        n += (size_t)snprintf(out + n, out_size - n, " %s: %u %s",
                                              dmp_window_kind_name(w->kind), cnt,
                                              w->kind == DMP_WINDOW_SESSION ? "sessions"
                                                                            : "records");
                int64_t prev = INT64_MIN;
                for (uint32_t i = 0; i < cnt; i++) {
                        const unsigned char *it = v + 15 + (size_t)i * isz;
                        int64_t t0 = item_i64(it, 0), t1 = item_i64(it, 8);
                        if (!stored_time_ok(t0) || !stored_time_ok(t1)) {
                                snprintf(errstr, errstr_size, "window %s: item %u: time out of "
                                         "range", w->name, i);
                                return -1;
                        }
                        if (w->kind == DMP_WINDOW_SESSION) {
                                if (t0 > t1 || (i && t0 <= prev)) {
                                        snprintf(errstr, errstr_size, "window %s: session %u "
                                                 "[%" PRId64 ", %" PRId64 "] out of order",
                                                 w->name, i, t0, t1);
                                        return -1;
                                }
                                prev = t1;
                                if (n < out_size)
                                        n += (size_t)snprintf(out + n, out_size - n,
                                                              "\n  session [%" PRId64 ", %" PRId64
                                                              "]", t0, t1 + 1);
                                for (int j = 0; j < w->nmeasures; j++) {
                                        dmp_agg_t a;
                                        memcpy(&a, it + SESSION_AGGS_AT + sizeof(a) * (size_t)j,
                                               sizeof(a));
                                        if (describe_agg(&a, e->measures[w->measures[j]].name,
                                                         out, &n, out_size, errstr, errstr_size))
                                                return -1;
                                }
                        } else if (i && t0 < prev) {
                                snprintf(errstr, errstr_size, "window %s: records out of time "
                                         "order", w->name);
                                return -1;
                        } else {
                                prev = t0;
                        }
                }
                return 0;
        }
        int late = start == DMP_START_LATE;
        if (v[0] != ENTRY_VERSION_WINDOW || len != 3 + (size_t)v[2] * sizeof(dmp_agg_t) ||
            v[2] != (late ? 1 : w->nmeasures) || (!late && dmp_window_is_keyed(w)) ||
            (v[1] & ~DMP_ENTRY_EMITTED)) {
                snprintf(errstr, errstr_size, "window %s: malformed entry (version %d, %zu "
                         "bytes)", w->name, v[0], len);
                return -1;
        }
        if (!late && !stored_time_ok(start)) {
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
                if (describe_agg(&a[j], e->measures[w->measures[j]].name, out, &n, out_size,
                                 errstr, errstr_size))
                        return -1;
        return 0;
}
