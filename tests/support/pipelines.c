#include "pipelines.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const test_pipeline_t test_pipelines[] = {
        {"schemas/event.avsc", "user_id", "ts", {"price", "quantity", "clicks"}},
        {"schemas/event.avsc", "", "", {"clicks"}},
        {"tests/schemas/every_type.avsc", "s", "t",
         {"i", "l", "f", "d", "ni", "ln", "fn", "dn", "multi", "tail"}},
        {"tests/schemas/every_type.avsc", "ks", "nt", {"tail", "multi", "i"}},
        {"tests/schemas/every_type.avsc", "i", "l", {"l"}},
        {"tests/schemas/every_type.avsc", "l", "i", {"fn"}},
        {"tests/schemas/every_type.avsc", "", "", {NULL}},
        {"tests/schemas/recursive.avsc", "label", "id", {"weight", "id"}},
        {"tests/schemas/wide_event.avsc", "user_id", "ts",
         {"price", "quantity", "discount", "clicks"}},
};
const size_t test_pipeline_cnt = sizeof(test_pipelines) / sizeof(test_pipelines[0]);

int test_fixture_open(test_fixture_t *fx, const test_pipeline_t *pp, char *errstr,
                      size_t errstr_size) {
        memset(fx, 0, sizeof(*fx));
        fx->pp = pp;
        char *json = dmp_read_file(pp->schema_path, NULL, errstr, errstr_size);
        if (!json)
                return -1;
        if (avro_schema_from_json_length(json, strlen(json), &fx->schema)) {
                fx->schema = NULL;
                snprintf(errstr, errstr_size, "%s: %s", pp->schema_path, avro_strerror());
                free(json);
                return -1;
        }
        fx->dec = dmp_decoder_new(json, pp->key, pp->time, errstr, errstr_size);
        free(json);
        if (!fx->dec) {
                test_fixture_close(fx);
                return -1;
        }
        for (; fx->nnums < TEST_MAX_NUMS && pp->nums[fx->nnums]; fx->nnums++) {
                fx->slots[fx->nnums] = dmp_decoder_num_field(fx->dec, pp->nums[fx->nnums],
                                                             errstr, errstr_size);
                if (fx->slots[fx->nnums] < 0) {
                        test_fixture_close(fx);
                        return -1;
                }
        }
        return 0;
}

void test_fixture_close(test_fixture_t *fx) {
        dmp_decoder_destroy(fx->dec);
        if (fx->schema)
                avro_schema_decref(fx->schema);
        fx->dec = NULL;
        fx->schema = NULL;
}

int test_event_compare(const test_fixture_t *fx, const dmp_event_t *a, const dmp_event_t *b,
                       char *why, size_t why_size) {
        if (*fx->pp->key && (a->key_len != b->key_len || memcmp(a->key, b->key, a->key_len))) {
                snprintf(why, why_size, "key differs (%zu vs %zu bytes)", a->key_len,
                         b->key_len);
                return -1;
        }
        if (a->has_time != b->has_time || (a->has_time && a->time_ms != b->time_ms)) {
                snprintf(why, why_size, "time %lld vs %lld", (long long)a->time_ms,
                         (long long)b->time_ms);
                return -1;
        }
        if (a->defined != b->defined) {
                snprintf(why, why_size, "defined %llx vs %llx", a->defined, b->defined);
                return -1;
        }
        for (int i = 0; i < fx->nnums; i++) {
                int s = fx->slots[i];
                if ((a->defined >> s & 1) && memcmp(&a->num[s], &b->num[s], sizeof(double))) {
                        snprintf(why, why_size, "%s = %.17g vs %.17g", fx->pp->nums[i],
                                 a->num[s], b->num[s]);
                        return -1;
                }
        }
        return 0;
}
