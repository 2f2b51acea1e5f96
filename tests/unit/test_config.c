/* Unit tests of src/config.c: parsing (values, defaults, errors with
 * "name:LINE:"), validation, command-line overrides and dmp_conf_line. */
#include <math.h>
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

/* Asserts that conf->errors holds a line starting with `prefix` (e.g.
 * "t.ini:3: ") that also contains every one of the NULL-terminated
 * substrings that follow. */
static void expect_error(const dmp_conf_t *conf, const char *prefix, ...) {
        assert_non_null(conf->errors);
        const char *line = conf->errors;
        while (*line) {
                size_t len = strcspn(line, "\n");
                if (!strncmp(line, prefix, strlen(prefix))) {
                        char *copy = strndup(line, len);
                        va_list ap;
                        va_start(ap, prefix);
                        int ok = 1;
                        const char *s;
                        while ((s = va_arg(ap, const char *)))
                                if (!strstr(copy, s))
                                        ok = 0;
                        va_end(ap);
                        free(copy);
                        if (ok)
                                return;
                }
                line += len + (line[len] == '\n');
        }
        fail_msg("no error \"%s...\" with the expected text in:\n%s", prefix, conf->errors);
}

/* expect_error for line lineno of the file at path: "path:lineno: " ... what. */
static void expect_error_at(const dmp_conf_t *conf, const char *path, int lineno,
                            const char *what) {
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "%s:%d: ", path, lineno);
        expect_error(conf, prefix, what, NULL);
}

/* Writes len bytes of text to a new temporary file; path gets its name. */
static void write_temp(char path[static 32], const char *text, size_t len) {
        strcpy(path, "/tmp/dmp-conf-XXXXXX");
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, len), (ssize_t)len);
        close(fd);
}

/* A fresh configuration loaded from a temporary file of len bytes of text
 * (path: its name); *nerr: the errors. */
static dmp_conf_t *load_temp(char path[static 32], const char *text, size_t len, int *nerr) {
        write_temp(path, text, len);
        dmp_conf_t *conf = dmp_conf_new();
        *nerr = dmp_conf_load_file(conf, path);
        return conf;
}

/* Loads text into a fresh configuration; returns it (errors in it). */
static dmp_conf_t *load(const char *text, int *nerr) {
        dmp_conf_t *conf = dmp_conf_new();
        *nerr = dmp_conf_load_string(conf, "t.ini", text);
        return conf;
}

static const char valid_text[] =
        "[input]\n"                              /* 1 */
        "topic = events\n"                       /* 2 */
        "schema = schemas/event.avsc\n"          /* 3 */
        "key.field = user_id\n"                  /* 4 */
        "; a comment\n"                          /* 5 */
        "time.field = ts\n"                      /* 6 */
        "\n"                                     /* 7 */
        "[kafka]\n"                              /* 8 */
        "bootstrap.servers = localhost:9092\n"   /* 9 */
        "[state]\n"                              /* 10 */
        "dir = /tmp/dmp-state\n"                 /* 11 */
        "[output]\n"                             /* 12 */
        "topic = results\n"                      /* 13 */
        "[measure score]\n"                      /* 14 */
        "expr = 0.7*price + 0.3*quantity\n"      /* 15 */
        "[measure clicks]\n"                     /* 16 */
        "expr = clicks\n"                        /* 17 */
        "[window tum]\n"                         /* 18 */
        "size.ms = 60000\n"                      /* 19 */
        "grace.ms = 5000\n"                      /* 20 */
        "measures = score\n"                     /* 21 */
        "[window hop]\n"                         /* 22 */
        "type = hopping\n"                       /* 23 */
        "size.ms = 300000\n"                     /* 24 */
        "advance.ms = 60000\n";                  /* 25 */

static void test_valid_values_and_defaults(void **state) {
        (void)state;
        int n;
        dmp_conf_t *conf = load(valid_text, &n);
        assert_int_equal(n, 0);
        assert_int_equal(conf->error_cnt, 0);
        assert_null(conf->errors);
        assert_string_equal(conf->path, "t.ini");

        assert_string_equal(conf->input.topic, "events");
        assert_string_equal(conf->input.schema, "schemas/event.avsc");
        assert_string_equal(conf->input.key_field, "user_id");
        assert_string_equal(conf->input.time_field, "ts");
        /* defaults */
        assert_string_equal(conf->input.group_id, "dmpflow");
        assert_int_equal(conf->input.format, DMP_FORMAT_AVRO);
        assert_int_equal(conf->input.auto_offset_reset, DMP_RESET_EARLIEST);
        assert_int_equal(conf->state.commit_interval_ms, 1000);
        assert_int_equal(conf->log.level, DMP_LOG_INFO);

        assert_string_equal(conf->state.dir, "/tmp/dmp-state");
        assert_string_equal(conf->output.topic, "results");
        assert_int_equal(conf->kafka_cnt, 1);
        assert_string_equal(dmp_conf_kafka_get(conf, "bootstrap.servers"), "localhost:9092");
        assert_null(dmp_conf_kafka_get(conf, "client.id"));

        assert_int_equal(conf->measure_cnt, 2);
        assert_string_equal(conf->measures[0].name, "score");
        assert_string_equal(conf->measures[0].expr, "0.7*price + 0.3*quantity");
        assert_string_equal(conf->measures[1].name, "clicks");
        assert_string_equal(conf->measures[1].expr, "clicks");

        assert_int_equal(conf->window_cnt, 2);
        const dmp_window_conf_t *w = &conf->windows[0];
        assert_string_equal(w->name, "tum");
        assert_int_equal(w->type, DMP_WINDOW_TUMBLING); /* default */
        assert_int_equal(w->size_ms, 60000);
        assert_int_equal(w->grace_ms, 5000);
        assert_int_equal(w->advance_ms, 0); /* default */
        assert_string_equal(w->measures, "score");
        assert_int_equal(w->emit, DMP_EMIT_FINAL); /* default */
        w = &conf->windows[1];
        assert_string_equal(w->name, "hop");
        assert_int_equal(w->type, DMP_WINDOW_HOPPING);
        assert_int_equal(w->size_ms, 300000);
        assert_int_equal(w->advance_ms, 60000);
        assert_int_equal(w->grace_ms, 0);
        assert_string_equal(w->measures, ""); /* default: all measures */

        assert_int_equal(dmp_conf_validate(conf), 0);
        assert_int_equal(conf->error_cnt, 0);
        dmp_conf_destroy(conf);
}

