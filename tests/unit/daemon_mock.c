/* The daemon on librdkafka's mock cluster, for test_daemon and
 * test_daemon_txn (daemon_mock.h has the contract). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <pthread.h>

#include "avro_enc.h"
#include "config.h"
#include "event_enc.h"
#include "dmpflow.h"
#include "log.h"
#include "store.h"
#include "util.h"

#include "daemon_mock.h"

/* The daemon's modes. */
static const char *const mode_conf[] = {
        [MODE_LOCAL] = "changelog.enable = false\n",
        [MODE_ALOS] = "guarantee = at_least_once\n",
        [MODE_EOS] = "guarantee = exactly_once\n",
};

int dm_setup(void **state) {
        mock_t *m = calloc(1, sizeof(*m));
        char err[256];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "log_level", "0", NULL, 0);
        m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
        assert_non_null(m->rk);
        m->mc = rd_kafka_mock_cluster_new(m->rk, 1);
        assert_non_null(m->mc);
        snprintf(m->bootstraps, sizeof(m->bootstraps), "%s", rd_kafka_mock_cluster_bootstraps(m->mc));
        snprintf(m->dir, sizeof(m->dir), "/tmp/dmp-daemon-XXXXXX");
        assert_non_null(mkdtemp(m->dir));
        dmp_log_level = getenv("TEST_LOG") ? DMP_LOG_DEBUG : DMP_LOG_WARN;
        *state = m;
        return 0;
}

int dm_teardown(void **state) {
        mock_t *m = *state;
        rd_kafka_mock_cluster_destroy(m->mc);
        rd_kafka_destroy(m->rk);
        dmp_rmtree(m->dir);
        free(m);
        return 0;
}

/* ---- input ---- */

/* Encodes an event of schemas/event.avsc: score = 0.7*price + 0.3*qty. */
static size_t enc_event(unsigned char *buf, const char *user, int64_t ts, double price) {
        return test_event_encode(buf, user, "seg", ts, price, 0, 1, 0);
}

void dm_produce_phase(const mock_t *m, const char *topic, int ph) {
        char err[256];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "bootstrap.servers", m->bootstraps, NULL, 0);
        rd_kafka_conf_set(c, "log_level", "0", NULL, 0);
        rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
        assert_non_null(p);
        for (int part = 0; part < PARTITIONS; part++) {
                for (int i = 0; i < KEYS * PER_KEY + 1; i++) {
                        char key[16];
                        unsigned char buf[128];
                        int k = i % KEYS, tick = i == KEYS * PER_KEY;
                        snprintf(key, sizeof(key), tick ? "tick" : "p%dk%d", part, k);
                        int64_t ts = (int64_t)ph * 10000 + (tick ? 5000 : i * 10);
                        size_t n = enc_event(buf, key, ts, tick ? 0.0 : 1.0 + ph + k);
                        assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic),
                                                           RD_KAFKA_V_PARTITION(part),
                                                           RD_KAFKA_V_VALUE(buf, n),
                                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                                           RD_KAFKA_V_END),
                                         0);
                }
        }
        assert_int_equal(rd_kafka_flush(p, 10000), 0);
        rd_kafka_destroy(p);
}

/* ---- the daemon in a thread ---- */


static void *run_main(void *arg) {
        run_t *r = arg;
        r->rc = dmp_daemon_run(r->d, r->errstr, sizeof(r->errstr));
        return NULL;
}

void dm_start(const mock_t *m, run_t *r, const char *in, const char *out, const char *group,
              mode_t_ mode) {
        char text[2048];
        snprintf(text, sizeof(text),
                 /* a restart waits for the group to drop the previous member:
                  * librdkafka 2.0's mock cluster does it at its session timeout */
                 "[kafka]\nbootstrap.servers = %s\nlog_level = 2\n"
                 "session.timeout.ms = 6000\nheartbeat.interval.ms = 500\n"
                 "[input]\ntopic = %s\ngroup.id = %s\nschema = schemas/event.avsc\n"
                 "key.field = user_id\ntime.field = ts\n"
                 "[state]\ndir = %s/%s\ncommit.interval.ms = 100\n%s"
                 "[measure score]\nexpr = 0.7*price + 0.3*quantity\n"
                 "[window w]\ntype = tumbling\nsize.ms = 1000\n"
                 "[output]\ntopic = %s\n",
                 m->bootstraps, in, group, m->dir, group, mode_conf[mode], out);
        memset(r, 0, sizeof(*r));
        r->conf = dmp_conf_new();
        if (dmp_conf_load_string(r->conf, "daemon.ini", text) || dmp_conf_validate(r->conf))
                fail_msg("configuration: %s", r->conf->errors);
        int cerr = 0;
        char err[512] = "";
        r->d = dmp_daemon_new(r->conf, &cerr, err, sizeof(err));
        if (!r->d)
                fail_msg("dmp_daemon_new: %s %s", err, r->conf->errors ? r->conf->errors : "");
        assert_int_equal(pthread_create(&r->tid, NULL, run_main, r), 0);
}

