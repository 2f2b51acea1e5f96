/* Shared by the libFuzzer targets tests/fuzz/fuzz_<name>.c (docs/FUZZING.md).
 *
 * Each target defines fuzz_<name>_init() (once, before the first input;
 * 0 or -1), fuzz_<name>_one(data, size) (one input; returns 0 and aborts
 * on a broken invariant) and fuzz_<name>_fini() (frees everything; the
 * regression test calls it, libFuzzer never does), then FUZZ_ENTRY(name),
 * which makes the first two libFuzzer's entry points. tests/unit/test_fuzz_regress.c links the same
 * files built with -DFUZZ_NO_ENTRY and replays the regression inputs of
 * tests/fuzz/regress/<name>/ through them, so every finding stays a test
 * of `make test` without the fuzzer. Paths are relative to the repository
 * root: run from there. */
#ifndef DMP_FUZZ_H
#define DMP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FUZZ_DECLARE(name)                                                                      \
        int fuzz_##name##_init(void);                                                          \
        int fuzz_##name##_one(const uint8_t *data, size_t size);                               \
        void fuzz_##name##_fini(void);

FUZZ_DECLARE(decode)
FUZZ_DECLARE(schema)
FUZZ_DECLARE(registry)
FUZZ_DECLARE(config)
FUZZ_DECLARE(http)
FUZZ_DECLARE(state)

#ifdef FUZZ_NO_ENTRY
#define FUZZ_ENTRY(name)
#else
#include <stdlib.h>
#define FUZZ_ENTRY(name)                                                                        \
        int LLVMFuzzerInitialize(int *argc, char ***argv);                                     \
        int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);                          \
        int LLVMFuzzerInitialize(int *argc, char ***argv) {                                    \
                (void)argc;                                                                    \
                (void)argv;                                                                    \
                if (fuzz_##name##_init())                                                      \
                        abort();                                                               \
                return 0;                                                                      \
        }                                                                                      \
        int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {                         \
                return fuzz_##name##_one(data, size);                                          \
        }
#endif

/* A reader of structured values from the input: past its end every value
 * is 0 and every byte string empty (so that any input is a valid one). */
typedef struct fz {
        const uint8_t *p;
        size_t n;
} fz_t;

static inline uint8_t fz_u8(fz_t *f) {
        if (!f->n)
                return 0;
        f->n--;
        return *f->p++;
}

static inline uint64_t fz_u64(fz_t *f, int bytes) {
        uint64_t v = 0;
        for (int i = 0; i < bytes; i++)
                v = v << 8 | fz_u8(f);
        return v;
}

static inline int64_t fz_i64(fz_t *f) {
        return (int64_t)fz_u64(f, 8);
}

static inline double fz_double(fz_t *f) {
        uint64_t u = fz_u64(f, 8);
        double d;
        memcpy(&d, &u, 8);
        return d;
}

/* Up to `want` bytes (fewer at the end); returns how many, *out pointing
 * at them. */
static inline size_t fz_bytes(fz_t *f, size_t want, const uint8_t **out) {
        if (want > f->n)
                want = f->n;
        *out = f->p;
        f->p += want;
        f->n -= want;
        return want;
}

#endif
