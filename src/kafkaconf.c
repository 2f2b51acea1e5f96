/* The librdkafka configurations of the daemon's clients (kafkaconf.h). */
#include "kafkaconf.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "fetchwake.h"
#include "log.h"
#include "util.h"

typedef struct kv_default {
        const char *name, *value;
} kv_default_t;

/* The producer's defaults. Idempotence keeps retries from reordering or
 * duplicating results within a session. Delivery reports of failures only
 * (all the daemon's delivery callback needs): a delivered result is then
 * freed on librdkafka's broker thread instead of being handed back to the
 * processing thread. Keys go to partitions as the Java client puts them
 * (murmur2), so that the output topics are co-partitioned with topics that
 * Java producers, Kafka Streams or Flink write by the same key
 * (librdkafka's default, consistent_random, hashes with CRC32 and puts
 * most keys elsewhere). */
static const kv_default_t producer_defaults[] = {
        {"enable.idempotence", "true"},
        {"linger.ms", "5"},
        {"delivery.report.only.error", "true"},
        {"partitioner", "murmur2_random"},
};

/* The consumer's prefetch: how much librdkafka holds before the processing
 * thread takes it. Each queued message costs ~400 bytes beyond its payload
 * and pins its fetch response buffer; a short queue is as fast as a deep
 * one only if the fetcher is woken when it drains (src/fetchwake.h). A
 * short fetch.wait.max.ms halves the time to the first result. The
 * figures: docs/PERFORMANCE.md "Consumer prefetch". */
static const kv_default_t consumer_defaults[] = {
        {"max.partition.fetch.bytes", "262144"},
        {"fetch.wait.max.ms", "10"},
        {"queued.min.messages", "20000"},
};

static const char *role_name(dmp_kafka_role_t role) {
        return role == DMP_KAFKA_PRODUCER ? "producer" : "consumer";
}

void dmp_kafkaconf_log_class(const char *fac, const char *buf, char *cls, size_t size) {
        size_t n = (size_t)snprintf(cls, size, "librdkafka %s: ", fac);
        /* "... failed: Connection refused (after 0ms in state CONNECT, 3
         * identical error(s) suppressed)": the state and count vary */
        const char *after = strstr(buf, " (after ");
        for (const char *s = buf; *s && s != after && n + 1 < size; s++) {
                if (isdigit((unsigned char)*s)) {
                        while (isdigit((unsigned char)s[1]))
                                s++;
                        cls[n++] = '#';
                } else {
                        cls[n++] = *s;
                }
        }
        if (n < size)
                cls[n] = '\0';
}

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
        (void)rk;
        dmp_log_level_t l = level <= 3 ? DMP_LOG_ERROR : level <= 4 ? DMP_LOG_WARN
                            : level <= 6 ? DMP_LOG_INFO : DMP_LOG_DEBUG;
        if (l > dmp_log_level)
                return;
        char cls[160];
        dmp_kafkaconf_log_class(fac, buf, cls, sizeof(cls));
        dmp_log_repeated(l, cls, "librdkafka %s: %s", fac, buf);
}

void dmp_kafkaconf_log_to_dmpflow(rd_kafka_conf_t *kc) {
        rd_kafka_conf_set_log_cb(kc, kafka_log_cb);
}

/* Sets a default unless [kafka] sets the property. */
static void set_default(const dmp_conf_t *conf, rd_kafka_conf_t *kc, const kv_default_t *d) {
        if (!dmp_conf_kafka_get(conf, d->name))
                rd_kafka_conf_set(kc, d->name, d->value, NULL, 0);
}

