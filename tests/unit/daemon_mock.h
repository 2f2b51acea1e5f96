/* The whole daemon in-process on librdkafka's mock cluster, for the unit
 * tests of the commit protocol under faults (test_daemon) and of the
 * transactions (test_daemon_txn): a cluster per test group, the input
 * written in phases, a daemon in a thread, and checks of what the store,
 * the group and a read_committed reader of the output hold.
 *
 * librdkafka 2.0.2's mock cluster does not implement a transaction's end
 * (no markers, nothing hidden from read_committed readers) nor the offsets
 * of TxnOffsetCommit (not stored): what a real broker hides after an abort
 * it shows. So the faults are chosen where the transaction never wrote
 * anything (AddPartitionsToTxn errors) or committed in the end (retriable
 * errors), and the group's offsets are checked without a changelog only.
 * Exactly-once visibility and aborted transactions are tested on a real
 * broker (tests/integration/test_crash.py, test_scaleout.py).
 * Each daemon start waits ~5 s on the mock (its group join waits 3 s, its
 * InitProducerId 1.5 s): the two suites run side by side
 * (scripts/run-unit-tests). */
#ifndef DMP_TEST_DAEMON_MOCK_H
#define DMP_TEST_DAEMON_MOCK_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>
#include <pthread.h>

#include "config.h"
#include "dmpflow.h"

/* Kafka protocol ApiKeys (librdkafka's RD_KAFKAP_*, not in its public
 * headers) for rd_kafka_mock_push_request_errors. */
#define API_PRODUCE                0
#define API_ADD_PARTITIONS_TO_TXN 24
#define API_END_TXN               26
#define API_TXN_OFFSET_COMMIT     28

typedef enum { MODE_LOCAL, MODE_ALOS, MODE_EOS } mode_t_;

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

typedef struct run {
        dmp_conf_t *conf;
        dmp_daemon_t *d;
        pthread_t tid;
        int rc;
        char errstr[512];
        uint64_t events_in_end; /* events it processed, once it stopped by itself */
} run_t;

typedef struct topics {
        char in[64], out[64], group[64];
} topics_t;

/* cmocka group setup and teardown: a one-broker mock cluster and a state
 * directory (*state: the mock_t). */
int dm_setup(void **state);
int dm_teardown(void **state);
/* Writes phase `ph` of the input to topic: per partition, PER_KEY events
 * of each of its keys in the window [ph * 10000, ph * 10000 + 1000), then
 * one of key "tick" at ph * 10000 + 5000 that closes it. Key k of
 * partition p is "p<p>k<k>"; its events have price 1 + ph + k, so its
 * window's sum of score is PER_KEY * 0.7 * (1 + ph + k). */
void dm_produce_phase(const mock_t *m, const char *topic, int ph);
/* Starts a daemon in a thread: input in, results to out, group group, in
 * mode; a restart waits for the mock group to drop the previous member. */
void dm_start(const mock_t *m, run_t *r, const char *in, const char *out, const char *group,
              mode_t_ mode);
/* Waits for the daemon's thread (asking it to stop if stop); returns its
 * status. */
int dm_finish(run_t *r, int stop);
/* joined */
dmp_daemon_counters_t dm_counters(const run_t *r);
/* Waits (up to 60 s) until the daemon has processed `events` records and
 * committed twice since: a commit after the last of them has landed. */
void dm_wait_committed(const run_t *r, uint64_t events);
/* Waits (up to 60 s) for the daemon to stop by itself. */
int dm_wait_failed(run_t *r);
/* The next offsets the state store of group holds for each partition. */
void dm_stored_offsets(const mock_t *m, const char *group, int64_t next[PARTITIONS]);
/* The group's committed offsets (-1: none). */
void dm_group_offsets(const mock_t *m, const char *topic, const char *group,
                      int64_t off[PARTITIONS]);
/* Every result of phase ph is on topic (once: exactly once) for a
 * read_committed reader. */
void dm_expect_results(const mock_t *m, const char *topic, int ph, int once);
/* The topics of a test (the changelog made here: librdkafka 2.0's mock
 * cluster has no controller for CreateTopics), with phase 0 processed and
 * committed by a daemon that then stopped cleanly. */
topics_t dm_phase0(mock_t *m, const char *name, mode_t_ mode);
/* Waits (up to 60 s) until every partition is open (restored) and the
 * daemon has processed `events` records and committed twice since. */
void dm_wait_done(const run_t *r, uint64_t events);
/* A restart finishes the work: phase 1's results published, the store's
 * offsets at the end of the input. It processes `events` records:
 * phase 1's, or none if it restored them from the changelog. */
void dm_finish_phase1(mock_t *m, const topics_t *t, mode_t_ mode, uint64_t events);

#endif
