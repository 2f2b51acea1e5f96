#include "registry.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "dmpflow.h"
#include "log.h"
#include "schemaref.h"
#include "util.h"

/* (subject, version) answers kept for schema references */
#define REFERENCE_CACHE_SIZE 256

struct dmp_registry {
        dmp_registry_opts_t o;
        char *url, *user, *password, *ca;
        CURL *curl;
        char *last_schema; /* the last schema fetched (see dmp_registry_schema) */
        dmp_schemaref_t *refs; /* referenced schemas, created on first use */
};

typedef struct body {
        char *p;
        size_t n;
} body_t;

void dmp_registry_opts_init(dmp_registry_opts_t *o) {
        memset(o, 0, sizeof(*o));
        o->tls_verify = 1;
        o->timeout_ms = 5000;
        o->retries = 3;
        o->backoff_ms = 100;
}

void dmp_registry_opts_from_conf(dmp_registry_opts_t *o, const struct dmp_conf *conf,
                                 char *buf, size_t buf_size) {
        dmp_registry_opts_init(o);
        const char *auth = conf->input.registry_auth, *colon = strchr(auth, ':');
        if (*auth) {
                snprintf(buf, buf_size, "%.*s",
                         (int)(colon ? (size_t)(colon - auth) : strlen(auth)), auth);
                o->user = buf;
                o->password = colon ? colon + 1 : "";
        }
        o->url = conf->input.registry_url;
        o->ca_location = conf->input.registry_ca;
        o->timeout_ms = conf->input.registry_timeout_ms;
}

int dmp_registry_provider(void *r, int32_t id, const char **json, char *errstr,
                          size_t errstr_size) {
        switch (dmp_registry_schema(r, id, json, errstr, errstr_size)) {
        case DMP_REG_OK:
                return 0;
        case DMP_REG_NOT_FOUND: /* the record's fault: a dead letter */
                return 1;
        default: /* not the record's: it waits (bad credentials, TLS, HTTP 5xx...) */
                return -1;
        }
}

dmp_registry_t *dmp_registry_new(const dmp_registry_opts_t *o, char *errstr,
                                 size_t errstr_size) {
        if (!o->url || strncmp(o->url, "http", 4)) {
                snprintf(errstr, errstr_size, "registry url \"%s\" is not http(s)://...",
                         o->url ? o->url : "");
                return NULL;
        }
        static int global_init;
        if (!global_init++) /* the processing thread, before any other curl use */
                curl_global_init(CURL_GLOBAL_DEFAULT);
        dmp_registry_t *r = dmp_calloc(1, sizeof(*r));
        r->o = *o;
        r->url = dmp_strdup(o->url);
        size_t l = strlen(r->url);
        while (l && r->url[l - 1] == '/')
                r->url[--l] = '\0';
        r->user = o->user && *o->user ? dmp_strdup(o->user) : NULL;
        r->password = dmp_strdup(o->password ? o->password : "");
        r->ca = o->ca_location && *o->ca_location ? dmp_strdup(o->ca_location) : NULL;
        if (!(r->curl = curl_easy_init())) {
                snprintf(errstr, errstr_size, "curl_easy_init failed");
                dmp_registry_destroy(r);
                return NULL;
        }
        return r;
}

void dmp_registry_destroy(dmp_registry_t *r) {
        if (!r)
                return;
        free(r->last_schema);
        dmp_schemaref_destroy(r->refs);
        if (r->curl)
                curl_easy_cleanup(r->curl);
        free(r->url);
        free(r->user);
        free(r->password);
        free(r->ca);
        free(r);
}

static size_t on_data(char *p, size_t size, size_t n, void *opaque) {
        body_t *b = opaque;
        size_t add = size * n;
        b->p = dmp_realloc(b->p, b->n + add + 1);
        memcpy(b->p + b->n, p, add);
        b->n += add;
        b->p[b->n] = '\0';
        return add;
}

static void sleep_ms(long ms) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

/* The registry's own error message of a body (Confluent's "message", or
 * the "detail" of a JAX-RS problem answer, as Apicurio gives for an
 * unknown path), or the body. *j holds it (the caller decrefs). */
static const char *answer_message(const char *body, json_t **j) {
        *j = body ? json_loads(body, 0, NULL) : NULL;
        const char *m = json_string_value(json_object_get(*j, "message"));
        if (!m)
                m = json_string_value(json_object_get(*j, "detail"));
        return m ? m : body ? body : "";
}

