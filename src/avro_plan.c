/* Compiled Avro decode plans (see avro_plan.h).
 *
 * A plan is an array of operations. Program 0 is the top-level record,
 * flattened: nested records are inlined field by field, so a record of
 * primitives runs as a straight loop over one op per field. Unions, arrays
 * and maps refer to sub-programs (one per union branch, one for the items
 * or values), each ending with OP_END; run() recurses into them. A read op
 * carries its destination (key / time / num slot); with none it only
 * checks and skips the value.
 *
 * Sub-programs are compiled from a queue after the program that needs
 * them, so programs never interleave; skip-only sub-programs are memoized
 * per schema, which also terminates recursive schemas (a record that
 * contains itself through a union, array or map). */
#include "avro_plan.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Operations. Reads of the values the pipeline uses come in variants by
 * destination, so the common ones test nothing but the input: *_NUM writes
 * num[slot], LONG_TIME the event time in ms, STRING_KEY the key; INT and
 * LONG with dst bits set handle the rest (micros, int/long keys, a field in
 * several roles); without dst bits a read only checks and skips. */
enum {
        OP_END,
        OP_NULL,   /* dst: key "" / null time (an error) / num undefined */
        OP_BOOL,   /* one byte */
        OP_INT,    /* varint within 32 bits */
        OP_INT_NUM,
        OP_LONG,   /* varint */
        OP_LONG_NUM,
        OP_LONG_TIME,
        OP_FLOAT,  /* 4 bytes, little endian */
        OP_FLOAT_NUM,
        OP_DOUBLE, /* 8 bytes, little endian */
        OP_DOUBLE_NUM,
        OP_BYTES,  /* length + bytes (string or bytes) */
        OP_STRING_KEY,
        OP_FIXED,  /* arg: size */
        OP_ENUM,   /* arg: number of symbols */
        OP_OPTIONAL, /* [null, T] / [T, null], T primitive: arg = the null
                      * branch; the next op reads T, and is skipped on null */
        OP_UNION,  /* arg: tab index of {n, sub[0], ..., sub[n-1]} */
        OP_UNION_INLINE, /* the same, every branch one primitive op */
        OP_ARRAY,  /* arg: tab index of {sub, min item size} */
        OP_MAP,    /* arg: tab index of {sub, min value size} */
        OP__CNT
};

/* Destinations of a read op (bits). */
enum { DST_KEY = 1, DST_TIME = 2, DST_NUM = 4, DST_MICROS = 8 };

typedef struct op {
        uint8_t code;
        uint8_t dst;
        uint16_t slot; /* DST_NUM */
        uint32_t arg;
} op_t;

struct dmp_plan {
        op_t *ops;
        size_t nops, ops_cap;
        uint32_t *tab; /* operands of unions, arrays, maps */
        size_t ntab, tab_cap;
        uint32_t *starts; /* sub-program id -> first op */
        size_t nsubs, subs_cap;
};

/* ---- execution ---- */

typedef struct run_ctx {
        const dmp_plan_t *pl;
        const unsigned char *start, *end;
        dmp_event_t *ev;
        const unsigned char *errp;
        dmp_decode_err_t err;
        int64_t empty_budget; /* items of always-empty types still allowed */
} run_ctx_t;

static const unsigned char *fail_at(run_ctx_t *c, const unsigned char *p, dmp_decode_err_t e) {
        c->err = e;
        c->errp = p;
        return NULL;
}

/* n (4 or 8) bytes, little endian. Avro is little endian on the wire. */
static inline uint64_t le_get(const unsigned char *p, int n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        uint64_t u8;
        uint32_t u4;
        if (n == 8) {
                memcpy(&u8, p, 8);
                return u8;
        }
        memcpy(&u4, p, 4);
        return u4;
#else
        uint64_t u = 0;
        for (int i = n - 1; i >= 0; i--)
                u = (u << 8) | p[i];
        return u;
#endif
}

