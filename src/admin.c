#include "admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "log.h"
#include "web.h"

#define QUERY_WAIT_MS 5000 /* default */
#define SERVE_BUDGET_NS 1000000 /* the processing thread answers queries this long per call */
#define REALM "dmpflow"

typedef enum { Q_QUEUED, Q_TAKEN, Q_DONE } query_state_t;

/* A state query: lives from its request until its connection completes
 * (MHD_OPTION_NOTIFY_COMPLETED frees it). */
typedef struct query {
        struct query *next; /* in the queue, while Q_QUEUED */
        struct MHD_Connection *conn;
        char *path;
        int last;
        query_state_t state; /* guarded by the admin's lock */
        int status;          /* 0 when DONE: not answered (503) */
        const char *why;     /* ... and why */
        int64_t deadline_ms; /* monotonic */
        dmp_buf_t body;
} query_t;

struct dmp_admin {
        struct MHD_Daemon *mhd;
        int port;
        dmp_admin_query_cb_t *query_cb;
        void (*wake)(void *opaque);
        void *opaque;
        int query_wait_ms;
        char *auth;  /* "Basic <base64(user:password)>", or NULL */
        pthread_mutex_t lock;
        pthread_cond_t cond; /* the timer thread waits on it (CLOCK_MONOTONIC) */
        pthread_t timer;
        int timer_started;
        char *docs[DMP_ADMIN__DOCS]; /* guarded by lock */
        size_t doc_len[DMP_ADMIN__DOCS];
        atomic_int ready;
        char *not_ready; /* why, for /readyz; NULL: the default; guarded by lock */
        query_t *head, *tail; /* queued queries, oldest first; guarded by lock */
        atomic_int npending;
        int stopping; /* guarded by lock */
        _Atomic unsigned long long answered, rejected, expired;
};

/* ---- responses ---- */

static enum MHD_Result respond_mode(struct MHD_Connection *c, unsigned status, const char *type,
                                    const char *body, size_t len, enum MHD_ResponseMemoryMode m) {
        struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, m);
        if (!r)
                return MHD_NO;
        MHD_add_response_header(r, "Content-Type", type);
        MHD_add_response_header(r, "Cache-Control", "no-store");
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
        enum MHD_Result ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        return ret;
}

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *type,
                               const char *body, size_t len) {
        return respond_mode(c, status, type, body, len, MHD_RESPMEM_MUST_COPY);
}

static void error_body(dmp_buf_t *b, const char *msg) {
        dmp_buf_append(b, "{\"error\": ", 10);
        dmp_json_string(b, msg, strlen(msg));
        dmp_buf_append(b, "}\n", 2);
}

static enum MHD_Result respond_error(struct MHD_Connection *c, unsigned status,
                                     const char *msg) {
        dmp_buf_t b = {0};
        error_body(&b, msg);
        enum MHD_Result r = respond(c, status, "application/json", b.p, b.len);
        dmp_buf_free(&b);
        return r;
}

/* The page's files: static, never copied. The page may load only what
 * the binary serves (no CDN, no inline code) and is never framed. */
static enum MHD_Result respond_asset(struct MHD_Connection *c, const dmp_web_asset_t *f) {
        struct MHD_Response *r = MHD_create_response_from_buffer(f->len, (void *)f->data,
                                                                 MHD_RESPMEM_PERSISTENT);
        if (!r)
                return MHD_NO;
        MHD_add_response_header(r, "Content-Type", f->type);
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'none'; script-src 'self'; style-src 'self'; "
                                "connect-src 'self'; img-src 'self'; base-uri 'none'; "
                                "form-action 'none'; frame-ancestors 'none'");
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
}

static enum MHD_Result respond_auth(struct MHD_Connection *c) {
        static const char body[] = "{\"error\": \"authentication required\"}\n";
        struct MHD_Response *r = MHD_create_response_from_buffer(
                sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
        if (!r)
                return MHD_NO;
        MHD_add_response_header(r, "Content-Type", "application/json");
        enum MHD_Result ret = MHD_queue_basic_auth_fail_response(c, REALM, r);
        MHD_destroy_response(r);
        return ret;
}

/* The process's metrics, read now: resident memory and CPU time. */
static void process_metrics(dmp_buf_t *b) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
        dmp_buf_printf(b, "# HELP process_resident_memory_bytes Resident memory size.\n"
                          "# TYPE process_resident_memory_bytes gauge\n"
                          "process_resident_memory_bytes %ld\n"
                          "# HELP process_cpu_seconds_total User and system CPU time.\n"
                          "# TYPE process_cpu_seconds_total counter\n"
                          "process_cpu_seconds_total %.3f\n",
                       dmp_rss_bytes(), cpu);
}

