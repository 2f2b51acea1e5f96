/* Unit tests of schema resolution (src/avro_compile.c through decoder.c):
 * random records written with tests/schemas/evolution/writer_v1.avsc are
 * read through reader schemas that remove, reorder, promote, add (with
 * defaults), alias and restrict fields. Each reader's expected values are
 * written out by hand below from the generator's record of what it wrote,
 * and where Avro C's resolver can read the pair (it has no defaults) the
 * plan must also equal it. Incompatible pairs must be compile errors that
 * name the field and the rule. Run from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "avro_gen.h"
#include "avro_schema.h"
#include "decoder.h"
#include "util.h"

#define DIR "tests/schemas/evolution/"
#define RECORDS 3000

/* writer_v1 field indexes (what the generator reports, g->top[i]) */
enum { W_USER, W_SEGMENT, W_TS, W_PRICE, W_QUANTITY, W_CLICKS, W_COLOR, W_INFO, W_TAGS,
       W_LEGACY };

static char *read_text(const char *path) {
        char err[256];
        char *s = dmp_read_file(path, NULL, err, sizeof(err));
        if (!s)
                fail_msg("%s", err);
        return s;
}

typedef struct reader_case {
        const char *reader;
        const char *key, *time;
        const char *nums[8];
        int avro_c_resolves; /* Avro C's resolver reads this pair */
        /* fills the expected event from what was written; returns 0, or the
         * error class of a record that must be rejected */
        dmp_decode_err_t (*expect)(const avro_gen_t *g, dmp_event_t *ev);
} reader_case_t;

static void set_num(dmp_event_t *ev, int slot, double x) {
        ev->num[slot] = x;
        ev->defined |= 1ULL << slot;
}

static void key_str(dmp_event_t *ev, const char *s, size_t len) {
        ev->key = s;
        ev->key_len = len;
}

/* reader_promoted: price float->double, quantity int->long, clicks
 * [null,int]->[null,long]. Slots: price 0, quantity 1, clicks 2. */
static dmp_decode_err_t expect_promoted(const avro_gen_t *g, dmp_event_t *ev) {
        key_str(ev, g->top[W_USER].s, g->top[W_USER].len);
        ev->has_time = 1;
        ev->time_ms = g->top[W_TS].l;
        set_num(ev, 0, g->top[W_PRICE].d);
        set_num(ev, 1, (double)g->top[W_QUANTITY].l);
        if (g->top[W_CLICKS].kind == GEN_LONG)
                set_num(ev, 2, (double)g->top[W_CLICKS].l);
        return DMP_DECODE_OK;
}

/* reader_added: key region (default "eu"); price 0 (float->double),
 * quantity 1 (int->float: rounded to float), bonus 2 (default 2.5), rating
 * 3 (default null: undefined), amount 4 (alias of legacy), clicks 5
 * ([null,int] -> [null,double]). */
static dmp_decode_err_t expect_added(const avro_gen_t *g, dmp_event_t *ev) {
        key_str(ev, "eu", 2);
        ev->has_time = 1;
        ev->time_ms = g->top[W_TS].l;
        set_num(ev, 0, g->top[W_PRICE].d);
        set_num(ev, 1, (double)(float)g->top[W_QUANTITY].l);
        set_num(ev, 2, 2.5);
        set_num(ev, 4, g->top[W_LEGACY].d);
        if (g->top[W_CLICKS].kind == GEN_LONG)
                set_num(ev, 5, (double)g->top[W_CLICKS].l);
        return DMP_DECODE_OK;
}

/* reader_strict: clicks is a long (a null cannot be read), color has no
 * BLUE (index 2 of the writer's enum). Slot: clicks 0. */
static dmp_decode_err_t expect_strict(const avro_gen_t *g, dmp_event_t *ev) {
        key_str(ev, g->top[W_USER].s, g->top[W_USER].len);
        ev->has_time = 1;
        ev->time_ms = g->top[W_TS].l;
        if (g->top[W_CLICKS].kind == GEN_NULL)
                return DMP_DECODE_RESOLVE;
        assert_int_equal(g->top[W_COLOR].kind, GEN_ENUM);
        if (g->top[W_COLOR].l == 2)
                return DMP_DECODE_RESOLVE;
        set_num(ev, 0, (double)g->top[W_CLICKS].l);
        return DMP_DECODE_OK;
}

