/* A Confluent-compatible schema registry client (REST over libcurl):
 * writer schemas by id (not cached here: the decoder caches what it
 * compiled from them, bounded; the schemas they reference are cached
 * here), and registration of output schemas. Tested against Apicurio
 * Registry's Confluent-compatible API (scripts/registry-local); the
 * contract is Confluent's REST API.
 *
 * Each call retries transient failures (no connection, timeouts, HTTP 5xx
 * and 429) with exponential backoff, up to opts.retries times, then reports
 * DMP_REG_UNAVAILABLE: the caller decides what waits (dmpflow pauses the
 * partition that needs the schema).
 *
 * Threads: one client per thread (it owns a curl handle). */
#ifndef DMP_REGISTRY_H
#define DMP_REGISTRY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dmp_registry_opts {
        const char *url;        /* http(s)://host:port[/prefix] */
        const char *user;       /* basic auth; NULL or "": none */
        const char *password;
        const char *ca_location; /* CA bundle for https; NULL or "": the system's */
        int tls_verify;         /* verify the server's certificate and name */
        long timeout_ms;        /* per request */
        int retries;            /* attempts after the first */
        long backoff_ms;        /* before the first retry; doubled for each next */
} dmp_registry_opts_t;

typedef enum dmp_reg_status {
        DMP_REG_OK,
        DMP_REG_NOT_FOUND,   /* the registry answered: no such id, or its schema is
                              * not Avro */
        DMP_REG_UNAVAILABLE, /* no answer after the retries (also TLS failures) */
        DMP_REG_ERROR,       /* any other answer (bad credentials, HTTP 4xx...) */
} dmp_reg_status_t;

typedef struct dmp_registry dmp_registry_t;

void dmp_registry_opts_init(dmp_registry_opts_t *o);

/* Options from [input] registry.* of conf (struct dmp_conf, config.h);
 * user and password point into buf (at least 256 bytes). */
struct dmp_conf;
void dmp_registry_opts_from_conf(dmp_registry_opts_t *o, const struct dmp_conf *conf,
                                 char *buf, size_t buf_size);

/* A dmp_schema_provider_t (decoder.h) over registry r (the opaque): no
 * such id or a schema that is not Avro is 1 (a dead letter); anything else
 * that is not an answer (no answer, bad credentials, a TLS failure, an
 * error status) is -1: not the record's fault, the record waits. */
int dmp_registry_provider(void *r, int32_t id, const char **json, char *errstr,
                          size_t errstr_size);
dmp_registry_t *dmp_registry_new(const dmp_registry_opts_t *o, char *errstr,
                                 size_t errstr_size);
void dmp_registry_destroy(dmp_registry_t *r);

/* The schema (JSON text) of id; *schema stays valid until the next call.
 * A schema registered with references (Confluent "references": named
 * types of other subjects' schemas) comes with them resolved and copied in
 * (schemaref.h): one self-contained schema. A reference that does not
 * exist, a reference cycle or a schema that is not Avro is
 * DMP_REG_NOT_FOUND, with errstr saying which. */
dmp_reg_status_t dmp_registry_schema(dmp_registry_t *r, int32_t id, const char **schema,
                                     char *errstr, size_t errstr_size);

/* Reads the registry's answer to a GET of a schema (/schemas/ids/ID,
 * /subjects/S/versions/V: {"schema", "schemaType" (absent: Avro),
 * "references"}): HTTP status (0: no answer after the retries) and body
 * (NUL-terminated text; NULL: none); what names the request in messages.
 * DMP_REG_OK with *schema (malloc'ed, the caller frees) the schema's text
 * and *refs its references (a new reference, or NULL); otherwise both are
 * NULL and errstr says why. Pure: no I/O, so tests and the fuzz target
 * (tests/fuzz/fuzz_registry.c) call it without a socket. */
dmp_reg_status_t dmp_registry_schema_answer(long status, const char *body, const char *what,
                                            char **schema, json_t **refs, char *errstr,
                                            size_t errstr_size);

/* Reads the answer to POST /subjects/<subject>/versions the same way:
 * DMP_REG_OK with *id, a non-negative 32-bit integer. */
dmp_reg_status_t dmp_registry_register_answer(long status, const char *body,
                                              const char *subject, int32_t *id, char *errstr,
                                              size_t errstr_size);

/* Registers schema under subject (idempotent on the registry's side) and
 * returns its id. */
dmp_reg_status_t dmp_registry_register(dmp_registry_t *r, const char *subject,
                                       const char *schema, int32_t *id, char *errstr,
                                       size_t errstr_size);

#endif