static void test_new_has_defaults(void **state) {
        (void)state;
        dmp_conf_t *conf = dmp_conf_new();
        assert_string_equal(conf->input.group_id, "dmpflow");
        assert_int_equal(conf->state.commit_interval_ms, 1000);
        assert_string_equal(conf->state.dir, "./state");
        assert_null(conf->input.topic);
        assert_null(conf->output.topic);
        assert_string_equal(conf->input.key_field, "");
        assert_int_equal(conf->measure_cnt, 0);
        assert_int_equal(conf->window_cnt, 0);
        assert_int_equal(conf->error_cnt, 0);
        dmp_conf_destroy(conf);
}

static void test_unknown_property_suggests(void **state) {
        (void)state;
        int n;
        dmp_conf_t *conf = load("[input]\n"
                                "topic = a\n"
                                "group.di = g\n"
                                "[window w]\n"
                                "size.ms = 10\n"
                                "sise.ms = 20\n"
                                "[state]\n"
                                "zzzzzzzzzzzz = 1\n",
                                &n);
        assert_int_equal(n, 3);
        expect_error(conf, "t.ini:3: ", "unknown property", "\"group.di\"",
                     "did you mean \"group.id\"", NULL);
        expect_error(conf, "t.ini:6: ", "unknown property", "\"sise.ms\"",
                     "did you mean \"size.ms\"", NULL);
        expect_error(conf, "t.ini:8: ", "unknown property", "\"zzzzzzzzzzzz\"", NULL);
        assert_null(strstr(conf->errors, "t.ini:8: [state] unknown property \"zzzzzzzzzzzz\" (did"));
        /* the valid ones still applied */
        assert_string_equal(conf->input.topic, "a");
        assert_int_equal(conf->windows[0].size_ms, 10);
        dmp_conf_destroy(conf);
}

static void test_not_integer(void **state) {
        (void)state;
        int n;
        dmp_conf_t *conf = load("[state]\n"
                                "dir = x\n"
                                "commit.interval.ms = 10s\n"
                                "[window w]\n"
                                "size.ms =\n",
                                &n);
        assert_int_equal(n, 2);
        expect_error(conf, "t.ini:3: ", "commit.interval.ms", "\"10s\" is not an integer", NULL);
        expect_error(conf, "t.ini:5: ", "size.ms", "is not an integer", NULL);
        assert_int_equal(conf->state.commit_interval_ms, 1000); /* unchanged */
        dmp_conf_destroy(conf);
}

/* [state] memory.budget: bytes, or k/m/g (powers of 1024); 0 = derived. */
static void test_memory_budget_sizes(void **state) {
        (void)state;
        static const struct {
                const char *text;
                int64_t want;
        } ok[] = {{"0", 0}, {"12345", 12345}, {"64m", INT64_C(64) << 20}, {"64M", INT64_C(64) << 20},
                  {"8k", 8192}, {"2g", INT64_C(2) << 30}, {"1024G", INT64_C(1) << 40}};
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                char text[64];
                int n;
                snprintf(text, sizeof(text), "[state]\nmemory.budget = %s\n", ok[i].text);
                dmp_conf_t *conf = load(text, &n);
                assert_int_equal(n, 0);
                assert_true(conf->state.memory_budget == ok[i].want);
                dmp_conf_destroy(conf);
        }
        int n;
        dmp_conf_t *conf = load("[state]\n"
                                "memory.budget = 64mb\n"
                                "memory.budget = -1k\n"
                                "memory.budget = 2t\n"
                                "memory.budget = 9999999999g\n",
                                &n);
        assert_int_equal(n, 4);
        expect_error(conf, "t.ini:2: ", "memory.budget", "\"64mb\" is not a size", NULL);
        expect_error(conf, "t.ini:3: ", "\"-1k\" is not a size", NULL);
        expect_error(conf, "t.ini:4: ", "\"2t\" is not a size", NULL);
        expect_error(conf, "t.ini:5: ", "9999999999g", NULL);
        assert_int_equal(conf->state.memory_budget, 0); /* unchanged */
        dmp_conf_destroy(conf);
}

static void test_out_of_range(void **state) {
        (void)state;
        int n;
        dmp_conf_t *conf = load("[state]\n"
                                "commit.interval.ms = 9\n"
                                "[window w]\n"
                                "grace.ms = -1\n"
                                "size.ms = -5\n",
                                &n);
        assert_int_equal(n, 3);
        expect_error(conf, "t.ini:2: ", "commit.interval.ms", "9 is out of range [10, 3600000]",
                     NULL);
        expect_error(conf, "t.ini:4: ", "grace.ms", "-1 is out of range", NULL);
        expect_error(conf, "t.ini:5: ", "size.ms", "-5 is out of range", NULL);
        dmp_conf_destroy(conf);

        /* the bounds themselves are accepted */
        conf = load("[state]\ncommit.interval.ms = 10\n", &n);
        assert_int_equal(n, 0);
        assert_int_equal(conf->state.commit_interval_ms, 10);
        dmp_conf_destroy(conf);
        conf = load("[state]\ncommit.interval.ms = 3600000\n", &n);
        assert_int_equal(n, 0);
        assert_int_equal(conf->state.commit_interval_ms, 3600000);
        dmp_conf_destroy(conf);
        conf = load("[state]\ncommit.interval.ms = 3600001\n", &n);
        assert_int_equal(n, 1);
        expect_error(conf, "t.ini:2: ", "out of range", NULL);
        dmp_conf_destroy(conf);
}

