/* Writes the seeds of the fuzz targets (tests/fuzz/fuzz_*.c) into DIR/<target>/
 * (`make fuzz-seeds`: tests/fuzz/seeds; `make fuzz-merge` minimizes them
 * into the kept corpora). Deterministic.
 *   decode    for every test pipeline, random valid records
 *             (tests/support/avro_gen.c) and hostile variants of each (cut
 *             short, a trailing byte, an 11-byte varint in front, an
 *             out-of-range first varint); Confluent-framed ones;
 *   schema    each pipeline with its own and the other test schemas as the
 *             writer, and a record of the writer;
 *   registry  answers: schemas (Avro, another type), errors, ids;
 *   config    the configurations of config/ and the fuzz engine's, with
 *             overrides;
 *   http      every route, with ?last= values;
 *   state     what a real engine stored (fuzz_engine.h's pipeline after a
 *             run of events), as planting records, then events, ticks,
 *             queries and commits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sys/stat.h>

#include "avro_gen.h"
#include "fuzz_engine.h"
#include "pipelines.h"
#include "store.h"

static int seeds;

/* DIR/<target>/<name>: bytes. */
static void put_file(const char *dir, const char *target, const char *name, const void *p,
                     size_t n) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, target);
        mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/%s/%s", dir, target, name);
        FILE *fp = fopen(path, "wb");
        if (!fp || fwrite(p, 1, n, fp) != n) {
                perror(path);
                exit(1);
        }
        fclose(fp);
        seeds++;
}

static void put(const char *dir, size_t pipe, const char *what, int i, const unsigned char *rec,
                size_t n) {
        char path[512];
        snprintf(path, sizeof(path), "%s/decode", dir);
        mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/decode/p%zu-%s-%d", dir, pipe, what, i);
        FILE *fp = fopen(path, "wb");
        if (!fp) {
                perror(path);
                exit(1);
        }
        unsigned char sel = (unsigned char)pipe;
        fwrite(&sel, 1, 1, fp);
        fwrite(rec, 1, n, fp);
        fclose(fp);
        seeds++;
}


/* ---- schema: (pipeline, writer schema, record of it) ---- */

static const char *const schema_files[] = {
        "schemas/event.avsc", "tests/schemas/every_type.avsc", "tests/schemas/recursive.avsc",
        "tests/schemas/wide_event.avsc", "tests/schemas/poison_event.avsc",
        "tests/schemas/evolution/writer_v1.avsc", "tests/schemas/evolution/reader_added.avsc",
        "tests/schemas/evolution/reader_promoted.avsc",
        "tests/schemas/evolution/reader_strict.avsc", "schemas/nexmark_bid.avsc"};

static void schema_seeds(const char *dir) {
        static unsigned char buf[1 << 17];
        char err[512], name[64];
        for (size_t p = 0; p < test_pipeline_cnt; p++) {
                for (size_t f = 0; f < sizeof(schema_files) / sizeof(schema_files[0]); f++) {
                        size_t jl;
                        char *json = dmp_read_file(schema_files[f], &jl, err, sizeof(err));
                        avro_schema_t sch;
                        if (!json || avro_schema_from_json_length(json, jl, &sch)) {
                                fprintf(stderr, "make_seeds: %s: %s\n", schema_files[f], err);
                                exit(1);
                        }
                        /* every pipeline with its own schema; the others with a few */
                        int own = !strcmp(schema_files[f], test_pipelines[p].writer_path
                                                                   ? test_pipelines[p].writer_path
                                                                   : test_pipelines[p].schema_path);
                        if (!own && (p + f) % 3) {
                                avro_schema_decref(sch);
                                free(json);
                                continue;
                        }
                        avro_gen_t g;
                        avro_gen_init(&g, 77 + p * 31 + f);
                        for (int framed = 0; framed < 2; framed++) {
                                buf[0] = (unsigned char)(p | (framed ? 0x80 : 0));
                                memcpy(buf + 1, json, jl);
                                buf[1 + jl] = 0;
                                size_t n = avro_gen_record(&g, sch, buf + 2 + jl,
                                                           sizeof(buf) - 2 - jl);
                                if (n > 2000)
                                        n = 0; /* keep seeds small: the schema alone */
                                snprintf(name, sizeof(name), "p%zu-s%zu%s", p, f,
                                         framed ? "-framed" : "");
                                put_file(dir, "schema", name, buf, 2 + jl + n);
                        }
                        avro_schema_decref(sch);
                        free(json);
                }
        }
}

