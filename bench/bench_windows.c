/* In-process cost of window assignment and update per event (issue 4).
 *
 * Feeds pre-encoded events (schemas/event.avsc) through dmp_engine_process
 * for 1 k, 100 k and 1 M distinct keys, with 1 window per event (tumbling
 * 10 s) and 5 overlapping windows per event (hopping 10 s / 2 s). Decoding
 * is timed separately on the same records and subtracted, so the figure is
 * the window work: lookup/insert, aggregate update, closing, emitting (to a
 * no-op callback). Commits (RocksDB) happen every 100 k events and are timed
 * apart. The core row is the best of CORE_PASSES passes. Prints a table and
 * writes JSON lines to the file given as argv[1].
 *
 * Usage: bench_windows OUT.json [EVENTS [KEYS [SHAPE]]]   (run from the
 * repository root; KEYS: only that key count, SHAPE: only that row, 1, 5 or
 * core -- e.g. to profile one row under callgrind) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "decoder.h"
#include "engine.h"
#include "gen.h"
#include "log.h"
#include "util.h"

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void noop_emit(void *opaque, const dmp_result_t *r) {
        (*(uint64_t *)opaque) += (uint64_t)r->agg->count;
}

typedef struct recs {
        unsigned char *buf;
        size_t *off, *len;
        char (*keys)[32];
        size_t n;
} recs_t;

static void make_records(recs_t *r, size_t n, int keys) {
        dmp_gen_opts_t o;
        dmp_gen_opts_init(&o);
        o.keys = keys;
        o.seed = 42;
        o.step_ms = 1;
        o.ooo = 0.0;
        dmp_gen_t g;
        dmp_gen_init(&g, &o);
        r->buf = dmp_malloc(n * 96);
        r->off = dmp_malloc(n * sizeof(size_t));
        r->len = dmp_malloc(n * sizeof(size_t));
        r->keys = dmp_malloc(n * 32);
        size_t pos = 0, kl;
        for (size_t i = 0; i < n; i++) {
                r->off[i] = pos;
                r->len[i] = dmp_gen_next(&g, r->buf + pos, r->keys[i], &kl);
                pos += r->len[i];
        }
        r->n = n;
}

static void free_records(recs_t *r) {
        free(r->buf);
        free(r->off);
        free(r->len);
        free(r->keys);
}

/* windows 0: the whole core pipeline -- a tumbling window per key, a
 * group (segment) with running and windowed statistics, a topk over the
 * groups and an anomaly miner over the keys. */
static const char *conf_text(int windows) {
        if (windows == 0)
                return "[input]\ntopic = bench\nschema = schemas/event.avsc\n"
                       "key.field = user_id\ntime.field = ts\n"
                       "[measure score]\nexpr = 0.7*price + 0.3*quantity\n"
                       "[window w]\ntype = tumbling\nsize.ms = 10000\n"
                       "[group seg]\nfield = segment\nwindows = w\ntopic = g\n"
                       "[pattern top]\nkind = topk\nwindow = w\nsource = group:seg\n"
                       "measure = score\nk = 3\ntopic = p\n"
                       "[pattern odd]\nkind = anomaly\nwindow = w\nmeasure = score\n"
                       "z = 3\nmin.count = 5\ntopic = p\n"
                       "[output]\ntopic = out\n";
        return windows == 1 ? "[input]\ntopic = bench\nschema = schemas/event.avsc\n"
                              "key.field = user_id\ntime.field = ts\n"
                              "[measure score]\nexpr = 0.7*price + 0.3*quantity\n"
                              "[window w]\ntype = tumbling\nsize.ms = 10000\n"
                              "[output]\ntopic = out\n"
                            : "[input]\ntopic = bench\nschema = schemas/event.avsc\n"
                              "key.field = user_id\ntime.field = ts\n"
                              "[measure score]\nexpr = 0.7*price + 0.3*quantity\n"
                              "[window w]\ntype = hopping\nsize.ms = 10000\nadvance.ms = 2000\n"
                              "[output]\ntopic = out\n";
}

/* One row's timings: decode alone, processing and commits, in seconds. */
typedef struct timing {
        double decode_s, proc_s, commit_s;
        uint64_t entries;
} timing_t;

