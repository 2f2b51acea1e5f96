#include "avro_gen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "avro_enc.h"

#define GEN_MAX_DEPTH 6

typedef struct out {
        unsigned char *p, *end;
        int overflow;
} out_t;

void avro_gen_init(avro_gen_t *g, uint64_t seed) {
        memset(g, 0, sizeof(*g));
        g->rng = seed * 0x9e3779b97f4a7c15ULL + 1;
}

uint64_t avro_gen_rand(avro_gen_t *g) { /* splitmix64 */
        uint64_t z = (g->rng += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static int below(avro_gen_t *g, int n) {
        return (int)(avro_gen_rand(g) % (uint64_t)n);
}

static int room(out_t *o, size_t n) {
        if (o->overflow || (size_t)(o->end - o->p) < n) {
                o->overflow = 1;
                return 0;
        }
        return 1;
}

static void put_long(out_t *o, int64_t v) {
        if (room(o, 10))
                o->p = dmp_avro_put_long(o->p, v);
}

static void put_raw(out_t *o, const void *s, size_t n) {
        if (room(o, n)) {
                memcpy(o->p, s, n);
                o->p += n;
        }
}

static int64_t rand_long(avro_gen_t *g, int is_int) {
        static const int64_t edges[] = {0, 1, -1, 63, -64, 64, INT32_MAX, INT32_MIN,
                                        INT64_MAX, INT64_MIN, 1700000000000, -1700000000123456};
        int64_t v;
        switch (below(g, 4)) {
        case 0:
                v = edges[below(g, (int)(sizeof(edges) / sizeof(edges[0])))];
                break;
        case 1:
                v = below(g, 2001) - 1000;
                break;
        default:
                v = (int64_t)avro_gen_rand(g) >> below(g, 64);
        }
        if (is_int)
                v = (int32_t)v;
        return v;
}

static double rand_double(avro_gen_t *g) {
        static const double edges[] = {0.0, -0.0, 1.0, -1.5, 1e308, -1e-308, 5e-324};
        switch (below(g, 6)) {
        case 0:
                return edges[below(g, (int)(sizeof(edges) / sizeof(edges[0])))];
        case 1:
                return below(g, 2) ? INFINITY : -INFINITY;
        case 2: {
                uint64_t u = avro_gen_rand(g); /* any bits: NaNs, subnormals */
                double d;
                memcpy(&d, &u, 8);
                return d;
        }
        default:
                return (double)(below(g, 2000001) - 1000000) / 64.0;
        }
}

static avro_schema_t deref(avro_schema_t s) {
        while (is_avro_link(s))
                s = avro_schema_link_target(s);
        return s;
}

static void gen_value(avro_gen_t *g, avro_schema_t s, out_t *o, int depth, gen_value_t *top);

/* One array or map: 0-3 blocks of 1-4 items, some with a byte size. */
static void gen_blocks(avro_gen_t *g, avro_schema_t s, out_t *o, int depth) {
        int arr = is_avro_array(s);
        avro_schema_t item = arr ? avro_schema_array_items(s) : avro_schema_map_values(s);
        int blocks = depth >= GEN_MAX_DEPTH ? 0 : below(g, 4);
        for (int b = 0; b < blocks && !o->overflow; b++) {
                int n = 1 + below(g, 4);
                unsigned char tmp[8192];
                out_t t = {tmp, tmp + sizeof(tmp), 0};
                for (int i = 0; i < n; i++) {
                        if (!arr) {
                                char key[8];
                                int kl = below(g, 8);
                                for (int k = 0; k < kl; k++)
                                        key[k] = (char)('a' + below(g, 26));
                                put_long(&t, kl);
                                put_raw(&t, key, (size_t)kl);
                        }
                        gen_value(g, item, &t, depth + 1, NULL);
                }
                if (t.overflow) {
                        o->overflow = 1;
                        return;
                }
                if (below(g, 2)) {
                        put_long(o, -n);
                        put_long(o, t.p - tmp);
                } else {
                        put_long(o, n);
                }
                put_raw(o, tmp, (size_t)(t.p - tmp));
        }
        put_long(o, 0);
}

static void gen_value(avro_gen_t *g, avro_schema_t s, out_t *o, int depth, gen_value_t *top) {
        s = deref(s);
        gen_value_t v = {.kind = GEN_OTHER};
        switch (avro_typeof(s)) {
        case AVRO_NULL:
                v.kind = GEN_NULL;
                break;
        case AVRO_BOOLEAN: {
                unsigned char b = (unsigned char)below(g, 2);
                put_raw(o, &b, 1);
                break;
        }
        case AVRO_INT32:
        case AVRO_INT64:
                v.kind = GEN_LONG;
                v.l = rand_long(g, is_avro_int32(s));
                put_long(o, v.l);
                break;
        case AVRO_FLOAT: {
                float f = (float)rand_double(g);
                uint32_t u;
                memcpy(&u, &f, 4);
                unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8),
                                      (unsigned char)(u >> 16), (unsigned char)(u >> 24)};
                put_raw(o, b, 4);
                v.kind = GEN_FLOAT;
                v.d = f;
                break;
        }
        case AVRO_DOUBLE:
                v.kind = GEN_DOUBLE;
                v.d = rand_double(g);
                if (room(o, 8))
                        o->p = dmp_avro_put_double(o->p, v.d);
                break;
        case AVRO_STRING:
        case AVRO_BYTES: {
                char str[40];
                int n = below(g, 5) == 0 ? 0 : below(g, 40);
                int binary = below(g, 4) == 0;
                for (int i = 0; i < n; i++)
                        str[i] = binary ? (char)below(g, 256) : (char)(' ' + below(g, 95));
                put_long(o, n);
                v.kind = is_avro_string(s) ? GEN_STRING : GEN_OTHER;
                v.s = (const char *)o->p;
                v.len = (size_t)n;
                put_raw(o, str, (size_t)n);
                break;
        }
        case AVRO_FIXED: {
                int64_t n = avro_schema_fixed_size(s);
                v.s = (const char *)o->p;
                v.len = (size_t)n;
                for (int64_t i = 0; i < n; i++) {
                        unsigned char b = (unsigned char)below(g, 256);
                        put_raw(o, &b, 1);
                }
                break;
        }
        case AVRO_ENUM:
                v.kind = GEN_ENUM;
                v.l = below(g, avro_schema_enum_number_of_symbols(s));
                put_long(o, v.l);
                break;
        case AVRO_RECORD:
                for (size_t i = 0; i < avro_schema_record_size(s); i++)
                        gen_value(g, avro_schema_record_field_get_by_index(s, (int)i), o,
                                  depth + 1, NULL);
                break;
        case AVRO_UNION: {
                int n = (int)avro_schema_union_size(s), b = below(g, n);
                if (depth >= GEN_MAX_DEPTH) /* stop recursion: a null branch if any */
                        for (int i = 0; i < n; i++)
                                if (is_avro_null(deref(avro_schema_union_branch(s, i))))
                                        b = i;
                put_long(o, b);
                gen_value(g, avro_schema_union_branch(s, b), o, depth + 1, top);
                return; /* top: set by the branch */
        }
        case AVRO_ARRAY:
        case AVRO_MAP:
                gen_blocks(g, s, o, depth);
                break;
        case AVRO_LINK:
                break;
        }
        if (top)
                *top = v;
}

size_t avro_gen_record(avro_gen_t *g, avro_schema_t record, unsigned char *buf, size_t cap) {
        out_t o = {buf, buf + cap, 0};
        record = deref(record);
        size_t n = avro_schema_record_size(record);
        for (size_t i = 0; i < n; i++)
                gen_value(g, avro_schema_record_field_get_by_index(record, (int)i), &o, 1,
                          i < GEN_MAX_FIELDS ? &g->top[i] : NULL);
        return o.overflow ? 0 : (size_t)(o.p - buf);
}
