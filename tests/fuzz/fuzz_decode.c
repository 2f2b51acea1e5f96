/* libFuzzer target over the decode path (`make fuzz`; fuzz.h).
 *
 * Input: byte 0 picks a test pipeline (tests/support/pipelines.c: a schema
 * and the fields it reads), the rest is the record. With byte 0's high bit
 * set, the rest is a record in the Confluent wire format instead, read as
 * schemas/event.avsc with writer schemas by id from a fixed provider (id 1:
 * event.avsc, 2: an incompatible schema, 3: "unavailable", others unknown). The compiled plan
 * decodes it; whatever it accepts must also be read by Avro C's generic
 * reader, to the same values (abort otherwise); whatever it rejects must
 * carry an error class. Under ASan/UBSan any out-of-bounds read or
 * undefined behaviour is a crash. Run from the repository root. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "decoder.h"
#include "fuzz.h"
#include "pipelines.h"

static test_fixture_t *fixtures;
static dmp_decoder_t *framed;
static char *event_json;

static int provider(void *opaque, int32_t id, const char **json, char *errstr,
                    size_t errstr_size) {
        (void)opaque;
        static const char incompatible[] =
                "{\"type\": \"record\", \"name\": \"Event\", \"namespace\": \"dmpflow.example\","
                " \"fields\": [{\"name\": \"price\", \"type\": \"string\"}]}";
        snprintf(errstr, errstr_size, "fuzz provider: id %d", (int)id);
        if (id == 1 || id == 2) {
                *json = id == 1 ? event_json : incompatible;
                return 0;
        }
        return id == 3 ? -1 : 1;
}

int fuzz_decode_init(void) {
        fixtures = calloc(test_pipeline_cnt, sizeof(*fixtures));
        for (size_t i = 0; i < test_pipeline_cnt; i++) {
                char err[512];
                if (test_fixture_open(&fixtures[i], &test_pipelines[i], err, sizeof(err))) {
                        fprintf(stderr, "fuzz_decode: %s (run from the repository root)\n", err);
                        return -1;
                }
        }
        char err[512];
        event_json = dmp_read_file("schemas/event.avsc", NULL, err, sizeof(err));
        if (!event_json || !(framed = dmp_decoder_new(event_json, "user_id", "ts", err,
                                                      sizeof(err))) ||
            dmp_decoder_num_field(framed, "price", err, sizeof(err)) < 0) {
                fprintf(stderr, "fuzz_decode: %s\n", err);
                return -1;
        }
        dmp_decoder_set_confluent(framed, provider, NULL);
        return 0;
}

void fuzz_decode_fini(void) {
        for (size_t i = 0; fixtures && i < test_pipeline_cnt; i++)
                test_fixture_close(&fixtures[i]);
        free(fixtures);
        fixtures = NULL;
        dmp_decoder_destroy(framed);
        framed = NULL;
        free(event_json);
        event_json = NULL;
}

int fuzz_decode_one(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        if (data[0] & 0x80) {
                dmp_event_t ev;
                char err[256];
                if (dmp_decoder_decode(framed, data + 1, size - 1, &ev, err, sizeof(err))) {
                        dmp_decode_err_t e = dmp_decoder_last_error(framed);
                        if (e <= DMP_DECODE_OK || e >= DMP_DECODE__CNT)
                                abort();
                }
                return 0;
        }
        test_fixture_t *fx = &fixtures[data[0] % test_pipeline_cnt];
        char why[512];
        if (test_decode_differential(fx, data + 1, size - 1, 0, why, sizeof(why))) {
                fprintf(stderr, "fuzz_decode: %s\n", why);
                abort();
        }
        return 0;
}

FUZZ_ENTRY(decode)