static void test_bad_enum(void **state) {
        (void)state;
        int n;
        dmp_conf_t *conf = load("[log]\n"
                                "level = verbose\n"
                                "[window w]\n"
                                "size.ms = 10\n"
                                "type = rolling\n",
                                &n);
        assert_int_equal(n, 2);
        expect_error(conf, "t.ini:2: ", "[log] level", "invalid value \"verbose\"",
                     "error|warn|info|debug", NULL);
        expect_error(conf, "t.ini:5: ", "type", "invalid value \"rolling\"", "tumbling|hopping|sliding|session",
                     NULL);
        assert_int_equal(conf->log.level, DMP_LOG_INFO);
        assert_int_equal(conf->windows[0].type, DMP_WINDOW_TUMBLING);
        dmp_conf_destroy(conf);

        /* a prefix of an enum value is not the value */
        conf = load("[input]\nauto.offset.reset = late\n", &n);
        assert_int_equal(n, 1);
        expect_error(conf, "t.ini:2: ", "invalid value \"late\"", NULL);
        dmp_conf_destroy(conf);
        conf = load("[input]\nauto.offset.reset = latest\n", &n);
        assert_int_equal(n, 0);
        assert_int_equal(conf->input.auto_offset_reset, DMP_RESET_LATEST);
        dmp_conf_destroy(conf);
}

static void test_unknown_section(void **state) {
        (void)state;
        int n;
        dmp_conf_t *conf = load("[input]\n"
                                "topic = a\n"
                                "[windw w]\n"
                                "size.ms = 10\n",
                                &n);
        assert_int_equal(n, 1);
        expect_error(conf, "t.ini:3: ", "unknown section [windw w]", NULL);
        assert_int_equal(conf->window_cnt, 0);
        dmp_conf_destroy(conf);
}

static void test_named_section_without_name(void **state) {
        (void)state;
        int n;
        /* The error is reported on the line of the section header. */
        dmp_conf_t *conf = load("[input]\n"
                                "topic = a\n"
                                "[window]\n"
                                "size.ms = 10\n",
                                &n);
        assert_int_equal(n, 1);
        expect_error(conf, "t.ini:3: ", "section [window] needs a name", NULL);
        assert_int_equal(conf->window_cnt, 0);
        dmp_conf_destroy(conf);

        conf = load("[measure]\nexpr = x\n", &n);
        assert_int_equal(n, 1);
        expect_error(conf, "t.ini:1: ", "section [measure] needs a name", NULL);
        assert_int_equal(conf->measure_cnt, 0);
        dmp_conf_destroy(conf);

        /* and a singleton section takes none */
        conf = load("[input extra]\ntopic = a\n", &n);
        assert_int_equal(n, 1);
        expect_error(conf, "t.ini:1: ", "section [input] takes no name", NULL);
        assert_null(conf->input.topic);
        dmp_conf_destroy(conf);

        /* and an invalid name */
        conf = load("[window a/b]\nsize.ms = 1\n", &n);
        assert_int_equal(n, 1);
        expect_error(conf, "t.ini:1: ", "invalid name", NULL);
        dmp_conf_destroy(conf);
}

static void test_duplicate_property(void **state) {
        (void)state;
        int n;
        dmp_conf_t *conf = load("[input]\n"
                                "topic = a\n"
                                "\n"
                                "topic = b\n"
                                "[window w]\n"
                                "size.ms = 10\n"
                                "[window v]\n"
                                "size.ms = 20\n"
                                "[window w]\n"
                                "size.ms = 30\n",
                                &n);
        assert_int_equal(n, 2);
        expect_error(conf, "t.ini:4: ", "topic is set twice (first at line 2)", NULL);
        expect_error(conf, "t.ini:10: ", "size.ms is set twice (first at line 6)", NULL);
        assert_string_equal(conf->input.topic, "a"); /* the first value stays */
        assert_int_equal(conf->window_cnt, 2);
        assert_int_equal(conf->windows[0].size_ms, 10);
        assert_int_equal(conf->windows[1].size_ms, 20);
        dmp_conf_destroy(conf);
}

static void test_key_outside_section(void **state) {
        (void)state;
        int n;
        dmp_conf_t *conf = load("; header comment\n"
                                "topic = a\n"
                                "[input]\n"
                                "topic = b\n",
                                &n);
        assert_int_equal(n, 1);
        expect_error(conf, "t.ini:2: ", "\"topic\" is outside of any [section]", NULL);
        assert_string_equal(conf->input.topic, "b");
        dmp_conf_destroy(conf);
}

static void test_syntax_error_line(void **state) {
        (void)state;
        int n;
        dmp_conf_t *conf = load("[input]\n"
                                "topic = a\n"
                                "this line has no equals sign\n"
                                "schema = s\n",
                                &n);
        assert_int_equal(n, 1);
        expect_error(conf, "t.ini:3: ", "syntax error", "the rest of the file is not read", NULL);
        assert_string_equal(conf->input.topic, "a");
        assert_null(conf->input.schema); /* after it: not read (it would be misread) */
        dmp_conf_destroy(conf);
}

/* Issue 22: after a header without its ']', inih went on reading (the
 * lines that follow landed in the previous section, were reported first)
 * and reported the header last. Now the first structural error is the
 * last reported, and errors come in line order. */
