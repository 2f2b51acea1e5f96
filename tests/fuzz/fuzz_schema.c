/* libFuzzer target: schema compile and resolution (`make fuzz`; fuzz.h).
 *
 * Input: byte 0 picks a reader pipeline (tests/support/pipelines.c: a
 * reader schema and the fields it reads); the bytes up to the first NUL are
 * the writer schema's JSON, which the fuzzer mutates, and the bytes after
 * it a record written with that schema. Byte 0's high bit sends the writer
 * schema the way the registry's do (dmp_decoder_set_confluent: fetched by
 * id, compiled against the reader and cached), else it is given to
 * dmp_decoder_set_writer (the [input] schema / reader.schema pair). Avro
 * C's schema parser, dmpflow's JSON side (avro_schema.c), the plan compiler
 * with its resolution rules (avro_compile.c) and the plan then run on
 * outside bytes.
 *
 * Invariants: a rejected writer schema or record carries a message and an
 * error class; a record the compiled plan accepts is also read by Avro C's
 * generic reader (resolving), to the same values, whenever Avro C can
 * resolve the pair at all (its resolver cannot fill defaults). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder.h"
#include "fuzz.h"
#include "pipelines.h"
#include "util.h"

static test_fixture_t *plain, *framed;
static const char *writer_json; /* the provider's answer for the current input */
static int32_t next_id;

int fuzz_schema_init(void) {
        plain = calloc(test_pipeline_cnt, sizeof(*plain));
        framed = calloc(test_pipeline_cnt, sizeof(*framed));
        for (size_t i = 0; i < test_pipeline_cnt; i++) {
                char err[512];
                if (test_fixture_open(&plain[i], &test_pipelines[i], err, sizeof(err)) ||
                    test_fixture_open(&framed[i], &test_pipelines[i], err, sizeof(err))) {
                        fprintf(stderr, "fuzz_schema: %s (run from the repository root)\n", err);
                        return -1;
                }
                dmp_decoder_set_confluent(framed[i].dec, test_fixed_provider, &writer_json);
                /* one writer at a time: each input's schema replaces the last */
                dmp_decoder_set_schema_cache(framed[i].dec, 1);
        }
        return 0;
}

void fuzz_schema_fini(void) {
        for (size_t i = 0; plain && i < test_pipeline_cnt; i++) {
                test_fixture_close(&plain[i]);
                test_fixture_close(&framed[i]);
        }
        free(plain);
        free(framed);
        plain = framed = NULL;
}

int fuzz_schema_one(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        const uint8_t *nul = memchr(data + 1, 0, size - 1);
        size_t jlen = nul ? (size_t)(nul - data - 1) : size - 1;
        char *json = dmp_strndup((const char *)data + 1, jlen);
        const uint8_t *rec = nul ? nul + 1 : data + size;
        size_t rlen = (size_t)(data + size - rec);
        char err[512] = "", why[512];
        dmp_event_t a;
        if (data[0] & 0x80) {
                /* the registry's way: a fresh id, so the schema is compiled anew */
                test_fixture_t *fx = &framed[(data[0] & 0x7f) % test_pipeline_cnt];
                unsigned char *buf = dmp_malloc(rlen + 5);
                int32_t id = next_id++ & 0x7fffffff;
                buf[0] = 0;
                dmp_be32_put(buf + 1, (uint32_t)id);
                memcpy(buf + 5, rec, rlen);
                writer_json = json;
                if (dmp_decoder_decode(fx->dec, buf, rlen + 5, &a, err, sizeof(err))) {
                        dmp_decode_err_t e = dmp_decoder_last_error(fx->dec);
                        if (e <= DMP_DECODE_OK || e >= DMP_DECODE__CNT || !*err) {
                                fprintf(stderr, "fuzz_schema: a rejected record without a "
                                        "class (%d) or message\n", (int)e);
                                abort();
                        }
                }
                free(buf);
                free(json);
                return 0;
        }
        test_fixture_t *fx = &plain[data[0] % test_pipeline_cnt];
        if (dmp_decoder_set_writer(fx->dec, json, err, sizeof(err))) {
                free(json);
                if (!*err) {
                        fprintf(stderr, "a rejected writer schema without a message\n");
                        abort();
                }
                return 0;
        }
        free(json);
        if (test_decode_differential(fx, rec, rlen, 1, why, sizeof(why))) {
                fprintf(stderr, "fuzz_schema: %s\n", why);
                abort();
        }
        return 0;
}

FUZZ_ENTRY(schema)
