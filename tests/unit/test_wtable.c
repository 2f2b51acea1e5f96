/* Unit tests of src/wtable.c: the open-addressing table of window entries,
 * with forced hash collisions, removal in random order (backward-shift
 * deletion) and growth, checked against a naive model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>

#include "wtable.h"

static uint64_t rng_state;
static uint64_t rnd(void) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 0x2545f4914f6cdd1dULL;
}

static void shuffle(size_t *v, size_t n) {
        for (size_t i = n - 1; i > 0; i--) {
                size_t j = (size_t)(rnd() % (i + 1));
                size_t t = v[i];
                v[i] = v[j];
                v[j] = t;
        }
}

/* Entry i of a test set: key "key-<i>", window i % 3, start i * 7 - 5000
 * (negative too), hash as given. */
static dmp_entry_t *make(size_t i, uint64_t hash) {
        char key[32];
        int l = snprintf(key, sizeof(key), "key-%zu", i);
        return dmp_entry_new(hash, (int)(i % 3), (int64_t)i * 7 - 5000, key, (size_t)l, 1);
}

static dmp_entry_t *find_like(const dmp_wtable_t *t, const dmp_entry_t *e) {
        return dmp_wtable_find(t, e->hash, e->win, e->start, dmp_entry_key(e), e->key_len);
}

/* The linear-probing invariant: every entry is reachable from its home
 * slot without crossing an empty slot. Also counts the entries. */
static void check_invariant(const dmp_wtable_t *t) {
        assert_true(t->cap >= 64 && (t->cap & (t->cap - 1)) == 0);
        assert_true(t->cnt * 4 <= t->cap * 3);
        size_t mask = t->cap - 1, n = 0;
        for (size_t j = 0; j < t->cap; j++) {
                if (!t->slots[j])
                        continue;
                n++;
                for (size_t i = t->slots[j]->hash & mask; i != j; i = (i + 1) & mask)
                        if (!t->slots[i])
                                fail_msg("entry at slot %zu (home %zu) is cut off by the hole at "
                                         "%zu", j, (size_t)(t->slots[j]->hash & mask), i);
        }
        assert_int_equal(n, t->cnt);
}

/* Checks that exactly the entries with present[i] are found. */
static void check_all(const dmp_wtable_t *t, dmp_entry_t **e, const int *present, size_t n) {
        size_t cnt = 0;
        for (size_t i = 0; i < n; i++) {
                dmp_entry_t *f = find_like(t, e[i]);
                if (present[i]) {
                        if (f != e[i])
                                fail_msg("entry %zu not found", i);
                        cnt++;
                } else if (f) {
                        fail_msg("removed entry %zu still found", i);
                }
        }
        assert_int_equal(t->cnt, cnt);
}

static void test_entry_new(void **state) {
        (void)state;
        dmp_entry_t *e = dmp_entry_new(0x1234, 7, -42, "abc", 3, 3);
        assert_true(e->hash == 0x1234);
        assert_int_equal(e->win, 7);
        assert_true(e->start == -42);
        assert_int_equal(e->key_len, 3);
        assert_int_equal(e->nmeasures, 3);
        assert_int_equal(e->flags, 0);
        assert_memory_equal(dmp_entry_key(e), "abc", 3);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(e->aggs[i].count, 0);
                assert_true(isinf(e->aggs[i].min) && e->aggs[i].min > 0);
                assert_true(isinf(e->aggs[i].max) && e->aggs[i].max < 0);
        }
        /* the key lies after the aggregates and does not overlap them */
        assert_true(dmp_entry_key(e) == (char *)&e->aggs[3]);
        free(e);
}

/* Thousands of entries with one and the same hash. */
static void test_same_hash(void **state) {
        (void)state;
        enum { N = 2000 };
        const uint64_t H = ~0ULL; /* home: the last slot, so runs wrap around */
        dmp_entry_t **e = malloc(N * sizeof(*e));
        int *present = calloc(N, sizeof(*present));
        size_t *order = malloc(N * sizeof(*order));
        dmp_wtable_t t;
        dmp_wtable_init(&t);
        for (size_t i = 0; i < N; i++) {
                e[i] = make(i, H);
                dmp_wtable_insert(&t, e[i]);
                present[i] = 1;
                order[i] = i;
        }
        assert_int_equal(t.cnt, N);
        check_invariant(&t);
        check_all(&t, e, present, N);

        /* same hash, different identity: not found */
        assert_null(dmp_wtable_find(&t, H, 0, e[0]->start, "key-0x", 6));
        assert_null(dmp_wtable_find(&t, H, 1, e[0]->start, "key-0", 5)); /* other window */
        assert_null(dmp_wtable_find(&t, H, 0, e[0]->start + 1, "key-0", 5)); /* other start */
        assert_null(dmp_wtable_find(&t, H - 1, 0, e[0]->start, "key-0", 5)); /* other hash */
        assert_true(dmp_wtable_find(&t, H, 0, e[0]->start, "key-0", 5) == e[0]);

        /* removing an absent entry changes nothing */
        dmp_entry_t *absent = dmp_entry_new(H, 0, 0, "nope", 4, 1);
        dmp_wtable_remove(&t, absent);
        assert_int_equal(t.cnt, N);
        free(absent);

        rng_state = 0x1234567;
        shuffle(order, N);
        for (size_t k = 0; k < N; k++) {
                size_t i = order[k];
                dmp_wtable_remove(&t, e[i]);
                present[i] = 0;
                assert_null(find_like(&t, e[i]));
                assert_int_equal(t.cnt, N - k - 1);
                if (k % 199 == 0 || k + 1 == N) {
                        check_invariant(&t);
                        check_all(&t, e, present, N);
                }
        }
        for (size_t i = 0; i < t.cap; i++)
                assert_null(t.slots[i]);
        dmp_wtable_clear(&t);
        assert_null(t.slots);
        for (size_t i = 0; i < N; i++)
                free(e[i]);
        free(e);
        free(present);
        free(order);
}

