/* The whole daemon in-process on librdkafka's mock cluster (daemon_mock.h),
 * with faults injected where the commit protocol must hold (docs/STATE.md),
 * in its three modes: local state only (changelog.enable = false),
 * changelog with at_least_once, changelog with exactly_once.
 *   - the output topic refuses the results (Produce errors pushed on the
 *     mock cluster): neither the state store nor the group records the
 *     input behind those results, and the daemon stops (exit status -1);
 *   - the state write fails (dmp_store_fault_sim): without a changelog,
 *     the offsets of that commit are never stored nor committed; with one,
 *     the transaction committed first and a restart restores the local
 *     store's missing commit from the changelog (nothing re-read);
 *   - a partition whose local state is gone is restored, visibly.
 * A restart publishes every result that was due (nothing lost), each with
 * its exact value (nothing double-counted). The expected results are
 * computed here, from the events the test writes. Transaction faults:
 * test_daemon_txn.c. */
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

#include "daemon_mock.h"
#include "store.h"
#include "util.h"

/* Under ASan: the refused-results cases leak what librdkafka leaks
 * (tests/lsan.supp), allocated in librdkafka frames built without frame
 * pointers, where the fast unwinder stops before rd_kafka_produce_batch;
 * the slow one reaches it, so the suppression applies. Read by ASan at
 * startup; an ASAN_OPTIONS in the environment still wins. */
const char *__asan_default_options(void);
__attribute__((used)) const char *__asan_default_options(void) {
        return "fast_unwind_on_malloc=0";
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
        topics_t t = dm_phase0(m, name, mode);
        /* (armed after the test's own producer is done: the mock cluster's
         * errors are for any client) */
        dm_produce_phase(m, t.in, 1);
        arm_produce(m, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
        run_t r;
        dm_start(m, &r, t.in, t.out, t.group, mode);
        assert_int_equal(dm_wait_failed(&r), -1);
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
        dm_stored_offsets(m, t.group, next);
        dm_group_offsets(m, t.in, t.group, committed);
        for (int p = 0; p < PARTITIONS; p++) {
                /* phase 0's records only: nothing of phase 1 was recorded */
                assert_int_equal(next[p], KEYS * PER_KEY + 1);
                assert_true(committed[p] <= next[p]);
        }
        dm_finish_phase1(m, &t, mode, PARTITIONS * (KEYS * PER_KEY + 1));
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
        topics_t t = dm_phase0(m, name, mode);
        run_t r;
        dm_start(m, &r, t.in, t.out, t.group, mode);
        dm_wait_done(&r, 0); /* (its restores' writes done: the fault is the commit's) */
        dmp_store_fault_sim(1);
        dm_produce_phase(m, t.in, 1);
        assert_int_equal(dm_wait_failed(&r), -1);
        if (!strstr(r.errstr, "injected fault"))
                fail_msg("the daemon failed with \"%s\", not the injected fault", r.errstr);
        dmp_store_fault_sim(0);
        int64_t next[PARTITIONS], committed[PARTITIONS];
        dm_stored_offsets(m, t.group, next);
        dm_group_offsets(m, t.in, t.group, committed);
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
        dm_finish_phase1(m, &t, mode, mode == MODE_LOCAL ? all : all - r.events_in_end);
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
        topics_t t = dm_phase0(m, "restore-seen", MODE_ALOS);
        char dir[160];
        snprintf(dir, sizeof(dir), "%s/%s", m->dir, t.group);
        dmp_rmtree(dir); /* the local state is gone: a move to a new instance */
        rd_kafka_mock_broker_set_rtt(m->mc, 1, 300);
        run_t r;
        dm_start(m, &r, t.in, t.out, t.group, MODE_ALOS);
        dmp_daemon_counters_t c = {0};
        int seen = 0;
        for (int i = 0; i < 6000 && c.partitions < PARTITIONS; i++) {
                c = dm_counters(&r);
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
                c = dm_counters(&r);
        }
        assert_true(c.ready);
        assert_int_equal(c.restoring, 0);
        /* each partition's metadata and the open window of its "tick" (the
         * keys' windows closed within the commit that made them: their
         * changes cancelled out, none was logged) */
        assert_true(c.restored_records >= PARTITIONS * 2);
        usleep(300000);
        assert_int_equal(dm_counters(&r).events_in, 0); /* nothing read again */
        assert_int_equal(dm_finish(&r, 1), 0);
        int64_t next[PARTITIONS];
        dm_stored_offsets(m, t.group, next);
        for (int p = 0; p < PARTITIONS; p++)
                assert_int_equal(next[p], KEYS * PER_KEY + 1);
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
        };
        if (getenv("TEST_FILTER")) /* e.g. TEST_FILTER='test_*_eos' */
                cmocka_set_test_filter(getenv("TEST_FILTER"));
        return cmocka_run_group_tests(tests, dm_setup, dm_teardown);
}