rd_kafka_conf_t *dmp_kafkaconf_new(dmp_conf_t *conf, dmp_kafka_role_t role) {
        if (!dmp_conf_kafka_get(conf, "bootstrap.servers")) {
                dmp_conf_error(conf, 0, "[kafka] bootstrap.servers is required (no broker? "
                               "try `dmpflow demo`, which runs an embedded one)");
                return NULL;
        }
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set(kc, "client.id", "dmpflow", NULL, 0);
        dmp_kafkaconf_log_to_dmpflow(kc);
        int errors = 0;
        char e[512];
        for (int i = 0; i < conf->kafka_cnt; i++) {
                const dmp_kv_t *kv = &conf->kafka[i];
                if (rd_kafka_conf_set(kc, kv->name, kv->value, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
                        if (dmp_conf_is_secret(kv->name))
                                dmp_conf_error(conf, kv->line, "[kafka] %s: %s", kv->name, e);
                        else
                                dmp_conf_error(conf, kv->line, "[kafka] %s: %s (got \"%s\")",
                                               kv->name, e, kv->value);
                        errors++;
                }
        }
        if (role == DMP_KAFKA_PRODUCER) {
                for (size_t i = 0; i < DMP_ARRAY_SIZE(producer_defaults); i++)
                        set_default(conf, kc, &producer_defaults[i]);
        } else {
                for (size_t i = 0; i < DMP_ARRAY_SIZE(consumer_defaults); i++)
                        set_default(conf, kc, &consumer_defaults[i]);
                /* librdkafka >= 2.3 wakes the fetcher itself: it needs only
                 * a short backoff (src/fetchwake.h) */
                if (!dmp_fetchwake_needed())
                        set_default(conf, kc, &(kv_default_t){"fetch.queue.backoff.ms", "1"});
                if (conf->http.port > 0) /* consumer lag for /metrics */
                        set_default(conf, kc, &(kv_default_t){"statistics.interval.ms", "1000"});
                /* Offsets are dmpflow's (stored with the state): no automatic
                 * commits or offset stores. */
                const kv_default_t fixed[] = {
                        {"group.id", conf->input.group_id},
                        {"enable.auto.commit", "false"},
                        {"enable.auto.offset.store", "false"},
                        {"auto.offset.reset",
                         dmp_conf_enum_name("input", "auto.offset.reset",
                                            (int)conf->input.auto_offset_reset)},
                };
                for (size_t i = 0; i < DMP_ARRAY_SIZE(fixed); i++)
                        if (rd_kafka_conf_set(kc, fixed[i].name, fixed[i].value, e, sizeof(e)) !=
                            RD_KAFKA_CONF_OK) {
                                dmp_conf_error(conf, dmp_conf_line(conf, "input", fixed[i].name),
                                               "[input] %s: %s", fixed[i].name, e);
                                errors++;
                        }
        }
        if (errors) {
                rd_kafka_conf_destroy(kc);
                return NULL;
        }
        return kc;
}

/* Whether librdkafka's message msg names property name (as a word). */
static int name_char(char c) {
        return isalnum((unsigned char)c) || c == '.' || c == '_';
}

static int names(const char *msg, const char *name) {
        size_t l = strlen(name);
        for (const char *s = msg; (s = strstr(s, name)); s += l)
                if ((s == msg || !name_char(s[-1])) && !name_char(s[l]))
                        return 1;
        return 0;
}

rd_kafka_t *dmp_kafkaconf_client(dmp_conf_t *conf, dmp_kafka_role_t role, rd_kafka_conf_t *kc) {
        char e[512];
        rd_kafka_t *rk = rd_kafka_new(role == DMP_KAFKA_PRODUCER ? RD_KAFKA_PRODUCER
                                                                  : RD_KAFKA_CONSUMER,
                                      kc, e, sizeof(e));
        if (rk)
                return rk;
        rd_kafka_conf_destroy(kc);
        /* The line of the last [kafka] property the message names; the
         * defaults dmpflow adds are named too, so that a conflict with one
         * says where it came from. */
        const dmp_kv_t *at = NULL;
        for (int i = 0; i < conf->kafka_cnt; i++)
                if (names(e, conf->kafka[i].name))
                        at = &conf->kafka[i];
        char why[256] = "";
        const kv_default_t *defs = role == DMP_KAFKA_PRODUCER ? producer_defaults
                                                               : consumer_defaults;
        size_t ndefs = role == DMP_KAFKA_PRODUCER ? DMP_ARRAY_SIZE(producer_defaults)
                                                  : DMP_ARRAY_SIZE(consumer_defaults);
        for (size_t i = 0; i < ndefs; i++)
                if (names(e, defs[i].name) && !dmp_conf_kafka_get(conf, defs[i].name))
                        snprintf(why, sizeof(why), " (dmpflow sets %s = %s unless [kafka] sets it)",
                                 defs[i].name, defs[i].value);
        if (at)
                dmp_conf_error(conf, at->line, "[kafka] %s: the %s cannot be created: %s%s",
                               at->name, role_name(role), e, why);
        else
                dmp_conf_error(conf, 0, "[kafka]: the %s cannot be created: %s%s", role_name(role),
                               e, why);
        return NULL;
}

/* check's log callback: librdkafka's configuration warnings become notes
 * (but those of a property of the other role: [kafka] is both's); the
 * rest (a connection attempt before the client is destroyed) is dropped. */
typedef struct check_notes {
        pthread_mutex_t lock;
        dmp_buf_t *notes;
} check_notes_t;

static void check_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
        (void)level;
        check_notes_t *cn = rd_kafka_opaque(rk);
        if (!cn || !cn->notes || strcmp(fac, "CONFWARN") || strstr(buf, " property and will be "
                                                                          "ignored by this "))
                return;
        const char *msg = strstr(buf, "]: "); /* after "[thrd:app]: " */
        char line[1024];
        snprintf(line, sizeof(line), "[kafka]: %s\n", msg ? msg + 3 : buf);
        pthread_mutex_lock(&cn->lock);
        if (!cn->notes->p || !strstr(cn->notes->p, line)) /* (once, not once per role) */
                dmp_buf_puts(cn->notes, line);
        pthread_mutex_unlock(&cn->lock);
}

int dmp_kafkaconf_check(dmp_conf_t *conf, dmp_buf_t *notes) {
        int before = conf->error_cnt;
        check_notes_t cn = {PTHREAD_MUTEX_INITIALIZER, notes};
        for (int r = DMP_KAFKA_PRODUCER; r <= DMP_KAFKA_CONSUMER; r++) {
                rd_kafka_conf_t *kc = dmp_kafkaconf_new(conf, (dmp_kafka_role_t)r);
                if (!kc) /* the same [kafka] errors again for the other role */
                        break;
                rd_kafka_conf_set_log_cb(kc, check_log_cb);
                rd_kafka_conf_set_opaque(kc, &cn);
                rd_kafka_t *rk = dmp_kafkaconf_client(conf, (dmp_kafka_role_t)r, kc);
                if (!rk) /* (most refusals are both's: one is enough) */
                        break;
                rd_kafka_destroy(rk);
        }
        pthread_mutex_destroy(&cn.lock);
        return conf->error_cnt - before;
}
