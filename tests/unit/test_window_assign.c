/* Unit tests of src/window.h: assigning an event time to windows, closing,
 * floor division (the engine's semantics per window kind:
 * test_window_semantics.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"
#include "window.h"

static dmp_window_t tumbling(int64_t size, int64_t grace) {
        dmp_window_t w = {.kind = DMP_WINDOW_TUMBLING, .size = size, .advance = size, .grace = grace};
        return w;
}

static dmp_window_t hopping(int64_t size, int64_t advance, int64_t grace) {
        dmp_window_t w = {.kind = DMP_WINDOW_HOPPING, .size = size, .advance = advance, .grace = grace};
        return w;
}

static void test_floor_div(void **state) {
        (void)state;
        assert_int_equal(dmp_floor_div(7, 2), 3);
        assert_int_equal(dmp_floor_div(-7, 2), -4);
        assert_int_equal(dmp_floor_div(7, -2), -4);
        assert_int_equal(dmp_floor_div(-7, -2), 3);
        assert_int_equal(dmp_floor_div(-8, 2), -4);
        assert_int_equal(dmp_floor_div(8, 2), 4);
        assert_int_equal(dmp_floor_div(0, 5), 0);
        assert_int_equal(dmp_floor_div(-1, 1000), -1);
        assert_int_equal(dmp_floor_div(-1000, 1000), -1);
        assert_int_equal(dmp_floor_div(-1001, 1000), -2);
        assert_int_equal(dmp_floor_div(999, 1000), 0);
        assert_true(dmp_floor_div(INT64_MIN, 1) == INT64_MIN);
        assert_true(dmp_floor_div(INT64_MAX, 1000) == INT64_C(9223372036854775));
        assert_true(dmp_floor_div(INT64_MIN, 1000) == INT64_C(-9223372036854776));
        /* brute force: q is floor(a/b) iff q*b <= a < (q+1)*b (b > 0) or
         * q*b >= a > (q+1)*b (b < 0) */
        for (int64_t a = -200; a <= 200; a++)
                for (int64_t b = -9; b <= 9; b++) {
                        if (!b)
                                continue;
                        int64_t q = dmp_floor_div(a, b);
                        if (b > 0)
                                assert_true(q * b <= a && a < (q + 1) * b);
                        else
                                assert_true(q * b >= a && a > (q + 1) * b);
                }
}

static void test_tumbling_assignment(void **state) {
        (void)state;
        dmp_window_t w = tumbling(10, 0);
        static const int64_t cases[][2] = {
                {0, 0},     {1, 0},    {9, 0},      {10, 10},  {11, 10},  {19, 10},
                {-1, -10},  {-9, -10}, {-10, -10},  {-11, -20}, {-20, -20}, {-21, -30},
                {1000000007, 1000000000},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int64_t t = cases[i][0], s = cases[i][1];
                assert_true(dmp_window_first_start(&w, t) == s);
                assert_true(dmp_window_last_start(&w, t) == s);
        }
        /* epoch-ms scale, negative */
        w = tumbling(60000, 0);
        assert_true(dmp_window_first_start(&w, -1) == -60000);
        assert_true(dmp_window_last_start(&w, 1700000012345) == 1700000000000 - 20000);
        assert_true(INT64_C(1700000000000) % 60000 == 20000); /* (why -20000 above) */
}

static void test_hopping_assignment_by_hand(void **state) {
        (void)state;
        dmp_window_t w = hopping(10, 3, 0);
        /* starts are multiples of 3 with w <= t < w + 10 */
        assert_true(dmp_window_first_start(&w, 7) == 0);   /* 0, 3, 6 */
        assert_true(dmp_window_last_start(&w, 7) == 6);
        assert_true(dmp_window_first_start(&w, 0) == -9);  /* -9, -6, -3, 0 */
        assert_true(dmp_window_last_start(&w, 0) == 0);
        assert_true(dmp_window_first_start(&w, -1) == -9); /* -9, -6, -3 */
        assert_true(dmp_window_last_start(&w, -1) == -3);
        assert_true(dmp_window_first_start(&w, -10) == -18); /* -18, -15, -12 */
        assert_true(dmp_window_last_start(&w, -10) == -12);
        assert_true(dmp_window_first_start(&w, 9) == 0);   /* 0, 3, 6, 9 */
        assert_true(dmp_window_last_start(&w, 9) == 9);
        assert_true(dmp_window_first_start(&w, 10) == 3);  /* [0,10) no longer holds 10 */

        w = hopping(10, 5, 0);
        assert_true(dmp_window_first_start(&w, 5) == 0);   /* exactly at a start: 0, 5 */
        assert_true(dmp_window_last_start(&w, 5) == 5);
        assert_true(dmp_window_first_start(&w, 4) == -5);  /* start - 1: -5, 0 */
        assert_true(dmp_window_last_start(&w, 4) == 0);
        assert_true(dmp_window_first_start(&w, -5) == -10);
        assert_true(dmp_window_last_start(&w, -5) == -5);
        assert_true(dmp_window_first_start(&w, -6) == -15);
        assert_true(dmp_window_last_start(&w, -6) == -10);
}

