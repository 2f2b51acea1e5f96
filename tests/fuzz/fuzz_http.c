/* libFuzzer target: the HTTP endpoint's routing and state queries, in
 * process, without a socket (`make fuzz`; fuzz.h).
 *
 * Input: byte 0 picks the method; then the URL path (as libmicrohttpd
 * hands it over: decoded, without the query string) up to a NUL byte, and
 * after it, if present, the raw value of the ?last= argument. It goes to
 * dmp_admin_route (admin.c), whose /state/ queries are answered by
 * dmp_query_answer (query.c) from an engine (fuzz_engine.h) holding
 * committed windows, group statistics and published patterns.
 *
 * Invariants: the status is one the endpoint documents; a JSON answer is
 * a valid JSON document (jansson parses it: UTF-8, escapes) whose object
 * holds "error" exactly when the status is not 200. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "fuzz.h"
#include "fuzz_engine.h"
#include "query.h"

static fuzz_engine_t fe;

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
        return 0;
}

void fuzz_http_fini(void) {
        if (fe.e)
                fuzz_engine_close(&fe, 1);
}

static void bad(const char *what, const char *url, unsigned status, const dmp_buf_t *b) {
        fprintf(stderr, "fuzz_http: %s: %u for \"%s\": %.*s\n", what, status, url,
                (int)(b->len > 2000 ? 2000 : b->len), b->p ? b->p : "");
        abort();
}

int fuzz_http_one(const uint8_t *data, size_t size) {
        static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "get", ""};
        if (size < 1)
                return 0;
        const char *method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
        const uint8_t *nul = memchr(data + 1, 0, size - 1);
        size_t ul = nul ? (size_t)(nul - data - 1) : size - 1;
        char *url = dmp_strndup((const char *)data + 1, ul);
        char *last = nul ? dmp_strndup((const char *)nul + 1, (size_t)(data + size - nul - 1))
                         : NULL;
        const char *type = NULL;
        dmp_buf_t b = {0};
        unsigned st = dmp_admin_route(NULL, method, url, last, answer, fe.e, &type, &b);
        if (st != 200 && st != 400 && st != 404 && st != 405 && st != 503)
                bad("an undocumented status", url, st, &b);
        if (!type)
                bad("no content type", url, st, &b);
        if (!strcmp(type, "application/json")) {
                json_error_t je;
                json_t *j = json_loadb(b.p ? b.p : "", b.len, JSON_ALLOW_NUL, &je);
                if (!j) {
                        fprintf(stderr, "fuzz_http: invalid JSON: %s at %d\n", je.text,
                                je.position);
                        bad("an invalid JSON answer", url, st, &b);
                }
                if (!json_is_object(j) || (st == 200) == (json_object_get(j, "error") != NULL))
                        bad("an answer without its object or error", url, st, &b);
                json_decref(j);
        }
        dmp_buf_free(&b);
        free(url);
        free(last);
        return 0;
}

FUZZ_ENTRY(http)
