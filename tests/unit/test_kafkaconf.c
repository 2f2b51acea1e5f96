/* Unit tests of src/kafkaconf.c and src/preflight.c: the librdkafka
 * configurations of the daemon's clients and what `dmpflow check` and
 * `dmpflow run` reject before starting (issue 22: an invalid [kafka]
 * property crashed run, and check said "ok"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "kafkaconf.h"
#include "preflight.h"
#include "util.h"

/* A valid pipeline; bootstrap.servers on a port nothing listens on (the
 * checks never connect). */
static const char base[] = "[kafka]\n"                         /* 1 */
                           "bootstrap.servers = 127.0.0.1:1\n" /* 2 */
                           "[input]\n"                         /* 3 */
                           "topic = in\n"                      /* 4 */
                           "schema = schemas/event.avsc\n"     /* 5 */
                           "key.field = user_id\n"             /* 6 */
                           "time.field = ts\n"                 /* 7 */
                           "[output]\n"                        /* 8 */
                           "topic = out\n"                     /* 9 */
                           "[measure m]\n"                     /* 10 */
                           "expr = price\n"                    /* 11 */
                           "[window w]\n"                      /* 12 */
                           "size.ms = 1000\n";                 /* 13 */

static char state_dir[64];

static int setup(void **state) {
        (void)state;
        strcpy(state_dir, "/tmp/dmp-kconf-XXXXXX");
        return mkdtemp(state_dir) ? 0 : -1;
}

static int teardown(void **state) {
        (void)state;
        dmp_rmtree(state_dir);
        return 0;
}

/* base plus extra [kafka] lines (from line 14) and overrides, validated. */
static dmp_conf_t *conf_with(const char *kafka_lines, const char *const *overrides) {
        char text[4096], o[512];
        snprintf(text, sizeof(text), "%s[kafka]\n%s", base, kafka_lines);
        dmp_conf_t *conf = dmp_conf_new();
        assert_int_equal(dmp_conf_load_string(conf, "k.ini", text), 0);
        snprintf(o, sizeof(o), "state.dir=%s/s", state_dir);
        dmp_conf_set_override(conf, o);
        for (; overrides && *overrides; overrides++)
                dmp_conf_set_override(conf, *overrides);
        assert_int_equal(dmp_conf_validate(conf), 0);
        return conf;
}

static void expect(const dmp_conf_t *conf, const char *text) {
        if (!conf->errors || !strstr(conf->errors, text))
                fail_msg("no \"%s\" in the errors:\n%s", text, conf->errors ? conf->errors : "");
}

static void test_invalid_value_and_unknown_property(void **state) {
        (void)state;
        dmp_conf_t *conf = conf_with("acks = banana\nno.such.prop = 1\n", NULL);
        assert_null(dmp_kafkaconf_new(conf, DMP_KAFKA_PRODUCER));
        /* the file's line, librdkafka's own message, the value */
        expect(conf, "k.ini:15: [kafka] acks: Invalid value for configuration property "
                     "\"request.required.acks\" (got \"banana\")");
        expect(conf, "k.ini:16: [kafka] no.such.prop: No such configuration property: "
                     "\"no.such.prop\"");
        assert_int_equal(conf->error_cnt, 2);
        dmp_conf_destroy(conf);
        /* an override is "-o: ..." */
        conf = conf_with("", (const char *[]){"kafka.acks=banana", NULL});
        assert_int_equal(dmp_preflight(conf, NULL), 1);
        expect(conf, "-o: [kafka] acks: Invalid value");
        dmp_conf_destroy(conf);
        /* a secret's value is not shown */
        conf = conf_with("sasl.kerberos.min.time.before.relogin = NOPE\n", NULL);
        assert_null(dmp_kafkaconf_new(conf, DMP_KAFKA_CONSUMER));
        expect(conf, "k.ini:15: [kafka] sasl.kerberos.min.time.before.relogin: ");
        assert_null(strstr(conf->errors, "NOPE\")"));
        dmp_conf_destroy(conf);
}

/* Some combinations are refused only when the client is created: at the
 * line of the property the message names, with dmpflow's default it
 * conflicts with. */
static void test_refused_at_creation(void **state) {
        (void)state;
        dmp_conf_t *conf = conf_with("linger.ms = 1\nacks = 1\n", NULL);
        assert_int_equal(dmp_kafkaconf_check(conf, NULL), 1);
        expect(conf, "k.ini:16: [kafka] acks: the producer cannot be created: `acks` must be "
                     "set to `all` when `enable.idempotence` is true (dmpflow sets "
                     "enable.idempotence = true unless [kafka] sets it)");
        dmp_conf_destroy(conf);
        /* with idempotence off, the same acks is fine */
        conf = conf_with("acks = 1\nenable.idempotence = false\n", NULL);
        assert_int_equal(dmp_kafkaconf_check(conf, NULL), 0);
        dmp_conf_destroy(conf);
        conf = conf_with("security.protocol = ssl\nssl.ca.location = /nonexistent/ca.pem\n",
                         NULL);
        assert_int_equal(dmp_kafkaconf_check(conf, NULL), 1);
        expect(conf, "k.ini:16: [kafka] ssl.ca.location: the producer cannot be created: ");
        dmp_conf_destroy(conf);
}