/* One request with retries. Returns the HTTP status (0: no answer after
 * the retries, with errstr set) with the body in *out (caller frees). */
static long request(dmp_registry_t *r, const char *path, const char *post, body_t *out,
                    char *errstr, size_t errstr_size) {
        char url[2048];
        snprintf(url, sizeof(url), "%s%s", r->url, path);
        const char *method = post ? "POST" : "GET";
        long backoff = r->o.backoff_ms, status = 0;
        for (int attempt = 0; attempt <= r->o.retries; attempt++) {
                if (attempt) {
                        sleep_ms(backoff);
                        backoff *= 2;
                }
                CURL *c = r->curl;
                curl_easy_reset(c);
                struct curl_slist *h = NULL;
                h = curl_slist_append(h, "Accept: application/vnd.schemaregistry.v1+json, "
                                         "application/json");
                if (post)
                        h = curl_slist_append(h, "Content-Type: "
                                                 "application/vnd.schemaregistry.v1+json");
                free(out->p);
                *out = (body_t){0};
                curl_easy_setopt(c, CURLOPT_URL, url);
                curl_easy_setopt(c, CURLOPT_USERAGENT, "dmpflow/" DMPFLOW_VERSION);
                curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
                curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
                curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
                curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->o.timeout_ms);
                curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
                curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, r->o.tls_verify ? 1L : 0L);
                curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, r->o.tls_verify ? 2L : 0L);
                if (r->ca)
                        curl_easy_setopt(c, CURLOPT_CAINFO, r->ca);
                if (r->user) {
                        curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
                        curl_easy_setopt(c, CURLOPT_USERNAME, r->user);
                        curl_easy_setopt(c, CURLOPT_PASSWORD, r->password);
                }
                if (post)
                        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
                CURLcode rc = curl_easy_perform(c);
                curl_slist_free_all(h);
                status = 0;
                if (rc == CURLE_OK)
                        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
                else /* the path, not the URL: it may hold credentials */
                        snprintf(errstr, errstr_size, "%s %s: %s (%d attempts)", method, path,
                                 curl_easy_strerror(rc), attempt + 1);
                if (status && status < 500 && status != 429)
                        return status; /* an answer */
                if (status) {
                        json_t *j;
                        snprintf(errstr, errstr_size, "%s %s: HTTP %ld %s (%d attempts)", method,
                                 path, status, answer_message(out->p, &j), attempt + 1);
                        json_decref(j);
                }
                dmp_debug("registry: %s", errstr);
        }
        return 0;
}

/* "the registry answered HTTP 404: <its message>" */
static void answer_error(const char *body, long status, char *errstr, size_t errstr_size) {
        json_t *j;
        snprintf(errstr, errstr_size, "the registry answered HTTP %ld: %s", status,
                 answer_message(body, &j));
        json_decref(j);
}

dmp_reg_status_t dmp_registry_schema_answer(long status, const char *body, const char *what,
                                            char **schema, json_t **refs, char *errstr,
                                            size_t errstr_size) {
        *schema = NULL;
        *refs = NULL;
        if (!status)
                return DMP_REG_UNAVAILABLE;
        if (status != 200) {
                answer_error(body, status, errstr, errstr_size);
                return status == 404 ? DMP_REG_NOT_FOUND : DMP_REG_ERROR;
        }
        dmp_reg_status_t st = DMP_REG_ERROR;
        json_t *j = json_loads(body ? body : "", 0, NULL);
        const char *s = json_string_value(json_object_get(j, "schema"));
        const char *type = json_string_value(json_object_get(j, "schemaType"));
        if (!s) {
                snprintf(errstr, errstr_size, "%s: no \"schema\" in the answer", what);
        } else if (type && strcmp(type, "AVRO")) {
                snprintf(errstr, errstr_size, "it is a %s schema, not Avro", type);
                st = DMP_REG_NOT_FOUND;
        } else {
                *schema = dmp_strdup(s);
                json_t *rf = json_object_get(j, "references");
                *refs = json_array_size(rf) ? json_incref(rf) : NULL;
                st = DMP_REG_OK;
        }
        json_decref(j);
        return st;
}

