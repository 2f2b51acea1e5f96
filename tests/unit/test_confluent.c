/* Unit tests of the Confluent wire format in src/decoder.c: framing
 * errors, writer schemas by id from a provider (a table here, counting its
 * calls), the bounded least-recently-used cache of writer plans, unknown
 * ids remembered as such, and a provider that cannot answer now. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "avro_enc.h"
#include "decoder.h"

/* Reader: k, v (double). Writer 1: the same; writer 2 adds a field with a
 * default; writer 3 writes v as int (promoted); writer 4 lacks v, which has
 * no default in the reader: incompatible. */
static const char reader_schema[] =
        "{\"type\":\"record\",\"name\":\"E\",\"fields\":[{\"name\":\"k\",\"type\":\"string\"},"
        "{\"name\":\"v\",\"type\":\"double\"}]}";
static const char *const writer_schemas[] = {
        NULL,
        "{\"type\":\"record\",\"name\":\"E\",\"fields\":[{\"name\":\"k\",\"type\":\"string\"},"
        "{\"name\":\"v\",\"type\":\"double\"}]}",
        "{\"type\":\"record\",\"name\":\"E\",\"fields\":[{\"name\":\"k\",\"type\":\"string\"},"
        "{\"name\":\"x\",\"type\":\"long\",\"default\":0},{\"name\":\"v\",\"type\":\"double\"}]}",
        "{\"type\":\"record\",\"name\":\"E\",\"fields\":[{\"name\":\"k\",\"type\":\"string\"},"
        "{\"name\":\"v\",\"type\":\"int\"}]}",
        "{\"type\":\"record\",\"name\":\"E\",\"fields\":[{\"name\":\"k\",\"type\":\"string\"}]}",
};
#define NWRITERS 4

typedef struct provider {
        int calls[16];
        int down; /* answer -1 (cannot tell now) */
} provider_t;

static int table_provider(void *opaque, int32_t id, const char **json, char *errstr,
                          size_t errstr_size) {
        provider_t *p = opaque;
        p->calls[id >= 0 && id < 16 ? id : 15]++;
        if (p->down) {
                snprintf(errstr, errstr_size, "registry down");
                return -1;
        }
        if (id < 1 || id > NWRITERS) {
                snprintf(errstr, errstr_size, "HTTP 404: Schema not found");
                return 1;
        }
        *json = writer_schemas[id];
        return 0;
}

/* A framed record of writer id with key k and value v. */
static size_t frame(unsigned char *buf, int32_t id, const char *k, double v) {
        buf[0] = 0;
        buf[1] = (unsigned char)(id >> 24);
        buf[2] = (unsigned char)(id >> 16);
        buf[3] = (unsigned char)(id >> 8);
        buf[4] = (unsigned char)id;
        unsigned char *p = dmp_avro_put_string(buf + 5, k, strlen(k));
        if (id == 2)
                p = dmp_avro_put_long(p, 77);
        if (id == 3)
                p = dmp_avro_put_long(p, (int64_t)v);
        else if (id != 4)
                p = dmp_avro_put_double(p, v);
        return (size_t)(p - buf);
}

static dmp_decoder_t *confluent_decoder(provider_t *p, int *slot) {
        char err[256] = "";
        dmp_decoder_t *d = dmp_decoder_new(reader_schema, "k", "", err, sizeof(err));
        if (!d)
                fail_msg("%s", err);
        *slot = dmp_decoder_num_field(d, "v", err, sizeof(err));
        assert_true(*slot >= 0);
        dmp_decoder_set_confluent(d, table_provider, p);
        return d;
}

static int decode(dmp_decoder_t *d, int32_t id, double v, dmp_event_t *ev) {
        unsigned char buf[64];
        char err[256];
        return dmp_decoder_decode(d, buf, frame(buf, id, "key", v), ev, err, sizeof(err));
}

