/* Small helpers shared by all modules: clocks, hashing, big-endian codecs,
 * checked allocation. */
#ifndef DMP_UTIL_H
#define DMP_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define DMP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation that aborts on failure: dmpflow cannot make progress without
 * memory and its memory is bounded by configuration, so running out is a
 * fatal condition, not a recoverable error. */
void *dmp_malloc(size_t size);
void *dmp_calloc(size_t n, size_t size);
void *dmp_realloc(void *p, size_t size);
char *dmp_strdup(const char *s);
char *dmp_strndup(const char *s, size_t n);

static inline int64_t dmp_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t dmp_mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Floor division for window alignment: correct for negative timestamps. */
static inline int64_t dmp_floor_div(int64_t a, int64_t b) {
        int64_t q = a / b;
        return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* 64-bit hash of a byte string (FNV-1a folded through a splitmix finaliser). */
static inline uint64_t dmp_mix64(uint64_t x) {
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9ULL;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebULL;
        x ^= x >> 31;
        return x;
}

static inline uint64_t dmp_hash_bytes(const void *p, size_t n, uint64_t seed) {
        const unsigned char *s = p;
        uint64_t h = 0xcbf29ce484222325ULL ^ seed;
        for (size_t i = 0; i < n; i++) {
                h ^= s[i];
                h *= 0x100000001b3ULL;
        }
        return dmp_mix64(h);
}

static inline void dmp_be16_put(unsigned char *p, uint16_t v) {
        p[0] = (unsigned char)(v >> 8);
        p[1] = (unsigned char)v;
}
static inline void dmp_be32_put(unsigned char *p, uint32_t v) {
        for (int i = 3; i >= 0; i--, v >>= 8)
                p[i] = (unsigned char)v;
}
static inline void dmp_be64_put(unsigned char *p, uint64_t v) {
        for (int i = 7; i >= 0; i--, v >>= 8)
                p[i] = (unsigned char)v;
}
static inline uint16_t dmp_be16_get(const unsigned char *p) {
        return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t dmp_be32_get(const unsigned char *p) {
        uint32_t v = 0;
        for (int i = 0; i < 4; i++)
                v = (v << 8) | p[i];
        return v;
}
static inline uint64_t dmp_be64_get(const unsigned char *p) {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
                v = (v << 8) | p[i];
        return v;
}
/* Signed 64-bit values encoded so that byte order equals numeric order. */
static inline void dmp_be64s_put(unsigned char *p, int64_t v) {
        dmp_be64_put(p, (uint64_t)v ^ 0x8000000000000000ULL);
}
static inline int64_t dmp_be64s_get(const unsigned char *p) {
        return (int64_t)(dmp_be64_get(p) ^ 0x8000000000000000ULL);
}

/* Removes a directory tree; 0 on success (or if it does not exist). */
int dmp_rmtree(const char *path);

/* Levenshtein distance, for "did you mean" suggestions. */
int dmp_edit_distance(const char *a, const char *b);

/* A growable text buffer: p is NUL-terminated (NULL while empty). */
typedef struct dmp_buf {
        char *p;
        size_t len, cap;
} dmp_buf_t;

void dmp_buf_append(dmp_buf_t *b, const char *s, size_t n);
void dmp_buf_printf(dmp_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dmp_buf_free(dmp_buf_t *b);

#endif