/* ---- registry: (question, status, body) ---- */

static void registry_seed(const char *dir, const char *name, int what, int status_index,
                          const char *body) {
        size_t n = strlen(body);
        unsigned char *b = dmp_malloc(n + 2);
        b[0] = (unsigned char)what;
        b[1] = (unsigned char)status_index;
        memcpy(b + 2, body, n);
        put_file(dir, "registry", name, b, n + 2);
        free(b);
}

static void registry_seeds(const char *dir) {
        char err[512];
        const char *files[] = {"schemas/event.avsc", "tests/schemas/evolution/writer_v1.avsc",
                               "tests/schemas/every_type.avsc"};
        for (int i = 0; i < 3; i++) {
                char *json = dmp_read_file(files[i], NULL, err, sizeof(err));
                json_t *j = json_pack("{s:s}", "schema", json);
                char *body = json_dumps(j, JSON_COMPACT);
                char name[64];
                snprintf(name, sizeof(name), "schema-%d", i);
                registry_seed(dir, name, 0, 0, body); /* 200 */
                json_object_set_new(j, "schemaType", json_string(i ? "PROTOBUF" : "AVRO"));
                free(body);
                body = json_dumps(j, JSON_COMPACT);
                snprintf(name, sizeof(name), "schema-typed-%d", i);
                registry_seed(dir, name, 0, 0, body);
                free(body);
                json_decref(j);
                free(json);
        }
        registry_seed(dir, "not-found", 0, 1,
                      "{\"error_code\":40403,\"message\":\"Schema 7 not found\"}");
        registry_seed(dir, "unauthorized", 0, 3, "{\"error_code\":401,\"message\":\"Unauthorized\"}");
        registry_seed(dir, "server-error", 0, 7, "<html><body>500</body></html>");
        registry_seed(dir, "no-answer", 0, 2, "");
        registry_seed(dir, "schema-not-string", 0, 0, "{\"schema\": {\"type\": \"record\"}}");
        registry_seed(dir, "schema-escaped", 0, 0,
                      "{\"schema\":\"{\\\"type\\\":\\\"record\\\",\\\"name\\\":\\\"E\\\","
                      "\\\"fields\\\":[{\\\"name\\\":\\\"user_id\\\",\\\"type\\\":\\\"string\\\"},"
                      "{\\\"name\\\":\\\"ts\\\",\\\"type\\\":\\\"long\\\"},{\\\"name\\\":"
                      "\\\"price\\\",\\\"type\\\":\\\"float\\\"}]}\"}");
        /* a schema with a Confluent reference, then (after a NUL) the referenced one */
        static const char refs[] =
                "\x00\x00{\"schema\":\"{\\\"type\\\":\\\"record\\\",\\\"name\\\":"
                "\\\"Event\\\",\\\"namespace\\\":\\\"dmpflow.example\\\",\\\"fields"
                "\\\":[{\\\"name\\\":\\\"user_id\\\",\\\"type\\\":\\\"string\\\"},"
                "{\\\"name\\\":\\\"segment\\\",\\\"type\\\":\\\"a.Seg\\\"}]}\","
                "\"references\":[{\"name\":\"a.Seg\",\"subject\":\"seg-value\",\"version\":1}]}"
                "\x00{\"schema\":\"{\\\"type\\\":\\\"record\\\",\\\"name\\\":\\\"Seg\\\","
                "\\\"namespace\\\":\\\"a\\\",\\\"fields\\\":[{\\\"name\\\":\\\"v\\\","
                "\\\"type\\\":\\\"string\\\"}]}\"}";
        put_file(dir, "registry", "schema-references", refs, sizeof(refs) - 1);
        registry_seed(dir, "register-ok", 1, 0, "{\"id\": 42}");
        registry_seed(dir, "register-big", 1, 0, "{\"id\": 4294967297}");
        registry_seed(dir, "register-neg", 1, 0, "{\"id\": -1}");
        registry_seed(dir, "register-conflict", 1, 5,
                      "{\"error_code\":409,\"message\":\"Schema being registered is "
                      "incompatible with an earlier schema\"}");
        registry_seed(dir, "register-unprocessable", 1, 6,
                      "{\"error_code\":42201,\"message\":\"Invalid schema\"}");
}

