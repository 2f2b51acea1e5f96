#include "admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define QUERY_WAIT_MS 5000

typedef struct query {
        const char *path;
        int last;
        int status;
        dmp_buf_t body;
        int done;
} query_t;

struct dmp_admin {
        struct MHD_Daemon *mhd;
        dmp_admin_query_cb_t *query_cb;
        void *opaque;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        char *metrics; /* guarded by lock */
        size_t metrics_len;
        atomic_int ready;
        atomic_int has_query;
        query_t *pending; /* guarded by lock; one query at a time */
        int stopping;
};

/* The length of the valid UTF-8 sequence at s[0..n) (n > 0), or 0: no
 * overlong forms, surrogates or code points past U+10FFFF (RFC 3629). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
        unsigned c = s[0];
        size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                                   : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (!len || len > n)
                return 0;
        for (size_t i = 1; i < len; i++)
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
        if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) ||
            (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
                return 0;
        return len;
}

void dmp_json_string(dmp_buf_t *out, const char *s, size_t len) {
        dmp_buf_append(out, "\"", 1);
        for (size_t i = 0; i < len;) {
                unsigned char c = (unsigned char)s[i];
                size_t l = utf8_seq((const unsigned char *)s + i, len - i);
                if (c == '"' || c == '\\') {
                        char e[2] = {'\\', (char)c};
                        dmp_buf_append(out, e, 2);
                } else if (c < 0x20) {
                        dmp_buf_printf(out, "\\u%04x", c);
                } else if (!l) {
                        /* JSON is UTF-8: a byte that is not (keys and URLs are
                         * bytes) becomes U+FFFD (fuzz finding, docs/FUZZING.md) */
                        dmp_buf_append(out, "\\ufffd", 6);
                        l = 1;
                } else {
                        dmp_buf_append(out, s + i, l);
                }
                i += l ? l : 1;
        }
        dmp_buf_append(out, "\"", 1);
}

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *type,
                               const char *body, size_t len) {
        struct MHD_Response *r =
                MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
        if (!r)
                return MHD_NO;
        MHD_add_response_header(r, "Content-Type", type);
        enum MHD_Result ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        return ret;
}

/* The process's metrics, read now: resident memory and CPU time. */
static void process_metrics(dmp_buf_t *b) {
        long pages = 0, rss = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (f) {
                if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
                        rss = 0;
                fclose(f);
        }
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
                       rss * sysconf(_SC_PAGESIZE), cpu);
}

/* Hands a state query to the processing thread and waits for its answer. */
static void run_query(dmp_admin_t *a, query_t *q) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += QUERY_WAIT_MS / 1000;
        pthread_mutex_lock(&a->lock);
        while (a->pending && !a->stopping)
                if (pthread_cond_timedwait(&a->cond, &a->lock, &deadline))
                        break;
        if (a->pending || a->stopping) {
                pthread_mutex_unlock(&a->lock);
                return; /* q->done stays 0: 503 */
        }
        a->pending = q;
        atomic_store(&a->has_query, 1);
        while (!q->done && !a->stopping)
                if (pthread_cond_timedwait(&a->cond, &a->lock, &deadline))
                        break;
        if (!q->done) /* not answered in time: withdraw it */
                a->pending = NULL;
        pthread_mutex_unlock(&a->lock);
}

int dmp_admin_last_arg(const char *arg) {
        if (!arg || !*arg)
                return 0;
        char *end;
        errno = 0;
        long v = strtol(arg, &end, 10);
        /* not a number, or beyond int: out of range (the query answers 400) */
        if (errno || *end || v < 0 || v > INT_MAX)
                return -1;
        return (int)v;
}

static void error_body(dmp_buf_t *b, const char *msg) {
        dmp_buf_append(b, "{\"error\": ", 10);
        dmp_json_string(b, msg, strlen(msg));
        dmp_buf_append(b, "}\n", 2);
}

