/* Unit tests of Confluent schema references: dmp_schema_inline_refs
 * (avro_schema.c: a schema using other schemas' named types made one
 * self-contained document for Avro C) and dmp_schemaref_resolve
 * (schemaref.c: the referenced subjects and versions found recursively,
 * each fetched once, cached, cycles and missing references reported). The
 * subjects are a table here; the integration test test_confluent.py runs
 * the same against a real registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "avro_enc.h"
#include "avro_schema.h"
#include "decoder.h"
#include "schemaref.h"

/* Segment (namespace com.shared) nests an enum Tier; Event (namespace
 * com.example) uses Segment twice, once in a union, by its full name. */
static const char segment[] =
        "{\"type\":\"record\",\"name\":\"Segment\",\"namespace\":\"com.shared\",\"fields\":["
        "{\"name\":\"name\",\"type\":\"string\"},"
        "{\"name\":\"tier\",\"type\":{\"type\":\"enum\",\"name\":\"Tier\","
        "\"symbols\":[\"LOW\",\"HIGH\"]}}]}";
static const char event[] =
        "{\"type\":\"record\",\"name\":\"Event\",\"namespace\":\"com.example\",\"fields\":["
        "{\"name\":\"user_id\",\"type\":\"string\"},"
        "{\"name\":\"seg\",\"type\":\"com.shared.Segment\"},"
        "{\"name\":\"price\",\"type\":\"double\"},"
        "{\"name\":\"prev\",\"type\":[\"null\",\"com.shared.Segment\"]},"
        "{\"name\":\"tier\",\"type\":\"com.shared.Tier\"}]}";
static const char reader[] =
        "{\"type\":\"record\",\"name\":\"Event\",\"namespace\":\"com.example\",\"fields\":["
        "{\"name\":\"user_id\",\"type\":\"string\"},{\"name\":\"price\",\"type\":\"double\"}]}";

/* How many times a type is defined in text ("name":"X"; no field here
 * has the name of a type). */
static int definitions(const char *text, const char *name) {
        char pat[128];
        snprintf(pat, sizeof(pat), "\"name\":\"%s\"", name);
        int n = 0;
        for (const char *p = text; (p = strstr(p, pat)); p++)
                n++;
        return n;
}

/* A record of `event` with user_id k and price v, Segments and a Tier in
 * between that the plan must skip. */
static size_t encode_event(unsigned char *buf, const char *k, double v) {
        unsigned char *p = dmp_avro_put_string(buf, k, strlen(k));
        p = dmp_avro_put_string(p, "gold", 4); /* seg.name */
        p = dmp_avro_put_long(p, 1);           /* seg.tier: HIGH */
        p = dmp_avro_put_double(p, v);
        p = dmp_avro_put_long(p, 1);           /* prev: branch Segment */
        p = dmp_avro_put_string(p, "silver-and-more", 15);
        p = dmp_avro_put_long(p, 0);
        p = dmp_avro_put_long(p, 1);           /* tier */
        return (size_t)(p - buf);
}

/* The inlined schema parses, defines each shared type once with its full
 * name, and records written with it decode. */
static void test_inline_defines_each_type_once(void **state) {
        (void)state;
        char err[512] = "";
        const char *refs[] = {segment};
        char *whole = dmp_schema_inline_refs(event, refs, 1, err, sizeof(err));
        assert_non_null(whole);
        assert_int_equal(definitions(whole, "Segment"), 1);
        assert_int_equal(definitions(whole, "Tier"), 1);
        dmp_schema_t *s = dmp_schema_parse(whole, err, sizeof(err));
        if (!s)
                fail_msg("%s: %s", whole, err);
        avro_schema_t seg = avro_schema_record_field_get(s->avro, "seg");
        assert_string_equal(avro_schema_name(seg), "Segment");
        assert_string_equal(avro_schema_namespace(seg), "com.shared");
        dmp_schema_destroy(s);

        dmp_decoder_t *d = dmp_decoder_new(reader, "user_id", "", err, sizeof(err));
        assert_non_null(d);
        int slot = dmp_decoder_num_field(d, "price", err, sizeof(err));
        assert_true(slot >= 0);
        if (dmp_decoder_set_writer(d, whole, err, sizeof(err)))
                fail_msg("%s", err);
        unsigned char buf[256];
        size_t n = encode_event(buf, "u7", 12.5);
        dmp_event_t ev;
        if (dmp_decoder_decode(d, buf, n, &ev, err, sizeof(err)))
                fail_msg("%s", err);
        assert_int_equal(ev.key_len, 2);
        assert_memory_equal(ev.key, "u7", 2);
        assert_true(ev.num[slot] == 12.5);
        dmp_decoder_destroy(d);
        free(whole);
}

/* A type used before the reference that nests it is copied in at its use;
 * the nesting type then names it. Short names resolve in the enclosing
 * namespace, and a reference's null namespace stays null. */
