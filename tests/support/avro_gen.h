/* Random Avro binary records of any schema, written by walking the schema
 * with Avro C's schema API (independently of src/avro_plan.c), for the
 * differential decoder test, the fuzz seed corpus and the decode benchmark.
 *
 * Values cover the edges (0, -1, INT32/INT64 limits, NaN, infinities,
 * empty and binary strings); arrays and maps come in several blocks, some
 * with a negative count and a byte size, as Java writers emit them.
 * Recursion stops at a bounded depth (unions then take a null branch when
 * they have one, collections are empty). */
#ifndef DMP_TEST_AVRO_GEN_H
#define DMP_TEST_AVRO_GEN_H

#include <avro.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
        GEN_OTHER,  /* not a scalar the pipeline reads; bytes and fixed values
                     * (decimals) in .s, .len */
        GEN_NULL,
        GEN_LONG,   /* int or long: .l */
        GEN_FLOAT,  /* .d holds the float widened to double */
        GEN_DOUBLE, /* .d */
        GEN_STRING, /* .s (points into the record), .len */
        GEN_ENUM,   /* .l: the symbol index */
} gen_kind_t;

/* What was written for one top-level field (through a union: the branch). */
typedef struct gen_value {
        gen_kind_t kind;
        int64_t l;
        double d;
        const char *s;
        size_t len;
} gen_value_t;

#define GEN_MAX_FIELDS 64

typedef struct avro_gen {
        uint64_t rng;
        gen_value_t top[GEN_MAX_FIELDS]; /* the last record's top-level fields */
} avro_gen_t;

void avro_gen_init(avro_gen_t *g, uint64_t seed);
uint64_t avro_gen_rand(avro_gen_t *g);

/* Writes one random record of `record` into buf (cap bytes); returns its
 * length, or 0 if it did not fit. Fills g->top. */
size_t avro_gen_record(avro_gen_t *g, avro_schema_t record, unsigned char *buf, size_t cap);

#endif