unsigned dmp_admin_route(dmp_admin_t *a, const char *method, const char *url,
                         const char *last_arg, dmp_admin_query_cb_t *query, void *opaque,
                         const char **type, dmp_buf_t *body) {
        *type = "application/json";
        if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
                error_body(body, "read-only: GET only");
                return MHD_HTTP_METHOD_NOT_ALLOWED;
        }
        if (!strcmp(url, "/healthz")) {
                *type = "text/plain";
                dmp_buf_append(body, "ok\n", 3);
                return MHD_HTTP_OK;
        }
        if (!strcmp(url, "/readyz")) {
                *type = "text/plain";
                if (a && atomic_load(&a->ready)) {
                        dmp_buf_append(body, "ready\n", 6);
                        return MHD_HTTP_OK;
                }
                dmp_buf_append(body, "not ready: no partitions assigned and restored yet\n", 51);
                return MHD_HTTP_SERVICE_UNAVAILABLE;
        }
        if (!strcmp(url, "/metrics")) {
                *type = "text/plain; version=0.0.4";
                if (a) {
                        pthread_mutex_lock(&a->lock);
                        if (a->metrics)
                                dmp_buf_append(body, a->metrics, a->metrics_len);
                        pthread_mutex_unlock(&a->lock);
                }
                process_metrics(body);
                return MHD_HTTP_OK;
        }
        if (!strncmp(url, "/state/", 7))
                return (unsigned)query(opaque, url + 7, dmp_admin_last_arg(last_arg), body);
        error_body(body, "no such resource: /metrics, /healthz, /readyz, "
                         "/state/windows/<window>/<key>, /state/groups/<group>[/<value>], "
                         "/state/patterns/<pattern>?last=N");
        return MHD_HTTP_NOT_FOUND;
}

/* The query callback of dmp_admin_route on the HTTP thread: hands the
 * query to the processing thread and waits for its answer (503 if none). */
static int ask_processing_thread(void *opaque, const char *path, int last, dmp_buf_t *out) {
        query_t q = {.path = path, .last = last};
        run_query(opaque, &q);
        int status = q.status;
        if (!q.done) {
                status = MHD_HTTP_SERVICE_UNAVAILABLE;
                error_body(out, "the processing thread did not answer in time");
        } else if (q.body.p) {
                dmp_buf_append(out, q.body.p, q.body.len);
        }
        dmp_buf_free(&q.body);
        return status;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
        dmp_admin_t *a = cls;
        (void)version;
        (void)upload_data;
        (void)upload_data_size;
        (void)con_cls;
        const char *type;
        dmp_buf_t b = {0};
        unsigned status = dmp_admin_route(
                a, method, url, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "last"),
                ask_processing_thread, a, &type, &b);
        enum MHD_Result r = respond(c, status, type, b.p ? b.p : "", b.len);
        dmp_buf_free(&b);
        return r;
}

dmp_admin_t *dmp_admin_start(const char *address, int port, dmp_admin_query_cb_t *query,
                             void *opaque, char *errstr, size_t errstr_size) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        if (inet_pton(AF_INET, address, &sa.sin_addr) != 1) {
                snprintf(errstr, errstr_size, "[http] address \"%s\" is not an IPv4 address",
                         address);
                return NULL;
        }
        dmp_admin_t *a = dmp_calloc(1, sizeof(*a));
        a->query_cb = query;
        a->opaque = opaque;
        pthread_mutex_init(&a->lock, NULL);
        pthread_cond_init(&a->cond, NULL);
        /* One internal thread, polling: requests are short, the state ones
         * wait for the processing thread anyway. */
        a->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                                  (uint16_t)port, NULL, NULL, handler, a, MHD_OPTION_SOCK_ADDR,
                                  (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT,
                                  (unsigned)30, MHD_OPTION_END);
        if (!a->mhd) {
                snprintf(errstr, errstr_size, "cannot listen on %s:%d (in use?)", address, port);
                pthread_cond_destroy(&a->cond);
                pthread_mutex_destroy(&a->lock);
                free(a);
                return NULL;
        }
        dmp_info("http: listening on %s:%d (/metrics, /healthz, /readyz, /state)", address, port);
        return a;
}

void dmp_admin_stop(dmp_admin_t *a) {
        if (!a)
                return;
        pthread_mutex_lock(&a->lock);
        a->stopping = 1;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
        MHD_stop_daemon(a->mhd);
        pthread_cond_destroy(&a->cond);
        pthread_mutex_destroy(&a->lock);
        free(a->metrics);
        free(a);
}

void dmp_admin_set_metrics(dmp_admin_t *a, const char *text, size_t len) {
        char *copy = dmp_malloc(len + 1);
        memcpy(copy, text, len);
        copy[len] = '\0';
        pthread_mutex_lock(&a->lock);
        free(a->metrics);
        a->metrics = copy;
        a->metrics_len = len;
        pthread_mutex_unlock(&a->lock);
}

void dmp_admin_set_ready(dmp_admin_t *a, int ready) {
        atomic_store(&a->ready, ready);
}

void dmp_admin_serve(dmp_admin_t *a) {
        if (!atomic_load(&a->has_query))
                return;
        pthread_mutex_lock(&a->lock);
        query_t *q = a->pending;
        atomic_store(&a->has_query, 0);
        if (q) {
                /* answered under the lock: the HTTP thread waits for it anyway */
                q->status = a->query_cb(a->opaque, q->path, q->last, &q->body);
                q->done = 1;
                a->pending = NULL;
                pthread_cond_broadcast(&a->cond);
        }
        pthread_mutex_unlock(&a->lock);
}