/* ---- config: INI text, then NUL-separated overrides ---- */

static void config_seeds(const char *dir) {
        char err[512];
        const char *files[] = {"config/dmpflow.conf", "config/demo.conf", "config/compose.conf"};
        for (int i = 0; i < 3; i++) {
                size_t n;
                char *text = dmp_read_file(files[i], &n, err, sizeof(err));
                if (!text) {
                        fprintf(stderr, "make_seeds: %s\n", err);
                        exit(1);
                }
                char name[64];
                snprintf(name, sizeof(name), "conf-%d", i);
                put_file(dir, "config", name, text, n);
                const char ov[] = "\0state.dir=/tmp/x\0kafka.sasl.password=hunter22\0"
                                  "input.registry.url=http://u:p@host:8081\0window.nope=1";
                char *b = dmp_malloc(n + sizeof(ov));
                memcpy(b, text, n);
                memcpy(b + n, ov, sizeof(ov) - 1);
                snprintf(name, sizeof(name), "conf-%d-overrides", i);
                put_file(dir, "config", name, b, n + sizeof(ov) - 1);
                free(b);
                free(text);
        }
        char text[sizeof(fuzz_engine_conf) + 64];
        snprintf(text, sizeof(text), fuzz_engine_conf, "/tmp/never-opened");
        put_file(dir, "config", "fuzz-engine", text, strlen(text));
        const char bad[] = "[input]\ntopic = t\nschema = s\n  format = confluent\n"
                           "[window w]\nsize.ms = 99999999999999999999\n[measure m]\n"
                           "expr = 0.5*price + -2e3*quantity - clicks\n[output]\ntopic=o\n"
                           "[kafka]\nssl.key.password = secret ;comment\n[group g]\n"
                           "bucket.measure = m\nbucket.width = 0.25\ntopic = g\n"
                           "[pattern p]\nkind = anomaly\nwindow = w\nmeasure = m\n"
                           "source = group:g\nz = nan\ntopic = p\n";
        put_file(dir, "config", "bad", bad, sizeof(bad) - 1);
}

/* ---- http: endpoint (open or with auth), then a raw request ---- */

static void http_seeds(const char *dir) {
        static const char *const targets[] = {
                "/metrics", "/healthz", "/readyz", "/", "/dmpflow.js", "/dmpflow.css",
                "/api/status", "/api/results", "/state/windows/tum/alice",
                "/state/windows/hop/bob?last=3", "/state/windows/ses/alice",
                "/state/windows/tum/", "/state/windows/nope/x", "/state/groups/seg",
                "/state/groups/seg/a", "/state/groups/bucket", "/state/groups/nope",
                "/state/patterns/topseg?last=100", "/state/patterns/topkey?last=0",
                "/state/patterns/odd?last=abc", "/state/patterns/high?x=1", "/state/patterns/",
                "/state/nope", "/nope", "/state/windows/tum/k%22%5Cey%2F%C3%A9",
                "/state/windows/tum/%ff%00x", "/api/status?last=2"};
        static const char *const methods[] = {"GET", "HEAD", "GET", "POST", "GET", "OPTIONS"};
        char name[64];
        char buf[1024];
        for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
                const char *m = methods[i % 6];
                int auth = i % 4 == 3;
                int n = snprintf(buf + 1, sizeof(buf) - 1,
                                 "%s %s HTTP/1.%d\r\nHost: localhost\r\n%s%s\r\n%s", m, targets[i],
                                 i % 5 ? 1 : 0, auth ? "Authorization: Basic ZnV6ejpwdw==\r\n" : "",
                                 !strcmp(m, "POST") ? "Content-Length: 4\r\n" : "",
                                 !strcmp(m, "POST") ? "body" : "");
                buf[0] = (char)(i % 4 == 1 || auth);
                snprintf(name, sizeof(name), "request-%zu", i);
                put_file(dir, "http", name, buf, (size_t)n + 1);
        }
        static const char pipelined[] = "\x00GET /healthz HTTP/1.1\r\n\r\nGET /state/groups/seg "
                                        "HTTP/1.1\r\nExpect: 100-continue\r\n\r\n";
        put_file(dir, "http", "pipelined", pipelined, sizeof(pipelined) - 1);
}