static const reader_case_t cases[] = {
        {DIR "reader_promoted.avsc", "user_id", "ts", {"price", "quantity", "clicks"}, 1,
         expect_promoted},
        {DIR "reader_added.avsc", "region", "ts",
         {"price", "quantity", "bonus", "rating", "amount", "clicks"}, 0, expect_added},
        {DIR "reader_strict.avsc", "user_id", "ts", {"clicks"}, -1, expect_strict},
};

static void assert_same(const dmp_event_t *a, const dmp_event_t *b, int nnums, const char *what,
                        int rec) {
        if (a->key_len != b->key_len || memcmp(a->key, b->key, a->key_len))
                fail_msg("%s record %d: key %.*s vs %.*s", what, rec, (int)a->key_len, a->key,
                         (int)b->key_len, b->key);
        if (a->has_time != b->has_time || a->time_ms != b->time_ms)
                fail_msg("%s record %d: time %lld vs %lld", what, rec, (long long)a->time_ms,
                         (long long)b->time_ms);
        if (a->defined != b->defined)
                fail_msg("%s record %d: defined %llx vs %llx", what, rec, a->defined,
                         b->defined);
        for (int s = 0; s < nnums; s++)
                if ((a->defined >> s & 1) && memcmp(&a->num[s], &b->num[s], sizeof(double)))
                        fail_msg("%s record %d: slot %d = %.17g vs %.17g", what, rec, s,
                                 a->num[s], b->num[s]);
}

static dmp_decoder_t *resolved_decoder(const char *reader_json, const char *writer_json,
                                       const char *key, const char *time,
                                       const char *const *nums, char *err, size_t err_size) {
        dmp_decoder_t *d = dmp_decoder_new(reader_json, key, time, err, err_size);
        if (!d)
                return NULL;
        if (writer_json && dmp_decoder_set_writer(d, writer_json, err, err_size)) {
                dmp_decoder_destroy(d);
                return NULL;
        }
        for (int i = 0; nums && nums[i]; i++) {
                int s = dmp_decoder_num_field(d, nums[i], err, err_size);
                if (s != i) {
                        dmp_decoder_destroy(d);
                        return NULL;
                }
        }
        return d;
}

static void test_readers(void **state) {
        (void)state;
        char *wjson = read_text(DIR "writer_v1.avsc");
        avro_schema_t ws;
        assert_int_equal(avro_schema_from_json_length(wjson, strlen(wjson), &ws), 0);
        static unsigned char buf[1 << 16];
        for (size_t k = 0; k < DMP_ARRAY_SIZE(cases); k++) {
                const reader_case_t *rc = &cases[k];
                char *rjson = read_text(rc->reader);
                char err[512] = "";
                dmp_decoder_t *d = resolved_decoder(rjson, wjson, rc->key, rc->time, rc->nums,
                                                    err, sizeof(err));
                free(rjson);
                if (!d)
                        fail_msg("%s: %s", rc->reader, err);
                int nnums = 0;
                while (rc->nums[nnums])
                        nnums++;
                avro_gen_t g;
                avro_gen_init(&g, 31 + k);
                int rejected = 0, compared_with_avro_c = 0;
                for (int r = 0; r < RECORDS; r++) {
                        size_t n = avro_gen_record(&g, ws, buf, sizeof(buf));
                        assert_true(n > 0);
                        dmp_event_t want, plan, ref;
                        memset(&want, 0, sizeof(want));
                        dmp_decode_err_t want_err = rc->expect(&g, &want);
                        int got = dmp_decoder_decode(d, buf, n, &plan, err, sizeof(err));
                        if (want_err) {
                                if (got != -1 || dmp_decoder_last_error(d) != want_err)
                                        fail_msg("%s record %d: want class %s, got rc %d (%s)",
                                                 rc->reader, r, dmp_decode_err_name(want_err),
                                                 got, err);
                                rejected++;
                                continue;
                        }
                        if (got)
                                fail_msg("%s record %d: %s", rc->reader, r, err);
                        assert_same(&plan, &want, nnums, rc->reader, r);
                        int grc = dmp_decoder_decode_generic(d, buf, n, &ref, err, sizeof(err));
                        if (rc->avro_c_resolves == 1) {
                                if (grc)
                                        fail_msg("%s record %d: Avro C: %s", rc->reader, r, err);
                                assert_same(&plan, &ref, nnums, "plan vs Avro C", r);
                                compared_with_avro_c++;
                        } else if (rc->avro_c_resolves == 0) {
                                /* Avro C quirk: no defaults, so no resolver */
                                assert_int_equal(grc, -1);
                                assert_non_null(strstr(err, "Avro C cannot resolve"));
                        }
                }
                if (rc->expect == expect_strict)
                        assert_true(rejected > RECORDS / 4 && rejected < RECORDS);
                else
                        assert_int_equal(rejected, 0);
                if (rc->avro_c_resolves == 1)
                        assert_int_equal(compared_with_avro_c, RECORDS);
                dmp_decoder_destroy(d);
        }
        avro_schema_decref(ws);
        free(wjson);
}

