/* libFuzzer target over the decode path (`make fuzz`).
 *
 * Input: byte 0 picks a test pipeline (tests/support/pipelines.c: a schema
 * and the fields it reads), the rest is the record. The compiled plan
 * decodes it; whatever it accepts must also be read by Avro C's generic
 * reader, to the same values (abort otherwise); whatever it rejects must
 * carry an error class. Under ASan/UBSan any out-of-bounds read or
 * undefined behaviour is a crash. Run from the repository root. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "decoder.h"
#include "pipelines.h"

static test_fixture_t *fixtures;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        fixtures = calloc(test_pipeline_cnt, sizeof(*fixtures));
        for (size_t i = 0; i < test_pipeline_cnt; i++) {
                char err[512];
                if (test_fixture_open(&fixtures[i], &test_pipelines[i], err, sizeof(err))) {
                        fprintf(stderr, "fuzz_decode: %s (run from the repository root)\n", err);
                        abort();
                }
        }
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        test_fixture_t *fx = &fixtures[data[0] % test_pipeline_cnt];
        dmp_event_t a, b;
        char err[256], why[256];
        if (dmp_decoder_decode(fx->dec, data + 1, size - 1, &a, err, sizeof(err))) {
                dmp_decode_err_t e = dmp_decoder_last_error(fx->dec);
                if (e <= DMP_DECODE_OK || e >= DMP_DECODE__CNT)
                        abort();
                return 0;
        }
        if (dmp_decoder_decode_generic(fx->dec, data + 1, size - 1, &b, err, sizeof(err))) {
                fprintf(stderr, "%s: the plan accepted a record Avro C rejects: %s\n",
                        fx->pp->schema_path, err);
                abort();
        }
        if (test_event_compare(fx, &a, &b, why, sizeof(why))) {
                fprintf(stderr, "%s: plan and Avro C differ: %s\n", fx->pp->schema_path, why);
                abort();
        }
        return 0;
}
