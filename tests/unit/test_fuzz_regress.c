/* Regression inputs of the fuzzing campaign (docs/FUZZING.md): every input
 * that made a fuzz target fail is kept in tests/fuzz/regress/<target>/ and
 * replayed here through the target's own code (tests/fuzz/fuzz_<target>.c,
 * built without its libFuzzer entry point), so `make test` (and `make
 * asan`, under the sanitizers that found them) runs them without the
 * fuzzer. A target aborts on a broken invariant; each test also states
 * what the finding's fix guarantees, through the public API. Run from the
 * repository root. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin.h"
#include "config.h"
#include "decoder.h"
#include "engine.h"
#include "fuzz.h"
#include "fuzz_engine.h"
#include "pipelines.h"
#include "registry.h"
#include "store.h"
#include "util.h"

typedef struct target {
        const char *name;
        int (*init)(void);
        int (*one)(const uint8_t *data, size_t size);
        void (*fini)(void);
} target_t;

#define TARGET(n) {#n, fuzz_##n##_init, fuzz_##n##_one, fuzz_##n##_fini}
static const target_t targets[] = {TARGET(decode), TARGET(schema), TARGET(registry),
                                   TARGET(config), TARGET(http),   TARGET(state)};

static int by_name(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every file of dir through t; returns how many. */
static int replay_dir(const target_t *t, const char *dir) {
        DIR *d = opendir(dir);
        if (!d)
                return 0;
        char *names[4096];
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)) && n < 4096)
                if (de->d_name[0] != '.')
                        names[n++] = dmp_strdup(de->d_name);
        closedir(d);
        qsort(names, (size_t)n, sizeof(names[0]), by_name);
        for (int i = 0; i < n; i++) {
                char path[1024], err[256];
                size_t len;
                snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
                char *data = dmp_read_file(path, &len, err, sizeof(err));
                if (!data)
                        fail_msg("%s", err);
                print_message("  %s %s (%zu bytes)\n", t->name, names[i], len);
                assert_int_equal(t->one((const uint8_t *)data, len), 0);
                free(data);
                free(names[i]);
        }
        return n;
}

static void replay(void **state) {
        const target_t *t = *state;
        char dir[256];
        assert_int_equal(t->init(), 0);
        snprintf(dir, sizeof(dir), "tests/fuzz/regress/%s", t->name);
        int n = replay_dir(t, dir);
        t->fini();
        print_message("%s: %d regression inputs replayed\n", t->name, n);
}


/* ---- what each finding's fix guarantees ---- */

static const char event_reader[] =
        "{\"type\": \"record\", \"name\": \"Event\", \"fields\": ["
        "{\"name\": \"user_id\", \"type\": \"string\"},"
        "{\"name\": \"ts\", \"type\": {\"type\": \"long\", \"logicalType\": \"timestamp-millis\"}},"
        "{\"name\": \"price\", \"type\": \"double\"}]}";

static const char *provided;

/* schema, registry: a writer schema that is no record (any schema can be
 * registered) crashed Avro C (avro_schema_record_field_get_index) while the
 * decoder looked for logical types; it is now "incompatible". */
static void writer_not_a_record(void **state) {
        (void)state;
        static const char *const writers[] = {
                "\"string\"", "{\"type\": \"string\", \"name\": \"Event\"}",
                "[\"null\", \"long\"]", "{\"type\": \"array\", \"items\": \"double\"}",
                "{\"type\": \"enum\", \"name\": \"Event\", \"symbols\": [\"A\"]}"};
        for (size_t i = 0; i < sizeof(writers) / sizeof(writers[0]); i++) {
                char err[512] = "";
                dmp_decoder_t *d = dmp_decoder_new(event_reader, "user_id", "ts", err, sizeof(err));
                assert_non_null(d);
                assert_true(dmp_decoder_num_field(d, "price", err, sizeof(err)) >= 0);
                /* as [input] schema against reader.schema */
                assert_int_equal(dmp_decoder_set_writer(d, writers[i], err, sizeof(err)), -1);
                assert_non_null(strstr(err, "must be a record"));
                /* as a registry's schema of a Confluent record */
                dmp_decoder_set_confluent(d, test_fixed_provider, &provided);
                provided = writers[i];
                const unsigned char rec[] = {0, 0, 0, 0, 7, 2, 'u', 2, 0, 0, 0, 0, 0, 0, 0, 0};
                dmp_event_t ev;
                assert_int_equal(dmp_decoder_decode(d, rec, sizeof(rec), &ev, err, sizeof(err)), -1);
                assert_int_equal(dmp_decoder_last_error(d), DMP_DECODE_INCOMPATIBLE);
                dmp_decoder_destroy(d);
        }
}