/* A zigzag varint of at most 10 bytes (bits past 64 in the 10th byte are
 * dropped, as Avro C and Java do). */
static inline __attribute__((always_inline)) const unsigned char *
get_varint(run_ctx_t *c, const unsigned char *p, int64_t *out) {
        if (p < c->end && *p < 0x80) { /* one byte: most lengths, indexes, small ints */
                *out = (int64_t)(*p >> 1) ^ -(int64_t)(*p & 1);
                return p + 1;
        }
        const unsigned char *p0 = p;
        uint64_t z = 0;
        if (c->end - p >= 10) { /* room for the longest: no bound check per byte */
                /* Up to 8 bytes at once: find the last byte (high bit
                 * clear), keep the bytes up to it, squeeze out the high
                 * bits in three steps. */
                uint64_t w = le_get(p, 8);
                uint64_t stops = ~w & 0x8080808080808080ULL;
                if (stops) {
                        int nbytes = (__builtin_ctzll(stops) >> 3) + 1;
                        if (nbytes < 8)
                                w &= (1ULL << (8 * nbytes)) - 1;
                        w = (w & 0x007f007f007f007fULL) | ((w & 0x7f007f007f007f00ULL) >> 1);
                        w = (w & 0x00003fff00003fffULL) | ((w & 0x3fff00003fff0000ULL) >> 2);
                        w = (w & 0x000000000fffffffULL) | ((w & 0x0fffffff00000000ULL) >> 4);
                        *out = (int64_t)(w >> 1) ^ -(int64_t)(w & 1);
                        return p + nbytes;
                }
                for (int shift = 0; shift < 70; shift += 7) {
                        unsigned b = *p++;
                        z |= (uint64_t)(b & 0x7f) << shift;
                        if (!(b & 0x80)) {
                                *out = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
                                return p;
                        }
                }
                return fail_at(c, p0, DMP_DECODE_VARINT);
        }
        for (int shift = 0; shift < 70; shift += 7) {
                if (p >= c->end)
                        return fail_at(c, p0, DMP_DECODE_TRUNCATED);
                unsigned b = *p++;
                z |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *out = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
                        return p;
                }
        }
        return fail_at(c, p0, DMP_DECODE_VARINT);
}

/* Decimal digits of v into buf (at least 21 bytes); returns the length. */
static size_t format_long(char *buf, int64_t v) {
        char tmp[24];
        size_t n = 0;
        uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
        do {
                tmp[n++] = (char)('0' + u % 10);
                u /= 10;
        } while (u);
        size_t len = 0;
        if (v < 0)
                buf[len++] = '-';
        while (n)
                buf[len++] = tmp[--n];
        return len;
}

static inline void put_long(const op_t *op, int64_t v, dmp_event_t *ev) {
        if (op->dst & DST_NUM) {
                ev->num[op->slot] = (double)v;
                ev->defined |= 1ULL << op->slot;
        }
        if (op->dst & DST_TIME) {
                ev->has_time = 1;
                ev->time_ms = (op->dst & DST_MICROS) ? dmp_floor_div(v, 1000) : v;
        }
        if (op->dst & DST_KEY) {
                ev->key_len = format_long(ev->keybuf, v);
                ev->key = ev->keybuf;
        }
}

/* Array and map blocks: a count (0 ends; negative: -count items preceded
 * by the block's byte size), then the items. A count is bounded by the
 * remaining bytes (every item takes at least min bytes), except for items
 * of always-empty types (null, empty records), which take no bytes and no
 * time here: those are bounded by a budget per record (EMPTY_ITEMS_BASE +
 * its length), so that a reader that materializes them (Avro C) stays
 * bounded too. A stated byte size must match what the items took. */
static const unsigned char *run(run_ctx_t *c, uint32_t pc, const unsigned char *p, int depth);