/* ---- state: what a real engine stored, as fuzz_state.c's records ---- */

typedef struct rec_buf {
        unsigned char *p;
        size_t n, cap;
} rec_buf_t;

static void rb_put(rec_buf_t *b, const void *p, size_t n) {
        if (b->n + n > b->cap)
                b->p = dmp_realloc(b->p, b->cap = (b->n + n) * 2 + 64);
        memcpy(b->p + b->n, p, n);
        b->n += n;
}

static void rb_u(rec_buf_t *b, uint64_t v, int bytes) {
        for (int i = bytes - 1; i >= 0; i--) {
                unsigned char c = (unsigned char)(v >> (8 * i));
                rb_put(b, &c, 1);
        }
}

static rec_buf_t state_rb;

static int state_entry(void *opaque, int win, const char *key, size_t key_len, int64_t start,
                       const void *val, size_t val_len) {
        (void)opaque;
        rb_u(&state_rb, 0, 1);
        rb_u(&state_rb, (uint64_t)win, 1);
        rb_u(&state_rb, key_len, 1);
        rb_put(&state_rb, key, key_len);
        rb_u(&state_rb, (uint64_t)start, 8);
        rb_u(&state_rb, val_len, 2);
        rb_put(&state_rb, val, val_len);
        return 0;
}

static int state_group_op;

static int state_group(void *opaque, const char *key, size_t key_len, const void *val,
                       size_t val_len) {
        (void)opaque;
        rb_u(&state_rb, (uint64_t)state_group_op, 1);
        rb_u(&state_rb, key_len, 1);
        rb_put(&state_rb, key, key_len);
        rb_u(&state_rb, val_len, 2);
        rb_put(&state_rb, val, val_len);
        return 0;
}

static void state_seeds(const char *dir) {
        fuzz_engine_t fe = {0};
        if (fuzz_engine_open(&fe))
                exit(1);
        char err[512];
        int64_t next;
        static const char *const users[] = {"alice", "bob", "carol", "dave"};
        static const char *const segs[] = {"a", "b", "a", "c"};
        if (dmp_engine_partition_open(fe.e, 0, &next, err, sizeof(err)))
                exit(1);
        for (int i = 0; i < 120; i++) {
                unsigned char buf[256];
                const char *u = users[i % 4], *sg = segs[(i / 4) % 4];
                size_t n = fuzz_event(buf, u, strlen(u), sg, strlen(sg), i / 2 + (i % 7 == 3 ? -20 : 0),
                                      (i * 13) % 17, i % 5, i % 3 ? i : -1);
                dmp_engine_process(fe.e, 0, i, NULL, 0, 0, buf, n, err, sizeof(err));
                if (i % 40 == 39) {
                        dmp_engine_emit_updates(fe.e);
                        dmp_engine_emit_groups(fe.e);
                        dmp_engine_commit(fe.e, err, sizeof(err));
                        dmp_engine_sync(fe.e, err, sizeof(err));
                }
        }
        dmp_store_t *st = dmp_engine_store(fe.e);
        int64_t stime;
        for (int variant = 0; variant < 4; variant++) {
                state_rb.n = 0;
                rb_u(&state_rb, 0, 1); /* byte 0 */
                dmp_store_get_meta(st, 0, &next, &stime, err, sizeof(err));
                rb_u(&state_rb, 3, 1);
                rb_u(&state_rb, (uint64_t)next, 8);
                rb_u(&state_rb, (uint64_t)stime, 8);
                if (variant != 1)
                        dmp_store_scan(st, 0, state_entry, NULL, err, sizeof(err));
                if (variant != 2) {
                        state_group_op = 1;
                        dmp_store_scan_groups(st, 0, state_group, NULL, err, sizeof(err));
                }
                if (variant == 3) {
                        state_group_op = 2;
                        dmp_store_scan_groups(st, -1, state_group, NULL, err, sizeof(err));
                }
                /* then: an event, a tick, queries, a commit */
                rb_u(&state_rb, 4, 1);
                rb_u(&state_rb, 5, 1);
                rb_put(&state_rb, "alice", 5);
                rb_u(&state_rb, 1, 1);
                rb_put(&state_rb, "a", 1);
                rb_u(&state_rb, (uint64_t)(stime + 3), 8);
                double price = 4.5;
                uint64_t pu;
                memcpy(&pu, &price, 8);
                rb_u(&state_rb, pu, 8);
                rb_u(&state_rb, 2, 4);
                rb_u(&state_rb, 7, 8);
                rb_u(&state_rb, 5, 1);
                rb_u(&state_rb, 50, 4);
                for (int q = 0; q < 3; q++) {
                        rb_u(&state_rb, 6, 1);
                        rb_u(&state_rb, (uint64_t)q, 1);
                        const char *nm = q == 0 ? "alice" : q == 1 ? "a" : "topseg";
                        rb_u(&state_rb, strlen(nm), 1);
                        rb_put(&state_rb, nm, strlen(nm));
                }
                rb_u(&state_rb, 7, 1);
                char name[32];
                snprintf(name, sizeof(name), "engine-%d", variant);
                put_file(dir, "state", name, state_rb.p, state_rb.n);
        }
        free(state_rb.p);
        fuzz_engine_close(&fe, 1);
}

