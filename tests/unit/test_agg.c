/* Unit tests of src/agg.h: Welford updates and Chan merges against a naive
 * two-pass computation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>

#include "agg.h"

#define N 5000

/* Deterministic xorshift64* in [0, 1). */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static double rnd(void) {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        return (double)((rng * 0x2545f4914f6cdd1dULL) >> 11) / 9007199254740992.0;
}

typedef struct naive {
        int64_t count;
        double sum, min, max, mean, var;
} naive_t;

/* Two passes: the mean first, then the squared deviations from it. */
static naive_t naive(const double *x, size_t n) {
        naive_t r = {.count = (int64_t)n, .min = INFINITY, .max = -INFINITY};
        for (size_t i = 0; i < n; i++) {
                r.sum += x[i];
                if (x[i] < r.min)
                        r.min = x[i];
                if (x[i] > r.max)
                        r.max = x[i];
        }
        if (!n)
                return r;
        r.mean = r.sum / (double)n;
        double ss = 0.0;
        for (size_t i = 0; i < n; i++)
                ss += (x[i] - r.mean) * (x[i] - r.mean);
        r.var = ss / (double)n;
        return r;
}

static void assert_rel(double got, double want, double rel, const char *what) {
        double scale = fmax(fabs(got), fabs(want));
        if (!(fabs(got - want) <= rel * scale))
                fail_msg("%s: got %.17g, want %.17g", what, got, want);
}

static void assert_matches(const dmp_agg_t *a, const naive_t *n) {
        assert_int_equal(a->count, n->count);
        assert_rel(a->sum, n->sum, 1e-9, "sum");
        assert_true(a->min == n->min);
        assert_true(a->max == n->max);
        assert_rel(a->mean, n->mean, 1e-9, "mean");
        assert_rel(dmp_agg_variance(a), n->var, 1e-9, "variance");
        assert_rel(dmp_agg_stddev(a), sqrt(n->var), 1e-9, "stddev");
}

static void fill(double *x, size_t n, double offset, double spread) {
        for (size_t i = 0; i < n; i++)
                x[i] = offset + spread * (rnd() - 0.5);
}

static void test_welford_vs_two_pass(void **state) {
        (void)state;
        static double x[N];
        /* centred, offset (where the one-pass sum-of-squares formula loses
         * digits), tiny and huge magnitudes */
        static const double params[][2] = {{0, 10}, {1e6, 1}, {-250, 3000}, {1e-6, 1e-7},
                                           {1e12, 1e9}};
        for (size_t k = 0; k < sizeof(params) / sizeof(params[0]); k++) {
                fill(x, N, params[k][0], params[k][1]);
                dmp_agg_t a;
                dmp_agg_init(&a);
                for (size_t i = 0; i < N; i++)
                        dmp_agg_add(&a, x[i]);
                naive_t n = naive(x, N);
                assert_matches(&a, &n);
        }
}

/* Issue 5's robustness check: 10^7 values of large magnitude and small
 * variance (1e9 + uniform noise of width 1: variance 1/12), added one by one
 * and, separately, as 16 partitions merged by Chan's formula (as group
 * statistics are), against a two-pass computation in long double. A naive
 * sum-of-squares formula would lose every digit here (1e18 - 1e18). */
static void test_ten_million_large_offset(void **state) {
        (void)state;
        enum { BIG = 10000000, PARTS = 16 };
        double *x = malloc(sizeof(double) * BIG);
        assert_non_null(x);
        fill(x, BIG, 1e9, 1.0);
        long double sum = 0;
        for (size_t i = 0; i < BIG; i++)
                sum += x[i];
        long double mean = sum / BIG, ss = 0;
        for (size_t i = 0; i < BIG; i++)
                ss += ((long double)x[i] - mean) * ((long double)x[i] - mean);
        double want_var = (double)(ss / BIG);
        assert_true(fabs(want_var - 1.0 / 12) < 1e-3); /* the data is what we think */

        dmp_agg_t one, parts[PARTS], merged;
        dmp_agg_init(&one);
        dmp_agg_init(&merged);
        for (int p = 0; p < PARTS; p++)
                dmp_agg_init(&parts[p]);
        for (size_t i = 0; i < BIG; i++) {
                dmp_agg_add(&one, x[i]);
                dmp_agg_add(&parts[i % PARTS], x[i]);
        }
        for (int p = 0; p < PARTS; p++)
                dmp_agg_merge(&merged, &parts[p]);
        const dmp_agg_t *both[2] = {&one, &merged};
        for (int k = 0; k < 2; k++) {
                assert_int_equal(both[k]->count, BIG);
                assert_rel(both[k]->mean, (double)mean, 1e-12, "mean");
                /* relative error of the variance: 1e-6 is ~10 digits below
                 * what a sum-of-squares formula would keep (none) */
                assert_rel(dmp_agg_variance(both[k]), want_var, 1e-6, "variance");
                print_message("%s: variance relative error %.2g\n", k ? "16 merged partitions"
                                                                        : "one by one",
                              fabs(dmp_agg_variance(both[k]) - want_var) / want_var);
        }
        free(x);
}

static void test_small_by_hand(void **state) {
        (void)state;
        dmp_agg_t a;
        dmp_agg_init(&a);
        const double x[] = {2, 4, 4, 4, 5, 5, 7, 9}; /* mean 5, population stddev 2 */
        for (size_t i = 0; i < 8; i++)
                dmp_agg_add(&a, x[i]);
        assert_int_equal(a.count, 8);
        assert_true(a.sum == 40.0);
        assert_true(a.min == 2.0);
        assert_true(a.max == 9.0);
        assert_true(fabs(a.mean - 5.0) < 1e-15);
        assert_true(fabs(dmp_agg_variance(&a) - 4.0) < 1e-14);
        assert_true(fabs(dmp_agg_stddev(&a) - 2.0) < 1e-14);
        assert_true(fabs(a.m2 - 32.0) < 1e-13);
}

