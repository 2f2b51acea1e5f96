/* The read-only HTTP endpoint ([http]; libmicrohttpd): GET /metrics
 * (Prometheus text, docs/METRICS.md), /healthz, /readyz, live state
 * queries /state/windows/<window>/<key>, /state/groups/<group>[/<value>],
 * /state/patterns/<pattern>?last=N (JSON), the live page / (with
 * /dmpflow.js and /dmpflow.css, built into the binary: src/web/) and the
 * JSON documents it and scripts read, /api/status and /api/results
 * (live.h). Every error is JSON with a 4xx or 5xx status (but /readyz's
 * 503, a line of text for probes); an unknown or malformed query parameter
 * is a 400.
 *
 * Optional basic auth (auth_user_info "user:password"): every route but
 * /healthz and /readyz then needs it (401 otherwise).
 *
 * Threads: libmicrohttpd answers on one internal thread that never waits
 * for anything: /metrics and /api/... are documents the processing thread
 * publishes (dmp_admin_publish) plus the process's RSS and CPU read at
 * request time, so /healthz, /readyz and /metrics answer at once whatever
 * else is asked. A state query is queued (at most DMP_ADMIN_MAX_PENDING;
 * beyond that 503 at once) and its connection suspended; the processing
 * thread answers queued queries in dmp_admin_serve() (called from its
 * loop) for at most about a millisecond per call, and resumes their
 * connections. A query not taken within 5 s (query_wait_ms; the processing
 * thread is busy, e.g. in a long commit) is answered 503 by a timer thread. */
#ifndef DMP_ADMIN_H
#define DMP_ADMIN_H

#include <stddef.h>

#include "util.h"

#define DMP_ADMIN_MAX_PENDING 64 /* state queries waiting for the processing thread */

typedef struct dmp_admin dmp_admin_t;

/* Answers a state query (processing thread): path is the URL path after
 * "/state/", last the ?last= argument (0 if absent, else >= 1). Appends
 * the JSON body to out and returns the HTTP status. */
typedef int(dmp_admin_query_cb_t)(void *opaque, const char *path, int last, dmp_buf_t *out);

typedef struct dmp_admin_opts {
        const char *address;        /* IPv4 */
        int port;                   /* 0: any free port (dmp_admin_port tells) */
        const char *auth_user_info; /* "user:password"; NULL or "": no auth */
        dmp_admin_query_cb_t *query;
        /* Called (HTTP thread) when a query is queued, so that a processing
         * thread waiting for input comes round to dmp_admin_serve(); NULL:
         * none. */
        void (*wake)(void *opaque);
        void *opaque;
        int query_wait_ms; /* a query not taken by then is answered 503; 0: 5000 */
} dmp_admin_opts_t;

/* The documents the processing thread publishes. */
typedef enum dmp_admin_doc {
        DMP_ADMIN_METRICS, /* /metrics (the process's RSS and CPU are added) */
        DMP_ADMIN_STATUS,  /* /api/status */
        DMP_ADMIN_RESULTS, /* /api/results */
        DMP_ADMIN__DOCS
} dmp_admin_doc_t;

/* Starts the endpoint. NULL with errstr on failure. */
dmp_admin_t *dmp_admin_start(const dmp_admin_opts_t *o, char *errstr, size_t errstr_size);
/* Stops the endpoint; queued queries are answered 503. NULL is fine.
 * Called by the thread that calls dmp_admin_serve (never during it). */
void dmp_admin_stop(dmp_admin_t *a);

/* The port it listens on. */
int dmp_admin_port(const dmp_admin_t *a);

/* Replaces a document (processing thread; any thread is safe). */
void dmp_admin_publish(dmp_admin_t *a, dmp_admin_doc_t doc, const char *text, size_t len);
/* /readyz answers 200 once ready (partitions assigned and state restored). */
void dmp_admin_set_ready(dmp_admin_t *a, int ready);
/* What /readyz's 503 says after "not ready: " (e.g. the broker does not
 * answer, and why); NULL: "no partitions assigned and restored yet". */
void dmp_admin_set_not_ready_why(dmp_admin_t *a, const char *why);
/* Answers queued state queries for about a millisecond at most (at least
 * one if any waits). Processing thread. */
void dmp_admin_serve(dmp_admin_t *a);

/* Serves one more connection: fd, a connected stream socket (the endpoint
 * owns it from now on, and closes it). tests/fuzz/fuzz_http.c writes raw
 * requests to the other end of a socketpair, in process, without a
 * network socket. 0, or -1 if libmicrohttpd refused it. */
int dmp_admin_add_connection(dmp_admin_t *a, int fd);

/* Counters of the endpoint (any thread). */
typedef struct dmp_admin_stats {
        unsigned long long queries;  /* state queries answered by the processing thread */
        unsigned long long rejected; /* answered 503 at once: too many waiting */
        unsigned long long expired;  /* answered 503 after waiting 5 s */
} dmp_admin_stats_t;
void dmp_admin_stats(dmp_admin_t *a, dmp_admin_stats_t *out);

#endif
