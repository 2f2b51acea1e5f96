/* Unit tests of src/admin.c, the HTTP endpoint, over real HTTP on
 * 127.0.0.1 (libcurl): the routes and their JSON errors, strict query
 * parameters, basic auth with the probes exempt, the page's files and
 * their headers; and that health checks are answered while state queries
 * wait for a processing thread that does not serve them (the endpoint's
 * thread never waits), that too many waiting queries are refused at once,
 * that a query not taken in time gets a 503, and that stopping answers
 * the queries still waiting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "admin.h"
#include "decoder.h"
#include "log.h"
#include "util.h"

/* ---- a fake processing thread ---- */

typedef struct proc {
        dmp_admin_t *admin;
        atomic_int serving; /* 0: stalled (busy elsewhere) */
        atomic_int stop;
        atomic_int calls;   /* queries answered */
        char last_path[256];
        int last_last;
        pthread_t tid;
} proc_t;

static int query_cb(void *opaque, const char *path, int last, dmp_buf_t *out) {
        proc_t *p = opaque;
        atomic_fetch_add(&p->calls, 1);
        snprintf(p->last_path, sizeof(p->last_path), "%s", path);
        p->last_last = last;
        if (!strcmp(path, "missing")) {
                dmp_buf_puts(out, "{\"error\": \"no such thing\"}\n");
                return 404;
        }
        dmp_buf_puts(out, "{\"path\": ");
        dmp_json_string(out, path, strlen(path));
        dmp_buf_printf(out, ", \"last\": %d}\n", last);
        return 200;
}

static void *proc_main(void *arg) {
        proc_t *p = arg;
        while (!atomic_load(&p->stop)) {
                if (atomic_load(&p->serving))
                        dmp_admin_serve(p->admin);
                usleep(1000);
        }
        return NULL;
}

static proc_t *start(const char *auth, int wait_ms) {
        proc_t *p = calloc(1, sizeof(*p));
        char err[256];
        dmp_admin_opts_t o = {"127.0.0.1", 0, auth, query_cb, NULL, p, wait_ms};
        p->admin = dmp_admin_start(&o, err, sizeof(err));
        assert_non_null(p->admin);
        assert_true(dmp_admin_port(p->admin) > 0);
        atomic_store(&p->serving, 1);
        pthread_create(&p->tid, NULL, proc_main, p);
        return p;
}

static void stop(proc_t *p) {
        atomic_store(&p->stop, 1);
        pthread_join(p->tid, NULL);
        dmp_admin_stop(p->admin);
        free(p);
}

/* ---- an HTTP client ---- */

typedef struct resp {
        long status;
        dmp_buf_t body, headers;
} resp_t;

static size_t on_body(char *data, size_t size, size_t n, void *opaque) {
        dmp_buf_append(opaque, data, size * n);
        return size * n;
}

static CURL *request(const proc_t *p, const char *path, const char *userpwd, resp_t *r) {
        char url[512];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", dmp_admin_port(p->admin), path);
        CURL *c = curl_easy_init();
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        if (userpwd) {
                curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
                curl_easy_setopt(c, CURLOPT_USERPWD, userpwd);
        }
        return c;
}

static void finish(CURL *c, resp_t *r) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_cleanup(c);
        if (!r->body.p)
                dmp_buf_append(&r->body, "", 0);
        if (!r->headers.p)
                dmp_buf_append(&r->headers, "", 0);
}

static long get(const proc_t *p, const char *path, const char *userpwd, resp_t *r) {
        memset(r, 0, sizeof(*r));
        CURL *c = request(p, path, userpwd, r);
        CURLcode rc = curl_easy_perform(c);
        assert_int_equal(rc, CURLE_OK);
        finish(c, r);
        return r->status;
}

static void resp_free(resp_t *r) {
        dmp_buf_free(&r->body);
        dmp_buf_free(&r->headers);
}

/* The status of GET path, and that an error's body is JSON {"error": ...}
 * (but /readyz's: a line of text for probes). */
static long status_of(const proc_t *p, const char *path, const char *userpwd) {
        resp_t r;
        long s = get(p, path, userpwd, &r);
        if (s >= 400 && strcmp(path, "/readyz"))
                assert_non_null(strstr(r.body.p, "{\"error\": \""));
        resp_free(&r);
        return s;
}

/* ---- tests ---- */