static void test_structural_error_stops_in_line_order(void **state) {
        (void)state;
        int n;
        dmp_conf_t *conf = load("[input]\n"          /* 1 */
                                "topik = a\n"        /* 2 unknown */
                                "[window w\n"        /* 3 no ] */
                                "size.ms = x\n"      /* 4 would be [input] size.ms */
                                "[state]\n"          /* 5 */
                                "dir = y\n",         /* 6 */
                                &n);
        assert_int_equal(n, 2);
        assert_int_equal(conf->error_cnt, 2);
        const char *second = strchr(conf->errors, '\n') + 1;
#define STARTS(s, lit) (!strncmp((s), (lit), sizeof(lit) - 1))
        assert_true(STARTS(conf->errors, "t.ini:2: [input] unknown property \"topik\""));
        assert_true(STARTS(second, "t.ini:3: a section header without its closing ]"));
#undef STARTS
        assert_string_equal(conf->state.dir, "./state"); /* not read */
        dmp_conf_destroy(conf);
        /* inih's inline comment: "[w ;]" has no ']' for it, "a ; = b" no '=' */
        conf = load("[input] ; c\ntopic = a ; c\n[window w ;]\n", &n);
        assert_int_equal(n, 1);
        expect_error(conf, "t.ini:3: ", "closing ]", NULL);
        assert_string_equal(conf->input.topic, "a");
        dmp_conf_destroy(conf);
        conf = load("[input]\ntopic ; = b\n", &n);
        expect_error(conf, "t.ini:2: ", "syntax error", NULL);
        assert_int_equal(n, 1);
        dmp_conf_destroy(conf);
        /* a UTF-8 BOM before the first header is not an error */
        conf = load("\xEF\xBB\xBF[input]\ntopic = a\n", &n);
        assert_int_equal(n, 0);
        assert_string_equal(conf->input.topic, "a");
        dmp_conf_destroy(conf);
}

/* Issue 22: a line with a NUL byte was silently cut there (or ignored
 * whole, when it started with one). */
static void test_nul_byte_reported(void **state) {
        (void)state;
        char path[32];
        static const char text[] = "[input]\n"
                                   "\0topic = a\n"      /* 2: starts with NUL */
                                   "schema = s\0.avsc\n" /* 3: one inside */
                                   "key.field = k\n";    /* 4 */
        int n;
        dmp_conf_t *conf = load_temp(path, text, sizeof(text) - 1, &n);
        assert_int_equal(n, 2);
        expect_error_at(conf, path, 2, "NUL byte");
        expect_error_at(conf, path, 3, "NUL byte");
        assert_null(conf->input.topic);
        assert_null(conf->input.schema);
        assert_string_equal(conf->input.key_field, "k");
        dmp_conf_destroy(conf);
        unlink(path);
}

/* Issue 22: errors of a named section name it in full, whichever check
 * found them (some said [window], others [window w]). */
static void test_sections_named_in_full(void **state) {
        (void)state;
        int n;
        dmp_conf_t *conf = load("[window w]\n"
                                "size.ms = x\n"          /* 2 not an integer */
                                "grace.ms = -1\n"        /* 3 out of range */
                                "type = round\n"         /* 4 bad enum */
                                "sise.ms = 1\n"          /* 5 unknown */
                                "size.ms = 1\n"          /* 6 (2 failed: not twice) */
                                "size.ms = 2\n"          /* 7 twice */
                                "[pattern p]\n"
                                "z = abc\n",             /* 9 not a number */
                                &n);
        assert_int_equal(n, 6);
        static const struct {
                int line;
                const char *what;
        } want[] = {{2, "[window w] size.ms: \"x\" is not an integer"},
                    {3, "[window w] grace.ms: -1 is out of range"},
                    {4, "[window w] type: invalid value \"round\""},
                    {5, "[window w] unknown property \"sise.ms\""},
                    {7, "[window w] size.ms is set twice"},
                    {9, "[pattern p] z: \"abc\" is not a number"}};
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
                expect_error_at(conf, "t.ini", want[i].line, want[i].what);
        for (const char *l = conf->errors; *l; l = strchr(l, '\n') + 1)
                assert_true(strstr(l, "[window w]") || strstr(l, "[pattern p]"));
        dmp_conf_destroy(conf);
}

/* Issue 22: -o window.t10.size.ms=... (the dotted form) is accepted as
 * -o "window t10.size.ms=..." is; names and properties may hold dots. */
static void test_override_dotted_named_section(void **state) {
        (void)state;
        dmp_conf_t *conf = dmp_conf_new();
        assert_int_equal(dmp_conf_set_override(conf, "window.t10.size.ms=5000"), 0);
        assert_int_equal(dmp_conf_set_override(conf, "window t10.grace.ms=7"), 0);
        assert_int_equal(dmp_conf_set_override(conf, "window.a.b.size.ms=3"), 0);
        assert_int_equal(dmp_conf_set_override(conf, "pattern.p.min.count=9"), 0);
        assert_int_equal(dmp_conf_set_override(conf, "measure.m.expr=2*x"), 0);
        assert_int_equal(conf->error_cnt, 0);
        int w = dmp_conf_find_window(conf, "t10", 3), ab = dmp_conf_find_window(conf, "a.b", 3);
        assert_true(w >= 0 && ab >= 0);
        assert_int_equal(conf->windows[w].size_ms, 5000);
        assert_int_equal(conf->windows[w].grace_ms, 7);
        assert_int_equal(conf->windows[ab].size_ms, 3);
        assert_int_equal(conf->patterns[0].min_count, 9);
        assert_string_equal(conf->measures[0].expr, "2*x");
        /* errors name the section in full */
        assert_int_equal(dmp_conf_set_override(conf, "window.t10.sise.ms=1"), 1);
        expect_error(conf, "-o: ", "[window t10] unknown property \"sise.ms\"", NULL);
        assert_int_equal(dmp_conf_set_override(conf, "window.t10.size.ms=x"), 1);
        expect_error(conf, "-o: ", "[window t10] size.ms: \"x\" is not an integer", NULL);
        assert_int_equal(dmp_conf_set_override(conf, "window.t10=1"), 1);
        expect_error(conf, "-o: ", "expected window.NAME.property=value", NULL);
        assert_int_equal(dmp_conf_set_override(conf, "window..size.ms=1"), 1);
        dmp_conf_destroy(conf);
}

