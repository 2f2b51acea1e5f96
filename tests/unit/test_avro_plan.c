/* Unit tests of the compiled decoder (src/avro_plan.c through
 * src/decoder.c):
 *  - differential: thousands of random records per test schema (one of them
 *    with every Avro type, one recursive) decoded by the compiled plan and by
 *    Avro C's generic reader must give identical fields, and both must equal
 *    what the generator wrote (tests/support/avro_gen.c);
 *  - hostile input: each malformation is rejected with its error class;
 *  - mutations of valid records never crash, and whatever the plan accepts
 *    Avro C reads to the same values.
 * Run from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "avro_enc.h"
#include "avro_gen.h"
#include "avro_plan.h"
#include "decoder.h"
#include "pipelines.h"
#include "util.h"

#define RECORDS_PER_PIPELINE 4000

static char *read_text(const char *path) {
        char err[256];
        char *s = dmp_read_file(path, NULL, err, sizeof(err));
        if (!s)
                fail_msg("%s", err);
        return s;
}

typedef test_fixture_t fixture_t;

static void fixture_open(fixture_t *fx, const test_pipeline_t *pp) {
        char err[512] = "";
        if (test_fixture_open(fx, pp, err, sizeof(err)))
                fail_msg("%s: %s", pp->schema_path, err);
}

static void fixture_close(fixture_t *fx) {
        test_fixture_close(fx);
}

static const gen_value_t *gen_field(const fixture_t *fx, const avro_gen_t *g, const char *name) {
        int idx = avro_schema_record_field_get_index(fx->schema, name);
        assert_true(idx >= 0 && idx < GEN_MAX_FIELDS);
        return &g->top[idx];
}

static void assert_same_event(const fixture_t *fx, const dmp_event_t *a, const dmp_event_t *b,
                              const char *what, long rec) {
        char why[256];
        if (test_event_compare(fx, a, b, why, sizeof(why)))
                fail_msg("%s: %s record %ld: %s", fx->pp->schema_path, what, rec, why);
}

/* The decimal fields of tests/schemas/every_type.avsc and their scales. */
static int decimal_scale_of(const char *field) {
        return !strcmp(field, "dec") ? 2 : !strcmp(field, "decn") ? 30
             : !strcmp(field, "decf") ? 4 : -1;
}

/* A decimal's value computed independently of dmp_decimal_to_double: the
 * unsigned value's decimal digits by repeated multiply-by-256-and-add,
 * minus 2^(8n) when negative, then strtod (correctly rounded). */
static double reference_decimal(const unsigned char *b, size_t n, int scale) {
        enum { D = 200 };
        int u[D] = {0}, p[D] = {0}; /* little-endian decimal digits */
        p[0] = 1;
        for (size_t i = 0; i < n; i++) {
                int cu = b[i], cp = 0;
                for (int k = 0; k < D; k++) {
                        int x = u[k] * 256 + cu, y = p[k] * 256 + cp;
                        u[k] = x % 10, cu = x / 10;
                        p[k] = y % 10, cp = y / 10;
                }
        }
        int neg = n && (b[0] & 0x80);
        if (neg) { /* magnitude = 2^(8n) - u */
                int borrow = 0;
                for (int k = 0; k < D; k++) {
                        int x = p[k] - u[k] - borrow;
                        borrow = x < 0;
                        u[k] = x + 10 * borrow;
                }
        }
        char text[D + 16];
        size_t len = 0;
        int k = D - 1;
        while (k > 0 && !u[k])
                k--;
        if (neg)
                text[len++] = '-';
        for (; k >= 0; k--)
                text[len++] = (char)('0' + u[k]);
        snprintf(text + len, sizeof(text) - len, "e-%d", scale);
        return strtod(text, NULL);
}

/* The event the generator says it wrote. Returns 0, or -1 if the record
 * must be rejected (a null event time). */