static void json_of(const char *s, size_t n, char *out, size_t out_size) {
        dmp_buf_t b = {0};
        dmp_json_string(&b, s, n);
        snprintf(out, out_size, "%.*s", (int)b.len, b.p);
        dmp_buf_free(&b);
}

/* http: an answer echoing bytes that are not UTF-8 (a key, a path) was not
 * valid JSON; such bytes are now U+FFFD, valid UTF-8 passes unchanged
 * (util.c dmp_json_string; main fixed it too, with issue 25). */
static void json_is_utf8(void **state) {
        (void)state;
        char out[256];
        json_of("gro\x9dups", 7, out, sizeof(out));
        assert_string_equal(out, "\"gro\\ufffdups\"");
        json_of("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, out, sizeof(out)); /* e-acute, euro, emoji */
        assert_string_equal(out, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
        /* cut short, overlong, a surrogate, past U+10FFFF, a stray continuation */
        json_of("\xc3", 1, out, sizeof(out));
        assert_string_equal(out, "\"\\ufffd\"");
        json_of("\xc0\xaf", 2, out, sizeof(out));
        assert_string_equal(out, "\"\\ufffd\\ufffd\"");
        json_of("\xed\xa0\x80", 3, out, sizeof(out));
        assert_string_equal(out, "\"\\ufffd\\ufffd\\ufffd\"");
        json_of("\xf4\x90\x80\x80", 4, out, sizeof(out));
        assert_string_equal(out, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
        json_of("a\"\\\x01\x80", 5, out, sizeof(out));
        assert_string_equal(out, "\"a\\\"\\\\\\u0001\\ufffd\"");
}

/* registry: an id beyond 32 bits in a registration answer was cast to
 * int32_t (another schema's id); now it is an error. The parsers take any
 * body. */
static void registry_answers(void **state) {
        (void)state;
        char err[256];
        int32_t id = -7;
        assert_int_equal(dmp_registry_register_answer(200, "{\"id\": 42}", "s", &id, err,
                                                      sizeof(err)), DMP_REG_OK);
        assert_int_equal(id, 42);
        static const char *const bad[] = {"{\"id\": 4294967297}", "{\"id\": -1}",
                                          "{\"id\": \"3\"}", "{\"id\": 1.5}", "[]", "", NULL};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(dmp_registry_register_answer(200, bad[i], "s", &id, err,
                                                              sizeof(err)), DMP_REG_ERROR);
        char *schema = (char *)1;
        json_t *refs = (json_t *)1;
        assert_int_equal(dmp_registry_schema_answer(404, "{\"message\": \"gone\"}", "GET", &schema,
                                                    &refs, err, sizeof(err)), DMP_REG_NOT_FOUND);
        assert_null(schema);
        assert_null(refs);
        assert_non_null(strstr(err, "gone"));
        assert_int_equal(dmp_registry_schema_answer(200, "{\"schema\": 5}", "GET", &schema, &refs,
                                                    err, sizeof(err)), DMP_REG_ERROR);
        assert_int_equal(dmp_registry_schema_answer(200, "{\"schema\": \"x\", \"schemaType\": "
                                                    "\"JSON\"}", "GET", &schema, &refs, err,
                                                    sizeof(err)), DMP_REG_NOT_FOUND);
        assert_int_equal(dmp_registry_schema_answer(0, NULL, "GET", &schema, &refs, err,
                                                    sizeof(err)), DMP_REG_UNAVAILABLE);
        assert_int_equal(dmp_registry_schema_answer(200, "{\"schema\": \"\\\"long\\\"\", "
                                                    "\"references\": [{\"name\": \"a.B\"}]}",
                                                    "GET", &schema, &refs, err, sizeof(err)),
                         DMP_REG_OK);
        assert_string_equal(schema, "\"long\"");
        assert_int_equal(json_array_size(refs), 1);
        json_decref(refs);
        free(schema);
}

static int count_rows(void *opaque, int win, const char *key, size_t key_len, int64_t start,
                      const void *val, size_t val_len) {
        (void)win;
        (void)key;
        (void)start;
        (void)val;
        (void)val_len;
        *(size_t *)opaque = key_len;
        return 0;
}

/* http (review of the query path): a state query with a key longer than
 * 65535 bytes overflowed the scan bounds on the stack (store.c
 * dmp_store_scan_key); keys are cut there, as the engine cuts event keys. */
static void long_query_key(void **state) {
        (void)state;
        char dir[] = "/tmp/dmp-regress-XXXXXX", err[256];
        assert_non_null(mkdtemp(dir));
        dmp_store_t *st = dmp_store_open(dir, 1, err, sizeof(err));
        assert_non_null(st);
        size_t n = 70000;
        char *key = dmp_malloc(n);
        memset(key, 'k', n);
        unsigned char val[3] = {1, 0, 0};
        dmp_store_put_entry(st, 0, 0, key, n, 10, val, sizeof(val));
        dmp_store_put_meta(st, 0, 1, 10);
        assert_int_equal(dmp_store_commit(st, err, sizeof(err)), 0);
        size_t got = 0;
        assert_int_equal(dmp_store_scan_key(st, 0, 0, key, n, count_rows, &got, err, sizeof(err)),
                         1);
        assert_int_equal(got, 65535);
        free(key);
        dmp_store_close(st);
        dmp_rmtree(dir);
}

/* config: a window's or group's measure list naming more than 32 measures
 * (one measure again and again) wrote past measures[] (engine.c
 * compile_windows, groups.c compile_group); each measure now counts once. */
static void measures_listed_twice(void **state) {
        (void)state;
        char list[512] = "score";
        for (int i = 0; i < 40; i++)
                strcat(list, i % 2 ? ", score" : ",clicks");
        char text[2048];
        snprintf(text, sizeof(text),
                 "[input]\ntopic = t\nschema = schemas/event.avsc\n[output]\ntopic = o\n"
                 "[measure score]\nexpr = price\n[measure clicks]\nexpr = clicks\n"
                 "[window w]\nsize.ms = 10\nmeasures = %s\n[window v]\nsize.ms = 20\n"
                 "[group g]\nfield = segment\ntopic = g\nmeasures = %s\nwindows = w,v,w,v,w,v,w,"
                 "v,w,v,w,v,w,v,w,v,w,v,w,v,w,v,w,v,w,v,w,v,w,v,w,v,w,v,w,v\n",
                 list, list);
        dmp_conf_t *conf = dmp_conf_new();
        assert_int_equal(dmp_conf_load_string(conf, "dup.ini", text), 0);
        assert_int_equal(dmp_conf_validate(conf), 0);
        dmp_engine_t *e = dmp_engine_compile(conf);
        if (!e)
                fail_msg("%s", conf->errors);
        assert_int_equal(dmp_engine_window(e, 0)->nmeasures, 2);
        assert_int_equal(dmp_engine_window(e, 1)->nmeasures, 2);
        dmp_engine_destroy(e);
        dmp_conf_destroy(conf);
}

/* Plants one value in partition p of a fresh engine's store and opens p:
 * returns dmp_engine_partition_open's result, its message in err. */
static int open_with(int kind, int win, const void *key, size_t kl, int64_t start,
                     const void *val, size_t vl, char *err, size_t err_size) {
        fuzz_engine_t fe = {0};
        assert_int_equal(fuzz_engine_open(&fe), 0);
        dmp_store_t *st = dmp_engine_store(fe.e);
        if (kind == 'W')
                dmp_store_put_entry(st, 3, win, key, kl, start, val, vl);
        else if (kind == 'G')
                dmp_store_put_group(st, 3, key, kl, val, vl);
        else
                dmp_store_put_meta(st, 3, start, win ? INT64_MAX - win : 5);
        assert_int_equal(dmp_store_commit(st, err, err_size), 0);
        int64_t next;
        err[0] = '\0';
        int r = dmp_engine_partition_open(fe.e, 3, &next, err, err_size);
        if (r == 0) {
                /* and it works on what it loaded */
                dmp_engine_idle_tick(fe.e, dmp_now_ms() + 100000, 1);
                dmp_engine_emit_updates(fe.e);
                dmp_engine_emit_groups(fe.e);
                assert_int_equal(dmp_engine_commit(fe.e, err, err_size), 0);
                assert_int_equal(dmp_engine_sync(fe.e, err, err_size), 0);
        }
        fuzz_engine_close(&fe, 1);
        return r;
}

/* state: values read back from RocksDB are checked before use. A window
 * start, session or record time or stream time beyond +-2^61 ms overflowed
 * the window arithmetic (engine.c stored_time_ok, stored_keystate_ok); a
 * group entry of an unknown kind or definition, or with another number of
 * aggregates, indexed past the definitions (groups.c stored_entry_valid);
 * a last-update time beyond int64 was an undefined cast (last_update_of).
 * Each is now refused with a message, or read safely. */
static void corrupt_store_refused(void **state) {
        (void)state;
        char err[512];
        dmp_agg_t a[2];
        memset(a, 0, sizeof(a));
        a[0].count = 1;
        a[0].sum = a[0].mean = a[0].min = a[0].max = 1;
        a[1] = a[0];
        unsigned char v[3 + sizeof(a)];
        v[0] = 1; /* a window entry of "tum" (2 measures) */
        v[1] = 0;
        v[2] = 2;
        memcpy(v + 3, a, sizeof(a));
        assert_int_equal(open_with('W', 0, "k", 1, 10, v, sizeof(v), err, sizeof(err)), 0);
        assert_int_equal(open_with('W', 0, "k", 1, INT64_MAX - 5, v, sizeof(v), err,
                                   sizeof(err)), -1);
        assert_non_null(strstr(err, "corrupt state entry"));
        assert_int_equal(open_with('M', 1, NULL, 0, 7, NULL, 0, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "corrupt metadata"));
        assert_int_equal(open_with('M', 0, NULL, 0, -9, NULL, 0, err, sizeof(err)), -1);
        /* a session key state of "ses" (window 2, 2 measures) whose last time is INT64_MAX */
        size_t isz = 24 + 2 * sizeof(dmp_agg_t);
        unsigned char ks[15 + 24 + 2 * sizeof(dmp_agg_t)];
        memset(ks, 0, sizeof(ks));
        ks[0] = 2;
        ks[2] = 2;
        int64_t upto = INT64_MIN, t0 = 5, t1 = INT64_MAX;
        uint32_t n = 1;
        memcpy(ks + 3, &upto, 8);
        memcpy(ks + 11, &n, 4);
        memcpy(ks + 15, &t0, 8);
        memcpy(ks + 23, &t1, 8);
        memcpy(ks + 15 + 24, a, sizeof(a));
        assert_int_equal(sizeof(ks), 15 + isz);
        assert_int_equal(open_with('W', 2, "k", 1, INT64_MIN + 1, ks, sizeof(ks), err,
                                   sizeof(err)), -1);
        t1 = 9;
        memcpy(ks + 23, &t1, 8);
        assert_int_equal(open_with('W', 2, "k", 1, INT64_MIN + 1, ks, sizeof(ks), err,
                                   sizeof(err)), 0);
        /* group entries: key win:be16 start:be64 (sign flipped) subject */
        unsigned char gk[11] = {0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 'a'};
        dmp_agg_t ga[3];
        memcpy(ga, a, sizeof(a));
        ga[2] = a[0];
        ga[2].max = 4.35755e+30; /* the last update time */
        /* [group seg] keeps 2 measures: 3 aggregates */
        assert_int_equal(open_with('G', 0, gk, sizeof(gk), 0, ga, sizeof(ga), err, sizeof(err)),
                         0);
        assert_int_equal(open_with('G', 0, gk, sizeof(gk), 0, ga, 2 * sizeof(dmp_agg_t), err,
                                   sizeof(err)), -1);
        gk[1] = 7; /* no [group] 7 */
        assert_int_equal(open_with('G', 0, gk, sizeof(gk), 0, ga, sizeof(ga), err, sizeof(err)),
                         -1);
        gk[0] = 0x70; /* no such kind */
        gk[1] = 0;
        assert_int_equal(open_with('G', 0, gk, sizeof(gk), 0, ga, sizeof(ga), err, sizeof(err)),
                         -1);
        assert_non_null(strstr(err, "corrupt"));
}

int main(void) {
        setenv("FUZZ_STATE_FRESH", "1", 1); /* each state input on a fresh engine */
        struct CMUnitTest tests[sizeof(targets) / sizeof(targets[0])];
        for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++)
                tests[i] = (struct CMUnitTest){targets[i].name, replay, NULL, NULL,
                                               (void *)&targets[i]};
        const struct CMUnitTest fixes[] = {
                cmocka_unit_test(writer_not_a_record), cmocka_unit_test(json_is_utf8),
                cmocka_unit_test(registry_answers),
                cmocka_unit_test(long_query_key),     cmocka_unit_test(measures_listed_twice),
                cmocka_unit_test(corrupt_store_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL) | cmocka_run_group_tests(fixes, NULL, NULL);
}
