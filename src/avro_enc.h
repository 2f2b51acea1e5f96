/* Minimal Avro binary encoding of primitive values, for records whose
 * schema is fixed at build time (results, generated events). The schemas
 * themselves live in schemas/ (*.avsc) and are checked against these writers by
 * tests that decode the output with an independent Avro implementation.
 *
 * Contract: the caller provides a buffer and checks that it has room; each
 * put returns the advanced position. A long takes at most 10 bytes, a double
 * 8, a string 10 + its length. */
#ifndef DMP_AVRO_ENC_H
#define DMP_AVRO_ENC_H

#include <stdint.h>
#include <string.h>

static inline unsigned char *dmp_avro_put_long(unsigned char *p, int64_t v) {
        uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
        while (z & ~UINT64_C(0x7f)) {
                *p++ = (unsigned char)((z & 0x7f) | 0x80);
                z >>= 7;
        }
        *p++ = (unsigned char)z;
        return p;
}

static inline unsigned char *dmp_avro_put_double(unsigned char *p, double d) {
        uint64_t u;
        memcpy(&u, &d, 8);
        for (int i = 0; i < 8; i++, u >>= 8)
                *p++ = (unsigned char)u;
        return p;
}

static inline unsigned char *dmp_avro_put_string(unsigned char *p, const char *s, size_t len) {
        p = dmp_avro_put_long(p, (int64_t)len);
        memcpy(p, s, len);
        return p + len;
}


/* Bounded readers for the same encodings: each returns the advanced
 * position, or NULL if the value does not fit in [p, end) or is malformed
 * (a varint longer than 10 bytes, a negative or oversize length). */
static inline const unsigned char *dmp_avro_get_long(const unsigned char *p,
                                                     const unsigned char *end, int64_t *out) {
        uint64_t z = 0;
        for (int shift = 0; shift < 70; shift += 7) {
                if (p >= end)
                        return NULL;
                unsigned char b = *p++;
                z |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *out = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
                        return p;
                }
        }
        return NULL;
}

static inline const unsigned char *dmp_avro_get_double(const unsigned char *p,
                                                       const unsigned char *end, double *out) {
        if (end - p < 8)
                return NULL;
        uint64_t u = 0;
        for (int i = 7; i >= 0; i--)
                u = (u << 8) | p[i];
        memcpy(out, &u, 8);
        return p + 8;
}

static inline const unsigned char *dmp_avro_get_string(const unsigned char *p,
                                                       const unsigned char *end,
                                                       const char **s, size_t *len) {
        int64_t l;
        if (!(p = dmp_avro_get_long(p, end, &l)) || l < 0 || l > end - p)
                return NULL;
        *s = (const char *)p;
        *len = (size_t)l;
        return p + l;
}

#endif