static int expected_event(const fixture_t *fx, const avro_gen_t *g, dmp_event_t *ev) {
        memset(ev, 0, sizeof(*ev));
        const test_pipeline_t *pp = fx->pp;
        if (*pp->key) {
                const gen_value_t *v = gen_field(fx, g, pp->key);
                if (v->kind == GEN_STRING) {
                        ev->key = v->s;
                        ev->key_len = v->len;
                } else if (v->kind == GEN_LONG) {
                        ev->key_len = (size_t)snprintf(ev->keybuf, sizeof(ev->keybuf), "%lld",
                                                       (long long)v->l);
                        ev->key = ev->keybuf;
                } else {
                        assert_int_equal(v->kind, GEN_NULL);
                        ev->key = "";
                }
        }
        if (*pp->time) {
                const gen_value_t *v = gen_field(fx, g, pp->time);
                if (v->kind == GEN_NULL)
                        return -1;
                assert_int_equal(v->kind, GEN_LONG);
                ev->has_time = 1;
                /* only field t is timestamp-micros in the test schemas */
                ev->time_ms = !strcmp(pp->time, "t") ? dmp_floor_div(v->l, 1000) : v->l;
        }
        for (int i = 0; i < fx->nlabels; i++) {
                const gen_value_t *v = gen_field(fx, g, pp->labels[i]);
                int s = fx->label_slots[i];
                if (v->kind == GEN_STRING) {
                        ev->label[s] = v->s;
                        ev->label_len[s] = (uint32_t)v->len;
                } else if (v->kind == GEN_LONG) {
                        ev->label_len[s] = (uint32_t)snprintf(ev->labelbuf[s], 24, "%lld",
                                                              (long long)v->l);
                        ev->label[s] = ev->labelbuf[s];
                } else {
                        assert_int_equal(v->kind, GEN_NULL);
                        ev->label[s] = "";
                }
        }
        for (int i = 0; i < fx->nnums; i++) {
                const gen_value_t *v = gen_field(fx, g, pp->nums[i]);
                int s = fx->slots[i];
                if (v->kind == GEN_NULL)
                        continue;
                int scale = decimal_scale_of(pp->nums[i]);
                if (scale >= 0)
                        ev->num[s] = reference_decimal((const unsigned char *)v->s, v->len, scale);
                else
                        ev->num[s] = v->kind == GEN_LONG ? (double)v->l : v->d;
                ev->defined |= 1ULL << s;
        }
        return 0;
}

static void test_differential(void **state) {
        (void)state;
        static unsigned char buf[1 << 20];
        long total = 0, rejected = 0;
        for (size_t p = 0; p < test_pipeline_cnt; p++) {
                fixture_t fx;
                fixture_open(&fx, &test_pipelines[p]);
                avro_gen_t g;
                avro_gen_init(&g, 1000 + p);
                for (long r = 0; r < RECORDS_PER_PIPELINE; r++) {
                        size_t n = avro_gen_record(&g, fx.schema, buf, sizeof(buf));
                        assert_true(n > 0 || avro_schema_record_size(fx.schema) == 0);
                        dmp_event_t want, plan, generic;
                        char err[256] = "";
                        int want_rc = expected_event(&fx, &g, &want);
                        int rc = dmp_decoder_decode(fx.dec, buf, n, &plan, err, sizeof(err));
                        if (rc != want_rc)
                                fail_msg("%s: record %ld: plan returned %d (%s), want %d",
                                         fx.pp->schema_path, r, rc, err, want_rc);
                        int grc = dmp_decoder_decode_generic(fx.dec, buf, n, &generic, err,
                                                             sizeof(err));
                        if (grc != want_rc)
                                fail_msg("%s: record %ld: generic returned %d (%s), want %d",
                                         fx.pp->schema_path, r, grc, err, want_rc);
                        total++;
                        if (rc) {
                                assert_int_equal(dmp_decoder_last_error(fx.dec),
                                                 DMP_DECODE_NULL_TIME);
                                rejected++;
                                continue;
                        }
                        assert_same_event(&fx, &plan, &generic, "plan vs generic", r);
                        assert_same_event(&fx, &plan, &want, "plan vs generator", r);
                }
                fixture_close(&fx);
        }
        /* the null-time pipeline really met null times, and not only */
        assert_true(rejected > 100 && rejected < RECORDS_PER_PIPELINE);
        print_message("%ld records compared, %ld with a null time\n", total, rejected);
}

