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

static int is_named(const char *type) {
        return !strcmp(type, "record") || !strcmp(type, "error") || !strcmp(type, "enum") ||
               !strcmp(type, "fixed");
}

static int is_primitive(const char *name) {
        static const char *const p[] = {"null", "boolean", "int", "long", "float",
                                        "double", "bytes", "string"};
        for (size_t i = 0; i < sizeof(p) / sizeof(*p); i++)
                if (!strcmp(name, p[i]))
                        return 1;
        return 0;
}

/* The namespace of a full name ("" for none), in a new string. */
static char *namespace_of(const char *fullname) {
        char *ns = dmp_strdup(fullname);
        char *dot = strrchr(ns, '.');
        *(dot ? dot : ns) = '\0';
        return ns;
}

/* What walk() does at each named type's definition and each use of a type
 * by name; either may return a node that replaces the one seen (a new
 * reference; walk() does not descend into it), or NULL. */
typedef struct walk_ops {
        json_t *(*named)(void *opaque, const char *fullname, json_t *obj, int depth);
        json_t *(*ref)(void *opaque, const char *name, const char *ns, int depth);
        void *opaque;
} walk_ops_t;

/* Walks the types of a JSON schema in the order Avro parses them, with the
 * full names the specification defines: a dotted name is full; otherwise
 * the type's "namespace", else the enclosing one, qualifies it. Returns the
 * replacement of t, or NULL. */
static json_t *walk(const walk_ops_t *ops, json_t *t, const char *ns, int depth) {
        if (depth > 256)
                return NULL;
        if (json_is_string(t)) { /* a type by name */
                const char *name = json_string_value(t);
                return ops->ref && !is_primitive(name) ? ops->ref(ops->opaque, name, ns, depth)
                                                       : NULL;
        }
        size_t i;
        json_t *b, *r;
        if (json_is_array(t)) { /* a union */
                json_array_foreach(t, i, b) {
                        if ((r = walk(ops, b, ns, depth + 1)))
                                json_array_set_new(t, i, r);
                }
                return NULL;
        }
        if (!json_is_object(t))
                return NULL;
        const char *type = json_string_value(json_object_get(t, "type"));
        if (!type || !is_named(type)) { /* {"type": T}, an array, a map */
                const char *key = !type                   ? "type"
                                  : !strcmp(type, "array") ? "items"
                                  : !strcmp(type, "map")   ? "values"
                                                           : "type";
                if ((r = walk(ops, json_object_get(t, key), ns, depth + 1)))
                        json_object_set_new(t, key, r);
                return NULL;
        }
        const char *name = json_string_value(json_object_get(t, "name"));
        if (!name)
                return NULL;
        const char *own = json_string_value(json_object_get(t, "namespace"));
        char *fn = full_name(own ? own : ns, name);
        r = ops->named ? ops->named(ops->opaque, fn, t, depth) : NULL;
        if (!r && strcmp(type, "enum") && strcmp(type, "fixed")) {
                char *inner = namespace_of(fn); /* of the types nested in this record */
                json_t *f;
                json_array_foreach(json_object_get(t, "fields"), i, f) {
                        json_t *fr = walk(ops, json_object_get(f, "type"), inner, depth + 1);
                        if (fr)
                                json_object_set_new(f, "type", fr);
                }
                free(inner);
        }
        free(fn);
        return r;
}

static json_t *collect_named(void *opaque, const char *fullname, json_t *obj, int depth) {
        dmp_schema_t *s = opaque;
        s->named = dmp_realloc(s->named, (s->nnamed + 1) * sizeof(*s->named));
        s->named[s->nnamed++] = (dmp_named_json_t){dmp_strdup(fullname), obj};
        return NULL;
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
        walk(&(walk_ops_t){collect_named, NULL, s}, s->json, NULL, 0);
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

/* ---- schema references: dmp_schema_inline_refs ---- */

typedef struct inliner {
        json_t *avail;   /* full name -> definition: the named types of the references */
        json_t *defined; /* full name -> true: the types defined so far, in parse order */
} inliner_t;

static json_t *avail_named(void *opaque, const char *fullname, json_t *obj, int depth) {
        inliner_t *in = opaque;
        if (!json_object_get(in->avail, fullname))
                json_object_set(in->avail, fullname, obj);
        return NULL;
}

/* A definition seen (the schema's own or in a copy): the first defines the
 * name, a later one of the same name (a type two references share) becomes
 * a use of it. */
static json_t *inline_named(void *opaque, const char *fullname, json_t *obj, int depth) {
        inliner_t *in = opaque;
        if (json_object_get(in->defined, fullname))
                return json_string(fullname);
        json_object_set_new(in->defined, fullname, json_true());
        return NULL;
}

/* A use of a type by name: if the references define it and it is not
 * defined yet, a copy of its definition, itself walked. */
static json_t *inline_ref(void *opaque, const char *name, const char *ns, int depth) {
        inliner_t *in = opaque;
        char *fn = full_name(ns, name);
        const char *key = fn;
        if (!json_object_get(in->defined, fn) && !json_object_get(in->avail, fn) &&
            !strchr(name, '.'))
                key = name; /* Java's fallback: the null namespace */
        json_t *def = json_object_get(in->defined, key) ? NULL : json_object_get(in->avail, key);
        json_t *copy = NULL;
        if (def) {
                copy = json_deep_copy(def);
                char *type_ns = namespace_of(key);
                const char *dot = strrchr(key, '.');
                json_object_set_new(copy, "name", json_string(dot ? dot + 1 : key));
                json_object_set_new(copy, "namespace", json_string(type_ns)); /* "": none */
                free(type_ns);
                /* defines key, and copies in what it uses */
                walk(&(walk_ops_t){inline_named, inline_ref, in}, copy, NULL, depth + 1);
        }
        free(fn);
        return copy;
}

char *dmp_schema_inline_refs(const char *schema, const char *const *refs, size_t nrefs,
                             char *errstr, size_t errstr_size) {
        inliner_t in = {json_object(), json_object()};
        json_t **docs = dmp_calloc(nrefs + 1, sizeof(*docs));
        char *out = NULL;
        json_error_t jerr;
        for (size_t i = 0; i < nrefs; i++) {
                if (!(docs[i] = json_loads(refs[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr))) {
                        snprintf(errstr, errstr_size,
                                 "referenced schema %zu is not valid JSON: line %d: %s", i + 1,
                                 jerr.line, jerr.text);
                        goto done;
                }
                walk(&(walk_ops_t){avail_named, NULL, &in}, docs[i], NULL, 0);
        }
        json_t *root = json_loads(schema, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!root) {
                snprintf(errstr, errstr_size, "schema is not valid JSON: line %d: %s", jerr.line,
                         jerr.text);
                goto done;
        }
        json_t *r = walk(&(walk_ops_t){inline_named, inline_ref, &in}, root, NULL, 0);
        if (r) { /* the schema is a referenced type's name alone */
                json_decref(root);
                root = r;
        }
        out = json_dumps(root, JSON_ENCODE_ANY | JSON_COMPACT);
        json_decref(root);
done:
        for (size_t i = 0; i < nrefs; i++)
                json_decref(docs[i]);
        free(docs);
        json_decref(in.avail);
        json_decref(in.defined);
        return out;
}