static void test_inline_order_and_namespaces(void **state) {
        (void)state;
        char err[512] = "";
        const char *tier_first =
                "{\"type\":\"record\",\"name\":\"E\",\"namespace\":\"com.shared\",\"fields\":["
                "{\"name\":\"t\",\"type\":\"Tier\"},{\"name\":\"s\",\"type\":\"Segment\"},"
                "{\"name\":\"n\",\"type\":\"Plain\"}]}";
        const char *plain = "{\"type\":\"fixed\",\"name\":\"Plain\",\"size\":2}";
        const char *refs[] = {plain, segment};
        char *whole = dmp_schema_inline_refs(tier_first, refs, 2, err, sizeof(err));
        assert_non_null(whole);
        assert_int_equal(definitions(whole, "Tier"), 1);
        assert_non_null(strstr(whole, "\"type\":\"com.shared.Tier\"")); /* in Segment */
        dmp_schema_t *s = dmp_schema_parse(whole, err, sizeof(err));
        if (!s)
                fail_msg("%s: %s", whole, err);
        avro_schema_t t = avro_schema_record_field_get(s->avro, "t");
        assert_string_equal(avro_schema_type_name(t), "Tier");
        assert_string_equal(avro_schema_namespace(t), "com.shared");
        avro_schema_t n = avro_schema_record_field_get(s->avro, "n");
        assert_string_equal(avro_schema_type_name(n), "Plain");
        assert_true(!avro_schema_namespace(n) || !*avro_schema_namespace(n));
        dmp_schema_destroy(s);
        free(whole);

        /* a name no reference defines stays for Avro C to reject */
        whole = dmp_schema_inline_refs(tier_first, refs, 1, err, sizeof(err));
        assert_non_null(whole);
        assert_null(dmp_schema_parse(whole, err, sizeof(err)));
        assert_non_null(strstr(err, "Tier"));
        free(whole);
        const char *bad[] = {"{not json"};
        assert_null(dmp_schema_inline_refs(event, bad, 1, err, sizeof(err)));
        assert_non_null(strstr(err, "referenced schema 1 is not valid JSON"));
}

/* ---- resolution over a table of subjects ---- */

typedef struct subject {
        const char *subject;
        int version;
        const char *schema;
        const char *refs; /* JSON array, or NULL */
} subject_t;

typedef struct table {
        const subject_t *v;
        size_t n;
        int fetches;
        int down; /* answer DMP_REG_UNAVAILABLE */
} table_t;

static dmp_reg_status_t table_fetch(void *opaque, const char *subject, int version,
                                    char **schema, json_t **refs, char *errstr,
                                    size_t errstr_size) {
        table_t *t = opaque;
        t->fetches++;
        if (t->down) {
                snprintf(errstr, errstr_size, "no answer");
                return DMP_REG_UNAVAILABLE;
        }
        for (size_t i = 0; i < t->n; i++) {
                const subject_t *s = &t->v[i];
                if (strcmp(s->subject, subject) || (version >= 0 && s->version != version))
                        continue;
                *schema = strdup(s->schema);
                *refs = s->refs ? json_loads(s->refs, 0, NULL) : NULL;
                return DMP_REG_OK;
        }
        snprintf(errstr, errstr_size, "HTTP 404: no such version");
        return DMP_REG_NOT_FOUND;
}

#define REF(name, subject, version) \
        "{\"name\":\"" name "\",\"subject\":\"" subject "\",\"version\":" #version "}"

/* Event references Segment (which nests Tier) and a Wrapper that also
 * references Segment: Segment is fetched once, and again never (cached). */
static void test_resolve_shared_and_cached(void **state) {
        (void)state;
        const char *wrapper = "{\"type\":\"record\",\"name\":\"Wrapper\",\"namespace\":"
                              "\"com.shared\",\"fields\":[{\"name\":\"s\",\"type\":\"Segment\"}]}";
        const subject_t subjects[] = {
                {"segment", 1, segment, NULL},
                {"wrapper", 3, wrapper, "[" REF("com.shared.Segment", "segment", 1) "]"},
        };
        table_t t = {subjects, 2, 0, 0};
        dmp_schemaref_t *c = dmp_schemaref_new(table_fetch, &t, 8);
        json_t *refs = json_loads("[" REF("com.shared.Segment", "segment", 1) ","
                                  REF("com.shared.Wrapper", "wrapper", 3) "]", 0, NULL);
        char err[512] = "", *whole = NULL;
        const char *main_schema =
                "{\"type\":\"record\",\"name\":\"E\",\"namespace\":\"com.example\",\"fields\":["
                "{\"name\":\"w\",\"type\":\"com.shared.Wrapper\"},"
                "{\"name\":\"s\",\"type\":\"com.shared.Segment\"}]}";
        assert_int_equal(dmp_schemaref_resolve(c, main_schema, refs, &whole, err, sizeof(err)),
                         DMP_REG_OK);
        assert_int_equal(t.fetches, 2);
        assert_int_equal(dmp_schemaref_fetches(c), 2);
        assert_int_equal(definitions(whole, "Segment"), 1);
        dmp_schema_t *s = dmp_schema_parse(whole, err, sizeof(err));
        if (!s)
                fail_msg("%s: %s", whole, err);
        dmp_schema_destroy(s);
        free(whole);
        assert_int_equal(dmp_schemaref_resolve(c, main_schema, refs, &whole, err, sizeof(err)),
                         DMP_REG_OK);
        assert_int_equal(t.fetches, 2); /* from the cache */
        free(whole);
        /* no references: the schema as it is, nothing fetched */
        assert_int_equal(dmp_schemaref_resolve(c, segment, NULL, &whole, err, sizeof(err)),
                         DMP_REG_OK);
        assert_string_equal(whole, segment);
        free(whole);
        json_decref(refs);
        dmp_schemaref_destroy(c);
}

