/* Unit test of the memory budget's eviction (src/engine.c): many keys
 * under a small budget, so that clean entries are evicted after commits,
 * reloaded on touch and on close, and a restart in the middle. Every
 * window result is compared with sums computed here from the events. */
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

#include "avro_enc.h"
#include "config.h"
#include "engine.h"
#include "test_sink.h"
#include "util.h"

#define KEYS    30000
#define EVENTS  120000
#define WINDOWS 2 /* ts = i / 60: [0, 1000) and [1000, 2000) */
#define BUDGET  (2560 * 1024) /* RocksDB shares 1 MiB each, entries 512 KiB */

typedef struct expect {
        int64_t count[WINDOWS][KEYS];
        double sum[WINDOWS][KEYS];
        int seen[WINDOWS][KEYS];
        long results, bad;
} expect_t;

static void on_emit(void *opaque, const dmp_result_t *r) {
        expect_t *x = opaque;
        char key[16] = "";
        memcpy(key, r->key, r->key_len < 15 ? r->key_len : 15);
        int k = atoi(key + 1), w = (int)(r->start / 1000);
        x->results++;
        if (w < 0 || w >= WINDOWS || k < 0 || k >= KEYS || x->seen[w][k]++ ||
            r->agg->count != x->count[w][k] ||
            fabs(r->agg->sum - x->sum[w][k]) > 1e-9 * fmax(1.0, fabs(x->sum[w][k]))) {
                if (x->bad++ < 5)
                        print_message("bad result %.*s [%lld): count %lld sum %g (want %lld %g)\n",
                                      (int)r->key_len, r->key, (long long)r->start, (long long)r->agg->count,
                                      r->agg->sum, (long long)x->count[w][k], x->sum[w][k]);
        }
}

static dmp_engine_t *engine_new(dmp_conf_t *conf, expect_t *x) {
        char err[512] = "";
        int cerr;
        static test_sink_t ts; /* (outlives the engine) */
        ts = (test_sink_t){.result = on_emit, .result_opaque = x};
        dmp_engine_t *e = dmp_engine_new(conf, test_sink_init(&ts), &cerr, err, sizeof(err));
        if (!e)
                fail_msg("engine: %s %s", err, conf->errors ? conf->errors : "");
        int64_t next;
        assert_int_equal(dmp_engine_partition_open(e, 0, &next, err, sizeof(err)), 0);
        return e;
}

static int64_t next_offset;
static void on_partition(void *opaque, int32_t p, int64_t next) {
        next_offset = next;
}

static void feed(dmp_engine_t *e, int64_t i, int64_t ts) {
        unsigned char buf[128], *p = buf;
        char key[16], err[256];
        int k = (int)((i * 7919) % KEYS);
        snprintf(key, sizeof(key), "k%05d", k);
        double price = (double)(i % 97) - 40.0;
        p = dmp_avro_put_string(p, key, strlen(key));
        p = dmp_avro_put_string(p, "seg", 3);
        p = dmp_avro_put_long(p, ts);
        p = dmp_avro_put_double(p, price);
        p = dmp_avro_put_long(p, 1);
        p = dmp_avro_put_long(p, 0); /* clicks: null */
        if (dmp_engine_process(e, 0, i, NULL, 0, 0, buf, (size_t)(p - buf), err, sizeof(err)))
                fail_msg("process %lld: %s", (long long)i, err);
}

static void test_evict_reload_restart(void **state) {
        char dir[] = "/tmp/dmp-evict-XXXXXX", text[1024], err[256];
        assert_non_null(mkdtemp(dir));
        snprintf(text, sizeof(text),
                 "[input]\ntopic = t\nschema = schemas/event.avsc\nkey.field = user_id\n"
                 "time.field = ts\n[state]\ndir = %s\nmemory.budget = %d\n[output]\ntopic = o\n"
                 "[measure score]\nexpr = price\n[window tum]\nsize.ms = 1000\n", dir, BUDGET);
        dmp_conf_t *conf = dmp_conf_new();
        if (dmp_conf_load_string(conf, "evict.ini", text) || dmp_conf_validate(conf))
                fail_msg("configuration: %s", conf->errors);
        expect_t *x = calloc(1, sizeof(*x));
        for (int64_t i = 0; i < EVENTS; i++) {
                int k = (int)((i * 7919) % KEYS);
                x->count[i / 60 / 1000][k]++;
                x->sum[i / 60 / 1000][k] += (double)(i % 97) - 40.0;
        }
        dmp_engine_t *e = engine_new(conf, x);
        uint64_t evictions = 0, reloads = 0;
        int crashed = 0;
        for (int64_t i = 0; i < EVENTS; i++) {
                if (i == EVENTS / 3 + 777 && !crashed) { /* crash: uncommitted work is lost */
                        crashed = 1;
                        evictions += dmp_engine_stats(e)->evictions;
                        reloads += dmp_engine_stats(e)->reloads;
                        dmp_engine_destroy(e);
                        e = engine_new(conf, x);
                        dmp_engine_foreach_partition(e, on_partition, NULL);
                        assert_true(next_offset > 0 && next_offset <= i);
                        i = next_offset;
                }
                feed(e, i, i / 60);
                if (i % 2000 == 1999) {
                        assert_int_equal(dmp_engine_commit(e, err, sizeof(err)), 0);
                        const dmp_engine_stats_t *s = dmp_engine_stats(e);
                        assert_true(s->mem_budget == BUDGET);
                        /* after a commit the entries fit their share (3/4 of
                         * the budget less RocksDB's 2 MiB minimum here) */
                        if (s->mem_entries > BUDGET - (2 << 20))
                                fail_msg("at %lld: %llu bytes of entries, %llu entries", (long long)i, (unsigned long long)s->mem_entries, (unsigned long long)s->open_entries);
                }
        }
        feed(e, EVENTS, 5000); /* closes both windows */
        assert_int_equal(dmp_engine_commit(e, err, sizeof(err)), 0);
        evictions += dmp_engine_stats(e)->evictions;
        reloads += dmp_engine_stats(e)->reloads;
        print_message("evictions %llu, reloads %llu, results %ld\n",
                      (unsigned long long)evictions, (unsigned long long)reloads, x->results);
        assert_true(evictions > 0);
        assert_true(reloads > 0);
        assert_int_equal(x->bad, 0);
        long want = 0;
        for (int w = 0; w < WINDOWS; w++)
                for (int k = 0; k < KEYS; k++) {
                        want += x->count[w][k] > 0;
                        if (x->count[w][k] && x->seen[w][k] != 1)
                                fail_msg("window %d key %d: %d results", w, k, x->seen[w][k]);
                }
        assert_int_equal(x->results, want);
        dmp_engine_destroy(e);
        dmp_conf_destroy(conf);
        free(x);
        dmp_rmtree(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_evict_reload_restart),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
