/* Private to avro_plan.c (execution) and avro_compile.c (compilation):
 * the operations of a decode plan and its layout. */
#ifndef DMP_AVRO_PLAN_OPS_H
#define DMP_AVRO_PLAN_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "avro_plan.h"

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
        OP_STRING_DST, /* a string into the destinations of dst (key, label[slot]) */
        OP_FIXED,  /* arg: size */
        OP_DECIMAL, /* bytes read as a decimal into num[slot]; arg: const {.l = scale} */
        OP_DECIMAL_FIXED, /* fixed read as a decimal; arg: tab index of {size, const index} */
        OP_ENUM,   /* arg: number of symbols */
        OP_ENUM_CHECK, /* arg: tab index of {n, readable[0], ..., readable[n-1]} */
        OP_FAIL,   /* arg: a dmp_decode_err_t (a writer branch the reader cannot read) */
        OP_DEFAULT_NUM,  /* num[slot] = consts[arg].d (a reader field the writer lacks) */
        OP_DEFAULT_TIME, /* time_ms = consts[arg].l */
        OP_DEFAULT_KEY,  /* key = consts[arg].s */
        OP_DEFAULT_LABEL, /* label[slot] = consts[arg].s */
        OP_OPTIONAL, /* [null, T] / [T, null], T primitive: arg = the null
                      * branch; the next op reads T, and is skipped on null */
        OP_UNION,  /* arg: tab index of {n, sub[0], ..., sub[n-1]} */
        OP_UNION_INLINE, /* the same, every branch one primitive op */
        OP_ARRAY,  /* arg: tab index of {sub, min item size} */
        OP_MAP,    /* arg: tab index of {sub, min value size} */
        OP__CNT
};

/* Destinations of a read op (bits). DST_F32: the reader's type is float,
 * so an int or long is rounded to float first (Avro's promotion).
 * DST_MICROS / DST_DAYS: the time is in microseconds / days (logical types
 * timestamp-micros / date), converted to ms. */
enum { DST_KEY = 1, DST_TIME = 2, DST_NUM = 4, DST_MICROS = 8, DST_F32 = 16, DST_DAYS = 32,
       DST_LABEL = 64 /* label[slot] (a label field is never numeric: slot is its) */ };

typedef struct op {
        uint8_t code;
        uint8_t dst;
        uint16_t slot; /* DST_NUM: num[slot]; DST_LABEL: label[slot] */
        uint32_t arg;
} op_t;

/* A reader default, for the OP_DEFAULT_* ops. */
typedef struct plan_const {
        double d;
        int64_t l;
        char *s;
        size_t len;
} plan_const_t;

struct dmp_plan {
        op_t *ops;
        size_t nops, ops_cap;
        uint32_t *tab; /* operands of unions, arrays, maps */
        size_t ntab, tab_cap;
        uint32_t *starts; /* sub-program id -> first op */
        size_t nsubs, subs_cap;
        plan_const_t *consts;
        size_t nconsts;
        uint64_t real_slots; /* see dmp_plan_real_slots */
};

#endif
