/* Unit tests of the text helpers of src/util.c that the HTTP endpoint and
 * dmpflow cat write with: JSON strings (always valid UTF-8 and JSON),
 * base64 (RFC 4648's test vectors), hex, and the shortest double that reads
 * back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <float.h>
#include <math.h>

#include "util.h"

static void expect_json(const char *in, size_t len, const char *want) {
        dmp_buf_t b = {0};
        dmp_json_string(&b, in, len);
        assert_string_equal(b.p, want);
        dmp_buf_free(&b);
}

static void test_json_string(void **state) {
        (void)state;
        expect_json("", 0, "\"\"");
        expect_json("plain key_1", 11, "\"plain key_1\"");
        expect_json("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
        expect_json("\n\t\x01\x7f", 4, "\"\\u000a\\u0009\\u0001\\u007f\"");
        expect_json("<script>", 8, "\"<script>\""); /* data: the page shows it as text */
        expect_json("a\0b", 3, "\"a\\u0000b\"");
        /* valid UTF-8 passes unchanged: 2, 3 and 4 bytes */
        expect_json("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
                    "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
        /* anything else is U+FFFD, one per bad byte: a stray continuation, a
         * bad lead, an overlong '/', a surrogate, a cut sequence, > U+10FFFF */
        expect_json("\x80", 1, "\"\\ufffd\"");
        expect_json("x\xffy", 3, "\"x\\ufffdy\"");
        expect_json("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");
        expect_json("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");
        expect_json("\xe2\x82", 2, "\"\\ufffd\\ufffd\"");
        expect_json("\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
        assert_true(dmp_utf8_valid("\xc3\xa9 ok", 4));
        assert_false(dmp_utf8_valid("\xc3", 1));
        assert_false(dmp_utf8_valid("\xe0\x80\x80", 3)); /* overlong NUL */
}

static void test_base64_and_hex(void **state) {
        (void)state;
        const char *vectors[][2] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                    {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                                    {"foobar", "Zm9vYmFy"}};
        for (size_t i = 0; i < DMP_ARRAY_SIZE(vectors); i++) {
                dmp_buf_t b = {0};
                dmp_base64_append(&b, vectors[i][0], strlen(vectors[i][0]));
                assert_string_equal(b.p, vectors[i][1]);
                dmp_buf_free(&b);
        }
        dmp_buf_t b = {0};
        dmp_base64_append(&b, "\xff\xfe\x00", 3);
        assert_string_equal(b.p, "//4A");
        b.len = 0;
        dmp_hex_append(&b, "\x00\x9f\xff", 3);
        assert_string_equal(b.p, "009fff");
        dmp_buf_free(&b);
}

static void test_shortest_double(void **state) {
        (void)state;
        char buf[40];
        const double xs[] = {0.1, 1.0 / 3, 143.88799999999998, 1e300, -2.5e-300, DBL_MAX,
                             DBL_MIN, 5e-324, 42, -0.0, 123456789012345678.0};
        for (size_t i = 0; i < DMP_ARRAY_SIZE(xs); i++) {
                dmp_format_double(buf, sizeof(buf), xs[i]);
                assert_true(strtod(buf, NULL) == xs[i]);
                char longer[40];
                snprintf(longer, sizeof(longer), "%.17g", xs[i]);
                assert_true(strlen(buf) <= strlen(longer));
        }
        dmp_format_double(buf, sizeof(buf), 0.1);
        assert_string_equal(buf, "0.1");
        dmp_format_double(buf, sizeof(buf), 42);
        assert_string_equal(buf, "42");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_json_string),
                cmocka_unit_test(test_base64_and_hex),
                cmocka_unit_test(test_shortest_double),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
