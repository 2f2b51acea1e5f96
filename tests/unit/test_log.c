/* Unit tests of src/log.c: repeated messages are counted, one line per
 * class per interval with the count and the first of them (issue 22: one
 * error line per failed result, 231,561 lines in a second). */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "decoder.h"
#include "kafkaconf.h"
#include "log.h"
#include "util.h"

static char path[64];

/* The log so far, from the file [log] file would be. */
static char *read_log(void) {
        size_t n;
        char err[256];
        char *text = dmp_read_file(path, &n, err, sizeof(err));
        assert_non_null(text);
        return text;
}

static int setup(void **state) {
        (void)state;
        strcpy(path, "/tmp/dmp-log-XXXXXX");
        int fd = mkstemp(path);
        if (fd < 0)
                return -1;
        close(fd);
        char err[256];
        return dmp_log_configure(0, path, err, sizeof(err));
}

static int teardown(void **state) {
        (void)state;
        char err[256];
        dmp_log_configure(0, NULL, err, sizeof(err));
        unlink(path);
        return 0;
}

static int count(const char *text, const char *s) {
        int n = 0;
        for (const char *p = text; (p = strstr(p, s)); p++)
                n++;
        return n;
}

/* Each of the NULL-terminated texts occurs in log exactly once. */
static void expect_once(const char *log, ...) {
        va_list ap;
        va_start(ap, log);
        for (const char *s; (s = va_arg(ap, const char *));)
                if (count(log, s) != 1)
                        fail_msg("\"%s\" %d times in:\n%s", s, count(log, s), log);
        va_end(ap);
}

/* The count lines' numbers, summed. */
static uint64_t counted(const char *text, const char *what) {
        uint64_t sum = 0;
        for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
                const char *t = strstr(l, " more like this in the last ");
                const char *nl = strchr(l, '\n');
                if (t && (!nl || t < nl) && strstr(t, what) && (!nl || strstr(t, what) < nl)) {
                        const char *num = t;
                        while (num > l && num[-1] >= '0' && num[-1] <= '9')
                                num--;
                        sum += strtoull(num, NULL, 10);
                }
        }
        return sum;
}

static void test_flood_counted(void **state) {
        (void)state;
        dmp_log_set_repeat_interval(10000);
        for (int i = 0; i < 100000; i++)
                dmp_log_repeated(DMP_LOG_ERROR, "delivery out 17", "result %d failed: too large", i);
        for (int i = 0; i < 3; i++)
                dmp_log_repeated(DMP_LOG_WARN, "dead letter varint", "record %d: varint", i);
        dmp_log_repeats_tick(INT64_MAX);
        char *log = read_log();
        /* each class: the first at once, then one line with the rest's count
         * and the first of them */
        assert_int_equal(count(log, "\n"), 4);
        expect_once(log, "result 0 failed: too large", "99999 more like this in the last ",
                    "the first: result 1 failed: too large", "2 more like this in the last",
                    "the first: record 1: varint", NULL);
        assert_int_equal(1 + counted(log, "failed"), 100000);
        free(log);
}

/* While a class goes on repeating, one line per interval; an interval
 * without one makes it quiet again (the next is written at once). */
static void test_intervals(void **state) {
        (void)state;
        dmp_log_set_repeat_interval(1000);
        int64_t t = dmp_mono_ms();
        dmp_log_repeated(DMP_LOG_ERROR, "c", "m %d", 0); /* written */
        dmp_log_repeated(DMP_LOG_ERROR, "c", "m %d", 1); /* counted */
        dmp_log_repeats_tick(t + 1000000);               /* its interval ended: "1 more" */
        dmp_log_repeated(DMP_LOG_ERROR, "c", "m %d", 2); /* counted in the next */
        dmp_log_repeated(DMP_LOG_ERROR, "c", "m %d", 3);
        dmp_log_repeats_tick(t + 3000000); /* "2 more"; counting goes on */
        dmp_log_repeats_tick(t + 5000000); /* an empty interval: quiet again */
        dmp_log_repeated(DMP_LOG_ERROR, "c", "m %d", 4); /* written at once */
        dmp_log_repeats_tick(INT64_MAX);
        char *log = read_log();
        assert_int_equal(count(log, "\n"), 4);
        expect_once(log, "error m 0\n", "1 more like this in the last", "the first: m 1\n",
                    "2 more like this in the last", "the first: m 2\n", "error m 4\n", NULL);
        free(log);
}

static void test_interval_zero_and_level(void **state) {
        (void)state;
        dmp_log_set_repeat_interval(0);
        for (int i = 0; i < 5; i++)
                dmp_log_repeated(DMP_LOG_WARN, "c", "w %d", i);
        dmp_log_level_t old = dmp_log_level;
        dmp_log_level = DMP_LOG_ERROR;
        dmp_log_repeated(DMP_LOG_WARN, "c", "hidden");
        dmp_log_level = old;
        dmp_log_repeats_tick(INT64_MAX);
        char *log = read_log();
        assert_int_equal(count(log, "\n"), 5);
        assert_null(strstr(log, "hidden"));
        free(log);
        dmp_log_set_repeat_interval(10000);
}

/* librdkafka's reconnect lines differ in their numbers and state: one
 * class. */
static void test_librdkafka_class(void **state) {
        (void)state;
        char a[160], b[160], c[160];
        dmp_kafkaconf_log_class("FAIL", "127.0.0.1:19292/bootstrap: Connect to "
                                "ipv4#127.0.0.1:19292 failed: Connection refused (after 0ms in "
                                "state CONNECT)", a, sizeof(a));
        dmp_kafkaconf_log_class("FAIL", "127.0.0.1:19292/bootstrap: Connect to "
                                "ipv4#127.0.0.1:19292 failed: Connection refused (after 12ms in "
                                "state CONNECT, 30 identical error(s) suppressed)", b, sizeof(b));
        dmp_kafkaconf_log_class("FAIL", "127.0.0.1:19292/bootstrap: Connect to "
                                "ipv4#127.0.0.1:19292 failed: Connection timed out", c, sizeof(c));
        assert_string_equal(a, b);
        assert_string_equal(a, "librdkafka FAIL: #.#.#.#:#/bootstrap: Connect to ipv###.#.#.#:# "
                               "failed: Connection refused");
        assert_string_not_equal(a, c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_flood_counted, setup, teardown),
                cmocka_unit_test_setup_teardown(test_intervals, setup, teardown),
                cmocka_unit_test_setup_teardown(test_interval_zero_and_level, setup, teardown),
                cmocka_unit_test(test_librdkafka_class),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
