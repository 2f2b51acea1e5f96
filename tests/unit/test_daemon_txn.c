/* Transaction faults under exactly_once, on the whole daemon in-process on
 * librdkafka's mock cluster (daemon_mock.h): errors pushed on
 * AddPartitionsToTxn, EndTxn, TxnOffsetCommit, Produce. Retriable ones are
 * retried, abortable ones abort, rewind and redo the work (nothing lost,
 * nothing doubled for a read_committed reader), fatal ones stop the daemon
 * cleanly and a restart finishes the work. */
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

/* Transaction faults under exactly_once: `cnt` errors `err` pushed on
 * requests `api` while phase 1 is processed. fatal: the daemon must stop
 * with `why`, and a restart finishes the work; else it must recover by
 * itself (retrying, or aborting and redoing the transaction) and publish
 * phase 1's results, each with its exact value. */
static void txn_fault(mock_t *m, const char *name, int api, rd_kafka_resp_err_t err, int cnt,
                      int fatal, const char *why) {
        topics_t t = dm_phase0(m, name, MODE_EOS);
        dm_produce_phase(m, t.in, 1);
        rd_kafka_resp_err_t errs[16];
        for (int i = 0; i < cnt; i++)
                errs[i] = err;
        rd_kafka_mock_push_request_errors_array(m->mc, (int16_t)api, (size_t)cnt, errs);
        run_t r;
        dm_start(m, &r, t.in, t.out, t.group, MODE_EOS);
        if (fatal) {
                assert_int_equal(dm_wait_failed(&r), -1);
                if (!strstr(r.errstr, why))
                        fail_msg("the daemon failed with \"%s\", not \"%s\"", r.errstr, why);
                rd_kafka_mock_clear_request_errors(m->mc, (int16_t)api);
                dm_finish_phase1(m, &t, MODE_EOS, PARTITIONS * (KEYS * PER_KEY + 1));
                return;
        }
        dm_wait_done(&r, PARTITIONS * (KEYS * PER_KEY + 1));
        assert_int_equal(dm_finish(&r, 1), 0);
        rd_kafka_mock_clear_request_errors(m->mc, (int16_t)api);
        dm_expect_results(m, t.out, 1, 0);
        int64_t next[PARTITIONS];
        dm_stored_offsets(m, t.group, next);
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
                cmocka_unit_test(test_txn_abortable_add_partitions),
                cmocka_unit_test(test_txn_retriable_end_txn),
                cmocka_unit_test(test_txn_retriable_offset_commit),
                cmocka_unit_test(test_txn_retriable_produce),
                cmocka_unit_test(test_txn_fatal_fenced),
        };
        if (getenv("TEST_FILTER")) /* e.g. TEST_FILTER='test_*_eos' */
                cmocka_set_test_filter(getenv("TEST_FILTER"));
        return cmocka_run_group_tests(tests, dm_setup, dm_teardown);
}