static const unsigned char *run_blocks(run_ctx_t *c, const op_t *op, const unsigned char *p,
                                       int depth) {
        const uint32_t *t = &c->pl->tab[op->arg];
        uint32_t sub = t[0], min = t[1];
        for (;;) {
                const unsigned char *p0 = p;
                int64_t n, size = -1;
                if (!(p = get_varint(c, p, &n)))
                        return NULL;
                if (n == 0)
                        return p;
                if (n < 0) {
                        if (n == INT64_MIN)
                                return fail_at(c, p0, DMP_DECODE_LENGTH);
                        n = -n;
                        if (!(p = get_varint(c, p, &size)))
                                return NULL;
                        if (size < 0 || size > c->end - p)
                                return fail_at(c, p0, DMP_DECODE_LENGTH);
                }
                int64_t left = c->end - p;
                if (min ? n > left / min : (c->empty_budget -= n) < 0)
                        return fail_at(c, p0, DMP_DECODE_LENGTH);
                const unsigned char *block = p;
                if (min) { /* else every item is empty: nothing to read */
                        for (int64_t i = 0; i < n; i++) {
                                if (op->code == OP_MAP) {
                                        const unsigned char *pk = p;
                                        int64_t kl;
                                        if (!(p = get_varint(c, p, &kl)))
                                                return NULL;
                                        if (kl < 0 || kl > c->end - p)
                                                return fail_at(c, pk, DMP_DECODE_LENGTH);
                                        p += kl;
                                }
                                if (!(p = run(c, sub, p, depth + 1)))
                                        return NULL;
                        }
                }
                if (size >= 0 && p - block != size)
                        return fail_at(c, p0, DMP_DECODE_LENGTH);
        }
}

/* Runs program `pc` from p; returns the end of what it read or NULL.
 *
 * Dispatch is threaded (GNU C labels as values, in gcc and clang): each op
 * ends with its own indirect jump to the next, which the CPU predicts per
 * op, where a single switch jump mispredicts at every field (measured: 2-3x
 * slower on the 6-field event). A union whose branches are all primitives
 * (OP_UNION_INLINE, e.g. ["null", "long"]) runs its one-op branch program
 * in this frame and resumes after the union at the branch's OP_END. */
