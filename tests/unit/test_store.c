/* Unit tests of src/store.c: the RocksDB state store in a temporary
 * directory (aggregates, partition metadata, atomic commits, fingerprint). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <rocksdb/c.h>

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


typedef struct grows {
        char key[8][32];
        char val[8][32];
        int n;
} grows_t;

static int collect_group(void *opaque, const char *key, size_t key_len, const void *val,
                         size_t val_len) {
        grows_t *g = opaque;
        assert_true(g->n < 8 && key_len < 32 && val_len < 32);
        memcpy(g->key[g->n], key, key_len);
        g->key[g->n][key_len] = '\0';
        memcpy(g->val[g->n], val, val_len);
        g->val[g->n][val_len] = '\0';
        g->n++;
        return 0;
}

static long scan_groups(dmp_store_t *st, int32_t p, grows_t *g) {
        char err[256] = "";
        g->n = 0;
        long n = dmp_store_scan_groups(st, p, collect_group, g, err, sizeof(err));
        if (n < 0)
                fail_msg("scan groups: %s", err);
        assert_int_equal(n, g->n);
        return n;
}

/* The "groups" family: per partition, in key order, committed with the
 * same batch as the windows and metadata. */
static void test_groups(void **state) {
        fixture_t *f = *state;
        char err[256];
        dmp_store_t *st = open_store(f->dir, FP);
        dmp_store_put_group(st, 1, "seg-b", 5, "2", 1);
        dmp_store_put_group(st, 1, "seg-a", 5, "1", 1);
        dmp_store_put_group(st, 2, "seg-a", 5, "9", 1);
        dmp_store_put_group(st, 1, "seg-c", 5, "3", 1);
        grows_t g;
        assert_int_equal(scan_groups(st, 1, &g), 0); /* not before the commit */
        assert_int_equal(dmp_store_commit(st, err, sizeof(err)), 0);
        assert_int_equal(scan_groups(st, 1, &g), 3);
        assert_string_equal(g.key[0], "seg-a");
        assert_string_equal(g.val[0], "1");
        assert_string_equal(g.key[2], "seg-c");
        dmp_store_delete_group(st, 1, "seg-b", 5);
        dmp_store_put_group(st, 1, "seg-a", 5, "10", 2);
        assert_int_equal(dmp_store_commit(st, err, sizeof(err)), 0);
        dmp_store_close(st);
        st = open_store(f->dir, FP);
        assert_int_equal(scan_groups(st, 1, &g), 2);
        assert_string_equal(g.val[0], "10");
        assert_string_equal(g.key[1], "seg-c");
        assert_int_equal(scan_groups(st, 2, &g), 1);
        assert_int_equal(scan_groups(st, 0, &g), 0);
        dmp_store_close(st);
}

static void add_partition(void *opaque, int32_t p) {
        rows_t *r = opaque;
        r->v[r->n++].win = p;
}

/* Dropping a partition range-deletes its windows, groups and metadata and
 * nothing of its neighbours. */
static void test_drop_partition(void **state) {
        fixture_t *f = *state;
        dmp_agg_t a = agg_of(1, 1, 1, 1, 0);
        char err[256];
        dmp_store_t *st = open_store(f->dir, FP);
        for (int32_t p = 0; p < 3; p++) {
                put(st, p, 0, "k", 5, &a, 1);
                put(st, p, 1, "zzzz", INT64_MAX, &a, 1);
                dmp_store_put_group(st, p, "g", 1, "v", 1);
                dmp_store_put_meta(st, p, 10 + p, 20 + p);
        }
        assert_int_equal(dmp_store_commit(st, err, sizeof(err)), 0);
        dmp_store_put_checkpoint(st, 1, 77);
        assert_int_equal(dmp_store_commit(st, err, sizeof(err)), 0);
        dmp_store_drop_partition(st, 1);
        assert_int_equal(dmp_store_pending(st), 4); /* windows, groups, meta, checkpoint */
        assert_int_equal(dmp_store_commit(st, err, sizeof(err)), 0);
        rows_t r;
        grows_t g;
        assert_int_equal(scan(st, 0, &r), 2);
        assert_int_equal(scan(st, 1, &r), 0);
        assert_int_equal(scan(st, 2, &r), 2);
        assert_int_equal(scan_groups(st, 1, &g), 0);
        assert_int_equal(scan_groups(st, 2, &g), 1);
        int64_t off, stime;
        assert_int_equal(dmp_store_get_meta(st, 1, &off, &stime, err, sizeof(err)), 0);
        assert_int_equal(dmp_store_get_checkpoint(st, 1, &off, err, sizeof(err)), 0);
        r.n = 0;
        assert_int_equal(dmp_store_partitions(st, add_partition, &r, err, sizeof(err)), 2);
        assert_int_equal(r.v[0].win, 0);
        assert_int_equal(r.v[1].win, 2);
        dmp_store_close(st);
}