int main(int argc, char **argv) {
        if (argc != 2 || (mkdir(argv[1], 0755) && errno != EEXIST)) {
                fprintf(stderr, "usage: make_seeds DIR\n");
                return 2;
        }
        static unsigned char rec[1 << 16], bad[(1 << 16) + 16];
        for (size_t p = 0; p < test_pipeline_cnt; p++) {
                test_fixture_t fx;
                char err[512];
                if (test_fixture_open(&fx, &test_pipelines[p], err, sizeof(err))) {
                        fprintf(stderr, "make_seeds: %s\n", err);
                        return 1;
                }
                avro_gen_t g;
                avro_gen_init(&g, 4242 + p);
                for (int i = 0; i < 4; i++) {
                        size_t n = avro_gen_record(&g, fx.schema, rec, sizeof(rec));
                        if (n == 0 || n > 4000)
                                continue; /* keep seeds small */
                        put(argv[1], p, "valid", i, rec, n);
                        put(argv[1], p, "cut", i, rec, n / 2);
                        memcpy(bad, rec, n);
                        bad[n] = 0x02;
                        put(argv[1], p, "trailing", i, bad, n + 1);
                        memcpy(bad, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11);
                        memcpy(bad + 11, rec, n);
                        put(argv[1], p, "varint11", i, bad, n + 11);
                        memcpy(bad, "\xff\xff\xff\xff\x0f", 5); /* -2^31 .. : a huge length or index */
                        memcpy(bad + 5, rec, n);
                        put(argv[1], p, "huge", i, bad, n + 5);
                }
                test_fixture_close(&fx);
        }
        /* Confluent framing (byte 0 = 0x80): ids 1-4 before an event.avsc record */
        test_fixture_t fx;
        char err[512];
        if (test_fixture_open(&fx, &test_pipelines[0], err, sizeof(err))) {
                fprintf(stderr, "make_seeds: %s\n", err);
                return 1;
        }
        avro_gen_t g;
        avro_gen_init(&g, 99);
        for (int id = 1; id <= 4; id++) {
                size_t n = avro_gen_record(&g, fx.schema, rec + 5, sizeof(rec) - 5);
                rec[0] = 0;
                rec[1] = rec[2] = rec[3] = 0;
                rec[4] = (unsigned char)id;
                put(argv[1], 0x80, "framed", id, rec, n + 5);
        }
        test_fixture_close(&fx);
        schema_seeds(argv[1]);
        registry_seeds(argv[1]);
        config_seeds(argv[1]);
        http_seeds(argv[1]);
        state_seeds(argv[1]);
        printf("make_seeds: %d seeds in %s\n", seeds, argv[1]);
        return 0;
}