static const unsigned char *run(run_ctx_t *c, uint32_t pc, const unsigned char *p, int depth) {
        static const void *const labels[OP__CNT] = {
                [OP_END] = &&op_end,
                [OP_NULL] = &&op_null,
                [OP_BOOL] = &&op_bool,
                [OP_INT] = &&op_int,
                [OP_INT_NUM] = &&op_int_num,
                [OP_LONG] = &&op_long,
                [OP_LONG_NUM] = &&op_long_num,
                [OP_LONG_TIME] = &&op_long_time,
                [OP_FLOAT] = &&op_float,
                [OP_FLOAT_NUM] = &&op_float_num,
                [OP_DOUBLE] = &&op_double,
                [OP_DOUBLE_NUM] = &&op_double_num,
                [OP_BYTES] = &&op_bytes,
                [OP_STRING_KEY] = &&op_string_key,
                [OP_FIXED] = &&op_fixed,
                [OP_ENUM] = &&op_enum,
                [OP_OPTIONAL] = &&op_optional,
                [OP_UNION] = &&op_union,
                [OP_UNION_INLINE] = &&op_union_inline,
                [OP_ARRAY] = &&op_blocks,
                [OP_MAP] = &&op_blocks,
        };
#define NEXT() goto *labels[(++op)->code]
        const dmp_plan_t *pl = c->pl;
        const unsigned char *end = c->end, *p0;
        dmp_event_t *ev = c->ev;
        const op_t *op = &pl->ops[pl->starts[pc]], *resume = NULL;
        const uint32_t *t;
        int64_t v;
        if (depth > DMP_PLAN_MAX_DEPTH)
                return fail_at(c, p, DMP_DECODE_DEPTH);
        goto *labels[op->code];

op_end:
        if (resume) {
                op = resume;
                resume = NULL;
                goto *labels[op->code];
        }
        return p;
op_null:
        if (op->dst & DST_TIME)
                return fail_at(c, p, DMP_DECODE_NULL_TIME);
        if (op->dst & DST_KEY) {
                ev->key = "";
                ev->key_len = 0;
        }
        NEXT();
op_bool:
        if (p >= end)
                return fail_at(c, p, DMP_DECODE_TRUNCATED);
        p++;
        NEXT();
op_int:
        p0 = p;
        if (!(p = get_varint(c, p, &v)))
                return NULL;
        if (v < INT32_MIN || v > INT32_MAX)
                return fail_at(c, p0, DMP_DECODE_INT_RANGE);
        if (op->dst)
                put_long(op, v, ev);
        NEXT();
op_int_num:
        p0 = p;
        if (!(p = get_varint(c, p, &v)))
                return NULL;
        if (v < INT32_MIN || v > INT32_MAX)
                return fail_at(c, p0, DMP_DECODE_INT_RANGE);
        ev->num[op->slot] = (double)v;
        ev->defined |= 1ULL << op->slot;
        NEXT();
op_long:
        if (!(p = get_varint(c, p, &v)))
                return NULL;
        if (op->dst)
                put_long(op, v, ev);
        NEXT();
op_long_num:
        if (!(p = get_varint(c, p, &v)))
                return NULL;
        ev->num[op->slot] = (double)v;
        ev->defined |= 1ULL << op->slot;
        NEXT();
op_long_time:
        if (!(p = get_varint(c, p, &v)))
                return NULL;
        ev->has_time = 1;
        ev->time_ms = v;
        NEXT();
op_float:
        if (end - p < 4)
                return fail_at(c, p, DMP_DECODE_TRUNCATED);
        p += 4;
        NEXT();
op_float_num: {
        if (end - p < 4)
                return fail_at(c, p, DMP_DECODE_TRUNCATED);
        uint32_t u = (uint32_t)le_get(p, 4);
        float f;
        memcpy(&f, &u, 4);
        ev->num[op->slot] = f;
        ev->defined |= 1ULL << op->slot;
        p += 4;
        NEXT();
}
op_double:
        if (end - p < 8)
                return fail_at(c, p, DMP_DECODE_TRUNCATED);
        p += 8;
        NEXT();
op_double_num: {
        if (end - p < 8)
                return fail_at(c, p, DMP_DECODE_TRUNCATED);
        uint64_t u = le_get(p, 8);
        double x;
        memcpy(&x, &u, 8);
        ev->num[op->slot] = x;
        ev->defined |= 1ULL << op->slot;
        p += 8;
        NEXT();
}
op_bytes:
        p0 = p;
        if (!(p = get_varint(c, p, &v)))
                return NULL;
        if (v < 0 || v > end - p)
                return fail_at(c, p0, DMP_DECODE_LENGTH);
        p += v;
        NEXT();
op_string_key:
        p0 = p;
        if (!(p = get_varint(c, p, &v)))
                return NULL;
        if (v < 0 || v > end - p)
                return fail_at(c, p0, DMP_DECODE_LENGTH);
        ev->key = (const char *)p;
        ev->key_len = (size_t)v;
        p += v;
        NEXT();
op_fixed:
        if ((uint64_t)(end - p) < op->arg)
                return fail_at(c, p, DMP_DECODE_TRUNCATED);
        p += op->arg;
        NEXT();
op_enum:
        p0 = p;
        if (!(p = get_varint(c, p, &v)))
                return NULL;
        if (v < 0 || v >= op->arg)
                return fail_at(c, p0, DMP_DECODE_ENUM);
        NEXT();
op_optional:
        p0 = p;
        if (!(p = get_varint(c, p, &v)))
                return NULL;
        if (v == op->arg) { /* null: what OP_NULL does, then skip T's op */
                if (op->dst & DST_TIME)
                        return fail_at(c, p, DMP_DECODE_NULL_TIME);
                if (op->dst & DST_KEY) {
                        ev->key = "";
                        ev->key_len = 0;
                }
                op++;
                NEXT();
        }
        if (v != 1 - (int64_t)op->arg)
                return fail_at(c, p0, DMP_DECODE_UNION);
        NEXT();
op_union:
        p0 = p;
        t = &pl->tab[op->arg];
        if (!(p = get_varint(c, p, &v)))
                return NULL;
        if (v < 0 || v >= t[0])
                return fail_at(c, p0, DMP_DECODE_UNION);
        if (!(p = run(c, t[1 + v], p, depth + 1)))
                return NULL;
        NEXT();
op_union_inline: /* branches are single primitive ops: no union inside */
        p0 = p;
        t = &pl->tab[op->arg];
        if (!(p = get_varint(c, p, &v)))
                return NULL;
        if (v < 0 || v >= t[0])
                return fail_at(c, p0, DMP_DECODE_UNION);
        resume = op + 1;
        op = &pl->ops[pl->starts[t[1 + v]]];
        goto *labels[op->code];
op_blocks:
        if (!(p = run_blocks(c, op, p, depth)))
                return NULL;
        NEXT();
#undef NEXT
}

