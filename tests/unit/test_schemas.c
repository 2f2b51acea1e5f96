/* Unit test of src/schemas.c: each built-in output schema is the schema of
 * its file in schemas/ (as JSON values, and as Avro C parses them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <cmocka.h>
#include <jansson.h>

#include "decoder.h"
#include "schemas.h"

/* The built-in text equals the file, as JSON and as Avro C parses it. */
static void check_builtin(const char *path, const char *builtin) {
        char err[256];
        char *file = dmp_read_file(path, NULL, err, sizeof(err));
        assert_non_null(file);
        json_t *a = json_loads(file, 0, NULL), *b = json_loads(builtin, 0, NULL);
        assert_non_null(a);
        assert_non_null(b);
        assert_true(json_equal(a, b));
        avro_schema_t sa, sb;
        assert_int_equal(avro_schema_from_json_length(file, strlen(file), &sa), 0);
        assert_int_equal(avro_schema_from_json_length(builtin, strlen(builtin), &sb), 0);
        assert_true(avro_schema_equal(sa, sb));
        avro_schema_decref(sa);
        avro_schema_decref(sb);
        json_decref(a);
        json_decref(b);
        free(file);
}

static void test_window_result(void **state) {
        (void)state;
        check_builtin("schemas/window_result.avsc", dmp_schema_window_result);
}

static void test_group_result(void **state) {
        (void)state;
        check_builtin("schemas/group_result.avsc", dmp_schema_group_result);
}

static void test_pattern(void **state) {
        (void)state;
        check_builtin("schemas/pattern.avsc", dmp_schema_pattern);
}

int main(void) {
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_window_result),
                                           cmocka_unit_test(test_group_result),
                                           cmocka_unit_test(test_pattern)};
        return cmocka_run_group_tests(tests, NULL, NULL);
}
