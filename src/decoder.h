/* Input decoding: from one Avro-encoded event to the values the pipeline
 * uses (its key, its event time and its numeric fields).
 *
 * Avro C parses the schema; the fields the pipeline needs are compiled into
 * a flat decode plan (avro_plan.h) that reads them and skips the rest with
 * no allocation per record. Avro C's generic reader is kept as the
 * reference implementation (dmp_decoder_decode_generic), which tests and
 * benchmarks compare the plan against.
 * Not thread-safe: one decoder per processing thread. */
#ifndef DMP_DECODER_H
#define DMP_DECODER_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define DMP_MAX_NUM_FIELDS 64
#define DMP_MAX_LABELS 8 /* group fields (string, int or long) read per event */

typedef struct dmp_event {
        const char *key;          /* valid until the next decode */
        size_t key_len;
        int has_time;             /* 0: no time field configured */
        int64_t time_ms;
        unsigned long long defined; /* bit i: num[i] is defined (not null) */
        double num[DMP_MAX_NUM_FIELDS];
        char keybuf[24];          /* key of an int/long key field */
        /* label i: the value of group field i (see dmp_decoder_label_field),
         * valid until the next decode; "" for null */
        const char *label[DMP_MAX_LABELS];
        uint32_t label_len[DMP_MAX_LABELS];
        char labelbuf[DMP_MAX_LABELS][24]; /* labels of int/long fields */
} dmp_event_t;

typedef struct dmp_decoder dmp_decoder_t;

/* Why a record could not be decoded (dead-letter error classes). */
typedef enum dmp_decode_err {
        DMP_DECODE_OK = 0,
        DMP_DECODE_TRUNCATED, /* the record ends inside a value */
        DMP_DECODE_VARINT,    /* a varint longer than 10 bytes */
        DMP_DECODE_LENGTH,    /* a negative length or count, or one past the end */
        DMP_DECODE_UNION,     /* a union branch index out of range */
        DMP_DECODE_ENUM,      /* an enum symbol index out of range */
        DMP_DECODE_INT_RANGE, /* an int value outside 32 bits */
        DMP_DECODE_TRAILING,  /* bytes left after the record */
        DMP_DECODE_DEPTH,     /* values nested deeper than the decoder allows */
        DMP_DECODE_NULL_TIME, /* the event time field is null */
        DMP_DECODE_RESOLVE,   /* a writer union branch or enum symbol the reader
                               * schema cannot read (schema resolution) */
        DMP_DECODE_TIME_RANGE, /* the event time is beyond +-2^60 ms (engine.c) */
        DMP_DECODE_BAD_MAGIC, /* Confluent framing: shorter than 5 bytes or byte 0 != 0 */
        DMP_DECODE_UNKNOWN_SCHEMA, /* Confluent framing: the registry has no such id */
        DMP_DECODE_INCOMPATIBLE, /* the id's writer schema cannot be read as the reader */
        DMP_DECODE_UNAVAILABLE, /* not the record's fault: the registry did not answer;
                                 * the record must be retried, not dead-lettered */
        DMP_DECODE_NONFINITE, /* a numeric field is NaN or +-Infinity (when rejected) */
        DMP_DECODE_KEY_TOO_LONG, /* a key or group value longer than DMP_KEY_MAX (engine.c) */
        DMP_DECODE__CNT
} dmp_decode_err_t;

/* A short stable name ("truncated", "varint", ...), for headers and metrics. */
const char *dmp_decode_err_name(dmp_decode_err_t e);

/* Parses the writer schema in schema_json (a record). key_field and
 * time_field may be NULL or "" (the Kafka key / timestamp are used then).
 * Returns NULL with a message in errstr on error. */
dmp_decoder_t *dmp_decoder_new(const char *schema_json, const char *key_field,
                               const char *time_field, char *errstr, size_t errstr_size);
void dmp_decoder_destroy(dmp_decoder_t *d);

/* Sets the schema the records are written with, when it differs from the
 * schema given to dmp_decoder_new (which then is the reader schema: the
 * fields the pipeline reads, their types and defaults). Records are read
 * by the Avro schema resolution rules. Returns 0, or -1 with errstr set
 * (naming the field and the rule) if the writer schema cannot be read as
 * the reader schema; the decoder is unchanged then. */