/* Runs the records through a fresh engine of the given shape. 0 on success. */
static int run_shape(int windows, const recs_t *r, timing_t *tm) {
        size_t n = r->n;
        char dir[] = "/tmp/dmpflow-bench-XXXXXX";
        if (!mkdtemp(dir))
                return -1;
        dmp_conf_t *conf = dmp_conf_new();
        char over[128];
        snprintf(over, sizeof(over), "state.dir=%s", dir);
        if (dmp_conf_load_string(conf, "bench", conf_text(windows)) ||
            dmp_conf_set_override(conf, over) || dmp_conf_validate(conf)) {
                fputs(conf->errors, stderr);
                return -1;
        }
        uint64_t emitted = 0;
        int cfg_err;
        char err[512];
        dmp_engine_sink_t sink = {.result = noop_emit, .opaque = &emitted};
        dmp_engine_t *e = dmp_engine_new(conf, &sink, &cfg_err, err, sizeof(err));
        if (!e) {
                fprintf(stderr, "engine: %s\n%s", err, conf->errors ? conf->errors : "");
                return -1;
        }
        int64_t next;
        dmp_engine_partition_open(e, 0, &next, err, sizeof(err));

        /* decode alone, same records */
        char *schema = dmp_read_file("schemas/event.avsc", NULL, err, sizeof(err));
        dmp_decoder_t *d = schema ? dmp_decoder_new(schema, "user_id", "ts", err, sizeof(err))
                                  : NULL;
        free(schema);
        if (!d) {
                fprintf(stderr, "decoder: %s\n", err);
                return -1;
        }
        dmp_event_t ev;
        double t0 = now_s();
        for (size_t i = 0; i < n; i++)
                dmp_decoder_decode(d, r->buf + r->off[i], r->len[i], &ev, err, sizeof(err));
        tm->decode_s = now_s() - t0;
        dmp_decoder_destroy(d);

        tm->proc_s = tm->commit_s = 0;
        for (size_t i = 0; i < n; i += 100000) {
                size_t end = i + 100000 < n ? i + 100000 : n;
                t0 = now_s();
                for (size_t j = i; j < end; j++)
                        dmp_engine_process(e, 0, (int64_t)j, NULL, 0, 0, r->buf + r->off[j],
                                           r->len[j], err, sizeof(err));
                tm->proc_s += now_s() - t0;
                t0 = now_s();
                dmp_engine_commit(e, err, sizeof(err));
                tm->commit_s += now_s() - t0;
        }
        tm->entries = dmp_engine_stats(e)->open_entries;
        dmp_engine_destroy(e);
        dmp_conf_destroy(conf);
        dmp_rmtree(dir);
        return 0;
}

/* Passes of the core row; the best is reported (as bench/decode_bench.c
 * does): the machine's noise only ever adds time. */
#define CORE_PASSES 3

int main(int argc, char **argv) {
        const char *out_path = argc > 1 ? argv[1] : "bench/results/windows.json";
        size_t n = argc > 2 ? (size_t)atol(argv[2]) : 3000000;
        dmp_log_level = DMP_LOG_WARN;
        FILE *out = fopen(out_path, "w");
        if (!out) {
                perror(out_path);
                return 1;
        }
        static const int key_counts[] = {1000, 100000, 1000000};
        printf("%-9s %-8s %12s %12s %12s %12s %10s\n", "keys", "windows", "total ns/ev",
               "decode ns/ev", "window ns/ev", "commit ms", "entries");
        int only_keys = argc > 3 ? atoi(argv[3]) : 0;
        int only_shape = argc > 4 ? (strcmp(argv[4], "core") ? atoi(argv[4]) : 0) : -1;
        for (size_t ki = 0; ki < DMP_ARRAY_SIZE(key_counts); ki++) {
                if (only_keys && key_counts[ki] != only_keys)
                        continue;
                recs_t r;
                make_records(&r, n, key_counts[ki]);
                static const int shapes[] = {1, 5, 0}; /* 0: the core pipeline */
                for (size_t si = 0; si < DMP_ARRAY_SIZE(shapes); si++) {
                        int windows = shapes[si];
                        if (only_shape >= 0 && windows != only_shape)
                                continue;
                        timing_t tm, best = {0};
                        int passes = windows ? 1 : CORE_PASSES;
                        for (int pass = 0; pass < passes; pass++) {
                                if (run_shape(windows, &r, &tm))
                                        return 1;
                                double best_decode = pass ? best.decode_s : tm.decode_s;
                                if (!pass ||
                                    tm.proc_s + tm.commit_s < best.proc_s + best.commit_s)
                                        best = tm;
                                best.decode_s = tm.decode_s < best_decode ? tm.decode_s
                                                                          : best_decode;
                        }
                        double total = best.proc_s * 1e9 / (double)n,
                               dec = best.decode_s * 1e9 / (double)n;
                        printf("%-9d %-8s %12.1f %12.1f %12.1f %12.1f %10" PRIu64 "\n",
                               key_counts[ki], windows ? (windows == 1 ? "1" : "5") : "core",
                               total, dec, total - dec, best.commit_s * 1e3, best.entries);
                        if (windows)
                                fprintf(out,
                                        "{\"keys\": %d, \"windows_per_event\": %d, \"events\": "
                                        "%zu, \"total_ns_per_event\": %.1f, "
                                        "\"decode_ns_per_event\": %.1f, \"window_ns_per_event\": "
                                        "%.1f, \"commit_ms_total\": %.1f}\n",
                                        key_counts[ki], windows, n, total, dec, total - dec,
                                        best.commit_s * 1e3);
                        else /* core: decode, measures, windows, groups, patterns and
                              * commits, all per event; the best of CORE_PASSES */
                                fprintf(out,
                                        "{\"keys\": %d, \"pipeline\": \"core\", \"events\": %zu, "
                                        "\"passes\": %d, \"core_ns_per_event\": %.1f, "
                                        "\"decode_ns_per_event\": %.1f, \"commit_ms_total\": "
                                        "%.1f}\n",
                                        key_counts[ki], n, passes,
                                        (best.proc_s + best.commit_s) * 1e9 / (double)n, dec,
                                        best.commit_s * 1e3);
                        fflush(stdout);
                }
                free_records(&r);
        }
        fclose(out);
        return 0;
}
