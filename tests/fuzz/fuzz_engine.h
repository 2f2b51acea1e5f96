/* The engine of the http and state fuzz targets: a pipeline over
 * schemas/event.avsc with every window kind, groups and every pattern
 * kind, its state in a temporary directory. Header-only (static): each
 * target is one translation unit. */
#ifndef DMP_FUZZ_ENGINE_H
#define DMP_FUZZ_ENGINE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "avro_enc.h"
#include "config.h"
#include "engine.h"
#include "log.h"
#include "util.h"

static const char fuzz_engine_conf[] =
        "[input]\n"
        "topic = events\n"
        "schema = schemas/event.avsc\n"
        "key.field = user_id\n"
        "time.field = ts\n"
        "[state]\n"
        "dir = %s\n"
        "memory.budget = 64m\n"
        "[output]\n"
        "topic = results\n"
        "[measure score]\n"
        "expr = 2*price + quantity\n"
        "[measure cl]\n"
        "expr = clicks\n"
        "[window tum]\n"
        "size.ms = 10\n"
        "grace.ms = 2\n"
        "retention.ms = 30\n"
        "[window hop]\n"
        "type = hopping\n"
        "size.ms = 10\n"
        "advance.ms = 5\n"
        "measures = score\n"
        "[window ses]\n"
        "type = session\n"
        "gap.ms = 5\n"
        "[window sli]\n"
        "type = sliding\n"
        "size.ms = 10\n"
        "measures = score\n"
        "[window upd]\n"
        "size.ms = 20\n"
        "emit = update\n"
        "[group seg]\n"
        "field = segment\n"
        "windows = tum, hop\n"
        "topic = groups\n"
        "[group bucket]\n"
        "bucket.measure = score\n"
        "bucket.width = 10\n"
        "measures = cl\n"
        "topic = groups\n"
        "[pattern topseg]\n"
        "kind = topk\n"
        "window = tum\n"
        "source = group:seg\n"
        "measure = score\n"
        "k = 2\n"
        "topic = patterns\n"
        "[pattern topkey]\n"
        "kind = topk\n"
        "window = tum\n"
        "measure = score\n"
        "stat = sum\n"
        "k = 3\n"
        "order = asc\n"
        "topic = patterns\n"
        "[pattern odd]\n"
        "kind = anomaly\n"
        "window = hop\n"
        "measure = score\n"
        "z = 1.5\n"
        "min.count = 2\n"
        "topic = patterns\n"
        "[pattern high]\n"
        "kind = threshold\n"
        "window = tum\n"
        "source = group:seg\n"
        "measure = score\n"
        "above = 5\n"
        "consecutive = 2\n"
        "topic = patterns\n";

typedef struct fuzz_engine {
        char dir[64];
        dmp_conf_t *conf;
        dmp_engine_t *e;
        unsigned long results, groups, patterns;
} fuzz_engine_t;

static void fuzz_on_result(void *opaque, const dmp_result_t *r) {
        ((fuzz_engine_t *)opaque)->results += r->agg->count > 0;
}

static void fuzz_on_group(void *opaque, const dmp_group_result_t *r) {
        ((fuzz_engine_t *)opaque)->groups += r->agg->count > 0;
}

static void fuzz_on_pattern(void *opaque, const dmp_pattern_result_t *r) {
        ((fuzz_engine_t *)opaque)->patterns += r->subject_len < (size_t)1 << 20;
}

static char fuzz_engine_dir[64]; /* removed at exit */

static void fuzz_engine_atexit(void) {
        /* only the directory: RocksDB's own statics are gone by now, so
         * closing a store here would crash */
        if (fuzz_engine_dir[0])
                dmp_rmtree(fuzz_engine_dir);
}

static int fuzz_caught_up(void *opaque, int32_t partition, int64_t next_offset) {
        (void)opaque;
        (void)partition;
        (void)next_offset;
        return 1;
}

/* Creates the engine in a new temporary directory. 0 or -1. */
static inline int fuzz_engine_open(fuzz_engine_t *fe) {
        char lerr[256];
        dmp_log_level = DMP_LOG_ERROR;
        if (!getenv("FUZZ_LOG")) /* the engine logs what it rejects: quiet */
                dmp_log_configure(0, "/dev/null", lerr, sizeof(lerr));
        if (!fe->dir[0]) {
                const char *base = access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm";
                snprintf(fe->dir, sizeof(fe->dir), "%s/dmp-fuzz-XXXXXX", base);
                if (!mkdtemp(fe->dir)) {
                        perror("mkdtemp");
                        return -1;
                }
                static int registered;
                if (!registered++)
                        atexit(fuzz_engine_atexit);
                snprintf(fuzz_engine_dir, sizeof(fuzz_engine_dir), "%s", fe->dir);
        }
        char text[sizeof(fuzz_engine_conf) + 64];
        snprintf(text, sizeof(text), fuzz_engine_conf, fe->dir);
        fe->conf = dmp_conf_new();
        if (dmp_conf_load_string(fe->conf, "fuzz.ini", text) || dmp_conf_validate(fe->conf)) {
                fprintf(stderr, "fuzz engine configuration: %s\n", fe->conf->errors);
                return -1;
        }
        char err[512] = "";
        int cerr;
        dmp_engine_sink_t sink = {.result = fuzz_on_result, .group = fuzz_on_group,
                                  .pattern = fuzz_on_pattern, .caught_up = fuzz_caught_up,
                                  .opaque = fe};
        fe->e = dmp_engine_new(fe->conf, &sink, &cerr, err, sizeof(err));
        if (!fe->e) {
                fprintf(stderr, "fuzz engine: %s %s\n", err,
                        fe->conf->errors ? fe->conf->errors : "");
                return -1;
        }
        return 0;
}

/* Destroys the engine; with wipe, its state directory too (a new one
 * starts empty). */
static inline void fuzz_engine_close(fuzz_engine_t *fe, int wipe) {
        dmp_engine_destroy(fe->e);
        fe->e = NULL;
        dmp_conf_destroy(fe->conf);
        fe->conf = NULL;
        if (wipe && fe->dir[0]) {
                dmp_rmtree(fe->dir);
                fe->dir[0] = '\0';
        }
}

/* Encodes an event of schemas/event.avsc (clicks < 0: null) into buf
 * (at least 64 + the string lengths). */
static inline size_t fuzz_event(unsigned char *buf, const char *user, size_t ul, const char *seg,
                         size_t sl, int64_t ts, double price, int32_t qty, int64_t clicks) {
        unsigned char *p = buf;
        p = dmp_avro_put_string(p, user, ul);
        p = dmp_avro_put_string(p, seg, sl);
        p = dmp_avro_put_long(p, ts);
        p = dmp_avro_put_double(p, price);
        p = dmp_avro_put_long(p, qty);
        p = dmp_avro_put_long(p, clicks < 0 ? 0 : 1);
        if (clicks >= 0)
                p = dmp_avro_put_long(p, clicks);
        return (size_t)(p - buf);
}

#endif
