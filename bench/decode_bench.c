/* Decode cost per record: the compiled plan (dmp_decoder_decode) against
 * Avro C's generic reader, on the same records in memory.
 *
 *   plan     dmp_decoder_decode: key, time and the numeric fields
 *   generic  avro_value_read into a reused generic value (what a C user of
 *            Avro C writes), fields not even extracted
 *   ref      dmp_decoder_decode_generic: the reference used by the tests
 *            (plan as a bounds gate + Avro C + field extraction)
 *
 * Data sets:
 *   event       schemas/event.avsc events from the project's generator
 *               (6 fields; the pipeline reads key, time and 3 numbers)
 *   wide_event  tests/schemas/wide_event.avsc, typical values (10 fields;
 *               key, time and 4 numbers; nullable fields null 10-70 %)
 *   wide random the same schema, tests/support/avro_gen.c's edge-heavy
 *               random values (random lengths, 10-byte varints, NaNs,
 *               random union branches: the worst case for prediction)
 * Each figure is the best of REPEAT passes over N records, single thread.
 * Usage: decode_bench [N] (run from the repository root). */
#include <avro.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "avro_enc.h"
#include "avro_gen.h"
#include "decoder.h"
#include "gen.h"
#include "util.h"

#define REPEAT 7

typedef enum { DATA_GEN, DATA_TYPICAL_WIDE, DATA_RANDOM } data_kind_t;

typedef struct dataset {
        const char *name;
        data_kind_t kind;
        const char *schema_path;
        const char *key, *time;
        const char *nums[8];
        unsigned char *data;
        size_t *off, *len;
        size_t n;
} dataset_t;

static double now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what, const char *err) {
        fprintf(stderr, "decode_bench: %s: %s\n", what, err);
        exit(1);
}

static void add_record(dataset_t *ds, size_t *cap, const unsigned char *rec, size_t n,
                       size_t i) {
        size_t at = i ? ds->off[i - 1] + ds->len[i - 1] : 0;
        while (at + n > *cap)
                ds->data = dmp_realloc(ds->data, *cap *= 2);
        memcpy(ds->data + at, rec, n);
        ds->off[i] = at;
        ds->len[i] = n;
}

static uint64_t lcg(uint64_t *rng) {
        *rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
        return *rng >> 33;
}
#define RND() lcg(rng)

/* One typical wide_event record (see tests/schemas/wide_event.avsc). */
static size_t typical_wide(unsigned char *buf, uint64_t *rng, int64_t i) {
        char s[64];
        unsigned char *p = buf;
        int n = snprintf(s, sizeof(s), "user-%u", (unsigned)(RND() % 10000));
        p = dmp_avro_put_string(p, s, (size_t)n);
        n = snprintf(s, sizeof(s), "%08x%08x", (unsigned)RND(), (unsigned)RND());
        p = dmp_avro_put_string(p, s, (size_t)n);
        p = dmp_avro_put_long(p, 1700000000000 + i * 7);
        p = dmp_avro_put_long(p, (int64_t)(RND() % 4));
        p = dmp_avro_put_double(p, (double)(RND() % 100000) / 100.0);
        p = dmp_avro_put_long(p, (int64_t)(1 + RND() % 10));
        if (RND() % 10 < 7) {
                p = dmp_avro_put_long(p, 0);
        } else {
                float f = (float)(RND() % 50) / 100.0f;
                p = dmp_avro_put_long(p, 1);
                memcpy(p, &f, 4); /* little endian hosts */
                p += 4;
        }
        if (RND() % 10 == 0) {
                p = dmp_avro_put_long(p, 0);
        } else {
                p = dmp_avro_put_long(p, 1);
                p = dmp_avro_put_long(p, (int64_t)(RND() % 20));
        }
        *p++ = (unsigned char)(RND() & 1);
        if (RND() % 10 < 6) {
                p = dmp_avro_put_long(p, 0);
        } else {
                p = dmp_avro_put_long(p, 1);
                p = dmp_avro_put_string(p, "https://example.com/landing", 27);
        }
        return (size_t)(p - buf);
}

