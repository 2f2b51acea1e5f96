/* Compiled Avro decode plans: a writer schema and what the pipeline needs
 * from its records (key, event time, numeric fields), compiled once into a
 * flat array of operations that reads the needed top-level fields and skips
 * everything else.
 *
 * Contract of dmp_plan_run(): it walks the whole record, checks every
 * length, count, varint (at most 10 bytes), union branch, enum symbol and
 * int range against the schema and the remaining bytes, never reads past
 * buf + len, never allocates, and rejects trailing bytes. Complex values
 * (unions, arrays, maps) run sub-programs; recursion is bounded by
 * DMP_PLAN_MAX_DEPTH, so hostile input cannot exhaust the stack.
 *
 * A plan is immutable after compilation: any number of threads may run it
 * at once. */
#ifndef DMP_AVRO_PLAN_H
#define DMP_AVRO_PLAN_H

#include <avro.h>
#include <stddef.h>

#include "avro_schema.h"
#include "decoder.h"

#define DMP_PLAN_MAX_DEPTH 64

typedef enum dmp_need_role {
        DMP_NEED_KEY,  /* string, int or long: dmp_event_t.key */
        DMP_NEED_TIME, /* int or long: dmp_event_t.time_ms */
        DMP_NEED_NUM,  /* int, long, float, double, or bytes/fixed with logical type
                        * decimal: dmp_event_t.num[slot] */
        DMP_NEED_LABEL, /* string, int or long: dmp_event_t.label[slot] */
} dmp_need_role_t;

/* One top-level field of the reader schema the pipeline reads. A field may
 * be needed in several roles (e.g. both key and time); each role is one
 * need. */
typedef struct dmp_need {
        const char *field;
        dmp_need_role_t role;
        int slot;   /* DMP_NEED_NUM */
        int micros; /* DMP_NEED_TIME: the value is in microseconds */
        int days;   /* DMP_NEED_TIME: the value is in days (logical type date) */
        int decimal; /* DMP_NEED_NUM: logical type decimal (bytes or fixed) */
        int scale;  /* decimal: the value is unscaled * 10^-scale */
} dmp_need_t;

/* A decimal (Avro logical type): n bytes of a big-endian two's-complement
 * unscaled integer, times 10^-scale, rounded correctly to a double (0 for
 * n = 0). Allocation-free. */
double dmp_decimal_to_double(const unsigned char *b, size_t n, int scale);

typedef struct dmp_plan dmp_plan_t;

/* Compiles a plan reading records written with `writer` as `reader`
 * declares them (NULL: the writer schema), by the Avro resolution rules
 * (see avro_compile.c). The plan does not refer to the schemas afterwards.
 * A needed field must be a field of the reader record with an acceptable
 * type for its role, or a union whose branches are null or acceptable.
 * Returns NULL with errstr set otherwise, or if the writer schema cannot
 * be read as the reader schema (the message names the field and rule). */
dmp_plan_t *dmp_plan_compile(const dmp_schema_t *writer, const dmp_schema_t *reader,
                             const dmp_need_t *needs, int nneeds, char *errstr,
                             size_t errstr_size);
void dmp_plan_destroy(dmp_plan_t *pl);

/* Decodes one record into ev: key, has_time/time_ms, defined/num. The key
 * of a string field points into buf. Returns DMP_DECODE_OK or the class of
 * the first problem found, with its byte offset in *err_pos. */
dmp_decode_err_t dmp_plan_run(const dmp_plan_t *pl, const void *buf, size_t len,
                              dmp_event_t *ev, size_t *err_pos);

/* The num slots the plan may set from a float, double or decimal value or
 * a reader default (bit i: num[i]): only those can be NaN or infinite,
 * ints and longs never are. */
uint64_t dmp_plan_real_slots(const dmp_plan_t *pl);

/* Number of operations, for tests and debugging. */
size_t dmp_plan_size(const dmp_plan_t *pl);

#endif
