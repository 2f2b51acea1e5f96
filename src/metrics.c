#include "metrics.h"

#include <inttypes.h>
#include <string.h>

#include "decoder.h"
#include "groups.h"

static void head(dmp_buf_t *b, const char *name, const char *type, const char *help) {
        dmp_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

typedef struct part_ctx {
        dmp_buf_t *b;
        const dmp_metrics_input_t *in;
        int what;
} part_ctx_t;

enum { P_EVENTS, P_OFFSET, P_STREAM_TIME, P_WATERMARK_LAG, P_LAG, P_ENTRIES };

/* Records between a partition's next offset and its end; -1: unknown. */
static int64_t consumer_lag(const dmp_metrics_input_t *in, const dmp_task_info_t *ti) {
        int p = (int)ti->partition;
        if (p >= in->nlog_end || in->log_end[p] < 0 || ti->next_offset < 0)
                return -1;
        return in->log_end[p] > ti->next_offset ? in->log_end[p] - ti->next_offset : 0;
}

static void per_partition(void *opaque, const dmp_task_info_t *ti) {
        part_ctx_t *pc = opaque;
        const char *t = pc->in->input_topic;
        int p = (int)ti->partition;
        switch (pc->what) {
        case P_EVENTS:
                dmp_buf_printf(pc->b, "dmpflow_events_in_total{topic=\"%s\",partition=\"%d\"} %" PRIu64
                               "\n", t, p, ti->events);
                break;
        case P_OFFSET:
                dmp_buf_printf(pc->b, "dmpflow_next_offset{topic=\"%s\",partition=\"%d\"} %" PRId64
                               "\n", t, p, ti->next_offset);
                break;
        case P_STREAM_TIME:
                if (ti->stream_time != INT64_MIN)
                        dmp_buf_printf(pc->b, "dmpflow_stream_time_ms{topic=\"%s\",partition=\"%d\"} "
                                       "%" PRId64 "\n", t, p, ti->stream_time);
                break;
        case P_WATERMARK_LAG:
                if (ti->stream_time != INT64_MIN)
                        dmp_buf_printf(pc->b, "dmpflow_watermark_lag_ms{topic=\"%s\",partition=\"%d\"} "
                                       "%" PRId64 "\n", t, p, pc->in->now_ms - ti->stream_time);
                break;
        case P_LAG:
                if (consumer_lag(pc->in, ti) >= 0)
                        dmp_buf_printf(pc->b, "dmpflow_consumer_lag{topic=\"%s\",partition=\"%d\"} %"
                                       PRId64 "\n", t, p, consumer_lag(pc->in, ti));
                break;
        case P_ENTRIES:
                dmp_buf_printf(pc->b, "dmpflow_state_entries{topic=\"%s\",partition=\"%d\"} %" PRIu64
                               "\n", t, p, ti->entries);
                break;
        }
}

static void partitions(dmp_buf_t *b, const dmp_engine_t *e, const dmp_metrics_input_t *in,
                       int what, const char *name, const char *type, const char *help) {
        head(b, name, type, help);
        part_ctx_t pc = {b, in, what};
        dmp_engine_foreach_task(e, per_partition, &pc);
}

/* Restores in progress, a sample per partition and what. */
typedef struct restore_ctx {
        dmp_buf_t *b;
        const char *topic;
        int remaining;
} restore_ctx_t;

static void restore_line(void *opaque, const dmp_restore_info_t *ri) {
        restore_ctx_t *rc = opaque;
        if (!rc->remaining) {
                dmp_buf_printf(rc->b, "dmpflow_restore_records{topic=\"%s\",partition=\"%d\"} %"
                               PRIu64 "\n", rc->topic, (int)ri->partition, ri->records);
                return;
        }
        int64_t at = ri->position >= 0 ? ri->position : ri->from;
        if (ri->end >= 0)
                dmp_buf_printf(rc->b, "dmpflow_restore_remaining{topic=\"%s\",partition=\"%d\"} "
                               "%" PRId64 "\n", rc->topic, (int)ri->partition,
                               ri->end > at ? ri->end - at : 0);
}

/* The changelog (docs/STATE.md): records out, restores, transactions. */
static void changelog_metrics(dmp_buf_t *b, const dmp_metrics_input_t *in) {
        const dmp_changelog_stats_t *cs = dmp_changelog_stats(in->changelog);
        const char *t = dmp_changelog_topic(in->changelog);
        head(b, "dmpflow_changelog_records_total", "counter",
             "State changes written to the changelog topic.");
        dmp_buf_printf(b, "dmpflow_changelog_records_total{topic=\"%s\"} %" PRIu64 "\n", t,
                       cs->records_out);
        head(b, "dmpflow_restores_total", "counter",
             "Partitions restored from the changelog (at assignment, after an aborted "
             "transaction).");
        dmp_buf_printf(b, "dmpflow_restores_total %" PRIu64 "\n", cs->restores);
        head(b, "dmpflow_restored_records_total", "counter",
             "Changelog records applied by restores.");
        dmp_buf_printf(b, "dmpflow_restored_records_total %" PRIu64 "\n", cs->restored_records);
        head(b, "dmpflow_restoring_partitions", "gauge",
             "Partitions being restored (their input waits).");
        dmp_buf_printf(b, "dmpflow_restoring_partitions %d\n", dmp_changelog_restoring(in->changelog));
        restore_ctx_t rc = {b, t, 0};
        head(b, "dmpflow_restore_records", "gauge",
             "Records applied so far by a restore in progress, by partition.");
        dmp_changelog_foreach_restore(in->changelog, restore_line, &rc);
        rc.remaining = 1;
        head(b, "dmpflow_restore_remaining", "gauge",
             "Changelog records a restore in progress has still to read, by partition.");
        dmp_changelog_foreach_restore(in->changelog, restore_line, &rc);
        if (!in->txn)
                return;
        const dmp_txn_stats_t *ts = dmp_txn_stats(in->txn);
        head(b, "dmpflow_transactions_total", "counter",
             "Kafka transactions of the commits, by outcome.");
        dmp_buf_printf(b, "dmpflow_transactions_total{result=\"committed\"} %" PRIu64 "\n"
                          "dmpflow_transactions_total{result=\"aborted\"} %" PRIu64 "\n",
                       ts->commits, ts->aborts);
        head(b, "dmpflow_transaction_commit_seconds", "summary",
             "Time commit_transaction took (the transaction's end at the coordinator).");
        dmp_buf_printf(b, "dmpflow_transaction_commit_seconds_count %" PRIu64 "\n"
                          "dmpflow_transaction_commit_seconds_sum %.6f\n",
                       ts->commits, ts->commit_seconds);
        head(b, "dmpflow_transaction_commit_max_seconds", "gauge",
             "The longest commit_transaction so far.");
        dmp_buf_printf(b, "dmpflow_transaction_commit_max_seconds %.6f\n",
                       ts->commit_max_seconds);
}

void dmp_metrics_format(dmp_buf_t *b, const dmp_engine_t *e, const dmp_metrics_input_t *in) {
        const dmp_engine_stats_t *s = dmp_engine_stats(e);
        head(b, "dmpflow_up", "gauge", "1 while the process runs.");
        dmp_buf_printf(b, "dmpflow_up 1\n");
        head(b, "dmpflow_assigned_partitions", "gauge", "Input partitions this instance holds.");
        dmp_buf_printf(b, "dmpflow_assigned_partitions %d\n", in->assigned);
        partitions(b, e, in, P_EVENTS, "dmpflow_events_in_total", "counter",
                   "Input records processed, by partition (since it was assigned).");
        partitions(b, e, in, P_OFFSET, "dmpflow_next_offset", "gauge",
                   "The next input offset to process (-1: none yet).");
        partitions(b, e, in, P_LAG, "dmpflow_consumer_lag", "gauge",
                   "Records behind the partition's end (librdkafka statistics).");
        partitions(b, e, in, P_STREAM_TIME, "dmpflow_stream_time_ms", "gauge",
                   "The partition's stream time: its largest event time (epoch ms).");
        partitions(b, e, in, P_WATERMARK_LAG, "dmpflow_watermark_lag_ms", "gauge",
                   "Wall-clock time minus the partition's stream time.");
        partitions(b, e, in, P_ENTRIES, "dmpflow_state_entries", "gauge",
                   "Window entries in memory, by partition.");
        head(b, "dmpflow_events_total", "counter", "Input records processed by this process.");
        dmp_buf_printf(b, "dmpflow_events_total %" PRIu64 "\n", s->events_in);
        head(b, "dmpflow_results_out_total", "counter", "Window results published.");
        dmp_buf_printf(b, "dmpflow_results_out_total{topic=\"%s\"} %" PRIu64 "\n",
                       in->output_topic, s->results_out);
        head(b, "dmpflow_decode_errors_total", "counter",
             "Input records that could not be used, by error class (each is a dead letter).");
        head(b, "dmpflow_dead_letters_total", "counter",
             "Records sent to (or, without [output] dlq.topic, counted for) the dead-letter "
             "topic, by error class.");
        for (int c = 1; c < DMP_DECODE__CNT; c++) {
                if (c == DMP_DECODE_UNAVAILABLE)
                        continue; /* not a dead letter: the record waits */
                uint64_t n = dmp_dlq_count(in->dlq, (dmp_decode_err_t)c);
                const char *cls = dmp_decode_err_name((dmp_decode_err_t)c);
                dmp_buf_printf(b, "dmpflow_decode_errors_total{class=\"%s\"} %" PRIu64 "\n", cls, n);
                dmp_buf_printf(b, "dmpflow_dead_letters_total{class=\"%s\"} %" PRIu64 "\n", cls, n);
        }
        head(b, "dmpflow_late_events_total", "counter",
             "Events late for a window definition (they updated none of its windows).");
        for (int w = 0; w < dmp_engine_window_cnt(e); w++)
                dmp_buf_printf(b, "dmpflow_late_events_total{window=\"%s\"} %" PRIu64 "\n",
                               dmp_engine_window(e, w)->name, s->late_by_window[w]);
        head(b, "dmpflow_late_window_instances_total", "counter",
             "Late (event, window) pairs, counted as Kafka Streams' dropped-records: per closed "
             "window for tumbling and hopping, per late event for sessions, per late event and "
             "per closed window skipped for sliding windows.");
        for (int w = 0; w < dmp_engine_window_cnt(e); w++)
                dmp_buf_printf(b, "dmpflow_late_window_instances_total{window=\"%s\"} %" PRIu64
                                  "\n",
                               dmp_engine_window(e, w)->name, s->late_instances_by_window[w]);
        head(b, "dmpflow_measure_undefined_total", "counter",
             "(event, measure) pairs skipped because a field was null.");
        dmp_buf_printf(b, "dmpflow_measure_undefined_total %" PRIu64 "\n", s->measure_undefined);
        head(b, "dmpflow_commit_duration_seconds", "summary",
             "Time the processing thread spends in commits (publish flush, handing over the state batch).");
        dmp_buf_printf(b, "dmpflow_commit_duration_seconds_count %" PRIu64 "\n"
                          "dmpflow_commit_duration_seconds_sum %.6f\n", in->commits,
                       in->commit_seconds);
        head(b, "dmpflow_commit_duration_max_seconds", "gauge", "The longest commit so far.");
        dmp_buf_printf(b, "dmpflow_commit_duration_max_seconds %.6f\n", in->commit_max_seconds);
        head(b, "dmpflow_fetch_wakeups_total", "counter",
             "Rounds that woke librdkafka's fetcher after the consumer queue drained "
             "(librdkafka < 2.3; src/fetchwake.h).");
        dmp_buf_printf(b, "dmpflow_fetch_wakeups_total %" PRIu64 "\n", in->fetch_wakeups);
        head(b, "dmpflow_memory_bytes", "gauge",
             "Memory charged to the budget: entries, RocksDB block cache, memtables.");
        dmp_buf_printf(b, "dmpflow_memory_bytes{kind=\"entries\"} %" PRIu64 "\n"
                          "dmpflow_memory_bytes{kind=\"block_cache\"} %" PRIu64 "\n"
                          "dmpflow_memory_bytes{kind=\"memtables\"} %" PRIu64 "\n",
                       s->mem_entries, s->mem_block_cache, s->mem_memtables);
        head(b, "dmpflow_memory_budget_bytes", "gauge", "The configured memory budget.");
        dmp_buf_printf(b, "dmpflow_memory_budget_bytes %" PRIu64 "\n", s->mem_budget);
        head(b, "dmpflow_evictions_total", "counter", "Clean entries freed under memory pressure.");
        dmp_buf_printf(b, "dmpflow_evictions_total %" PRIu64 "\n", s->evictions);
        head(b, "dmpflow_reloads_total", "counter", "Evicted entries read back from RocksDB.");
        dmp_buf_printf(b, "dmpflow_reloads_total %" PRIu64 "\n", s->reloads);
        const dmp_groups_stats_t *g = dmp_engine_groups_stats(e);
        head(b, "dmpflow_group_results_total", "counter", "Group statistics published.");
        dmp_buf_printf(b, "dmpflow_group_results_total %" PRIu64 "\n", g ? g->group_results : 0);
        head(b, "dmpflow_patterns_total", "counter", "Pattern records published.");
        dmp_buf_printf(b, "dmpflow_patterns_total %" PRIu64 "\n", g ? g->patterns : 0);
        head(b, "dmpflow_late_group_updates_total", "counter",
             "(event, group window) pairs skipped because the window had closed.");
        dmp_buf_printf(b, "dmpflow_late_group_updates_total %" PRIu64 "\n",
                       g ? g->late_group_updates : 0);
        head(b, "dmpflow_rebalances_total", "counter",
             "Partition assignments and revocations this instance went through.");
        dmp_buf_printf(b, "dmpflow_rebalances_total %" PRIu64 "\n", in->rebalances);
        head(b, "dmpflow_offset_mismatches_total", "counter",
             "Partitions whose stored next offset was beyond their log end offset when "
             "assigned ([state] on.offset.mismatch).");
        dmp_buf_printf(b, "dmpflow_offset_mismatches_total %" PRIu64 "\n", in->offset_mismatches);
        head(b, "dmpflow_input_records_lost_total", "counter",
             "Input records deleted (retention) before they were read: a stored next offset "
             "below the partition's log start offset when assigned.");
        dmp_buf_printf(b, "dmpflow_input_records_lost_total %" PRIu64 "\n", in->records_lost);
        head(b, "dmpflow_http_state_queries_total", "counter",
             "State queries of the HTTP endpoint: answered, rejected at once (too many "
             "waiting) or expired (not answered within 5 s).");
        dmp_buf_printf(b, "dmpflow_http_state_queries_total{result=\"answered\"} %" PRIu64 "\n"
                          "dmpflow_http_state_queries_total{result=\"rejected\"} %" PRIu64 "\n"
                          "dmpflow_http_state_queries_total{result=\"expired\"} %" PRIu64 "\n",
                       in->queries_answered, in->queries_rejected, in->queries_expired);
        if (in->changelog)
                changelog_metrics(b, in);
}

/* ---- JSON ---- */

/* "name": v, or "name": null for v == none. */
static void json_i64(dmp_buf_t *b, const char *name, int64_t v, int64_t none) {
        if (v == none)
                dmp_buf_printf(b, "\"%s\": null", name);
        else
                dmp_buf_printf(b, "\"%s\": %" PRId64, name, v);
}

typedef struct json_part_ctx {
        dmp_buf_t *b;
        const dmp_metrics_input_t *in;
        int n;
} json_part_ctx_t;

static void json_partition(void *opaque, const dmp_task_info_t *ti) {
        json_part_ctx_t *pc = opaque;
        dmp_buf_t *b = pc->b;
        int p = (int)ti->partition;
        int64_t lag = consumer_lag(pc->in, ti);
        dmp_buf_printf(b, "%s{\"partition\": %d, \"next_offset\": %" PRId64 ", ",
                       pc->n++ ? ", " : "", p, ti->next_offset);
        json_i64(b, "lag", lag < 0 ? -1 : lag, -1);
        dmp_buf_puts(b, ", ");
        json_i64(b, "stream_time_ms", ti->stream_time, INT64_MIN);
        dmp_buf_puts(b, ", ");
        json_i64(b, "watermark_lag_ms",
                 ti->stream_time == INT64_MIN ? INT64_MIN : pc->in->now_ms - ti->stream_time,
                 INT64_MIN);
        dmp_buf_printf(b, ", \"events\": %" PRIu64 ", \"entries\": %" PRIu64 "}", ti->events,
                       ti->entries);
}

void dmp_metrics_format_json(dmp_buf_t *b, const dmp_engine_t *e,
                             const dmp_metrics_input_t *in) {
        const dmp_engine_stats_t *s = dmp_engine_stats(e);
        const dmp_groups_stats_t *g = dmp_engine_groups_stats(e);
        uint64_t dead = 0, late = 0;
        for (int c = 1; c < DMP_DECODE__CNT; c++)
                if (c != DMP_DECODE_UNAVAILABLE)
                        dead += dmp_dlq_count(in->dlq, (dmp_decode_err_t)c);
        for (int w = 0; w < dmp_engine_window_cnt(e); w++)
                late += s->late_by_window[w];
        dmp_buf_printf(b, "{\"ready\": %s, \"assigned\": %d, \"rebalances\": %" PRIu64 ", ",
                       in->ready ? "true" : "false", in->assigned, in->rebalances);
        json_i64(b, "last_rebalance_ms", in->rebalance_ms, 0);
        dmp_buf_printf(b, ", \"totals\": {\"events\": %" PRIu64 ", \"results\": %" PRIu64
                       ", \"group_results\": %" PRIu64 ", \"patterns\": %" PRIu64
                       ", \"dead_letters\": %" PRIu64 ", \"late_events\": %" PRIu64
                       ", \"measure_undefined\": %" PRIu64 ", \"late_group_updates\": %" PRIu64
                       "}", s->events_in, s->results_out, g ? g->group_results : 0,
                       g ? g->patterns : 0, dead, late, s->measure_undefined,
                       g ? g->late_group_updates : 0);
        dmp_buf_puts(b, ", \"partitions\": [");
        json_part_ctx_t pc = {b, in, 0};
        dmp_engine_foreach_task(e, json_partition, &pc);
        dmp_buf_puts(b, "], \"dead_letters\": {");
        int n = 0;
        for (int c = 1; c < DMP_DECODE__CNT; c++)
                if (c != DMP_DECODE_UNAVAILABLE)
                        dmp_buf_printf(b, "%s\"%s\": %" PRIu64, n++ ? ", " : "",
                                       dmp_decode_err_name((dmp_decode_err_t)c),
                                       dmp_dlq_count(in->dlq, (dmp_decode_err_t)c));
        dmp_buf_puts(b, "}, \"late_events\": {");
        for (int w = 0; w < dmp_engine_window_cnt(e); w++) {
                dmp_buf_puts(b, w ? ", " : "");
                const char *name = dmp_engine_window(e, w)->name;
                dmp_json_string(b, name, strlen(name));
                dmp_buf_printf(b, ": %" PRIu64, s->late_by_window[w]);
        }
        dmp_buf_printf(b, "}, \"memory\": {\"entries\": %" PRIu64 ", \"block_cache\": %" PRIu64
                       ", \"memtables\": %" PRIu64 ", \"budget\": %" PRIu64
                       ", \"evictions\": %" PRIu64 ", \"reloads\": %" PRIu64 "}",
                       s->mem_entries, s->mem_block_cache, s->mem_memtables, s->mem_budget,
                       s->evictions, s->reloads);
        dmp_buf_printf(b, ", \"commits\": {\"count\": %" PRIu64 ", \"seconds\": %.6f"
                       ", \"max_seconds\": %.6f}}", in->commits, in->commit_seconds,
                       in->commit_max_seconds);
}
