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

/* The splitmix64 finaliser: a bijection that spreads every input bit. */
static inline uint64_t dmp_mix64(uint64_t x) {
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9ULL;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebULL;
        x ^= x >> 31;
        return x;
}

/* 64-bit FNV-1a of a byte string folded through dmp_mix64. Stable across
 * versions: use it for whatever is persisted (the pipeline fingerprint). */
static inline uint64_t dmp_hash_stable(const void *p, size_t n, uint64_t seed) {
        const unsigned char *s = p;
        uint64_t h = 0xcbf29ce484222325ULL ^ seed;
        for (size_t i = 0; i < n; i++) {
                h ^= s[i];
                h *= 0x100000001b3ULL;
        }
        return dmp_mix64(h);
}

/* 64-bit hash of a byte string for in-memory tables: 8 bytes per step, the
 * last 1-8 bytes read with two overlapping loads (as wyhash does), the
 * length mixed in so that those loads identify the string. Not stable
 * across versions: never persist it. FNV-1a's byte-at-a-time loop was ~5 %
 * of the core pipeline's instructions (callgrind, keys of ~10 bytes). */
static inline uint64_t dmp_hash_bytes(const void *p, size_t n, uint64_t seed) {
        const unsigned char *s = p;
        uint64_t h = seed ^ 0x9e3779b97f4a7c15ULL ^ ((uint64_t)n * 0xff51afd7ed558ccdULL);
        uint64_t a, b;
        uint32_t a4, b4;
        for (; n > 8; s += 8, n -= 8) {
                memcpy(&a, s, 8);
                h = (h ^ a) * 0xbf58476d1ce4e5b9ULL;
                h ^= h >> 29;
        }
        if (n >= 4) {
                memcpy(&a4, s, 4);
                memcpy(&b4, s + n - 4, 4);
                a = a4;
                b = b4;
        } else if (n > 0) {
                a = s[0];
                b = (uint64_t)s[n >> 1] << 8 | s[n - 1];
        } else {
                a = b = 0;
        }
        return dmp_mix64(h ^ (a << 32 | b));
}

/* memcmp(a, b, n) == 0, inline for n <= 16 (two overlapping loads per
 * side, as dmp_hash_bytes reads): the call to glibc's memcmp was ~20
 * instructions per table probe for keys of ~10 bytes. */
static inline int dmp_bytes_eq(const void *a, const void *b, size_t n) {
        const unsigned char *x = a, *y = b;
        uint64_t x0, x1, y0, y1;
        uint32_t u0, u1, v0, v1;
        if (n > 16)
                return !memcmp(a, b, n);
        if (n >= 8) {
                memcpy(&x0, x, 8);
                memcpy(&y0, y, 8);
                memcpy(&x1, x + n - 8, 8);
                memcpy(&y1, y + n - 8, 8);
                return ((x0 ^ y0) | (x1 ^ y1)) == 0;
        }
        if (n >= 4) {
                memcpy(&u0, x, 4);
                memcpy(&v0, y, 4);
                memcpy(&u1, x + n - 4, 4);
                memcpy(&v1, y + n - 4, 4);
                return ((u0 ^ v0) | (u1 ^ v1)) == 0;
        }
        for (size_t i = 0; i < n; i++)
                if (x[i] != y[i])
                        return 0;
        return 1;
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

/* The decimal digits of v (no NUL) into buf, which has room for 20;
 * returns their number. What snprintf("%lld") writes, without its cost
 * (~700 instructions per call). */
size_t dmp_format_long(char *buf, int64_t v);

/* The shortest %g form of a finite x that reads back (strtod) as x. Returns
 * the length written to buf (at least 32 bytes). */
size_t dmp_format_double(char *buf, size_t size, double x);

/* The process's resident memory, bytes (/proc/self/statm; 0 if unknown). */
long dmp_rss_bytes(void);

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
static inline void dmp_buf_puts(dmp_buf_t *b, const char *s) {
        dmp_buf_append(b, s, strlen(s));
}

/* Appends s[0..len) to out as a JSON string (quoted; ", \ and control
 * characters escaped; a byte that is not part of valid UTF-8 becomes
 * U+FFFD, so the output is always valid JSON). */
void dmp_json_string(dmp_buf_t *out, const char *s, size_t len);
/* Whether p[0..n) is valid UTF-8. */
int dmp_utf8_valid(const void *p, size_t n);
/* Appends p[0..n) in base64 (RFC 4648, padded) or in lower-case hex. */
void dmp_base64_append(dmp_buf_t *out, const void *p, size_t n);
void dmp_hex_append(dmp_buf_t *out, const void *p, size_t n);

/* Iterates the per-partition tasks of owner (an engine, the groups: a
 * `tasks` array of ntasks pointers indexed by partition, NULL where the
 * partition is not open): DMP_TASK_FOREACH(e, t) { ... } with t declared
 * by the caller; break and continue work as in a for loop. */
#define DMP_TASK_FOREACH(owner, t)                                             \
        for (int32_t t##_p_ = 0; t##_p_ < (owner)->ntasks; t##_p_++)         \
                if (((t) = (owner)->tasks[t##_p_]) == NULL) {                  \
                } else

/* Comma-separated lists of names ("a, b,c"): the next name of *s (commas
 * and spaces around names are skipped) into *name and *len, *s moved past
 * it. Returns 0 (and *len 0) at the end of the list. */
int dmp_list_next(const char **s, const char **name, size_t *len);

#endif