/* Errors of every kind at once keep their own lines. */
static void test_error_count_and_lines_mixed(void **state) {
        (void)state;
        int n;
        dmp_conf_t *conf = load("x = 1\n"                  /* 1 outside */
                                "[input]\n"                /* 2 */
                                "topik = a\n"              /* 3 unknown */
                                "[state]\n"                /* 4 */
                                "commit.interval.ms = a\n" /* 5 not integer */
                                "[nope]\n"                 /* 6 unknown section */
                                "a = b\n"                  /* 7 ignored */
                                "[log]\n"                  /* 8 */
                                "level = loud\n",          /* 9 bad enum */
                                &n);
        assert_int_equal(n, 5);
        assert_int_equal(conf->error_cnt, 5);
        expect_error(conf, "t.ini:1: ", "outside", NULL);
        expect_error(conf, "t.ini:3: ", "did you mean \"topic\"", NULL);
        expect_error(conf, "t.ini:5: ", "not an integer", NULL);
        expect_error(conf, "t.ini:6: ", "unknown section [nope]", NULL);
        expect_error(conf, "t.ini:9: ", "invalid value \"loud\"", NULL);
        /* 5 lines, each newline-terminated */
        int lines = 0;
        for (const char *p = conf->errors; *p; p++)
                lines += *p == '\n';
        assert_int_equal(lines, 5);
        assert_int_equal(strlen(conf->errors), conf->errors_len);
        dmp_conf_destroy(conf);
}

/* ---- validate ---- */

static const char base_text[] = "[input]\n"                /* 1 */
                                "topic = events\n"         /* 2 */
                                "schema = s.avsc\n"        /* 3 */
                                "[output]\n"               /* 4 */
                                "topic = out\n"            /* 5 */
                                "[measure m]\n"            /* 6 */
                                "expr = x\n";              /* 7 */

static dmp_conf_t *load_base_plus(const char *more) {
        size_t l = strlen(base_text) + strlen(more) + 1;
        char *text = malloc(l);
        snprintf(text, l, "%s%s", base_text, more);
        int n;
        dmp_conf_t *conf = load(text, &n);
        free(text);
        assert_int_equal(n, 0);
        return conf;
}

static void test_validate_ok(void **state) {
        (void)state;
        dmp_conf_t *conf = load_base_plus("[window w]\n"
                                          "size.ms = 10\n"
                                          "advance.ms = 10\n" /* == size: allowed */
                                          "measures = m\n");
        assert_int_equal(dmp_conf_validate(conf), 0);
        assert_null(conf->errors);
        dmp_conf_destroy(conf);
}

/* [http] auth.user.info: user:password, named on its line without the
 * secret, and redacted in the effective configuration. */
static void test_http_auth(void **state) {
        (void)state;
        dmp_conf_t *conf = load_base_plus("[window w]\n"      /* 8 */
                                          "size.ms = 10\n"    /* 9 */
                                          "[http]\n"          /* 10 */
                                          "port = 9464\n"     /* 11 */
                                          "auth.user.info = CanaryNoColon\n"); /* 12 */
        assert_int_equal(dmp_conf_validate(conf), 1);
        assert_non_null(strstr(conf->errors, ":12: [http] auth.user.info must be user:password"));
        assert_null(strstr(conf->errors, "CanaryNoColon"));
        dmp_conf_destroy(conf);
        conf = load_base_plus("[window w]\nsize.ms = 10\n[http]\nauth.user.info = ops:Canary7\n");
        assert_int_equal(dmp_conf_validate(conf), 0);
        assert_string_equal(conf->http.auth_user_info, "ops:Canary7");
        dmp_buf_t b = {0};
        dmp_conf_dump(conf, &b);
        assert_non_null(strstr(b.p, "[http] auth.user.info = [redacted]\n"));
        assert_null(strstr(b.p, "Canary7"));
        dmp_buf_free(&b);
        dmp_conf_destroy(conf);
}