static void test_versions_and_errors(void **state) {
        (void)state;
        provider_t p = {0};
        int s;
        dmp_decoder_t *d = confluent_decoder(&p, &s);
        dmp_event_t ev;
        for (int round = 0; round < 3; round++) {
                assert_int_equal(decode(d, 1, 1.5, &ev), 0);
                assert_true(ev.num[s] == 1.5 && ev.key_len == 3);
                assert_int_equal(decode(d, 2, -2.0, &ev), 0);
                assert_true(ev.num[s] == -2.0);
                assert_int_equal(decode(d, 3, 9, &ev), 0);
                assert_true(ev.num[s] == 9.0);
                assert_int_equal(decode(d, 4, 0, &ev), -1);
                assert_int_equal(dmp_decoder_last_error(d), DMP_DECODE_INCOMPATIBLE);
                assert_int_equal(decode(d, 9, 0, &ev), -1);
                assert_int_equal(dmp_decoder_last_error(d), DMP_DECODE_UNKNOWN_SCHEMA);
        }
        /* every id asked once: known, incompatible and unknown ones cached */
        for (int id = 1; id <= 4; id++)
                assert_int_equal(p.calls[id], 1);
        assert_int_equal(p.calls[9], 1);

        /* framing */
        unsigned char bad[8] = {1, 0, 0, 0, 1, 0};
        char err[256];
        assert_int_equal(dmp_decoder_decode(d, bad, 6, &ev, err, sizeof(err)), -1);
        assert_int_equal(dmp_decoder_last_error(d), DMP_DECODE_BAD_MAGIC);
        assert_int_equal(dmp_decoder_decode(d, bad + 1, 4, &ev, err, sizeof(err)), -1);
        assert_int_equal(dmp_decoder_last_error(d), DMP_DECODE_BAD_MAGIC);
        dmp_decoder_destroy(d);
}

/* A provider that cannot answer: the record is not the problem; nothing
 * is cached, so the next try asks again and succeeds. */
static void test_unavailable_is_retried(void **state) {
        (void)state;
        provider_t p = {.down = 1};
        int s;
        dmp_decoder_t *d = confluent_decoder(&p, &s);
        dmp_event_t ev;
        assert_int_equal(decode(d, 1, 3.0, &ev), -1);
        assert_int_equal(dmp_decoder_last_error(d), DMP_DECODE_UNAVAILABLE);
        assert_int_equal(decode(d, 1, 3.0, &ev), -1);
        p.down = 0;
        assert_int_equal(decode(d, 1, 3.0, &ev), 0);
        assert_true(ev.num[s] == 3.0);
        assert_int_equal(p.calls[1], 3);
        dmp_decoder_destroy(d);
}

/* At most max entries; the least recently used goes first. */
static void test_cache_bound(void **state) {
        (void)state;
        provider_t p = {0};
        int s;
        dmp_decoder_t *d = confluent_decoder(&p, &s);
        dmp_decoder_set_schema_cache(d, 2);
        dmp_event_t ev;
        const int32_t seq[] = {1, 2, 1, 3, 1, 2, 9, 9, 1};
        for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++)
                decode(d, seq[i], 1.0, &ev);
        /* 1: fetched, kept (recently used) while 3, 2, 9 came in; then
         * evicted by 9 (2 was newer); fetched again at the end */
        assert_int_equal(p.calls[1], 2);
        assert_int_equal(p.calls[2], 2); /* evicted by 3, fetched again */
        assert_int_equal(p.calls[3], 1);
        assert_int_equal(p.calls[9], 1); /* the second 9 hit the cache */
        /* shrinking evicts at once */
        dmp_decoder_set_schema_cache(d, 1);
        decode(d, 1, 1.0, &ev);
        assert_int_equal(p.calls[1], 2); /* 1 was the most recent: kept */
        decode(d, 9, 1.0, &ev);
        assert_int_equal(p.calls[9], 2); /* 9 was not */
        dmp_decoder_destroy(d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_versions_and_errors),
                cmocka_unit_test(test_unavailable_is_retried),
                cmocka_unit_test(test_cache_bound),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
