/* libFuzzer target: schema registry answers (`make fuzz`; fuzz.h).
 *
 * Input: byte 0 picks what was asked (even: GET /schemas/ids/<id>, odd:
 * POST /subjects/<subject>/versions), byte 1 the HTTP status the registry
 * answered (from a table of the ones registries send), the rest is the
 * body, up to a NUL; after the NUL, the answer to every GET of a
 * referenced schema (/subjects/S/versions/V). It goes through the pure
 * parsers of src/registry.c that the client calls after its requests
 * (dmp_registry_schema_answer, _register_answer), Confluent schema
 * references are resolved and inlined (schemaref.c, avro_schema.c) with
 * those answers, and the schema this yields goes on as the registry
 * client's does: the provider hands it to a decoder of schemas/event.avsc
 * in the Confluent format, which parses and compiles it and decodes a
 * record.
 *
 * Invariants: the status is one of dmp_reg_status_t; OK comes with a
 * schema (or an id >= 0), anything else with a message and no schema; the
 * decoder answers every record with success or an error class. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder.h"
#include "fuzz.h"
#include "registry.h"
#include "schemaref.h"
#include "util.h"

static dmp_decoder_t *dec;
static const char *answer_body, *ref_body;
static long answer_status;
static int32_t next_id;

static const long statuses[] = {200, 404, 0, 401, 403, 409, 422, 500, 503, 429, 201, 204, 301};

static void bad(const char *what) {
        fprintf(stderr, "fuzz_registry: %s\n", what);
        abort();
}

/* Checks what dmp_registry_schema_answer gave. */
static void check_answer(dmp_reg_status_t st, long status, const char *schema,
                         const json_t *refs, const char *errstr) {
        if ((unsigned)st > DMP_REG_ERROR)
                bad("status out of range");
        if ((st == DMP_REG_OK) != (schema != NULL) || (refs && st != DMP_REG_OK))
                bad("a schema without OK, or OK without one");
        if (st != DMP_REG_OK && status && !errstr[0])
                bad("an error without a message");
}

/* A referenced schema: the second answer, whatever was asked. */
static dmp_reg_status_t fetch_ref(void *opaque, const char *subject, int version,
                                  char **schema, json_t **refs, char *errstr,
                                  size_t errstr_size) {
        (void)opaque;
        (void)version;
        errstr[0] = '\0';
        dmp_reg_status_t st = dmp_registry_schema_answer(200, ref_body, subject, schema, refs,
                                                         errstr, errstr_size);
        check_answer(st, 200, *schema, *refs, errstr);
        return st;
}

/* dmp_registry_provider over the fuzzed answers (dmp_registry_schema's
 * steps: the answer, then its references) */
static int provider(void *opaque, int32_t id, const char **json, char *errstr,
                    size_t errstr_size) {
        static char *schema;
        (void)opaque;
        (void)id;
        free(schema);
        schema = NULL;
        errstr[0] = '\0';
        char *text;
        json_t *refs;
        dmp_reg_status_t st = dmp_registry_schema_answer(answer_status, answer_body,
                                                         "GET /schemas/ids/7", &text, &refs,
                                                         errstr, errstr_size);
        check_answer(st, answer_status, text, refs, errstr);
        if (st == DMP_REG_OK && refs) {
                /* a cache per input: nothing carries over */
                dmp_schemaref_t *c = dmp_schemaref_new(fetch_ref, NULL, 4);
                errstr[0] = '\0';
                st = dmp_schemaref_resolve(c, text, refs, &schema, errstr, errstr_size);
                if ((st == DMP_REG_OK) != (schema != NULL) || (st != DMP_REG_OK && !errstr[0]))
                        bad("references resolved without a schema, or failed silently");
                dmp_schemaref_destroy(c);
                free(text);
        } else {
                schema = text;
        }
        json_decref(refs);
        *json = schema;
        return st == DMP_REG_OK ? 0 : st == DMP_REG_NOT_FOUND ? 1 : -1;
}

int fuzz_registry_init(void) {
        char err[512];
        char *json = dmp_read_file("schemas/event.avsc", NULL, err, sizeof(err));
        if (!json || !(dec = dmp_decoder_new(json, "user_id", "ts", err, sizeof(err))) ||
            dmp_decoder_num_field(dec, "price", err, sizeof(err)) < 0) {
                fprintf(stderr, "fuzz_registry: %s (run from the repository root)\n", err);
                free(json);
                return -1;
        }
        free(json);
        dmp_decoder_set_confluent(dec, provider, NULL);
        dmp_decoder_set_schema_cache(dec, 1);
        return 0;
}

void fuzz_registry_fini(void) {
        dmp_decoder_destroy(dec);
        dec = NULL;
}

int fuzz_registry_one(const uint8_t *data, size_t size) {
        if (size < 2)
                return 0;
        char *body = dmp_strndup((const char *)data + 2, size - 2);
        answer_body = size > 2 || !(data[1] & 0x80) ? body : NULL; /* NULL: no body at all */
        const uint8_t *nul = memchr(data + 2, 0, size - 2);
        char *ref = nul ? dmp_strndup((const char *)nul + 1, (size_t)(data + size - nul - 1))
                        : NULL;
        ref_body = ref;
        answer_status = statuses[(data[1] & 0x7f) % (sizeof(statuses) / sizeof(statuses[0]))];
        char err[512] = "";
        if (data[0] & 1) {
                int32_t id = -1;
                dmp_reg_status_t st = dmp_registry_register_answer(
                        answer_status, answer_body, "events-value", &id, err, sizeof(err));
                if ((unsigned)st > DMP_REG_ERROR)
                        bad("status out of range");
                if (st == DMP_REG_OK && id < 0)
                        bad("a negative id");
                if (st != DMP_REG_OK && answer_status && !err[0])
                        bad("an error without a message");
        } else {
                /* a record of event.avsc (user "u", ts 1, price 2.5, ...) in the
                 * Confluent framing, under a fresh id: the schema is fetched */
                unsigned char rec[] = {0,    0,    0,    0,    0,    2,    'u',  2,   's',
                                       2,    0,    0,    0,    0,    0,    0,    4,   0x40,
                                       6,    0};
                dmp_be32_put(rec + 1, (uint32_t)(next_id++ & 0x7fffffff));
                dmp_event_t ev;
                if (dmp_decoder_decode(dec, rec, sizeof(rec), &ev, err, sizeof(err))) {
                        dmp_decode_err_t e = dmp_decoder_last_error(dec);
                        if (e <= DMP_DECODE_OK || e >= DMP_DECODE__CNT)
                                bad("a rejected record without a class");
                }
        }
        free(body);
        free(ref);
        return 0;
}

FUZZ_ENTRY(registry)