/* [group] and [pattern]: a valid pair, then each rule with its line. */
static void test_validate_groups_patterns(void **state) {
        (void)state;
        dmp_conf_t *conf = load_base_plus("[window w]\n"           /* 8 */
                                          "size.ms = 10\n"         /* 9 */
                                          "[group seg]\n"          /* 10 */
                                          "field = segment\n"      /* 11 */
                                          "windows = w\n"          /* 12 */
                                          "topic = groups\n"       /* 13 */
                                          "[pattern top]\n"        /* 14 */
                                          "kind = topk\n"          /* 15 */
                                          "window = w\n"           /* 16 */
                                          "source = group:seg\n"   /* 17 */
                                          "measure = m\n"          /* 18 */
                                          "k = 3\n"                /* 19 */
                                          "topic = patterns\n");   /* 20 */
        assert_int_equal(dmp_conf_validate(conf), 0);
        assert_int_equal(conf->group_cnt, 1);
        assert_int_equal(conf->pattern_cnt, 1);
        assert_int_equal(conf->patterns[0].k, 3);
        dmp_conf_destroy(conf);

        conf = load_base_plus("[window w]\n"                       /* 8 */
                              "size.ms = 10\n"                     /* 9 */
                              "[group seg]\n"                      /* 10 */
                              "field = segment\n"                  /* 11 */
                              "bucket.measure = m\n"               /* 12 */
                              "bucket.width = -1\n"                /* 13 */
                              "windows = w, nope\n"                /* 14 */
                              "topic = out\n"                      /* 15 */
                              "[pattern p]\n"                      /* 16 */
                              "kind = threshold\n"                 /* 17 */
                              "window = w2\n"                      /* 18 */
                              "source = group:other\n"             /* 19 */
                              "measure = mm\n"                     /* 20 */
                              "z = -1\n"                           /* 21 */
                              "above = 1e300\n"                    /* 22 */
                              "topic = out\n");                    /* 23 */
        assert_true(dmp_conf_validate(conf) >= 9);
        expect_error(conf, "t.ini:10: ", "[group seg]", "exactly one of field and bucket.measure",
                     NULL);
        expect_error(conf, "t.ini:13: ", "bucket.width must be a positive number", NULL);
        expect_error(conf, "t.ini:14: ", "unknown window \"nope\"", NULL);
        expect_error(conf, "t.ini:15: ", "must differ from [output] topic", NULL);
        expect_error(conf, "t.ini:18: ", "[pattern p] unknown window \"w2\"", NULL);
        expect_error(conf, "t.ini:19: ", "unknown group \"other\"", NULL);
        expect_error(conf, "t.ini:20: ", "unknown measure \"mm\"", NULL);
        expect_error(conf, "t.ini:21: ", "z must be a positive number", NULL);
        expect_error(conf, "t.ini:23: ", "must differ from [output] topic and the [group]", NULL);
        dmp_conf_destroy(conf);

        /* numbers are parsed when read: what is not a finite number is an
         * error at its line */
        int n;
        conf = load("[pattern p]\nz = abc\nabove = 1e400\nbelow = 2.5\n"
                    "[group g]\nbucket.width = 0x\n", &n);
        assert_int_equal(n, 3);
        expect_error(conf, "t.ini:2: ", "z: \"abc\" is not a number", NULL);
        expect_error(conf, "t.ini:3: ", "above: \"1e400\" is not a number", NULL);
        expect_error(conf, "t.ini:6: ", "bucket.width: \"0x\" is not a number", NULL);
        assert_true(conf->patterns[0].z == 3.0); /* the default stays */
        assert_true(isnan(conf->patterns[0].above));
        assert_true(conf->patterns[0].below == 2.5);
        dmp_conf_destroy(conf);

        /* a group pattern over a window the group does not keep; a
         * threshold without a bound; kind is required */
        conf = load_base_plus("[window w]\nsize.ms = 10\n"          /* 8, 9 */
                              "[window v]\nsize.ms = 20\n"          /* 10, 11 */
                              "[group g]\nfield = f\nwindows = w\ntopic = gt\n" /* 12-15 */
                              "[pattern p]\nkind = threshold\nwindow = v\n"     /* 16-18 */
                              "source = group:g\nmeasure = m\ntopic = pt\n"     /* 19-21 */
                              "[pattern q]\nwindow = v\nmeasure = m\ntopic = pt\n"); /* 22-26 */
        assert_int_equal(dmp_conf_validate(conf), 3);
        expect_error(conf, "t.ini:19: ", "[group g] has no windowed statistics for window v",
                     NULL);
        expect_error(conf, "t.ini:16: ", "a threshold needs above or below", NULL);
        expect_error(conf, "t.ini:22: ", "[pattern q] kind is required", NULL);
        dmp_conf_destroy(conf);
}

static void test_validate_missing_topic(void **state) {
        (void)state;
        int n;
        dmp_conf_t *conf = load("[input]\n"
                                "schema = s.avsc\n"
                                "[output]\n"
                                "topic = out\n"
                                "[measure m]\n"
                                "expr = x\n"
                                "[window w]\n"
                                "size.ms = 10\n",
                                &n);
        assert_int_equal(n, 0);
        assert_int_equal(dmp_conf_validate(conf), 1);
        expect_error(conf, "t.ini: ", "[input] topic is required", NULL);
        dmp_conf_destroy(conf);
}

static void test_validate_missing_measures_windows(void **state) {
        (void)state;
        int n;
        dmp_conf_t *conf = load("[input]\n"
                                "topic = t\n"
                                "schema = s.avsc\n"
                                "[output]\n"
                                "topic = out\n",
                                &n);
        assert_int_equal(n, 0);
        assert_int_equal(dmp_conf_validate(conf), 2);
        expect_error(conf, "t.ini: ", "at least one [measure NAME]", NULL);
        expect_error(conf, "t.ini: ", "at least one [window NAME]", NULL);
        dmp_conf_destroy(conf);

        /* an empty configuration misses everything required */
        conf = dmp_conf_new();
        assert_int_equal(dmp_conf_validate(conf), 5);
        expect_error(conf, "(defaults): ", "[input] topic is required", NULL);
        expect_error(conf, "(defaults): ", "[input] schema is required", NULL);
        expect_error(conf, "(defaults): ", "[output] topic is required", NULL);
        dmp_conf_destroy(conf);
}

static void test_validate_window_size_required(void **state) {
        (void)state;
        dmp_conf_t *conf = load_base_plus("[window w]\n" /* 8 */
                                          "grace.ms = 5\n");
        assert_int_equal(dmp_conf_validate(conf), 1);
        /* (the line of a section: see test_regression_section_line) */
        expect_error(conf, "t.ini:", "[window w] size.ms is required", NULL);
        dmp_conf_destroy(conf);
}

static void test_validate_hopping_without_advance(void **state) {
        (void)state;
        dmp_conf_t *conf = load_base_plus("[window ok]\n"    /* 8 */
                                          "size.ms = 10\n"   /* 9 */
                                          "[window h]\n"     /* 10 */
                                          "type = hopping\n" /* 11 */
                                          "size.ms = 10\n"); /* 12 */
        assert_int_equal(dmp_conf_validate(conf), 1);
        /* no advance.ms line: reported at the section (which line: see
         * test_regression_section_line) */
        expect_error(conf, "t.ini:", "[window h] hopping windows need 0 < advance.ms <= size.ms",
                     NULL);
        dmp_conf_destroy(conf);

        /* advance > size: reported at the advance.ms line */
        conf = load_base_plus("[window h]\n"       /* 8 */
                              "type = hopping\n"   /* 9 */
                              "size.ms = 10\n"     /* 10 */
                              "advance.ms = 11\n"); /* 11 */
        assert_int_equal(dmp_conf_validate(conf), 1);
        expect_error(conf, "t.ini:11: ", "hopping windows need 0 < advance.ms <= size.ms", NULL);
        dmp_conf_destroy(conf);

        /* too many hops per event */
        conf = load_base_plus("[window h]\n"         /* 8 */
                              "type = hopping\n"     /* 9 */
                              "size.ms = 1001\n"     /* 10 */
                              "advance.ms = 1\n");   /* 11 */
        assert_int_equal(dmp_conf_validate(conf), 1);
        expect_error(conf, "t.ini:11: ", "must be <= 1000", NULL);
        dmp_conf_destroy(conf);
        conf = load_base_plus("[window h]\ntype = hopping\nsize.ms = 1000\nadvance.ms = 1\n");
        assert_int_equal(dmp_conf_validate(conf), 0);
        dmp_conf_destroy(conf);
}

