#include "query.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "groups.h"

static void num(dmp_buf_t *b, const char *name, double v) {
        if (isfinite(v))
                dmp_buf_printf(b, "\"%s\": %.17g", name, v);
        else
                dmp_buf_printf(b, "\"%s\": null", name);
}

static void agg_fields(dmp_buf_t *b, const dmp_agg_t *a) {
        dmp_buf_printf(b, "\"count\": %" PRId64 ", ", a->count);
        num(b, "sum", a->sum);
        dmp_buf_append(b, ", ", 2);
        num(b, "mean", a->mean);
        dmp_buf_append(b, ", ", 2);
        num(b, "variance", dmp_agg_variance(a));
        dmp_buf_append(b, ", ", 2);
        num(b, "stddev", dmp_agg_stddev(a));
        dmp_buf_append(b, ", ", 2);
        num(b, "min", a->min);
        dmp_buf_append(b, ", ", 2);
        num(b, "max", a->max);
}

static int error(dmp_buf_t *b, int status, const char *fmt, const char *arg) {
        char msg[512];
        snprintf(msg, sizeof(msg), fmt, arg);
        dmp_buf_append(b, "{\"error\": ", 10);
        dmp_json_string(b, msg, strlen(msg));
        dmp_buf_append(b, "}\n", 2);
        return status;
}

/* ---- windows ---- */

typedef struct win_ctx {
        dmp_buf_t *b;
        int64_t start; /* of the window being written; INT64_MIN: none yet */
        int n;
} win_ctx_t;

static void window_state(void *opaque, int64_t start, int64_t end, const char *measure,
                         const dmp_agg_t *agg, int final) {
        win_ctx_t *wc = opaque;
        if (wc->n == 0 || start != wc->start) {
                dmp_buf_printf(wc->b, "%s{\"start\": %" PRId64 ", \"end\": %" PRId64
                               ", \"final\": %s, \"measures\": {",
                               wc->n ? "}}, " : "", start, end, final ? "true" : "false");
                wc->start = start;
        } else {
                dmp_buf_append(wc->b, ", ", 2);
        }
        dmp_json_string(wc->b, measure, strlen(measure));
        dmp_buf_append(wc->b, ": {", 3);
        agg_fields(wc->b, agg);
        dmp_buf_append(wc->b, "}", 1);
        wc->n++;
}

static int query_windows(dmp_engine_t *e, const char *rest, dmp_buf_t *out) {
        const char *slash = strchr(rest, '/');
        if (!slash || slash == rest || !slash[1])
                return error(out, 400, "%s", "expected /state/windows/<window>/<key>");
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(slash - rest), rest);
        const char *key = slash + 1;
        int wi = dmp_engine_window_index(e, name);
        if (wi < 0)
                return error(out, 404, "no window definition \"%s\"", name);
        dmp_buf_t body = {0};
        win_ctx_t wc = {&body, INT64_MIN, 0};
        char err[256];
        if (dmp_engine_query_windows(e, wi, key, strlen(key), window_state, &wc, err,
                                     sizeof(err)) < 0) {
                dmp_buf_free(&body);
                return error(out, 400, "%s", err);
        }
        if (!wc.n) {
                dmp_buf_free(&body);
                return error(out, 404, "no committed state for this key in window %s", name);
        }
        dmp_buf_append(out, "{\"window\": ", 11);
        dmp_json_string(out, name, strlen(name));
        dmp_buf_append(out, ", \"key\": ", 9);
        dmp_json_string(out, key, strlen(key));
        dmp_buf_append(out, ", \"windows\": [", 14);
        dmp_buf_append(out, body.p, body.len);
        dmp_buf_append(out, "}}]}\n", 5);
        dmp_buf_free(&body);
        return 200;
}

/* ---- groups ---- */

/* {"<what>": name, "<list>": [body]}; frees body. */
static int list_answer(dmp_buf_t *out, const char *what, const char *name, const char *list,
                       dmp_buf_t *body) {
        dmp_buf_printf(out, "{\"%s\": ", what);
        dmp_json_string(out, name, strlen(name));
        dmp_buf_printf(out, ", \"%s\": [", list);
        if (body->p)
                dmp_buf_append(out, body->p, body->len);
        dmp_buf_append(out, "]}\n", 3);
        dmp_buf_free(body);
        return 200;
}

typedef struct list_ctx {
        dmp_buf_t *b;
        int n;
} list_ctx_t;

