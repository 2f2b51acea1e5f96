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

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_plan_ops.h"
#include "util.h"

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

static inline void put_long(const op_t *op, int64_t v, dmp_event_t *ev) {
        if (op->dst & DST_NUM) {
                ev->num[op->slot] = (op->dst & DST_F32) ? (double)(float)v : (double)v;
                ev->defined |= 1ULL << op->slot;
        }
        if (op->dst & DST_TIME) {
                ev->has_time = 1;
                if (op->dst & DST_MICROS)
                        ev->time_ms = dmp_floor_div(v, 1000);
                else if (!(op->dst & DST_DAYS))
                        ev->time_ms = v;
                else if (__builtin_mul_overflow(v, INT64_C(86400000), &ev->time_ms))
                        ev->time_ms = v < 0 ? INT64_MIN : INT64_MAX; /* out of range */
        }
        if (op->dst & DST_KEY) {
                ev->key_len = dmp_format_long(ev->keybuf, v);
                ev->key = ev->keybuf;
        }
        if (op->dst & DST_LABEL) {
                ev->label_len[op->slot] = (uint32_t)dmp_format_long(ev->labelbuf[op->slot], v);
                ev->label[op->slot] = ev->labelbuf[op->slot];
        }
}

/* What a null does to the destinations of op (the time: an error). */
static inline void put_null(const op_t *op, dmp_event_t *ev) {
        if (op->dst & DST_KEY) {
                ev->key = "";
                ev->key_len = 0;
        }
        if (op->dst & DST_LABEL) {
                ev->label[op->slot] = "";
                ev->label_len[op->slot] = 0;
        }
}

/* Exact powers of ten as doubles (10^22 is the last). */
static const double exact_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

