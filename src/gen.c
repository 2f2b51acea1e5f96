#include "gen.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "avro_enc.h"
#include "decoder.h"
#include "log.h"
#include "registry.h"
#include "util.h"

void dmp_gen_opts_init(dmp_gen_opts_t *o) {
        memset(o, 0, sizeof(*o));
        o->brokers = "127.0.0.1:9092";
        o->topic = "events";
        o->count = 100000;
        o->keys = 1000;
        o->groups = 8;
        o->seed = 1;
        o->max_delay_ms = 5000;
        o->start_ms = INT64_C(1767225600000); /* 2026-01-01T00:00:00Z */
        o->step_ms = 1;
        o->null_clicks = 0.3;
}

void dmp_gen_init(dmp_gen_t *g, const dmp_gen_opts_t *o) {
        g->o = *o;
        g->rng = o->seed;
        g->i = 0;
}

static uint64_t next_u64(dmp_gen_t *g) {
        g->rng += 0x9e3779b97f4a7c15ULL; /* splitmix64 */
        return dmp_mix64(g->rng);
}

static double next_unit(dmp_gen_t *g) {
        return (double)(next_u64(g) >> 11) * 0x1.0p-53;
}

/* prefix then the digits of v into buf (room for strlen(prefix) + 20);
 * returns the length. snprintf was half of the generator's CPU. */
static size_t prefixed_number(char *buf, const char *prefix, int64_t v) {
        size_t n = strlen(prefix);
        memcpy(buf, prefix, n);
        return n + dmp_format_long(buf + n, v);
}

size_t dmp_gen_next(dmp_gen_t *g, unsigned char *buf, char *key, size_t *key_len) {
        const dmp_gen_opts_t *o = &g->o;
        uint64_t keys = (uint64_t)(o->keys > 0 ? o->keys : 1);
        uint64_t draw = next_u64(g); /* drawn either way: the rest of the stream is the same */
        int user = (int)((o->keys_in_order ? (uint64_t)g->i : draw) % keys);
        int64_t ts = o->start_ms + g->i * o->step_ms;
        if (o->ooo > 0 && next_unit(g) < o->ooo)
                ts -= (int64_t)(next_unit(g) * (double)(o->max_delay_ms + 1));
        if (ts < o->start_ms) /* no event precedes the first */
                ts = o->start_ms;
        double price = floor(next_unit(g) * 9900.0 + 100.0) / 100.0;
        int64_t quantity = 1 + (int64_t)(next_u64(g) % 10);
        int has_clicks = next_unit(g) >= o->null_clicks;
        int64_t clicks = (int64_t)(next_u64(g) % 20);
        g->i++;

        char seg[32];
        *key_len = prefixed_number(key, "user_", user);
        size_t seg_len = prefixed_number(seg, "seg_", user % (o->groups > 0 ? o->groups : 1));
        unsigned char *p = buf;
        p = dmp_avro_put_string(p, key, *key_len);
        p = dmp_avro_put_string(p, seg, seg_len);
        p = dmp_avro_put_long(p, ts);
        p = dmp_avro_put_double(p, price);
        p = dmp_avro_put_long(p, quantity);
        p = dmp_avro_put_long(p, has_clicks); /* union branch: 0 null, 1 long */
        if (has_clicks)
                p = dmp_avro_put_long(p, clicks);
        return (size_t)(p - buf);
}

size_t dmp_gen_next_bid(dmp_gen_t *g, unsigned char *buf, char *key, size_t *key_len) {
        const dmp_gen_opts_t *o = &g->o;
        int64_t last_auction = 1000 + g->i / 50;
        int64_t auction = next_unit(g) < 0.5 ? last_auction / 100 * 100
                                             : last_auction - (int64_t)(next_u64(g) % 100);
        int64_t bidder = 1000 + (int64_t)(next_u64(g) % (uint64_t)(o->keys > 0 ? o->keys : 1));
        int64_t price = 100 + (int64_t)(next_u64(g) % 100000);
        int64_t ts = o->start_ms + g->i * o->step_ms;
        if (o->ooo > 0 && next_unit(g) < o->ooo)
                ts -= (int64_t)(next_unit(g) * (double)(o->max_delay_ms + 1));
        if (ts < o->start_ms)
                ts = o->start_ms;
        static const char *const channels[] = {"Google", "Facebook", "Baidu", "Apple"};
        const char *ch = channels[next_u64(g) % 4];
        char url[64];
        size_t ul = prefixed_number(url, "https://www.nexmark.com/item.htm?query=", auction);
        g->i++;
        *key_len = dmp_format_long(key, auction);
        unsigned char *p = buf;
        p = dmp_avro_put_long(p, auction);
        p = dmp_avro_put_long(p, bidder);
        p = dmp_avro_put_long(p, price);
        p = dmp_avro_put_string(p, ch, strlen(ch));
        p = dmp_avro_put_string(p, url, ul);
        p = dmp_avro_put_long(p, ts);
        p = dmp_avro_put_string(p, "", 0);
        return (size_t)(p - buf);
}

