/* The Prometheus text of /metrics (docs/METRICS.md lists every metric;
 * tests/integration/test_service.py checks that the two agree).
 *
 * Threads: the processing thread builds the text; the HTTP thread serves it
 * (admin.h). */
#ifndef DMP_METRICS_H
#define DMP_METRICS_H

#include <stdint.h>

#include "changelog.h"
#include "dlq.h"
#include "engine.h"
#include "txn.h"
#include "util.h"

/* What only the daemon knows. */
typedef struct dmp_metrics_input {
        const char *input_topic, *output_topic;
        const dmp_dlq_t *dlq;
        /* The end of each input partition by partition (-1: unknown): the
         * consumer lag is the end minus the partition's next offset. */
        const int64_t *log_end;
        int nlog_end;
        int assigned;       /* partitions held */
        uint64_t commits;
        double commit_seconds, commit_max_seconds;
        uint64_t fetch_wakeups; /* rounds of the fetch waker */
        int64_t now_ms;     /* wall clock, for the watermark lag */
        uint64_t rebalances;   /* assignments and revocations so far */
        int64_t rebalance_ms;  /* wall clock of the last one (0: none) */
        int ready;             /* what /readyz says */
        /* state queries of the HTTP endpoint (admin.h) */
        uint64_t queries_answered, queries_rejected, queries_expired;
        /* the changelog and its transactions (NULL: off) */
        const dmp_changelog_t *changelog;
        const dmp_txn_t *txn;
        /* stored offsets against the log on assignment (resume.h) */
        uint64_t offset_mismatches, records_lost;
} dmp_metrics_input_t;

/* Appends the metrics of e and in to out (Prometheus text). */
void dmp_metrics_format(dmp_buf_t *out, const dmp_engine_t *e, const dmp_metrics_input_t *in);

/* The same figures as one JSON object, for the live page (/api/status,
 * docs/METRICS.md): totals, partitions, dead letters and late events by
 * class and window, memory, commits, rebalances. */
void dmp_metrics_format_json(dmp_buf_t *out, const dmp_engine_t *e,
                             const dmp_metrics_input_t *in);

#endif
