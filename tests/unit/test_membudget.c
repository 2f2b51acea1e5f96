/* Unit tests of src/membudget.c: cgroup v2 / v1 limits from files, and the
 * split of the budget. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "membudget.h"

static void write_file(const char *path, const char *text) {
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(text, fp);
        fclose(fp);
}

static void test_cgroup_limits(void **state) {
        (void)state;
        char v2[] = "/tmp/dmp-cg2-XXXXXX", v1[] = "/tmp/dmp-cg1-XXXXXX";
        close(mkstemp(v2));
        close(mkstemp(v1));
        write_file(v2, "67108864\n");
        write_file(v1, "1048576\n");
        assert_true(dmp_mem_cgroup_limit(v2, v1) == 67108864); /* v2 first */
        write_file(v2, "max\n");
        assert_true(dmp_mem_cgroup_limit(v2, v1) == 1048576); /* unlimited v2: v1 */
        write_file(v1, "9223372036854771712\n"); /* v1's "unlimited" */
        assert_true(dmp_mem_cgroup_limit(v2, v1) == 0);
        write_file(v1, "garbage\n");
        assert_true(dmp_mem_cgroup_limit(v2, v1) == 0);
        assert_true(dmp_mem_cgroup_limit("/nonexistent/a", "/nonexistent/b") == 0);
        assert_true(dmp_mem_budget_default() > 0);
        remove(v2);
        remove(v1);
}

static void test_split(void **state) {
        (void)state;
        dmp_mem_split_t s;
        dmp_mem_split(UINT64_C(64) << 20, &s);
        assert_true(s.block_cache == UINT64_C(8) << 20 && s.memtables == UINT64_C(8) << 20);
        assert_true(s.entries == UINT64_C(48) << 20);
        dmp_mem_split(UINT64_C(4) << 20, &s); /* RocksDB shares keep 1 MiB each */
        assert_true(s.block_cache == UINT64_C(1) << 20 && s.memtables == UINT64_C(1) << 20);
        assert_true(s.entries == UINT64_C(2) << 20);
        dmp_mem_split(1000, &s);
        assert_true(s.entries == 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cgroup_limits),
                cmocka_unit_test(test_split),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