/* A few home slots shared by many entries, around the wrap-around point
 * (the last slots and the first ones), plus spread-out hashes, removed in
 * random order with everything checked after each removal. */
static uint64_t clustered_hash(size_t i) {
        static const uint64_t homes[] = {~0ULL, ~0ULL - 1, ~0ULL - 3, 0, 1, 2, 5};
        if (i % 4 == 3)
                return dmp_mix64(i + 1); /* spread out */
        return homes[rnd() % (sizeof(homes) / sizeof(homes[0]))];
}

static void test_random_removal_order(void **state) {
        (void)state;
        enum { N = 240, ROUNDS = 12 };
        dmp_entry_t *e[N];
        int present[N];
        size_t order[N];
        rng_state = 42;
        for (int round = 0; round < ROUNDS; round++) {
                dmp_wtable_t t;
                dmp_wtable_init(&t);
                for (size_t i = 0; i < N; i++) {
                        e[i] = make(i, clustered_hash(i));
                        dmp_wtable_insert(&t, e[i]);
                        present[i] = 1;
                        order[i] = i;
                }
                check_invariant(&t);
                check_all(&t, e, present, N);
                shuffle(order, N);
                for (size_t k = 0; k < N; k++) {
                        dmp_wtable_remove(&t, e[order[k]]);
                        present[order[k]] = 0;
                        check_invariant(&t);
                        check_all(&t, e, present, N);
                }
                dmp_wtable_clear(&t);
                for (size_t i = 0; i < N; i++)
                        free(e[i]);
        }
}

/* Random inserts and removes against a model of which entries are in. */
static void test_random_ops_model(void **state) {
        (void)state;
        enum { POOL = 600, OPS = 30000 };
        dmp_entry_t **e = malloc(POOL * sizeof(*e));
        int *present = calloc(POOL, sizeof(*present));
        rng_state = 7;
        for (size_t i = 0; i < POOL; i++)
                e[i] = make(i, clustered_hash(i));
        dmp_wtable_t t;
        dmp_wtable_init(&t);
        for (int op = 0; op < OPS; op++) {
                size_t i = (size_t)(rnd() % POOL);
                if (present[i]) {
                        assert_true(find_like(&t, e[i]) == e[i]);
                        dmp_wtable_remove(&t, e[i]);
                        present[i] = 0;
                        assert_null(find_like(&t, e[i]));
                } else {
                        assert_null(find_like(&t, e[i]));
                        dmp_wtable_insert(&t, e[i]);
                        present[i] = 1;
                        assert_true(find_like(&t, e[i]) == e[i]);
                }
                if (op % 500 == 0) {
                        check_invariant(&t);
                        check_all(&t, e, present, POOL);
                }
        }
        check_invariant(&t);
        check_all(&t, e, present, POOL);
        dmp_wtable_clear(&t);
        for (size_t i = 0; i < POOL; i++)
                free(e[i]);
        free(e);
        free(present);
}

static void test_growth(void **state) {
        (void)state;
        enum { N = 20000 };
        dmp_entry_t **e = malloc(N * sizeof(*e));
        int *present = malloc(N * sizeof(*present));
        dmp_wtable_t t;
        dmp_wtable_init(&t);
        assert_int_equal(t.cap, 64);
        assert_int_equal(t.cnt, 0);
        size_t grows = 0, cap = t.cap;
        for (size_t i = 0; i < N; i++) {
                char key[32];
                int l = snprintf(key, sizeof(key), "key-%zu", i);
                uint64_t h = dmp_entry_hash(dmp_hash_bytes(key, (size_t)l, 0), (int)(i % 3),
                                            (int64_t)i * 7 - 5000);
                e[i] = make(i, h);
                dmp_wtable_insert(&t, e[i]);
                present[i] = 1;
                if (t.cap != cap) {
                        assert_int_equal(t.cap, cap * 2);
                        cap = t.cap;
                        grows++;
                        /* all still findable right after a resize */
                        check_all(&t, e, present, i + 1);
                }
                assert_true(t.cnt * 4 <= t.cap * 3);
        }
        /* 20000 entries at load <= 0.75 need 32768 slots: 64 -> 32768 is 9 doublings */
        assert_int_equal(t.cap, 32768);
        assert_int_equal(grows, 9);
        check_invariant(&t);
        check_all(&t, e, present, N);
        /* remove every other one, the rest stays findable */
        for (size_t i = 0; i < N; i += 2) {
                dmp_wtable_remove(&t, e[i]);
                present[i] = 0;
        }
        check_invariant(&t);
        check_all(&t, e, present, N);
        dmp_wtable_clear(&t);
        for (size_t i = 0; i < N; i++)
                free(e[i]);
        free(e);
        free(present);
}