/* ---- hostile input ---- */

static dmp_decoder_t *decoder_for(const char *schema_json, const char *key, const char *time,
                                  const char *const *nums) {
        char err[512] = "";
        dmp_decoder_t *d = dmp_decoder_new(schema_json, key, time, err, sizeof(err));
        if (!d)
                fail_msg("%s", err);
        for (; nums && *nums; nums++)
                if (dmp_decoder_num_field(d, *nums, err, sizeof(err)) < 0)
                        fail_msg("%s: %s", *nums, err);
        return d;
}

static void expect_class(dmp_decoder_t *d, const unsigned char *buf, size_t n,
                         dmp_decode_err_t want, const char *what) {
        /* a private copy, so that reading past n is seen by ASan / valgrind */
        unsigned char *copy = malloc(n ? n : 1);
        memcpy(copy, buf, n);
        dmp_event_t ev;
        char err[256] = "";
        int rc = dmp_decoder_decode(d, copy, n, &ev, err, sizeof(err));
        int grc = dmp_decoder_decode_generic(d, copy, n, &ev, err, sizeof(err));
        free(copy);
        if (want == DMP_DECODE_OK) {
                if (rc || grc)
                        fail_msg("%s: rejected: %s", what, err);
                return;
        }
        if (rc != -1 || grc != -1)
                fail_msg("%s: accepted", what);
        if (dmp_decoder_last_error(d) != want)
                fail_msg("%s: class %s, want %s (%s)", what,
                         dmp_decode_err_name(dmp_decoder_last_error(d)),
                         dmp_decode_err_name(want), err);
        assert_true(err[0] != '\0');
}

static const char ev_schema[] =
        "{\"type\": \"record\", \"name\": \"R\", \"fields\": ["
        " {\"name\": \"k\", \"type\": \"string\"},"
        " {\"name\": \"i\", \"type\": \"int\"},"
        " {\"name\": \"u\", \"type\": [\"null\", \"long\"]},"
        " {\"name\": \"e\", \"type\": {\"type\": \"enum\", \"name\": \"E\", \"symbols\": [\"A\", \"B\"]}},"
        " {\"name\": \"a\", \"type\": {\"type\": \"array\", \"items\": \"int\"}},"
        " {\"name\": \"m\", \"type\": {\"type\": \"map\", \"values\": \"null\"}},"
        " {\"name\": \"x\", \"type\": \"double\"}"
        "]}";

/* k="ab", i, u=long 5, e=B, a=[1,2] (one block), m={} , x=1.5 */
static size_t enc_ev(unsigned char *buf, int64_t i) {
        unsigned char *p = buf;
        p = dmp_avro_put_string(p, "ab", 2);
        p = dmp_avro_put_long(p, i);
        p = dmp_avro_put_long(p, 1);
        p = dmp_avro_put_long(p, 5);
        p = dmp_avro_put_long(p, 1);
        p = dmp_avro_put_long(p, 2);
        p = dmp_avro_put_long(p, 1);
        p = dmp_avro_put_long(p, 2);
        p = dmp_avro_put_long(p, 0);
        p = dmp_avro_put_long(p, 0);
        p = dmp_avro_put_double(p, 1.5);
        return (size_t)(p - buf);
}

