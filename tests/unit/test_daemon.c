/* The whole daemon in-process on librdkafka's mock cluster, with faults
 * injected where the commit protocol must hold (docs/STATE.md), in its
 * three modes: local state only (changelog.enable = false), changelog with
 * at_least_once, changelog with exactly_once.
 *   - the output topic refuses the results (Produce errors pushed on the
 *     mock cluster): neither the state store nor the group records the
 *     input behind those results, and the daemon stops (exit status -1);
 *   - the state write fails (dmp_store_fault_sim): without a changelog,
 *     the offsets of that commit are never stored nor committed; with one,
 *     the transaction committed first and a restart restores the local
 *     store's missing commit from the changelog (nothing re-read);
 *   - transaction faults (errors pushed on AddPartitionsToTxn, EndTxn,
 *     TxnOffsetCommit, Produce): retriable ones are retried, abortable
 *     ones abort, rewind and redo the work (nothing lost, nothing doubled
 *     for a read_committed reader), fatal ones stop the daemon cleanly and
 *     a restart finishes the work.
 * A restart publishes every result that was due (nothing lost), each with
 * its exact value (nothing double-counted). The expected results are
 * computed here, from the events the test writes.
 *
 * librdkafka 2.0.2's mock cluster does not implement a transaction's end
 * (no markers, nothing hidden from read_committed readers) nor the offsets
 * of TxnOffsetCommit (not stored): what a real broker hides after an abort
 * it shows. So the faults are chosen where the transaction never wrote
 * anything (AddPartitionsToTxn errors) or committed in the end (retriable
 * errors), and the group's offsets are checked without a changelog only.
 * Exactly-once visibility and aborted transactions are tested on a real
 * broker (tests/integration/test_crash.py, test_scaleout.py). */
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

/* Kafka protocol ApiKeys (librdkafka's RD_KAFKAP_*, not in its public
 * headers) for rd_kafka_mock_push_request_errors. */
#define API_PRODUCE                0
#define API_ADD_PARTITIONS_TO_TXN 24
#define API_END_TXN               26
#define API_TXN_OFFSET_COMMIT     28

/* Under ASan: the refused-results cases leak what librdkafka leaks
 * (tests/lsan.supp), allocated in librdkafka frames built without frame
 * pointers, where the fast unwinder stops before rd_kafka_produce_batch;
 * the slow one reaches it, so the suppression applies. Read by ASan at
 * startup; an ASAN_OPTIONS in the environment still wins. */
const char *__asan_default_options(void);
__attribute__((used)) const char *__asan_default_options(void) {
        return "fast_unwind_on_malloc=0";
}

/* The daemon's modes. */
typedef enum { MODE_LOCAL, MODE_ALOS, MODE_EOS } mode_t_;
static const char *const mode_conf[] = {
        [MODE_LOCAL] = "changelog.enable = false\n",
        [MODE_ALOS] = "guarantee = at_least_once\n",
        [MODE_EOS] = "guarantee = exactly_once\n",
};

#define PARTITIONS 2
#define KEYS 5
#define PER_KEY 4 /* events per key, partition and phase */

typedef struct mock {
        rd_kafka_t *rk; /* hosts the cluster */
        rd_kafka_mock_cluster_t *mc;
        char bootstraps[256];
        char dir[64];
        int groups; /* group ids used so far */
} mock_t;

