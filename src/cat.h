/* dmpflow cat: prints the records of a topic as JSON lines, decoded.
 *
 * One line per record: {"topic", "partition", "offset", "timestamp" (ms or
 * null), "key" (a string; "key_base64" when it is not UTF-8; null),
 * "headers" ({name: value}), "value" (the decoded record, decoder.h's
 * dmp_decoder_to_json), "schema_id" (Confluent format)}. A dead letter
 * (the dead-letter topic of -c's configuration) also has "error_class"
 * and "error_message" from its headers and its payload in base64 or hex
 * ("payload_base64" / "payload_hex"); "value" is the payload decoded with
 * the input schema if it decodes, else null. A record that does not decode
 * is a line {"topic", "partition", "offset", "error", "class", "payload_*"}
 * and cat goes on. Without a schema, values are shown as bytes.
 *
 * Schemas: --schema FILE (raw Avro), --registry URL (the Confluent wire
 * format, writer schemas by id), or -c CONFIG, which knows the topics that
 * configuration reads and writes: the result, group and pattern topics
 * (the built-in output schemas, schemas.h), the late topic and the input
 * topic (its input schema), the dead-letter topic; framed by its
 * registry when the configuration has one.
 *
 * Reads every partition (or one) from the beginning, from --offset N (N < 0:
 * the last -N records of each partition), up to its end as it was at the
 * start, or on with --follow until stopped.
 * Threads: the caller's; stop may be set from a signal handler. */
#ifndef DMP_CAT_H
#define DMP_CAT_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

typedef struct dmp_cat_opts {
        const char *brokers;      /* NULL: -c's bootstrap.servers */
        const char *topic;
        const char *schema_path;  /* raw Avro written with this schema */
        const char *registry_url; /* Confluent wire format */
        const dmp_conf_t *conf;   /* -c; NULL: none */
        int has_offset;
        int64_t offset;   /* >= 0: absolute; < 0: that many from the end */
        int64_t count;    /* records to print; < 0: all */
        int follow;
        int32_t partition; /* < 0: every partition */
        int hex;           /* payloads in hex instead of base64 */
        atomic_int *stop;  /* set: stop at once (exit 0); may be NULL */
} dmp_cat_opts_t;

void dmp_cat_opts_init(dmp_cat_opts_t *o);

/* Runs cat; returns the exit code (DMP_EXIT_*), errors on err. */
int dmp_cat_run(const dmp_cat_opts_t *o, FILE *out, FILE *err);

#endif