/* GET path, whose answer is a schema (dmp_registry_schema_answer). */
static dmp_reg_status_t get_schema(dmp_registry_t *r, const char *path, char **schema,
                                   json_t **refs, char *errstr, size_t errstr_size) {
        body_t b = {0};
        char what[1100];
        long status = request(r, path, NULL, &b, errstr, errstr_size);
        snprintf(what, sizeof(what), "GET %s", path);
        dmp_reg_status_t st = dmp_registry_schema_answer(status, b.p, what, schema, refs,
                                                         errstr, errstr_size);
        free(b.p);
        return st;
}

/* dmp_schemaref_fetch_t over the registry: GET /subjects/S/versions/V. */
static dmp_reg_status_t fetch_version(void *opaque, const char *subject, int version,
                                      char **schema, json_t **refs, char *errstr,
                                      size_t errstr_size) {
        dmp_registry_t *r = opaque;
        char path[1024], v[16];
        char *esc = curl_easy_escape(r->curl, subject, 0);
        snprintf(v, sizeof(v), "%d", version);
        snprintf(path, sizeof(path), "/subjects/%s/versions/%s", esc ? esc : subject,
                 version < 0 ? "latest" : v);
        curl_free(esc);
        return get_schema(r, path, schema, refs, errstr, errstr_size);
}

dmp_reg_status_t dmp_registry_schema(dmp_registry_t *r, int32_t id, const char **schema,
                                     char *errstr, size_t errstr_size) {
        char path[64];
        snprintf(path, sizeof(path), "/schemas/ids/%d", (int)id);
        char *text = NULL;
        json_t *refs = NULL;
        dmp_reg_status_t st = get_schema(r, path, &text, &refs, errstr, errstr_size);
        if (st == DMP_REG_OK && refs) { /* Confluent schema references */
                if (!r->refs)
                        r->refs = dmp_schemaref_new(fetch_version, r, REFERENCE_CACHE_SIZE);
                char *whole = NULL;
                st = dmp_schemaref_resolve(r->refs, text, refs, &whole, errstr, errstr_size);
                free(text);
                text = whole;
                if (st == DMP_REG_OK)
                        dmp_debug("schema id %d: %zu reference(s) resolved, %" PRIu64
                                  " referenced schemas fetched so far",
                                  (int)id, json_array_size(refs), dmp_schemaref_fetches(r->refs));
        }
        json_decref(refs);
        if (st == DMP_REG_OK) {
                free(r->last_schema);
                *schema = r->last_schema = text;
        } else {
                free(text);
        }
        return st;
}

dmp_reg_status_t dmp_registry_register_answer(long status, const char *body,
                                              const char *subject, int32_t *id, char *errstr,
                                              size_t errstr_size) {
        if (!status)
                return DMP_REG_UNAVAILABLE;
        if (status != 200) {
                answer_error(body, status, errstr, errstr_size);
                size_t l = strlen(errstr);
                if (status == 404 && l < errstr_size) /* registration never is, at the right URL */
                        snprintf(errstr + l, errstr_size - l,
                                 " (is the registry URL the base of its Confluent-compatible "
                                 "API? Apicurio Registry's ends in /apis/ccompat/v7)");
                return DMP_REG_ERROR;
        }
        dmp_reg_status_t st = DMP_REG_ERROR;
        json_t *j = json_loads(body ? body : "", 0, NULL);
        json_t *v = json_object_get(j, "id");
        /* ids are non-negative 32-bit integers (the wire format's 4 bytes) */
        if (json_is_integer(v) && json_integer_value(v) >= 0 &&
            json_integer_value(v) <= INT32_MAX) {
                *id = (int32_t)json_integer_value(v);
                st = DMP_REG_OK;
        } else {
                snprintf(errstr, errstr_size, "registering %s: no valid id in the answer",
                         subject);
        }
        json_decref(j);
        return st;
}

dmp_reg_status_t dmp_registry_register(dmp_registry_t *r, const char *subject,
                                       const char *schema, int32_t *id, char *errstr,
                                       size_t errstr_size) {
        char path[1024];
        char *esc = curl_easy_escape(r->curl, subject, 0);
        snprintf(path, sizeof(path), "/subjects/%s/versions", esc ? esc : subject);
        curl_free(esc);
        json_t *req = json_pack("{s:s}", "schema", schema);
        char *post = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        body_t b = {0};
        long status = request(r, path, post, &b, errstr, errstr_size);
        free(post);
        dmp_reg_status_t st = dmp_registry_register_answer(status, b.p, subject, id, errstr,
                                                           errstr_size);
        free(b.p);
        return st;
}
