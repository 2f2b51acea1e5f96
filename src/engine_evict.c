/* Eviction and the memory budget (docs/STATE.md "Memory budget").
 *
 * Under memory pressure, right after a commit, clean tumbling / hopping
 * entries (in the store, not dirty, not emitted, no pending update) are
 * freed and counted in their window's bucket (bucket_t.evicted). A touch of
 * an evicted entry reloads it with one point get (only in buckets that
 * evicted something, so the common miss of a new key costs nothing); a
 * window closing with evicted entries reloads them with one scan of the
 * partition before emitting. Session / sliding key states and late
 * counters are not evicted.
 *
 * Threads: the processing thread only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "util.h"

/* Reloads the evicted entry (wi, key, s) of bucket b; NULL if the store has
 * none (a key new to that window). */
dmp_entry_t *evict_reload_entry(dmp_engine_t *e, task_t *t, bucket_t *b, int wi,
                                const char *k, size_t kl, int64_t s, uint64_t h) {
        void *v;
        size_t vl;
        char err[256];
        int r = dmp_store_get_entry(e->store, t->partition, wi, k, kl, s, &v, &vl, err,
                                    sizeof(err));
        if (r <= 0) {
                if (r < 0)
                        engine_state_read_failed(e, t, err);
                return NULL;
        }
        load_ctx_t lc = {e, t, 0};
        int bad = engine_load_entry(&lc, wi, k, kl, s, v, vl);
        free(v);
        if (bad) {
                engine_state_read_failed(e, t, "corrupt state entry on reload");
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
                return engine_load_entry(&rc->lc, win, key, key_len, start, val, len);
        /* Emitted straight from the store and deleted with the next commit,
         * so that closing a window never brings it all back into memory. */
        dmp_engine_t *e = rc->lc.e;
        const dmp_window_t *w = &e->windows[win];
        dmp_agg_t aggs[DMP_MAX_MEASURES];
        uint8_t flags;
        if (engine_decode_window(e, win, start, val, len, aggs, &flags) < 0)
                return -1;
        engine_emit_aggs(e, rc->lc.t, win, key, key_len, start, start + w->size, aggs, 1);
        dmp_store_delete_agg(e->store, rc->lc.t->partition, win, key, key_len, start);
        return 0;
}

/* Brings back every evicted entry of a closing window; in final mode
 * without retention, emits them from the store instead (their final result
 * is all that is left to do with them). */
void evict_reload_bucket(dmp_engine_t *e, task_t *t, int wi, bucket_t *b) {
        char err[256];
        const dmp_window_t *w = &e->windows[wi];
        reload_ctx_t rc = {{e, t, 0}, wi, b->start,
                           w->emit == DMP_EMIT_FINAL && w->retention == 0};
        if (dmp_store_scan(e->store, t->partition, reload_one, &rc, err, sizeof(err)) < 0)
                engine_state_read_failed(e, t, err);
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
                                uint64_t sz = engine_entry_bytes(e, en);
                                dmp_wtable_remove(&t->table, en);
                                engine_entry_free(en);
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

void evict_after_commit(dmp_engine_t *e) {
        /* Everything is clean now: evict down to half the share, so that the
         * next eviction is some time away. */
        uint64_t bytes = e->stats.mem_entries;
        task_t *t;
        DMP_TASK_FOREACH(e, t)
                evict(e, t, &bytes, e->mem.entries / 2);
        evict_mem_update(e);
}

void evict_mem_update(dmp_engine_t *e) {
        uint64_t entries = 0;
        task_t *t;
        DMP_TASK_FOREACH(e, t)
                entries += t->entry_bytes + dmp_wtable_bytes(&t->table) +
                           t->dirty.cap * sizeof(*t->dirty.v);
        e->stats.mem_entries = entries;
        dmp_store_mem_usage(e->store, &e->stats.mem_block_cache, &e->stats.mem_memtables);
}

int dmp_engine_over_budget(dmp_engine_t *e) {
        evict_mem_update(e);
        int over = e->stats.mem_entries > e->mem.entries ||
                   e->stats.mem_entries + e->stats.mem_block_cache + e->stats.mem_memtables >
                           e->stats.mem_budget;
        e->stats.pressure_commits += (uint64_t)over;
        return over;
}