static void gen_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        (void)rk;
        if (m->err)
                (*(uint64_t *)opaque)++;
}

int dmp_gen_produce(const dmp_gen_opts_t *o, atomic_int *stop, char *errstr,
                    size_t errstr_size) {
        uint64_t failed = 0;
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        if (rd_kafka_conf_set(kc, "bootstrap.servers", o->brokers, errstr, errstr_size) ||
            rd_kafka_conf_set(kc, "partitioner", "murmur2_random", errstr, errstr_size) ||
            rd_kafka_conf_set(kc, "linger.ms", "20", errstr, errstr_size) ||
            rd_kafka_conf_set(kc, "batch.size", "1000000", errstr, errstr_size) ||
            rd_kafka_conf_set(kc, "compression.type", "lz4", errstr, errstr_size) ||
            rd_kafka_conf_set(kc, "queue.buffering.max.messages", "1000000", errstr,
                              errstr_size)) {
                rd_kafka_conf_destroy(kc);
                return -1;
        }
        rd_kafka_conf_set_opaque(kc, &failed);
        rd_kafka_conf_set_dr_msg_cb(kc, gen_dr_cb);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, errstr_size);
        if (!rk) {
                rd_kafka_conf_destroy(kc);
                return -1;
        }
        /* With a registry: the event schema registered, each record framed
         * (magic byte 0, the 4-byte schema id). */
        size_t frame = 0;
        unsigned char buf[256 + 5];
        if (o->registry_url && *o->registry_url) {
                char *schema = dmp_read_file(o->schema_path ? o->schema_path : "schemas/event.avsc",
                                             NULL, errstr, errstr_size);
                dmp_registry_opts_t ro;
                dmp_registry_opts_init(&ro);
                ro.url = o->registry_url;
                dmp_registry_t *reg = schema ? dmp_registry_new(&ro, errstr, errstr_size) : NULL;
                char subject[512], e[512];
                snprintf(subject, sizeof(subject), "%s-value", o->topic);
                int32_t id = -1;
                if (reg && dmp_registry_register(reg, subject, schema, &id, e, sizeof(e)))
                        snprintf(errstr, errstr_size, "registering %s: %s", subject, e);
                dmp_registry_destroy(reg);
                free(schema);
                if (id < 0) {
                        rd_kafka_destroy(rk);
                        return -1;
                }
                buf[0] = 0;
                dmp_be32_put(buf + 1, (uint32_t)id);
                frame = 5;
        }
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);
        dmp_gen_t g;
        dmp_gen_init(&g, o);
        char key[32];
        size_t key_len;
        int64_t t0 = dmp_mono_ms();
        int64_t n = 0;
        int rc = 0;
        while ((o->count < 0 || n < o->count) && !(stop && atomic_load(stop))) {
                if (o->rate > 0) { /* pace: never ahead of rate * elapsed */
                        double due = (double)(dmp_mono_ms() - t0) * o->rate / 1000.0;
                        if ((double)n >= due) {
                                struct timespec ts = {0, 1000000};
                                rd_kafka_poll(rk, 0);
                                nanosleep(&ts, NULL);
                                continue;
                        }
                }
                size_t len = frame + (o->nexmark ? dmp_gen_next_bid(&g, buf + frame, key, &key_len)
                                                 : dmp_gen_next(&g, buf + frame, key, &key_len));
                while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, buf,
                                        len, key, key_len, NULL) != 0) {
                        if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                                snprintf(errstr, errstr_size, "produce failed: %s",
                                         rd_kafka_err2str(rd_kafka_last_error()));
                                rc = -1;
                                goto done;
                        }
                        rd_kafka_poll(rk, 10);
                }
                n++;
                if ((n & 1023) == 0)
                        rd_kafka_poll(rk, 0);
        }
done:
        if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR && rc == 0) {
                snprintf(errstr, errstr_size, "not all events were acknowledged within 60 s");
                rc = -1;
        }
        if (failed && rc == 0) {
                snprintf(errstr, errstr_size, "%" PRIu64 " events could not be produced", failed);
                rc = -1;
        }
        double secs = (double)(dmp_mono_ms() - t0) / 1000.0;
        if (!o->quiet && rc == 0)
                printf("produced %" PRId64 " events to %s in %.2f s (%.0f events/s)\n", n,
                       o->topic, secs, secs > 0 ? (double)n / secs : 0.0);
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        return rc;
}