/* ---- the changelog hooks ---- */

/* What a log hook saw: each operation's partition, family, key, value. */
typedef struct logged {
        struct {
                int32_t p;
                int family;
                unsigned char key[64], val[64];
                size_t klen, vlen;
                int del;
        } v[32];
        int n;
} logged_t;

static void on_log(void *opaque, int32_t partition, int family, const void *key, size_t key_len,
                   const void *val, size_t val_len) {
        logged_t *l = opaque;
        assert_true(l->n < 32 && key_len <= 64 && val_len <= 64);
        l->v[l->n].p = partition;
        l->v[l->n].family = family;
        memcpy(l->v[l->n].key, key, key_len);
        l->v[l->n].klen = key_len;
        l->v[l->n].del = val == NULL;
        if (val)
                memcpy(l->v[l->n].val, val, val_len);
        l->v[l->n].vlen = val_len;
        l->n++;
}

/* Every batch operation on a partition's state is logged (puts, deletes,
 * meta), the instance's (partition -1) and the local checkpoint are not;
 * applying the logged operations to another store reproduces the
 * partition's state exactly; a replay logs the same state again. */
static void test_log_apply_replay(void **state) {
        fixture_t *f = *state;
        char err[256], dir2[sizeof(f->dir) + 8];
        dmp_agg_t a = agg_of(1, 1, 1, 1, 0), b = agg_of(2, 5, 2, 3, 0.5);
        dmp_store_t *st = open_store(f->dir, FP);
        logged_t lg = {.n = 0};
        dmp_store_set_log(st, on_log, &lg);
        put(st, 3, 0, "k1", 10, &a, 1);
        put(st, 3, 1, "k2", -5, &b, 1);
        dmp_store_put_group(st, 3, "g", 1, "gv", 2);
        dmp_store_put_group(st, -1, "inst", 4, "x", 1); /* the instance's: not logged */
        dmp_store_put_meta(st, 3, 42, 99);
        dmp_store_put_checkpoint(st, 3, 7); /* local: not logged */
        assert_int_equal(lg.n, 4);
        assert_int_equal(dmp_store_commit(st, err, sizeof(err)), 0);
        put(st, 3, 0, "k1", 10, &b, 1);         /* an update */
        dmp_store_delete_agg(st, 3, 1, "k2", 2, -5); /* a deletion */
        assert_int_equal(dmp_store_commit(st, err, sizeof(err)), 0);
        assert_int_equal(lg.n, 6);
        assert_int_equal(lg.v[5].del, 1);
        assert_int_equal(lg.v[5].family, DMP_STORE_FAMILY_WINDOWS);
        assert_int_equal(lg.v[3].family, DMP_STORE_FAMILY_META);
        for (int i = 0; i < lg.n; i++)
                assert_int_equal(lg.v[i].p, 3);
        int64_t cp;
        assert_int_equal(dmp_store_get_checkpoint(st, 3, &cp, err, sizeof(err)), 1);
        assert_int_equal(cp, 7);

        /* another store gets the partition from the log alone */
        snprintf(dir2, sizeof(dir2), "%s/copy", f->dir);
        dmp_store_t *st2 = open_store(dir2, FP);
        for (int i = 0; i < lg.n; i++)
                assert_int_equal(dmp_store_apply_logged(st2, 3, lg.v[i].family, lg.v[i].key,
                                                        lg.v[i].klen,
                                                        lg.v[i].del ? NULL : lg.v[i].val,
                                                        lg.v[i].vlen, err, sizeof(err)),
                                 0);
        /* a record of another partition, an unknown family: refused */
        assert_int_equal(dmp_store_apply_logged(st2, 4, lg.v[0].family, lg.v[0].key,
                                                lg.v[0].klen, lg.v[0].val, lg.v[0].vlen, err,
                                                sizeof(err)),
                         -1);
        assert_non_null(strstr(err, "not this partition's state"));
        assert_int_equal(dmp_store_apply_logged(st2, 3, 'x', lg.v[0].key, lg.v[0].klen,
                                                lg.v[0].val, lg.v[0].vlen, err, sizeof(err)),
                         -1);
        assert_int_equal(dmp_store_commit(st2, err, sizeof(err)), 0);
        rows_t r;
        grows_t g;
        assert_int_equal(scan(st2, 3, &r), 1);
        assert_row(&r.v[0], 0, "k1", 10, &b, 1);
        assert_int_equal(scan_groups(st2, 3, &g), 1);
        assert_int_equal(scan_groups(st2, -1, &g), 0);
        int64_t off, stime;
        assert_int_equal(dmp_store_get_meta(st2, 3, &off, &stime, err, sizeof(err)), 1);
        assert_true(off == 42 && stime == 99);
        assert_int_equal(dmp_store_get_checkpoint(st2, 3, &cp, err, sizeof(err)), 0);

        /* a replay of st2's partition: its three records, as puts */
        logged_t rp = {.n = 0};
        assert_int_equal(dmp_store_replay(st2, 3, on_log, &rp, err, sizeof(err)), 3);
        for (int i = 0; i < rp.n; i++)
                assert_int_equal(rp.v[i].del, 0);
        /* discard drops a pending batch */
        put(st2, 3, 0, "k9", 0, &a, 1);
        dmp_store_discard(st2);
        assert_int_equal(dmp_store_pending(st2), 0);
        dmp_store_close(st2);
        dmp_store_close(st);
}