static void fill(dataset_t *ds, size_t n) {
        size_t cap = 1 << 20;
        ds->data = dmp_malloc(cap);
        ds->off = dmp_malloc(n * sizeof(size_t));
        ds->len = dmp_malloc(n * sizeof(size_t));
        ds->n = n;
        unsigned char rec[1 << 16];
        if (ds->kind == DATA_TYPICAL_WIDE) {
                uint64_t rng = 12345;
                for (size_t i = 0; i < n; i++)
                        add_record(ds, &cap, rec, typical_wide(rec, &rng, (int64_t)i), i);
                return;
        }
        if (ds->kind == DATA_GEN) {
                dmp_gen_opts_t o;
                dmp_gen_opts_init(&o);
                o.keys = 10000;
                dmp_gen_t g;
                dmp_gen_init(&g, &o);
                char key[64];
                size_t kl;
                for (size_t i = 0; i < n; i++)
                        add_record(ds, &cap, rec, dmp_gen_next(&g, rec, key, &kl), i);
                return;
        }
        char err[256];
        char *json = dmp_read_file(ds->schema_path, NULL, err, sizeof(err));
        if (!json)
                die(ds->schema_path, err);
        avro_schema_t s;
        if (avro_schema_from_json_length(json, strlen(json), &s))
                die(ds->schema_path, avro_strerror());
        free(json);
        avro_gen_t g;
        avro_gen_init(&g, 7);
        for (size_t i = 0; i < n; i++) {
                size_t l = avro_gen_record(&g, s, rec, sizeof(rec));
                if (!l)
                        die(ds->schema_path, "record too large");
                add_record(ds, &cap, rec, l, i);
        }
        avro_schema_decref(s);
}

typedef int(decode_fn)(dmp_decoder_t *, const void *, size_t, dmp_event_t *, char *, size_t);

/* Best ns/record over REPEAT passes. The loop consumes only a cheap
 * digest of each event (as the engine would read it anyway). */
static double time_decoder(dataset_t *ds, dmp_decoder_t *d, decode_fn *fn) {
        double best = 1e300;
        char err[256];
        uint64_t digest = 0;
        for (int r = 0; r < REPEAT; r++) {
                double t0 = now_ns();
                for (size_t i = 0; i < ds->n; i++) {
                        dmp_event_t ev;
                        if (fn(d, ds->data + ds->off[i], ds->len[i], &ev, err, sizeof(err)))
                                die("decode", err);
                        digest += (uint64_t)ev.time_ms ^ ev.defined ^ ev.key_len;
                }
                double t = (now_ns() - t0) / (double)ds->n;
                if (t < best)
                        best = t;
        }
        if (digest == 42)
                printf(" "); /* keeps the digest alive */
        return best;
}

/* Checks, untimed, that the plan and the reference agree on every record
 * (key bytes, time, defined bits, each defined number bit for bit). */
static void verify(dataset_t *ds, dmp_decoder_t *d) {
        char err[256];
        for (size_t i = 0; i < ds->n; i++) {
                dmp_event_t a, b;
                const unsigned char *rec = ds->data + ds->off[i];
                if (dmp_decoder_decode(d, rec, ds->len[i], &a, err, sizeof(err)) ||
                    dmp_decoder_decode_generic(d, rec, ds->len[i], &b, err, sizeof(err)))
                        die("decode", err);
                int same = a.key_len == b.key_len && !memcmp(a.key, b.key, a.key_len) &&
                           a.time_ms == b.time_ms && a.defined == b.defined;
                for (int k = 0; k < DMP_MAX_NUM_FIELDS && same; k++)
                        if (a.defined >> k & 1)
                                same = !memcmp(&a.num[k], &b.num[k], sizeof(double));
                if (!same)
                        die(ds->name, "the plan and the reference disagree");
        }
}