static void test_routes_and_errors(void **state) {
        (void)state;
        proc_t *p = start(NULL, 0);
        resp_t r;
        assert_int_equal(get(p, "/healthz", NULL, &r), 200);
        assert_string_equal(r.body.p, "ok\n");
        resp_free(&r);
        assert_int_equal(get(p, "/readyz", NULL, &r), 503);
        assert_string_equal(r.body.p, "not ready: no partitions assigned and restored yet\n");
        resp_free(&r);
        /* the daemon says why (issue 22: a broker that does not answer) */
        dmp_admin_set_not_ready_why(p->admin, "waiting for the Kafka cluster: refused");
        assert_int_equal(get(p, "/readyz", NULL, &r), 503);
        assert_string_equal(r.body.p, "not ready: waiting for the Kafka cluster: refused\n");
        resp_free(&r);
        dmp_admin_set_not_ready_why(p->admin, NULL);
        assert_int_equal(get(p, "/readyz", NULL, &r), 503);
        assert_non_null(strstr(r.body.p, "no partitions assigned"));
        resp_free(&r);
        dmp_admin_set_ready(p->admin, 1);
        assert_int_equal(status_of(p, "/readyz", NULL), 200);

        assert_int_equal(status_of(p, "/api/status", NULL), 503); /* not published yet */
        dmp_admin_publish(p->admin, DMP_ADMIN_STATUS, "{\"a\": 1}\n", 9);
        dmp_admin_publish(p->admin, DMP_ADMIN_METRICS, "dmpflow_up 1\n", 13);
        assert_int_equal(get(p, "/api/status", NULL, &r), 200);
        assert_string_equal(r.body.p, "{\"a\": 1}\n");
        assert_non_null(strstr(r.headers.p, "application/json"));
        resp_free(&r);
        assert_int_equal(get(p, "/metrics", NULL, &r), 200);
        assert_non_null(strstr(r.body.p, "dmpflow_up 1\n"));
        assert_non_null(strstr(r.body.p, "process_resident_memory_bytes "));
        resp_free(&r);

        /* the page and its files, built in, under a strict policy */
        assert_int_equal(get(p, "/", NULL, &r), 200);
        assert_non_null(strstr(r.body.p, "<script src=\"dmpflow.js\""));
        assert_non_null(strstr(r.headers.p, "text/html"));
        assert_non_null(strstr(r.headers.p, "Content-Security-Policy: default-src 'none'; "
                                            "script-src 'self'"));
        assert_null(strstr(r.body.p, "http://")); /* nothing fetched from elsewhere */
        assert_null(strstr(r.body.p, "https://"));
        resp_free(&r);
        assert_int_equal(get(p, "/dmpflow.js", NULL, &r), 200);
        assert_null(strstr(r.body.p, "innerHTML")); /* data is never markup */
        resp_free(&r);
        /* served byte for byte as in src/web/ (quotes, backslashes, `?`) */
        const char *files[][2] = {{"/", "src/web/index.html"},
                                  {"/dmpflow.js", "src/web/dmpflow.js"},
                                  {"/dmpflow.css", "src/web/dmpflow.css"}};
        for (size_t i = 0; i < DMP_ARRAY_SIZE(files); i++) {
                char err[256];
                size_t len;
                char *want = dmp_read_file(files[i][1], &len, err, sizeof(err));
                assert_non_null(want);
                assert_int_equal(get(p, files[i][0], NULL, &r), 200);
                assert_int_equal(r.body.len, len);
                assert_memory_equal(r.body.p, want, len);
                resp_free(&r);
                free(want);
        }

        /* state queries reach the processing thread */
        assert_int_equal(get(p, "/state/windows/w/some%20key", NULL, &r), 200);
        assert_string_equal(p->last_path, "windows/w/some key");
        assert_int_equal(p->last_last, 0);
        resp_free(&r);
        assert_int_equal(status_of(p, "/state/patterns/p?last=7", NULL), 200);
        assert_string_equal(p->last_path, "patterns/p");
        assert_int_equal(p->last_last, 7);
        assert_int_equal(status_of(p, "/state/missing", NULL), 404);

        /* bad requests: JSON errors, never a crash */
        int before = atomic_load(&p->calls);
        assert_int_equal(status_of(p, "/state/patterns/p?last=abc", NULL), 400);
        assert_int_equal(status_of(p, "/state/patterns/p?last=0", NULL), 400);
        assert_int_equal(status_of(p, "/state/patterns/p?last=-3", NULL), 400);
        assert_int_equal(status_of(p, "/state/patterns/p?last=99999999999999", NULL), 400);
        assert_int_equal(status_of(p, "/state/windows/w/k?nope=1", NULL), 400);
        assert_int_equal(status_of(p, "/api/status?x=1", NULL), 400);
        assert_int_equal(status_of(p, "/?x=%00", NULL), 400);
        assert_int_equal(atomic_load(&p->calls), before); /* none reached the engine */
        assert_int_equal(status_of(p, "/nothing", NULL), 404);
        assert_int_equal(status_of(p, "/api/nothing", NULL), 404);
        memset(&r, 0, sizeof(r));
        CURL *c = request(p, "/metrics", NULL, &r);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x=1");
        assert_int_equal(curl_easy_perform(c), CURLE_OK);
        finish(c, &r);
        assert_int_equal(r.status, 405);
        resp_free(&r);
        stop(p);
}

