/* Session and sliding windows, exactly as Kafka Streams 3.9 computes them
 * (KStreamSessionWindowAggregate, KStreamSlidingWindowAggregate over
 * RocksDB stores; docs/WINDOWS.md has the rules and worked examples): the
 * state of a key is one entry (start DMP_START_KEYSTATE) whose key state
 * (engine_int.h keystate_t) holds the key's sessions, or its sliding
 * windows with their aggregates. A key is scheduled in the bucket of its
 * next close (or purge) time (buckets of e->quantum[wi] ms); the buckets
 * due at the stream time are fired by keyed_close.
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
        en->ext = ks;
        dmp_wtable_insert(&t->table, en);
        t->entry_bytes += sizeof(*en) + kl + sizeof(*ks);
        return en;
}

static uint64_t item_flags(const unsigned char *it) {
        uint64_t flags;
        memcpy(&flags, it + ITEM_FLAGS_AT, 8);
        return flags;
}

static void item_set_flags(unsigned char *it, uint64_t flags) {
        memcpy(it + ITEM_FLAGS_AT, &flags, 8);
}

static void item_set_i64(unsigned char *it, int at, int64_t v) {
        memcpy(it + at, &v, 8);
}

/* The index of the key's first item not emitted yet (emitted ones are a
 * prefix). */
static uint32_t first_open(const dmp_window_t *w, const keystate_t *ks) {
        size_t isz = KEYED_ITEM_SIZE(w->nmeasures);
        uint32_t i = 0;
        while (i < ks->n && (item_flags(ks_item(ks, isz, i)) & ITEM_EMITTED))
                i++;
        return i;
}

/* An item's aggregates into aggs; whether any measure has a value. */
static int item_get_aggs(const dmp_window_t *w, const unsigned char *it, dmp_agg_t *aggs) {
        int any = 0;
        memcpy(aggs, it + ITEM_AGGS_AT, sizeof(dmp_agg_t) * (size_t)w->nmeasures);
        for (int j = 0; j < w->nmeasures; j++)
                any |= aggs[j].count > 0;
        return any;
}

/* Adds the event's defined measures to an item's aggregates. */
static void item_add_event(const dmp_window_t *w, unsigned char *it, const double *vals,
                           uint64_t defined) {
        for (int j = 0; j < w->nmeasures; j++) {
                if (!(defined & (1ULL << w->measures[j])))
                        continue;
                dmp_agg_t a;
                memcpy(&a, it + ITEM_AGGS_AT + sizeof(a) * (size_t)j, sizeof(a));
                dmp_agg_add(&a, vals[w->measures[j]]);
                memcpy(it + ITEM_AGGS_AT + sizeof(a) * (size_t)j, &a, sizeof(a));
        }
}

/* ---- sliding: Kafka Streams' window store ---- */

/* Kafka Streams keeps a sliding window [s, s + D] in a window store of
 * retention 2D + grace (SlidingWindowStoreMaterializer; plus retention.ms
 * here, as Materialized.withRetention would), and a lookup finds it only
 * while s >= observed - retention + 1 (AbstractRocksDBSegmentedBytesStore
 * getActualFrom), observed being the largest window start the store was
 * written: here max(sliding_top, st - D), the second term only making a
 * difference after idle advances (the last event that advanced the
 * stream time wrote its left window, st - D). Visible windows are those
 * with start >= the returned bound. */
static int64_t sliding_seen_from(const dmp_window_t *w, const task_t *t, int wi) {
        int64_t d = w->size - 1, observed = t->stream_time - d;
        if (t->sliding_top[wi] > observed)
                observed = t->sliding_top[wi];
        return observed - (2 * d + w->grace + w->retention) + 1;
}

