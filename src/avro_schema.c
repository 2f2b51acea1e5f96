#include "avro_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static char *full_name(const char *ns, const char *name) {
        if (strchr(name, '.') || !ns || !*ns)
                return dmp_strdup(name);
        size_t n = strlen(ns) + strlen(name) + 2;
        char *s = dmp_malloc(n);
        snprintf(s, n, "%s.%s", ns, name);
        return s;
}

/* Collects the named types of a JSON schema with their full names, as the
 * specification defines them: a dotted name is full; otherwise the
 * type's "namespace", else the enclosing one, qualifies it. */
static void collect(dmp_schema_t *s, json_t *t, const char *ns, int depth) {
        if (depth > 256)
                return;
        if (json_is_array(t)) { /* a union */
                size_t i;
                json_t *b;
                json_array_foreach(t, i, b) collect(s, b, ns, depth + 1);
                return;
        }
        if (!json_is_object(t))
                return;
        const char *type = json_string_value(json_object_get(t, "type"));
        if (!type)
                return;
        if (!strcmp(type, "array")) {
                collect(s, json_object_get(t, "items"), ns, depth + 1);
                return;
        }
        if (!strcmp(type, "map")) {
                collect(s, json_object_get(t, "values"), ns, depth + 1);
                return;
        }
        if (strcmp(type, "record") && strcmp(type, "error") && strcmp(type, "enum") &&
            strcmp(type, "fixed")) {
                collect(s, json_object_get(t, "type"), ns, depth + 1); /* {"type": {...}} */
                return;
        }
        const char *name = json_string_value(json_object_get(t, "name"));
        if (!name)
                return;
        const char *own = json_string_value(json_object_get(t, "namespace"));
        char *fn = full_name(own ? own : ns, name);
        s->named = dmp_realloc(s->named, (s->nnamed + 1) * sizeof(*s->named));
        s->named[s->nnamed++] = (dmp_named_json_t){fn, t};
        if (strcmp(type, "record") && strcmp(type, "error"))
                return;
        /* the namespace of the types nested in this record */
        char *inner = dmp_strdup(fn);
        char *dot = strrchr(inner, '.');
        if (dot)
                *dot = '\0';
        else
                inner[0] = '\0';
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(t, "fields"), i, f)
                collect(s, json_object_get(f, "type"), inner, depth + 1);
        free(inner);
}

/* Removes the "default" of every field and enum in the JSON of a schema. */
static void drop_defaults(json_t *j, int depth) {
        if (depth > 256)
                return;
        size_t i;
        json_t *v;
        if (json_is_array(j)) {
                json_array_foreach(j, i, v)
                        drop_defaults(v, depth + 1);
        } else if (json_is_object(j)) {
                const char *k;
                json_object_del(j, "default");
                json_object_foreach(j, k, v)
                        drop_defaults(v, depth + 1);
        }
}

dmp_schema_t *dmp_schema_parse(const char *text, char *errstr, size_t errstr_size) {
        dmp_schema_t *s = dmp_calloc(1, sizeof(*s));
        json_error_t jerr;
        s->json = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!s->json) {
                snprintf(errstr, errstr_size, "schema is not valid JSON: line %d: %s", jerr.line,
                         jerr.text);
                goto fail;
        }
        /* Avro C gets the schema without its defaults: it drops them anyway,
         * and its JSON parser rejects the "\u0000" that bytes and decimal
         * defaults often hold. */
        json_t *bare = json_deep_copy(s->json);
        drop_defaults(bare, 0);
        char *bare_text = json_dumps(bare, JSON_ENCODE_ANY | JSON_COMPACT);
        json_decref(bare);
        int bad = !bare_text || avro_schema_from_json_length(bare_text, strlen(bare_text), &s->avro);
        free(bare_text);
        if (bad) {
                /* Avro C quirk: on an error inside a record it has already
                 * stored, then freed, the record schema in *schema. */
                s->avro = NULL;
                snprintf(errstr, errstr_size, "invalid Avro schema: %s", avro_strerror());
                goto fail;
        }
        collect(s, s->json, NULL, 0);
        return s;
fail:
        dmp_schema_destroy(s);
        return NULL;
}

void dmp_schema_destroy(dmp_schema_t *s) {
        if (!s)
                return;
        for (size_t i = 0; i < s->nnamed; i++)
                free(s->named[i].fullname);
        free(s->named);
        if (s->avro)
                avro_schema_decref(s->avro);
        if (s->json)
                json_decref(s->json);
        free(s);
}

json_t *dmp_schema_named_json(const dmp_schema_t *s, avro_schema_t named) {
        const char *name = avro_schema_name(named);
        if (!name)
                return NULL;
        char *fn = full_name(avro_schema_namespace(named), name);
        json_t *found = NULL;
        for (size_t i = 0; i < s->nnamed && !found; i++)
                if (!strcmp(s->named[i].fullname, fn))
                        found = s->named[i].obj;
        free(fn);
        return found;
}

json_t *dmp_schema_field_json(const dmp_schema_t *s, avro_schema_t r, int i) {
        json_t *obj = dmp_schema_named_json(s, r);
        json_t *f = obj ? json_array_get(json_object_get(obj, "fields"), (size_t)i) : NULL;
        const char *want = avro_schema_record_field_name(r, i);
        const char *name = json_string_value(json_object_get(f, "name"));
        return name && want && !strcmp(name, want) ? f : NULL;
}

/* The type object of a field (of the first object branch of a union), or
 * NULL. */
static json_t *field_type_obj(const json_t *field) {
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
        return json_is_object(t) ? t : NULL;
}

const char *dmp_schema_logical_type(const json_t *field) {
        const char *lt = json_string_value(json_object_get(field_type_obj(field), "logicalType"));
        return lt ? lt : "";
}

int dmp_schema_decimal_scale(const json_t *field) {
        json_t *sc = json_object_get(field_type_obj(field), "scale");
        json_int_t v = json_is_integer(sc) ? json_integer_value(sc) : 0;
        return v < 0 ? 0 : v > DMP_DECIMAL_MAX_SCALE ? DMP_DECIMAL_MAX_SCALE : (int)v;
}

int dmp_schema_has_alias(const json_t *obj, const char *name) {
        size_t i;
        json_t *a;
        json_array_foreach(json_object_get(obj, "aliases"), i, a) {
                const char *s = json_string_value(a);
                if (s && !strcmp(s, name))
                        return 1;
        }
        return 0;
}
