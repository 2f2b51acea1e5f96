/* libFuzzer target: the HTTP endpoint, in process (`make fuzz`; fuzz.h).
 *
 * Input: byte 0 picks the endpoint (even: open, odd: with basic auth
 * "fuzz:pw", i.e. "Authorization: Basic ZnV6ejpwdw=="), the rest is the
 * raw bytes a client sends. They go to the real endpoint (admin.c on
 * libmicrohttpd: request parsing, URL decoding, query arguments, auth,
 * routing, the web assets, the published documents) through one end of
 * a socketpair handed to it with dmp_admin_add_connection: no network
 * socket. /state/ queries are answered as the daemon answers them, by
 * dmp_query_answer (query.c) from dmp_admin_serve on this thread, over an
 * engine (fuzz_engine.h) holding committed windows, group statistics and
 * published patterns.
 *
 * A request without the blank line that ends its headers gets one
 * ("\r\n\r\n"): libmicrohttpd keeps a connection that stopped inside a
 * request (half-closed or not) until its 30 s timeout, so such inputs
 * would only fill the connection table. One that still waits (for a body
 * it announced) is dropped after 30 ms. The first answer is read up to
 * its Content-Length, not to the end of the connection.
 *
 * Invariants: the first answer has a status the endpoint documents or
 * libmicrohttpd's own for a malformed request; a JSON answer is a valid
 * JSON document (jansson: UTF-8, escapes) whose object holds "error"
 * exactly when the status is not 200. */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin.h"
#include "fuzz.h"
#include "fuzz_engine.h"
#include "query.h"

static fuzz_engine_t fe;
static dmp_admin_t *admins[2];

static int answer(void *opaque, const char *path, int last, dmp_buf_t *out) {
        return dmp_query_answer(opaque, path, last, out);
}

static void feed(int32_t p, int64_t off, const char *user, const char *seg, int64_t ts,
                 double price) {
        unsigned char buf[256];
        size_t n = fuzz_event(buf, user, strlen(user), seg, strlen(seg), ts, price, 1,
                              off % 3 ? off : -1);
        char err[256];
        dmp_engine_process(fe.e, p, off, NULL, 0, 0, buf, n, err, sizeof(err));
}

int fuzz_http_init(void) {
        if (fuzz_engine_open(&fe))
                return -1;
        char err[256];
        int64_t next;
        static const char *const users[] = {"alice", "bob", "k\"\\ey/\xc3\xa9", "", "carol"};
        static const char *const segs[] = {"a", "b", "b", "\x01seg", "a"};
        for (int32_t p = 0; p < 2; p++)
                if (dmp_engine_partition_open(fe.e, p, &next, err, sizeof(err)))
                        return -1;
        for (int i = 0; i < 200; i++)
                feed(i % 2, i / 2, users[i % 5], segs[i % 5], i / 3, (i * 7) % 11);
        dmp_engine_emit_updates(fe.e);
        dmp_engine_emit_groups(fe.e);
        if (dmp_engine_commit(fe.e, err, sizeof(err)) || dmp_engine_sync(fe.e, err, sizeof(err))) {
                fprintf(stderr, "fuzz_http: commit: %s\n", err);
                return -1;
        }
        for (int i = 0; i < 2; i++) {
                dmp_admin_opts_t o = {.address = "127.0.0.1", .port = 0,
                                      .auth_user_info = i ? "fuzz:pw" : NULL, .query = answer,
                                      .opaque = fe.e, .query_wait_ms = 5000};
                if (!(admins[i] = dmp_admin_start(&o, err, sizeof(err)))) {
                        fprintf(stderr, "fuzz_http: %s\n", err);
                        return -1;
                }
                static const char metrics[] = "# TYPE dmpflow_events_in_total counter\n"
                                              "dmpflow_events_in_total{partition=\"0\"} 100\n";
                static const char status[] = "{\"ready\": true, \"partitions\": []}";
                dmp_admin_publish(admins[i], DMP_ADMIN_METRICS, metrics, sizeof(metrics) - 1);
                dmp_admin_publish(admins[i], DMP_ADMIN_STATUS, status, sizeof(status) - 1);
                dmp_admin_set_ready(admins[i], 1);
        }
        return 0;
}

void fuzz_http_fini(void) {
        for (int i = 0; i < 2; i++) {
                dmp_admin_stop(admins[i]);
                admins[i] = NULL;
        }
        if (fe.e)
                fuzz_engine_close(&fe, 1);
}

static void bad(const char *what, const uint8_t *req, size_t n, const char *resp, size_t rn) {
        fprintf(stderr, "fuzz_http: %s\nrequest: %.*s\nanswer: %.*s\n", what,
                (int)(n > 500 ? 500 : n), (const char *)req, (int)(rn > 2000 ? 2000 : rn), resp);
        abort();
}

/* Whether the first request is a HEAD (libmicrohttpd skips empty lines
 * before a request line, as RFC 9112 allows). */