/* The writer's logical type sets the time unit: a writer that moved to
 * timestamp-micros is read in micros by a reader still saying millis. */
static void test_time_unit_follows_writer(void **state) {
        (void)state;
        static const char writer[] =
                "{\"type\": \"record\", \"name\": \"E\", \"fields\": ["
                " {\"name\": \"t\", \"type\": {\"type\": \"long\", \"logicalType\": \"timestamp-micros\"}}]}";
        static const char reader[] =
                "{\"type\": \"record\", \"name\": \"E\", \"fields\": ["
                " {\"name\": \"t\", \"type\": {\"type\": \"long\", \"logicalType\": \"timestamp-millis\"}}]}";
        static const char date[] =
                "{\"type\": \"record\", \"name\": \"E\", \"fields\": ["
                " {\"name\": \"t\", \"type\": {\"type\": \"int\", \"logicalType\": \"date\"}}]}";
        char err[512];
        dmp_decoder_t *d = resolved_decoder(reader, writer, NULL, "t", NULL, err, sizeof(err));
        assert_non_null(d);
        unsigned char buf[16] = {0};
        buf[0] = 0x03; /* zigzag -2: -2 us -> -1 ms (floor) */
        dmp_event_t ev;
        assert_int_equal(dmp_decoder_decode(d, buf, 1, &ev, err, sizeof(err)), 0);
        assert_true(ev.time_ms == -1);
        dmp_decoder_destroy(d);
        /* date: days since the epoch, also read as a long by a reader */
        d = resolved_decoder(reader, date, NULL, "t", NULL, err, sizeof(err));
        assert_non_null(d);
        buf[0] = 0x04; /* 2 days */
        assert_int_equal(dmp_decoder_decode(d, buf, 1, &ev, err, sizeof(err)), 0);
        assert_true(ev.time_ms == 2 * 86400000LL);
        dmp_decoder_destroy(d);
}

