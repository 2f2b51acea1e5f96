#include "schemaref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_schema.h"
#include "util.h"

typedef struct entry {
        char *subject;
        int version;
        char *schema;
        json_t *refs; /* NULL: none */
        uint64_t used;
} entry_t;

struct dmp_schemaref {
        dmp_schemaref_fetch_t *fetch;
        void *opaque;
        entry_t *v;
        size_t n, max;
        uint64_t uses, fetches;
};

/* One resolution: the references being visited (for cycles and messages)
 * and the schema texts collected, each (subject, version) once. */
typedef struct visit {
        dmp_schemaref_t *c;
        struct {
                char *subject;
                int version;
        } stack[DMP_SCHEMAREF_MAX_DEPTH], *done;
        int depth;
        size_t ndone;
        char **texts;
        size_t ntexts;
} visit_t;

dmp_schemaref_t *dmp_schemaref_new(dmp_schemaref_fetch_t *fetch, void *opaque,
                                   size_t max_cached) {
        dmp_schemaref_t *c = dmp_calloc(1, sizeof(*c));
        c->fetch = fetch;
        c->opaque = opaque;
        c->max = max_cached ? max_cached : 1;
        return c;
}

static void entry_free(entry_t *e) {
        free(e->subject);
        free(e->schema);
        json_decref(e->refs);
}

void dmp_schemaref_destroy(dmp_schemaref_t *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n; i++)
                entry_free(&c->v[i]);
        free(c->v);
        free(c);
}

uint64_t dmp_schemaref_fetches(const dmp_schemaref_t *c) {
        return c->fetches;
}

/* "v3", or "latest" for -1, in buf. */
static const char *version_name(int version, char *buf, size_t size) {
        if (version < 0)
                return "latest";
        snprintf(buf, size, "v%d", version);
        return buf;
}

/* The schema text (a copy) and references (a new reference) of subject's
 * version, from the cache or fetched (and cached if the version is
 * fixed). */
static dmp_reg_status_t get(dmp_schemaref_t *c, const char *subject, int version, char **schema,
                            json_t **refs, char *errstr, size_t errstr_size) {
        for (size_t i = 0; i < c->n; i++) {
                entry_t *e = &c->v[i];
                if (e->version == version && !strcmp(e->subject, subject)) {
                        e->used = ++c->uses;
                        *schema = dmp_strdup(e->schema);
                        *refs = json_incref(e->refs);
                        return DMP_REG_OK;
                }
        }
        c->fetches++;
        *refs = NULL;
        dmp_reg_status_t st = c->fetch(c->opaque, subject, version, schema, refs, errstr,
                                       errstr_size);
        if (st != DMP_REG_OK || version < 0)
                return st;
        if (c->n == c->max) { /* drop the least recently used */
                size_t lru = 0;
                for (size_t i = 1; i < c->n; i++)
                        if (c->v[i].used < c->v[lru].used)
                                lru = i;
                entry_free(&c->v[lru]);
                c->v[lru] = c->v[--c->n];
        }
        c->v = dmp_realloc(c->v, (c->n + 1) * sizeof(*c->v));
        c->v[c->n++] = (entry_t){dmp_strdup(subject), version, dmp_strdup(*schema),
                                 json_incref(*refs), ++c->uses};
        return DMP_REG_OK;
}

/* "a-value v1 -> b-value v2 -> a-value v1": the cycle closed by (subject,
 * version), from its first occurrence on the stack. */
static void cycle_message(const visit_t *w, int from, const char *subject, int version,
                          char *errstr, size_t errstr_size) {
        size_t len = (size_t)snprintf(errstr, errstr_size, "schema references form a cycle: ");
        char vb[16];
        for (int i = from; i < w->depth && len < errstr_size; i++)
                len += (size_t)snprintf(errstr + len, errstr_size - len, "%s %s -> ",
                                        w->stack[i].subject,
                                        version_name(w->stack[i].version, vb, sizeof(vb)));
        if (len < errstr_size)
                snprintf(errstr + len, errstr_size - len, "%s %s", subject,
                         version_name(version, vb, sizeof(vb)));
}