int dm_finish(run_t *r, int stop) {
        if (stop)
                dmp_daemon_stop(r->d);
        pthread_join(r->tid, NULL);
        dmp_daemon_destroy(r->d);
        dmp_conf_destroy(r->conf);
        return r->rc;
}

dmp_daemon_counters_t dm_counters(const run_t *r) {
        dmp_daemon_counters_t c;
        dmp_daemon_counters(r->d, &c);
        return c;
}

void dm_wait_committed(const run_t *r, uint64_t events) {
        uint64_t c0 = 0;
        for (int i = 0; i < 6000; i++) {
                dmp_daemon_counters_t c = dm_counters(r);
                if (c.events_in >= events && !c0)
                        c0 = c.commits + 1;
                if (c0 && c.commits >= c0 + 1)
                        return;
                usleep(10000);
        }
        fail_msg("the daemon did not process and commit %llu events within 60 s",
                 (unsigned long long)events);
}

int dm_wait_failed(run_t *r) {
        for (int i = 0; i < 6000; i++) {
                if (pthread_tryjoin_np(r->tid, NULL) == 0) {
                        r->tid = pthread_self();                         r->events_in_end = dm_counters(r).events_in;
                        dmp_daemon_destroy(r->d);
                        dmp_conf_destroy(r->conf);
                        return r->rc;
                }
                usleep(10000);
        }
        fail_msg("the daemon did not stop on the injected fault within 60 s");
        return 0;
}

/* ---- checks ---- */

void dm_stored_offsets(const mock_t *m, const char *group, int64_t next[PARTITIONS]) {
        char dir[128], err[256];
        snprintf(dir, sizeof(dir), "%s/%s", m->dir, group);
        dmp_store_opts_t o = {.read_only = 1};
        dmp_store_t *st = dmp_store_open_opts(dir, 0, &o, err, sizeof(err));
        if (!st)
                fail_msg("open %s: %s", dir, err);
        for (int p = 0; p < PARTITIONS; p++) {
                int64_t st_time;
                next[p] = -1;
                assert_true(dmp_store_get_meta(st, p, &next[p], &st_time, err, sizeof(err)) >= 0);
        }
        dmp_store_close(st);
}

void dm_group_offsets(const mock_t *m, const char *topic, const char *group,
                      int64_t off[PARTITIONS]) {
        char err[256];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "bootstrap.servers", m->bootstraps, NULL, 0);
        rd_kafka_conf_set(c, "group.id", group, NULL, 0);
        rd_kafka_conf_set(c, "log_level", "0", NULL, 0);
        rd_kafka_t *k = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
        assert_non_null(k);
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTITIONS);
        for (int p = 0; p < PARTITIONS; p++)
                rd_kafka_topic_partition_list_add(l, topic, p);
        assert_int_equal(rd_kafka_committed(k, l, 10000), 0);
        for (int p = 0; p < PARTITIONS; p++)
                off[p] = l->elems[p].offset < 0 ? -1 : l->elems[p].offset;
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_destroy(k);
}

/* Results of phase ph found on the output topic: per partition and key,
 * how many copies with the expected count and sum; any other value of
 * that window fails. */
