/* Unit tests of the window semantics of the engine (src/engine.c,
 * src/engine_keyed.c; assignment alone: test_window_assign.c), driven end to end
 * through dmp_engine_process (events of schemas/event.avsc, one measure
 * v = price) and checked against the exact sequence of emitted results.
 *
 * The semantics (docs/WINDOWS.md; tests/integration/reference.py): per
 * event, (1) the stream time advances, (2) the windows closed at that
 * stream time are emitted, (3) the event is applied or counted late.
 *   - tumbling / hopping [s, s+size) close at stream time >= end + grace;
 *   - a session [start, last + 1) closes at last + 1 + gap + grace; an event
 *     merges with the sessions Kafka Streams' store finds (last >= t - gap,
 *     start <= t + gap, last > stream time before it - gap - grace) and is
 *     late if the merged last < st - gap - grace;
 *   - sliding (difference D) windows [s, s+D] are reported [s, s+D+1), made
 *     and filled step by step as Kafka Streams 3.9 does; late if t + D <
 *     st - grace or the event went into none of its windows.
 *   - `late` of a result: late events of that key and window definition
 *     since the key's previous result.
 * Every expected value below is worked out by hand in the comments (stddev
 * is the population one). Run from the repository root. */
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

#include "config.h"
#include "engine.h"
#include "event_enc.h"
#include "log.h"
#include "test_sink.h"
#include "util.h"
#include "window.h"

/* The engine's sink: results to the test's recorder; late windows of the
 * last feed in tsink.late_mask; partitions are always caught up. */
static test_sink_t tsink;

/* ---- recording the results ---- */

typedef struct rec {
        char win[16];
        char kind[16];
        char measure[16];
        char key[16];
        int64_t start, end;
        dmp_agg_t agg;
        int64_t late;
        int final;
} rec_t;

typedef struct recs {
        rec_t v[128];
        int n;
} recs_t;

static void on_emit(void *opaque, const dmp_result_t *r) {
        recs_t *rs = opaque;
        assert_true(rs->n < 128);
        assert_true(r->key_len < sizeof(rs->v[0].key));
        rec_t *x = &rs->v[rs->n++];
        snprintf(x->win, sizeof(x->win), "%s", r->window->name);
        snprintf(x->kind, sizeof(x->kind), "%s", dmp_window_kind_name(r->window->kind));
        snprintf(x->measure, sizeof(x->measure), "%s", r->measure);
        memcpy(x->key, r->key, r->key_len);
        x->key[r->key_len] = '\0';
        x->start = r->start;
        x->end = r->end;
        x->agg = *r->agg;
        x->late = r->late;
        x->final = r->final;
}

/* One expected result of window "w", measure "v". */
typedef struct want {
        const char *kind;
        const char *key;
        int64_t start, end;
        int64_t count;
        double sum, min, max, mean, sd;
        int64_t late;
        int final;
} want_t;

static void dump(const recs_t *rs, int from) {
        for (int i = from; i < rs->n; i++) {
                const rec_t *r = &rs->v[i];
                print_message("  result %d: %s(%s) %s %s [%lld, %lld) count %lld sum %.17g "
                              "min %g max %g mean %.17g sd %.17g late %lld final %d\n",
                              i, r->win, r->kind, r->measure, r->key, (long long)r->start,
                              (long long)r->end, (long long)r->agg.count, r->agg.sum,
                              r->agg.min, r->agg.max, r->agg.mean, dmp_agg_stddev(&r->agg),
                              (long long)r->late, r->final);
        }
}

static int close_to(double got, double want) {
        return fabs(got - want) <= 1e-12 * fmax(1.0, fabs(want));
}

/* Asserts that exactly the n results w[] were emitted since *mark, in this
 * order, then moves the mark. */
static void expect_results(const recs_t *rs, int *mark, const want_t *w, int n, int line) {
        if (rs->n - *mark != n) {
                dump(rs, *mark);
                fail_msg("line %d: %d new results, want %d", line, rs->n - *mark, n);
        }
        for (int i = 0; i < n; i++) {
                const rec_t *r = &rs->v[*mark + i];
                const want_t *x = &w[i];
                if (strcmp(r->win, "w") || strcmp(r->measure, "v") || strcmp(r->kind, x->kind) ||
                    strcmp(r->key, x->key) || r->start != x->start || r->end != x->end ||
                    r->agg.count != x->count || r->agg.sum != x->sum || r->agg.min != x->min ||
                    r->agg.max != x->max || !close_to(r->agg.mean, x->mean) ||
                    !close_to(dmp_agg_stddev(&r->agg), x->sd) || r->late != x->late ||
                    r->final != x->final) {
                        dump(rs, *mark);
                        fail_msg("line %d: result %d (new #%d) differs; want %s %s [%lld, %lld) count "
                                 "%lld sum %.17g min %g max %g mean %.17g sd %.17g late %lld "
                                 "final %d",
                                 line, *mark + i, i, x->kind, x->key, (long long)x->start,
                                 (long long)x->end, (long long)x->count, x->sum, x->min, x->max,
                                 x->mean, x->sd, (long long)x->late, x->final);
                }
        }
        *mark = rs->n;
}

#define EXPECT(rs, mark, ...)                                                                \
        expect_results(rs, mark, (const want_t[]){__VA_ARGS__},                              \
                       (int)(sizeof((const want_t[]){__VA_ARGS__}) / sizeof(want_t)), __LINE__)
#define NONE(rs, mark) expect_results(rs, mark, NULL, 0, __LINE__)

/* No (key, start) was emitted twice (one window definition, one measure). */
static void expect_unique(const recs_t *rs) {
        for (int i = 0; i < rs->n; i++)
                for (int j = i + 1; j < rs->n; j++)
                        if (!strcmp(rs->v[i].key, rs->v[j].key) &&
                            rs->v[i].start == rs->v[j].start) {
                                dump(rs, 0);
                                fail_msg("results %d and %d are the same window", i, j);
                        }
}

/* ---- the pipeline ---- */

static const char conf_fmt[] = "[input]\n"
                               "topic = events\n"
                               "schema = schemas/event.avsc\n"
                               "key.field = user_id\n"
                               "time.field = ts\n"
                               "idle.timeout.ms = 1000\n" /* idle_close below */
                               "[state]\n"
                               "dir = %s\n"
                               "[output]\n"
                               "topic = results\n"
                               "[measure v]\n"
                               "expr = price\n"
                               "[window w]\n"
                               "%s";

typedef struct fixture {
        char dir[64];
        dmp_conf_t *conf;
        recs_t recs;
        int64_t off; /* next offset fed */
} fixture_t;