static void test_hostile(void **state) {
        (void)state;
        static const char *const nums[] = {"i", "u", "x", NULL};
        dmp_decoder_t *d = decoder_for(ev_schema, "k", NULL, nums);
        unsigned char buf[128], *p;
        size_t n = enc_ev(buf, 7);
        expect_class(d, buf, n, DMP_DECODE_OK, "valid record");

        /* every proper prefix */
        for (size_t cut = 0; cut < n; cut++) {
                dmp_event_t ev;
                char err[256];
                if (dmp_decoder_decode(d, buf, cut, &ev, err, sizeof(err)) != -1)
                        fail_msg("a prefix of %zu bytes decoded", cut);
                dmp_decode_err_t e = dmp_decoder_last_error(d);
                assert_true(e == DMP_DECODE_TRUNCATED || e == DMP_DECODE_LENGTH);
        }
        /* the string's length byte alone, then its 2 bytes missing: a length
         * past the end, not a truncation */
        expect_class(d, buf, 1, DMP_DECODE_LENGTH, "string cut");
        expect_class(d, buf, 0, DMP_DECODE_TRUNCATED, "empty record");

        /* trailing bytes */
        buf[n] = 0;
        expect_class(d, buf, n + 1, DMP_DECODE_TRAILING, "one trailing byte");

        /* varints: 10 bytes are fine, 11 are not */
        p = buf;
        p = dmp_avro_put_string(p, "ab", 2);
        unsigned char *vi = p;
        memcpy(p, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 10); /* 0 in 10 bytes */
        p += 10;
        size_t rest_at = (size_t)(p - buf);
        unsigned char tail[64];
        size_t tl = enc_ev(tail, 0) - 4; /* everything after "ab" and i=0 */
        memcpy(p, tail + 4, tl);
        expect_class(d, buf, rest_at + tl, DMP_DECODE_OK, "10-byte varint");
        memmove(vi + 11, vi + 10, tl);
        vi[9] = 0x80;
        vi[10] = 0x00;
        expect_class(d, buf, rest_at + 1 + tl, DMP_DECODE_VARINT, "11-byte varint");

        /* int range */
        n = enc_ev(buf, (int64_t)INT32_MAX + 1);
        expect_class(d, buf, n, DMP_DECODE_INT_RANGE, "int above 2^31-1");
        n = enc_ev(buf, (int64_t)INT32_MIN);
        expect_class(d, buf, n, DMP_DECODE_OK, "INT32_MIN");

        /* lengths: negative, oversize, huge */
        static const int64_t bad_lengths[] = {-1, -2, 100, INT64_MAX, INT64_MIN};
        for (size_t i = 0; i < DMP_ARRAY_SIZE(bad_lengths); i++) {
                n = enc_ev(buf, 1);
                unsigned char tmp[128];
                p = dmp_avro_put_long(tmp, bad_lengths[i]);
                size_t hl = (size_t)(p - tmp);
                memcpy(p, buf + 1, n - 1); /* replace the length byte of "ab" */
                expect_class(d, tmp, hl + n - 1, DMP_DECODE_LENGTH, "string length");
        }

        /* union branch: 2 and -1 are out of range */
        static const int64_t bad_branches[] = {2, -1, 1000000};
        for (size_t i = 0; i < DMP_ARRAY_SIZE(bad_branches); i++) {
                n = enc_ev(buf, 1);
                /* "ab"=3 bytes, i=1 byte, then the branch byte */
                unsigned char tmp[128];
                memcpy(tmp, buf, 4);
                p = dmp_avro_put_long(tmp + 4, bad_branches[i]);
                memcpy(p, buf + 5, n - 5);
                expect_class(d, tmp, (size_t)(p - tmp) + n - 5, DMP_DECODE_UNION, "union branch");
        }

        /* enum symbol 2 of 2, and -1 */
        n = enc_ev(buf, 1);
        buf[6] = 4; /* zigzag 2 */
        expect_class(d, buf, n, DMP_DECODE_ENUM, "enum symbol 2");
        buf[6] = 1; /* zigzag -1 */
        expect_class(d, buf, n, DMP_DECODE_ENUM, "enum symbol -1");

        /* array blocks: count past the end, INT64_MIN, a wrong byte size,
         * and a correct one */
        unsigned char head[64];
        enc_ev(head, 1); /* k, i, u, e: the first 7 bytes */
        struct {
                const char *what;
                int64_t v[6];
                int nv;
                dmp_decode_err_t want;
        } arrays[] = {
                {"count past the end", {1000}, 1, DMP_DECODE_LENGTH},
                {"count INT64_MAX", {INT64_MAX}, 1, DMP_DECODE_LENGTH},
                {"count INT64_MIN", {INT64_MIN, 0}, 2, DMP_DECODE_LENGTH},
                {"negative byte size", {-2, -1, 1, 2}, 4, DMP_DECODE_LENGTH},
                {"wrong byte size", {-2, 3, 1, 2}, 4, DMP_DECODE_LENGTH},
                {"right byte size", {-2, 2, 1, 2, 0}, 5, DMP_DECODE_OK},
        };
        for (size_t a = 0; a < DMP_ARRAY_SIZE(arrays); a++) {
                memcpy(buf, head, 7);
                p = buf + 7;
                for (int j = 0; j < arrays[a].nv; j++)
                        p = dmp_avro_put_long(p, arrays[a].v[j]);
                if (arrays[a].want == DMP_DECODE_OK) {
                        p = dmp_avro_put_long(p, 0);
                        p = dmp_avro_put_double(p, 1.5);
                } else {
                        memset(p, 0, 16); /* some bytes, so counts are not */
                        p += 16;          /* bounded by an empty rest only */
                }
                expect_class(d, buf, (size_t)(p - buf), arrays[a].want, arrays[a].what);
        }

        /* a map of nulls: entries take their key's length at least, so a
         * count beyond the remaining bytes is rejected */
        memcpy(buf, head, 7);
        p = buf + 7;
        p = dmp_avro_put_long(p, 0);              /* a = [] */
        p = dmp_avro_put_long(p, 100);            /* m: 100 entries... */
        memset(p, 0, 20);                          /* ...of empty keys: only 20 */
        expect_class(d, buf, (size_t)(p - buf) + 20, DMP_DECODE_LENGTH, "map count");
        p = dmp_avro_put_long(buf + 8, 2);       /* m: 2 entries, key length -1 */
        p = dmp_avro_put_long(p, -1);
        memset(p, 0, 12);
        expect_class(d, buf, (size_t)(p - buf) + 12, DMP_DECODE_LENGTH, "map key length");
        dmp_decoder_destroy(d);

        /* an array of nulls: items take no bytes; their number is bounded
         * by a budget per record of 1024 + its length */
        static const char nulls_schema[] =
                "{\"type\": \"record\", \"name\": \"N\", \"fields\": ["
                " {\"name\": \"a\", \"type\": {\"type\": \"array\", \"items\": \"null\"}},"
                " {\"name\": \"x\", \"type\": \"int\"}]}";
        d = decoder_for(nulls_schema, NULL, NULL, NULL);
        p = dmp_avro_put_long(buf, 3);
        p = dmp_avro_put_long(p, 0);
        p = dmp_avro_put_long(p, 9);
        expect_class(d, buf, (size_t)(p - buf), DMP_DECODE_OK, "3 nulls");
        p = dmp_avro_put_long(buf, 1028); /* a 4-byte record: 1028 is the budget */
        p = dmp_avro_put_long(p, 0);
        p = dmp_avro_put_long(p, 9);
        expect_class(d, buf, (size_t)(p - buf), DMP_DECODE_OK, "1028 nulls");
        p = dmp_avro_put_long(buf, 1029);
        p = dmp_avro_put_long(p, 0);
        p = dmp_avro_put_long(p, 9);
        expect_class(d, buf, (size_t)(p - buf), DMP_DECODE_LENGTH, "1029 nulls");
        p = dmp_avro_put_long(buf, -500); /* in blocks: 500 + 500 ok, then 100 more */
        p = dmp_avro_put_long(p, 0);
        p = dmp_avro_put_long(p, 500);
        p = dmp_avro_put_long(p, 0);
        p = dmp_avro_put_long(p, 9);
        size_t okn = (size_t)(p - buf);
        expect_class(d, buf, okn, DMP_DECODE_OK, "1000 nulls in 2 blocks");
        p = dmp_avro_put_long(buf + okn - 2, 100);
        p = dmp_avro_put_long(p, 0);
        p = dmp_avro_put_long(p, 9);
        expect_class(d, buf, (size_t)(p - buf), DMP_DECODE_LENGTH, "1100 nulls in 3 blocks");
        p = dmp_avro_put_long(buf, INT64_MAX);
        p = dmp_avro_put_long(p, 0);
        p = dmp_avro_put_long(p, 9);
        expect_class(d, buf, (size_t)(p - buf), DMP_DECODE_LENGTH, "2^63-1 nulls");
        dmp_decoder_destroy(d);
}

