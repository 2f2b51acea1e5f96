/* Kafka transactions: see txn.h. */
#include "txn.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "util.h"

#define RETRIES 10 /* of a retriable error, with the call's own timeout each */
#define ABORT_TIMEOUT_MS 15000

struct dmp_txn {
        rd_kafka_t *producer;
        int open; /* a transaction is begun */
        dmp_txn_stats_t stats;
};

/* Classifies err (destroying it): 0 retry, DMP_TXN_ABORTED, DMP_TXN_FATAL. */
static int classify(rd_kafka_error_t *err, const char *what, char *errstr, size_t errstr_size) {
        snprintf(errstr, errstr_size, "%s: %s", what, rd_kafka_error_string(err));
        int r = rd_kafka_error_is_fatal(err)              ? DMP_TXN_FATAL
                : rd_kafka_error_txn_requires_abort(err)  ? DMP_TXN_ABORTED
                : rd_kafka_error_is_retriable(err)        ? 0
                                                          : DMP_TXN_FATAL;
        rd_kafka_error_destroy(err);
        return r;
}

static int begin(dmp_txn_t *t, char *errstr, size_t errstr_size) {
        rd_kafka_error_t *err = rd_kafka_begin_transaction(t->producer);
        if (err) {
                snprintf(errstr, errstr_size, "cannot begin a transaction: %s",
                         rd_kafka_error_string(err));
                rd_kafka_error_destroy(err);
                return -1;
        }
        t->open = 1;
        return 0;
}

dmp_txn_t *dmp_txn_new(rd_kafka_t *producer, int timeout_ms, char *errstr, size_t errstr_size) {
        dmp_txn_t *t = dmp_calloc(1, sizeof(*t));
        t->producer = producer;
        rd_kafka_error_t *err = NULL;
        for (int i = 0; i < RETRIES; i++) {
                err = rd_kafka_init_transactions(producer, timeout_ms);
                if (!err || !rd_kafka_error_is_retriable(err))
                        break;
                dmp_warn("initializing transactions: %s; retrying", rd_kafka_error_string(err));
                rd_kafka_error_destroy(err);
                err = NULL;
        }
        if (err) {
                snprintf(errstr, errstr_size, "cannot initialize transactions: %s",
                         rd_kafka_error_string(err));
                rd_kafka_error_destroy(err);
                free(t);
                return NULL;
        }
        if (begin(t, errstr, errstr_size)) {
                free(t);
                return NULL;
        }
        return t;
}

void dmp_txn_destroy(dmp_txn_t *t) {
        if (!t)
                return;
        if (t->open) {
                rd_kafka_error_t *err = rd_kafka_abort_transaction(t->producer, 10000);
                if (err)
                        rd_kafka_error_destroy(err);
        }
        free(t);
}

dmp_txn_result_t dmp_txn_abort(dmp_txn_t *t, const char *why_, char *errstr,
                               size_t errstr_size) {
        char why[512]; /* (why_ may be errstr) */
        snprintf(why, sizeof(why), "%s", why_);
        dmp_warn("aborting the transaction: %s", why);
        t->open = 0;
        /* An abort waits for the transaction's outstanding messages; librdkafka
         * 2.0.2 can wait forever for those of a partition whose topic the
         * broker refused (its "partition drain", seen on the mock cluster):
         * two bounded attempts, then the producer is given up. */
        for (int i = 0;; i++) {
                rd_kafka_error_t *err = rd_kafka_abort_transaction(t->producer, ABORT_TIMEOUT_MS);
                if (!err)
                        break;
                int r = classify(err, "cannot abort the transaction", errstr, errstr_size);
                if (r || i == 1)
                        return DMP_TXN_FATAL; /* an abort that fails leaves nothing to do */
        }
        t->stats.aborts++;
        if (begin(t, errstr, errstr_size))
                return DMP_TXN_FATAL;
        snprintf(errstr, errstr_size, "%s", why);
        return DMP_TXN_ABORTED;
}

dmp_txn_result_t dmp_txn_commit(dmp_txn_t *t, const rd_kafka_topic_partition_list_t *offsets,
                                rd_kafka_t *consumer, int timeout_ms, char *errstr,
                                size_t errstr_size) {
        char why[512];
        int r = 0;
        if (offsets->cnt) {
                rd_kafka_consumer_group_metadata_t *gm = rd_kafka_consumer_group_metadata(consumer);
                for (int i = 0; i <= RETRIES; i++) {
                        rd_kafka_error_t *err =
                                rd_kafka_send_offsets_to_transaction(t->producer, offsets, gm,
                                                                     timeout_ms);
                        if (!err)
                                break;
                        r = classify(err, "cannot add the input offsets to the transaction", why,
                                     sizeof(why));
                        if (r)
                                break;
                        dmp_warn("%s; retrying", why);
                }
                rd_kafka_consumer_group_metadata_destroy(gm);
        }
        int64_t t0 = dmp_mono_ms();
        for (int i = 0; !r && i <= RETRIES; i++) {
                rd_kafka_error_t *err = rd_kafka_commit_transaction(t->producer, timeout_ms);
                if (!err) {
                        t->open = 0;
                        double s = (double)(dmp_mono_ms() - t0) / 1000.0;
                        t->stats.commits++;
                        t->stats.commit_seconds += s;
                        if (s > t->stats.commit_max_seconds)
                                t->stats.commit_max_seconds = s;
                        return begin(t, errstr, errstr_size) ? DMP_TXN_FATAL : DMP_TXN_COMMITTED;
                }
                r = classify(err, "cannot commit the transaction", why, sizeof(why));
                if (!r)
                        dmp_warn("%s; retrying", why); /* resumes in the background */
        }
        if (!r) /* retriable, every time */
                r = DMP_TXN_ABORTED;
        if (r == DMP_TXN_FATAL) {
                snprintf(errstr, errstr_size, "%s", why);
                return DMP_TXN_FATAL;
        }
        return dmp_txn_abort(t, why, errstr, errstr_size);
}

const dmp_txn_stats_t *dmp_txn_stats(const dmp_txn_t *t) {
        return &t->stats;
}
