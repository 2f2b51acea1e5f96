/* Test pipelines over the test schemas (which fields a pipeline reads), and
 * decoders built for them: shared by the differential unit test, the fuzz
 * target, its seed generator and the decode benchmark. Paths are relative
 * to the repository root. */
#ifndef DMP_TEST_PIPELINES_H
#define DMP_TEST_PIPELINES_H

#include <avro.h>
#include <stddef.h>

#include "decoder.h"

#define TEST_MAX_NUMS 16

typedef struct test_pipeline {
        const char *schema_path; /* the reader schema */
        const char *key, *time;  /* "" for none */
        const char *nums[TEST_MAX_NUMS]; /* NULL-terminated */
        const char *writer_path; /* NULL: records are written with schema_path */
        const char *labels[DMP_MAX_LABELS + 1]; /* group fields, NULL-terminated */
} test_pipeline_t;

extern const test_pipeline_t test_pipelines[];
extern const size_t test_pipeline_cnt;

typedef struct test_fixture {
        const test_pipeline_t *pp;
        avro_schema_t schema; /* the test's own parse of the writer schema, for the
                               * generator */
        dmp_decoder_t *dec;
        int slots[TEST_MAX_NUMS];
        int nnums;
        int label_slots[DMP_MAX_LABELS];
        int nlabels;
} test_fixture_t;

/* Builds the decoder of pp. Returns 0, or -1 with errstr set. */
int test_fixture_open(test_fixture_t *fx, const test_pipeline_t *pp, char *errstr,
                      size_t errstr_size);
void test_fixture_close(test_fixture_t *fx);

/* Compares two events of fx's pipeline: key bytes (if a key field is
 * configured), time, defined bits, each defined number bit for bit and
 * each label's bytes.
 * Returns 0 if equal, else -1 with the first difference in why. */
int test_event_compare(const test_fixture_t *fx, const dmp_event_t *a, const dmp_event_t *b,
                       char *why, size_t why_size);

/* The differential check of the fuzz targets: decodes rec with fx's
 * compiled plan and, if it accepts it, with Avro C's generic reader.
 * Returns 0 when they agree or the plan rejects the record with an error
 * class, else -1 with why. With resolvable_only, a pair Avro C cannot
 * resolve at all (its resolver fills no defaults) has no reference and
 * counts as agreement. */
int test_decode_differential(test_fixture_t *fx, const void *rec, size_t len,
                             int resolvable_only, char *why, size_t why_size);

/* A dmp_schema_provider_t that answers every id with the schema text
 * *(const char **)opaque. */
int test_fixed_provider(void *opaque, int32_t id, const char **json, char *errstr,
                        size_t errstr_size);

#endif