static double time_avro_c(dataset_t *ds) {
        char err[256];
        char *json = dmp_read_file(ds->schema_path, NULL, err, sizeof(err));
        if (!json)
                die(ds->schema_path, err);
        avro_schema_t s;
        if (avro_schema_from_json_length(json, strlen(json), &s))
                die(ds->schema_path, avro_strerror());
        free(json);
        avro_value_iface_t *iface = avro_generic_class_from_schema(s);
        avro_value_t v;
        avro_generic_value_new(iface, &v);
        avro_reader_t rd = avro_reader_memory("", 0);
        double best = 1e300;
        for (int r = 0; r < REPEAT; r++) {
                double t0 = now_ns();
                for (size_t i = 0; i < ds->n; i++) {
                        avro_reader_memory_set_source(rd, (const char *)ds->data + ds->off[i],
                                                      (int64_t)ds->len[i]);
                        avro_value_reset(&v);
                        if (avro_value_read(rd, &v))
                                die("avro_value_read", avro_strerror());
                }
                double t = (now_ns() - t0) / (double)ds->n;
                if (t < best)
                        best = t;
        }
        avro_reader_free(rd);
        avro_value_decref(&v);
        avro_value_iface_decref(iface);
        avro_schema_decref(s);
        return best;
}

int main(int argc, char **argv) {
        size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 200000;
        dataset_t sets[] = {
                {.name = "event (6 fields, 5 read)", .kind = DATA_GEN,
                 .schema_path = "schemas/event.avsc", .key = "user_id", .time = "ts",
                 .nums = {"price", "quantity", "clicks"}},
                {.name = "wide_event (10 fields, 6 read)", .kind = DATA_TYPICAL_WIDE,
                 .schema_path = "tests/schemas/wide_event.avsc", .key = "user_id", .time = "ts",
                 .nums = {"price", "quantity", "discount", "clicks"}},
                {.name = "wide_event random values", .kind = DATA_RANDOM,
                 .schema_path = "tests/schemas/wide_event.avsc", .key = "user_id", .time = "ts",
                 .nums = {"price", "quantity", "discount", "clicks"}},
        };
        /* bench/results/decode.json: the figures of the first data set (the
         * typical event) for bench/run.py's summary */
        FILE *js = fopen(argc > 2 ? argv[2] : "bench/results/decode.json", "w");
        printf("decode cost per record, best of %d passes over %zu records, 1 thread\n", REPEAT,
               n);
        printf("%-32s %9s %12s %12s %9s %7s\n", "data set", "bytes/rec", "plan ns",
               "avro-c ns", "ref ns", "speedup");
        for (size_t k = 0; k < sizeof(sets) / sizeof(sets[0]); k++) {
                dataset_t *ds = &sets[k];
                fill(ds, n);
                char err[512];
                char *json = dmp_read_file(ds->schema_path, NULL, err, sizeof(err));
                if (!json)
                        die(ds->schema_path, err);
                dmp_decoder_t *d = dmp_decoder_new(json, ds->key, ds->time, err, sizeof(err));
                free(json);
                if (!d)
                        die(ds->schema_path, err);
                for (int i = 0; ds->nums[i]; i++)
                        if (dmp_decoder_num_field(d, ds->nums[i], err, sizeof(err)) < 0)
                                die(ds->nums[i], err);
                verify(ds, d);
                double plan = time_decoder(ds, d, dmp_decoder_decode);
                double ref = time_decoder(ds, d, dmp_decoder_decode_generic);
                double avroc = time_avro_c(ds);
                size_t bytes = ds->off[n - 1] + ds->len[n - 1];
                printf("%-32s %9.1f %12.1f %12.1f %9.1f %6.1fx\n", ds->name,
                       (double)bytes / (double)n, plan, avroc, ref, avroc / plan);
                if (js && k == 0)
                        fprintf(js, "{\"data_set\": \"%s\", \"decode_ns_compiled\": %.1f, "
                                    "\"decode_ns_avro_generic\": %.1f, \"decode_ns_reference\": "
                                    "%.1f}\n", ds->name, plan, avroc, ref);
                dmp_decoder_destroy(d);
                free(ds->data);
                free(ds->off);
                free(ds->len);
        }
        if (js)
                fclose(js);
        return 0;
}