/* Replaces the first `from` in text by `to` (a fresh string). */
static char *subst(const char *text, const char *from, const char *to) {
        const char *at = strstr(text, from);
        if (!at)
                fail_msg("\"%s\" not in the schema", from);
        size_t n = strlen(text) - strlen(from) + strlen(to) + 1;
        char *s = malloc(n);
        snprintf(s, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
        return s;
}

static void expect_incompatible(const char *reader, const char *writer, const char *const *nums,
                                const char *part1, const char *part2) {
        char err[512] = "";
        dmp_decoder_t *d = resolved_decoder(reader, writer, "user_id", NULL, nums, err,
                                            sizeof(err));
        if (d) {
                dmp_decoder_destroy(d);
                fail_msg("compiled, want an error with \"%s\" and \"%s\"", part1, part2);
        }
        if (!strstr(err, part1) || !strstr(err, part2))
                fail_msg("\"%s\" lacks \"%s\" or \"%s\"", err, part1, part2);
}

static void test_incompatible_schemas_name_field_and_rule(void **state) {
        (void)state;
        char *w = read_text(DIR "writer_v1.avsc");
        char *r = read_text(DIR "reader_promoted.avsc");
        static const char *const price[] = {"price", NULL};
        char *x;

        x = subst(r, "{\"name\": \"price\",    \"type\": \"double\"}",
                  "{\"name\": \"price\", \"type\": \"string\"}");
        expect_incompatible(x, w, price, "field \"price\"",
                            "writer type float cannot be read as string");
        free(x);
        x = subst(r, "{\"name\": \"price\",    \"type\": \"double\"}",
                  "{\"name\": \"price\", \"type\": \"int\"}");
        expect_incompatible(x, w, price, "field \"price\"", "float cannot be read as int");
        free(x);
        x = subst(r, "{\"name\": \"price\",    \"type\": \"double\"}",
                  "{\"name\": \"price\", \"type\": [\"null\", \"string\"]}");
        expect_incompatible(x, w, NULL, "field \"price\"",
                            "writer type float matches no branch of the reader's union");
        free(x);
        x = subst(r, "{\"name\": \"clicks\",   \"type\": [\"null\", \"long\"]}",
                  "{\"name\": \"clicks\", \"type\": \"string\"}");
        expect_incompatible(x, w, NULL, "field \"clicks\"",
                            "no branch of the writer's union can be read as string");
        free(x);
        x = subst(r, "\"fields\": [", "\"fields\": [{\"name\": \"extra\", \"type\": \"long\"},");
        expect_incompatible(x, w, NULL, "field \"extra\"", "no default in the reader schema");
        free(x);
        x = subst(r, "\"name\": \"Color\"", "\"name\": \"Colour\"");
        expect_incompatible(x, w, NULL, "field \"color\"", "names differ");
        free(x);
        x = subst(r, "{\"name\": \"a\", \"type\": \"long\"}", "{\"name\": \"a\", \"type\": \"string\"}");
        expect_incompatible(x, w, NULL, "field \"info.a\"", "int cannot be read as string");
        free(x);
        x = subst(r, "\"name\": \"Event\"", "\"name\": \"Other\"");
        expect_incompatible(x, w, NULL, "record names differ", "dmpflow.test.Event");
        free(x);

        /* an alias names the writer's type: compatible again */
        x = subst(r, "\"name\": \"Color\"", "\"name\": \"Colour\", \"aliases\": [\"Color\"]");
        char err[512];
        dmp_decoder_t *d = resolved_decoder(x, w, "user_id", "ts", price, err, sizeof(err));
        if (!d)
                fail_msg("%s", err);
        dmp_decoder_destroy(d);
        free(x);
        free(r);

        /* a time field the writer lacks: its default must give a time */
        r = read_text(DIR "reader_added.avsc");
        x = subst(r, "{\"name\": \"bonus\"", "{\"name\": \"t2\", \"type\": [\"null\", \"long\"], "
                  "\"default\": null}, {\"name\": \"bonus\"");
        d = dmp_decoder_new(x, "user_id", "t2", err, sizeof(err));
        assert_non_null(d);
        assert_int_equal(dmp_decoder_set_writer(d, w, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "field \"t2\""));
        assert_non_null(strstr(err, "default is null"));
        /* the decoder is unchanged by the failure */
        unsigned char rec[4] = {0x02, 0x02, 0x02, 0x00};
        dmp_event_t ev;
        assert_int_equal(dmp_decoder_decode(d, rec, 0, &ev, err, sizeof(err)), -1);
        dmp_decoder_destroy(d);
        free(x);
        free(r);
        free(w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_readers),
                cmocka_unit_test(test_time_unit_follows_writer),
                cmocka_unit_test(test_incompatible_schemas_name_field_and_rule),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