static enum MHD_Result respond_doc(dmp_admin_t *a, struct MHD_Connection *c,
                                   dmp_admin_doc_t doc) {
        dmp_buf_t b = {0};
        pthread_mutex_lock(&a->lock);
        if (a->docs[doc])
                dmp_buf_append(&b, a->docs[doc], a->doc_len[doc]);
        pthread_mutex_unlock(&a->lock);
        enum MHD_Result r;
        if (doc == DMP_ADMIN_METRICS) {
                process_metrics(&b);
                r = respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4", b.p, b.len);
        } else if (!b.p) {
                r = respond_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not published yet: try again "
                                  "in a second");
        } else {
                r = respond(c, MHD_HTTP_OK, "application/json", b.p, b.len);
        }
        dmp_buf_free(&b);
        return r;
}

/* ---- query parameters ---- */

typedef struct args_ctx {
        const char *const *allowed;
        char bad[160];
} args_ctx_t;

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value) {
        args_ctx_t *ac = cls;
        (void)kind;
        (void)value;
        for (const char *const *p = ac->allowed; *p; p++)
                if (!strcmp(key, *p))
                        return MHD_YES;
        snprintf(ac->bad, sizeof(ac->bad), "unknown query parameter \"%.100s\"", key);
        return MHD_NO;
}

/* 0 if every query parameter of c is one of allowed (NULL-terminated),
 * else -1 with the message in bad. */
static int check_args(struct MHD_Connection *c, const char *const *allowed, char *bad,
                      size_t bad_size) {
        args_ctx_t ac = {allowed, ""};
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, check_arg, &ac);
        if (!ac.bad[0])
                return 0;
        snprintf(bad, bad_size, "%s", ac.bad);
        return -1;
}

/* ?last=N: 0 if absent, N >= 1, or -1 if malformed. */
static int parse_last(struct MHD_Connection *c) {
        const char *s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "last");
        if (!s)
                return 0;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || *end || errno || v < 1 || v > 1000000)
                return -1;
        return (int)v;
}

/* ---- state queries ---- */

/* Queues q and suspends its connection (under the lock, so that the
 * processing thread resumes it only after it is suspended). Returns 0, or
 * -1 (stopping, or too many waiting: answer 503 now). */
static int enqueue(dmp_admin_t *a, query_t *q) {
        pthread_mutex_lock(&a->lock);
        if (a->stopping || atomic_load(&a->npending) >= DMP_ADMIN_MAX_PENDING) {
                pthread_mutex_unlock(&a->lock);
                atomic_fetch_add(&a->rejected, 1);
                return -1;
        }
        q->state = Q_QUEUED;
        q->deadline_ms = dmp_mono_ms() + a->query_wait_ms;
        if (a->tail)
                a->tail->next = q;
        else
                a->head = q;
        a->tail = q;
        atomic_fetch_add(&a->npending, 1);
        MHD_suspend_connection(q->conn);
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
        return 0;
}

/* Takes the oldest queued query (lock held). */
static query_t *dequeue_locked(dmp_admin_t *a) {
        query_t *q = a->head;
        if (!q)
                return NULL;
        a->head = q->next;
        if (!a->head)
                a->tail = NULL;
        q->next = NULL;
        atomic_fetch_sub(&a->npending, 1);
        return q;
}

/* Marks q answered (or not: why) and resumes its connection (lock held). */
static void finish_locked(query_t *q, const char *why) {
        q->state = Q_DONE;
        q->why = why;
        MHD_resume_connection(q->conn);
}

static enum MHD_Result answer_query(struct MHD_Connection *c, query_t *q) {
        if (q->why)
                return respond_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, q->why);
        return respond(c, (unsigned)q->status, "application/json", q->body.p ? q->body.p : "",
                       q->body.len);
}

static enum MHD_Result state_request(dmp_admin_t *a, struct MHD_Connection *c, const char *url,
                                     void **con_cls) {
        static const char *const allowed[] = {"last", NULL};
        char bad[200];
        if (check_args(c, allowed, bad, sizeof(bad)))
                return respond_error(c, MHD_HTTP_BAD_REQUEST, bad);
        int last = parse_last(c);
        if (last < 0)
                return respond_error(c, MHD_HTTP_BAD_REQUEST,
                                     "last must be a positive integer");
        query_t *q = dmp_calloc(1, sizeof(*q));
        q->conn = c;
        q->path = dmp_strdup(url + 7);
        q->last = last;
        if (enqueue(a, q)) {
                free(q->path);
                free(q);
                return respond_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                                     "too many state queries waiting: try again");
        }
        *con_cls = q; /* the handler is called again once it is answered */
        if (a->wake)
                a->wake(a->opaque);
        return MHD_YES;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
        (void)cls;
        (void)c;
        (void)toe;
        query_t *q = *con_cls;
        if (!q)
                return;
        /* a suspended connection completes only after it was resumed: q
         * is DONE, in no queue and no thread's hands */
        dmp_buf_free(&q->body);
        free(q->path);
        free(q);
        *con_cls = NULL;
}