static void test_validate_advance_on_tumbling(void **state) {
        (void)state;
        dmp_conf_t *conf = load_base_plus("[window t]\n"     /* 8 */
                                          "size.ms = 10\n"   /* 9 */
                                          "advance.ms = 5\n"); /* 10 */
        assert_int_equal(dmp_conf_validate(conf), 1);
        expect_error(conf, "t.ini:10: ", "[window t] advance.ms is only for type = hopping", NULL);
        dmp_conf_destroy(conf);
}

static void test_validate_unknown_measure(void **state) {
        (void)state;
        dmp_conf_t *conf = load_base_plus("[window w]\n"                /* 8 */
                                          "size.ms = 10\n"              /* 9 */
                                          "measures = m, nope,m2\n");   /* 10 */
        assert_int_equal(dmp_conf_validate(conf), 2);
        expect_error(conf, "t.ini:10: ", "[window w] unknown measure \"nope\"", NULL);
        expect_error(conf, "t.ini:10: ", "[window w] unknown measure \"m2\"", NULL);
        assert_null(strstr(conf->errors, "unknown measure \"m\""));
        dmp_conf_destroy(conf);
}

static void test_validate_measure_without_expr(void **state) {
        (void)state;
        int n;
        dmp_conf_t *conf = load("[input]\ntopic = t\nschema = s\n[output]\ntopic = o\n"
                                "[measure m]\n"         /* 6 */
                                "expr =\n"              /* 7: set, but empty */
                                "[window w]\nsize.ms = 1\n",
                                &n);
        assert_int_equal(n, 0);
        assert_int_equal(dmp_conf_validate(conf), 1);
        expect_error(conf, "t.ini:", "[measure m] expr is required", NULL);
        dmp_conf_destroy(conf);
}

/* ---- overrides ---- */

static void test_overrides(void **state) {
        (void)state;
        dmp_conf_t *conf = load_base_plus("[state]\n"              /* 8 */
                                          "dir = /var/lib/x\n");   /* 9 */
        assert_int_equal(dmp_conf_set_override(conf, "kafka.bootstrap.servers=x"), 0);
        assert_string_equal(dmp_conf_kafka_get(conf, "bootstrap.servers"), "x");
        assert_int_equal(dmp_conf_set_override(conf, "kafka.bootstrap.servers=host:9092"), 0);
        assert_string_equal(dmp_conf_kafka_get(conf, "bootstrap.servers"), "host:9092");
        /* overriding a property the file set is not a duplicate */
        assert_int_equal(dmp_conf_set_override(conf, "state.dir=/tmp/x"), 0);
        assert_string_equal(conf->state.dir, "/tmp/x");
        assert_int_equal(dmp_conf_set_override(conf, "state.commit.interval.ms=250"), 0);
        assert_int_equal(conf->state.commit_interval_ms, 250);
        assert_int_equal(dmp_conf_set_override(conf, "input.topic=other"), 0);
        assert_string_equal(conf->input.topic, "other");
        assert_int_equal(conf->error_cnt, 0);
        dmp_conf_destroy(conf);
}

static void test_override_errors(void **state) {
        (void)state;
        dmp_conf_t *conf = dmp_conf_new();
        assert_int_equal(dmp_conf_set_override(conf, "statedir"), 1);
        expect_error(conf, "-o: ", "\"statedir\": expected section.name=value", NULL);
        assert_int_equal(dmp_conf_set_override(conf, "state.dir"), 1); /* no '=' */
        assert_int_equal(dmp_conf_set_override(conf, "dir=a.b"), 1);   /* '.' after '=' */
        assert_int_equal(conf->error_cnt, 3);
        /* well-formed but wrong: the property's own errors, from the command line */
        assert_int_equal(dmp_conf_set_override(conf, "state.commit.interval.ms=abc"), 1);
        expect_error(conf, "-o: ", "not an integer", NULL);
        assert_int_equal(dmp_conf_set_override(conf, "state.dri=x"), 1);
        expect_error(conf, "-o: ", "did you mean \"dir\"", NULL);
        assert_int_equal(conf->error_cnt, 5);
        assert_string_equal(conf->state.dir, "./state");
        dmp_conf_destroy(conf);
}

static void test_conf_line(void **state) {
        (void)state;
        int n;
        dmp_conf_t *conf = load(valid_text, &n);
        assert_int_equal(n, 0);
        assert_int_equal(dmp_conf_line(conf, "input", "topic"), 2);
        assert_int_equal(dmp_conf_line(conf, "input", "schema"), 3);
        assert_int_equal(dmp_conf_line(conf, "input", "time.field"), 6);
        assert_int_equal(dmp_conf_line(conf, "state", "dir"), 11);
        assert_int_equal(dmp_conf_line(conf, "output", "topic"), 13);
        /* defaults and unknowns: 0 */
        assert_int_equal(dmp_conf_line(conf, "input", "group.id"), 0);
        assert_int_equal(dmp_conf_line(conf, "state", "commit.interval.ms"), 0);
        assert_int_equal(dmp_conf_line(conf, "input", "nope"), 0);
        assert_int_equal(dmp_conf_line(conf, "nope", "topic"), 0);
        assert_int_equal(dmp_conf_line(conf, "kafka", "bootstrap.servers"), 0);
        assert_int_equal(dmp_conf_line(conf, "window", "size.ms"), 0);
        dmp_conf_destroy(conf);
}