static int setup(void **state) {
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

static int teardown(void **state) {
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

/* Writes phase `ph` of the input to topic: per partition, PER_KEY events
 * of each of its keys in the window [ph * 10000, ph * 10000 + 1000), then
 * one of key "tick" at ph * 10000 + 5000 that closes it. Key k of
 * partition p is "p<p>k<k>"; its events have price 1 + ph + k, so its
 * window's sum of score is PER_KEY * 0.7 * (1 + ph + k). */
static void produce_phase(const mock_t *m, const char *topic, int ph) {
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

typedef struct run {
        dmp_conf_t *conf;
        dmp_daemon_t *d;
        pthread_t tid;
        int rc;
        char errstr[512];
        uint64_t events_in_end; /* events it processed, once it stopped by itself */
} run_t;

static void *run_main(void *arg) {
        run_t *r = arg;
        r->rc = dmp_daemon_run(r->d, r->errstr, sizeof(r->errstr));
        return NULL;
}

static void start(const mock_t *m, run_t *r, const char *in, const char *out,
                  const char *group, mode_t_ mode) {
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

/* Waits for the daemon's thread (asking it to stop if stop); returns its
 * status. */
static int finish(run_t *r, int stop) {
        if (stop)
                dmp_daemon_stop(r->d);
        pthread_join(r->tid, NULL);
        dmp_daemon_destroy(r->d);
        dmp_conf_destroy(r->conf);
        return r->rc;
}

static dmp_daemon_counters_t counters(const run_t *r) {
        dmp_daemon_counters_t c;
        dmp_daemon_counters(r->d, &c);
        return c;
}

/* Waits (up to 60 s) until the daemon has processed `events` records and
 * committed twice since: a commit after the last of them has landed. */
static void wait_committed(const run_t *r, uint64_t events) {
        uint64_t c0 = 0;
        for (int i = 0; i < 6000; i++) {
                dmp_daemon_counters_t c = counters(r);
                if (c.events_in >= events && !c0)
                        c0 = c.commits + 1;
                if (c0 && c.commits >= c0 + 1)
                        return;
                usleep(10000);
        }
        fail_msg("the daemon did not process and commit %llu events within 60 s",
                 (unsigned long long)events);
}

/* Waits (up to 60 s) for the daemon to stop by itself. */
static int wait_failed(run_t *r) {
        for (int i = 0; i < 6000; i++) {
                if (pthread_tryjoin_np(r->tid, NULL) == 0) {
                        r->tid = pthread_self(); /* joined */
                        r->events_in_end = counters(r).events_in;
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

/* The next offsets the state store of group holds for each partition. */
static void stored_offsets(const mock_t *m, const char *group, int64_t next[PARTITIONS]) {
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

/* The group's committed offsets (-1: none). */
static void group_offsets(const mock_t *m, const char *topic, const char *group,
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

/* Every result of phase ph is on topic (once: exactly once) for a
 * read_committed reader. */
static void expect_results(const mock_t *m, const char *topic, int ph, int once) {
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

typedef struct topics {
        char in[64], out[64], group[64];
} topics_t;

/* The topics of a test (the changelog made here: librdkafka 2.0's mock
 * cluster has no controller for CreateTopics), with phase 0 processed and
 * committed by a daemon that then stopped cleanly. */
static topics_t phase0(mock_t *m, const char *name, mode_t_ mode) {
        topics_t t;
        char changelog[128];
        snprintf(t.in, sizeof(t.in), "%s-in", name);
        snprintf(t.out, sizeof(t.out), "%s-out", name);
        snprintf(t.group, sizeof(t.group), "%s-g", name);
        snprintf(changelog, sizeof(changelog), "%s-changelog", t.group);
        rd_kafka_mock_topic_create(m->mc, t.in, PARTITIONS, 1);
        rd_kafka_mock_topic_create(m->mc, t.out, 1, 1);
        rd_kafka_mock_topic_create(m->mc, changelog, PARTITIONS, 1);
        produce_phase(m, t.in, 0);
        run_t r;
        start(m, &r, t.in, t.out, t.group, mode);
        wait_committed(&r, PARTITIONS * (KEYS * PER_KEY + 1));
        assert_int_equal(finish(&r, 1), 0);
        expect_results(m, t.out, 0, 0);
        return t;
}

/* Waits (up to 60 s) until every partition is open (restored) and the
 * daemon has processed `events` records and committed twice since. */
static void wait_done(const run_t *r, uint64_t events) {
        for (int i = 0; i < 6000; i++) {
                dmp_daemon_counters_t c = counters(r);
                if (c.partitions == PARTITIONS && c.events_in >= events) {
                        wait_committed(r, events);
                        return;
                }
                usleep(10000);
        }
        fail_msg("the daemon did not open its partitions and process %llu events within 60 s",
                 (unsigned long long)events);
}

/* A restart finishes the work: phase 1's results published, the store's
 * offsets at the end of the input. It processes `events` records:
 * phase 1's, or none if it restored them from the changelog. */
static void finish_phase1(mock_t *m, const topics_t *t, mode_t_ mode, uint64_t events) {
        run_t r;
        int64_t next[PARTITIONS];
        start(m, &r, t->in, t->out, t->group, mode);
        wait_done(&r, events);
        assert_int_equal(counters(&r).events_in, events);
        assert_int_equal(finish(&r, 1), 0);
        expect_results(m, t->out, 1, 0);
        stored_offsets(m, t->group, next);
        for (int p = 0; p < PARTITIONS; p++)
                assert_int_equal(next[p], 2 * (KEYS * PER_KEY + 1));
}

static void arm_produce(mock_t *m, rd_kafka_resp_err_t e) {
        rd_kafka_resp_err_t errs[64];
        for (size_t i = 0; i < DMP_ARRAY_SIZE(errs); i++)
                errs[i] = e;
        rd_kafka_mock_push_request_errors_array(m->mc, API_PRODUCE, DMP_ARRAY_SIZE(errs), errs);
}

/* With the fault armed by arm() after phase 0, a daemon that processes
 * phase 1 fails with `why`; the store and the group hold phase 0's
 * offsets only; a restart publishes phase 1's results. */
static void refused_cycle(mock_t *m, const char *name, mode_t_ mode) {
        topics_t t = phase0(m, name, mode);
        /* (armed after the test's own producer is done: the mock cluster's
         * errors are for any client) */
        produce_phase(m, t.in, 1);
        arm_produce(m, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
        run_t r;
        start(m, &r, t.in, t.out, t.group, mode);
        assert_int_equal(wait_failed(&r), -1);
        /* (a delivery report, or, once librdkafka marked the topic refused,
         * the produce call itself; under exactly_once the transactions abort
         * until dmpflow gives up, or the abort itself gives up: txn.c) */
        if (mode == MODE_EOS ? !strstr(r.errstr, "transactions aborted in a row") &&
                                       !strstr(r.errstr, "cannot abort the transaction")
                             : !strstr(r.errstr, "could not be published; not committing") &&
                                       !strstr(r.errstr, "Topic authorization failed"))
                fail_msg("the daemon failed with \"%s\"", r.errstr);
        rd_kafka_mock_clear_request_errors(m->mc, API_PRODUCE);

        int64_t next[PARTITIONS], committed[PARTITIONS];
        stored_offsets(m, t.group, next);
        group_offsets(m, t.in, t.group, committed);
        for (int p = 0; p < PARTITIONS; p++) {
                /* phase 0's records only: nothing of phase 1 was recorded */
                assert_int_equal(next[p], KEYS * PER_KEY + 1);
                assert_true(committed[p] <= next[p]);
        }
        finish_phase1(m, &t, mode, PARTITIONS * (KEYS * PER_KEY + 1));
}

static void test_refused_results_commit_nothing_local(void **state) {
        refused_cycle(*state, "flush-local", MODE_LOCAL);
}

static void test_refused_results_commit_nothing_alos(void **state) {
        refused_cycle(*state, "flush-alos", MODE_ALOS);
}

static void test_refused_results_commit_nothing_eos(void **state) {
        refused_cycle(*state, "flush-eos", MODE_EOS);
}

/* The state write of phase 1's commit fails. Without a changelog nothing
 * of phase 1 is recorded anywhere; with one, the transaction (changelog
 * records and offsets) committed before the write, and the restart
 * restores the store's missing commit from the changelog: the group's
 * offsets say phase 1 is done, and no result of it is published again
 * under exactly_once. */
static void state_write_cycle(mock_t *m, const char *name, mode_t_ mode) {
        topics_t t = phase0(m, name, mode);
        run_t r;
        start(m, &r, t.in, t.out, t.group, mode);
        wait_done(&r, 0); /* (its restores' writes done: the fault is the commit's) */
        dmp_store_fault_sim(1);
        produce_phase(m, t.in, 1);
        assert_int_equal(wait_failed(&r), -1);
        if (!strstr(r.errstr, "injected fault"))
                fail_msg("the daemon failed with \"%s\", not the injected fault", r.errstr);
        dmp_store_fault_sim(0);
        int64_t next[PARTITIONS], committed[PARTITIONS];
        stored_offsets(m, t.group, next);
        group_offsets(m, t.in, t.group, committed);
        for (int p = 0; p < PARTITIONS; p++) {
                assert_int_equal(next[p], KEYS * PER_KEY + 1); /* the local store: phase 0 */
                if (mode == MODE_LOCAL)
                        assert_true(committed[p] <= next[p]);
        }
        /* with a changelog, the restart restores what the failed commit's
         * transaction holds and reads only the rest: nothing when phase 1 of
         * both partitions came in one fetch, one partition's otherwise */
        uint64_t all = PARTITIONS * (KEYS * PER_KEY + 1);
        assert_true(r.events_in_end > 0 && r.events_in_end <= all);
        finish_phase1(m, &t, mode, mode == MODE_LOCAL ? all : all - r.events_in_end);
}

static void test_failed_state_write_local(void **state) {
        state_write_cycle(*state, "write-local", MODE_LOCAL);
}

static void test_failed_state_write_alos(void **state) {
        state_write_cycle(*state, "write-alos", MODE_ALOS);
}

static void test_failed_state_write_eos(void **state) {
        state_write_cycle(*state, "write-eos", MODE_EOS);
}

/* A partition whose local state is gone is restored from the changelog
 * before its input is read, and the restore shows: partitions restoring,
 * not ready (what /readyz says), then records restored, ready, and nothing
 * of the input read again. Requests take 300 ms on the mock broker, so the
 * restore lasts long enough to be seen. */
static void test_restore_is_visible_and_reads_no_input(void **state) {
        mock_t *m = *state;
        topics_t t = phase0(m, "restore-seen", MODE_ALOS);
        char dir[160];
        snprintf(dir, sizeof(dir), "%s/%s", m->dir, t.group);
        dmp_rmtree(dir); /* the local state is gone: a move to a new instance */
        rd_kafka_mock_broker_set_rtt(m->mc, 1, 300);
        run_t r;
        start(m, &r, t.in, t.out, t.group, MODE_ALOS);
        dmp_daemon_counters_t c = {0};
        int seen = 0;
        for (int i = 0; i < 6000 && c.partitions < PARTITIONS; i++) {
                c = counters(&r);
                if (c.restoring > 0 && !seen) {
                        seen = 1;
                        assert_false(c.ready);
                        assert_true(c.partitions < PARTITIONS);
                }
                usleep(5000);
        }
        rd_kafka_mock_broker_set_rtt(m->mc, 1, 0);
        assert_true(seen);
        assert_int_equal(c.partitions, PARTITIONS);
        for (int i = 0; i < 1000 && !c.ready; i++) {
                usleep(10000);
                c = counters(&r);
        }
        assert_true(c.ready);
        assert_int_equal(c.restoring, 0);
        /* each partition's metadata and the open window of its "tick" (the
         * keys' windows closed within the commit that made them: their
         * changes cancelled out, none was logged) */
        assert_true(c.restored_records >= PARTITIONS * 2);
        usleep(300000);
        assert_int_equal(counters(&r).events_in, 0); /* nothing read again */
        assert_int_equal(finish(&r, 1), 0);
        int64_t next[PARTITIONS];
        stored_offsets(m, t.group, next);
        for (int p = 0; p < PARTITIONS; p++)
                assert_int_equal(next[p], KEYS * PER_KEY + 1);
}

/* Transaction faults under exactly_once: `cnt` errors `err` pushed on
 * requests `api` while phase 1 is processed. fatal: the daemon must stop
 * with `why`, and a restart finishes the work; else it must recover by
 * itself (retrying, or aborting and redoing the transaction) and publish
 * phase 1's results, each with its exact value. */
static void txn_fault(mock_t *m, const char *name, int api, rd_kafka_resp_err_t err, int cnt,
                      int fatal, const char *why) {
        topics_t t = phase0(m, name, MODE_EOS);
        produce_phase(m, t.in, 1);
        rd_kafka_resp_err_t errs[16];
        for (int i = 0; i < cnt; i++)
                errs[i] = err;
        rd_kafka_mock_push_request_errors_array(m->mc, (int16_t)api, (size_t)cnt, errs);
        run_t r;
        start(m, &r, t.in, t.out, t.group, MODE_EOS);
        if (fatal) {
                assert_int_equal(wait_failed(&r), -1);
                if (!strstr(r.errstr, why))
                        fail_msg("the daemon failed with \"%s\", not \"%s\"", r.errstr, why);
                rd_kafka_mock_clear_request_errors(m->mc, (int16_t)api);
                finish_phase1(m, &t, MODE_EOS, PARTITIONS * (KEYS * PER_KEY + 1));
                return;
        }
        wait_done(&r, PARTITIONS * (KEYS * PER_KEY + 1));
        assert_int_equal(finish(&r, 1), 0);
        rd_kafka_mock_clear_request_errors(m->mc, (int16_t)api);
        expect_results(m, t.out, 1, 0);
        int64_t next[PARTITIONS];
        stored_offsets(m, t.group, next);
        for (int p = 0; p < PARTITIONS; p++)
                assert_int_equal(next[p], 2 * (KEYS * PER_KEY + 1));
}

static void test_txn_abortable_add_partitions(void **state) {
        txn_fault(*state, "txn-abort", API_ADD_PARTITIONS_TO_TXN,
                  RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, 1, 0, NULL);
}

static void test_txn_retriable_end_txn(void **state) {
        txn_fault(*state, "txn-retry", API_END_TXN, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                  3, 0, NULL);
}

static void test_txn_retriable_offset_commit(void **state) {
        txn_fault(*state, "txn-offsets", API_TXN_OFFSET_COMMIT,
                  RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, 3, 0, NULL);
}

static void test_txn_retriable_produce(void **state) {
        txn_fault(*state, "txn-produce", API_PRODUCE, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, 3, 0,
                  NULL);
}

static void test_txn_fatal_fenced(void **state) {
        txn_fault(*state, "txn-fenced", API_ADD_PARTITIONS_TO_TXN,
                  RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH, 1, 1, "transactions cannot go on");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_refused_results_commit_nothing_local),
                cmocka_unit_test(test_refused_results_commit_nothing_alos),
                cmocka_unit_test(test_refused_results_commit_nothing_eos),
                cmocka_unit_test(test_failed_state_write_local),
                cmocka_unit_test(test_failed_state_write_alos),
                cmocka_unit_test(test_failed_state_write_eos),
                cmocka_unit_test(test_restore_is_visible_and_reads_no_input),
                cmocka_unit_test(test_txn_abortable_add_partitions),
                cmocka_unit_test(test_txn_retriable_end_txn),
                cmocka_unit_test(test_txn_retriable_offset_commit),
                cmocka_unit_test(test_txn_retriable_produce),
                cmocka_unit_test(test_txn_fatal_fenced),
        };
        if (getenv("TEST_FILTER")) /* e.g. TEST_FILTER='test_txn_*' */
                cmocka_set_test_filter(getenv("TEST_FILTER"));
        return cmocka_run_group_tests(tests, setup, teardown);
}