double dmp_decimal_to_double(const unsigned char *b, size_t n, int scale) {
        if (n == 0)
                return 0.0;
        int neg = b[0] & 0x80;
        if (n <= 8 && scale <= 22) {
                /* sign-extend; both operands exact, so one division rounds
                 * correctly (IEEE 754) */
                uint64_t u = neg ? ~UINT64_C(0) : 0;
                for (size_t i = 0; i < n; i++)
                        u = (u << 8) | b[i];
                int64_t v = (int64_t)u;
                if (v >= -(INT64_C(1) << 53) && v <= (INT64_C(1) << 53))
                        return (double)v / exact_pow10[scale];
        }
        /* Otherwise: the magnitude's decimal digits, then strtod, which
         * rounds correctly. Digits of a 2^(8n) number: < 2.41 n + 1; the
         * magnitude is divided by 10 in place, most significant byte first. */
        unsigned char mag[64];
        char digits[160 + 2 + 8];
        if (n > sizeof(mag)) { /* beyond 10^154: fold the excess into the exponent */
                size_t lead = n - sizeof(mag);
                for (size_t i = 0; i < lead; i++) /* sign extension only: no value lost */
                        if (b[i] != (neg ? 0xff : 0x00))
                                return neg ? -HUGE_VAL : HUGE_VAL;
                b += lead;
                n = sizeof(mag);
        }
        unsigned carry = 1;
        for (size_t i = n; i-- > 0;) { /* two's complement magnitude */
                unsigned x = neg ? (unsigned)(~b[i] & 0xff) + carry : b[i];
                carry = neg ? x >> 8 : 0;
                mag[i] = (unsigned char)x;
        }
        size_t nd = 0, first = 0;
        char rev[160];
        while (first < n) {
                unsigned rem = 0;
                for (size_t i = first; i < n; i++) {
                        unsigned cur = (rem << 8) | mag[i];
                        mag[i] = (unsigned char)(cur / 10);
                        rem = cur % 10;
                }
                rev[nd++] = (char)('0' + rem);
                while (first < n && mag[first] == 0)
                        first++;
        }
        size_t len = 0;
        if (neg)
                digits[len++] = '-';
        while (nd)
                digits[len++] = rev[--nd];
        if (len == (size_t)(neg ? 1 : 0))
                digits[len++] = '0';
        snprintf(digits + len, sizeof(digits) - len, "e-%d", scale);
        return strtod(digits, NULL);
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
                [OP_STRING_DST] = &&op_string_dst,
                [OP_FIXED] = &&op_fixed,
                [OP_DECIMAL] = &&op_decimal,
                [OP_DECIMAL_FIXED] = &&op_decimal_fixed,
                [OP_ENUM] = &&op_enum,
                [OP_ENUM_CHECK] = &&op_enum_check,
                [OP_FAIL] = &&op_fail,
                [OP_DEFAULT_NUM] = &&op_default_num,
                [OP_DEFAULT_TIME] = &&op_default_time,
                [OP_DEFAULT_KEY] = &&op_default_key,
                [OP_DEFAULT_LABEL] = &&op_default_label,
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
        put_null(op, ev);
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
op_string_dst:
        p0 = p;
        if (!(p = get_varint(c, p, &v)))
                return NULL;
        if (v < 0 || v > end - p)
                return fail_at(c, p0, DMP_DECODE_LENGTH);
        if (op->dst & DST_KEY) {
                ev->key = (const char *)p;
                ev->key_len = (size_t)v;
        }
        if (op->dst & DST_LABEL) {
                ev->label[op->slot] = (const char *)p;
                ev->label_len[op->slot] = (uint32_t)(v > UINT32_MAX ? UINT32_MAX : v);
        }
        p += v;
        NEXT();
op_fixed:
        if ((uint64_t)(end - p) < op->arg)
                return fail_at(c, p, DMP_DECODE_TRUNCATED);
        p += op->arg;
        NEXT();
op_decimal:
        p0 = p;
        if (!(p = get_varint(c, p, &v)))
                return NULL;
        if (v < 0 || v > end - p)
                return fail_at(c, p0, DMP_DECODE_LENGTH);
        ev->num[op->slot] = dmp_decimal_to_double(p, (size_t)v, (int)pl->consts[op->arg].l);
        ev->defined |= 1ULL << op->slot;
        p += v;
        NEXT();
op_decimal_fixed:
        t = &pl->tab[op->arg];
        if ((uint64_t)(end - p) < t[0])
                return fail_at(c, p, DMP_DECODE_TRUNCATED);
        ev->num[op->slot] = dmp_decimal_to_double(p, t[0], (int)pl->consts[t[1]].l);
        ev->defined |= 1ULL << op->slot;
        p += t[0];
        NEXT();
op_enum:
        p0 = p;
        if (!(p = get_varint(c, p, &v)))
                return NULL;
        if (v < 0 || v >= op->arg)
                return fail_at(c, p0, DMP_DECODE_ENUM);
        NEXT();
op_enum_check:
        p0 = p;
        t = &pl->tab[op->arg];
        if (!(p = get_varint(c, p, &v)))
                return NULL;
        if (v < 0 || v >= t[0])
                return fail_at(c, p0, DMP_DECODE_ENUM);
        if (!t[1 + v])
                return fail_at(c, p0, DMP_DECODE_RESOLVE);
        NEXT();
op_fail:
        return fail_at(c, p, (dmp_decode_err_t)op->arg);
op_default_num:
        ev->num[op->slot] = pl->consts[op->arg].d;
        ev->defined |= 1ULL << op->slot;
        NEXT();
op_default_time:
        ev->has_time = 1;
        ev->time_ms = pl->consts[op->arg].l;
        NEXT();
op_default_key:
        ev->key = pl->consts[op->arg].s;
        ev->key_len = pl->consts[op->arg].len;
        NEXT();
op_default_label:
        ev->label[op->slot] = pl->consts[op->arg].s;
        ev->label_len[op->slot] = (uint32_t)pl->consts[op->arg].len;
        NEXT();
op_optional:
        p0 = p;
        if (!(p = get_varint(c, p, &v)))
                return NULL;
        if (v == op->arg) { /* null: what OP_NULL does, then skip T's op */
                if (op->dst & DST_TIME)
                        return fail_at(c, p, DMP_DECODE_NULL_TIME);
                put_null(op, ev);
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

void dmp_plan_destroy(dmp_plan_t *pl) {
        if (!pl)
                return;
        for (size_t i = 0; i < pl->nconsts; i++)
                free(pl->consts[i].s);
        free(pl->consts);
        free(pl->ops);
        free(pl->tab);
        free(pl->starts);
        free(pl);
}

uint64_t dmp_plan_real_slots(const dmp_plan_t *pl) {
        return pl->real_slots;
}

size_t dmp_plan_size(const dmp_plan_t *pl) {
        return pl->nops;
}