static void read_results(const mock_t *m, const char *topic, int ph,
                         int found[PARTITIONS][KEYS]) {
        char err[256];
        memset(found, 0, sizeof(int) * PARTITIONS * KEYS);
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "bootstrap.servers", m->bootstraps, NULL, 0);
        rd_kafka_conf_set(c, "group.id", "reader", NULL, 0);
        rd_kafka_conf_set(c, "enable.partition.eof", "true", NULL, 0);
        rd_kafka_conf_set(c, "isolation.level", "read_committed", NULL, 0);
        rd_kafka_conf_set(c, "log_level", "0", NULL, 0);
        rd_kafka_t *k = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
        assert_non_null(k);
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
        assert_int_equal(rd_kafka_assign(k, l), 0);
        rd_kafka_topic_partition_list_destroy(l);
        for (int idle = 0; idle < 100;) {
                rd_kafka_message_t *msg = rd_kafka_consumer_poll(k, 100);
                if (!msg) {
                        idle++;
                        continue;
                }
                if (msg->err) {
                        int eof = msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
                        rd_kafka_message_destroy(msg);
                        if (eof)
                                break;
                        continue;
                }
                const unsigned char *p = msg->payload, *end = p + msg->len;
                const char *s;
                size_t sl;
                int64_t start = -1, wend = 0, count = 0;
                double sum = 0;
                char key[32] = "";
                p = dmp_avro_get_string(p, end, &s, &sl); /* window */
                p = p ? dmp_avro_get_string(p, end, &s, &sl) : NULL; /* kind */
                p = p ? dmp_avro_get_string(p, end, &s, &sl) : NULL; /* key */
                if (p && sl < sizeof(key))
                        memcpy(key, s, sl);
                p = p ? dmp_avro_get_long(p, end, &start) : NULL;
                p = p ? dmp_avro_get_long(p, end, &wend) : NULL;
                p = p ? dmp_avro_get_string(p, end, &s, &sl) : NULL; /* measure */
                p = p ? dmp_avro_get_long(p, end, &count) : NULL;
                p = p ? dmp_avro_get_double(p, end, &sum) : NULL;
                assert_non_null(p);
                int part, kk;
                if (start == (int64_t)ph * 10000 && sscanf(key, "p%dk%d", &part, &kk) == 2) {
                        assert_true(part >= 0 && part < PARTITIONS && kk >= 0 && kk < KEYS);
                        assert_int_equal(count, PER_KEY);
                        assert_true(fabs(sum - PER_KEY * 0.7 * (1 + ph + kk)) < 1e-9);
                        found[part][kk]++;
                }
                rd_kafka_message_destroy(msg);
        }
        rd_kafka_destroy(k);
}

void dm_expect_results(const mock_t *m, const char *topic, int ph, int once) {
        int found[PARTITIONS][KEYS];
        read_results(m, topic, ph, found);
        for (int p = 0; p < PARTITIONS; p++)
                for (int k = 0; k < KEYS; k++) {
                        if (found[p][k] < 1)
                                fail_msg("phase %d: no result of key p%dk%d", ph, p, k);
                        if (once && found[p][k] > 1)
                                fail_msg("phase %d: %d results of key p%dk%d", ph,
                                         found[p][k], p, k);
                }
}


topics_t dm_phase0(mock_t *m, const char *name, mode_t_ mode) {
        topics_t t;
        char changelog[128];
        snprintf(t.in, sizeof(t.in), "%s-in", name);
        snprintf(t.out, sizeof(t.out), "%s-out", name);
        snprintf(t.group, sizeof(t.group), "%s-g", name);
        snprintf(changelog, sizeof(changelog), "%s-changelog", t.group);
        rd_kafka_mock_topic_create(m->mc, t.in, PARTITIONS, 1);
        rd_kafka_mock_topic_create(m->mc, t.out, 1, 1);
        rd_kafka_mock_topic_create(m->mc, changelog, PARTITIONS, 1);
        dm_produce_phase(m, t.in, 0);
        run_t r;
        dm_start(m, &r, t.in, t.out, t.group, mode);
        dm_wait_committed(&r, PARTITIONS * (KEYS * PER_KEY + 1));
        assert_int_equal(dm_finish(&r, 1), 0);
        dm_expect_results(m, t.out, 0, 0);
        return t;
}

void dm_wait_done(const run_t *r, uint64_t events) {
        for (int i = 0; i < 6000; i++) {
                dmp_daemon_counters_t c = dm_counters(r);
                if (c.partitions == PARTITIONS && c.events_in >= events) {
                        dm_wait_committed(r, events);
                        return;
                }
                usleep(10000);
        }
        fail_msg("the daemon did not open its partitions and process %llu events within 60 s",
                 (unsigned long long)events);
}

void dm_finish_phase1(mock_t *m, const topics_t *t, mode_t_ mode, uint64_t events) {
        run_t r;
        int64_t next[PARTITIONS];
        dm_start(m, &r, t->in, t->out, t->group, mode);
        dm_wait_done(&r, events);
        assert_int_equal(dm_counters(&r).events_in, events);
        assert_int_equal(dm_finish(&r, 1), 0);
        dm_expect_results(m, t->out, 1, 0);
        dm_stored_offsets(m, t->group, next);
        for (int p = 0; p < PARTITIONS; p++)
                assert_int_equal(next[p], 2 * (KEYS * PER_KEY + 1));
}
