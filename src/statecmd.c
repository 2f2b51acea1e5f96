#include "statecmd.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dmpflow.h"
#include "engine.h"
#include "store.h"
#include "util.h"
#include "wtable.h"

#define MAX_PROBLEMS 20

typedef struct ctx {
        const dmp_engine_t *engine;
        dmp_store_t *store;
        FILE *out, *err;
        int32_t partition;
        const char *only_key; /* dump */
        long entries[DMP_MAX_WINDOWS];
        long groups;
        long problems;
        char line[8192];
} ctx_t;

static void print_key(FILE *fp, const char *key, size_t len) {
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)key[i];
                if (c >= 0x20 && c < 0x7f && c != '\\')
                        fputc(c, fp);
                else
                        fprintf(fp, "\\x%02x", c);
        }
}

static int check_entry(void *opaque, int win, const char *key, size_t key_len, int64_t start,
                       const void *val, size_t val_len) {
        ctx_t *c = opaque;
        char e[512];
        int print = c->only_key != NULL;
        if (dmp_engine_describe_entry(c->engine, win, start, val, val_len,
                                      print ? c->line : NULL, sizeof(c->line), e, sizeof(e))) {
                if (c->problems++ < MAX_PROBLEMS) {
                        fprintf(c->err, "partition %d key \"", (int)c->partition);
                        print_key(c->err, key, key_len);
                        fprintf(c->err, "\": %s\n", e);
                }
                return 0; /* go on: report every problem */
        }
        if (win >= 0 && win < DMP_MAX_WINDOWS)
                c->entries[win]++;
        if (print)
                fprintf(c->out, "%s\n", c->line);
        return 0;
}

static int count_group(void *opaque, const char *key, size_t key_len, const void *val,
                       size_t val_len) {
        ((ctx_t *)opaque)->groups++;
        return 0;
}

typedef struct plist {
        int32_t *v;
        size_t n, cap;
} plist_t;

static void add_partition(void *opaque, int32_t p) {
        plist_t *l = opaque;
        if (l->n == l->cap)
                l->v = dmp_realloc(l->v, (l->cap = l->cap ? l->cap * 2 : 16) * sizeof(*l->v));
        l->v[l->n++] = p;
}

/* Lists or verifies one partition. Returns 0, or -1 on a store error. */
static int one_partition(ctx_t *c, int32_t p, int verbose) {
        char e[512];
        int64_t off = -1, st = INT64_MIN;
        c->partition = p;
        memset(c->entries, 0, sizeof(c->entries));
        c->groups = 0;
        int r = dmp_store_get_meta(c->store, p, &off, &st, e, sizeof(e));
        if (r < 0) {
                c->problems++;
                fprintf(c->err, "partition %d: %s\n", (int)p, e);
                return 0;
        }
        if (dmp_store_scan(c->store, p, check_entry, c, e, sizeof(e)) < 0 ||
            dmp_store_scan_groups(c->store, p, count_group, c, e, sizeof(e)) < 0) {
                fprintf(c->err, "partition %d: %s\n", (int)p, e);
                return -1;
        }
        if (!r && (c->groups || c->entries[0])) {
                c->problems++;
                fprintf(c->err, "partition %d: entries without offsets\n", (int)p);
        }
        if (!verbose)
                return 0;
        long total = 0;
        for (int w = 0; w < dmp_engine_window_cnt(c->engine); w++)
                total += c->entries[w];
        fprintf(c->out, "partition %d: next offset %" PRId64 ", stream time ", (int)p, off);
        if (st == INT64_MIN)
                fprintf(c->out, "none");
        else
                fprintf(c->out, "%" PRId64, st);
        fprintf(c->out, ", %ld entries (", total);
        for (int w = 0; w < dmp_engine_window_cnt(c->engine); w++)
                fprintf(c->out, "%s%s %ld", w ? ", " : "", dmp_engine_window(c->engine, w)->name,
                        c->entries[w]);
        fprintf(c->out, "), %ld groups\n", c->groups);
        return 0;
}

int dmp_state_run(dmp_conf_t *conf, dmp_state_action_t action, int partition, const char *key,
                  FILE *out, FILE *err) {
        dmp_engine_t *engine = dmp_engine_compile(conf);
        if (!engine) {
                fputs(conf->errors, err);
                return DMP_EXIT_USAGE;
        }
        char e[512];
        dmp_store_opts_t so = {.read_only = 1};
        dmp_store_t *st = dmp_store_open_opts(conf->state.dir, dmp_engine_fingerprint(engine),
                                              &so, e, sizeof(e));
        if (!st) {
                fprintf(err, "dmpflow state: %s\n", e);
                dmp_engine_destroy(engine);
                return DMP_EXIT_FAILURE;
        }
        ctx_t *c = dmp_calloc(1, sizeof(*c));
        c->engine = engine;
        c->store = st;
        c->out = out;
        c->err = err;
        int rc = DMP_EXIT_OK;
        if (action == DMP_STATE_DUMP) {
                c->only_key = key;
                c->partition = partition;
                long n = 0;
                for (int w = 0; w < dmp_engine_window_cnt(engine) && n >= 0; w++) {
                        long k = dmp_store_scan_key(st, partition, w, key, strlen(key),
                                                    check_entry, c, e, sizeof(e));
                        n = k < 0 ? -1 : n + k;
                }
                if (n < 0) {
                        fprintf(err, "dmpflow state: %s\n", e);
                        rc = DMP_EXIT_FAILURE;
                } else if (n == 0) {
                        fprintf(err, "dmpflow state: no state for key \"%s\" in partition %d\n",
                                key, partition);
                        rc = DMP_EXIT_FAILURE;
                }
        } else {
                plist_t l = {0};
                if (partition >= 0) {
                        add_partition(&l, partition);
                } else if (dmp_store_partitions(st, add_partition, &l, e, sizeof(e)) < 0) {
                        fprintf(err, "dmpflow state: %s\n", e);
                        rc = DMP_EXIT_FAILURE;
                }
                long entries = 0;
                for (size_t i = 0; i < l.n && rc == DMP_EXIT_OK; i++) {
                        if (one_partition(c, l.v[i], action == DMP_STATE_LIST))
                                rc = DMP_EXIT_FAILURE;
                        for (int w = 0; w < DMP_MAX_WINDOWS; w++)
                                entries += c->entries[w];
                }
                if (action == DMP_STATE_VERIFY && rc == DMP_EXIT_OK)
                        fprintf(out, "%s: %zu partitions, %ld entries verified, %ld problems\n",
                                conf->state.dir, l.n, entries, c->problems);
                if (c->problems)
                        rc = DMP_EXIT_FAILURE;
                free(l.v);
        }
        free(c);
        dmp_store_close(st);
        dmp_engine_destroy(engine);
        return rc;
}
