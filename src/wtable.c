#include "wtable.h"

#include <assert.h>
#include <stdlib.h>

dmp_entry_t *dmp_entry_new(uint64_t hash, int win, int64_t start, const char *key,
                           size_t key_len, int nmeasures) {
        assert(key_len <= UINT16_MAX && nmeasures >= 0 && nmeasures <= UINT8_MAX);
        assert(win >= 0 && win <= UINT16_MAX);
        dmp_entry_t *e = dmp_malloc(sizeof(*e) + sizeof(dmp_agg_t) * (size_t)nmeasures + key_len);
        e->hash = hash;
        e->start = start;
        e->win = (uint16_t)win;
        e->key_len = (uint16_t)key_len;
        e->flags = 0;
        e->nmeasures = (uint8_t)nmeasures;
        e->ext = NULL;
        for (int i = 0; i < nmeasures; i++)
                dmp_agg_init(&e->aggs[i]);
        memcpy(dmp_entry_key(e), key, key_len);
        return e;
}

void dmp_wtable_init(dmp_wtable_t *t) {
        t->cap = 64;
        t->cnt = 0;
        t->slots = dmp_calloc(t->cap, sizeof(*t->slots));
        t->tags = dmp_calloc(t->cap, sizeof(*t->tags));
}

void dmp_wtable_clear(dmp_wtable_t *t) {
        free(t->slots);
        free(t->tags);
        t->slots = NULL;
        t->tags = NULL;
        t->cap = t->cnt = 0;
}

static void place(dmp_entry_t **slots, uint16_t *tags, size_t mask, dmp_entry_t *e) {
        size_t i = e->hash & mask;
        while (tags[i])
                i = (i + 1) & mask;
        slots[i] = e;
        tags[i] = dmp_wtable_tag(e->hash);
}

static void rehash(dmp_wtable_t *t, size_t ncap) {
        dmp_entry_t **ns = dmp_calloc(ncap, sizeof(*ns));
        uint16_t *nt = dmp_calloc(ncap, sizeof(*nt));
        for (size_t i = 0; i < t->cap; i++)
                if (t->tags[i])
                        place(ns, nt, ncap - 1, t->slots[i]);
        free(t->slots);
        free(t->tags);
        t->slots = ns;
        t->tags = nt;
        t->cap = ncap;
}

void dmp_wtable_fit(dmp_wtable_t *t) {
        size_t ncap = 64;
        while (ncap < t->cnt * 2)
                ncap *= 2;
        if (ncap < t->cap)
                rehash(t, ncap);
}

void dmp_wtable_insert(dmp_wtable_t *t, dmp_entry_t *e) {
        if ((t->cnt + 1) * 4 > t->cap * 3) /* keep the load factor <= 0.75 */
                rehash(t, t->cap * 2);
        place(t->slots, t->tags, t->cap - 1, e);
        t->cnt++;
}

void dmp_wtable_remove(dmp_wtable_t *t, const dmp_entry_t *e) {
        size_t mask = t->cap - 1, i = e->hash & mask;
        uint16_t tag = dmp_wtable_tag(e->hash);
        while (!(t->tags[i] == tag && t->slots[i] == e)) {
                if (!t->tags[i])
                        return;
                i = (i + 1) & mask;
        }
        /* Backward-shift deletion: move later members of the probe run into
         * the hole when their home slot does not lie in (hole, j]. */
        size_t hole = i;
        for (size_t j = (i + 1) & mask; t->tags[j]; j = (j + 1) & mask) {
                size_t home = t->slots[j]->hash & mask;
                int between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
                if (!between) {
                        t->slots[hole] = t->slots[j];
                        t->tags[hole] = t->tags[j];
                        hole = j;
                }
        }
        t->slots[hole] = NULL;
        t->tags[hole] = 0;
        t->cnt--;
}

void dmp_dirty_append(dmp_dirty_t *d, dmp_entry_t *e) {
        assert(!(e->flags & DMP_ENTRY_DIRTY)); /* each entry once per commit */
        e->flags |= DMP_ENTRY_DIRTY;
        if (d->n == d->cap) {
                d->cap = d->cap ? d->cap * 2 : 256;
                d->v = dmp_realloc(d->v, d->cap * sizeof(*d->v));
        }
        d->v[d->n++] = e;
}

void dmp_dirty_compact(dmp_dirty_t *d, int (*release)(void *opaque, dmp_entry_t *e),
                       void *opaque) {
        if (d->dead < 4096 || d->dead * 2 < d->n)
                return;
        size_t keep = 0;
        for (size_t i = 0; i < d->n; i++)
                if (!release(opaque, d->v[i]))
                        d->v[keep++] = d->v[i];
        d->n = keep;
        d->dead = 0;
}