/* Answers 503 to queued queries past their deadline. */
static void *timer_main(void *arg) {
        dmp_admin_t *a = arg;
        pthread_mutex_lock(&a->lock);
        while (!a->stopping) {
                int64_t now = dmp_mono_ms();
                while (a->head && a->head->deadline_ms <= now) { /* oldest first */
                        query_t *q = dequeue_locked(a);
                        atomic_fetch_add(&a->expired, 1);
                        finish_locked(q, "the processing thread did not answer in time");
                }
                if (!a->head) {
                        pthread_cond_wait(&a->cond, &a->lock);
                        continue;
                }
                int64_t at = a->head->deadline_ms;
                struct timespec ts = {(time_t)(at / 1000), (long)(at % 1000) * 1000000};
                pthread_cond_timedwait(&a->cond, &a->lock, &ts);
        }
        pthread_mutex_unlock(&a->lock);
        return NULL;
}

/* ---- routing ---- */

static int authorized(const dmp_admin_t *a, struct MHD_Connection *c) {
        if (!a->auth)
                return 1;
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!h)
                return 0;
        size_t n = strlen(a->auth);
        if (strlen(h) != n)
                return 0;
        unsigned char diff = 0; /* in constant time */
        for (size_t i = 0; i < n; i++)
                diff |= (unsigned char)(h[i] ^ a->auth[i]);
        return diff == 0;
}

/* 200 "ready", or 503 "not ready: <why>" (the daemon says why). */
static enum MHD_Result readyz(dmp_admin_t *a, struct MHD_Connection *c) {
        if (atomic_load(&a->ready))
                return respond(c, MHD_HTTP_OK, "text/plain", "ready\n", 6);
        dmp_buf_t b = {0};
        pthread_mutex_lock(&a->lock);
        dmp_buf_printf(&b, "not ready: %s\n",
                       a->not_ready ? a->not_ready : "no partitions assigned and restored yet");
        pthread_mutex_unlock(&a->lock);
        enum MHD_Result r = respond(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", b.p, b.len);
        dmp_buf_free(&b);
        return r;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
        dmp_admin_t *a = cls;
        (void)version;
        (void)upload_data;
        (void)upload_data_size;
        if (*con_cls) /* a state query, resumed */
                return answer_query(c, *con_cls);
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
                return respond_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "read-only: GET only");
        if (!strcmp(url, "/healthz"))
                return respond(c, MHD_HTTP_OK, "text/plain", "ok\n", 3);
        if (!strcmp(url, "/readyz"))
                return readyz(a, c);
        if (!authorized(a, c))
                return respond_auth(c);
        if (!strcmp(url, "/metrics"))
                return respond_doc(a, c, DMP_ADMIN_METRICS);
        if (!strncmp(url, "/state/", 7))
                return state_request(a, c, url, con_cls);
        static const char *const none[] = {NULL};
        char bad[200];
        if (check_args(c, none, bad, sizeof(bad)))
                return respond_error(c, MHD_HTTP_BAD_REQUEST, bad);
        if (!strcmp(url, "/api/status"))
                return respond_doc(a, c, DMP_ADMIN_STATUS);
        if (!strcmp(url, "/api/results"))
                return respond_doc(a, c, DMP_ADMIN_RESULTS);
        dmp_web_asset_t f;
        if (!dmp_web_asset(url, &f))
                return respond_asset(c, &f);
        return respond_error(c, MHD_HTTP_NOT_FOUND,
                             "no such resource: /, /api/status, /api/results, /metrics, "
                             "/healthz, /readyz, /state/windows/<window>/<key>, "
                             "/state/groups/<group>[/<value>], /state/patterns/<pattern>?last=N");
}

/* ---- lifecycle ---- */

static char *basic_auth_header(const char *user_info) {
        dmp_buf_t b = {0};
        dmp_buf_append(&b, "Basic ", 6);
        dmp_base64_append(&b, user_info, strlen(user_info));
        return b.p;
}