static void test_defaults_and_notes(void **state) {
        (void)state;
        dmp_conf_t *conf = conf_with("linger.ms = 50\ntopic.metadata.refresh.fast.cnt = 3\n",
                                     NULL);
        rd_kafka_conf_t *kc = dmp_kafkaconf_new(conf, DMP_KAFKA_PRODUCER);
        assert_non_null(kc);
        char v[64];
        size_t n = sizeof(v);
        assert_int_equal(rd_kafka_conf_get(kc, "linger.ms", v, &n), RD_KAFKA_CONF_OK);
        assert_string_equal(v, "50"); /* [kafka] wins */
        n = sizeof(v);
        assert_int_equal(rd_kafka_conf_get(kc, "partitioner", v, &n), RD_KAFKA_CONF_OK);
        assert_string_equal(v, "murmur2_random");
        rd_kafka_conf_destroy(kc);
        kc = dmp_kafkaconf_new(conf, DMP_KAFKA_CONSUMER);
        n = sizeof(v);
        assert_int_equal(rd_kafka_conf_get(kc, "enable.auto.commit", v, &n), RD_KAFKA_CONF_OK);
        assert_string_equal(v, "false");
        n = sizeof(v);
        assert_int_equal(rd_kafka_conf_get(kc, "group.id", v, &n), RD_KAFKA_CONF_OK);
        assert_string_equal(v, "dmpflow");
        rd_kafka_conf_destroy(kc);
        /* librdkafka's configuration warnings are check's notes, once */
        dmp_buf_t notes = {0};
        assert_int_equal(dmp_kafkaconf_check(conf, &notes), 0);
        assert_non_null(notes.p);
        const char *w = strstr(notes.p, "topic.metadata.refresh.fast.cnt is deprecated");
        assert_non_null(w);
        assert_null(strstr(w + 1, "topic.metadata.refresh.fast.cnt is deprecated"));
        assert_null(strstr(notes.p, "will be ignored")); /* [kafka] serves both roles */
        dmp_buf_free(&notes);
        dmp_conf_destroy(conf);
}

static void test_bootstrap_required(void **state) {
        (void)state;
        dmp_conf_t *conf = dmp_conf_new();
        assert_int_equal(dmp_conf_load_string(conf, "k.ini", strchr(base, '\n') + 1 +
                                                                 strcspn(strchr(base, '\n') + 1,
                                                                         "\n") + 1),
                         0);
        assert_null(dmp_kafkaconf_new(conf, DMP_KAFKA_CONSUMER));
        expect(conf, "k.ini: [kafka] bootstrap.servers is required");
        dmp_conf_destroy(conf);
}

/* The state directory and the pipeline, as run finds them. */
static void test_preflight_state_dir(void **state) {
        (void)state;
        char o[256];
        snprintf(o, sizeof(o), "state.dir=%s/file/x", state_dir);
        char file[128];
        snprintf(file, sizeof(file), "%s/file", state_dir);
        FILE *fp = fopen(file, "w");
        assert_non_null(fp);
        fclose(fp);
        dmp_conf_t *conf = conf_with("", (const char *[]){o, NULL});
        dmp_buf_t notes = {0};
        assert_int_equal(dmp_preflight(conf, &notes), 1);
        expect(conf, "-o: [state] dir: cannot create ");
        expect(conf, "/file is not a directory");
        assert_null(notes.p);
        dmp_conf_destroy(conf);
        /* a valid one: no errors, no notes */
        conf = conf_with("", NULL);
        assert_int_equal(dmp_preflight(conf, &notes), 0);
        assert_null(notes.p);
        dmp_conf_destroy(conf);
        /* a schema field the measure does not find: the compiler's error */
        conf = conf_with("", (const char *[]){"measure.m.expr=nosuchfield", NULL});
        assert_int_equal(dmp_preflight(conf, NULL), 1);
        expect(conf, "nosuchfield");
        dmp_conf_destroy(conf);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_invalid_value_and_unknown_property),
                cmocka_unit_test(test_refused_at_creation),
                cmocka_unit_test(test_defaults_and_notes),
                cmocka_unit_test(test_bootstrap_required),
                cmocka_unit_test(test_preflight_state_dir),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