#define EMPTY_ITEMS_BASE 1024

dmp_decode_err_t dmp_plan_run(const dmp_plan_t *pl, const void *buf, size_t len,
                              dmp_event_t *ev, size_t *err_pos) {
        run_ctx_t c = {.pl = pl, .start = buf, .end = (const unsigned char *)buf + len, .ev = ev,
                       .empty_budget = EMPTY_ITEMS_BASE + (int64_t)len};
        ev->defined = 0;
        ev->has_time = 0;
        const unsigned char *p = run(&c, 0, buf, 0);
        if (p && p != c.end)
                fail_at(&c, p, DMP_DECODE_TRAILING);
        else if (p)
                return DMP_DECODE_OK;
        if (err_pos)
                *err_pos = (size_t)(c.errp - c.start);
        return c.err;
}

/* ---- compilation ---- */

#define MAX_SCHEMA_DEPTH 64

typedef struct pending {
        avro_schema_t schema;
        uint32_t id;
        uint8_t dst;
        uint16_t slot;
} pending_t;

typedef struct compiler {
        dmp_plan_t *pl;
        pending_t *queue; /* sub-programs to compile */
        size_t nqueue, queue_cap;
        pending_t *memo; /* skip-only sub-programs by schema */
        size_t nmemo, memo_cap;
        char *errstr;
        size_t errstr_size;
} compiler_t;

#define GROW(arr, n, cap)                                                        \
        do {                                                                     \
                if ((n) == (cap)) {                                              \
                        (cap) = (cap) ? (cap) * 2 : 16;                          \
                        (arr) = dmp_realloc((arr), (cap) * sizeof(*(arr)));      \
                }                                                                \
        } while (0)

static void emit(compiler_t *c, uint8_t code, uint8_t dst, uint16_t slot, uint32_t arg) {
        dmp_plan_t *pl = c->pl;
        GROW(pl->ops, pl->nops, pl->ops_cap);
        pl->ops[pl->nops++] = (op_t){code, dst, slot, arg};
}

static uint32_t tab_alloc(compiler_t *c, size_t n) {
        dmp_plan_t *pl = c->pl;
        while (pl->ntab + n > pl->tab_cap) {
                pl->tab_cap = pl->tab_cap ? pl->tab_cap * 2 : 16;
                pl->tab = dmp_realloc(pl->tab, pl->tab_cap * sizeof(*pl->tab));
        }
        uint32_t at = (uint32_t)pl->ntab;
        pl->ntab += n;
        return at;
}

static avro_schema_t deref(avro_schema_t s) {
        while (is_avro_link(s))
                s = avro_schema_link_target(s);
        return s;
}

