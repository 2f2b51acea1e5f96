#include "decoder.h"

#include <avro.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_enc.h"
#include "util.h"

typedef enum { ROLE_KEY, ROLE_TIME, ROLE_NUM } field_role_t;

typedef struct needed_field {
        field_role_t role;
        int index;   /* position in the writer record */
        int nullable;
        int slot;    /* ROLE_NUM */
        int micros;  /* ROLE_TIME: timestamp-micros */
} needed_field_t;

struct dmp_decoder {
        avro_schema_t schema;
        avro_value_iface_t *iface;
        avro_value_t value;
        avro_reader_t reader;
        json_t *json; /* the schema as JSON, for logical types */
        needed_field_t fields[DMP_MAX_NUM_FIELDS + 2];
        int nfields;
        int nslots;
};

char *dmp_read_file(const char *path, size_t *lenp, char *errstr, size_t errstr_size) {
        FILE *fp = fopen(path, "rb");
        if (!fp) {
                snprintf(errstr, errstr_size, "cannot open %s: %s", path, strerror(errno));
                return NULL;
        }
        size_t cap = 4096, len = 0;
        char *buf = dmp_malloc(cap);
        size_t r;
        while ((r = fread(buf + len, 1, cap - len - 1, fp)) > 0) {
                len += r;
                if (len + 1 == cap)
                        buf = dmp_realloc(buf, cap *= 2);
        }
        int err = ferror(fp);
        fclose(fp);
        if (err) {
                snprintf(errstr, errstr_size, "cannot read %s", path);
                free(buf);
                return NULL;
        }
        buf[len] = '\0';
        if (lenp)
                *lenp = len;
        return buf;
}

/* The non-null branch of ["null", T] / [T, "null"], or the schema itself.
 * Sets *nullable. Returns NULL for other unions. */
static avro_schema_t unwrap_nullable(avro_schema_t s, int *nullable) {
        *nullable = 0;
        if (!is_avro_union(s))
                return s;
        if (avro_schema_union_size(s) != 2)
                return NULL;
        avro_schema_t a = avro_schema_union_branch(s, 0), b = avro_schema_union_branch(s, 1);
        *nullable = 1;
        if (is_avro_null(a))
                return b;
        if (is_avro_null(b))
                return a;
        return NULL;
}

static json_t *json_field(json_t *schema, const char *name) {
        json_t *fields = json_object_get(schema, "fields");
        size_t i;
        json_t *f;
        json_array_foreach(fields, i, f) {
                const char *n = json_string_value(json_object_get(f, "name"));
                if (n && !strcmp(n, name))
                        return f;
        }
        return NULL;
}

/* The logicalType of a field's (non-null) type, or "". */
static const char *json_logical_type(json_t *field) {
        json_t *t = json_object_get(field, "type");
        if (json_is_array(t)) {
                size_t i;
                json_t *b;
                json_array_foreach(t, i, b) {
                        if (json_is_object(b)) {
                                t = b;
                                break;
                        }
                }
        }
        const char *lt = json_is_object(t) ? json_string_value(json_object_get(t, "logicalType"))
                                           : NULL;
        return lt ? lt : "";
}

static int add_field(dmp_decoder_t *d, const char *name, field_role_t role, char *errstr,
                     size_t errstr_size) {
        int idx = avro_schema_record_field_get_index(d->schema, name);
        if (idx < 0) {
                snprintf(errstr, errstr_size, "field \"%s\" is not in the input schema", name);
                return -1;
        }
        int nullable;
        avro_schema_t fs = unwrap_nullable(avro_schema_record_field_get_by_index(d->schema, idx),
                                           &nullable);
        int ok = fs != NULL;
        if (ok && role == ROLE_KEY)
                ok = is_avro_string(fs) || is_avro_int32(fs) || is_avro_int64(fs);
        else if (ok && role == ROLE_TIME)
                ok = is_avro_int64(fs) || is_avro_int32(fs);
        else if (ok)
                ok = is_avro_int32(fs) || is_avro_int64(fs) || is_avro_float(fs) ||
                     is_avro_double(fs);
        if (!ok) {
                static const char *want[] = {"string, int or long", "long or int",
                                             "int, long, float or double"};
                snprintf(errstr, errstr_size, "field \"%s\" has type %s; expected %s (or a "
                         "nullable union of it)", name,
                         fs ? avro_schema_type_name(fs) : "union", want[role]);
                return -1;
        }
        needed_field_t *f = &d->fields[d->nfields++];
        memset(f, 0, sizeof(*f));
        f->role = role;
        f->index = idx;
        f->nullable = nullable;
        if (role == ROLE_TIME) {
                const char *lt = json_logical_type(json_field(d->json, name));
                if (!strcmp(lt, "timestamp-micros"))
                        f->micros = 1;
        }
        return 0;
}