/* One key's windows by range; point reads of committed entries. */
static void test_scan_key_and_get(void **state) {
        fixture_t *f = *state;
        dmp_agg_t a = agg_of(1, 1, 1, 1, 0), b = agg_of(2, 5, 2, 3, 0.5);
        char err[256];
        dmp_store_t *st = open_store(f->dir, FP);
        put(st, 0, 0, "ab", -3, &a, 1);
        put(st, 0, 0, "ab", INT64_MAX, &b, 1);
        put(st, 0, 0, "ab", INT64_MIN, &a, 1);
        put(st, 0, 0, "abc", 0, &a, 1); /* longer key: not "ab" */
        put(st, 0, 0, "a", 0, &a, 1);
        put(st, 0, 1, "ab", 0, &a, 1); /* other definition */
        assert_int_equal(dmp_store_commit(st, err, sizeof(err)), 0);
        rows_t r = {.n = 0};
        assert_int_equal(dmp_store_scan_key(st, 0, 0, "ab", 2, collect, &r, err, sizeof(err)),
                         3);
        assert_row(&r.v[0], 0, "ab", INT64_MIN, &a, 1);
        assert_row(&r.v[1], 0, "ab", -3, &a, 1);
        assert_row(&r.v[2], 0, "ab", INT64_MAX, &b, 1);
        void *v = NULL;
        size_t vl = 0;
        assert_int_equal(dmp_store_get_entry(st, 0, 0, "ab", 2, INT64_MAX, &v, &vl, err,
                                             sizeof(err)), 1);
        assert_int_equal(vl, sizeof(b));
        assert_memory_equal(v, &b, sizeof(b));
        free(v);
        assert_int_equal(dmp_store_get_entry(st, 0, 0, "ab", 2, 1, &v, &vl, err, sizeof(err)),
                         0);
        uint64_t cache, mem;
        dmp_store_mem_usage(st, &cache, &mem);
        assert_true(mem > 0); /* the entries are in the memtables */
        dmp_store_close(st);
}

/* Commits handed to the writer thread: a read right after one sees it (it
 * waits for the write in flight), commits land in order (the last value of
 * a key wins), and closing with a write in flight lets it land. */