int dmp_decoder_set_writer(dmp_decoder_t *d, const char *writer_json, char *errstr,
                           size_t errstr_size);

/* Confluent wire format: byte 0 is 0, bytes 1-4 the writer schema's id
 * (big endian), then the Avro record. After this call dmp_decoder_decode
 * expects it; writer schemas come from `provider` on the first record of
 * each id and are compiled against the reader schema once (the plans are
 * cached by id). provider returns 0 with *json set (valid during the call),
 * 1 if the id does not exist, -1 if it cannot tell now (with errstr). */
typedef int(dmp_schema_provider_t)(void *opaque, int32_t id, const char **json, char *errstr,
                                   size_t errstr_size);
void dmp_decoder_set_confluent(dmp_decoder_t *d, dmp_schema_provider_t *provider,
                               void *opaque);

/* Bounds the writer schemas (with their plans) kept for the Confluent
 * format to max_entries, evicting the least recently used (default 1000).
 * An unknown id is kept as such for 10 s before the provider is asked
 * again. */
void dmp_decoder_set_schema_cache(dmp_decoder_t *d, size_t max_entries);

/* Rejects records in which a numeric field the pipeline reads (see
 * dmp_decoder_num_field) is NaN or +-Infinity, as DMP_DECODE_NONFINITE.
 * Off by default. */
void dmp_decoder_reject_nonfinite(dmp_decoder_t *d, int on);

/* Reads a whole file into a NUL-terminated buffer (caller frees); NULL on
 * error with errstr set. */
char *dmp_read_file(const char *path, size_t *lenp, char *errstr, size_t errstr_size);

/* Registers a numeric field the pipeline needs and returns its slot in
 * dmp_event_t.num, or -1 with errstr set (unknown or not numeric). */
int dmp_decoder_num_field(dmp_decoder_t *d, const char *name, char *errstr,
                          size_t errstr_size);

/* Registers a field (string, int or long, or a nullable union of one)
 * whose value labels each event, e.g. for grouping, and returns its slot
 * in dmp_event_t.label, or -1 with errstr set. A field cannot be both a
 * label and a numeric field. */
int dmp_decoder_label_field(dmp_decoder_t *d, const char *name, char *errstr,
                            size_t errstr_size);

/* Names of the schema's fields, for suggestions: NULL past the last one. */
const char *dmp_decoder_field_name(const dmp_decoder_t *d, int i);

/* Decodes one record with the compiled plan. Returns 0, or -1 with errstr
 * set (malformed record, null event time) and the class in
 * dmp_decoder_last_error(). A string key points into buf. */
int dmp_decoder_decode(dmp_decoder_t *d, const void *buf, size_t len, dmp_event_t *ev,
                       char *errstr, size_t errstr_size);

/* The class of the last failed decode (DMP_DECODE_OK after a success). */
dmp_decode_err_t dmp_decoder_last_error(const dmp_decoder_t *d);

/* The reference: the same contract as dmp_decoder_decode, decoded with Avro
 * C's generic reader (slow; for tests and benchmarks). Records the plan
 * rejects are not given to Avro C, whose reader trusts lengths (see
 * decoder.c). A string key points into the decoder's generic value. */
int dmp_decoder_decode_generic(dmp_decoder_t *d, const void *buf, size_t len, dmp_event_t *ev,
                               char *errstr, size_t errstr_size);

/* The whole record as one JSON value (dmpflow cat), appended to out:
 * records and maps as objects, arrays as arrays, unions as the value of
 * their branch (not Avro JSON's {"type": value}), enums as their symbol,
 * bytes and fixed as strings of one code point per byte (Avro's JSON
 * encoding), NaN and infinities as the strings "NaN", "Infinity" and
 * "-Infinity", logical types as their underlying values. The plan checks
 * the record first (bounds, trailing bytes), then Avro C's generic reader
 * reads it. Raw Avro only: a decoder set to the Confluent format fails.
 * Returns 0, or -1 with errstr and the class in dmp_decoder_last_error(). */
int dmp_decoder_to_json(dmp_decoder_t *d, const void *buf, size_t len, dmp_buf_t *out,
                        char *errstr, size_t errstr_size);

#endif
