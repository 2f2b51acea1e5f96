/* Unit tests of src/fetchwake.c: when a poke of the processing thread asks
 * the waker for a round (the gate), and the waker's thread starting,
 * serving pokes and stopping on a consumer without a broker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "fetchwake.h"

#define QMIN 20000
#define DRAIN 1024

static dmp_fetchwake_gate_t gate(void) {
        dmp_fetchwake_gate_t g = {QMIN, DRAIN, 0, 0};
        return g;
}

/* A queue that never came near queued.min.messages: the fetcher never
 * stopped, so no round, except the retry every DMP_FETCHWAKE_RETRY_MS. */
static void test_short_queue_only_retries(void **state) {
        (void)state;
        dmp_fetchwake_gate_t g = gate();
        int64_t t = 1000;
        assert_int_equal(dmp_fetchwake_gate_check(&g, 0, t, 0), 1); /* first: retry due */
        for (int i = 1; i < DMP_FETCHWAKE_RETRY_MS; i++)
                assert_int_equal(dmp_fetchwake_gate_check(&g, 5000, t + i, 0), 0);
        assert_int_equal(dmp_fetchwake_gate_check(&g, 5000, t + DMP_FETCHWAKE_RETRY_MS, 0), 1);
}

/* Full queue: no round while it stays >= queued.min.messages; the first
 * poke below it asks for one, the next does not. */
static void test_drained_queue_wakes_once(void **state) {
        (void)state;
        dmp_fetchwake_gate_t g = gate();
        int64_t t = 1000;
        g.last_wake_ms = t;
        assert_int_equal(dmp_fetchwake_gate_check(&g, 50000, t + 1, 0), 0);
        assert_int_equal(dmp_fetchwake_gate_check(&g, QMIN, t + 2, 0), 0);
        assert_int_equal(dmp_fetchwake_gate_check(&g, QMIN - 1, t + 3, 0), 1);
        assert_int_equal(dmp_fetchwake_gate_check(&g, QMIN - 2000, t + 4, 0), 0);
        assert_int_equal(dmp_fetchwake_gate_check(&g, 10, t + 5, 0), 0);
}

/* The broker thread can stop at any length >= queued.min.messages and the
 * processing thread takes up to DRAIN messages before it looks: a length
 * seen at QMIN - DRAIN arms the gate, one below it does not. */
static void test_arming_bound(void **state) {
        (void)state;
        dmp_fetchwake_gate_t g = gate();
        int64_t t = 1000;
        g.last_wake_ms = t;
        assert_int_equal(dmp_fetchwake_gate_check(&g, QMIN - DRAIN, t + 1, 0), 1);
        assert_int_equal(dmp_fetchwake_gate_check(&g, QMIN - DRAIN - 1, t + 2, 0), 0);
        assert_int_equal(g.armed, 0);
}

/* While a round is asked for (busy) no second one is, but what the poke saw
 * still arms the gate for the first poke after it. */
static void test_busy_keeps_arming(void **state) {
        (void)state;
        dmp_fetchwake_gate_t g = gate();
        int64_t t = 1000;
        g.last_wake_ms = t;
        assert_int_equal(dmp_fetchwake_gate_check(&g, QMIN + 5000, t + 1, 1), 0);
        assert_int_equal(dmp_fetchwake_gate_check(&g, 100, t + 2, 1), 0);
        assert_int_equal(dmp_fetchwake_gate_check(&g, 100, t + 3, 0), 1);
}

/* The thread: starts, takes pokes (rounds on a consumer that has no
 * assignment do nothing and count nothing), stops promptly. */
static void test_thread_lifecycle(void **state) {
        (void)state;
        char errstr[512];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        assert_int_equal(rd_kafka_conf_set(c, "group.id", "fetchwake-test", errstr, sizeof(errstr)),
                         RD_KAFKA_CONF_OK);
        assert_int_equal(rd_kafka_conf_set(c, "bootstrap.servers", "127.0.0.1:1", errstr,
                                           sizeof(errstr)),
                         RD_KAFKA_CONF_OK);
        rd_kafka_conf_set(c, "log_level", "0", errstr, sizeof(errstr));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, errstr, sizeof(errstr));
        assert_non_null(rk);
        dmp_fetchwake_t *fw = dmp_fetchwake_new(rk, QMIN, DRAIN, errstr, sizeof(errstr));
        assert_non_null(fw);
        for (int i = 0; i < 50; i++) {
                dmp_fetchwake_poke(fw, 0, 1000 + i * DMP_FETCHWAKE_RETRY_MS);
                struct timespec ms = {0, 2000000};
                nanosleep(&ms, NULL);
        }
        assert_int_equal(dmp_fetchwake_rounds(fw), 0); /* nothing assigned: no request */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        dmp_fetchwake_destroy(fw);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        /* joins without waiting for a ListOffsets timeout */
        assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 <
                    DMP_FETCHWAKE_TIMEOUT_MS);
        dmp_fetchwake_destroy(NULL);
        assert_int_equal(dmp_fetchwake_rounds(NULL), 0);
        rd_kafka_destroy(rk);
}

/* Which librdkafka needs it: fetch.queue.backoff.ms exists from 2.3. */
static void test_needed_follows_version(void **state) {
        (void)state;
        char errstr[512];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        int has_backoff = rd_kafka_conf_set(c, "fetch.queue.backoff.ms", "1", errstr,
                                            sizeof(errstr)) == RD_KAFKA_CONF_OK;
        rd_kafka_conf_destroy(c);
        assert_int_equal(dmp_fetchwake_needed(), !has_backoff);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_short_queue_only_retries),
                cmocka_unit_test(test_drained_queue_wakes_once),
                cmocka_unit_test(test_arming_bound),
                cmocka_unit_test(test_busy_keeps_arming),
                cmocka_unit_test(test_thread_lifecycle),
                cmocka_unit_test(test_needed_follows_version),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