static void test_async_commits(void **state) {
        fixture_t *f = *state;
        char err[256], key[32];
        dmp_store_t *st = open_store(f->dir, FP);
        for (int round = 0; round < 40; round++) {
                for (int k = 0; k < 2000; k++) {
                        snprintf(key, sizeof(key), "k%05d", k);
                        dmp_agg_t a = agg_of(round + 1, k, 0, 0, 0);
                        put(st, 1, 0, key, 0, &a, 1);
                }
                dmp_store_put_meta(st, 1, round, round);
                assert_int_equal(dmp_store_commit_async(st, err, sizeof(err)), 0);
                assert_int_equal(dmp_store_pending(st), 0); /* a fresh batch */
                if (round % 7 == 3) { /* read at once: sees this round */
                        void *v = NULL;
                        size_t vl = 0;
                        snprintf(key, sizeof(key), "k%05d", round * 37 % 2000);
                        assert_int_equal(dmp_store_get_entry(st, 1, 0, key, strlen(key), 0, &v,
                                                             &vl, err, sizeof(err)), 1);
                        dmp_agg_t want = agg_of(round + 1, round * 37 % 2000, 0, 0, 0);
                        assert_int_equal(vl, sizeof(want));
                        assert_memory_equal(v, &want, sizeof(want));
                        free(v);
                        int64_t off = -1, t = -1;
                        assert_int_equal(dmp_store_get_meta(st, 1, &off, &t, err, sizeof(err)), 1);
                        assert_true(off == round && t == round);
                }
        }
        assert_int_equal(dmp_store_commit_async(st, err, sizeof(err)), 0); /* empty: no-op */
        assert_int_equal(dmp_store_sync(st, err, sizeof(err)), 0);
        dmp_agg_t last = agg_of(99, 7, 0, 0, 0);
        put(st, 1, 0, "last", 0, &last, 1);
        assert_int_equal(dmp_store_commit_async(st, err, sizeof(err)), 0);
        dmp_store_close(st); /* with the write possibly in flight */
        st = open_store(f->dir, FP);
        rows_t r = {.n = 0};
        assert_int_equal(dmp_store_scan_key(st, 1, 0, "last", 4, collect, &r, err, sizeof(err)),
                         1);
        assert_row(&r.v[0], 0, "last", 0, &last, 1);
        void *v = NULL;
        size_t vl = 0;
        assert_int_equal(dmp_store_get_entry(st, 1, 0, "k01999", 6, 0, &v, &vl, err,
                                             sizeof(err)), 1);
        dmp_agg_t want = agg_of(40, 1999, 0, 0, 0);
        assert_memory_equal(v, &want, sizeof(want));
        free(v);
        dmp_store_close(st);
}

/* Writes a store of layout 1 (everything in the default family) by hand. */
static void write_layout1(const char *dir, uint64_t fp) {
        rocksdb_options_t *o = rocksdb_options_create();
        rocksdb_options_set_create_if_missing(o, 1);
        char *err = NULL;
        rocksdb_t *db = rocksdb_open(o, dir, &err);
        assert_null(err);
        rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
        unsigned char k[32], v[17];
        dmp_be64_put(v, fp);
        rocksdb_put(db, wo, "Gfingerprint", 12, (const char *)v, 8, &err);
        k[0] = 'M';
        dmp_be32_put(k + 1, 4);
        int64_t off = 77, st = 88;
        v[0] = 1;
        memcpy(v + 1, &off, 8);
        memcpy(v + 9, &st, 8);
        rocksdb_put(db, wo, (const char *)k, 5, (const char *)v, 17, &err);
        k[0] = 'A';
        dmp_be32_put(k + 1, 4);
        dmp_be16_put(k + 5, 0);
        dmp_be16_put(k + 7, 3);
        memcpy(k + 9, "key", 3);
        dmp_be64s_put(k + 12, 1000);
        dmp_agg_t a = agg_of(3, 6, 1, 3, 2);
        rocksdb_put(db, wo, (const char *)k, 20, (const char *)&a, sizeof(a), &err);
        assert_null(err);
        rocksdb_writeoptions_destroy(wo);
        rocksdb_close(db);
        rocksdb_options_destroy(o);
}

/* A store of the old layout: read-only opens explain it; a read-write open
 * with the same fingerprint migrates it, with another one refuses it. */
static void test_layout1_migration(void **state) {
        fixture_t *f = *state;
        char err[512] = "";
        write_layout1(f->dir, FP);
        dmp_store_opts_t ro = {.read_only = 1};
        assert_null(dmp_store_open_opts(f->dir, 0, &ro, err, sizeof(err)));
        assert_non_null(strstr(err, "layout 1"));
        assert_null(dmp_store_open(f->dir, FP ^ 1, err, sizeof(err)));
        assert_non_null(strstr(err, "different pipeline"));

        dmp_store_t *st = open_store(f->dir, FP);
        rows_t r;
        assert_int_equal(scan(st, 4, &r), 1);
        dmp_agg_t a = agg_of(3, 6, 1, 3, 2);
        assert_row(&r.v[0], 0, "key", 1000, &a, 1);
        int64_t off, stime;
        assert_int_equal(dmp_store_get_meta(st, 4, &off, &stime, err, sizeof(err)), 1);
        assert_true(off == 77 && stime == 88);
        dmp_store_close(st);
        /* migrated: read-only inspection works now, with any fingerprint */
        st = dmp_store_open_opts(f->dir, 0, &ro, err, sizeof(err));
        assert_non_null(st);
        assert_true(dmp_store_fingerprint(st) == FP);
        assert_int_equal(scan(st, 4, &r), 1);
        dmp_store_close(st);
}

/* Read-only opens of a missing directory and of a RocksDB that is not ours;
 * a read-write open of a foreign RocksDB leaves it alone. */
