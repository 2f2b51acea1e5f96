#include "outrec.h"

#include <string.h>

#include "avro_enc.h"

/* Bound of a string's encoding: a length varint and the bytes. */
#define STR_MAX(len) (10 + (len))

static unsigned char *put_str(unsigned char *p, const char *s) {
        return dmp_avro_put_string(p, s, strlen(s));
}

size_t dmp_outrec_result_size(const dmp_result_t *r) {
        return STR_MAX(strlen(r->window->name)) +
               STR_MAX(strlen(dmp_window_kind_name(r->window->kind))) + STR_MAX(r->key_len) +
               2 * 10 + STR_MAX(strlen(r->measure)) + 10 + 5 * 8 + 10 + 1;
}

size_t dmp_outrec_result(unsigned char *buf, const dmp_result_t *r) {
        unsigned char *p = put_str(buf, r->window->name);
        p = put_str(p, dmp_window_kind_name(r->window->kind));
        p = dmp_avro_put_string(p, r->key, r->key_len);
        p = dmp_avro_put_long(p, r->start);
        p = dmp_avro_put_long(p, r->end);
        p = put_str(p, r->measure);
        p = dmp_avro_put_long(p, r->agg->count);
        p = dmp_avro_put_double(p, r->agg->sum);
        p = dmp_avro_put_double(p, r->agg->min);
        p = dmp_avro_put_double(p, r->agg->max);
        p = dmp_avro_put_double(p, r->agg->mean);
        p = dmp_avro_put_double(p, dmp_agg_stddev(r->agg));
        p = dmp_avro_put_long(p, r->late);
        *p++ = r->final ? 1 : 0; /* Avro boolean */
        return (size_t)(p - buf);
}

size_t dmp_outrec_group_size(const dmp_group_result_t *r) {
        const char *w = r->window ? r->window->name : "";
        return STR_MAX(strlen(r->group)) + STR_MAX(r->value_len) + STR_MAX(strlen(r->measure)) +
               1 + STR_MAX(strlen(w)) + 2 * (1 + 10) + 10 + 6 * 8 + 10;
}

size_t dmp_outrec_group(unsigned char *buf, const dmp_group_result_t *r) {
        unsigned char *p = put_str(buf, r->group);
        p = dmp_avro_put_string(p, r->value, r->value_len);
        p = put_str(p, r->measure);
        if (r->window) { /* ["null", T]: branch 1 */
                p = dmp_avro_put_long(p, 1);
                p = put_str(p, r->window->name);
                p = dmp_avro_put_long(p, 1);
                p = dmp_avro_put_long(p, r->start);
                p = dmp_avro_put_long(p, 1);
                p = dmp_avro_put_long(p, r->end);
        } else {
                p = dmp_avro_put_long(p, 0);
                p = dmp_avro_put_long(p, 0);
                p = dmp_avro_put_long(p, 0);
        }
        p = dmp_avro_put_long(p, r->agg->count);
        p = dmp_avro_put_double(p, r->agg->sum);
        p = dmp_avro_put_double(p, r->agg->mean);
        p = dmp_avro_put_double(p, dmp_agg_variance(r->agg));
        p = dmp_avro_put_double(p, dmp_agg_stddev(r->agg));
        p = dmp_avro_put_double(p, r->agg->min);
        p = dmp_avro_put_double(p, r->agg->max);
        p = dmp_avro_put_long(p, r->last_update);
        return (size_t)(p - buf);
}

size_t dmp_outrec_pattern_size(const dmp_pattern_result_t *r) {
        return STR_MAX(strlen(r->pattern)) + STR_MAX(strlen(r->kind)) +
               STR_MAX(strlen(r->window->name)) + 2 * 10 + STR_MAX(strlen(r->source)) +
               STR_MAX(r->subject_len) + STR_MAX(strlen(r->measure)) + STR_MAX(strlen(r->stat)) +
               10 + 4 * 8 + 2 * 10 + STR_MAX(strlen(r->direction));
}

size_t dmp_outrec_pattern(unsigned char *buf, const dmp_pattern_result_t *r) {
        unsigned char *p = put_str(buf, r->pattern);
        p = put_str(p, r->kind);
        p = put_str(p, r->window->name);
        p = dmp_avro_put_long(p, r->start);
        p = dmp_avro_put_long(p, r->end);
        p = put_str(p, r->source);
        p = dmp_avro_put_string(p, r->subject, r->subject_len);
        p = put_str(p, r->measure);
        p = put_str(p, r->stat);
        p = dmp_avro_put_long(p, r->rank);
        p = dmp_avro_put_double(p, r->value);
        p = dmp_avro_put_double(p, r->score);
        p = dmp_avro_put_double(p, r->mean);
        p = dmp_avro_put_double(p, r->stddev);
        p = dmp_avro_put_long(p, r->count);
        p = dmp_avro_put_long(p, r->observations);
        p = put_str(p, r->direction);
        return (size_t)(p - buf);
}
