/* The in-memory table of open window aggregates of one partition: an
 * open-addressing hash table (linear probing, backward-shift deletion) of
 * entries keyed by (window definition, key, window start).
 *
 * Ownership: the table holds pointers; entries are owned by the engine. */
#ifndef DMP_WTABLE_H
#define DMP_WTABLE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "agg.h"
#include "util.h"

#define DMP_ENTRY_DIRTY     0x1 /* changed since the last commit (in the dirty list) */
#define DMP_ENTRY_PERSISTED 0x2 /* RocksDB holds a version of it */
#define DMP_ENTRY_CLOSED    0x4 /* out of the table: delete from state at commit, then free */
#define DMP_ENTRY_CHANGED   0x8 /* updated since its last update-mode result */
#define DMP_ENTRY_EMITTED   0x10 /* its final result is out; kept for retention */

/* Starts of the entries that are not windows. */
#define DMP_START_LATE     INT64_MIN       /* late-event counter of a key */
#define DMP_START_KEYSTATE (INT64_MIN + 1) /* sessions / sliding records of a key */

typedef struct dmp_entry {
        uint64_t hash;
        int64_t start;
        uint16_t win;
        uint16_t key_len;
        uint8_t flags;
        uint8_t nmeasures;
        void *ext;        /* DMP_START_KEYSTATE: the key's state (engine.c) */
        dmp_agg_t aggs[]; /* nmeasures aggregates, then key_len key bytes */
} dmp_entry_t;

/* Whether e is retired (DMP_ENTRY_CLOSED) and the store never held it:
 * the commit has nothing to delete, so it can be freed before. */
static inline int dmp_entry_closed_unstored(const dmp_entry_t *e) {
        return (e->flags & (DMP_ENTRY_CLOSED | DMP_ENTRY_PERSISTED)) == DMP_ENTRY_CLOSED;
}

static inline char *dmp_entry_key(const dmp_entry_t *e) {
        return (char *)&e->aggs[e->nmeasures];
}

static inline uint64_t dmp_entry_hash(uint64_t key_hash, int win, int64_t start) {
        return dmp_mix64(key_hash ^ ((uint64_t)start * 0x9e3779b97f4a7c15ULL) ^ (uint64_t)win);
}

/* Allocates an entry with zeroed aggregates. */
dmp_entry_t *dmp_entry_new(uint64_t hash, int win, int64_t start, const char *key,
                           size_t key_len, int nmeasures);

/* Slots are two parallel arrays: the entry pointers, and a 16-bit tag per
 * slot (the hash's top 16 bits with the low bit set; 0: empty). A probe
 * reads tags only and dereferences an entry only when its tag matches:
 * dereferencing every probed entry to compare its hash was ~2/3 of the
 * lookup's time (a cache miss per probe; perf annotate of
 * dmp_wtable_find, core pipeline with 1 k keys). */
typedef struct dmp_wtable {
        dmp_entry_t **slots;
        uint16_t *tags;
        size_t cap; /* power of two */
        size_t cnt;
} dmp_wtable_t;

/* Bytes of the slot arrays (for the memory accounting). */
static inline size_t dmp_wtable_bytes(const dmp_wtable_t *t) {
        return t->cap * (sizeof(*t->slots) + sizeof(*t->tags));
}

void dmp_wtable_init(dmp_wtable_t *t);
/* Frees the slots, not the entries. */
void dmp_wtable_clear(dmp_wtable_t *t);

/* The tag of a hash: its top 16 bits, never 0 (positions use the low bits). */
static inline uint16_t dmp_wtable_tag(uint64_t hash) {
        return (uint16_t)((hash >> 48) | 1u);
}

/* The entry (win, start, key) of hash, or NULL. Inline: it runs up to three
 * times per event (a window, a running group, a windowed group), and the
 * call was ~15 % of its instructions (callgrind, core row). */
static inline dmp_entry_t *dmp_wtable_find(const dmp_wtable_t *t, uint64_t hash, int win,
                                           int64_t start, const char *key, size_t key_len) {
        size_t mask = t->cap - 1;
        uint16_t tag = dmp_wtable_tag(hash);
        for (size_t i = hash & mask;; i = (i + 1) & mask) {
                uint16_t tg = t->tags[i];
                if (!tg)
                        return NULL;
                if (tg == tag) {
                        dmp_entry_t *e = t->slots[i];
                        if (e->hash == hash && e->start == start && e->win == win &&
                            e->key_len == key_len && dmp_bytes_eq(dmp_entry_key(e), key, key_len))
                                return e;
                }
        }
}

/* Inserts e, which must not be present. */
void dmp_wtable_insert(dmp_wtable_t *t, dmp_entry_t *e);
/* Removes e if present. */
void dmp_wtable_remove(dmp_wtable_t *t, const dmp_entry_t *e);

/* The entries changed since the last commit (DMP_ENTRY_DIRTY set), each
 * once: written, or deleted if DMP_ENTRY_CLOSED, at the commit. The list
 * does not own them. */
typedef struct dmp_dirty {
        dmp_entry_t **v;
        size_t n, cap;
        size_t dead; /* entries of v the owner counted as freeable before the commit */
} dmp_dirty_t;

/* Appends e and sets DMP_ENTRY_DIRTY (the slow half of dmp_dirty_mark). */
void dmp_dirty_append(dmp_dirty_t *d, dmp_entry_t *e);

/* Empties the list (after a commit has written it). */
static inline void dmp_dirty_clear(dmp_dirty_t *d) {
        d->n = 0;
        d->dead = 0;
}

/* Once the dead entries are >= 4096 and at least half of the list (so a
 * compaction frees at least half of what it walks), offers every entry to
 * release(opaque, e), which frees a dead one and returns 1 (it leaves the
 * list) or returns 0 (it stays, in order); then dead is 0. */
void dmp_dirty_compact(dmp_dirty_t *d, int (*release)(void *opaque, dmp_entry_t *e),
                       void *opaque);

/* Marks e dirty. Inline: it runs for every entry an event updates, which
 * is dirty already but for its first update after a commit. */
static inline void dmp_dirty_mark(dmp_dirty_t *d, dmp_entry_t *e) {
        if (!(e->flags & DMP_ENTRY_DIRTY))
                dmp_dirty_append(d, e);
}
/* Shrinks the slot array to the smallest power of two (>= 64) that keeps
 * the load factor <= 0.5, after many removals (eviction). */
void dmp_wtable_fit(dmp_wtable_t *t);

#endif