static void test_load_file(void **state) {
        (void)state;
        char path[32];
        static const char text[] = "[input]\ntopic = a\ntopik = b\n";
        int n;
        dmp_conf_t *conf = load_temp(path, text, sizeof(text) - 1, &n);
        assert_int_equal(n, 1);
        expect_error_at(conf, path, 3, "did you mean \"topic\"");
        assert_string_equal(conf->input.topic, "a");
        dmp_conf_destroy(conf);
        unlink(path);

        conf = dmp_conf_new();
        assert_int_equal(dmp_conf_load_file(conf, "/nonexistent/dir/x.ini"), 1);
        expect_error(conf, "/nonexistent/dir/x.ini: ", "cannot open", NULL);
        dmp_conf_destroy(conf);
}

/* Regression (src/config.c, named_instance): section_line is documented by its
 * name as the line of the "[window NAME]" / "[measure NAME]" header, and
 * validate() reports section-level errors ("size.ms is required", "hopping
 * windows need 0 < advance.ms <= size.ms" without an advance.ms line,
 * "expr is required") there. But it is set when the section's first
 * property is parsed, to that property's line: such errors point at an
 * unrelated property (e.g. "grace.ms = 5"), one or more lines off.
 * Expected: the header line. */
static void test_regression_section_line(void **state) {
        (void)state;
        dmp_conf_t *conf = load_base_plus("[window h]\n"     /* 8 */
                                          "\n"               /* 9 */
                                          "grace.ms = 5\n"   /* 10 */
                                          "type = hopping\n" /* 11 */
                                          "size.ms = 10\n"); /* 12 */
        int mline = conf->measures[0].section_line, wline = conf->windows[0].section_line;
        int n = dmp_conf_validate(conf);
        char errors[512];
        snprintf(errors, sizeof(errors), "%s", conf->errors ? conf->errors : "");
        dmp_conf_destroy(conf);
        assert_int_equal(n, 1);
        assert_non_null(strstr(errors, "[window h] hopping windows need"));
        if (mline != 6 || wline != 8 || strncmp(errors, "t.ini:8: ", 9))
                fail_msg("[measure m] at line 6: section_line %d; [window h] at line 8: "
                         "section_line %d; error: %s", mline, wline, errors);
}

/* Regression (src/config.c, ctx_reader / conf_parse): inih (Debian's build:
 * INI_MAX_LINE 200, no INI_ALLOW_REALLOC) reads at most 199 bytes per call
 * of the reader, so a longer line is cut: its value is truncated and its
 * rest parsed as a new line (here: "t.ini:3: syntax error", but line 3 is
 * the valid "[input]"), and every later line number is off by one.
 * A measure of many terms is longer than 199 bytes easily.
 * Expected: the whole value is stored and no error is reported (or, at
 * least, a clear "line too long" error at the right line). */
static void test_regression_long_line(void **state) {
        (void)state;
        char expr[400] = "";
        for (int i = 0; i < 20; i++) {
                char term[32];
                snprintf(term, sizeof(term), "%s0.125*field_%02d", i ? " + " : "", i);
                strcat(expr, term);
        }
        assert_true(strlen(expr) > 300);
        char text[600];
        snprintf(text, sizeof(text), "[measure m]\nexpr = %s\n[input]\ntopic = t\n", expr);
        int n;
        dmp_conf_t *conf = load(text, &n);
        char errors[512], got[512];
        snprintf(errors, sizeof(errors), "%s", conf->errors ? conf->errors : "");
        snprintf(got, sizeof(got), "%s", conf->measure_cnt ? conf->measures[0].expr : "");
        int line = dmp_conf_line(conf, "input", "topic");
        dmp_conf_destroy(conf);
        if (n)
                fail_msg("%d errors: %s", n, errors);
        assert_string_equal(got, expr);
        assert_int_equal(line, 4);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid_values_and_defaults),
                cmocka_unit_test(test_new_has_defaults),
                cmocka_unit_test(test_unknown_property_suggests),
                cmocka_unit_test(test_not_integer),
                cmocka_unit_test(test_memory_budget_sizes),
                cmocka_unit_test(test_out_of_range),
                cmocka_unit_test(test_bad_enum),
                cmocka_unit_test(test_unknown_section),
                cmocka_unit_test(test_named_section_without_name),
                cmocka_unit_test(test_duplicate_property),
                cmocka_unit_test(test_key_outside_section),
                cmocka_unit_test(test_syntax_error_line),
                cmocka_unit_test(test_structural_error_stops_in_line_order),
                cmocka_unit_test(test_nul_byte_reported),
                cmocka_unit_test(test_sections_named_in_full),
                cmocka_unit_test(test_override_dotted_named_section),
                cmocka_unit_test(test_error_count_and_lines_mixed),
                cmocka_unit_test(test_validate_ok),
                cmocka_unit_test(test_http_auth),
                cmocka_unit_test(test_validate_groups_patterns),
                cmocka_unit_test(test_validate_missing_topic),
                cmocka_unit_test(test_validate_missing_measures_windows),
                cmocka_unit_test(test_validate_window_size_required),
                cmocka_unit_test(test_validate_hopping_without_advance),
                cmocka_unit_test(test_validate_advance_on_tumbling),
                cmocka_unit_test(test_validate_unknown_measure),
                cmocka_unit_test(test_validate_measure_without_expr),
                cmocka_unit_test(test_overrides),
                cmocka_unit_test(test_override_errors),
                cmocka_unit_test(test_conf_line),
                cmocka_unit_test(test_load_file),
                cmocka_unit_test(test_regression_section_line),
                cmocka_unit_test(test_regression_long_line),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