/* Recursion in the data is bounded by DMP_PLAN_MAX_DEPTH. */
static void test_depth(void **state) {
        (void)state;
        char *json = read_text("tests/schemas/recursive.avsc");
        static const char *const nums[] = {"weight", NULL};
        dmp_decoder_t *d = decoder_for(json, "label", "id", nums);
        free(json);
        static unsigned char buf[4096];
        for (int levels = 1; levels <= 2 * DMP_PLAN_MAX_DEPTH; levels++) {
                /* a list of `levels` nodes: id, next, children = [], weight = null, label */
                unsigned char *p = buf;
                for (int l = 0; l < levels; l++) {
                        p = dmp_avro_put_long(p, l);
                        p = dmp_avro_put_long(p, l + 1 < levels ? 1 : 0);
                }
                for (int l = 0; l < levels; l++) {
                        p = dmp_avro_put_long(p, 0);
                        p = dmp_avro_put_long(p, 0);
                        p = dmp_avro_put_string(p, "n", 1);
                }
                /* node k runs at depth k; its `next` branch (the last node's
                 * null too) one deeper */
                dmp_decode_err_t want = levels <= DMP_PLAN_MAX_DEPTH ? DMP_DECODE_OK
                                                                     : DMP_DECODE_DEPTH;
                char what[64];
                snprintf(what, sizeof(what), "%d levels", levels);
                expect_class(d, buf, (size_t)(p - buf), want, what);
        }
        dmp_decoder_destroy(d);
}

