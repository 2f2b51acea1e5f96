/* Copies of input records with their provenance. See copy.h. */
#include "copy.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void add_header(rd_kafka_headers_t *h, const char *name, const char *value) {
        rd_kafka_header_add(h, name, -1, value, (ssize_t)strlen(value));
}

static void add_header_num(rd_kafka_headers_t *h, const char *name, int64_t v) {
        char s[24];
        snprintf(s, sizeof(s), "%" PRId64, v);
        add_header(h, name, s);
}

int dmp_copy_produce(rd_kafka_t *producer, const char *topic, const dmp_copy_rec_t *r,
                     const char *const *extra, int nextra, char *errstr, size_t errstr_size) {
        rd_kafka_headers_t *h = rd_kafka_headers_new((size_t)(4 + nextra));
        add_header(h, DMP_COPY_H_TOPIC, r->topic);
        add_header_num(h, DMP_COPY_H_PARTITION, r->partition);
        add_header_num(h, DMP_COPY_H_OFFSET, r->offset);
        add_header_num(h, DMP_COPY_H_TIMESTAMP, r->timestamp);
        for (int i = 0; i < nextra; i++)
                add_header(h, extra[2 * i], extra[2 * i + 1]);
        for (;;) {
                /* On success the headers belong to librdkafka. */
                rd_kafka_resp_err_t err = rd_kafka_producev(
                        producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_KEY((void *)r->key, r->key ? r->key_len : 0),
                        RD_KAFKA_V_VALUE((void *)r->value, r->value ? r->len : 0),
                        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
                if (!err)
                        return 0;
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        rd_kafka_headers_destroy(h);
                        snprintf(errstr, errstr_size, "cannot produce to %s: %s", topic,
                                 rd_kafka_err2str(err));
                        return -1;
                }
                rd_kafka_poll(producer, 10); /* wait for room in the queue */
        }
}