static dmp_reg_status_t visit(visit_t *w, const json_t *refs, char *errstr, size_t errstr_size) {
        size_t i;
        const json_t *ref;
        char vb[16], e[512];
        json_array_foreach(refs, i, ref) {
                const char *subject = json_string_value(json_object_get(ref, "subject"));
                const char *name = json_string_value(json_object_get(ref, "name"));
                const json_t *jv = json_object_get(ref, "version");
                int version = json_is_integer(jv) && json_integer_value(jv) > 0 &&
                                              json_integer_value(jv) <= INT32_MAX
                                      ? (int)json_integer_value(jv)
                                      : -1;
                if (!subject) {
                        snprintf(errstr, errstr_size, "schema reference %s has no subject",
                                 name ? name : "(unnamed)");
                        return DMP_REG_NOT_FOUND;
                }
                int seen = 0;
                for (size_t k = 0; k < w->ndone && !seen; k++)
                        seen = w->done[k].version == version && !strcmp(w->done[k].subject, subject);
                if (seen) /* a type two references share */
                        continue;
                for (int k = 0; k < w->depth; k++) {
                        if (w->stack[k].version == version && !strcmp(w->stack[k].subject, subject)) {
                                cycle_message(w, k, subject, version, errstr, errstr_size);
                                return DMP_REG_NOT_FOUND;
                        }
                }
                if (w->depth == DMP_SCHEMAREF_MAX_DEPTH) {
                        snprintf(errstr, errstr_size, "schema references nest deeper than %d",
                                 DMP_SCHEMAREF_MAX_DEPTH);
                        return DMP_REG_NOT_FOUND;
                }
                char *schema = NULL;
                json_t *sub = NULL;
                dmp_reg_status_t st = get(w->c, subject, version, &schema, &sub, e, sizeof(e));
                if (st != DMP_REG_OK) {
                        snprintf(errstr, errstr_size, "schema reference %s (subject %s, %s): %s",
                                 name ? name : "(unnamed)", subject,
                                 version_name(version, vb, sizeof(vb)), e);
                        return st;
                }
                w->stack[w->depth].subject = dmp_strdup(subject);
                w->stack[w->depth++].version = version;
                st = visit(w, sub, errstr, errstr_size);
                w->depth--;
                json_decref(sub);
                if (st != DMP_REG_OK) {
                        free(w->stack[w->depth].subject);
                        free(schema);
                        return st;
                }
                w->done = dmp_realloc(w->done, (w->ndone + 1) * sizeof(*w->done));
                w->done[w->ndone].subject = w->stack[w->depth].subject; /* moved */
                w->done[w->ndone++].version = version;
                w->texts = dmp_realloc(w->texts, (w->ntexts + 1) * sizeof(*w->texts));
                w->texts[w->ntexts++] = schema;
        }
        return DMP_REG_OK;
}

dmp_reg_status_t dmp_schemaref_resolve(dmp_schemaref_t *c, const char *schema,
                                       const json_t *refs, char **out, char *errstr,
                                       size_t errstr_size) {
        *out = NULL;
        if (!json_array_size(refs)) {
                *out = dmp_strdup(schema);
                return DMP_REG_OK;
        }
        visit_t w = {.c = c};
        dmp_reg_status_t st = visit(&w, refs, errstr, errstr_size);
        if (st == DMP_REG_OK) {
                char e[256];
                *out = dmp_schema_inline_refs(schema, (const char *const *)w.texts, w.ntexts, e,
                                              sizeof(e));
                if (!*out) {
                        snprintf(errstr, errstr_size, "with its references: %s", e);
                        st = DMP_REG_NOT_FOUND;
                }
        }
        for (size_t i = 0; i < w.ndone; i++)
                free(w.done[i].subject);
        free(w.done);
        for (size_t i = 0; i < w.ntexts; i++)
                free(w.texts[i]);
        free(w.texts);
        return st;
}