dmp_decoder_t *dmp_decoder_new(const char *schema_json, const char *key_field,
                               const char *time_field, char *errstr, size_t errstr_size) {
        dmp_decoder_t *d = dmp_calloc(1, sizeof(*d));
        json_error_t jerr;
        d->json = json_loads(schema_json, JSON_DECODE_ANY, &jerr);
        if (!d->json) {
                snprintf(errstr, errstr_size, "schema is not valid JSON: line %d: %s", jerr.line,
                         jerr.text);
                goto fail;
        }
        if (avro_schema_from_json_length(schema_json, strlen(schema_json), &d->schema)) {
                d->schema = NULL; /* Avro C may leave a freed schema here */
                snprintf(errstr, errstr_size, "invalid Avro schema: %s", avro_strerror());
                goto fail;
        }
        if (!is_avro_record(d->schema)) {
                snprintf(errstr, errstr_size, "the input schema must be a record");
                goto fail;
        }
        d->iface = avro_generic_class_from_schema(d->schema);
        if (!d->iface || avro_generic_value_new(d->iface, &d->value)) {
                snprintf(errstr, errstr_size, "cannot build a reader: %s", avro_strerror());
                goto fail;
        }
        d->reader = avro_reader_memory("", 0);
        if (key_field && *key_field && add_field(d, key_field, ROLE_KEY, errstr, errstr_size))
                goto fail;
        if (time_field && *time_field && add_field(d, time_field, ROLE_TIME, errstr, errstr_size))
                goto fail;
        return d;
fail:
        dmp_decoder_destroy(d);
        return NULL;
}

void dmp_decoder_destroy(dmp_decoder_t *d) {
        if (!d)
                return;
        if (d->reader)
                avro_reader_free(d->reader);
        if (d->iface) {
                if (d->value.self)
                        avro_value_decref(&d->value);
                avro_value_iface_decref(d->iface);
        }
        if (d->schema)
                avro_schema_decref(d->schema);
        if (d->json)
                json_decref(d->json);
        free(d);
}

const char *dmp_decoder_field_name(const dmp_decoder_t *d, int i) {
        if (i < 0 || (size_t)i >= avro_schema_record_size(d->schema))
                return NULL;
        return avro_schema_record_field_name(d->schema, i);
}

int dmp_decoder_num_field(dmp_decoder_t *d, const char *name, char *errstr,
                          size_t errstr_size) {
        int idx = avro_schema_record_field_get_index(d->schema, name);
        for (int i = 0; i < d->nfields; i++)
                if (d->fields[i].role == ROLE_NUM && d->fields[i].index == idx)
                        return d->fields[i].slot;
        if (d->nslots == DMP_MAX_NUM_FIELDS) {
                snprintf(errstr, errstr_size, "more than %d numeric fields", DMP_MAX_NUM_FIELDS);
                return -1;
        }
        if (add_field(d, name, ROLE_NUM, errstr, errstr_size))
                return -1;
        d->fields[d->nfields - 1].slot = d->nslots;
        return d->nslots++;
}

/* Checks that buf holds one complete value of schema s: every length and
 * count within the remaining bytes, every varint at most 10 bytes, every
 * union branch in range. Avro C's reader allocates a string's stated length
 * before reading it and leaks it when the data is short, so nothing reaches
 * it unchecked. Returns the end of the value or NULL. */
#define VALIDATE_MAX_DEPTH 64