/* A cycle (a -> b -> a) and a missing version are NOT_FOUND naming them;
 * a fetch that gets no answer is UNAVAILABLE and caches nothing; "latest"
 * is never cached. */
static void test_resolve_failures(void **state) {
        (void)state;
        const subject_t subjects[] = {
                {"a", 1, segment, "[" REF("x.B", "b", 2) "]"},
                {"b", 2, segment, "[" REF("x.A", "a", 1) "]"},
                {"seg", 5, segment, NULL},
        };
        table_t t = {subjects, 3, 0, 0};
        dmp_schemaref_t *c = dmp_schemaref_new(table_fetch, &t, 8);
        char err[512] = "", *whole = NULL;
        json_t *refs = json_loads("[" REF("x.A", "a", 1) "]", 0, NULL);
        assert_int_equal(dmp_schemaref_resolve(c, event, refs, &whole, err, sizeof(err)),
                         DMP_REG_NOT_FOUND);
        assert_null(whole);
        assert_string_equal(err, "schema references form a cycle: a v1 -> b v2 -> a v1");
        json_decref(refs);

        refs = json_loads("[" REF("com.shared.Segment", "seg", 4) "]", 0, NULL);
        assert_int_equal(dmp_schemaref_resolve(c, event, refs, &whole, err, sizeof(err)),
                         DMP_REG_NOT_FOUND);
        assert_string_equal(err, "schema reference com.shared.Segment (subject seg, v4): "
                                 "HTTP 404: no such version");
        json_decref(refs);

        refs = json_loads("[" REF("com.shared.Segment", "seg", 5) "]", 0, NULL);
        t.down = 1;
        t.fetches = 0;
        assert_int_equal(dmp_schemaref_resolve(c, event, refs, &whole, err, sizeof(err)),
                         DMP_REG_UNAVAILABLE);
        assert_non_null(strstr(err, "no answer"));
        t.down = 0;
        assert_int_equal(dmp_schemaref_resolve(c, event, refs, &whole, err, sizeof(err)),
                         DMP_REG_OK);
        assert_int_equal(t.fetches, 2); /* the failure was not cached */
        free(whole);
        json_decref(refs);

        refs = json_loads("[{\"name\":\"com.shared.Segment\",\"subject\":\"seg\"}]", 0, NULL);
        t.fetches = 0;
        for (int i = 0; i < 2; i++) {
                assert_int_equal(dmp_schemaref_resolve(c, event, refs, &whole, err, sizeof(err)),
                                 DMP_REG_OK);
                free(whole);
        }
        assert_int_equal(t.fetches, 2); /* latest: fetched each time */
        json_decref(refs);

        refs = json_loads("[{\"name\":\"x\"}]", 0, NULL);
        assert_int_equal(dmp_schemaref_resolve(c, event, refs, &whole, err, sizeof(err)),
                         DMP_REG_NOT_FOUND);
        assert_string_equal(err, "schema reference x has no subject");
        json_decref(refs);
        dmp_schemaref_destroy(c);
}

/* References nested deeper than DMP_SCHEMAREF_MAX_DEPTH are refused. */
static void test_resolve_depth(void **state) {
        (void)state;
        enum { N = DMP_SCHEMAREF_MAX_DEPTH + 2 };
        subject_t subjects[N];
        char names[N][16], refs_text[N][128];
        for (int i = 0; i < N; i++) {
                snprintf(names[i], sizeof(names[i]), "s%d", i);
                snprintf(refs_text[i], sizeof(refs_text[i]),
                         "[{\"name\":\"T%d\",\"subject\":\"s%d\",\"version\":1}]", i + 1, i + 1);
                subjects[i] = (subject_t){names[i], 1, segment, i + 1 < N ? refs_text[i] : NULL};
        }
        table_t t = {subjects, N, 0, 0};
        dmp_schemaref_t *c = dmp_schemaref_new(table_fetch, &t, 4); /* evicts as it goes */
        json_t *refs = json_loads(refs_text[0], 0, NULL);
        char err[512] = "", *whole = NULL;
        assert_int_equal(dmp_schemaref_resolve(c, event, refs, &whole, err, sizeof(err)),
                         DMP_REG_NOT_FOUND);
        assert_string_equal(err, "schema references nest deeper than 32");
        json_decref(refs);
        dmp_schemaref_destroy(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_inline_defines_each_type_once),
                cmocka_unit_test(test_inline_order_and_namespaces),
                cmocka_unit_test(test_resolve_shared_and_cached),
                cmocka_unit_test(test_resolve_failures),
                cmocka_unit_test(test_resolve_depth),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