/* Random mutations of valid records of every test schema: no crash, no
 * read out of bounds (ASan), and anything the plan accepts is read by Avro
 * C to the same values. */
static void test_mutations(void **state) {
        (void)state;
        static unsigned char buf[1 << 16], mut[1 << 16];
        long accepted = 0, total = 0;
        for (size_t pi = 0; pi < test_pipeline_cnt; pi++) {
                fixture_t fx;
                fixture_open(&fx, &test_pipelines[pi]);
                avro_gen_t g;
                avro_gen_init(&g, 77 + pi);
                for (int r = 0; r < 3000; r++) {
                        size_t n = avro_gen_record(&g, fx.schema, buf, sizeof(buf));
                        if (n == 0)
                                continue;
                        size_t m = n;
                        memcpy(mut, buf, n);
                        int edits = 1 + (int)(avro_gen_rand(&g) % 4);
                        for (int e = 0; e < edits; e++) {
                                uint64_t x = avro_gen_rand(&g);
                                size_t at = (size_t)(x >> 8) % m;
                                switch (x % 4) {
                                case 0: mut[at] = (unsigned char)(x >> 40); break;
                                case 1: mut[at] ^= (unsigned char)(1u << (x >> 40) % 8); break;
                                case 2: m = at; break; /* truncate */
                                default: /* insert a byte */
                                        if (m < sizeof(mut)) {
                                                memmove(mut + at + 1, mut + at, m - at);
                                                mut[at] = (unsigned char)(x >> 48);
                                                m++;
                                        }
                                }
                                if (m == 0)
                                        break;
                        }
                        unsigned char *copy = malloc(m ? m : 1);
                        memcpy(copy, mut, m);
                        dmp_event_t a, b;
                        char err[256];
                        int rc = dmp_decoder_decode(fx.dec, copy, m, &a, err, sizeof(err));
                        total++;
                        if (rc == 0) {
                                accepted++;
                                if (dmp_decoder_decode_generic(fx.dec, copy, m, &b, err,
                                                               sizeof(err)))
                                        fail_msg("%s: plan accepted, Avro C: %s",
                                                 fx.pp->schema_path, err);
                                assert_same_event(&fx, &a, &b, "mutation", r);
                        } else {
                                dmp_decode_err_t e = dmp_decoder_last_error(fx.dec);
                                assert_true(e > DMP_DECODE_OK && e < DMP_DECODE__CNT);
                        }
                        free(copy);
                }
                fixture_close(&fx);
        }
        print_message("%ld mutated records, %ld accepted\n", total, accepted);
        assert_true(accepted > 0 && accepted < total);
}

