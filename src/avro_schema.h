/* An Avro schema held both as Avro C's parse and as its JSON.
 *
 * Avro C quirk: its schema API exposes no field defaults, no aliases and
 * no logical types (libavro 1.11 parses and drops them), and its resolved
 * reader/writer cannot fill a reader field that the writer lacks. Schema
 * resolution needs all three, so they are read from the JSON here, matched
 * to Avro C's named types by full name.
 *
 * Immutable after parsing; any thread may read it. */
#ifndef DMP_AVRO_SCHEMA_H
#define DMP_AVRO_SCHEMA_H

#include <avro.h>
#include <jansson.h>
#include <stddef.h>

/* The largest decimal scale taken as it is (beyond it every value is 0 as
 * a double anyway). */
#define DMP_DECIMAL_MAX_SCALE 400

typedef struct dmp_named_json {
        char *fullname; /* namespace.name */
        json_t *obj;    /* the type's JSON object (borrowed from the root) */
} dmp_named_json_t;

typedef struct dmp_schema {
        avro_schema_t avro;
        json_t *json;
        dmp_named_json_t *named;
        size_t nnamed;
} dmp_schema_t;

/* Parses schema JSON text. NULL with errstr set on error. */
dmp_schema_t *dmp_schema_parse(const char *text, char *errstr, size_t errstr_size);
void dmp_schema_destroy(dmp_schema_t *s);

/* The JSON object of a named type of s (a record, enum or fixed of its Avro
 * C parse), or NULL. */
json_t *dmp_schema_named_json(const dmp_schema_t *s, avro_schema_t named);

/* The JSON object of field i of record r (a record of s), or NULL. */
json_t *dmp_schema_field_json(const dmp_schema_t *s, avro_schema_t r, int i);

/* The logicalType of a field's type (of the non-null branch of a union),
 * or "". */
const char *dmp_schema_logical_type(const json_t *field);

/* The scale of a field whose type (or non-null branch) has logicalType
 * decimal: its "scale" (0 if absent), clamped to [0, DMP_DECIMAL_MAX_SCALE]
 * (a negative or non-integer scale counts as 0). */
int dmp_schema_decimal_scale(const json_t *field);

/* Does the "aliases" array of obj (a field or a named type) hold name? */
int dmp_schema_has_alias(const json_t *obj, const char *name);

/* Makes a schema that names types defined in other schemas (Confluent
 * schema references: refs[i] is the JSON text of each referenced schema)
 * self-contained, as Avro C parses one document only: at the first use of
 * a name that the schema does not define, the definition from refs is
 * copied in (with its namespace made explicit, so it keeps its full name),
 * and every later use stays a name. A type a copied definition nests is
 * defined by it, so a type that two references share is defined once. The
 * order of refs does not matter; the first definition of a name wins.
 * Names resolve as Java's parser does (the enclosing namespace, then the
 * null namespace).
 * Limitation: a referenced type in the null namespace used by name from
 * within a namespace cannot be written for Avro C (it would resolve the
 * name in that namespace), and stays unknown to it.
 * Returns the JSON text (caller frees), or NULL with errstr set (a text
 * that is not JSON). */
char *dmp_schema_inline_refs(const char *schema, const char *const *refs, size_t nrefs,
                             char *errstr, size_t errstr_size);

#endif
