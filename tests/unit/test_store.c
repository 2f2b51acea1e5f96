/* Unit tests of src/store.c: the RocksDB state store in a temporary
 * directory (aggregates, partition metadata, atomic commits, fingerprint). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <math.h>

#include "agg.h"
#include "store.h"
#include "util.h"

#define FP 0x0123456789abcdefULL

typedef struct row {
        int win;
        char key[64];
        size_t key_len;
        int64_t start;
        int n;
        dmp_agg_t aggs[4];
} row_t;

typedef struct rows {
        row_t v[64];
        int n;
} rows_t;

/* The store keeps values opaque: these tests store arrays of aggregates. */
static int collect(void *opaque, int win, const char *key, size_t key_len, int64_t start,
                   const void *val, size_t val_len) {
        rows_t *r = opaque;
        const dmp_agg_t *aggs = val;
        assert_int_equal(val_len % sizeof(dmp_agg_t), 0);
        int n = (int)(val_len / sizeof(dmp_agg_t));
        assert_true(r->n < 64);
        assert_true(n <= 4);
        assert_true(key_len < 64);
        row_t *row = &r->v[r->n++];
        row->win = win;
        memcpy(row->key, key, key_len);
        row->key_len = key_len;
        row->start = start;
        row->n = n;
        memcpy(row->aggs, aggs, sizeof(*aggs) * (size_t)n);
        return 0;
}

static long scan(dmp_store_t *st, int32_t p, rows_t *r) {
        char err[256] = "";
        r->n = 0;
        long n = dmp_store_scan(st, p, collect, r, err, sizeof(err));
        if (n < 0)
                fail_msg("scan: %s", err);
        assert_int_equal(n, r->n);
        return n;
}

/* An aggregate of values, built by hand (not with dmp_agg_add). */
static dmp_agg_t agg_of(int64_t count, double sum, double min, double max, double m2) {
        dmp_agg_t a = {.count = count, .sum = sum, .min = min, .max = max,
                       .mean = count ? sum / (double)count : 0.0, .m2 = m2};
        return a;
}

typedef struct fixture {
        char dir[64];
} fixture_t;