/* The id of a sub-program decoding a value of s into dst (compiled later). */
static uint32_t sub_program(compiler_t *c, avro_schema_t s, uint8_t dst, uint16_t slot) {
        s = deref(s);
        if (!dst)
                for (size_t i = 0; i < c->nmemo; i++)
                        if (c->memo[i].schema == s)
                                return c->memo[i].id;
        dmp_plan_t *pl = c->pl;
        GROW(pl->starts, pl->nsubs, pl->subs_cap);
        pending_t pd = {s, (uint32_t)pl->nsubs++, dst, slot};
        GROW(c->queue, c->nqueue, c->queue_cap);
        c->queue[c->nqueue++] = pd;
        if (!dst) {
                GROW(c->memo, c->nmemo, c->memo_cap);
                c->memo[c->nmemo++] = pd;
        }
        return pd.id;
}

/* A lower bound of the encoded size of a value of s; 0 only for types whose
 * values are always empty (null, fixed(0), records of such types). */
static uint32_t min_size(avro_schema_t s, int depth) {
        s = deref(s);
        if (depth > MAX_SCHEMA_DEPTH)
                return 1;
        switch (avro_typeof(s)) {
        case AVRO_NULL:
                return 0;
        case AVRO_FLOAT:
                return 4;
        case AVRO_DOUBLE:
                return 8;
        case AVRO_FIXED:
                return (uint32_t)avro_schema_fixed_size(s);
        case AVRO_RECORD: {
                uint64_t n = 0;
                for (size_t i = 0; i < avro_schema_record_size(s); i++)
                        n += min_size(avro_schema_record_field_get_by_index(s, (int)i),
                                      depth + 1);
                return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
        }
        default: /* a varint, a length, a branch index or a block count */
                return 1;
        }
}

/* Emits a read of a primitive: the variant for dst (see the op enum). */
static void emit_read(compiler_t *c, uint8_t generic, uint8_t num, uint8_t time, uint8_t key,
                      uint8_t dst, uint16_t slot) {
        uint8_t code = generic;
        if (dst == DST_NUM && num)
                code = num;
        else if (dst == DST_TIME && time)
                code = time;
        else if (dst == DST_KEY && key)
                code = key;
        emit(c, code, dst, slot, 0);
}

static int emit_value(compiler_t *c, avro_schema_t s, uint8_t dst, uint16_t slot, int depth);

/* ["null", T] or [T, "null"] with T primitive: OP_OPTIONAL and T's op. */
static int emit_optional(compiler_t *c, avro_schema_t s, uint8_t dst, uint16_t slot,
                         int depth) {
        if (avro_schema_union_size(s) != 2)
                return 0;
        avro_schema_t a = deref(avro_schema_union_branch(s, 0));
        avro_schema_t b = deref(avro_schema_union_branch(s, 1));
        int null_at = is_avro_null(a) ? 0 : is_avro_null(b) ? 1 : -1;
        avro_schema_t t = null_at == 0 ? b : a;
        if (null_at < 0 || is_avro_null(t) || !is_avro_primitive(t))
                return 0;
        emit(c, OP_OPTIONAL, dst, slot, (uint32_t)null_at);
        return emit_value(c, t, dst, slot, depth + 1) ? -1 : 1;
}