dmp_admin_t *dmp_admin_start(const dmp_admin_opts_t *o, char *errstr, size_t errstr_size) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
        if (inet_pton(AF_INET, o->address, &sa.sin_addr) != 1) {
                snprintf(errstr, errstr_size, "[http] address \"%s\" is not an IPv4 address",
                         o->address);
                return NULL;
        }
        if (o->auth_user_info && *o->auth_user_info && !strchr(o->auth_user_info, ':')) {
                snprintf(errstr, errstr_size, "[http] auth.user.info must be user:password");
                return NULL;
        }
        dmp_admin_t *a = dmp_calloc(1, sizeof(*a));
        a->query_cb = o->query;
        a->wake = o->wake;
        a->opaque = o->opaque;
        a->query_wait_ms = o->query_wait_ms > 0 ? o->query_wait_ms : QUERY_WAIT_MS;
        if (o->auth_user_info && *o->auth_user_info)
                a->auth = basic_auth_header(o->auth_user_info);
        pthread_mutex_init(&a->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&a->cond, &ca);
        pthread_condattr_destroy(&ca);
        /* One internal thread (epoll where there is one): no handler ever
         * blocks, state queries are suspended while they wait. */
        a->mhd = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                                          MHD_USE_ERROR_LOG,
                                  (uint16_t)o->port, NULL, NULL, handler, a, MHD_OPTION_SOCK_ADDR,
                                  (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT,
                                  (unsigned)30, MHD_OPTION_CONNECTION_LIMIT, (unsigned)512,
                                  MHD_OPTION_NOTIFY_COMPLETED, completed, a, MHD_OPTION_END);
        if (!a->mhd) {
                snprintf(errstr, errstr_size, "cannot listen on %s:%d (in use?)", o->address,
                         o->port);
                dmp_admin_stop(a);
                return NULL;
        }
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_BIND_PORT);
        a->port = di ? di->port : o->port;
        if (pthread_create(&a->timer, NULL, timer_main, a)) {
                snprintf(errstr, errstr_size, "cannot start the HTTP timer thread");
                dmp_admin_stop(a);
                return NULL;
        }
        a->timer_started = 1;
        dmp_info("http: listening on %s:%d (/, /api, /metrics, /healthz, /readyz, /state%s)",
                 o->address, a->port, a->auth ? "; basic auth" : "");
        return a;
}

void dmp_admin_stop(dmp_admin_t *a) {
        if (!a)
                return;
        pthread_mutex_lock(&a->lock);
        a->stopping = 1;
        query_t *q;
        while ((q = dequeue_locked(a))) /* libmicrohttpd stops only with none suspended */
                finish_locked(q, "stopping");
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
        if (a->timer_started)
                pthread_join(a->timer, NULL);
        if (a->mhd)
                MHD_stop_daemon(a->mhd);
        pthread_cond_destroy(&a->cond);
        pthread_mutex_destroy(&a->lock);
        for (int i = 0; i < DMP_ADMIN__DOCS; i++)
                free(a->docs[i]);
        free(a->not_ready);
        free(a->auth);
        free(a);
}

int dmp_admin_add_connection(dmp_admin_t *a, int fd) {
        /* the peer's address is only logged: a loopback one */
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        return MHD_add_connection(a->mhd, fd, (struct sockaddr *)&sa, sizeof(sa)) == MHD_YES ? 0
                                                                                          : -1;
}

int dmp_admin_port(const dmp_admin_t *a) {
        return a->port;
}

void dmp_admin_publish(dmp_admin_t *a, dmp_admin_doc_t doc, const char *text, size_t len) {
        char *copy = dmp_malloc(len + 1);
        memcpy(copy, text, len);
        copy[len] = '\0';
        pthread_mutex_lock(&a->lock);
        char *old = a->docs[doc];
        a->docs[doc] = copy;
        a->doc_len[doc] = len;
        pthread_mutex_unlock(&a->lock);
        free(old);
}

void dmp_admin_set_ready(dmp_admin_t *a, int ready) {
        atomic_store(&a->ready, ready);
}

void dmp_admin_set_not_ready_why(dmp_admin_t *a, const char *why) {
        char *copy = why && *why ? dmp_strdup(why) : NULL;
        pthread_mutex_lock(&a->lock);
        char *old = a->not_ready;
        a->not_ready = copy;
        pthread_mutex_unlock(&a->lock);
        free(old);
}

static int64_t mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void dmp_admin_serve(dmp_admin_t *a) {
        if (!atomic_load(&a->npending))
                return;
        int64_t until = mono_ns() + SERVE_BUDGET_NS;
        do {
                pthread_mutex_lock(&a->lock);
                query_t *q = dequeue_locked(a);
                if (q)
                        q->state = Q_TAKEN; /* the timer leaves it alone now */
                pthread_mutex_unlock(&a->lock);
                if (!q)
                        return;
                /* answered without the lock: nothing else waits for it */
                q->status = a->query_cb(a->opaque, q->path, q->last, &q->body);
                atomic_fetch_add(&a->answered, 1);
                pthread_mutex_lock(&a->lock);
                finish_locked(q, NULL);
                pthread_mutex_unlock(&a->lock);
        } while (mono_ns() < until);
}

void dmp_admin_stats(dmp_admin_t *a, dmp_admin_stats_t *out) {
        out->queries = atomic_load(&a->answered);
        out->rejected = atomic_load(&a->rejected);
        out->expired = atomic_load(&a->expired);
}