static void test_missing_and_foreign(void **state) {
        fixture_t *f = *state;
        char err[512] = "", path[128];
        dmp_store_opts_t ro = {.read_only = 1};
        snprintf(path, sizeof(path), "%s/none", f->dir);
        assert_null(dmp_store_open_opts(path, 0, &ro, err, sizeof(err)));
        assert_non_null(strstr(err, "no dmpflow state store"));

        rocksdb_options_t *o = rocksdb_options_create();
        rocksdb_options_set_create_if_missing(o, 1);
        char *e = NULL;
        rocksdb_t *db = rocksdb_open(o, f->dir, &e);
        assert_null(e);
        rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
        rocksdb_put(db, wo, "hello", 5, "world", 5, &e);
        rocksdb_writeoptions_destroy(wo);
        rocksdb_close(db);
        rocksdb_options_destroy(o);
        assert_null(dmp_store_open_opts(f->dir, 0, &ro, err, sizeof(err)));
        assert_non_null(strstr(err, "not a dmpflow state store"));
        assert_null(dmp_store_open(f->dir, FP, err, sizeof(err)));
        assert_non_null(strstr(err, "not a dmpflow state store"));
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

/* dmp_store_probe (what `dmpflow check` says of [state] dir, issue 22):
 * creatable, writable, this pipeline's, and who holds it open. */
static void test_probe(void **state) {
        fixture_t *f = *state;
        char err[1024] = "", path[256];
        int pid = -1;
        /* missing, under a directory that exists: run creates it (parents too) */
        snprintf(path, sizeof(path), "%s/a/b/state", f->dir);
        assert_int_equal(dmp_store_probe(path, FP, &pid, err, sizeof(err)), 0);
        assert_int_equal(pid, 0);
        assert_int_equal(access(path, F_OK), -1); /* probing changed nothing */
        dmp_store_t *st = open_store(path, FP);
        dmp_store_close(st);
        /* a store of this pipeline, of another */
        assert_int_equal(dmp_store_probe(path, FP, &pid, err, sizeof(err)), 0);
        assert_int_equal(dmp_store_probe(path, FP ^ 1, &pid, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "different pipeline"));
        /* a regular file in the way, as the directory or above it */
        snprintf(path, sizeof(path), "%s/file", f->dir);
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fclose(fp);
        assert_int_equal(dmp_store_probe(path, FP, &pid, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "is not a directory"));
        snprintf(path, sizeof(path), "%s/file/state", f->dir);
        assert_int_equal(dmp_store_probe(path, FP, &pid, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "cannot create"));
        assert_null(dmp_store_open(path, FP, err, sizeof(err))); /* run agrees */
        /* held open by another process: its pid, and run's error names it */
        snprintf(path, sizeof(path), "%s/a/b/state", f->dir);
        int ready[2];
        assert_int_equal(pipe(ready), 0);
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                dmp_store_t *held = dmp_store_open(path, FP, err, sizeof(err));
                char c = held ? 'y' : 'n';
                if (write(ready[1], &c, 1) != 1 || !held)
                        _exit(1);
                pause(); /* until killed */
                _exit(0);
        }
        char c = 0;
        assert_int_equal(read(ready[0], &c, 1), 1);
        assert_int_equal(c, 'y');
        assert_int_equal(dmp_store_probe(path, FP, &pid, err, sizeof(err)), 0);
        assert_int_equal(pid, child);
        assert_null(dmp_store_open(path, FP, err, sizeof(err)));
        char want[64];
        snprintf(want, sizeof(want), "in use by process %d", (int)child);
        assert_non_null(strstr(err, want));
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        close(ready[0]);
        close(ready[1]);
        assert_int_equal(dmp_store_probe(path, FP, &pid, err, sizeof(err)), 0);
        assert_int_equal(pid, 0);
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
                cmocka_unit_test_setup_teardown(test_groups, setup, teardown),
                cmocka_unit_test_setup_teardown(test_drop_partition, setup, teardown),
                cmocka_unit_test_setup_teardown(test_scan_key_and_get, setup, teardown),
                cmocka_unit_test_setup_teardown(test_async_commits, setup, teardown),
                cmocka_unit_test_setup_teardown(test_layout1_migration, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_and_foreign, setup, teardown),
                cmocka_unit_test_setup_teardown(test_log_apply_replay, setup, teardown),
                cmocka_unit_test(test_open_error),
                cmocka_unit_test_setup_teardown(test_probe, setup, teardown),
                cmocka_unit_test(test_close_null),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
