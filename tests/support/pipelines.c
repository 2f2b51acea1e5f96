#include "pipelines.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVERY "tests/schemas/every_type.avsc"
#define EVO "tests/schemas/evolution/"

const test_pipeline_t test_pipelines[] = {
        {.schema_path = "schemas/event.avsc", .key = "user_id", .time = "ts",
         .nums = {"price", "quantity", "clicks"}},
        {.schema_path = "schemas/event.avsc", .key = "", .time = "", .nums = {"clicks"}},
        {.schema_path = EVERY, .key = "s", .time = "t", .labels = {"ks", "s", "nt"},
         .nums = {"i", "l", "f", "d", "ni", "ln", "fn", "dn", "multi", "tail", "dec", "decn",
                  "decf"}},
        {.schema_path = EVERY, .key = "ks", .time = "nt", .nums = {"tail", "multi", "i"}},
        {.schema_path = EVERY, .key = "i", .time = "l", .nums = {"l"}},
        {.schema_path = EVERY, .key = "l", .time = "i", .nums = {"fn"}},
        {.schema_path = EVERY, .key = "", .time = "", .nums = {NULL}},
        {.schema_path = "tests/schemas/recursive.avsc", .key = "label", .time = "id",
         .nums = {"weight", "id"}},
        {.schema_path = "tests/schemas/wide_event.avsc", .key = "user_id", .time = "ts",
         .labels = {"session"},
         .nums = {"price", "quantity", "discount", "clicks"}},
        /* schema resolution; values are exact: float->double, int->long */
        {.schema_path = EVO "reader_promoted.avsc", .key = "user_id", .time = "ts",
         .nums = {"price", "quantity", "clicks"}, .writer_path = EVO "writer_v1.avsc"},
};
const size_t test_pipeline_cnt = sizeof(test_pipelines) / sizeof(test_pipelines[0]);

int test_fixture_open(test_fixture_t *fx, const test_pipeline_t *pp, char *errstr,
                      size_t errstr_size) {
        memset(fx, 0, sizeof(*fx));
        fx->pp = pp;
        char *json = dmp_read_file(pp->schema_path, NULL, errstr, errstr_size);
        char *wjson = pp->writer_path ? dmp_read_file(pp->writer_path, NULL, errstr, errstr_size)
                                      : NULL;
        const char *wtext = pp->writer_path ? wjson : json;
        if (!json || !wtext) {
                free(json);
                free(wjson);
                return -1;
        }
        if (avro_schema_from_json_length(wtext, strlen(wtext), &fx->schema)) {
                fx->schema = NULL;
                snprintf(errstr, errstr_size, "%s: %s", pp->schema_path, avro_strerror());
                free(json);
                free(wjson);
                return -1;
        }
        fx->dec = dmp_decoder_new(json, pp->key, pp->time, errstr, errstr_size);
        free(json);
        if (fx->dec && wjson && dmp_decoder_set_writer(fx->dec, wjson, errstr, errstr_size)) {
                dmp_decoder_destroy(fx->dec);
                fx->dec = NULL;
        }
        free(wjson);
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
        for (; fx->nlabels < DMP_MAX_LABELS && pp->labels[fx->nlabels]; fx->nlabels++) {
                fx->label_slots[fx->nlabels] = dmp_decoder_label_field(
                        fx->dec, pp->labels[fx->nlabels], errstr, errstr_size);
                if (fx->label_slots[fx->nlabels] < 0) {
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
        for (int i = 0; i < fx->nlabels; i++) {
                int s = fx->label_slots[i];
                if (a->label_len[s] != b->label_len[s] ||
                    memcmp(a->label[s], b->label[s], a->label_len[s])) {
                        snprintf(why, why_size, "label %s: \"%.*s\" vs \"%.*s\"",
                                 fx->pp->labels[i], (int)a->label_len[s], a->label[s],
                                 (int)b->label_len[s], b->label[s]);
                        return -1;
                }
        }
        return 0;
}

int test_decode_differential(test_fixture_t *fx, const void *rec, size_t len,
                             int resolvable_only, char *why, size_t why_size) {
        dmp_event_t a, b;
        char err[512] = "";
        if (dmp_decoder_decode(fx->dec, rec, len, &a, err, sizeof(err))) {
                dmp_decode_err_t e = dmp_decoder_last_error(fx->dec);
                if (e > DMP_DECODE_OK && e < DMP_DECODE__CNT && *err)
                        return 0;
                snprintf(why, why_size, "a rejected record without a class (%d) or message",
                         (int)e);
                return -1;
        }
        if (dmp_decoder_decode_generic(fx->dec, rec, len, &b, err, sizeof(err))) {
                if (resolvable_only && strncmp(err, "malformed Avro record", 21))
                        return 0;
                snprintf(why, why_size, "%s: the plan accepted a record Avro C rejects: %s",
                         fx->pp->schema_path, err);
                return -1;
        }
        char diff[256];
        if (test_event_compare(fx, &a, &b, diff, sizeof(diff))) {
                snprintf(why, why_size, "%s: plan and Avro C differ: %s", fx->pp->schema_path,
                         diff);
                return -1;
        }
        return 0;
}

int test_fixed_provider(void *opaque, int32_t id, const char **json, char *errstr,
                        size_t errstr_size) {
        (void)id;
        (void)errstr;
        (void)errstr_size;
        *json = *(const char *const *)opaque;
        return 0;
}