/* The plan is flat: records of the 6-field event compile to one op per
 * field, plus one for the nullable field's branch index, plus END. */
static dmp_schema_t *schema_of(const char *json) {
        char err[256];
        dmp_schema_t *s = dmp_schema_parse(json, err, sizeof(err));
        if (!s)
                fail_msg("%s", err);
        return s;
}

static void test_plan_is_flat(void **state) {
        (void)state;
        char *json = read_text("schemas/event.avsc");
        dmp_schema_t *s = schema_of(json);
        free(json);
        dmp_need_t needs[] = {{"user_id", DMP_NEED_KEY, 0, 0, 0, 0, 0},
                              {"ts", DMP_NEED_TIME, 0, 0, 0, 0, 0},
                              {"price", DMP_NEED_NUM, 0, 0, 0, 0, 0},
                              {"clicks", DMP_NEED_NUM, 1, 0, 0, 0, 0}};
        char err[256];
        dmp_plan_t *pl = dmp_plan_compile(s, NULL, needs, 4, err, sizeof(err));
        assert_non_null(pl);
        assert_int_equal(dmp_plan_size(pl), 6 + 1 + 1);
        /* only price (double) can be nonfinite; clicks is a long */
        assert_true(dmp_plan_real_slots(pl) == 1ULL << 0);
        dmp_plan_destroy(pl);

        /* errors name the field */
        dmp_need_t bad[] = {{"segment", DMP_NEED_NUM, 0, 0, 0, 0, 0}};
        err[0] = '\0';
        assert_null(dmp_plan_compile(s, NULL, bad, 1, err, sizeof(err)));
        assert_non_null(strstr(err, "\"segment\" has type string"));
        dmp_need_t slot[] = {{"price", DMP_NEED_NUM, DMP_MAX_NUM_FIELDS, 0, 0, 0, 0}};
        assert_null(dmp_plan_compile(s, NULL, slot, 1, err, sizeof(err)));
        dmp_schema_destroy(s);

        /* unions of several numeric types are numeric; with a string not */
        s = schema_of("{\"type\": \"record\", \"name\": \"U\", \"fields\": ["
                      " {\"name\": \"a\", \"type\": [\"null\", \"int\", \"double\"]},"
                      " {\"name\": \"b\", \"type\": [\"int\", \"string\"]}]}");
        dmp_need_t ua[] = {{"a", DMP_NEED_NUM, 0, 0, 0, 0, 0}};
        pl = dmp_plan_compile(s, NULL, ua, 1, err, sizeof(err));
        assert_non_null(pl);
        dmp_plan_destroy(pl);
        dmp_need_t ub[] = {{"b", DMP_NEED_NUM, 0, 0, 0, 0, 0}};
        assert_null(dmp_plan_compile(s, NULL, ub, 1, err, sizeof(err)));
        assert_non_null(strstr(err, "\"b\" has type union"));
        dmp_schema_destroy(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_differential),
                cmocka_unit_test(test_hostile),
                cmocka_unit_test(test_depth),
                cmocka_unit_test(test_mutations),
                cmocka_unit_test(test_plan_is_flat),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
