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

#include "decoder.h"
#include "fuzz.h"
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

int main(void) {
        struct CMUnitTest tests[sizeof(targets) / sizeof(targets[0])];
        for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++)
                tests[i] = (struct CMUnitTest){targets[i].name, replay, NULL, NULL,
                                               (void *)&targets[i]};
        return cmocka_run_group_tests(tests, NULL, NULL);
}