/* Emits the ops reading one value of s into dst, inline. */
static int emit_value(compiler_t *c, avro_schema_t s, uint8_t dst, uint16_t slot, int depth) {
        s = deref(s);
        if (depth > MAX_SCHEMA_DEPTH) {
                snprintf(c->errstr, c->errstr_size, "the schema nests records deeper than %d",
                         MAX_SCHEMA_DEPTH);
                return -1;
        }
        switch (avro_typeof(s)) {
        case AVRO_NULL:
                emit(c, OP_NULL, dst, slot, 0);
                return 0;
        case AVRO_BOOLEAN:
                emit(c, OP_BOOL, 0, 0, 0);
                return 0;
        case AVRO_INT32:
                emit_read(c, OP_INT, OP_INT_NUM, 0, 0, dst, slot);
                return 0;
        case AVRO_INT64:
                emit_read(c, OP_LONG, OP_LONG_NUM, OP_LONG_TIME, 0, dst, slot);
                return 0;
        case AVRO_FLOAT:
                emit_read(c, OP_FLOAT, OP_FLOAT_NUM, 0, 0, dst, slot);
                return 0;
        case AVRO_DOUBLE:
                emit_read(c, OP_DOUBLE, OP_DOUBLE_NUM, 0, 0, dst, slot);
                return 0;
        case AVRO_STRING:
                emit_read(c, OP_BYTES, 0, 0, OP_STRING_KEY, dst, slot);
                return 0;
        case AVRO_BYTES:
                emit(c, OP_BYTES, 0, 0, 0);
                return 0;
        case AVRO_FIXED: {
                int64_t n = avro_schema_fixed_size(s);
                if (n < 0 || n > INT32_MAX) {
                        snprintf(c->errstr, c->errstr_size, "fixed %s: size %lld too large",
                                 avro_schema_name(s), (long long)n);
                        return -1;
                }
                emit(c, OP_FIXED, 0, 0, (uint32_t)n);
                return 0;
        }
        case AVRO_ENUM:
                emit(c, OP_ENUM, 0, 0, (uint32_t)avro_schema_enum_number_of_symbols(s));
                return 0;
        case AVRO_RECORD:
                for (size_t i = 0; i < avro_schema_record_size(s); i++)
                        if (emit_value(c, avro_schema_record_field_get_by_index(s, (int)i), 0, 0,
                                       depth + 1))
                                return -1;
                return 0;
        case AVRO_UNION: {
                int r = emit_optional(c, s, dst, slot, depth);
                if (r)
                        return r < 0 ? -1 : 0;
                size_t n = avro_schema_union_size(s);
                uint32_t t = tab_alloc(c, 1 + n);
                int inline_ok = 1;
                c->pl->tab[t] = (uint32_t)n;
                for (size_t i = 0; i < n; i++) {
                        avro_schema_t b = deref(avro_schema_union_branch(s, (int)i));
                        c->pl->tab[t + 1 + i] = sub_program(c, b, dst, slot);
                        inline_ok &= is_avro_primitive(b) || is_avro_fixed(b) || is_avro_enum(b);
                }
                emit(c, inline_ok ? OP_UNION_INLINE : OP_UNION, 0, 0, t);
                return 0;
        }
        case AVRO_ARRAY:
        case AVRO_MAP: {
                int arr = is_avro_array(s);
                avro_schema_t item = arr ? avro_schema_array_items(s) : avro_schema_map_values(s);
                uint32_t t = tab_alloc(c, 2);
                uint32_t id = sub_program(c, item, 0, 0);
                c->pl->tab[t] = id;
                /* a map entry also has its key: at least one byte */
                c->pl->tab[t + 1] = arr ? min_size(item, depth + 1) : 1;
                emit(c, arr ? OP_ARRAY : OP_MAP, 0, 0, t);
                return 0;
        }
        case AVRO_LINK:
                break; /* dereferenced above */
        }
        snprintf(c->errstr, c->errstr_size, "unsupported Avro type %s", avro_schema_type_name(s));
        return -1;
}

/* Is s acceptable for role, or a union of null and acceptable branches
 * (at least one not null)? */
static int type_ok(avro_schema_t s, dmp_need_role_t role, int in_union) {
        s = deref(s);
        if (is_avro_union(s)) {
                if (in_union)
                        return 0;
                int some = 0;
                for (size_t i = 0; i < avro_schema_union_size(s); i++) {
                        avro_schema_t b = deref(avro_schema_union_branch(s, (int)i));
                        if (is_avro_null(b))
                                continue;
                        if (!type_ok(b, role, 1))
                                return 0;
                        some = 1;
                }
                return some;
        }
        switch (role) {
        case DMP_NEED_KEY:
                return is_avro_string(s) || is_avro_int32(s) || is_avro_int64(s);
        case DMP_NEED_TIME:
                return is_avro_int32(s) || is_avro_int64(s);
        case DMP_NEED_NUM:
                return is_avro_int32(s) || is_avro_int64(s) || is_avro_float(s) ||
                       is_avro_double(s);
        }
        return 0;
}