static int setup(void **state) {
        fixture_t *f = calloc(1, sizeof(*f));
        strcpy(f->dir, "/tmp/dmp-windows-XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture_t *f = *state;
        dmp_conf_destroy(f->conf);
        dmp_rmtree(f->dir);
        free(f);
        return 0;
}

/* Builds the configuration once (window w given by its properties), then
 * an engine with partition 0 open; f->off is the offset to resume from. */
static dmp_engine_t *start(fixture_t *f, const char *window) {
        if (!f->conf) {
                char text[2048];
                snprintf(text, sizeof(text), conf_fmt, f->dir, window);
                f->conf = dmp_conf_new();
                if (dmp_conf_load_string(f->conf, "windows.ini", text) ||
                    dmp_conf_validate(f->conf))
                        fail_msg("configuration: %s", f->conf->errors);
        }
        char err[512] = "";
        int cerr = -1;
        tsink = (test_sink_t){.result = on_emit, .result_opaque = &f->recs, .caught_up = 1};
        dmp_engine_t *e = dmp_engine_new(f->conf, test_sink_init(&tsink), &cerr, err, sizeof(err));
        if (!e)
                fail_msg("dmp_engine_new: %s %s", err, f->conf->errors ? f->conf->errors : "");
        int64_t next = -2;
        if (dmp_engine_partition_open(e, 0, &next, err, sizeof(err)))
                fail_msg("open partition 0: %s", err);
        f->off = next < 0 ? 0 : next;
        return e;
}

static int64_t resume_offset(dmp_engine_t *e, fixture_t *f) {
        (void)e;
        return f->off;
}


/* Feeds an event of key `user` at time ts with price (= v) `v`. */
static void feed(fixture_t *f, dmp_engine_t *e, const char *user, int64_t ts, double v) {
        unsigned char buf[256];
        size_t n = test_event_encode(buf, user, "seg", ts, v, 0, 1, 0);
        char err[256] = "";
        tsink.late_mask = 0; /* the late windows of this event */
        if (dmp_engine_process(e, 0, f->off, "kafka-key", 9, 999999, buf, n,
                               err, sizeof(err)))
                fail_msg("process offset %lld: %s", (long long)f->off, err);
        f->off++;
}

/* The partition goes idle for ~2^61 ms: every window closes (the engine
 * tracks the idle base only with idle.timeout.ms > 0, set above). */
static void idle_close(dmp_engine_t *e) {
        dmp_engine_idle_tick(e, INT64_C(1) << 61, 0); /* (tsink: caught up) */
}

static void commit(dmp_engine_t *e) {
        char err[256] = "";
        if (dmp_engine_commit(e, err, sizeof(err)))
                fail_msg("commit: %s", err);
}

#define T55 (INT64_C(1) << 55) /* 36028797018963968, ends in 8 */

/* ---- tumbling ---- */

/* size 10, grace 3: boundaries of a window, of its grace, of lateness, and
 * the late count carried into the key's next result. */
static void test_tumbling_boundaries(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        dmp_engine_t *e = start(f, "size.ms = 10\ngrace.ms = 3\n");

        feed(f, e, "k", 0, 1);   /* exactly at the start of [0, 10) */
        feed(f, e, "k", 9, 3);   /* end - 1: still [0, 10) */
        feed(f, e, "k", 10, 5);  /* exactly at the end: [10, 20) */
        feed(f, e, "k", 12, 7);  /* stream time 12 = end + grace - 1: [0, 10) stays open */
        NONE(rs, &mark);
        feed(f, e, "k", 8, 2);   /* in grace: into [0, 10) */
        assert_int_equal(tsink.late_mask, 0);
        NONE(rs, &mark);
        feed(f, e, "k", 13, 4);  /* stream time 13 = end + grace: [0, 10) closes first */
        /* [0, 10) = {1, 3, 2}: sum 6, mean 2, squared deviations 1 + 1 + 0 = 2,
         * sd sqrt(2/3) */
        EXPECT(rs, &mark, {"tumbling", "k", 0, 10, 3, 6, 1, 3, 2, sqrt(2.0 / 3.0), 0, 1});

        feed(f, e, "k", 9, 100); /* 0 + 10 + 3 <= 13: late exactly at the boundary */
        assert_int_equal(tsink.late_mask, 1);
        feed(f, e, "k", 0, 100); /* late */
        assert_int_equal(tsink.late_mask, 1);
        NONE(rs, &mark);
        feed(f, e, "k", 22, 6);  /* 22 = 20 + 3 - 1: [10, 20) open */
        NONE(rs, &mark);
        feed(f, e, "k", 23, 8);  /* closes [10, 20) */
        /* [10, 20) = {5, 7, 4}: sum 16, mean 16/3, sum of squares 25+49+16 = 90,
         * variance 90/3 - 256/9 = 14/9, sd sqrt(14)/3; carries the 2 late events */
        EXPECT(rs, &mark,
               {"tumbling", "k", 10, 20, 3, 16, 4, 7, 16.0 / 3.0, sqrt(14.0) / 3.0, 2, 1});

        feed(f, e, "j", 5, 50);  /* another key: late for j only */
        assert_int_equal(tsink.late_mask, 1);
        feed(f, e, "j", 25, 9);  /* j's [20, 30) */
        NONE(rs, &mark);
        feed(f, e, "k", 33, 0);  /* 33 = 30 + 3: closes [20, 30), k inserted first */
        /* k: {6, 8}: mean 7, sd 1, its late count was reset by [10, 20); j: {9}, late 1 */
        EXPECT(rs, &mark, {"tumbling", "k", 20, 30, 2, 14, 6, 8, 7, 1, 0, 1},
               {"tumbling", "j", 20, 30, 1, 9, 9, 9, 9, 0, 1, 1});

        idle_close(e);
        EXPECT(rs, &mark, {"tumbling", "k", 30, 40, 1, 0, 0, 0, 0, 0, 0, 1});
        const dmp_engine_stats_t *s = dmp_engine_stats(e);
        assert_int_equal(s->late_events, 3);
        assert_int_equal(s->late_by_window[0], 3);
        assert_int_equal(s->late_window_updates, 3);
        commit(e);
        dmp_engine_destroy(e);
}

/* ---- hopping ---- */

/* size 10, advance 4 (not a divisor), grace 0: an event at t is in the
 * windows starting at the multiples w of 4 with t - 10 < w <= t. */
static void test_hopping_size_not_multiple_of_advance(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        dmp_engine_t *e = start(f, "type = hopping\nsize.ms = 10\nadvance.ms = 4\n");

        feed(f, e, "k", 0, 1);  /* w in (-10, 0]: -8, -4, 0 */
        NONE(rs, &mark);
        feed(f, e, "k", 5, 2);  /* st 5 closes [-8, 2); w in (-5, 5]: -4, 0, 4 */
        EXPECT(rs, &mark, {"hopping", "k", -8, 2, 1, 1, 1, 1, 1, 0, 0, 1});
        feed(f, e, "k", 9, 3);  /* st 9 closes [-4, 6) = {1, 2}; w in (-1, 9]: 0, 4, 8 */
        EXPECT(rs, &mark, {"hopping", "k", -4, 6, 2, 3, 1, 2, 1.5, 0.5, 0, 1});
        feed(f, e, "k", 10, 4); /* st 10 closes [0, 10) = {1, 2, 3}; w in (0, 10]: 4, 8 */
        EXPECT(rs, &mark, {"hopping", "k", 0, 10, 3, 6, 1, 3, 2, sqrt(2.0 / 3.0), 0, 1});
        feed(f, e, "k", 3, 5);  /* w in (-7, 3]: -4, 0, both closed: late */
        assert_int_equal(tsink.late_mask, 1);
        feed(f, e, "k", 6, 7);  /* w in (-4, 6]: 0 (closed), 4 (open): not late */
        assert_int_equal(tsink.late_mask, 0);
        NONE(rs, &mark);
        feed(f, e, "k", 30, 6); /* st 30 closes every start <= 20 */
        /* [4, 14) = {2, 3, 4, 7}: sum 16, mean 4, squared deviations 4+1+0+9 = 14,
         * sd sqrt(3.5), late 1; [8, 18) = {3, 4}: mean 3.5, sd 0.5, late reset */
        EXPECT(rs, &mark, {"hopping", "k", 4, 14, 4, 16, 2, 7, 4, sqrt(3.5), 1, 1},
               {"hopping", "k", 8, 18, 2, 7, 3, 4, 3.5, 0.5, 0, 1});
        idle_close(e); /* 30 is in [24, 34) and [28, 38) */
        EXPECT(rs, &mark, {"hopping", "k", 24, 34, 1, 6, 6, 6, 6, 0, 0, 1},
               {"hopping", "k", 28, 38, 1, 6, 6, 6, 6, 0, 0, 1});
        const dmp_engine_stats_t *s = dmp_engine_stats(e);
        assert_int_equal(s->late_events, 1);
        assert_int_equal(s->late_window_updates, 3); /* -4 and 0 for 3, 0 for 6 */
        commit(e);
        dmp_engine_destroy(e);
}

/* ---- before 1970 and far in the future ---- */

/* size 10, grace 0. T = 2^55 = 36028797018963968: its window starts at
 * T - 8 = 36028797018963960 and ends at T + 2. */
static void test_tumbling_negative_and_far_future(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        dmp_engine_t *e = start(f, "size.ms = 10\n");

        feed(f, e, "k", -25, 1); /* [-30, -20) */
        NONE(rs, &mark);
        feed(f, e, "k", -1, 2);  /* closes [-30, -20); into [-10, 0) */
        EXPECT(rs, &mark, {"tumbling", "k", -30, -20, 1, 1, 1, 1, 1, 0, 0, 1});
        feed(f, e, "k", 0, 3);   /* closes [-10, 0); into [0, 10) */
        EXPECT(rs, &mark, {"tumbling", "k", -10, 0, 1, 2, 2, 2, 2, 0, 0, 1});
        feed(f, e, "k", T55, 4); /* closes [0, 10) */
        EXPECT(rs, &mark, {"tumbling", "k", 0, 10, 1, 3, 3, 3, 3, 0, 0, 1});
        feed(f, e, "k", T55 + 1, 5);
        NONE(rs, &mark);
        feed(f, e, "k", T55 + 2, 6); /* the end: closes [T - 8, T + 2) = {4, 5} */
        EXPECT(rs, &mark, {"tumbling", "k", T55 - 8, T55 + 2, 2, 9, 4, 5, 4.5, 0.5, 0, 1});
        idle_close(e);
        EXPECT(rs, &mark, {"tumbling", "k", T55 + 2, T55 + 12, 1, 6, 6, 6, 6, 0, 0, 1});
        commit(e);
        dmp_engine_destroy(e);
}

/* gap 5, grace 0: a session closes at last + 6. */
static void test_session_negative_and_far_future(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        dmp_engine_t *e = start(f, "type = session\ngap.ms = 5\n");

        feed(f, e, "k", -25, 1);
        feed(f, e, "k", -21, 2); /* -21 <= -25 + 5: [-25, -21] */
        NONE(rs, &mark);
        feed(f, e, "k", -1, 3);  /* closes at -21 + 6 = -15 <= -1 */
        EXPECT(rs, &mark, {"session", "k", -25, -20, 2, 3, 1, 2, 1.5, 0.5, 0, 1});
        feed(f, e, "k", 0, 4);   /* [-1, 0] */
        NONE(rs, &mark);
        feed(f, e, "k", T55, 5);
        EXPECT(rs, &mark, {"session", "k", -1, 1, 2, 7, 3, 4, 3.5, 0.5, 0, 1});
        feed(f, e, "k", T55 + 5, 6); /* exactly gap apart: [T, T + 5] */
        NONE(rs, &mark);
        idle_close(e);
        EXPECT(rs, &mark, {"session", "k", T55, T55 + 6, 2, 11, 5, 6, 5.5, 0.5, 0, 1});
        commit(e);
        dmp_engine_destroy(e);
}

/* D = 10, grace 0: [s, s+10] reported [s, s+11), closes at s + 11. */
static void test_sliding_negative_and_far_future(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        dmp_engine_t *e = start(f, "type = sliding\nsize.ms = 10\n");

        feed(f, e, "k", -25, 1); /* candidates: left -35 (closes -24 > -25), right -24 */
        NONE(rs, &mark);
        feed(f, e, "k", -1, 2);
        /* st -1: [-35, -25] = {1} closes at -24; [-24, -14] (closes -13) has no
         * record: nothing. -1: left -11 (closes 0 > -1), right 0 */
        EXPECT(rs, &mark, {"sliding", "k", -35, -24, 1, 1, 1, 1, 1, 0, 0, 1});
        feed(f, e, "k", 0, 3);
        /* st 0: [-11, -1] = {2} closes at 0. 0: left -10 (closes 1 > 0), right 1 */
        EXPECT(rs, &mark, {"sliding", "k", -11, 0, 1, 2, 2, 2, 2, 0, 0, 1});
        feed(f, e, "k", T55, 4);
        /* [-10, 0] = {2, 3} (both arrived before 1); [0, 10] = {3}; [1, 11] empty */
        EXPECT(rs, &mark, {"sliding", "k", -10, 1, 2, 5, 2, 3, 2.5, 0.5, 0, 1},
               {"sliding", "k", 0, 11, 1, 3, 3, 3, 3, 0, 0, 1});
        idle_close(e);
        /* [T - 10, T] = {4}; [T + 1, T + 11] empty */
        EXPECT(rs, &mark, {"sliding", "k", T55 - 10, T55 + 1, 1, 4, 4, 4, 4, 0, 0, 1});
        commit(e);
        dmp_engine_destroy(e);
}

/* ---- session ---- */

/* gap 10, grace 20: close at last + 31, late if merged last + 20 < st.
 * Two sessions of key a bridged by an out-of-order event; key b apart. */
static void test_session_merge_bridge(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        dmp_engine_t *e = start(f, "type = session\ngap.ms = 10\ngrace.ms = 20\n");

        feed(f, e, "a", 100, 2);
        feed(f, e, "a", 102, 4);
        feed(f, e, "a", 104, 4); /* extension: A1 = [100, 104] {2, 4, 4} */
        feed(f, e, "b", 105, 1); /* b's own session, though within a's gap */
        feed(f, e, "a", 118, 5); /* 118 > 104 + 10: split, A2 = [118, 118] */
        feed(f, e, "a", 119, 5);
        feed(f, e, "a", 121, 7);
        feed(f, e, "a", 123, 9); /* A2 = [118, 123] {5, 5, 7, 9}; st 123 */
        NONE(rs, &mark);
        feed(f, e, "a", 110, 4); /* 90 <= 110 <= 114 and 108 <= 110 <= 133: bridges */
        assert_int_equal(tsink.late_mask, 0);
        feed(f, e, "b", 108, 3); /* b: [105, 108] {1, 3} (108 + 20 >= 123) */
        assert_int_equal(tsink.late_mask, 0);
        NONE(rs, &mark);
        feed(f, e, "c", 139, 10); /* st 139 = 108 + 31: b closes; a at 154 not */
        /* b: {1, 3}: mean 2, sd 1 */
        EXPECT(rs, &mark, {"session", "b", 105, 109, 2, 4, 1, 3, 2, 1, 0, 1});
        feed(f, e, "c", 153, 20); /* 153 - 139 > 10: c has two sessions; a not yet */
        NONE(rs, &mark);
        feed(f, e, "c", 154, 30); /* st 154 = 123 + 31: a closes */
        /* Chan's merge of the bridge: {4} with A1 {2, 4, 4} (mean 10/3, M2 8/3):
         * n 4, d = -2/3, mean 4 - 2/3 * 3/4 = 3.5, M2 = 8/3 + 4/9 * 3/4 = 3;
         * with A2 {5, 5, 7, 9} (mean 6.5, M2 2.25+2.25+0.25+6.25 = 11): n 8,
         * d = 3, mean 3.5 + 3 * 4/8 = 5, M2 = 3 + 11 + 9 * 16/8 = 32.
         * Two-pass over {2, 4, 4, 5, 5, 7, 9, 4}: sum 40, mean 5, squared
         * deviations 9+1+1+0+0+4+16+1 = 32, variance 4, sd 2. */
        EXPECT(rs, &mark, {"session", "a", 100, 124, 8, 40, 2, 9, 5, 2, 0, 1});
        idle_close(e);
        /* c: [139, 139] {10}; [153, 154] {20, 30}: mean 25, sd 5 */
        EXPECT(rs, &mark, {"session", "c", 139, 140, 1, 10, 10, 10, 10, 0, 0, 1},
               {"session", "c", 153, 155, 2, 50, 20, 30, 25, 5, 0, 1});
        assert_int_equal(dmp_engine_stats(e)->late_events, 0);
        commit(e);
        dmp_engine_destroy(e);
}

/* gap 10, grace 5: a session closes at last + 16; Kafka Streams' rule: an
 * event finds the sessions of its key with last >= t - 10, start <= t + 10
 * and last > (stream time before it) - 15, and is late if the merged
 * session's last < st - 15. */
static void test_session_gap_close_and_late(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        dmp_engine_t *e = start(f, "type = session\ngap.ms = 10\ngrace.ms = 5\n");

        feed(f, e, "k", 0, 1);
        feed(f, e, "k", 10, 2);  /* exactly gap apart: merges, S1 = [0, 10] */
        feed(f, e, "k", 21, 3);  /* 21 - 10 = 11 > gap: split, S2 = [21, 21] */
        feed(f, e, "k", 25, 4);  /* S2 = [21, 25]; st 25 = S1's close - 1 */
        NONE(rs, &mark);
        feed(f, e, "k", 26, 5);  /* st 26 = 10 + 16: S1 closes; S2 = [21, 26] */
        EXPECT(rs, &mark, {"session", "k", 0, 11, 2, 3, 1, 2, 1.5, 0.5, 0, 1});
        feed(f, e, "k", 5, 100); /* finds nothing (S1 is out, 21 > 15); 5 < 26 - 15: late */
        assert_int_equal(tsink.late_mask, 1);
        NONE(rs, &mark);
        feed(f, e, "k", 60, 6);  /* st 60 >= 26 + 16: S2 closes; S3 = [60, 60] */
        /* S2 {3, 4, 5}: mean 4, sd sqrt(2/3), carries the late event */
        EXPECT(rs, &mark, {"session", "k", 21, 27, 3, 12, 3, 5, 4, sqrt(2.0 / 3.0), 1, 1});
        feed(f, e, "m", 45, 7);  /* 45 == 60 - 15: not late (last + grace alone would
                                  * be); M = [45, 45], closes 61 */
        assert_int_equal(tsink.late_mask, 0);
        feed(f, e, "n", 44, 8);  /* 44 < 45: late */
        assert_int_equal(tsink.late_mask, 1);
        feed(f, e, "k", 50, 9);  /* 50 >= 60 - 10: extends S3 back, [50, 60], closes 76 */
        assert_int_equal(tsink.late_mask, 0);
        NONE(rs, &mark);
        feed(f, e, "z", 61, 1);  /* st 61: M closes */
        EXPECT(rs, &mark, {"session", "m", 45, 46, 1, 7, 7, 7, 7, 0, 0, 1});
        /* The store's blind millisecond: at st 61 a session with last 46 is
         * open (it closes at 62) but not found (46 > 61 - 15 is false). */
        feed(f, e, "p", 46, 2);  /* 46 == 61 - 15: not late; P1 = [46, 46] */
        feed(f, e, "p", 50, 3);  /* within the gap of P1, which is not found: P2 = [50, 50] */
        assert_int_equal(tsink.late_mask, 0);
        NONE(rs, &mark);
        feed(f, e, "z", 62, 2);  /* st 62: P1 closes alone */
        EXPECT(rs, &mark, {"session", "p", 46, 47, 1, 2, 2, 2, 2, 0, 0, 1});
        feed(f, e, "z", 66, 3);  /* st 66 = 50 + 16: P2 closes */
        EXPECT(rs, &mark, {"session", "p", 50, 51, 1, 3, 3, 3, 3, 0, 0, 1});
        feed(f, e, "z", 75, 4);  /* 75 = S3's close - 1 */
        NONE(rs, &mark);
        feed(f, e, "z", 76, 5);  /* S3 {6, 9}: mean 7.5, sd 1.5 */
        EXPECT(rs, &mark, {"session", "k", 50, 61, 2, 15, 6, 9, 7.5, 1.5, 0, 1});
        idle_close(e);
        /* z [61, 76] {1, 2, 3, 4, 5} (each event found the last: 61 > 46 at
         * st 61, ..., 75 > 60 at st 75): mean 3, sd sqrt(2); n's late count
         * has no result */
        EXPECT(rs, &mark, {"session", "z", 61, 77, 5, 15, 1, 5, 3, sqrt(2.0), 0, 1});
        const dmp_engine_stats_t *s = dmp_engine_stats(e);
        assert_int_equal(s->late_events, 2);
        assert_int_equal(s->late_by_window[0], 2);
        assert_int_equal(s->late_instances_by_window[0], 2);
        commit(e);
        dmp_engine_destroy(e);
}

/* ---- sliding ---- */

/* tests/integration/test_reference.py::test_sliding_windows_by_hand:
 * D = 10, grace 0, events (100, 1), (105, 2), (130, 4). */
static void test_sliding_by_hand(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        dmp_engine_t *e = start(f, "type = sliding\nsize.ms = 10\n");

        feed(f, e, "k", 100, 1); /* candidates 90 (left), 101 (right) */
        NONE(rs, &mark);
        feed(f, e, "k", 105, 2); /* st 105: [90, 100] closes at 101: {1}; candidates
                                  * 95, 101, 106 */
        EXPECT(rs, &mark, {"sliding", "k", 90, 101, 1, 1, 1, 1, 1, 0, 0, 1});
        feed(f, e, "k", 130, 4);
        /* st 130: [95, 105] = {1, 2}; [101, 111] = {2}; [106, 116] empty */
        EXPECT(rs, &mark, {"sliding", "k", 95, 106, 2, 3, 1, 2, 1.5, 0.5, 0, 1},
               {"sliding", "k", 101, 112, 1, 2, 2, 2, 2, 0, 0, 1});
        idle_close(e);
        /* [120, 130] = {4}; [131, 141] empty */
        EXPECT(rs, &mark, {"sliding", "k", 120, 131, 1, 4, 4, 4, 4, 0, 0, 1});
        commit(e);
        dmp_engine_destroy(e);
}

/* ...::test_sliding_late_and_left_window_closed_on_arrival: D = 10,
 * grace 2 (a window [s, s+10] closes at s + 13); events (100, 1),
 * (125, 2), (105, 3), (118, 4). */
static void test_sliding_late_and_left_window_closed_on_arrival(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        dmp_engine_t *e = start(f, "type = sliding\nsize.ms = 10\ngrace.ms = 2\n");

        feed(f, e, "k", 100, 1);
        feed(f, e, "k", 125, 2);
        /* [90, 100] closes at 103 <= 125: {1}; [101, 111] (closes 114) empty.
         * 125: left 115 (closes 128 > 125), right 126 */
        EXPECT(rs, &mark, {"sliding", "k", 90, 101, 1, 1, 1, 1, 1, 0, 0, 1});
        feed(f, e, "k", 105, 3); /* 105 + 13 = 118 <= 125: late */
        assert_int_equal(tsink.late_mask, 1);
        feed(f, e, "k", 118, 4); /* 118 + 13 = 131 > 125: taken; its left [108, 118]
                                  * closed at 121 <= 125 on arrival: no candidate */
        assert_int_equal(tsink.late_mask, 0);
        NONE(rs, &mark);
        idle_close(e);
        /* [115, 125] = {4, 2} (both arrived at st 125 < 128): mean 3, sd 1,
         * carries the late event; [119, 129] = {2} (125 arrived before 132);
         * [126, 136] empty */
        EXPECT(rs, &mark, {"sliding", "k", 115, 126, 2, 6, 2, 4, 3, 1, 1, 1},
               {"sliding", "k", 119, 130, 1, 2, 2, 2, 2, 0, 0, 1});
        assert_int_equal(dmp_engine_stats(e)->late_by_window[0], 1);
        commit(e);
        dmp_engine_destroy(e);
}

/* docs/WINDOWS.md, sliding worked example 1: D = 10, grace 2 (a window
 * closes at s + 13; the left window [t - 10, t] of an event is closed on
 * arrival if t < st - 2). */
static void test_sliding_window_kafka_streams_never_creates(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        dmp_engine_t *e = start(f, "type = sliding\nsize.ms = 10\ngrace.ms = 2\n");

        feed(f, e, "x", 122, 1); /* left [112, 122] = {1} */
        feed(f, e, "x", 113, 2); /* left [103, 113] closed: skipped; [112, 122] = {1, 2};
                                  * right [114, 124] = {1} */
        assert_int_equal(tsink.late_mask, 0);
        feed(f, e, "x", 110, 4); /* not late (120 >= 120) but no window in reach, its
                                  * left [100, 110] closed: in no window, late */
        assert_int_equal(tsink.late_mask, 1);
        NONE(rs, &mark);
        idle_close(e);
        /* no [111, 121] = {2}: Kafka Streams never makes it */
        EXPECT(rs, &mark, {"sliding", "x", 112, 123, 2, 3, 1, 2, 1.5, 0.5, 1, 1},
               {"sliding", "x", 114, 125, 1, 1, 1, 1, 1, 0, 0, 1});
        const dmp_engine_stats_t *s = dmp_engine_stats(e);
        assert_int_equal(s->late_by_window[0], 1);
        assert_int_equal(s->late_instances_by_window[0], 2); /* the two left windows */
        commit(e);
        dmp_engine_destroy(e);
}

/* docs/WINDOWS.md, sliding worked example 2: D = 10, grace 2. */
static void test_sliding_event_missing_from_later_left_window(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        dmp_engine_t *e = start(f, "type = sliding\nsize.ms = 10\ngrace.ms = 2\n");

        feed(f, e, "y", 107, 1); /* left [97, 107] = {1} */
        feed(f, e, "y", 100, 2); /* [97, 107] = {1, 2}; left [90, 100] closed; right
                                  * [101, 111] = {1} */
        feed(f, e, "y", 105, 4); /* [101, 111] = {1, 4}, [97, 107] = {1, 2, 4}; no
                                  * previous record: left [95, 105] = {4}; right
                                  * [106, 116] = {1} (from [101, 111] before 4) */
        NONE(rs, &mark);
        idle_close(e);
        /* {1, 2, 4}: mean 7/3, squared deviations 16/9 + 1/9 + 25/9 = 42/9, sd
         * sqrt(14/9); {1, 4}: mean 2.5, sd 1.5 */
        EXPECT(rs, &mark, {"sliding", "y", 95, 106, 1, 4, 4, 4, 4, 0, 0, 1},
               {"sliding", "y", 97, 108, 3, 7, 1, 4, 7.0 / 3.0, sqrt(14.0 / 9.0), 0, 1},
               {"sliding", "y", 101, 112, 2, 5, 1, 4, 2.5, 1.5, 0, 1},
               {"sliding", "y", 106, 117, 1, 1, 1, 1, 1, 0, 0, 1});
        assert_int_equal(dmp_engine_stats(e)->late_by_window[0], 0);
        assert_int_equal(dmp_engine_stats(e)->late_instances_by_window[0], 1);
        commit(e);
        dmp_engine_destroy(e);
}

/* docs/WINDOWS.md, the window Kafka Streams' suppress publishes twice:
 * D = 10, grace 0. dmpflow publishes [100, 110] once, at st 111, with the
 * value Kafka Streams publishes last. */
static void test_sliding_published_once_with_the_last_value(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        dmp_engine_t *e = start(f, "type = sliding\nsize.ms = 10\n");

        feed(f, e, "z", 100, 1);
        feed(f, e, "z", 110, 2); /* [90, 100] closes; [101, 111] = {2}, [100, 110] = {1, 2}
                                  * (Kafka Streams' suppress publishes it now) */
        EXPECT(rs, &mark, {"sliding", "z", 90, 101, 1, 1, 1, 1, 1, 0, 0, 1});
        feed(f, e, "z", 105, 4); /* [100, 110] is still open at st 110: {1, 2, 4} */
        NONE(rs, &mark);
        feed(f, e, "z", 111, 8); /* st 111: [100, 110] closes */
        EXPECT(rs, &mark, {"sliding", "z", 100, 111, 3, 7, 1, 4, 7.0 / 3.0, sqrt(14.0 / 9.0), 0, 1});
        commit(e);
        dmp_engine_destroy(e);
}

/* D = 10, grace 0: a candidate that no record reached emits nothing and
 * leaves the key's late count to its next result. */
static void test_sliding_empty_candidate_keeps_late_count(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        dmp_engine_t *e = start(f, "type = sliding\nsize.ms = 10\n");

        feed(f, e, "k", 100, 1); /* candidates 90 (closes 101), 101 (closes 112) */
        feed(f, e, "o", 105, 10); /* st 105: k's [90, 100] = {1}; o: 95 (closes 106), 106 */
        EXPECT(rs, &mark, {"sliding", "k", 90, 101, 1, 1, 1, 1, 1, 0, 0, 1});
        feed(f, e, "k", 94, 1000); /* 94 + 11 <= 105: late */
        assert_int_equal(tsink.late_mask, 1);
        feed(f, e, "k", 113, 3);
        /* st 113: o's [95, 105] = {10} (closes 106) first, then k's [101, 111]
         * (closes 112): no record, nothing. 113: left 103 (closes 114), right 114 */
        EXPECT(rs, &mark, {"sliding", "o", 95, 106, 1, 10, 10, 10, 10, 0, 0, 1});
        idle_close(e);
        /* o's [106, 116] and k's [114, 124] are empty; k's [103, 113] = {3}
         * takes the late count */
        EXPECT(rs, &mark, {"sliding", "k", 103, 114, 1, 3, 3, 3, 3, 0, 1, 1});
        commit(e);
        dmp_engine_destroy(e);
}

/* gap 8000, grace 0: keys are scheduled in buckets of 1000 ms (gap / 8), yet
 * a session closes exactly at last + 1 + gap, here before 1970. */
static void test_session_exact_close_with_coarse_buckets(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        dmp_engine_t *e = start(f, "type = session\ngap.ms = 8000\n");

        feed(f, e, "k", -20000, 1); /* closes at -20000 + 1 + 8000 = -11999 */
        feed(f, e, "o", -12000, 2); /* its bucket [-12000, -11000) is reached: not due */
        NONE(rs, &mark);
        feed(f, e, "o", -11999, 3); /* due */
        EXPECT(rs, &mark, {"session", "k", -20000, -19999, 1, 1, 1, 1, 1, 0, 0, 1});
        idle_close(e);
        EXPECT(rs, &mark, {"session", "o", -12000, -11998, 2, 5, 2, 3, 2.5, 0.5, 0, 1});
        commit(e);
        dmp_engine_destroy(e);
}

/* D = 8000, grace 0: buckets of 1000 ms, exact close at s + 8001. */
static void test_sliding_exact_close_with_coarse_buckets(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        dmp_engine_t *e = start(f, "type = sliding\nsize.ms = 8000\n");

        feed(f, e, "k", -20000, 1); /* left [-28000, -20000] closes at -19999 */
        NONE(rs, &mark);
        feed(f, e, "o", -19999, 2);
        EXPECT(rs, &mark, {"sliding", "k", -28000, -19999, 1, 1, 1, 1, 1, 0, 0, 1});
        idle_close(e);
        /* k's right [-19999, -11999] and o's right [-19998, -11998] are empty;
         * o's left [-27999, -19999] = {2} (k's record is another key's) */
        EXPECT(rs, &mark, {"sliding", "o", -27999, -19998, 1, 2, 2, 2, 2, 0, 0, 1});
        commit(e);
        dmp_engine_destroy(e);
}

/* ---- update mode ---- */

/* tumbling size 10, grace 0, emit = update. */
static void test_update_mode(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        dmp_engine_t *e = start(f, "size.ms = 10\nemit = update\n");

        feed(f, e, "k", 1, 1);
        NONE(rs, &mark);
        dmp_engine_emit_updates(e);
        EXPECT(rs, &mark, {"tumbling", "k", 0, 10, 1, 1, 1, 1, 1, 0, 0, 0});
        dmp_engine_emit_updates(e); /* unchanged: nothing */
        NONE(rs, &mark);
        commit(e);
        dmp_engine_emit_updates(e);
        NONE(rs, &mark);

        feed(f, e, "k", 3, 3);
        dmp_engine_emit_updates(e);
        EXPECT(rs, &mark, {"tumbling", "k", 0, 10, 2, 4, 1, 3, 2, 1, 0, 0});
        commit(e);
        feed(f, e, "k", 5, 5);
        feed(f, e, "k", 12, 2); /* closes [0, 10): its last result waits for the call */
        NONE(rs, &mark);
        dmp_engine_emit_updates(e);
        /* [0, 10) {1, 3, 5}: mean 3, squared deviations 4+0+4 = 8, sd sqrt(8/3) */
        EXPECT(rs, &mark, {"tumbling", "k", 0, 10, 3, 9, 1, 5, 3, sqrt(8.0 / 3.0), 0, 1},
               {"tumbling", "k", 10, 20, 1, 2, 2, 2, 2, 0, 0, 0});
        dmp_engine_emit_updates(e);
        NONE(rs, &mark);
        feed(f, e, "k", 8, 100); /* late */
        assert_int_equal(tsink.late_mask, 1);
        dmp_engine_emit_updates(e);
        NONE(rs, &mark);
        commit(e);

        feed(f, e, "k", 25, 4); /* closes [10, 20), unchanged since its update */
        NONE(rs, &mark);
        dmp_engine_emit_updates(e);
        EXPECT(rs, &mark, {"tumbling", "k", 10, 20, 1, 2, 2, 2, 2, 0, 1, 1},
               {"tumbling", "k", 20, 30, 1, 4, 4, 4, 4, 0, 0, 0});
        commit(e);
        dmp_engine_emit_updates(e);
        NONE(rs, &mark);
        idle_close(e);
        NONE(rs, &mark);
        dmp_engine_emit_updates(e);
        EXPECT(rs, &mark, {"tumbling", "k", 20, 30, 1, 4, 4, 4, 4, 0, 0, 1});
        dmp_engine_emit_updates(e);
        NONE(rs, &mark);
        commit(e);
        dmp_engine_destroy(e);
}

/* ---- restart ---- */

/* gap 10, grace 10: close at last + 21, late if merged last + 10 < st. */
static void test_restart_session(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        const char *w = "type = session\ngap.ms = 10\ngrace.ms = 10\n";
        dmp_engine_t *e = start(f, w);
        assert_int_equal(resume_offset(e, f), 0);
        feed(f, e, "k", 100, 1);
        feed(f, e, "j", 101, 7);
        feed(f, e, "k", 105, 2);
        commit(e);
        feed(f, e, "k", 108, 3); /* not committed: lost, consumed again */
        NONE(rs, &mark);
        dmp_engine_destroy(e);

        e = start(f, w);
        assert_int_equal(resume_offset(e, f), 3);
        feed(f, e, "k", 108, 3); /* k: [100, 108] */
        NONE(rs, &mark);
        feed(f, e, "j", 122, 8); /* st 122 = 101 + 21: j's [101, 101] closes */
        EXPECT(rs, &mark, {"session", "j", 101, 102, 1, 7, 7, 7, 7, 0, 0, 1});
        feed(f, e, "k", 80, 1000); /* finds no session of k (100 > 80 + 10) and
                                    * 80 < 122 - 10 - 10: late; the count is stored */
        assert_int_equal(tsink.late_mask, 1);
        commit(e);
        dmp_engine_destroy(e);

        e = start(f, w);
        assert_int_equal(resume_offset(e, f), 6);
        feed(f, e, "k", 130, 4); /* st 130 >= 108 + 21: k's session closes */
        /* {1, 2, 3} from all three lives: mean 2, sd sqrt(2/3); the late event
         * of the second life */
        EXPECT(rs, &mark, {"session", "k", 100, 109, 3, 6, 1, 3, 2, sqrt(2.0 / 3.0), 1, 1});
        idle_close(e); /* j [122] closes at 143, k [130] at 151 */
        EXPECT(rs, &mark, {"session", "j", 122, 123, 1, 8, 8, 8, 8, 0, 0, 1},
               {"session", "k", 130, 131, 1, 4, 4, 4, 4, 0, 0, 1});
        commit(e);
        dmp_engine_destroy(e);

        e = start(f, w);
        assert_int_equal(resume_offset(e, f), 7);
        idle_close(e);
        NONE(rs, &mark);
        commit(e);
        dmp_engine_destroy(e);
        expect_unique(rs);
}

/* D = 10, grace 0. */
static void test_restart_sliding(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        const char *w = "type = sliding\nsize.ms = 10\n";
        dmp_engine_t *e = start(f, w);
        feed(f, e, "k", 100, 1); /* candidates 90, 101 */
        feed(f, e, "k", 105, 2); /* [90, 100] = {1}; candidates 95, 101, 106 */
        EXPECT(rs, &mark, {"sliding", "k", 90, 101, 1, 1, 1, 1, 1, 0, 0, 1});
        commit(e);
        dmp_engine_destroy(e);

        e = start(f, w);
        assert_int_equal(resume_offset(e, f), 2);
        feed(f, e, "k", 108, 3);
        /* st 108: [95, 105] = {1, 2} closes at 106; 101 closes at 112. 108: left 98
         * (closes 109 > 108), right 109 */
        EXPECT(rs, &mark, {"sliding", "k", 95, 106, 2, 3, 1, 2, 1.5, 0.5, 0, 1});
        feed(f, e, "k", 97, 1000); /* 97 + 11 <= 108: late; the count is stored */
        assert_int_equal(tsink.late_mask, 1);
        commit(e);
        dmp_engine_destroy(e);

        e = start(f, w);
        assert_int_equal(resume_offset(e, f), 4);
        idle_close(e);
        /* [98, 108] = {1, 2, 3}: mean 2, sd sqrt(2/3), late 1; [101, 111] = {2, 3};
         * [106, 116] = {3}; [109, 119] empty */
        EXPECT(rs, &mark, {"sliding", "k", 98, 109, 3, 6, 1, 3, 2, sqrt(2.0 / 3.0), 1, 1},
               {"sliding", "k", 101, 112, 2, 5, 2, 3, 2.5, 0.5, 0, 1},
               {"sliding", "k", 106, 117, 1, 3, 3, 3, 3, 0, 0, 1});
        commit(e);
        dmp_engine_destroy(e);

        e = start(f, w);
        assert_int_equal(resume_offset(e, f), 4);
        idle_close(e);
        NONE(rs, &mark);
        commit(e);
        dmp_engine_destroy(e);
        expect_unique(rs);
}

/* ---- retention ---- */

/* tumbling size 10, grace 0, retention 20: an emitted window stays in state
 * until st >= end + 20. open_entries (after a commit) counts the table. */
static void test_retention(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        const char *w = "size.ms = 10\nretention.ms = 20\n";
        dmp_engine_t *e = start(f, w);
        feed(f, e, "k", 1, 1);
        feed(f, e, "k", 12, 2);
        EXPECT(rs, &mark, {"tumbling", "k", 0, 10, 1, 1, 1, 1, 1, 0, 0, 1});
        commit(e);
        assert_int_equal(dmp_engine_stats(e)->open_entries, 2); /* [0, 10) kept, [10, 20) */
        dmp_engine_destroy(e);

        e = start(f, w);
        assert_int_equal(resume_offset(e, f), 2);
        commit(e);
        assert_int_equal(dmp_engine_stats(e)->open_entries, 2); /* both restored */
        feed(f, e, "k", 15, 3); /* st advances: [0, 10) is not emitted again */
        NONE(rs, &mark);
        feed(f, e, "k", 5, 100); /* late for the retained [0, 10) */
        assert_int_equal(tsink.late_mask, 1);
        feed(f, e, "k", 29, 4); /* closes [10, 20) = {2, 3}; [0, 10) kept until 30 */
        EXPECT(rs, &mark, {"tumbling", "k", 10, 20, 2, 5, 2, 3, 2.5, 0.5, 1, 1});
        commit(e);
        assert_int_equal(dmp_engine_stats(e)->open_entries, 3);
        dmp_engine_destroy(e);

        e = start(f, w);
        assert_int_equal(resume_offset(e, f), 5);
        commit(e);
        assert_int_equal(dmp_engine_stats(e)->open_entries, 3);
        feed(f, e, "k", 41, 5); /* closes [20, 30); purges [0, 10) (30 <= 41) and
                                 * [10, 20) (40 <= 41) */
        EXPECT(rs, &mark, {"tumbling", "k", 20, 30, 1, 4, 4, 4, 4, 0, 0, 1});
        commit(e);
        assert_int_equal(dmp_engine_stats(e)->open_entries, 2); /* [20, 30), [40, 50) */
        dmp_engine_destroy(e);

        e = start(f, w);
        assert_int_equal(resume_offset(e, f), 6);
        commit(e);
        /* the purged windows were deleted from the store */
        assert_int_equal(dmp_engine_stats(e)->open_entries, 2);
        feed(f, e, "k", 50, 6); /* closes [40, 50), purges [20, 30) */
        EXPECT(rs, &mark, {"tumbling", "k", 40, 50, 1, 5, 5, 5, 5, 0, 0, 1});
        commit(e);
        assert_int_equal(dmp_engine_stats(e)->open_entries, 2); /* [40, 50), [50, 60) */
        dmp_engine_destroy(e);
        expect_unique(rs);
}

/* Sessions with retention.ms: an emitted session stays in state (not merged
 * with, not emitted again after a restart) until its close + retention. */
static void test_session_retention(void **state) {
        fixture_t *f = *state;
        recs_t *rs = &f->recs;
        int mark = 0;
        const char *w = "type = session\ngap.ms = 10\ngrace.ms = 5\nretention.ms = 20\n";
        dmp_engine_t *e = start(f, w);
        feed(f, e, "k", 0, 1);   /* S1 = [0, 0], closes at 0 + 1 + 10 + 5 = 16 */
        feed(f, e, "k", 20, 2);  /* st 20: S1 emitted, kept until 36; S2 = [20, 20] */
        EXPECT(rs, &mark, {"session", "k", 0, 1, 1, 1, 1, 1, 1, 0, 0, 1});
        feed(f, e, "k", 4, 100); /* within the gap of the retained S1 only, which is
                                  * not merged with: 4 < 20 - 10 - 5, late */
        assert_int_equal(tsink.late_mask, 1);
        NONE(rs, &mark);
        feed(f, e, "m", 40, 3);  /* st 40: S2 closes (36), carrying the late event; S1
                                  * purged (36 <= 40); S2 kept until 56; M = [40, 40] */
        EXPECT(rs, &mark, {"session", "k", 20, 21, 1, 2, 2, 2, 2, 0, 1, 1});
        commit(e);
        assert_int_equal(dmp_engine_stats(e)->open_entries, 2); /* k (S2 retained), m */
        dmp_engine_destroy(e);

        e = start(f, w);
        commit(e);
        assert_int_equal(dmp_engine_stats(e)->open_entries, 2);
        feed(f, e, "m", 50, 4);  /* st 50: S2 is not emitted again; M = [40, 50] */
        NONE(rs, &mark);
        feed(f, e, "m", 57, 5);  /* st 57 >= 56: S2 purged, k's state goes; M = [40, 57] */
        NONE(rs, &mark);
        commit(e);
        assert_int_equal(dmp_engine_stats(e)->open_entries, 1); /* m */
        dmp_engine_destroy(e);
        expect_unique(rs);
}

int main(void) {
        dmp_log_level = DMP_LOG_ERROR; /* quiet partition_open */
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        const struct CMUnitTest tests[] = {
                T(test_tumbling_boundaries),
                T(test_hopping_size_not_multiple_of_advance),
                T(test_tumbling_negative_and_far_future),
                T(test_session_negative_and_far_future),
                T(test_sliding_negative_and_far_future),
                T(test_session_merge_bridge),
                T(test_session_gap_close_and_late),
                T(test_sliding_by_hand),
                T(test_sliding_late_and_left_window_closed_on_arrival),
                T(test_sliding_empty_candidate_keeps_late_count),
        T(test_sliding_window_kafka_streams_never_creates),
        T(test_sliding_event_missing_from_later_left_window),
        T(test_sliding_published_once_with_the_last_value),
                T(test_session_exact_close_with_coarse_buckets),
                T(test_sliding_exact_close_with_coarse_buckets),
                T(test_update_mode),
                T(test_restart_session),
                T(test_restart_sliding),
                T(test_retention),
                T(test_session_retention),
        };
#undef T
        return cmocka_run_group_tests(tests, NULL, NULL);
}
