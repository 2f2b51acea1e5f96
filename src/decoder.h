/* Input decoding: from one Avro-encoded event to the values the pipeline
 * uses (its key, its event time and its numeric fields).
 *
 * This version decodes with Avro C's generic reader, then picks the fields.
 * Not thread-safe: one decoder per processing thread. */
#ifndef DMP_DECODER_H
#define DMP_DECODER_H

#include <stddef.h>
#include <stdint.h>

#define DMP_MAX_NUM_FIELDS 64

typedef struct dmp_event {
        const char *key;          /* valid until the next decode */
        size_t key_len;
        int has_time;             /* 0: no time field configured */
        int64_t time_ms;
        unsigned long long defined; /* bit i: num[i] is defined (not null) */
        double num[DMP_MAX_NUM_FIELDS];
        char keybuf[24];          /* key of an int/long key field */
} dmp_event_t;

typedef struct dmp_decoder dmp_decoder_t;

/* Parses the writer schema in schema_json (a record). key_field and
 * time_field may be NULL or "" (the Kafka key / timestamp are used then).
 * Returns NULL with a message in errstr on error. */
dmp_decoder_t *dmp_decoder_new(const char *schema_json, const char *key_field,
                               const char *time_field, char *errstr, size_t errstr_size);
void dmp_decoder_destroy(dmp_decoder_t *d);

/* Reads a whole file into a NUL-terminated buffer (caller frees); NULL on
 * error with errstr set. */
char *dmp_read_file(const char *path, size_t *lenp, char *errstr, size_t errstr_size);

/* Registers a numeric field the pipeline needs and returns its slot in
 * dmp_event_t.num, or -1 with errstr set (unknown or not numeric). */
int dmp_decoder_num_field(dmp_decoder_t *d, const char *name, char *errstr,
                          size_t errstr_size);

/* Names of the schema's fields, for suggestions: NULL past the last one. */
const char *dmp_decoder_field_name(const dmp_decoder_t *d, int i);

/* Decodes one record. Returns 0, or -1 with errstr set (malformed record,
 * null event time). */
int dmp_decoder_decode(dmp_decoder_t *d, const void *buf, size_t len, dmp_event_t *ev,
                       char *errstr, size_t errstr_size);

#endif