static void test_basic_auth(void **state) {
        (void)state;
        proc_t *p = start("ops:s3cr:et", 0);
        dmp_admin_publish(p->admin, DMP_ADMIN_METRICS, "dmpflow_up 1\n", 13);
        assert_int_equal(status_of(p, "/healthz", NULL), 200); /* probes need none */
        assert_int_equal(status_of(p, "/readyz", NULL), 503);
        const char *guarded[] = {"/metrics", "/", "/dmpflow.js", "/api/status", "/state/windows/w/k",
                                 "/nothing"};
        for (size_t i = 0; i < DMP_ARRAY_SIZE(guarded); i++) {
                resp_t r;
                assert_int_equal(get(p, guarded[i], NULL, &r), 401);
                assert_non_null(strstr(r.headers.p, "WWW-Authenticate: Basic realm=\"dmpflow\""));
                resp_free(&r);
                assert_int_equal(status_of(p, guarded[i], "ops:wrong"), 401);
                assert_int_equal(status_of(p, guarded[i], "ops:s3cr:e"), 401);
                assert_int_equal(status_of(p, guarded[i], "opsx:s3cr:et"), 401);
        }
        int before = atomic_load(&p->calls);
        assert_int_equal(status_of(p, "/state/windows/w/k", "ops:wrong"), 401);
        assert_int_equal(atomic_load(&p->calls), before);
        assert_int_equal(status_of(p, "/metrics", "ops:s3cr:et"), 200);
        assert_int_equal(status_of(p, "/", "ops:s3cr:et"), 200);
        assert_int_equal(status_of(p, "/state/windows/w/k", "ops:s3cr:et"), 200);
        assert_int_equal(status_of(p, "/nothing", "ops:s3cr:et"), 404);
        stop(p);

        char err[256];
        dmp_admin_opts_t o = {"127.0.0.1", 0, "no-colon", query_cb, NULL, NULL, 0};
        assert_null(dmp_admin_start(&o, err, sizeof(err)));
        assert_non_null(strstr(err, "user:password"));
        assert_null(strstr(err, "no-colon")); /* never the secret */
        o = (dmp_admin_opts_t){"localhost", 0, NULL, query_cb, NULL, NULL, 0};
        assert_null(dmp_admin_start(&o, err, sizeof(err)));
}

/* Concurrent requests with curl's multi interface: n of path, run until
 * all are done or `until` says so; returns the statuses. */
typedef struct multi {
        CURLM *m;
        CURL *h[80];
        resp_t r[80];
        int n;
} multi_t;

static void multi_start(multi_t *mu, const proc_t *p, const char *path, int n) {
        memset(mu, 0, sizeof(*mu));
        mu->m = curl_multi_init();
        mu->n = n;
        for (int i = 0; i < n; i++) {
                mu->h[i] = request(p, path, NULL, &mu->r[i]);
                curl_multi_add_handle(mu->m, mu->h[i]);
        }
}

/* Drives the transfers for about ms; returns how many are done. */
static int multi_run(multi_t *mu, int ms) {
        int64_t end = dmp_mono_ms() + ms;
        int running = 1;
        while (dmp_mono_ms() < end && running) {
                curl_multi_perform(mu->m, &running);
                curl_multi_poll(mu->m, NULL, 0, 10, NULL);
        }
        int done = 0;
        for (int i = 0; i < mu->n; i++) {
                long s = 0;
                curl_easy_getinfo(mu->h[i], CURLINFO_RESPONSE_CODE, &s);
                done += s != 0;
        }
        return done;
}