/* dmp_bytes_eq agrees with memcmp at every length up to 40 and every
 * position of a difference; the buffers end at an allocation's end so that
 * ASan sees any read past them. */
static void test_bytes_eq(void **state) {
        (void)state;
        for (size_t n = 0; n <= 40; n++) {
                char *a = malloc(n ? n : 1), *b = malloc(n ? n : 1);
                for (size_t i = 0; i < n; i++)
                        a[i] = b[i] = (char)('a' + i % 26);
                assert_true(dmp_bytes_eq(a, b, n));
                for (size_t i = 0; i < n; i++) {
                        b[i] ^= 0x20;
                        assert_false(dmp_bytes_eq(a, b, n));
                        b[i] ^= 0x20;
                }
                free(a);
                free(b);
        }
}

/* dmp_hash_bytes tells apart every string of up to 2 bytes over a small
 * alphabet and keys that differ in one byte or in length only (the
 * overlapping tail loads must not lose a byte), and it spreads keys like
 * user-000123 over a table's low bits and the tag's high bits. */
static void test_hash_bytes(void **state) {
        (void)state;
        enum { N = 1 + 16 + 16 * 16 };
        uint64_t h[N];
        size_t n = 0;
        h[n++] = dmp_hash_bytes("", 0, 0);
        for (int i = 0; i < 16; i++) {
                char s[1] = {(char)i};
                h[n++] = dmp_hash_bytes(s, 1, 0);
        }
        for (int i = 0; i < 16; i++)
                for (int j = 0; j < 16; j++) {
                        char s[2] = {(char)i, (char)j};
                        h[n++] = dmp_hash_bytes(s, 2, 0);
                }
        for (size_t i = 0; i < n; i++)
                for (size_t j = i + 1; j < n; j++)
                        assert_true(h[i] != h[j]);
        char key[40] = "0123456789abcdefghijklmnopqrstuvwxyz012";
        for (size_t len = 1; len <= sizeof(key); len++) {
                uint64_t base = dmp_hash_bytes(key, len, 0);
                assert_true(base != dmp_hash_bytes(key, len - 1, 0));
                for (size_t i = 0; i < len; i++) {
                        key[i] ^= 1;
                        assert_true(base != dmp_hash_bytes(key, len, 0));
                        key[i] ^= 1;
                }
        }
        /* 4096 keys into 1024 low-bit slots and 1024 high-bit buckets:
         * no slot is hit more than a few times over the mean of 4 */
        int lo[1024] = {0}, hi[1024] = {0};
        for (int i = 0; i < 4096; i++) {
                char k[16];
                int l = snprintf(k, sizeof(k), "user-%06d", i);
                uint64_t x = dmp_hash_bytes(k, (size_t)l, 0);
                lo[x & 1023]++;
                hi[x >> 54]++;
        }
        for (int i = 0; i < 1024; i++) {
                assert_true(lo[i] <= 16);
                assert_true(hi[i] <= 16);
        }
}

/* dmp_format_long writes what snprintf("%" PRId64) writes: the extremes,
 * every power of ten and its neighbours, and random values. */
static void test_format_long(void **state) {
        (void)state;
        int64_t vals[200];
        size_t n = 0;
        vals[n++] = INT64_MIN;
        vals[n++] = INT64_MAX;
        vals[n++] = 0;
        for (int64_t p = 1;; p *= 10) { /* 10^0 .. 10^18 */
                for (int64_t d = -1; d <= 1; d++) {
                        vals[n++] = p + d;
                        vals[n++] = -(p + d);
                }
                if (p > INT64_MAX / 10)
                        break;
        }
        uint64_t rng = 7;
        while (n < sizeof(vals) / sizeof(vals[0])) {
                rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
                vals[n++] = (int64_t)rng >> (rng % 60);
        }
        for (size_t i = 0; i < n; i++) {
                char want[32], got[32];
                int wl = snprintf(want, sizeof(want), "%lld", (long long)vals[i]);
                size_t gl = dmp_format_long(got, vals[i]);
                assert_int_equal(gl, (size_t)wl);
                assert_memory_equal(got, want, gl);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_entry_new),
                cmocka_unit_test(test_same_hash),
                cmocka_unit_test(test_random_removal_order),
                cmocka_unit_test(test_random_ops_model),
                cmocka_unit_test(test_growth),
                cmocka_unit_test(test_bytes_eq),
                cmocka_unit_test(test_hash_bytes),
                cmocka_unit_test(test_format_long),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