/* The index of the first window of the key with start >= s. */
static uint32_t sliding_lower_bound(const keystate_t *ks, size_t isz, int64_t s) {
        uint32_t lo = 0, hi = ks->n;
        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (item_i64(ks_item(ks, isz, mid), 0) < s)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static void sliding_wrote(task_t *t, int wi, int64_t s) {
        if (s > t->sliding_top[wi])
                t->sliding_top[wi] = s;
}

/* Kafka Streams' updateWindowAndForward on the key's window i: the event
 * goes into it if it is open (end >= stream time - grace); a closed one is
 * a dropped window instance. Returns 1 if the event went in. */
static int sliding_update(dmp_engine_t *e, task_t *t, int wi, keystate_t *ks, uint32_t i,
                          int64_t ts, const double *vals, uint64_t defined) {
        const dmp_window_t *w = &e->windows[wi];
        unsigned char *it = ks_item(ks, KEYED_ITEM_SIZE(w->nmeasures), i);
        int64_t s = item_i64(it, 0);
        if (s + w->size - 1 < t->stream_time - w->grace) {
                e->stats.late_instances_by_window[wi]++;
                return 0;
        }
        item_add_event(w, it, vals, defined);
        if (ts > item_i64(it, 8))
                item_set_i64(it, 8, ts);
        item_set_flags(it, item_flags(it) | ITEM_NEW);
        sliding_wrote(t, wi, s);
        return 1;
}

/* Writes window s of the key (a store put: replaces one with that start)
 * with aggregates `from` (NULL: none) and largest time maxts. Returns it. */
static unsigned char *sliding_put(task_t *t, int wi, const dmp_window_t *w, keystate_t *ks,
                                  int64_t s, const dmp_agg_t *from, int64_t maxts) {
        size_t isz = KEYED_ITEM_SIZE(w->nmeasures);
        uint32_t i = sliding_lower_bound(ks, isz, s);
        unsigned char *it = i < ks->n && item_i64(ks_item(ks, isz, i), 0) == s
                                    ? ks_item(ks, isz, i)
                                    : ks_insert(t, ks, isz, i);
        item_set_i64(it, 0, s);
        item_set_i64(it, 8, maxts);
        item_set_flags(it, ITEM_NEW);
        for (int j = 0; j < w->nmeasures; j++) {
                dmp_agg_t a;
                if (from)
                        a = from[j];
                else
                        dmp_agg_init(&a);
                memcpy(it + ITEM_AGGS_AT + sizeof(a) * (size_t)j, &a, sizeof(a));
        }
        sliding_wrote(t, wi, s);
        return it;
}

/* A new window [s, s + D] from aggregates `from` (NULL: none) plus the
 * event, if it is open (updateWindowAndForward on a new window); 1 if so. */
static int sliding_create(dmp_engine_t *e, task_t *t, int wi, keystate_t *ks, int64_t s,
                          const dmp_agg_t *from, int64_t ts, const double *vals,
                          uint64_t defined) {
        const dmp_window_t *w = &e->windows[wi];
        if (s + w->size - 1 < t->stream_time - w->grace) {
                e->stats.late_instances_by_window[wi]++;
                return 0;
        }
        item_add_event(w, sliding_put(t, wi, w, ks, s, from, ts), vals, defined);
        return 1;
}

/* Update mode: emits the key's open sessions or sliding windows that
 * changed, and clears the marks. */
void keyed_emit_updates(dmp_engine_t *e, task_t *t, dmp_entry_t *en) {
        const dmp_window_t *w = &e->windows[en->win];
        keystate_t *ks = ks_of(en);
        size_t isz = KEYED_ITEM_SIZE(w->nmeasures);
        const char *key = dmp_entry_key(en);
        for (uint32_t i = first_open(w, ks); i < ks->n; i++) {
                unsigned char *it = ks_item(ks, isz, i);
                uint64_t flags = item_flags(it);
                if (!(flags & ITEM_NEW))
                        continue;
                item_set_flags(it, flags & ~(uint64_t)ITEM_NEW);
                dmp_agg_t aggs[DMP_MAX_MEASURES];
                int any = item_get_aggs(w, it, aggs);
                int64_t s = item_i64(it, 0);
                if (w->kind == DMP_WINDOW_SESSION)
                        engine_emit_aggs(e, t, en->win, key, en->key_len, s, item_i64(it, 8) + 1,
                                         aggs, 0);
                else if (any)
                        engine_emit_aggs(e, t, en->win, key, en->key_len, s, s + w->size, aggs, 0);
        }
}

/* The stream time at which an open item closes. */
static int64_t item_close_time(const dmp_window_t *w, const unsigned char *it) {
        return w->kind == DMP_WINDOW_SESSION ? dmp_session_close_time(w, item_i64(it, 8))
                                             : item_i64(it, 0) + w->size + w->grace;
}

/* The stream time at which an emitted item surely leaves the state. */
static int64_t item_purge_time(const dmp_window_t *w, const unsigned char *it) {
        if (w->kind == DMP_WINDOW_SESSION)
                return dmp_session_close_time(w, item_i64(it, 8)) + w->retention;
        int64_t d = w->size - 1; /* gone from sight once st - D - (2D + grace + ret) >= s */
        return item_i64(it, 0) + 3 * d + w->grace + w->retention;
}

/* The stream time at which the key's next item closes or leaves, or
 * INT64_MAX. */
static int64_t keyed_next_close(const dmp_window_t *w, const keystate_t *ks) {
        if (ks->n == 0)
                return INT64_MAX;
        size_t isz = KEYED_ITEM_SIZE(w->nmeasures);
        uint32_t i = first_open(w, ks);
        int64_t c = i < ks->n ? item_close_time(w, ks_item(ks, isz, i)) : INT64_MAX;
        if (i > 0) {
                int64_t purge = item_purge_time(w, ks->items);
                if (purge < c)
                        c = purge;
        }
        return c;
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
 * st, drops what has left the state, retires the entry once empty. */
static void keyed_close_ready(dmp_engine_t *e, task_t *t, dmp_entry_t *en) {
        const dmp_window_t *w = &e->windows[en->win];
        keystate_t *ks = ks_of(en);
        size_t isz = KEYED_ITEM_SIZE(w->nmeasures);
        int64_t st = t->stream_time;
        const char *key = dmp_entry_key(en);
        int changed = 0;
        uint32_t i = first_open(w, ks);
        while (i < ks->n && item_close_time(w, ks_item(ks, isz, i)) <= st) {
                unsigned char *it = ks_item(ks, isz, i);
                dmp_agg_t aggs[DMP_MAX_MEASURES];
                int any = item_get_aggs(w, it, aggs);
                int64_t s = item_i64(it, 0);
                if (w->kind == DMP_WINDOW_SESSION) {
                        engine_emit_aggs(e, t, en->win, key, en->key_len, s, item_i64(it, 8) + 1,
                                         aggs, 1);
                        e->stats.windows_closed++;
                } else if (any) {
                        /* A window no defined value reached is no result: it
                         * leaves the key's late count for the next. */
                        engine_emit_aggs(e, t, en->win, key, en->key_len, s, s + w->size, aggs, 1);
                        e->stats.windows_closed++;
                }
                item_set_flags(it, ITEM_EMITTED); /* kept, or purged below */
                i++;
                changed = 1;
        }
        /* Emitted items past their retention (sessions) or out of the
         * window store's sight (sliding). */
        int64_t seen_from = w->kind == DMP_WINDOW_SLIDING ? sliding_seen_from(w, t, en->win) : 0;
        uint32_t purge = 0;
        while (purge < ks->n && (item_flags(ks_item(ks, isz, purge)) & ITEM_EMITTED) &&
               (w->kind == DMP_WINDOW_SESSION
                        ? item_purge_time(w, ks_item(ks, isz, purge)) <= st
                        : item_i64(ks_item(ks, isz, purge), 0) < seen_from))
                purge++;
        if (purge) {
                ks_remove(ks, isz, 0, purge);
                changed = 1;
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

static void keyed_changed(dmp_engine_t *e, task_t *t, dmp_entry_t *en) {
        en->flags |= DMP_ENTRY_CHANGED;
        dmp_dirty_mark(&t->dirty, en);
        keyed_schedule(e, t, en);
}

/* KStreamSessionWindowAggregate.process: the event merges with every
 * session of its key that the session store finds (end >= ts - gap,
 * start <= ts + gap, and end > st_before - gap - grace: the store's
 * retention, gap + grace, measured from the largest session end written,
 * which is the stream time before this event); it is late (dropped) if the
 * merged session's end < st - gap - grace. */
void keyed_session_event(dmp_engine_t *e, task_t *t, int wi, int64_t ts, int64_t st_before,
                         const char *k, size_t kl, uint64_t key_hash, const double *vals,
                         uint64_t defined) {
        const dmp_window_t *w = &e->windows[wi];
        size_t isz = KEYED_ITEM_SIZE(w->nmeasures);
        int64_t close = t->stream_time - w->gap - w->grace;
        int64_t seen_after = st_before == INT64_MIN ? INT64_MIN : st_before - w->gap - w->grace;
        uint64_t h;
        dmp_entry_t *en = keyed_lookup_ready(e, t, wi, k, kl, key_hash, &h);
        keystate_t *ks = en ? ks_of(en) : NULL;
        uint32_t open0 = ks ? first_open(w, ks) : 0, n = ks ? ks->n : 0;

#define FOUND(it) (item_i64(it, 8) > seen_after && item_i64(it, 8) >= ts - w->gap && \
                   item_i64(it, 0) <= ts + w->gap)
        int64_t mstart = ts, mlast = ts;
        for (uint32_t i = open0; i < n; i++) {
                const unsigned char *it = ks_item(ks, isz, i);
                if (!FOUND(it))
                        continue;
                if (item_i64(it, 0) < mstart)
                        mstart = item_i64(it, 0);
                if (item_i64(it, 8) > mlast)
                        mlast = item_i64(it, 8);
        }
        if (mlast < close) {
                e->stats.late_instances_by_window[wi]++;
                engine_count_late(e, t, wi, k, kl, key_hash);
                return;
        }
        if (!en) {
                en = keyed_new(t, wi, k, kl, h);
                ks = ks_of(en);
        }
        dmp_agg_t aggs[DMP_MAX_MEASURES];
        for (int j = 0; j < w->nmeasures; j++) {
                dmp_agg_init(&aggs[j]);
                if (defined & (1ULL << w->measures[j]))
                        dmp_agg_add(&aggs[j], vals[w->measures[j]]);
        }
        /* The merged sessions go; the others keep their order. */
        uint32_t kept = open0;
        for (uint32_t i = open0; i < n; i++) {
                unsigned char *it = ks_item(ks, isz, i);
                if (!FOUND(it)) {
                        if (kept != i)
                                memcpy(ks_item(ks, isz, kept), it, isz);
                        kept++;
                        continue;
                }
                for (int j = 0; j < w->nmeasures; j++) {
                        dmp_agg_t part;
                        memcpy(&part, it + ITEM_AGGS_AT + sizeof(part) * (size_t)j, sizeof(part));
                        dmp_agg_merge(&aggs[j], &part);
                }
        }
#undef FOUND
        ks->n = kept;
        /* Sorted by last, then start: the order they close in. */
        uint32_t pos = ks->n;
        while (pos > open0) {
                const unsigned char *p = ks_item(ks, isz, pos - 1);
                if (item_i64(p, 8) < mlast || (item_i64(p, 8) == mlast && item_i64(p, 0) <= mstart))
                        break;
                pos--;
        }
        unsigned char *s = ks_insert(t, ks, isz, pos);
        item_set_i64(s, 0, mstart);
        item_set_i64(s, 8, mlast);
        item_set_flags(s, ITEM_NEW);
        memcpy(s + ITEM_AGGS_AT, aggs, sizeof(dmp_agg_t) * (size_t)w->nmeasures);
        keyed_changed(e, t, en);
}

/* KStreamSlidingWindowAggregate.process with processReverse and
 * createWindows (Kafka Streams 3.9), over the key's windows as its window
 * store would return them (sliding_seen_from). D = size - 1. */
void keyed_sliding_event(dmp_engine_t *e, task_t *t, int wi, int64_t ts, const char *k,
                         size_t kl, uint64_t key_hash, const double *vals, uint64_t defined) {
        const dmp_window_t *w = &e->windows[wi];
        size_t isz = KEYED_ITEM_SIZE(w->nmeasures);
        int64_t d = w->size - 1;
        uint64_t h;
        dmp_entry_t *en = keyed_lookup_ready(e, t, wi, k, kl, key_hash, &h);
        if (ts + d < t->stream_time - w->grace) { /* even [ts, ts + D] is closed */
                e->stats.late_instances_by_window[wi]++;
                engine_count_late(e, t, wi, k, kl, key_hash);
                return;
        }
        if (!en)
                en = keyed_new(t, wi, k, kl, h);
        keystate_t *ks = ks_of(en);
        int64_t lo = ts - 2 * d, seen_from = sliding_seen_from(w, t, wi);
        if (seen_from > lo)
                lo = seen_from;
        /* The windows with start in [lo, ts + 1], latest first. */
        dmp_agg_t right[DMP_MAX_MEASURES], left[DMP_MAX_MEASURES];
        int right_found = 0, right_exists = 0, left_found = 0, left_exists = 0, prev_found = 0;
        int64_t right_max = 0, prev = 0;
        int went = 0; /* windows the event went into */
        for (uint32_t i = sliding_lower_bound(ks, isz, ts + 2); i-- > 0;) {
                unsigned char *it = ks_item(ks, isz, i);
                int64_t s = item_i64(it, 0), end = s + d, m = item_i64(it, 8);
                if (s < lo)
                        break;
                if (s == ts + 1) {
                        right_exists = 1;
                } else if (end > ts) {
                        if (!right_found) { /* its aggregate before this event */
                                item_get_aggs(w, it, right);
                                right_max = m;
                                right_found = 1;
                        }
                        went += sliding_update(e, t, wi, ks, i, ts, vals, defined);
                } else if (end == ts) {
                        left_exists = 1;
                        went += sliding_update(e, t, wi, ks, i, ts, vals, defined);
                        if (m >= ts) /* a record at ts made every window already */
                                goto done;
                        prev = m;
                        prev_found = 1;
                } else {
                        item_get_aggs(w, it, left);
                        left_found = 1;
                        prev = m;
                        prev_found = 1;
                        break;
                }
        }
        /* createWindows: the previous record's right window, the event's left
         * window, its right window. */
        if (prev_found && prev + 1 + d >= ts) {
                uint32_t i = sliding_lower_bound(ks, isz, prev + 1);
                if (i == ks->n || item_i64(ks_item(ks, isz, i), 0) != prev + 1)
                        went += sliding_create(e, t, wi, ks, prev + 1, NULL, ts, vals, defined);
        }
        if (!left_exists)
                went += sliding_create(e, t, wi, ks, ts - d,
                                       left_found && prev >= ts - d ? left : NULL, ts, vals,
                                       defined);
        if (!right_exists && right_found && right_max > ts)
                sliding_put(t, wi, w, ks, ts + 1, right, right_max);
done:
        if (!went) /* in none of its windows: late for this definition */
                engine_count_late(e, t, wi, k, kl, key_hash);
        if (ks->n)
                keyed_changed(e, t, en);
        else
                engine_retire(t, en);
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


/* The index of the first stored item whose times are out of range
 * (engine_time_ok) or out of order, or n: sessions have start <= last and
 * are sorted by last, then start; sliding windows have start <= largest
 * time <= start + D and are sorted by start. */
static uint32_t stored_items_bad(const dmp_window_t *w, const unsigned char *items, uint32_t n) {
        size_t isz = engine_item_size(w);
        int64_t prev0 = INT64_MIN, prev1 = INT64_MIN;
        for (uint32_t i = 0; i < n; i++) {
                int64_t t0 = item_i64(items + (size_t)i * isz, 0);
                int64_t t1 = item_i64(items + (size_t)i * isz, 8);
                if (!engine_time_ok(t0) || !engine_time_ok(t1))
                        return i;
                if (w->kind == DMP_WINDOW_SESSION
                            ? t0 > t1 || (i && (t1 < prev1 || (t1 == prev1 && t0 < prev0)))
                            : t1 < t0 || t1 > t0 + w->size - 1 || (i && t0 <= prev0))
                        return i;
                prev0 = t0;
                prev1 = t1;
        }
        return n;
}

int keyed_load(load_ctx_t *lc, int win, const char *key, size_t key_len, uint64_t h,
               const void *val, size_t len) {
        const dmp_window_t *w = &lc->e->windows[win];
        const unsigned char *v = val;
        uint32_t n;
        size_t isz = engine_item_size(w);
        int version = w->kind == DMP_WINDOW_SLIDING ? ENTRY_VERSION_SLIDING : ENTRY_VERSION_KEYSTATE;
        if (!dmp_window_is_keyed(w) || len < ENTRY_KEYSTATE_HEAD_LEN || v[0] != version ||
            v[2] != w->nmeasures)
                return -1;
        memcpy(&n, v + 11, 4);
        if (len != ENTRY_KEYSTATE_HEAD_LEN + (size_t)n * isz ||
            stored_items_bad(w, v + ENTRY_KEYSTATE_HEAD_LEN, n) != n)
                return -1;
        dmp_entry_t *en = keyed_new(lc->t, win, key, key_len, h);
        keystate_t *ks = ks_of(en);
        ks->items = dmp_malloc((size_t)n * isz);
        memcpy(ks->items, v + ENTRY_KEYSTATE_HEAD_LEN, (size_t)n * isz);
        ks->n = ks->cap = n;
        lc->t->entry_bytes += (uint64_t)n * isz;
        /* The window store's observed time is the largest start written:
         * that window is still in some key's state (it is in sight). */
        if (w->kind == DMP_WINDOW_SLIDING && n)
                sliding_wrote(lc->t, win, item_i64(ks_item(ks, isz, n - 1), 0));
        en->flags = DMP_ENTRY_PERSISTED;
        keyed_schedule(lc->e, lc->t, en);
        return 0;
}

int keyed_describe(const dmp_engine_t *e, const dmp_window_t *w, const unsigned char *v,
                   size_t len, char *out, size_t *n, size_t out_size, char *errstr,
                   size_t errstr_size) {
        uint32_t cnt;
        size_t isz = engine_item_size(w);
        int session = w->kind == DMP_WINDOW_SESSION;
        if (!dmp_window_is_keyed(w) || v[2] != w->nmeasures || len < ENTRY_KEYSTATE_HEAD_LEN ||
            v[0] != (session ? ENTRY_VERSION_KEYSTATE : ENTRY_VERSION_SLIDING) ||
            (memcpy(&cnt, v + 11, 4), len != ENTRY_KEYSTATE_HEAD_LEN + (size_t)cnt * isz)) {
                snprintf(errstr, errstr_size, "window %s: malformed key state", w->name);
                return -1;
        }
        if (*n < out_size)
                *n += (size_t)snprintf(out + *n, out_size - *n, " %s: %u %s",
                                      dmp_window_kind_name(w->kind), cnt,
                                      session ? "sessions" : "windows");
        uint32_t bad = stored_items_bad(w, v + ENTRY_KEYSTATE_HEAD_LEN, cnt);
        if (bad < cnt) {
                const unsigned char *it = v + ENTRY_KEYSTATE_HEAD_LEN + (size_t)bad * isz;
                snprintf(errstr, errstr_size, "window %s: %s %u [%" PRId64 ", %" PRId64
                         "] out of range or out of order", w->name,
                         session ? "session" : "window", bad, item_i64(it, 0), item_i64(it, 8));
                return -1;
        }
        for (uint32_t i = 0; i < cnt; i++) {
                const unsigned char *it = v + ENTRY_KEYSTATE_HEAD_LEN + (size_t)i * isz;
                int64_t t0 = item_i64(it, 0), t1 = item_i64(it, 8);
                if (*n < out_size)
                        *n += (size_t)snprintf(out + *n, out_size - *n,
                                              "\n  %s [%" PRId64 ", %" PRId64 ")%s",
                                              session ? "session" : "window", t0,
                                              session ? t1 + 1 : t0 + w->size,
                                              item_flags(it) & ITEM_EMITTED ? " emitted" : "");
                for (int j = 0; j < w->nmeasures; j++) {
                        dmp_agg_t a;
                        memcpy(&a, it + ITEM_AGGS_AT + sizeof(a) * (size_t)j, sizeof(a));
                        if (inspect_describe_agg(&a, e->measures[w->measures[j]].name,
                                                 out, n, out_size, errstr, errstr_size))
                                return -1;
                }
        }
        return 0;
}
