/* Confluent schema references: a schema registered with "references"
 * ([{"name": "com.example.Segment", "subject": "segment-value",
 * "version": 1}, ...]) uses named types that other subjects' schemas
 * define, and those may have references of their own. This module finds
 * them all (fetched by subject and version through a callback, depth
 * first, each once, with a bounded cache), detects cycles, and makes the
 * schema self-contained for Avro C (dmp_schema_inline_refs, avro_schema.h).
 *
 * The cache keeps what a (subject, version) pair answered: registered
 * versions do not change. A reference without a version (or version -1,
 * "latest") is fetched each time and not cached.
 *
 * Threads: one per thread, like the registry client that owns it. */
#ifndef DMP_SCHEMAREF_H
#define DMP_SCHEMAREF_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "registry.h"

/* How deep references may nest (A references B references C ...). */
#define DMP_SCHEMAREF_MAX_DEPTH 32

/* Fetches version (-1: the latest) of subject: on DMP_REG_OK, *schema is
 * its schema text (the caller frees it) and *refs its "references" array
 * (a new reference, or NULL for none). Any other status with errstr set. */
typedef dmp_reg_status_t(dmp_schemaref_fetch_t)(void *opaque, const char *subject, int version,
                                                char **schema, json_t **refs, char *errstr,
                                                size_t errstr_size);

typedef struct dmp_schemaref dmp_schemaref_t;

/* max_cached: (subject, version) answers kept (at least 1); the least
 * recently used is dropped beyond it. */
dmp_schemaref_t *dmp_schemaref_new(dmp_schemaref_fetch_t *fetch, void *opaque,
                                   size_t max_cached);
void dmp_schemaref_destroy(dmp_schemaref_t *c);

/* The self-contained text (caller frees) of schema, whose "references"
 * array is refs (borrowed; NULL or empty: schema as it is). Statuses: a
 * failed fetch's (DMP_REG_UNAVAILABLE: try again later), or
 * DMP_REG_NOT_FOUND with errstr naming the reference when one does not
 * exist, is not Avro, is malformed, or the references form a cycle or nest
 * deeper than DMP_SCHEMAREF_MAX_DEPTH. */
dmp_reg_status_t dmp_schemaref_resolve(dmp_schemaref_t *c, const char *schema,
                                       const json_t *refs, char **out, char *errstr,
                                       size_t errstr_size);

/* Calls of the fetch callback so far (tests, debug log). */
uint64_t dmp_schemaref_fetches(const dmp_schemaref_t *c);

#endif
