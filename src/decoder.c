#include "decoder.h"

#include <avro.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        d->json = json_loads(schema_json, 0, &jerr);
        if (!d->json) {
                snprintf(errstr, errstr_size, "schema is not valid JSON: line %d: %s", jerr.line,
                         jerr.text);
                goto fail;
        }
        if (avro_schema_from_json_length(schema_json, strlen(schema_json), &d->schema)) {
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

int dmp_decoder_decode(dmp_decoder_t *d, const void *buf, size_t len, dmp_event_t *ev,
                       char *errstr, size_t errstr_size) {
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