static int setup(void **state) {
        fixture_t *f = calloc(1, sizeof(*f));
        strcpy(f->dir, "/tmp/dmp-store-XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture_t *f = *state;
        dmp_rmtree(f->dir);
        free(f);
        return 0;
}

static dmp_store_t *open_store(const char *dir, uint64_t fp) {
        char err[512] = "";
        dmp_store_t *st = dmp_store_open(dir, fp, err, sizeof(err));
        if (!st)
                fail_msg("open: %s", err);
        return st;
}

static void put(dmp_store_t *st, int32_t p, int win, const char *key, int64_t start,
                const dmp_agg_t *aggs, int n) {
        dmp_store_put_entry(st, p, win, key, strlen(key), start, aggs, sizeof(*aggs) * (size_t)n);
}

static void assert_row(const row_t *r, int win, const char *key, int64_t start,
                       const dmp_agg_t *aggs, int n) {
        assert_int_equal(r->win, win);
        assert_int_equal(r->key_len, strlen(key));
        assert_memory_equal(r->key, key, r->key_len);
        assert_true(r->start == start);
        assert_int_equal(r->n, n);
        assert_memory_equal(r->aggs, aggs, sizeof(*aggs) * (size_t)n);
}

static void test_round_trip_and_order(void **state) {
        fixture_t *f = *state;
        dmp_agg_t a1[2] = {agg_of(3, 12.0, 3.0, 5.0, 2.0), agg_of(2, 4.0, 1.0, 3.0, 2.0)};
        dmp_agg_t a2[2] = {agg_of(1, -7.5, -7.5, -7.5, 0.0), agg_of(0, 0, INFINITY, -INFINITY, 0)};
        dmp_agg_t a3[1] = {agg_of(5, 1e300, -1e-300, 1e300, 123.25)};
        char err[256];

        dmp_store_t *st = open_store(f->dir, FP);
        /* put in an order unlike the expected scan order */
        put(st, 0, 1, "bob", 100, a3, 1);
        put(st, 0, 0, "bob", -10, a1, 2);
        put(st, 0, 0, "amy", 20, a2, 2);
        put(st, 0, 0, "bob", -20, a2, 2);
        put(st, 0, 0, "amy", -9223372036854775807 - 1, a1, 2);
        put(st, 0, 0, "bob", 0, a1, 2);
        put(st, 0, 0, "amy", 10, a1, 2);
        put(st, 0, 1, "amy", 100, a3, 1);
        put(st, 1, 0, "amy", 10, a3, 1); /* another partition */
        put(st, 0, 0, "bob", 0, a2, 2);  /* the last put of a key wins */
        dmp_store_put_meta(st, 0, 1234, -5);
        dmp_store_put_meta(st, 1, 7, 1700000000000);
        assert_int_equal(dmp_store_commit(st, err, sizeof(err)), 0);
        dmp_store_close(st);

        st = open_store(f->dir, FP);
        rows_t r;
        assert_int_equal(scan(st, 0, &r), 8);
        /* (win, key, start), starts in numeric order, negative first */
        assert_row(&r.v[0], 0, "amy", INT64_MIN, a1, 2);
        assert_row(&r.v[1], 0, "amy", 10, a1, 2);
        assert_row(&r.v[2], 0, "amy", 20, a2, 2);
        assert_row(&r.v[3], 0, "bob", -20, a2, 2);
        assert_row(&r.v[4], 0, "bob", -10, a1, 2);
        assert_row(&r.v[5], 0, "bob", 0, a2, 2);
        assert_row(&r.v[6], 1, "amy", 100, a3, 1);
        assert_row(&r.v[7], 1, "bob", 100, a3, 1);
        /* the infinite min/max of an empty aggregate survive */
        assert_true(isinf(r.v[2].aggs[1].min) && r.v[2].aggs[1].min > 0);

        assert_int_equal(scan(st, 1, &r), 1);
        assert_row(&r.v[0], 0, "amy", 10, a3, 1);
        assert_int_equal(scan(st, 2, &r), 0);

        int64_t off = 0, stime = 0;
        assert_int_equal(dmp_store_get_meta(st, 0, &off, &stime, err, sizeof(err)), 1);
        assert_true(off == 1234);
        assert_true(stime == -5);
        assert_int_equal(dmp_store_get_meta(st, 1, &off, &stime, err, sizeof(err)), 1);
        assert_true(off == 7);
        assert_true(stime == 1700000000000);
        off = stime = 99;
        assert_int_equal(dmp_store_get_meta(st, 2, &off, &stime, err, sizeof(err)), 0);
        assert_true(off == 99 && stime == 99);
        dmp_store_close(st);
}

/* Keys are stored after their length: a key's windows are adjacent and in
 * start order, and keys of one length are in byte order. (Keys of different
 * lengths sort by length first: "zz" after "b" but "b" before "aaa".) */
static void test_key_order_by_length_then_bytes(void **state) {
        fixture_t *f = *state;
        dmp_agg_t a = agg_of(1, 1, 1, 1, 0);
        char err[256];
        dmp_store_t *st = open_store(f->dir, FP);
        put(st, 3, 0, "aaa", 5, &a, 1);
        put(st, 3, 0, "b", 7, &a, 1);
        put(st, 3, 0, "zz", 1, &a, 1);
        put(st, 3, 0, "b", -7, &a, 1);
        put(st, 3, 0, "", 0, &a, 1);
        assert_int_equal(dmp_store_commit(st, err, sizeof(err)), 0);
        rows_t r;
        assert_int_equal(scan(st, 3, &r), 5);
        assert_row(&r.v[0], 0, "", 0, &a, 1);
        assert_row(&r.v[1], 0, "b", -7, &a, 1);
        assert_row(&r.v[2], 0, "b", 7, &a, 1);
        assert_row(&r.v[3], 0, "zz", 1, &a, 1);
        assert_row(&r.v[4], 0, "aaa", 5, &a, 1);
        dmp_store_close(st);
}

static void test_delete_and_uncommitted(void **state) {
        fixture_t *f = *state;
        dmp_agg_t a = agg_of(2, 3, 1, 2, 0.5);
        char err[256];
        dmp_store_t *st = open_store(f->dir, FP);
        put(st, 0, 0, "k1", 0, &a, 1);
        put(st, 0, 0, "k1", 10, &a, 1);
        put(st, 0, 0, "k2", 0, &a, 1);
        dmp_store_put_meta(st, 0, 3, 12);
        assert_int_equal(dmp_store_commit(st, err, sizeof(err)), 0);

        rows_t r;
        /* not visible before the commit */
        dmp_store_delete_agg(st, 0, 0, "k1", 2, 0);
        assert_int_equal(scan(st, 0, &r), 3);
        assert_int_equal(dmp_store_commit(st, err, sizeof(err)), 0);
        assert_int_equal(scan(st, 0, &r), 2);
        assert_row(&r.v[0], 0, "k1", 10, &a, 1);
        assert_row(&r.v[1], 0, "k2", 0, &a, 1);
        /* deleting what is not there is harmless */
        dmp_store_delete_agg(st, 0, 5, "zz", 2, 99);
        assert_int_equal(dmp_store_commit(st, err, sizeof(err)), 0);
        assert_int_equal(scan(st, 0, &r), 2);

        /* a batch not committed before close is lost, the committed state stays */
        put(st, 0, 0, "k3", 0, &a, 1);
        dmp_store_delete_agg(st, 0, 0, "k2", 2, 0);
        dmp_store_put_meta(st, 0, 100, 200);
        dmp_store_close(st);

        st = open_store(f->dir, FP);
        assert_int_equal(scan(st, 0, &r), 2);
        assert_row(&r.v[0], 0, "k1", 10, &a, 1);
        assert_row(&r.v[1], 0, "k2", 0, &a, 1);
        int64_t off, stime;
        assert_int_equal(dmp_store_get_meta(st, 0, &off, &stime, err, sizeof(err)), 1);
        assert_true(off == 3 && stime == 12);
        /* a commit writes the whole batch: deletion, put and metadata at once */
        dmp_store_delete_agg(st, 0, 0, "k1", 2, 10);
        put(st, 0, 2, "k4", -1, &a, 1);
        dmp_store_put_meta(st, 0, 4, 13);
        assert_int_equal(dmp_store_commit(st, err, sizeof(err)), 0);
        dmp_store_close(st);
        st = open_store(f->dir, FP);
        assert_int_equal(scan(st, 0, &r), 2);
        assert_row(&r.v[0], 0, "k2", 0, &a, 1);
        assert_row(&r.v[1], 2, "k4", -1, &a, 1);
        assert_int_equal(dmp_store_get_meta(st, 0, &off, &stime, err, sizeof(err)), 1);
        assert_true(off == 4 && stime == 13);
        dmp_store_close(st);
}

static void test_fingerprint_mismatch(void **state) {
        fixture_t *f = *state;
        char err[512];
        dmp_store_t *st = open_store(f->dir, FP);
        dmp_store_put_meta(st, 0, 1, 1);
        assert_int_equal(dmp_store_commit(st, err, sizeof(err)), 0);
        dmp_store_close(st);

        err[0] = '\0';
        assert_null(dmp_store_open(f->dir, FP ^ 1, err, sizeof(err)));
        assert_non_null(strstr(err, f->dir));
        assert_non_null(strstr(err, "different pipeline"));

        /* the state is untouched: the right fingerprint still opens it */
        st = open_store(f->dir, FP);
        int64_t off, stime;
        assert_int_equal(dmp_store_get_meta(st, 0, &off, &stime, err, sizeof(err)), 1);
        assert_true(off == 1);
        dmp_store_close(st);
}

static void test_open_error(void **state) {
        (void)state;
        char err[512] = "";
        /* a regular file where the directory should be */
        char path[] = "/tmp/dmp-store-file-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        assert_null(dmp_store_open(path, FP, err, sizeof(err)));
        assert_true(err[0] != '\0');
        remove(path);
}

static void test_close_null(void **state) {
        (void)state;
        dmp_store_close(NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_round_trip_and_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_key_order_by_length_then_bytes, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_delete_and_uncommitted, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fingerprint_mismatch, setup, teardown),
                cmocka_unit_test(test_open_error),
                cmocka_unit_test(test_close_null),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