static int is_head(const uint8_t *req, size_t n) {
        while (n && (*req == '\r' || *req == '\n')) {
                req++;
                n--;
        }
        return n >= 5 && !memcmp(req, "HEAD ", 5);
}

/* Checks the first answer of resp[0..n). */
static void check_answer(const uint8_t *req, size_t reqlen, const char *resp, size_t n) {
        if (!n)
                return; /* closed without an answer (a request cut short) */
        unsigned st;
        if (n < 12 || sscanf(resp, "HTTP/1.%*1[01] %3u", &st) != 1)
                bad("not an HTTP answer", req, reqlen, resp, n);
        static const unsigned ok[] = {100, 200, 400, 401, 404, 405, 411, 413, 414, 417, 431, 500,
                                      501, 503, 505};
        int known = 0;
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
                known |= st == ok[i];
        if (!known)
                bad("an undocumented status", req, reqlen, resp, n);
        const char *eoh = memmem(resp, n, "\r\n\r\n", 4);
        if (!eoh)
                bad("an answer without its headers' end", req, reqlen, resp, n);
        size_t hl = (size_t)(eoh - resp);
        int json = memmem(resp, hl, "Content-Type: application/json", 30) != NULL;
        const char *cl = memmem(resp, hl, "Content-Length: ", 16);
        if (!json || !cl || is_head(req, reqlen))
                return;
        size_t blen = strtoul(cl + 16, NULL, 10), at = hl + 4;
        if (at + blen > n)
                bad("a body shorter than its Content-Length", req, reqlen, resp, n);
        json_error_t je;
        json_t *j = json_loadb(resp + at, blen, JSON_ALLOW_NUL, &je);
        if (!j) {
                fprintf(stderr, "fuzz_http: invalid JSON: %s at %d\n", je.text, je.position);
                bad("an invalid JSON answer", req, reqlen, resp, n);
        }
        if (json_is_object(j) && (st == 200) == (json_object_get(j, "error") != NULL))
                bad("an error answer without \"error\" (or a 200 with one)", req, reqlen, resp,
                    n);
        json_decref(j);
}

/* Whether resp[0..n) holds a whole first answer (after any 100 Continue):
 * its headers and Content-Length bytes of body (HEAD: none). Without a
 * Content-Length the answer ends with the connection. */
static int answer_complete(const char *resp, size_t n, int head) {
        for (;;) {
                const char *eoh = memmem(resp, n, "\r\n\r\n", 4);
                if (!eoh)
                        return 0;
                size_t hl = (size_t)(eoh - resp) + 4;
                if (n >= 12 && !memcmp(resp + 9, "100", 3)) {
                        resp += hl;
                        n -= hl;
                        continue;
                }
                const char *cl = memmem(resp, hl, "Content-Length: ", 16);
                if (!cl)
                        return 0;
                return head || n >= hl + strtoul(cl + 16, NULL, 10);
        }
}

int fuzz_http_one(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        dmp_admin_t *a = admins[data[0] & 1];
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
                abort();
        if (dmp_admin_add_connection(a, sv[1])) {
                close(sv[0]); /* refused: it closed sv[1] */
                return 0;
        }
        /* the request, whole (it fits the socket's buffer), then EOF */
        const uint8_t *req = data + 1;
        size_t reqlen = size - 1;
        uint8_t *ended = NULL;
        if (!memmem(req, reqlen, "\r\n\r\n", 4) && !memmem(req, reqlen, "\n\n", 2)) {
                ended = dmp_malloc(reqlen + 4);
                memcpy(ended, req, reqlen);
                memcpy(ended + reqlen, "\r\n\r\n", 4);
                req = ended;
                reqlen += 4;
        }
        for (size_t off = 0; off < reqlen;) {
                ssize_t w = write(sv[0], req + off, reqlen - off);
                if (w <= 0)
                        break; /* the endpoint closed early: fine */
                off += (size_t)w;
        }
        shutdown(sv[0], SHUT_WR);
        dmp_buf_t resp = {0};
        int64_t deadline = dmp_mono_ms() + 30;
        int head = is_head(req, reqlen);
        for (;;) {
                dmp_admin_serve(a); /* the processing thread's part */
                struct pollfd p = {sv[0], POLLIN, 0};
                if (poll(&p, 1, 1) > 0) {
                        char buf[16384];
                        ssize_t r = read(sv[0], buf, sizeof(buf));
                        if (r <= 0 && !(r < 0 && errno == EINTR))
                                break;
                        if (r > 0)
                                dmp_buf_append(&resp, buf, (size_t)r);
                        if (resp.p && answer_complete(resp.p, resp.len, head))
                                break;
                }
                if (dmp_mono_ms() > deadline)
                        break; /* waits for more of a request: dropped */
        }
        close(sv[0]);
        dmp_buf_append(&resp, "", 1); /* NUL-terminated for sscanf */
        check_answer(req, reqlen, resp.p, resp.len - 1);
        dmp_buf_free(&resp);
        free(ended);
        return 0;
}

FUZZ_ENTRY(http)