/* Every (size, advance) against a brute-force enumeration of the starts. */
static void test_hopping_assignment_brute_force(void **state) {
        (void)state;
        static const int64_t defs[][2] = {{10, 10}, {10, 5}, {10, 3}, {10, 1}, {7, 2},
                                          {7, 7},   {1, 1},  {12, 4}, {5, 4}};
        for (size_t d = 0; d < sizeof(defs) / sizeof(defs[0]); d++) {
                dmp_window_t w = hopping(defs[d][0], defs[d][1], 0);
                for (int64_t t = -100; t <= 100; t++) {
                        int64_t first = INT64_MAX, last = INT64_MIN;
                        int n = 0;
                        for (int64_t s = -200; s <= 200; s++) {
                                if (s % w.advance != 0 || !(s <= t && t < s + w.size))
                                        continue;
                                if (s < first)
                                        first = s;
                                if (s > last)
                                        last = s;
                                n++;
                        }
                        assert_true(n >= 1);
                        if (dmp_window_first_start(&w, t) != first ||
                            dmp_window_last_start(&w, t) != last)
                                fail_msg("size %lld advance %lld t %lld: got [%lld, %lld], "
                                         "want [%lld, %lld]",
                                         (long long)w.size, (long long)w.advance, (long long)t,
                                         (long long)dmp_window_first_start(&w, t),
                                         (long long)dmp_window_last_start(&w, t),
                                         (long long)first, (long long)last);
                }
        }
}

/* The memoised starts equal the plain ones over in-order runs, jumps back
 * and forth, negative times and large gaps, from a zero memo. */
static void test_memoised_starts(void **state) {
        (void)state;
        static const int64_t defs[][2] = {{10, 10}, {10, 5}, {10, 3}, {7, 2}, {1, 1}, {5, 4}};
        for (size_t d = 0; d < sizeof(defs) / sizeof(defs[0]); d++) {
                dmp_window_t w = hopping(defs[d][0], defs[d][1], 0);
                int64_t last_memo = 0, first_memo = 0, t = -50;
                uint64_t x = 88172645463325252ULL;
                for (int i = 0; i < 20000; i++) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        switch (x % 8) {
                        case 0: t -= (int64_t)(x >> 8 & 31); break; /* out of order */
                        case 1: t += (int64_t)(x >> 8 & 0xfffff) - 0x7ffff; break; /* jump */
                        default: t += (int64_t)(x >> 8 & 3); break; /* in order */
                        }
                        int64_t last = dmp_window_last_start_memo(&w, t, &last_memo);
                        int64_t first = dmp_window_first_start_memo(&w, t, &first_memo);
                        if (last != dmp_window_last_start(&w, t) ||
                            first != dmp_window_first_start(&w, t))
                                fail_msg("size %lld advance %lld t %lld: memo [%lld, %lld], "
                                         "plain [%lld, %lld]",
                                         (long long)w.size, (long long)w.advance, (long long)t,
                                         (long long)first, (long long)last,
                                         (long long)dmp_window_first_start(&w, t),
                                         (long long)dmp_window_last_start(&w, t));
                }
                /* the extremes of the time range */
                int64_t far[] = {-(INT64_C(1) << 60), INT64_C(1) << 60, 0, -1}; /* engine.c bounds */
                for (size_t i = 0; i < sizeof(far) / sizeof(far[0]); i++) {
                        assert_true(dmp_window_last_start_memo(&w, far[i], &last_memo) ==
                                    dmp_window_last_start(&w, far[i]));
                        assert_true(dmp_window_first_start_memo(&w, far[i], &first_memo) ==
                                    dmp_window_first_start(&w, far[i]));
                }
        }
}

static void test_closed(void **state) {
        (void)state;
        dmp_window_t w = tumbling(10, 2);
        /* [0, 10) closes when stream time >= 10 + 2 */
        assert_false(dmp_window_closed(&w, 0, INT64_MIN));
        assert_false(dmp_window_closed(&w, 0, 9));
        assert_false(dmp_window_closed(&w, 0, 10));
        assert_false(dmp_window_closed(&w, 0, 11)); /* end + grace - 1 */
        assert_true(dmp_window_closed(&w, 0, 12));  /* end + grace */
        assert_true(dmp_window_closed(&w, 0, 13));
        assert_false(dmp_window_closed(&w, -10, 1));
        assert_true(dmp_window_closed(&w, -10, 2));

        w = tumbling(10, 0);
        assert_false(dmp_window_closed(&w, 0, 9));
        assert_true(dmp_window_closed(&w, 0, 10));

        w = hopping(10, 5, 3);
        assert_false(dmp_window_closed(&w, 5, 17));
        assert_true(dmp_window_closed(&w, 5, 18));
}

static void test_kind_name(void **state) {
        (void)state;
        assert_string_equal(dmp_window_kind_name(DMP_WINDOW_TUMBLING), "tumbling");
        assert_string_equal(dmp_window_kind_name(DMP_WINDOW_HOPPING), "hopping");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_floor_div),
                cmocka_unit_test(test_tumbling_assignment),
                cmocka_unit_test(test_hopping_assignment_by_hand),
                cmocka_unit_test(test_hopping_assignment_brute_force),
                cmocka_unit_test(test_memoised_starts),
                cmocka_unit_test(test_closed),
                cmocka_unit_test(test_kind_name),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
