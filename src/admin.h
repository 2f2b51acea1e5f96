/* The read-only HTTP endpoint ([http]; libmicrohttpd): GET /metrics
 * (Prometheus text, docs/METRICS.md), /healthz, /readyz, and live state
 * queries /state/windows/<window>/<key>, /state/groups/<group>[/<value>],
 * /state/patterns/<pattern>?last=N (JSON).
 *
 * Threads: libmicrohttpd answers on its own thread. It never touches the
 * engine: metrics are a text the processing thread publishes
 * (dmp_admin_set_metrics) plus the process's RSS and CPU read at request
 * time; a state query is handed to the processing thread, which answers it
 * in dmp_admin_serve() (called from its loop) through the query callback,
 * while the HTTP thread waits (at most 5 s: then 503). */
#ifndef DMP_ADMIN_H
#define DMP_ADMIN_H

#include <stddef.h>

#include "util.h"

typedef struct dmp_admin dmp_admin_t;

/* Answers a state query (processing thread): path is the URL path after
 * "/state/", last the ?last= argument (0 if absent). Appends the JSON body
 * to out and returns the HTTP status. */
typedef int(dmp_admin_query_cb_t)(void *opaque, const char *path, int last, dmp_buf_t *out);

/* Starts the endpoint on address:port. NULL with errstr on failure. */
dmp_admin_t *dmp_admin_start(const char *address, int port, dmp_admin_query_cb_t *query,
                             void *opaque, char *errstr, size_t errstr_size);
/* Stops the endpoint; a pending query is answered 503. NULL is fine. */
void dmp_admin_stop(dmp_admin_t *a);

/* Replaces the metrics text (processing thread). */
void dmp_admin_set_metrics(dmp_admin_t *a, const char *text, size_t len);
/* /readyz answers 200 once ready (partitions assigned and state restored). */
void dmp_admin_set_ready(dmp_admin_t *a, int ready);
/* Answers the pending state query, if any (processing thread). */
void dmp_admin_serve(dmp_admin_t *a);

/* Answers one request without a socket (the endpoint's handler calls it;
 * so do tests and tests/fuzz/fuzz_http.c): method and url (the decoded
 * path, without the query string), last_arg the raw ?last= value (NULL:
 * absent). /state/ queries go to query(opaque, path after "/state/",
 * dmp_admin_last_arg(last_arg), body). a may be NULL (no metrics text, not
 * ready). Appends the body to body, sets *type (a static string) and
 * returns the HTTP status. */
unsigned dmp_admin_route(dmp_admin_t *a, const char *method, const char *url,
                         const char *last_arg, dmp_admin_query_cb_t *query, void *opaque,
                         const char **type, dmp_buf_t *body);

/* The ?last=N argument: 0 if absent or empty, N for a decimal integer in
 * [0, INT_MAX], else -1 (out of range: the query answers 400). */
int dmp_admin_last_arg(const char *arg);

/* Appends s[0..len) to out as a JSON string (quoted, escaped); bytes that
 * are not UTF-8 become U+FFFD, so the document stays valid JSON. */
void dmp_json_string(dmp_buf_t *out, const char *s, size_t len);

#endif