static void group_state(void *opaque, const dmp_group_result_t *r) {
        list_ctx_t *lc = opaque;
        const char *open = lc->n++ ? ", {\"value\": " : "{\"value\": ";
        dmp_buf_append(lc->b, open, strlen(open));
        dmp_json_string(lc->b, r->value, r->value_len);
        dmp_buf_append(lc->b, ", \"measure\": ", 13);
        dmp_json_string(lc->b, r->measure, strlen(r->measure));
        dmp_buf_append(lc->b, ", ", 2);
        agg_fields(lc->b, r->agg);
        dmp_buf_printf(lc->b, ", \"last_update\": %" PRId64 "}", r->last_update);
}

static int query_groups(dmp_engine_t *e, const char *rest, dmp_buf_t *out) {
        dmp_groups_t *g = dmp_engine_groups(e);
        const char *slash = strchr(rest, '/');
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(slash ? (size_t)(slash - rest) : strlen(rest)),
                 rest);
        if (!*name)
                return error(out, 400, "%s", "expected /state/groups/<group>[/<value>]");
        dmp_buf_t body = {0};
        list_ctx_t lc = {&body, 0};
        const char *value = slash ? slash + 1 : NULL;
        int n = g ? dmp_groups_query(g, name, value, value ? strlen(value) : 0, group_state, &lc)
                  : -1;
        if (n < 0) {
                dmp_buf_free(&body);
                return error(out, 404, "no [group %s]", name);
        }
        if (value && !n) {
                dmp_buf_free(&body);
                return error(out, 404, "no statistics for this value of group %s", name);
        }
        return list_answer(out, "group", name, "values", &body);
}

/* ---- patterns ---- */

void dmp_query_pattern_json(dmp_buf_t *b, const dmp_pattern_result_t *r) {
        dmp_buf_append(b, "{", 1);
        const char *fields[][2] = {{"pattern", r->pattern}, {"kind", r->kind},
                                   {"window", r->window->name}, {"source", r->source},
                                   {"measure", r->measure}, {"stat", r->stat},
                                   {"direction", r->direction}};
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
                dmp_buf_printf(b, "\"%s\": ", fields[i][0]);
                dmp_json_string(b, fields[i][1], strlen(fields[i][1]));
                dmp_buf_append(b, ", ", 2);
        }
        dmp_buf_append(b, "\"subject\": ", 11);
        dmp_json_string(b, r->subject, r->subject_len);
        dmp_buf_printf(b, ", \"start\": %" PRId64 ", \"end\": %" PRId64 ", \"rank\": %d, ",
                       r->start, r->end, r->rank);
        num(b, "value", r->value);
        dmp_buf_append(b, ", ", 2);
        num(b, "score", r->score);
        dmp_buf_append(b, ", ", 2);
        num(b, "mean", r->mean);
        dmp_buf_append(b, ", ", 2);
        num(b, "stddev", r->stddev);
        dmp_buf_printf(b, ", \"count\": %" PRId64 ", \"observations\": %" PRId64 "}", r->count,
                       r->observations);
}

static void pattern_state(void *opaque, const dmp_pattern_result_t *r) {
        list_ctx_t *lc = opaque;
        if (lc->n++)
                dmp_buf_append(lc->b, ", ", 2);
        dmp_query_pattern_json(lc->b, r);
}

static int query_patterns(dmp_engine_t *e, const char *name, int last, dmp_buf_t *out) {
        dmp_groups_t *g = dmp_engine_groups(e);
        if (!*name || strchr(name, '/'))
                return error(out, 400, "%s", "expected /state/patterns/<pattern>?last=N");
        if (last < 0 || last > DMP_GROUPS_RECENT)
                return error(out, 400, "%s", "last must be between 1 and 100");
        dmp_buf_t body = {0};
        list_ctx_t lc = {&body, 0};
        if (!g || dmp_groups_recent_patterns(g, name, last ? last : 10, pattern_state, &lc) < 0) {
                dmp_buf_free(&body);
                return error(out, 404, "no [pattern %s]", name);
        }
        return list_answer(out, "pattern", name, "records", &body);
}

int dmp_query_answer(dmp_engine_t *e, const char *path, int last, dmp_buf_t *out) {
        if (!strncmp(path, "windows/", 8))
                return query_windows(e, path + 8, out);
        if (!strncmp(path, "groups/", 7))
                return query_groups(e, path + 7, out);
        if (!strncmp(path, "patterns/", 9))
                return query_patterns(e, path + 9, last, out);
        return error(out, 404, "no such state: %s (windows/, groups/, patterns/)", path);
}
