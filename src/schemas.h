/* The output schemas, built in (registered with the schema registry and
 * given to consumers), generated from the files in schemas/ by the
 * Makefile; tests/unit/test_schemas.c checks that they are the same schema. */
#ifndef DMP_SCHEMAS_H
#define DMP_SCHEMAS_H

/* schemas/window_result.avsc: what the daemon's encode_result() writes. */
extern const char dmp_schema_window_result[];
/* schemas/group_result.avsc and schemas/pattern.avsc: what the daemon's
 * encode_group() and encode_pattern() write. */
extern const char dmp_schema_group_result[];
extern const char dmp_schema_pattern[];

#endif