static const unsigned char *validate(avro_schema_t s, const unsigned char *p,
                                     const unsigned char *end, int depth) {
        int64_t n;
        if (!p || depth > VALIDATE_MAX_DEPTH)
                return NULL;
        switch (avro_typeof(s)) {
        case AVRO_NULL:
                return p;
        case AVRO_BOOLEAN:
                return p < end ? p + 1 : NULL;
        case AVRO_INT32:
        case AVRO_INT64:
        case AVRO_ENUM:
                return dmp_avro_get_long(p, end, &n);
        case AVRO_FLOAT:
                return end - p >= 4 ? p + 4 : NULL;
        case AVRO_DOUBLE:
                return end - p >= 8 ? p + 8 : NULL;
        case AVRO_STRING:
        case AVRO_BYTES: {
                const char *str;
                size_t len;
                return dmp_avro_get_string(p, end, &str, &len);
        }
        case AVRO_FIXED:
                n = avro_schema_fixed_size(s);
                return end - p >= n ? p + n : NULL;
        case AVRO_RECORD:
                for (size_t i = 0; i < avro_schema_record_size(s) && p; i++)
                        p = validate(avro_schema_record_field_get_by_index(s, (int)i), p, end,
                                     depth + 1);
                return p;
        case AVRO_UNION:
                if (!(p = dmp_avro_get_long(p, end, &n)) || n < 0 ||
                    (size_t)n >= avro_schema_union_size(s))
                        return NULL;
                return validate(avro_schema_union_branch(s, (int)n), p, end, depth + 1);
        case AVRO_ARRAY:
        case AVRO_MAP:
                for (;;) { /* blocks: count (negative: then a byte size), items; 0 ends */
                        if (!(p = dmp_avro_get_long(p, end, &n)))
                                return NULL;
                        if (n == 0)
                                return p;
                        if (n < 0) {
                                int64_t size;
                                if (n == INT64_MIN || !(p = dmp_avro_get_long(p, end, &size)))
                                        return NULL;
                                n = -n;
                        }
                        if (n > end - p) /* every item takes at least... */
                                if (!(avro_typeof(s) == AVRO_ARRAY &&
                                      is_avro_null(avro_schema_array_items(s))))
                                        return NULL;
                        for (int64_t i = 0; i < n && p; i++) {
                                if (avro_typeof(s) == AVRO_MAP) {
                                        const char *str;
                                        size_t len;
                                        p = dmp_avro_get_string(p, end, &str, &len);
                                        p = validate(avro_schema_map_values(s), p, end,
                                                     depth + 1);
                                } else {
                                        p = validate(avro_schema_array_items(s), p, end,
                                                     depth + 1);
                                }
                        }
                        if (!p)
                                return NULL;
                }
        case AVRO_LINK:
                return validate(avro_schema_link_target(s), p, end, depth + 1);
        }
        return NULL;
}

int dmp_decoder_decode(dmp_decoder_t *d, const void *buf, size_t len, dmp_event_t *ev,
                       char *errstr, size_t errstr_size) {
        const unsigned char *vend = validate(d->schema, buf, (const unsigned char *)buf + len, 0);
        if (!vend) {
                snprintf(errstr, errstr_size, "malformed Avro record: truncated, or a length, "
                         "count or union branch out of range");
                return -1;
        }
        if (vend != (const unsigned char *)buf + len) {
                snprintf(errstr, errstr_size, "malformed Avro record: %zu trailing bytes",
                         (size_t)((const unsigned char *)buf + len - vend));
                return -1;
        }
        avro_reader_memory_set_source(d->reader, buf, (int64_t)len);
        avro_value_reset(&d->value);
        if (avro_value_read(d->reader, &d->value)) {
                snprintf(errstr, errstr_size, "malformed Avro record: %s", avro_strerror());
                return -1;
        }
        ev->defined = 0;
        ev->has_time = 0;
        for (int i = 0; i < d->nfields; i++) {
                const needed_field_t *f = &d->fields[i];
                avro_value_t v, branch;
                if (avro_value_get_by_index(&d->value, (size_t)f->index, &v, NULL) ||
                    (f->nullable && avro_value_get_current_branch(&v, &branch))) {
                        snprintf(errstr, errstr_size, "cannot read field %d: %s", f->index,
                                 avro_strerror());
                        return -1;
                }
                if (f->nullable)
                        v = branch;
                avro_type_t t = avro_value_get_type(&v);
                int64_t l = 0;
                int32_t n32 = 0;
                if (t == AVRO_INT32) {
                        avro_value_get_int(&v, &n32);
                        l = n32;
                } else if (t == AVRO_INT64) {
                        avro_value_get_long(&v, &l);
                }
                switch (f->role) {
                case ROLE_KEY:
                        if (t == AVRO_STRING) {
                                const char *s = "";
                                size_t size = 0;
                                avro_value_get_string(&v, &s, &size);
                                ev->key = s;
                                ev->key_len = size ? size - 1 : 0;
                        } else if (t == AVRO_NULL) {
                                ev->key = "";
                                ev->key_len = 0;
                        } else {
                                ev->key_len = (size_t)snprintf(ev->keybuf, sizeof(ev->keybuf),
                                                               "%lld", (long long)l);
                                ev->key = ev->keybuf;
                        }
                        break;
                case ROLE_TIME:
                        if (t == AVRO_NULL) {
                                snprintf(errstr, errstr_size, "event time field is null");
                                return -1;
                        }
                        ev->has_time = 1;
                        ev->time_ms = f->micros ? dmp_floor_div(l, 1000) : l;
                        break;
                case ROLE_NUM: {
                        double x = 0.0;
                        if (t == AVRO_NULL)
                                continue;
                        if (t == AVRO_FLOAT) {
                                float fl = 0.0f;
                                avro_value_get_float(&v, &fl);
                                x = fl;
                        } else if (t == AVRO_DOUBLE) {
                                avro_value_get_double(&v, &x);
                        } else {
                                x = (double)l;
                        }
                        ev->num[f->slot] = x;
                        ev->defined |= 1ULL << f->slot;
                        break;
                }
                }
        }
        return 0;
}