static int multi_count(multi_t *mu, long status) {
        int k = 0;
        for (int i = 0; i < mu->n; i++) {
                long s = 0;
                curl_easy_getinfo(mu->h[i], CURLINFO_RESPONSE_CODE, &s);
                k += s == status;
        }
        return k;
}

static void multi_free(multi_t *mu) {
        for (int i = 0; i < mu->n; i++) {
                curl_multi_remove_handle(mu->m, mu->h[i]);
                curl_easy_cleanup(mu->h[i]);
                resp_free(&mu->r[i]);
        }
        curl_multi_cleanup(mu->m);
}

static void test_health_answered_while_queries_wait(void **state) {
        (void)state;
        proc_t *p = start(NULL, 60000);
        dmp_admin_publish(p->admin, DMP_ADMIN_METRICS, "dmpflow_up 1\n", 13);
        atomic_store(&p->serving, 0); /* the processing thread is busy elsewhere */
        multi_t mu;
        multi_start(&mu, p, "/state/windows/w/k", 16);
        assert_int_equal(multi_run(&mu, 300), 0); /* all 16 wait */
        /* health, readiness and metrics are answered all the same, many times */
        for (int i = 0; i < 50; i++) {
                assert_int_equal(status_of(p, "/healthz", NULL), 200);
                assert_int_equal(status_of(p, "/readyz", NULL), 503);
                assert_int_equal(status_of(p, "/metrics", NULL), 200);
                assert_int_equal(status_of(p, "/api/status", NULL), 503);
        }
        assert_int_equal(multi_run(&mu, 10), 0); /* still waiting */
        assert_int_equal(atomic_load(&p->calls), 0);
        atomic_store(&p->serving, 1);
        assert_int_equal(multi_run(&mu, 15000), 16);
        assert_int_equal(multi_count(&mu, 200), 16);
        assert_int_equal(atomic_load(&p->calls), 16);
        multi_free(&mu);
        dmp_admin_stats_t st;
        dmp_admin_stats(p->admin, &st);
        assert_int_equal(st.queries, 16);
        assert_int_equal(st.rejected, 0);
        assert_int_equal(st.expired, 0);
        stop(p);
}

static void test_too_many_waiting_rejected_and_stop_answers(void **state) {
        (void)state;
        proc_t *p = start(NULL, 60000);
        atomic_store(&p->serving, 0);
        multi_t mu;
        multi_start(&mu, p, "/state/groups/g", DMP_ADMIN_MAX_PENDING + 6);
        int done = 0;
        for (int i = 0; i < 100 && done < 6; i++)
                done = multi_run(&mu, 100);
        assert_int_equal(done, 6); /* refused at once: 503 */
        assert_int_equal(multi_count(&mu, 503), 6);
        dmp_admin_stats_t st;
        dmp_admin_stats(p->admin, &st);
        assert_int_equal(st.rejected, 6);
        /* stopping answers those still waiting (no connection left suspended) */
        atomic_store(&p->stop, 1);
        pthread_join(p->tid, NULL);
        dmp_admin_stop(p->admin);
        free(p);
        multi_run(&mu, 5000);
        assert_int_equal(multi_count(&mu, 200), 0);
        multi_free(&mu);
}

static void test_query_not_taken_in_time_is_503(void **state) {
        (void)state;
        proc_t *p = start(NULL, 200);
        atomic_store(&p->serving, 0);
        resp_t r;
        assert_int_equal(get(p, "/state/windows/w/k", NULL, &r), 503);
        assert_non_null(strstr(r.body.p, "did not answer in time"));
        resp_free(&r);
        assert_int_equal(atomic_load(&p->calls), 0);
        atomic_store(&p->serving, 1);
        assert_int_equal(status_of(p, "/state/windows/w/k", NULL), 200);
        dmp_admin_stats_t st;
        dmp_admin_stats(p->admin, &st);
        assert_int_equal(st.expired, 1);
        stop(p);
}

int main(void) {
        dmp_log_level = DMP_LOG_ERROR;
        curl_global_init(CURL_GLOBAL_DEFAULT);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_routes_and_errors),
                cmocka_unit_test(test_basic_auth),
                cmocka_unit_test(test_health_answered_while_queries_wait),
                cmocka_unit_test(test_too_many_waiting_rejected_and_stop_answers),
                cmocka_unit_test(test_query_not_taken_in_time_is_503),
        };
        int rc = cmocka_run_group_tests(tests, NULL, NULL);
        curl_global_cleanup();
        return rc;
}