static const char *const role_wants[] = {"string, int or long", "long or int",
                                         "int, long, float or double"};

dmp_plan_t *dmp_plan_compile(avro_schema_t writer, const dmp_need_t *needs, int nneeds,
                             char *errstr, size_t errstr_size) {
        writer = deref(writer);
        if (!is_avro_record(writer)) {
                snprintf(errstr, errstr_size, "the input schema must be a record");
                return NULL;
        }
        size_t nf = avro_schema_record_size(writer);
        uint8_t *dst = dmp_calloc(nf, 1);
        uint16_t *slot = dmp_calloc(nf, sizeof(*slot));
        compiler_t c = {.pl = dmp_calloc(1, sizeof(dmp_plan_t)), .errstr = errstr,
                        .errstr_size = errstr_size};
        for (int i = 0; i < nneeds; i++) {
                const dmp_need_t *nd = &needs[i];
                int idx = avro_schema_record_field_get_index(writer, nd->field);
                if (idx < 0) {
                        snprintf(errstr, errstr_size, "field \"%s\" is not in the input schema",
                                 nd->field);
                        goto fail;
                }
                avro_schema_t fs = avro_schema_record_field_get_by_index(writer, idx);
                if (!type_ok(fs, nd->role, 0)) {
                        snprintf(errstr, errstr_size,
                                 "field \"%s\" has type %s; expected %s (or a nullable union of it)",
                                 nd->field, avro_schema_type_name(deref(fs)),
                                 role_wants[nd->role]);
                        goto fail;
                }
                if (nd->role == DMP_NEED_KEY)
                        dst[idx] |= DST_KEY;
                else if (nd->role == DMP_NEED_TIME)
                        dst[idx] |= DST_TIME | (nd->micros ? DST_MICROS : 0);
                else {
                        if (nd->slot < 0 || nd->slot >= DMP_MAX_NUM_FIELDS) {
                                snprintf(errstr, errstr_size, "field \"%s\": slot %d out of range",
                                         nd->field, nd->slot);
                                goto fail;
                        }
                        dst[idx] |= DST_NUM;
                        slot[idx] = (uint16_t)nd->slot;
                }
        }
        /* program 0: the top-level record, then the queued sub-programs */
        GROW(c.pl->starts, c.pl->nsubs, c.pl->subs_cap);
        c.pl->starts[c.pl->nsubs++] = 0;
        for (size_t i = 0; i < nf; i++)
                if (emit_value(&c, avro_schema_record_field_get_by_index(writer, (int)i), dst[i],
                               slot[i], 1))
                        goto fail;
        emit(&c, OP_END, 0, 0, 0);
        for (size_t q = 0; q < c.nqueue; q++) { /* the queue grows as we go */
                pending_t pd = c.queue[q];
                c.pl->starts[pd.id] = (uint32_t)c.pl->nops;
                if (emit_value(&c, pd.schema, pd.dst, pd.slot, 1))
                        goto fail;
                emit(&c, OP_END, 0, 0, 0);
        }
        free(dst);
        free(slot);
        free(c.queue);
        free(c.memo);
        return c.pl;
fail:
        free(dst);
        free(slot);
        free(c.queue);
        free(c.memo);
        dmp_plan_destroy(c.pl);
        return NULL;
}

void dmp_plan_destroy(dmp_plan_t *pl) {
        if (!pl)
                return;
        free(pl->ops);
        free(pl->tab);
        free(pl->starts);
        free(pl);
}

size_t dmp_plan_size(const dmp_plan_t *pl) {
        return pl->nops;
}