static void test_merge_splits(void **state) {
        (void)state;
        static double x[N];
        fill(x, N, 100.0, 50.0);
        naive_t whole = naive(x, N);
        const size_t splits[] = {0, 1, 2, N / 3, N / 2, N - 1, N};
        for (size_t s = 0; s < sizeof(splits) / sizeof(splits[0]); s++) {
                size_t k = splits[s];
                dmp_agg_t a, b;
                dmp_agg_init(&a);
                dmp_agg_init(&b);
                for (size_t i = 0; i < k; i++)
                        dmp_agg_add(&a, x[i]);
                for (size_t i = k; i < N; i++)
                        dmp_agg_add(&b, x[i]);
                /* each part is right on its own */
                naive_t na = naive(x, k), nb = naive(x + k, N - k);
                assert_matches(&a, &na);
                assert_matches(&b, &nb);
                dmp_agg_t ab = a, ba = b;
                dmp_agg_merge(&ab, &b);
                dmp_agg_merge(&ba, &a);
                assert_matches(&ab, &whole);
                assert_matches(&ba, &whole);
        }
}

static void test_merge_many_parts(void **state) {
        (void)state;
        static double x[N];
        fill(x, N, -3.0, 7.0);
        naive_t whole = naive(x, N);
        /* 37 uneven parts, merged left to right */
        dmp_agg_t total;
        dmp_agg_init(&total);
        size_t i = 0;
        for (size_t part = 1; i < N; part++) {
                dmp_agg_t p;
                dmp_agg_init(&p);
                size_t end = i + part * 7 % 251 + 1;
                if (end > N)
                        end = N;
                for (; i < end; i++)
                        dmp_agg_add(&p, x[i]);
                dmp_agg_merge(&total, &p);
        }
        assert_matches(&total, &whole);
}

static void test_empty_merges(void **state) {
        (void)state;
        dmp_agg_t e1, e2, a;
        dmp_agg_init(&e1);
        dmp_agg_init(&e2);
        dmp_agg_merge(&e1, &e2);
        assert_int_equal(e1.count, 0);
        assert_true(e1.sum == 0.0 && e1.mean == 0.0 && e1.m2 == 0.0);
        assert_true(isinf(e1.min) && e1.min > 0);
        assert_true(isinf(e1.max) && e1.max < 0);
        assert_true(dmp_agg_variance(&e1) == 0.0);
        assert_true(dmp_agg_stddev(&e1) == 0.0);

        dmp_agg_init(&a);
        dmp_agg_add(&a, 3.0);
        dmp_agg_add(&a, -1.0);
        dmp_agg_t before = a;
        dmp_agg_merge(&a, &e2); /* + empty: unchanged */
        assert_memory_equal(&a, &before, sizeof(a));

        dmp_agg_merge(&e1, &a); /* empty + a: a */
        assert_int_equal(e1.count, 2);
        assert_true(e1.sum == 2.0);
        assert_true(e1.min == -1.0);
        assert_true(e1.max == 3.0);
        assert_true(e1.mean == 1.0);
        assert_true(dmp_agg_variance(&e1) == 4.0);
}

static void test_min_max(void **state) {
        (void)state;
        dmp_agg_t a, b;
        dmp_agg_init(&a);
        dmp_agg_init(&b);
        dmp_agg_add(&a, -5.5);
        dmp_agg_add(&a, 2.0);
        dmp_agg_add(&b, 10.0);
        dmp_agg_add(&b, -7.0);
        dmp_agg_add(&b, 0.0);
        assert_true(a.min == -5.5 && a.max == 2.0);
        assert_true(b.min == -7.0 && b.max == 10.0);
        dmp_agg_merge(&a, &b);
        assert_true(a.min == -7.0 && a.max == 10.0);
        assert_int_equal(a.count, 5);

        /* all negative: max is negative (not 0 from an initial value) */
        dmp_agg_init(&a);
        dmp_agg_add(&a, -3.0);
        dmp_agg_add(&a, -2.0);
        assert_true(a.max == -2.0 && a.min == -3.0);
        /* all positive: min is positive */
        dmp_agg_init(&a);
        dmp_agg_add(&a, 3.0);
        dmp_agg_add(&a, 2.0);
        assert_true(a.min == 2.0 && a.max == 3.0);
}

static void test_single_value(void **state) {
        (void)state;
        const double vals[] = {0.0, 1.0, -123.456, 1e300, 5e-324};
        for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
                dmp_agg_t a;
                dmp_agg_init(&a);
                dmp_agg_add(&a, vals[i]);
                assert_int_equal(a.count, 1);
                assert_true(a.mean == vals[i]);
                assert_true(a.sum == vals[i]);
                assert_true(a.min == vals[i] && a.max == vals[i]);
                assert_true(dmp_agg_variance(&a) == 0.0);
                assert_true(dmp_agg_stddev(&a) == 0.0);
        }
        /* a constant series has no spread either */
        dmp_agg_t a;
        dmp_agg_init(&a);
        for (int i = 0; i < 1000; i++)
                dmp_agg_add(&a, 0.1);
        assert_true(dmp_agg_stddev(&a) < 1e-12);
        assert_rel(a.mean, 0.1, 1e-12, "mean");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_welford_vs_two_pass),
                cmocka_unit_test(test_ten_million_large_offset),
                cmocka_unit_test(test_small_by_hand),
                cmocka_unit_test(test_merge_splits),
                cmocka_unit_test(test_merge_many_parts),
                cmocka_unit_test(test_empty_merges),
                cmocka_unit_test(test_min_max),
                cmocka_unit_test(test_single_value),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
