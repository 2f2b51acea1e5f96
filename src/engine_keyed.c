/* Session and sliding windows (Kafka Streams' SessionWindows and
 * SlidingWindows; docs/WINDOWS.md): the state of a key is one entry
 * (start DMP_START_KEYSTATE) whose key state (engine_int.h keystate_t)
 * holds the key's open sessions, or the records its open sliding windows
 * need. A key is scheduled in the bucket of its next close time (buckets
 * of e->quantum[wi] ms); the buckets due at the stream time are fired by
 * keyed_close.
 *
 * Threads: the processing thread only. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "util.h"

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

dmp_entry_t *keyed_new(task_t *t, int wi, const char *k, size_t kl, uint64_t h) {
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
void keyed_emit_updates(dmp_engine_t *e, task_t *t, dmp_entry_t *en) {
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
                        engine_emit_aggs(e, t, en->win, key, en->key_len, item_i64(s, 0),
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
                        engine_emit_aggs(e, t, en->win, key, en->key_len, s, s + w->size, aggs, 0);
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

void keyed_schedule(dmp_engine_t *e, task_t *t, dmp_entry_t *en) {
        keystate_t *ks = ks_of(en);
        int64_t c = keyed_next_close(&e->windows[en->win], ks);
        if (c == INT64_MAX)
                return;
        int64_t id = dmp_floor_div(c, e->quantum[en->win]);
        if (ks->sched == id)
                return;
        ks->sched = id;
        ks->refs++;
        engine_bucket_push(engine_bucket_get(&t->windows[en->win], id), en);
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
                        engine_emit_aggs(e, t, en->win, key, en->key_len, item_i64(s, 0),
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
                                engine_emit_aggs(e, t, en->win, key, en->key_len, s, s + w->size,
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
                engine_retire(t, en);
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

void keyed_session_event(dmp_engine_t *e, task_t *t, int wi, int64_t ts, const char *k,
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
                engine_count_late(e, t, wi, k, kl, key_hash);
                return;
        }
        if (!en) {
                en = keyed_new(t, wi, k, kl, h);
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

void keyed_sliding_event(dmp_engine_t *e, task_t *t, int wi, int64_t ts, const char *k,
                          size_t kl, uint64_t key_hash, const double *vals, uint64_t defined) {
        const dmp_window_t *w = &e->windows[wi];
        size_t isz = RECORD_ITEM_SIZE(w->nmeasures);
        int64_t st = t->stream_time;
        uint64_t h;
        dmp_entry_t *en = keyed_lookup_ready(e, t, wi, k, kl, key_hash, &h);
        if (ts + w->size + w->grace <= st) { /* even [ts, ts + D] is closed */
                engine_count_late(e, t, wi, k, kl, key_hash);
                return;
        }
        if (!en)
                en = keyed_new(t, wi, k, kl, h);
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
void keyed_close(dmp_engine_t *e, task_t *t, int wi) {
        bucket_list_t *bl = &t->windows[wi];
        int64_t q = e->quantum[wi];
        while (bl->n && bl->b[0].start * q <= t->stream_time) {
                bucket_t b = bl->b[0]; /* detach: rescheduling may add buckets */
                engine_buckets_drop_front(bl, 1);
                for (size_t i = 0; i < b.n; i++) {
                        dmp_entry_t *en = b.v[i];
                        keystate_t *ks = ks_of(en);
                        assert(ks->refs > 0); /* this bucket's reference */
                        ks->refs--;
                        if (en->flags & ENTRY_ZOMBIE) {
                                if (ks->refs == 0) {
                                        t->entry_bytes -= engine_entry_bytes(e, en);
                                        engine_entry_free(en);
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


/* The times of a stored key state: sessions [start, last] in order,
 * records in time order, all in range (engine_time_ok). */
static int stored_keystate_ok(const dmp_window_t *w, const unsigned char *items, uint32_t n,
                              const unsigned char *emitted_upto) {
        size_t isz = engine_item_size(w);
        int64_t prev = INT64_MIN, upto = item_i64(emitted_upto, 0);
        if (upto != INT64_MIN && !engine_time_ok(upto))
                return 0;
        for (uint32_t i = 0; i < n; i++) {
                int64_t t0 = item_i64(items + (size_t)i * isz, 0);
                int64_t t1 = item_i64(items + (size_t)i * isz, 8);
                if (!engine_time_ok(t0) || !engine_time_ok(t1))
                        return 0;
                if (w->kind == DMP_WINDOW_SESSION ? t0 > t1 || (i && t0 <= prev) : t0 < prev)
                        return 0;
                prev = w->kind == DMP_WINDOW_SESSION ? t1 : t0;
        }
        return 1;
}

int keyed_load(load_ctx_t *lc, int win, const char *key, size_t key_len, uint64_t h,
               const void *val, size_t len) {
        const dmp_window_t *w = &lc->e->windows[win];
        const unsigned char *v = val;
        uint32_t n;
        size_t isz = engine_item_size(w);
        if (!dmp_window_is_keyed(w) || len < ENTRY_KEYSTATE_HEAD_LEN ||
            v[0] != ENTRY_VERSION_KEYSTATE || v[2] != w->nmeasures)
                return -1;
        memcpy(&n, v + 11, 4);
        if (len != ENTRY_KEYSTATE_HEAD_LEN + (size_t)n * isz ||
            !stored_keystate_ok(w, v + ENTRY_KEYSTATE_HEAD_LEN, n, v + 3))
                return -1;
        dmp_entry_t *en = keyed_new(lc->t, win, key, key_len, h);
        keystate_t *ks = ks_of(en);
        memcpy(&ks->emitted_upto, v + 3, 8);
        ks->items = dmp_malloc((size_t)n * isz);
        memcpy(ks->items, v + ENTRY_KEYSTATE_HEAD_LEN, (size_t)n * isz);
        ks->n = ks->cap = n;
        lc->t->entry_bytes += (uint64_t)n * isz;
        en->flags = DMP_ENTRY_PERSISTED;
        keyed_schedule(lc->e, lc->t, en);
        return 0;
}

int keyed_describe(const dmp_engine_t *e, const dmp_window_t *w, const unsigned char *v,
                   size_t len, char *out, size_t *n, size_t out_size, char *errstr,
                   size_t errstr_size) {
        uint32_t cnt;
        size_t isz = engine_item_size(w);
        if (!dmp_window_is_keyed(w) || v[2] != w->nmeasures || len < ENTRY_KEYSTATE_HEAD_LEN ||
            (memcpy(&cnt, v + 11, 4), len != ENTRY_KEYSTATE_HEAD_LEN + (size_t)cnt * isz)) {
                snprintf(errstr, errstr_size, "window %s: malformed key state", w->name);
                return -1;
        }
        if (*n < out_size)
                *n += (size_t)snprintf(out + *n, out_size - *n, " %s: %u %s",
                                      dmp_window_kind_name(w->kind), cnt,
                                      w->kind == DMP_WINDOW_SESSION ? "sessions"
                                                                    : "records");
        int64_t prev = INT64_MIN;
        for (uint32_t i = 0; i < cnt; i++) {
                const unsigned char *it = v + ENTRY_KEYSTATE_HEAD_LEN + (size_t)i * isz;
                int64_t t0 = item_i64(it, 0), t1 = item_i64(it, 8);
                if (!engine_time_ok(t0) || !engine_time_ok(t1)) {
                        snprintf(errstr, errstr_size, "window %s: item %u: time out of range",
                                 w->name, i);
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
                        if (*n < out_size)
                                *n += (size_t)snprintf(out + *n, out_size - *n,
                                                      "\n  session [%" PRId64 ", %" PRId64
                                                      "]", t0, t1 + 1);
                        for (int j = 0; j < w->nmeasures; j++) {
                                dmp_agg_t a;
                                memcpy(&a, it + SESSION_AGGS_AT + sizeof(a) * (size_t)j,
                                       sizeof(a));
                                if (inspect_describe_agg(&a, e->measures[w->measures[j]].name,
                                                         out, n, out_size, errstr, errstr_size))
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
        return 0;
}
