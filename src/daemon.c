/* The daemon: Kafka consumer group + producer around the engine
 * (docs/ARCHITECTURE.md has the data flow and the threads).
 *
 * Commit protocol (at every commit.interval.ms, on revocation, on stop;
 * docs/STATE.md "Crash consistency"):
 *   1. emit what is due (update-mode results, group statistics, patterns)
 *      and flush the producer: every result emitted so far is acknowledged;
 *   2. write the engine's state with the offsets it reflects, atomically;
 *   3. commit the same offsets to the group (informational, for lag tools).
 * On assignment each partition resumes at the offset stored with its state,
 * never at the group's committed offset, so state and input agree. A crash
 * between 1 and 2 republishes the results of windows that closed since the
 * last commit (at-least-once output); it never loses or double-counts input.
 *
 * The loop (dmp_daemon_run) serves the fetched messages, then the periodic
 * tasks of its cron table (commits, idle ticks, metrics, ...).
 *
 * Threads: everything below runs on the processing thread, including the
 * rebalance callback (served from the consumer queue in the loop), except
 * dmp_daemon_stop() and dmp_daemon_counters(). */
#include "dmpflow.h"

#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "avro_enc.h"
#include "changelog.h"
#include "config.h"
#include "copy.h"
#include "dlq.h"
#include "engine.h"
#include "fetchq.h"
#include "fetchwake.h"
#include "kafkaconf.h"
#include "admin.h"
#include "live.h"
#include "log.h"
#include "metrics.h"
#include "outbatch.h"
#include "outrec.h"
#include "pause.h"
#include "query.h"
#include "registry.h"
#include "resume.h"
#include "schemas.h"
#include "txn.h"
#include "util.h"

#define FLUSH_TIMEOUT_MS 60000
#define CONSUME_BATCH 256 /* messages taken from the consumer queue per call */
#define DMP_MAX_LAG_PARTITIONS 4096
#define TXN_TIMEOUT_MS 60000     /* per attempt of a transactional call */
#define MAX_ABORTS_IN_ROW 10     /* transactions aborted one after the other: give up */
#define RESTORE_PER_ROUND 100000 /* changelog records applied per round of the loop */

/* The loop's periodic tasks, as Redis' serverCron with run_with_period:
 * each round runs every task whose time has come (a round lasts at most
 * ~100 ms: the wait when both queues are empty). */
typedef struct cron {
        const char *name;
        void (*run)(dmp_daemon_t *d, int64_t now);
        int64_t period_ms; /* <= 0: off */
        int64_t next_ms;   /* monotonic */
} cron_t;
enum { CRON_IDLE, CRON_REFORWARD, CRON_METRICS, CRON_BUDGET, CRON_COMMIT, CRON_PROGRESS,
       CRON_LOG, CRON__CNT };

struct dmp_daemon {
        dmp_conf_t *conf;
        dmp_engine_t *engine;
        rd_kafka_t *consumer;
        rd_kafka_t *producer;     /* every output (transactional under exactly_once) */
        /* With a changelog: its producer (d->producer under exactly_once),
         * its transactions, and the changelog itself. */
        rd_kafka_t *txn_producer;
        int32_t input_partitions; /* the input topic's, learnt by the startup wait */
        dmp_txn_t *txn;
        dmp_changelog_t *changelog;
        int eos;
        int aborts_in_row;
        char doomed[1100]; /* exactly_once: why the open transaction must abort ("": it
                            * need not) */
        dmp_outbatch_t *out_batch; /* the output topic's (and its handle) */
        const char *late_topic; /* NULL: late events are not copied */
        const rd_kafka_message_t *serving; /* in dmp_engine_process: the record */
        dmp_dlq_t *dlq;
        dmp_registry_t *registry; /* format = confluent */
        dmp_pauses_t *pauses;     /* partitions waiting for the registry */
        dmp_fetchq_t *fetchq;       /* the assigned partitions' messages */
        dmp_fetchwake_t *fetchwake; /* librdkafka < 2.3: wakes the fetcher */
        int32_t out_schema_id;    /* >= 0: results in the Confluent wire format */
        atomic_int stop;
        int failed; /* a runtime failure: stop without committing */
        int failed_usage; /* and it needs an operator's decision: exit 2 (resume_offset) */
        uint64_t offset_mismatches; /* partitions whose stored offset was beyond the log */
        uint64_t records_lost;      /* input deleted before it was read (resume.h) */
        char kafka_error[512]; /* the consumer's last error (consumer_error_cb) */
        char failure[512];
        uint64_t delivery_failures;
        uint64_t skipped; /* records not processed: see dmp_engine_wants() */
        uint64_t unforwarded; /* records that came through the consumer queue */
        cron_t cron[CRON__CNT];
        uint64_t progress_events; /* events_in at the last progress line */
        /* topics of [group] and [pattern] sections, with their schema ids */
        struct extra_topic {
                const char *name;
                dmp_outbatch_t *batch; /* d->out_batch if it is the output topic */
                const char *schema; /* its records' schema, registered at startup */
                int32_t schema_id; /* >= 0: Confluent wire format */
        } extra[DMP_MAX_GROUPS + DMP_MAX_PATTERNS];
        int nextra;
        unsigned char *outbuf; /* the encoding buffer of every output record */
        size_t outbuf_cap;
        /* the HTTP endpoint and what only the daemon knows for its metrics */
        dmp_admin_t *admin;
        dmp_live_t *live;                /* what the live page shows (with admin) */
        int assigned;                    /* partitions held */
        uint64_t rebalances;             /* assignments and revocations */
        int64_t rebalance_ms;            /* wall clock of the last one */
        int64_t log_end[DMP_MAX_LAG_PARTITIONS]; /* input partition ends (statistics), -1 */
        uint64_t commit_count;
        double commit_seconds, commit_max_seconds;
        /* group offsets of the last commit handed to the state writer:
         * committed to Kafka once that write is known to have landed */
        rd_kafka_topic_partition_list_t *unlanded_offsets;
        /* counters published for other threads */
        _Atomic uint64_t c_events_in, c_decode_errors, c_late_events, c_results_out, c_commits,
                c_partitions, c_restoring, c_restored_records, c_ready;
};

static void fail(dmp_daemon_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(dmp_daemon_t *d, const char *fmt, ...) {
        if (d->failed)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->failure, sizeof(d->failure), fmt, ap);
        va_end(ap);
        d->failed = 1;
        atomic_store(&d->stop, 1);
        dmp_error("%s", d->failure);
}

/* The consumer's errors that are not a partition's (those come as
 * messages, process_message): the connection's, the cluster's, a fatal
 * one (e.g. a static member fenced after its session timed out while the
 * broker was away: librdkafka #3437, docs/STATE.md). Without this callback
 * librdkafka would log each itself.
 * Processing thread (served from the consumer queue). */
static void consumer_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
        dmp_daemon_t *d = opaque;
        if (err == RD_KAFKA_RESP_ERR__FATAL) {
                char e[512];
                rd_kafka_fatal_error(rk, e, sizeof(e));
                fail(d, "fatal consumer error: %s", e);
                return;
        }
        if (err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) { /* (the reason is in the others) */
                const char *after = strstr(reason, " (after "); /* timings, counts */
                snprintf(d->kafka_error, sizeof(d->kafka_error), "%.*s",
                         after ? (int)(after - reason) : (int)strlen(reason), reason);
        }
        /* A lost connection is logged by librdkafka itself (FAIL, ERROR),
         * counted (kafkaconf.h); anything else here, counted too (log.h). */
        int connection = err == RD_KAFKA_RESP_ERR__TRANSPORT ||
                         err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN;
        char cls[200];
        dmp_kafkaconf_log_class("consumer", reason, cls, sizeof(cls));
        dmp_log_repeated(connection ? DMP_LOG_DEBUG : DMP_LOG_WARN, cls, "consumer: %s", reason);
}

/* ---- output ---- */

static void delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        (void)rk;
        dmp_daemon_t *d = opaque;
        /* Records purged by a transaction's abort (librdkafka purges on
         * abort; dmpflow never purges otherwise): that transaction failed
         * already and its work is redone. Their reports can come after the
         * next transaction began, which must not fail for them (it did: an
         * abort, then aborts in a row, on a loaded machine). */
        if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
                return;
        if (d->changelog && dmp_changelog_owns(d->changelog, m)) {
                dmp_changelog_delivered(d->changelog, m);
                return;
        }
        if (m->err) { /* one per result when a topic refuses them all: counted */
                char cls[300];
                d->delivery_failures++;
                if (d->out_batch) /* (the topic may be refused now) */
                        dmp_outbatch_relearn(d->out_batch);
                for (int i = 0; i < d->nextra; i++)
                        if (d->extra[i].batch)
                                dmp_outbatch_relearn(d->extra[i].batch);
                snprintf(cls, sizeof(cls), "delivery %s %d", rd_kafka_topic_name(m->rkt),
                         (int)m->err);
                dmp_log_repeated(DMP_LOG_ERROR, cls, "result delivery to %s failed: %s",
                                 rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        }
}

/* An output could not be produced. Under exactly_once the transaction is
 * doomed: the next commit (at once) aborts it and redoes its work;
 * otherwise the output would be lost, so dmpflow stops. */
static void output_failed(dmp_daemon_t *d, const char *what, const char *err) {
        if (!d->eos) {
                fail(d, "%s%s", what, err);
                return;
        }
        if (!d->doomed[0]) {
                snprintf(d->doomed, sizeof(d->doomed), "%s%s", what, err);
                d->cron[CRON_COMMIT].next_ms = 0;
        }
}

/* Adds a copy of buf to the topic's batch (outbatch.h): flush_outputs
 * enqueues it with the producer. */
static void produce(dmp_daemon_t *d, dmp_outbatch_t *b, const void *buf, size_t len,
                    const void *key, size_t key_len) {
        char err[512];
        if (dmp_outbatch_add(b, buf, len, key, key_len, err, sizeof(err)))
                output_failed(d, "", err);
}

/* Enqueues every output batch with the producer: after each batch of input
 * (and idle tick) and before a commit flushes the producer. Returns 0, or
 * -1 (an output failed: output_failed). */
static int flush_outputs(dmp_daemon_t *d) {
        char err[512];
        int rc = 0;
        if (d->out_batch && dmp_outbatch_flush(d->out_batch, err, sizeof(err)))
                rc = -1;
        for (int i = 0; i < d->nextra && !rc; i++)
                if (d->extra[i].batch && dmp_outbatch_flush(d->extra[i].batch, err, sizeof(err)))
                        rc = -1;
        if (rc)
                output_failed(d, "", err);
        return rc;
}

/* Writes the Confluent framing (magic byte 0, the schema id) if schema_id
 * >= 0; returns its length. */
static size_t frame(unsigned char *buf, int32_t schema_id) {
        if (schema_id < 0)
                return 0;
        buf[0] = 0;
        dmp_be32_put(buf + 1, (uint32_t)schema_id);
        return 5;
}

static struct extra_topic *extra_topic(dmp_daemon_t *d, const char *name) {
        for (int i = 0; i < d->nextra; i++)
                if (!strcmp(d->extra[i].name, name))
                        return &d->extra[i];
        return NULL; /* all are created at startup */
}

/* Encodes one output record into the encoding buffer (after its Confluent
 * framing if schema_id >= 0; bound: the encoding's size bound) and adds it
 * to batch, keyed by key. */
typedef size_t(encode_fn)(unsigned char *buf, const void *rec);
static void publish(dmp_daemon_t *d, dmp_outbatch_t *batch, int32_t schema_id, size_t bound,
                    encode_fn *encode, const void *rec, const void *key, size_t key_len) {
        if (5 + bound > d->outbuf_cap) {
                d->outbuf_cap = (5 + bound) * 2;
                d->outbuf = dmp_realloc(d->outbuf, d->outbuf_cap);
        }
        size_t len = frame(d->outbuf, schema_id);
        len += encode(d->outbuf + len, rec);
        produce(d, batch, d->outbuf, len, key, key_len);
}

static size_t encode_result(unsigned char *buf, const void *r) {
        return dmp_outrec_result(buf, r);
}

static size_t encode_group(unsigned char *buf, const void *r) {
        return dmp_outrec_group(buf, r);
}

static size_t encode_pattern(unsigned char *buf, const void *r) {
        return dmp_outrec_pattern(buf, r);
}

/* ---- the engine's sink (engine.h): every output of the engine ---- */

static void sink_result(void *opaque, const dmp_result_t *r) {
        dmp_daemon_t *d = opaque;
        publish(d, d->out_batch, d->out_schema_id, dmp_outrec_result_size(r), encode_result, r,
                r->key, r->key_len);
        if (d->live)
                dmp_live_result(d->live, r);
}

static void sink_group(void *opaque, const dmp_group_result_t *r) {
        dmp_daemon_t *d = opaque;
        struct extra_topic *t = extra_topic(d, r->topic);
        publish(d, t->batch, t->schema_id, dmp_outrec_group_size(r), encode_group, r, r->value,
                r->value_len);
        if (d->live)
                dmp_live_group(d->live, r);
}

static void sink_pattern(void *opaque, const dmp_pattern_result_t *r) {
        dmp_daemon_t *d = opaque;
        struct extra_topic *t = extra_topic(d, r->topic);
        publish(d, t->batch, t->schema_id, dmp_outrec_pattern_size(r), encode_pattern, r,
                r->subject, r->subject_len);
}

/* Copies the late event being processed (d->serving) unchanged to the late
 * topic, with its provenance and the window definitions it was late for. */
static void sink_late(void *opaque, const dmp_late_record_t *l) {
        dmp_daemon_t *d = opaque;
        const rd_kafka_message_t *m = d->serving;
        if (!d->late_topic || !m)
                return;
        char windows[1024];
        size_t wl = 0;
        windows[0] = '\0';
        for (int i = 0; i < dmp_engine_window_cnt(d->engine) && wl < sizeof(windows); i++)
                if (l->late_mask & (1u << i))
                        wl += (size_t)snprintf(windows + wl, sizeof(windows) - wl, "%s%s",
                                               wl ? "," : "", dmp_engine_window(d->engine, i)->name);
        rd_kafka_timestamp_type_t tstype;
        dmp_copy_rec_t r = {d->conf->input.topic, l->partition, l->offset,
                            rd_kafka_message_timestamp(m, &tstype), m->key, m->key_len,
                            m->payload, m->len};
        const char *why[] = {DMP_COPY_H_LATE_WINDOWS, windows};
        char err[512];
        if (dmp_copy_produce(d->producer, d->late_topic, &r, why, 1, err, sizeof(err)))
                output_failed(d, "cannot copy a late event: ", err);
}

/* Creates the producer topic of a [group] or [pattern] section (once per
 * name); its schema is registered by register_output_schemas(). Returns 0,
 * or -1 with errstr. */
static int add_extra_topic(dmp_daemon_t *d, const char *name, const char *schema, char *errstr,
                           size_t errstr_size) {
        if (extra_topic(d, name))
                return 0;
        struct extra_topic *t = &d->extra[d->nextra++];
        t->name = name;
        /* one batch per topic, so that a topic's records keep their order */
        t->batch = !strcmp(name, d->conf->output.topic)
                           ? d->out_batch
                           : dmp_outbatch_new(d->producer, name, errstr, errstr_size);
        if (!t->batch)
                return -1;
        t->schema = schema;
        t->schema_id = -1;
        return 0;
}

/* Whether the consumer has read a partition to its end (the cached high
 * watermark; unknown before the first fetch: not caught up). */
static int sink_caught_up(void *opaque, int32_t partition, int64_t next_offset) {
        dmp_daemon_t *d = opaque;
        int64_t lo, hi;
        if (rd_kafka_get_watermark_offsets(d->consumer, d->conf->input.topic, partition, &lo,
                                           &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
            hi < 0) /* not fetched yet: unknown */
                return 0;
        return next_offset >= hi || (next_offset < 0 && lo == hi);
}

/* Each state change of a commit, to the changelog (in the open
 * transaction). */
static void sink_changelog(void *opaque, int32_t partition, int family, const void *key,
                           size_t key_len, const void *val, size_t val_len) {
        dmp_daemon_t *d = opaque;
        if (d->changelog) /* (set up once the cluster answers: dmp_daemon_run) */
                dmp_changelog_log(d->changelog, partition, family, key, key_len, val, val_len);
}

/* ---- the HTTP endpoint ---- */

/* librdkafka statistics (statistics.interval.ms): the end of each partition
 * of the input topic (its last stable offset, else its high watermark). Not
 * librdkafka's consumer_lag: that counts from the consumer's own committed
 * offset, which it does not learn when the offsets are committed in a
 * transaction (always, with the changelog). Served on the processing
 * thread. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque) {
        dmp_daemon_t *d = opaque;
        (void)rk;
        json_t *root = json_loadb(json, json_len, 0, NULL);
        json_t *parts = json_object_get(
                json_object_get(json_object_get(root, "topics"), d->conf->input.topic),
                "partitions");
        const char *k;
        json_t *v;
        json_object_foreach(parts, k, v) {
                int p = atoi(k);
                json_t *end = json_object_get(v, "ls_offset");
                if (!json_is_integer(end) || json_integer_value(end) < 0)
                        end = json_object_get(v, "hi_offset");
                if (p >= 0 && p < DMP_MAX_LAG_PARTITIONS && json_is_integer(end))
                        d->log_end[p] = json_integer_value(end);
        }
        json_decref(root);
        return 0; /* librdkafka frees json */
}

static int admin_query(void *opaque, const char *path, int last, dmp_buf_t *out) {
        dmp_daemon_t *d = opaque;
        return dmp_query_answer(d->engine, path, last, out);
}

/* A state query waits: end the loop's wait for input (HTTP thread). */
static void admin_wake(void *opaque) {
        dmp_daemon_t *d = opaque;
        dmp_fetchq_wake(d->fetchq);
}

/* What /readyz says: partitions held, none being restored, no failure. */
static int is_ready(const dmp_daemon_t *d) {
        return d->assigned > 0 && !d->failed &&
               !(d->changelog && dmp_changelog_restoring(d->changelog));
}

/* /metrics and the live page's documents, from the same figures. */
static void publish_metrics(dmp_daemon_t *d) {
        dmp_admin_stats_t as;
        dmp_admin_stats(d->admin, &as);
        dmp_metrics_input_t in = {
                .input_topic = d->conf->input.topic, .output_topic = d->conf->output.topic,
                .dlq = d->dlq, .log_end = d->log_end, .nlog_end = DMP_MAX_LAG_PARTITIONS,
                .assigned = d->assigned, .commits = d->commit_count,
                .commit_seconds = d->commit_seconds, .commit_max_seconds = d->commit_max_seconds,
                .fetch_wakeups = dmp_fetchwake_rounds(d->fetchwake), .now_ms = dmp_now_ms(),
                .rebalances = d->rebalances, .rebalance_ms = d->rebalance_ms,
                .ready = is_ready(d), .queries_answered = as.queries,
                .queries_rejected = as.rejected, .queries_expired = as.expired,
                .changelog = d->changelog, .txn = d->txn,
                .offset_mismatches = d->offset_mismatches, .records_lost = d->records_lost};
        dmp_buf_t b = {0}, status = {0}, results = {0};
        dmp_metrics_format(&b, d->engine, &in);
        dmp_admin_publish(d->admin, DMP_ADMIN_METRICS, b.p ? b.p : "", b.len);
        dmp_live_format(d->live, &in, &status, &results);
        dmp_admin_publish(d->admin, DMP_ADMIN_STATUS, status.p, status.len);
        dmp_admin_publish(d->admin, DMP_ADMIN_RESULTS, results.p, results.len);
        dmp_buf_free(&b);
        dmp_buf_free(&status);
        dmp_buf_free(&results);
}

/* ---- commits ---- */

typedef struct offsets_ctx {
        rd_kafka_topic_partition_list_t *list;
        const char *topic;
} offsets_ctx_t;

static void add_offset(void *opaque, int32_t partition, int64_t next_offset) {
        offsets_ctx_t *oc = opaque;
        if (next_offset >= 0)
                rd_kafka_topic_partition_list_add(oc->list, oc->topic, partition)->offset =
                        next_offset;
}

/* Informational group offsets, for lag tooling: those of a state commit
 * that has landed (d->unlanded_offsets, after a commit or sync waited for
 * it), so they never run ahead of the state. */
static void commit_landed_offsets(dmp_daemon_t *d) {
        rd_kafka_topic_partition_list_t *l = d->unlanded_offsets;
        d->unlanded_offsets = NULL;
        if (l && l->cnt)
                rd_kafka_commit(d->consumer, l, 1 /* async */);
        if (l)
                rd_kafka_topic_partition_list_destroy(l);
}

static void rewind_all(dmp_daemon_t *d);

/* A transaction that did not commit (r: DMP_TXN_ABORTED or DMP_TXN_FATAL,
 * why: errstr): rewinds every partition, or stops. Returns -1. */
static int txn_aborted(dmp_daemon_t *d, dmp_txn_result_t r, const char *why) {
        if (r == DMP_TXN_FATAL) {
                fail(d, "transactions cannot go on: %s", why);
                return -1;
        }
        if (r == DMP_TXN_ABORTED && ++d->aborts_in_row > MAX_ABORTS_IN_ROW) {
                fail(d, "%d transactions aborted in a row, the last because %s",
                     d->aborts_in_row, why);
                return -1;
        }
        dmp_warn("transaction aborted (%s): every partition goes back to its last commit", why);
        rewind_all(d);
        return -1;
}

/* With the changelog: the state batch is prepared (its changes going to
 * the changelog in the open transaction), the transaction is committed
 * with the input offsets, and only then is the batch handed to the store
 * (docs/STATE.md "Changelog and transactions"). An aborted transaction
 * rewinds every partition to its committed state. Returns 0, or -1. */
static int commit_transaction(dmp_daemon_t *d) {
        char errstr[512];
        if (d->doomed[0]) /* (nothing more goes into it) */
                return txn_aborted(d, dmp_txn_abort(d->txn, d->doomed, errstr, sizeof(errstr)),
                                   errstr);
        if (dmp_engine_commit_prepare(d->engine, errstr, sizeof(errstr))) {
                fail(d, "state commit failed: %s", errstr);
                return -1;
        }
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
        offsets_ctx_t oc = {l, d->conf->input.topic};
        dmp_engine_foreach_partition(d->engine, add_offset, &oc);
        for (int i = 0; i < l->cnt; i++) { /* replaying from there reproduces this commit */
                int64_t cp = dmp_changelog_checkpoint(d->changelog, l->elems[i].partition);
                if (cp >= 0)
                        dmp_engine_commit_checkpoint(d->engine, l->elems[i].partition, cp);
        }
        dmp_txn_result_t r;
        if (dmp_changelog_error(d->changelog, errstr, sizeof(errstr)) ||
            (d->eos && d->delivery_failures &&
             snprintf(errstr, sizeof(errstr), "%" PRIu64 " outputs could not be published",
                      d->delivery_failures)))
                r = dmp_txn_abort(d->txn, errstr, errstr, sizeof(errstr));
        else
                r = dmp_txn_commit(d->txn, l, d->consumer, TXN_TIMEOUT_MS, errstr,
                                   sizeof(errstr));
        rd_kafka_topic_partition_list_destroy(l);
        if (r != DMP_TXN_COMMITTED)
                return txn_aborted(d, r, errstr);
        d->aborts_in_row = 0;
        if (dmp_engine_commit_write(d->engine, errstr, sizeof(errstr))) {
                fail(d, "state commit failed: %s", errstr);
                return -1;
        }
        return 0;
}

/* The commit protocol (the top of this file, docs/STATE.md): publish
 * (flush the producer), then hand the state batch (entries, offsets, stream
 * times) to the store's writer thread -- with a changelog, after the
 * transaction that holds the changes and the offsets has committed. The
 * processing thread goes on while the batch is written; the next commit
 * waits for it first, and settle() waits for it at revocation and
 * shutdown. */
static int commit(dmp_daemon_t *d) {
        if (d->failed)
                return -1;
        int64_t t0 = dmp_mono_ms();
        dmp_engine_emit_updates(d->engine);
        dmp_engine_emit_groups(d->engine);
        if (flush_outputs(d) && !d->eos) /* (exactly_once: the transaction aborts) */
                return -1;
        int64_t t_flushed = t0;
        if (!d->eos) { /* (exactly_once: the transaction's commit flushes) */
                rd_kafka_resp_err_t err = rd_kafka_flush(d->producer, FLUSH_TIMEOUT_MS);
                t_flushed = dmp_mono_ms();
                if (err) {
                        fail(d, "results not acknowledged within %d ms: %s; not committing",
                             FLUSH_TIMEOUT_MS, rd_kafka_err2str(err));
                        return -1;
                }
                if (d->delivery_failures) {
                        fail(d, "%" PRIu64 " results could not be published; not committing",
                             d->delivery_failures);
                        return -1;
                }
        }
        char errstr[512];
        if (d->changelog) {
                if (commit_transaction(d))
                        return -1;
        } else {
                if (dmp_engine_commit(d->engine, errstr, sizeof(errstr))) {
                        fail(d, "state commit failed: %s", errstr);
                        return -1;
                }
                commit_landed_offsets(d); /* the previous commit's: it has landed */
                rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
                offsets_ctx_t oc = {l, d->conf->input.topic};
                dmp_engine_foreach_partition(d->engine, add_offset, &oc);
                d->unlanded_offsets = l;
        }
        double took = (double)(dmp_mono_ms() - t0) / 1000.0;
        d->commit_count++;
        d->commit_seconds += took;
        if (took > d->commit_max_seconds)
                d->commit_max_seconds = took;
        dmp_debug("commit took %.3f s (flush %.3f s)", took, (double)(t_flushed - t0) / 1000.0);
        d->cron[CRON_COMMIT].next_ms = dmp_mono_ms() + d->conf->state.commit_interval_ms;
        return 0;
}

/* Waits until the state of every commit is written (revocation, shutdown). */
static int settle(dmp_daemon_t *d) {
        if (d->failed)
                return -1;
        char errstr[512];
        if (dmp_engine_sync(d->engine, errstr, sizeof(errstr))) {
                fail(d, "state commit failed: %s", errstr);
                return -1;
        }
        commit_landed_offsets(d);
        return 0;
}

/* ---- group membership ---- */

/* Replaces the logical offsets BEGINNING/END in parts (partitions without
 * stored state) by absolute ones, asked of the partition leaders in one
 * ListOffsets round (timestamps -2/-1 mean earliest/latest there).
 * Why: librdkafka 2.0 resolves a logical offset at assign time only if it
 * already knows the partition's leader; right after joining it often does
 * not, and then retries on a fixed 500 ms timer ("no current leader for
 * partition: (re)starting offset query timer"), which was most of the time
 * to the first result. On any failure the logical offsets stay, and
 * librdkafka resolves them as before. Runs on the poll thread, inside the
 * rebalance callback; blocks for at most RESET_QUERY_TIMEOUT_MS. */
#define RESET_QUERY_TIMEOUT_MS 5000
static void resolve_reset_offsets(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
                                  int64_t reset) {
        rd_kafka_topic_partition_list_t *q = rd_kafka_topic_partition_list_new(parts->cnt);
        for (int i = 0; i < parts->cnt; i++)
                if (parts->elems[i].offset == reset)
                        rd_kafka_topic_partition_list_add(q, parts->elems[i].topic,
                                                          parts->elems[i].partition)
                            ->offset = reset; /* -2 earliest, -1 latest */
        if (q->cnt) {
                rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, q, RESET_QUERY_TIMEOUT_MS);
                if (err)
                        dmp_warn("cannot resolve the %s offsets of %d new partition(s) (%s); "
                                 "librdkafka will", reset == RD_KAFKA_OFFSET_END ? "latest" : "earliest",
                                 q->cnt, rd_kafka_err2str(err));
                for (int i = 0; !err && i < q->cnt; i++) {
                        rd_kafka_topic_partition_t *r = &q->elems[i];
                        rd_kafka_topic_partition_t *p =
                            rd_kafka_topic_partition_list_find(parts, r->topic, r->partition);
                        if (p && !r->err && r->offset >= 0) {
                                dmp_debug("partition %d: no state, starting at offset %" PRId64,
                                          (int)r->partition, r->offset);
                                p->offset = r->offset;
                        }
                }
        }
        rd_kafka_topic_partition_list_destroy(q);
}

/* The offset a partition resumes at, from its stored next offset (-1:
 * none, it starts at reset), checked against its log (resume.h): beyond
 * the log end it stops the daemon (exit 2) or, with [state]
 * on.offset.mismatch = reset, discards the partition's state; below the log
 * start it resumes there and counts what was lost. Called where the stored
 * offset is known: on assignment. */
#define RESUME_QUERY_TIMEOUT_MS 10000
static int64_t resume_offset(dmp_daemon_t *d, int32_t partition, int64_t stored, int64_t reset) {
        const char *topic = d->conf->input.topic;
        int64_t start = -1, end = -1;
        char e[512];
        if (stored < 0)
                return reset;
        switch (dmp_resume_check(d->consumer, topic, partition, stored, &start, &end,
                                 RESUME_QUERY_TIMEOUT_MS, e, sizeof(e))) {
        case DMP_RESUME_OK:
                return stored;
        case DMP_RESUME_UNKNOWN:
                dmp_warn("partition %d: cannot check its stored offset %" PRId64 " against the "
                         "log (%s); resuming there unchecked", (int)partition, stored, e);
                return stored;
        case DMP_RESUME_BELOW_START:
                d->records_lost += (uint64_t)(start - stored);
                dmp_warn("partition %d of %s: the state's next offset %" PRId64 " is below the "
                         "log start offset %" PRId64 ": %" PRId64 " records were deleted "
                         "(retention) before they were read; resuming at %" PRId64,
                         (int)partition, topic, stored, start, start - stored, start);
                return start;
        case DMP_RESUME_BEYOND_END:
                break;
        }
        d->offset_mismatches++;
        if (d->conf->state.on_offset_mismatch == DMP_MISMATCH_RESET) {
                dmp_warn("partition %d of %s: the state's next offset %" PRId64 " is beyond the "
                         "log end offset %" PRId64 ": discarding the partition's state and "
                         "starting it over ([state] on.offset.mismatch = reset)",
                         (int)partition, topic, stored, end);
                if (dmp_engine_partition_discard(d->engine, partition, e, sizeof(e)))
                        fail(d, "partition %d: cannot discard its state: %s", (int)partition, e);
                return reset;
        }
        d->failed_usage = 1;
        fail(d, "partition %d of %s: the state's next offset %" PRId64 " is beyond the log end "
             "offset %" PRId64 ": the topic was deleted and re-created, [state] dir belongs to "
             "another cluster, or the log was truncated; resuming would skip the records below "
             "%" PRId64 " as already applied. Choices: set [state] on.offset.mismatch = reset "
             "to discard this partition's state and start it over, or point [state] dir at an "
             "empty directory, or restore the topic the state was built from",
             (int)partition, topic, stored, end, stored);
        return stored;
}

/* /readyz: partitions held, none being restored, no failure. */
static void update_ready(dmp_daemon_t *d) {
        if (d->admin)
                dmp_admin_set_ready(d->admin, is_ready(d));
        atomic_store(&d->c_ready, (uint64_t)is_ready(d));
        if (d->changelog) {
                atomic_store(&d->c_restoring, (uint64_t)dmp_changelog_restoring(d->changelog));
                atomic_store(&d->c_restored_records,
                             dmp_changelog_stats(d->changelog)->restored_records);
        }
}

static void set_paused(dmp_daemon_t *d, rd_kafka_topic_partition_list_t *parts, int paused) {
        rd_kafka_resp_err_t err = paused ? rd_kafka_pause_partitions(d->consumer, parts)
                                         : rd_kafka_resume_partitions(d->consumer, parts);
        if (err)
                dmp_warn("cannot %s %d partition(s): %s", paused ? "pause" : "resume", parts->cnt,
                         rd_kafka_err2str(err));
}

/* Starts restoring the partitions of parts from the changelog (their input
 * paused until then). */
static void restore_partitions(dmp_daemon_t *d, rd_kafka_topic_partition_list_t *parts) {
        char errstr[512];
        set_paused(d, parts, 1);
        if (dmp_changelog_restore(d->changelog, d->engine, parts, errstr, sizeof(errstr)))
                fail(d, "cannot restore state: %s", errstr);
}

/* A partition's restore is done (dmp_changelog_serve): it is opened, and
 * its input goes on from the offset its state reflects. */
static void partition_restored(void *opaque, int32_t partition) {
        dmp_daemon_t *d = opaque;
        char errstr[512];
        int64_t next, reset = d->conf->input.auto_offset_reset == DMP_RESET_LATEST
                                      ? RD_KAFKA_OFFSET_END
                                      : RD_KAFKA_OFFSET_BEGINNING;
        if (dmp_engine_partition_open(d->engine, partition, &next, errstr, sizeof(errstr))) {
                fail(d, "partition %d: cannot open its restored state: %s", (int)partition,
                     errstr);
                return;
        }
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, d->conf->input.topic, partition)->offset =
                resume_offset(d, partition, next, reset);
        if (d->failed) {
                rd_kafka_topic_partition_list_destroy(l);
                return;
        }
        resolve_reset_offsets(d->consumer, l, reset);
        if (dmp_fetchq_seek(d->consumer, d->conf->input.topic, partition, l->elems[0].offset,
                            errstr, sizeof(errstr)))
                fail(d, "partition %d: %s", (int)partition, errstr);
        else
                set_paused(d, l, 0);
        rd_kafka_topic_partition_list_destroy(l);
        update_ready(d);
}

/* After an aborted transaction: the prepared state batch is dropped and
 * every open partition is closed and restored from its last commit (local
 * store, then the changelog's committed records), its input sought back to
 * the offset that commit recorded. */
static void rewind_all(dmp_daemon_t *d) {
        char errstr[512];
        dmp_engine_commit_abandon(d->engine);
        if (dmp_engine_sync(d->engine, errstr, sizeof(errstr))) {
                fail(d, "state commit failed: %s", errstr);
                return;
        }
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
        offsets_ctx_t oc = {l, d->conf->input.topic};
        dmp_engine_foreach_partition(d->engine, add_offset, &oc);
        for (int i = 0; i < l->cnt; i++)
                dmp_engine_partition_close(d->engine, l->elems[i].partition);
        restore_partitions(d, l);
        rd_kafka_topic_partition_list_destroy(l);
        d->delivery_failures = 0; /* (exactly_once: those outputs were aborted) */
        d->doomed[0] = '\0';
        update_ready(d);
}

/* Takes the partitions of parts (the rebalance callback's). */
static void assign(dmp_daemon_t *d, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
                   int cooperative) {
        rd_kafka_error_t *e = NULL;
        if (cooperative)
                e = rd_kafka_incremental_assign(rk, parts);
        else
                rd_kafka_assign(rk, parts);
        if (e) {
                fail(d, "assign failed: %s", rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
        }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
        dmp_daemon_t *d = opaque;
        int cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
        char errstr[512];

        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                d->rebalances++;
                d->rebalance_ms = dmp_now_ms();
        }
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && d->changelog) {
                /* Each partition is restored before any of its input is
                 * processed: assigned paused (at the group's offset, which
                 * partition_restored seeks away from if it must). librdkafka
                 * looks that offset up itself and may start there after the
                 * seek: harmless as long as a restored state's offset is the
                 * group's, which the restore's wait for open transactions
                 * keeps (changelog.c behind_open_txn, docs/STATE.md). */
                for (int i = 0; i < parts->cnt; i++)
                        parts->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
                dmp_fetchq_forward(d->fetchq, parts); /* before the fetchers start */
                assign(d, rk, parts, cooperative);
                restore_partitions(d, parts);
                d->assigned += parts->cnt;
                update_ready(d);
                dmp_info("assigned %d partition(s) of %s", parts->cnt, d->conf->input.topic);
                return;
        }
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                int64_t reset = d->conf->input.auto_offset_reset == DMP_RESET_LATEST
                                        ? RD_KAFKA_OFFSET_END
                                        : RD_KAFKA_OFFSET_BEGINNING;
                for (int i = 0; i < parts->cnt; i++) {
                        rd_kafka_topic_partition_t *p = &parts->elems[i];
                        int64_t next;
                        if (dmp_engine_partition_open(d->engine, p->partition, &next, errstr,
                                                      sizeof(errstr))) {
                                fail(d, "partition %d: cannot restore state: %s",
                                     (int)p->partition, errstr);
                                next = RD_KAFKA_OFFSET_END;
                        }
                        p->offset = resume_offset(d, p->partition, next, reset);
                }
                resolve_reset_offsets(rk, parts, reset);
                dmp_fetchq_forward(d->fetchq, parts); /* before the fetchers start */
                d->assigned += parts->cnt;
                update_ready(d);
                dmp_info("assigned %d partition(s) of %s", parts->cnt, d->conf->input.topic);
                assign(d, rk, parts, cooperative);
                return;
        }

        if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
                /* Commit everything (cheap if clean) before giving partitions away. */
                commit(d);
                settle(d);
                for (int i = 0; i < parts->cnt; i++) {
                        if (d->changelog)
                                dmp_changelog_forget(d->changelog, parts->elems[i].partition);
                        dmp_engine_partition_close(d->engine, parts->elems[i].partition);
                        dmp_pauses_forget(d->pauses, parts->elems[i].partition);
                }
                d->assigned -= parts->cnt;
                d->rebalances++;
                d->rebalance_ms = dmp_now_ms();
                if (d->assigned < 0 || !cooperative)
                        d->assigned = 0;
                update_ready(d);
                dmp_info("revoked %d partition(s)", parts->cnt);
        } else {
                dmp_error("rebalance error: %s", rd_kafka_err2str(err));
        }
        if (cooperative) {
                rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
                if (e)
                        rd_kafka_error_destroy(e);
        } else {
                rd_kafka_assign(rk, NULL);
        }
}

/* ---- construction ---- */

/* This instance's id, made once and kept in the state directory: the
 * transactional.id of its producer (a restart fences its previous self and
 * aborts what it left open; docs/STATE.md). */
static int instance_id(const char *dir, char *out, size_t size, char *errstr,
                       size_t errstr_size) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/instance.id", dir);
        FILE *fp = fopen(path, "r");
        if (fp) {
                int ok = fgets(out, (int)size, fp) != NULL;
                fclose(fp);
                out[strcspn(out, "\r\n")] = '\0';
                if (ok && *out)
                        return 0;
        }
        unsigned char rnd[8] = {0};
        FILE *ur = fopen("/dev/urandom", "r");
        size_t got = ur ? fread(rnd, 1, sizeof(rnd), ur) : 0;
        if (ur)
                fclose(ur);
        if (got != sizeof(rnd)) { /* no /dev/urandom: the clock and the pid */
                uint64_t x = dmp_mix64((uint64_t)dmp_now_ms() ^ ((uint64_t)getpid() << 32));
                memcpy(rnd, &x, sizeof(x));
        }
        snprintf(out, size, "%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3],
                 rnd[4], rnd[5], rnd[6], rnd[7]);
        if (!(fp = fopen(path, "w")) || fprintf(fp, "%s\n", out) < 0 || fclose(fp)) {
                snprintf(errstr, errstr_size, "cannot write %s: %s", path, strerror(errno));
                return -1;
        }
        return 0;
}

/* A producer (its defaults: kafkaconf.c), transactional with
 * transactional_id (NULL: not): it then reports every delivery, for the
 * changelog's offsets make the checkpoints ([kafka] settings win). NULL
 * after adding the error to conf (*config_error set). */
static rd_kafka_t *new_producer(dmp_daemon_t *d, const char *transactional_id,
                                int *config_error) {
        dmp_conf_t *conf = d->conf;
        rd_kafka_conf_t *pc = dmp_kafkaconf_new(conf, DMP_KAFKA_PRODUCER);
        if (!pc) {
                *config_error = 1;
                return NULL;
        }
        rd_kafka_conf_set_opaque(pc, d);
        rd_kafka_conf_set_dr_msg_cb(pc, delivery_cb);
        if (transactional_id) {
                if (!dmp_conf_kafka_get(conf, "delivery.report.only.error"))
                        rd_kafka_conf_set(pc, "delivery.report.only.error", "false", NULL, 0);
                if (!dmp_conf_kafka_get(conf, "transactional.id"))
                        rd_kafka_conf_set(pc, "transactional.id", transactional_id, NULL, 0);
                /* An instance that dies mid-transaction holds back
                 * read_committed consumers and restores of its partitions
                 * until its restart or this; librdkafka also caps
                 * message.timeout.ms at it, and records timed out by a
                 * broker away that long abort the transaction (with 10 s,
                 * 2.0.2's abort then failed, INVALID_TXN_STATE: exit 1). So
                 * the Java producer's default, 60 s (docs/STATE.md). */
                if (!dmp_conf_kafka_get(conf, "transaction.timeout.ms"))
                        rd_kafka_conf_set(pc, "transaction.timeout.ms", "60000", NULL, 0);
        }
        rd_kafka_t *rk = dmp_kafkaconf_client(conf, DMP_KAFKA_PRODUCER, pc);
        if (!rk)
                *config_error = 1;
        return rk;
}

/* The changelog: its topic created or checked, the transactions of its
 * producer begun. */
static int setup_changelog(dmp_daemon_t *d, int *config_error, char *errstr,
                           size_t errstr_size) {
        if (!(d->changelog = dmp_changelog_new(d->conf, d->txn_producer, errstr, errstr_size)))
                return -1;
        if (dmp_changelog_prepare(d->changelog, d->input_partitions,
                                  dmp_engine_fingerprint(d->engine), config_error, errstr,
                                  errstr_size))
                return -1;
        if (!(d->txn = dmp_txn_new(d->txn_producer, TXN_TIMEOUT_MS, errstr, errstr_size)))
                return -1;
        dmp_info("state changes go to %s in transactions (%s)", dmp_changelog_topic(d->changelog),
                 d->eos ? "exactly_once: with every output and the input offsets"
                        : "at_least_once: with the input offsets");
        return 0;
}

dmp_daemon_t *dmp_daemon_new(dmp_conf_t *conf, int *config_error, char *errstr,
                             size_t errstr_size) {
        dmp_daemon_t *d = dmp_calloc(1, sizeof(*d));
        d->conf = conf;
        *config_error = 0;
        dmp_buf_t dump = {0}; /* the effective configuration, secrets redacted */
        dmp_conf_dump(conf, &dump);
        for (char *line = dump.p, *nl; line && *line; line = nl + 1) {
                nl = strchr(line, '\n');
                *nl = '\0';
                dmp_info("config %s", line);
        }
        dmp_buf_free(&dump);
        dmp_engine_sink_t sink = {.result = sink_result,
                                  .group = sink_group,
                                  .pattern = sink_pattern,
                                  .late = sink_late,
                                  .caught_up = sink_caught_up,
                                  .changelog = conf->state.changelog_enable ? sink_changelog
                                                                            : NULL,
                                  .opaque = d};
        d->engine = dmp_engine_new(conf, &sink, config_error, errstr, errstr_size);
        if (!d->engine)
                goto fail;

        /* Producers: every output, and with the changelog a transactional
         * one for it; under exactly_once they are one (the transaction
         * holds every output). */
        char txn_id[512] = "";
        if (conf->state.changelog_enable) {
                char inst[64];
                if (instance_id(conf->state.dir, inst, sizeof(inst), errstr, errstr_size))
                        goto fail;
                snprintf(txn_id, sizeof(txn_id), "%s-%s", conf->input.group_id, inst);
        }
        d->eos = conf->state.guarantee == DMP_EXACTLY_ONCE;
        if (!(d->producer = new_producer(d, d->eos ? txn_id : NULL, config_error)))
                goto fail;
        if (d->eos)
                d->txn_producer = d->producer;
        else if (*txn_id && !(d->txn_producer = new_producer(d, txn_id, config_error)))
                goto fail;
        if (!(d->out_batch = dmp_outbatch_new(d->producer, conf->output.topic, errstr,
                                              (size_t)errstr_size)))
                goto fail;
        if (*conf->output.late_topic)
                d->late_topic = conf->output.late_topic;
        if (!(d->dlq = dmp_dlq_new(d->producer, conf->output.dlq_topic, errstr, errstr_size)))
                goto fail;
        if (conf->input.format == DMP_FORMAT_CONFLUENT) {
                dmp_registry_opts_t ro;
                char user[256];
                dmp_registry_opts_from_conf(&ro, conf, user, sizeof(user));
                if (!(d->registry = dmp_registry_new(&ro, errstr, errstr_size))) {
                        dmp_conf_error(conf, dmp_conf_line(conf, "input", "registry.url"),
                                       "[input] registry.url: %s", errstr);
                        *config_error = 1;
                        goto fail;
                }
                dmp_engine_set_schema_provider(d->engine, dmp_registry_provider, d->registry);
        }
        d->out_schema_id = -1; /* registered by register_output_schemas() */
        for (int i = 0; i < conf->group_cnt; i++)
                if (add_extra_topic(d, conf->groups[i].topic, dmp_schema_group_result, errstr,
                                    errstr_size))
                        goto fail;
        for (int i = 0; i < conf->pattern_cnt; i++)
                if (add_extra_topic(d, conf->patterns[i].topic, dmp_schema_pattern, errstr,
                                    errstr_size))
                        goto fail;

        /* Consumer: offsets are ours, stored with the state (kafkaconf.c). */
        rd_kafka_conf_t *cc = dmp_kafkaconf_new(conf, DMP_KAFKA_CONSUMER);
        if (!cc) {
                *config_error = 1;
                goto fail;
        }
        rd_kafka_conf_set_opaque(cc, d);
        rd_kafka_conf_set_rebalance_cb(cc, rebalance_cb);
        rd_kafka_conf_set_error_cb(cc, consumer_error_cb);
        for (int i = 0; i < DMP_MAX_LAG_PARTITIONS; i++)
                d->log_end[i] = -1;
        if (conf->http.port > 0) /* consumer lag for /metrics */
                rd_kafka_conf_set_stats_cb(cc, stats_cb);
        int need_waker = dmp_fetchwake_needed();
        if (!(d->consumer = dmp_kafkaconf_client(conf, DMP_KAFKA_CONSUMER, cc))) {
                *config_error = 1;
                goto fail;
        }
        rd_kafka_poll_set_consumer(d->consumer);
        if (!(d->fetchq = dmp_fetchq_new(d->consumer, errstr, errstr_size)))
                goto fail;
        if (need_waker) {
                char qmin[32];
                size_t qmin_size = sizeof(qmin);
                if (rd_kafka_conf_get(rd_kafka_conf(d->consumer), "queued.min.messages", qmin,
                                      &qmin_size) != RD_KAFKA_CONF_OK ||
                    !(d->fetchwake = dmp_fetchwake_new(d->consumer, strtoull(qmin, NULL, 10),
                                                       0 /* poked before and after each
                                                          * serve: no drain between */,
                                                       errstr, errstr_size)))
                        goto fail;
        }
        if (conf->http.port > 0) {
                dmp_admin_opts_t ao = {conf->http.address, (int)conf->http.port,
                                       conf->http.auth_user_info, admin_query, admin_wake, d, 0};
                if (!(d->admin = dmp_admin_start(&ao, errstr, errstr_size)))
                        goto fail;
                d->live = dmp_live_new(conf, d->engine);
        }
        d->pauses = dmp_pauses_new(d->consumer);
        return d;
fail:
        dmp_daemon_destroy(d);
        return NULL;
}

void dmp_daemon_destroy(dmp_daemon_t *d) {
        if (!d)
                return;
        dmp_admin_stop(d->admin); /* first: it may be waiting for a query's answer */
        dmp_live_destroy(d->live);
        dmp_fetchwake_destroy(d->fetchwake); /* before the consumer it borrows */
        if (d->fetchq && d->changelog)
                dmp_fetchq_unwatch(d->fetchq, dmp_changelog_restore_queue(d->changelog));
        dmp_fetchq_destroy(d->fetchq);
        if (d->consumer)
                rd_kafka_destroy(d->consumer);
        for (int i = 0; i < d->nextra; i++)
                if (d->extra[i].batch != d->out_batch)
                        dmp_outbatch_destroy(d->extra[i].batch);
        dmp_outbatch_destroy(d->out_batch);
        free(d->outbuf);
        dmp_dlq_destroy(d->dlq);
        dmp_registry_destroy(d->registry);
        dmp_pauses_destroy(d->pauses);
        dmp_txn_destroy(d->txn); /* aborts the open transaction: nothing in it */
        dmp_changelog_destroy(d->changelog);
        if (d->txn_producer && d->txn_producer != d->producer)
                rd_kafka_destroy(d->txn_producer);
        if (d->producer)
                rd_kafka_destroy(d->producer);
        dmp_engine_destroy(d->engine);
        if (d->unlanded_offsets)
                rd_kafka_topic_partition_list_destroy(d->unlanded_offsets);
        free(d);
}

void dmp_daemon_stop(dmp_daemon_t *d) {
        atomic_store(&d->stop, 1);
}

static void count_task(void *opaque, const dmp_task_info_t *ti) {
        (void)ti;
        (*(uint64_t *)opaque)++;
}

static void publish_counters(dmp_daemon_t *d) {
        const dmp_engine_stats_t *s = dmp_engine_stats(d->engine);
        atomic_store(&d->c_events_in, s->events_in);
        atomic_store(&d->c_decode_errors, s->decode_errors);
        atomic_store(&d->c_late_events, s->late_events);
        atomic_store(&d->c_results_out, s->results_out);
        atomic_store(&d->c_commits, s->commits);
        uint64_t open = 0;
        dmp_engine_foreach_task(d->engine, count_task, &open);
        atomic_store(&d->c_partitions, open);
}

void dmp_daemon_counters(const dmp_daemon_t *d, dmp_daemon_counters_t *out) {
        out->events_in = atomic_load(&d->c_events_in);
        out->decode_errors = atomic_load(&d->c_decode_errors);
        out->late_events = atomic_load(&d->c_late_events);
        out->results_out = atomic_load(&d->c_results_out);
        out->commits = atomic_load(&d->c_commits);
        out->partitions = atomic_load(&d->c_partitions);
        out->restoring = atomic_load(&d->c_restoring);
        out->restored_records = atomic_load(&d->c_restored_records);
        out->ready = (int)atomic_load(&d->c_ready);
}

/* ---- output schemas (format = confluent) ---- */

/* Registers schema for topic's records (TopicNameStrategy: subject
 * <topic>-value) unless *id is set already. */
static dmp_reg_status_t register_one(dmp_daemon_t *d, const char *topic, const char *schema,
                                     int32_t *id, char *errstr, size_t errstr_size) {
        if (*id >= 0)
                return DMP_REG_OK;
        char subject[512], e[768];
        snprintf(subject, sizeof(subject), "%s-value", topic);
        dmp_reg_status_t st = dmp_registry_register(d->registry, subject, schema, id, e, sizeof(e));
        if (st == DMP_REG_OK)
                dmp_info("records to %s are framed with schema id %d (subject %s)", topic,
                         (int)*id, subject);
        else
                snprintf(errstr, errstr_size,
                         "cannot register the schema of %.200s as subject %.200s: %.500s", topic,
                         subject, e);
        return st;
}

static dmp_reg_status_t register_all(dmp_daemon_t *d, char *errstr, size_t errstr_size) {
        dmp_reg_status_t st = register_one(d, d->conf->output.topic, dmp_schema_window_result,
                                           &d->out_schema_id, errstr, errstr_size);
        for (int i = 0; i < d->nextra && st == DMP_REG_OK; i++)
                st = register_one(d, d->extra[i].name, d->extra[i].schema, &d->extra[i].schema_id,
                                  errstr, errstr_size);
        return st;
}

/* ---- startup: what must answer before anything is consumed ---- */

/* A dependency the daemon waits for at startup, as a service started
 * before it (compose, Kubernetes) must: tried with backoff (1 s doubling
 * to backoff_max_ms) while it does not answer, one log line per try, not
 * subscribed (so not ready on /readyz, which says why), serving the HTTP
 * endpoint, for at most timeout_ms (0: as long as it takes). An answer
 * that refuses is an error at once. */
typedef struct startup_dep {
        const char *what;         /* "the schema registry" */
        const char *absent;       /* "does not answer" */
        const char *present;      /* "answered" */
        const char *timeout_name; /* "[input] registry.startup.timeout.ms" */
        int64_t timeout_ms;
        int64_t backoff_max_ms;
        /* one try: DMP_REG_OK, DMP_REG_UNAVAILABLE (try again), or refused
         * (any other; e says why) */
        dmp_reg_status_t (*attempt)(dmp_daemon_t *d, char *e, size_t e_size);
} startup_dep_t;

/* Returns 0 when it answered, 1 if stopped while waiting, -1 with errstr. */
static int startup_wait(dmp_daemon_t *d, const startup_dep_t *dep, char *errstr,
                        size_t errstr_size) {
        int64_t t0 = dmp_mono_ms(), timeout = dep->timeout_ms, backoff = 1000;
        char e[1024], why[1200], limit[64] = "as long as it takes";
        if (timeout > 0)
                snprintf(limit, sizeof(limit), "up to %.0f s", (double)timeout / 1000.0);
        for (int attempt = 1;; attempt++) {
                int64_t tried = dmp_mono_ms();
                dmp_reg_status_t st = dep->attempt(d, e, sizeof(e));
                int64_t now = dmp_mono_ms();
                if (st == DMP_REG_OK) {
                        if (attempt > 1)
                                dmp_info("%s %s after %.1f s; starting", dep->what,
                                         dep->present, (double)(now - t0) / 1000.0);
                        if (d->admin)
                                dmp_admin_set_not_ready_why(d->admin, NULL);
                        return 0;
                }
                if (st != DMP_REG_UNAVAILABLE || (timeout > 0 && now - t0 >= timeout)) {
                        if (st == DMP_REG_UNAVAILABLE)
                                snprintf(errstr, errstr_size, "%s did not answer within %.0f s "
                                         "(%s): %s", dep->what, (double)timeout / 1000.0,
                                         dep->timeout_name, e);
                        else
                                snprintf(errstr, errstr_size, "%s", e);
                        dmp_error("%s", errstr);
                        return -1;
                }
                int64_t until = tried + backoff; /* (the try's own time included) */
                if (timeout > 0 && until > t0 + timeout)
                        until = t0 + timeout;
                if (attempt == 1)
                        dmp_warn("%s %s (%s); trying again for %s (%s), consuming "
                                 "nothing until it does", dep->what, dep->absent, e, limit,
                                 dep->timeout_name);
                else /* one line per backoff step */
                        dmp_warn("%s still %s after %.0f s (%s); next try in %.0f s",
                                 dep->what, dep->absent, (double)(now - t0) / 1000.0, e,
                                 (double)(until > now ? until - now : 0) / 1000.0);
                if (d->admin) {
                        snprintf(why, sizeof(why), "waiting for %s (for %.0f s): %s", dep->what,
                                 (double)(now - t0) / 1000.0, e);
                        dmp_admin_set_not_ready_why(d->admin, why);
                        publish_metrics(d);
                }
                while (dmp_mono_ms() < until) {
                        if (atomic_load(&d->stop)) {
                                dmp_info("stopped while waiting for %s; nothing was consumed",
                                         dep->what);
                                return 1;
                        }
                        if (d->admin)
                                dmp_admin_serve(d->admin);
                        dmp_log_repeats_tick(dmp_mono_ms());
                        nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
                }
                backoff = backoff * 2 > dep->backoff_max_ms ? dep->backoff_max_ms : backoff * 2;
        }
}

/* The Kafka cluster answers a metadata request. librdkafka keeps trying to
 * connect meanwhile; its last error (consumer_error_cb: "Connect to ...
 * failed: Connection refused") is the reason given. */
#define BROKER_PROBE_MS 1000 /* (librdkafka goes on connecting after it) */
static dmp_reg_status_t broker_attempt(dmp_daemon_t *d, char *e, size_t e_size) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(d->consumer, 0, NULL, &md, BROKER_PROBE_MS);
        if (md)
                rd_kafka_metadata_destroy(md);
        /* serves the consumer queue: its errors reach consumer_error_cb */
        rd_kafka_message_t *batch[64];
        ssize_t n = rd_kafka_consume_batch_queue(dmp_fetchq_events(d->fetchq), 0, batch, 64);
        for (ssize_t i = 0; i < n; i++)
                rd_kafka_message_destroy(batch[i]); /* (not subscribed: errors only) */
        snprintf(e, e_size, "%s", d->kafka_error[0] ? d->kafka_error : rd_kafka_err2str(err));
        if (!err)
                d->kafka_error[0] = '\0';
        return err ? DMP_REG_UNAVAILABLE : DMP_REG_OK;
}

/* The input topic exists (its partition count: the changelog's). */
static dmp_reg_status_t input_attempt(dmp_daemon_t *d, char *e, size_t e_size) {
        int32_t n = dmp_changelog_partitions_of(d->consumer, d->conf->input.topic,
                                                BROKER_PROBE_MS, e, e_size);
        if (!n)
                snprintf(e, e_size, "the changelog takes its partition count; create it");
        d->input_partitions = n; /* (setup_changelog's) */
        return n > 0 ? DMP_REG_OK : DMP_REG_UNAVAILABLE;
}

/* Before subscribing: the cluster, the input topic (with the changelog),
 * then (format = confluent) the output schemas registered. Returns 0, 1 if
 * stopped meanwhile, -1 with errstr. */
static int wait_for_dependencies(dmp_daemon_t *d, char *errstr, size_t errstr_size) {
        char what[600];
        const char *bs = dmp_conf_kafka_get(d->conf, "bootstrap.servers");
        snprintf(what, sizeof(what), "the Kafka cluster at %.500s", bs ? bs : "?");
        const startup_dep_t broker = {what, "does not answer", "answered",
                                      "[input] startup.timeout.ms",
                                      d->conf->input.startup_timeout_ms, 30000, broker_attempt};
        /* (10 s at most between tries: registration is cheap) */
        const startup_dep_t registry = {"the schema registry", "does not answer", "answered",
                                        "[input] registry.startup.timeout.ms",
                                        d->conf->input.registry_startup_timeout_ms, 10000,
                                        register_all};
        char topic[600];
        snprintf(topic, sizeof(topic), "the input topic %.500s", d->conf->input.topic);
        const startup_dep_t input = {topic, "does not exist", "exists",
                                     "[input] startup.timeout.ms",
                                     d->conf->input.startup_timeout_ms, 10000, input_attempt};
        int r = startup_wait(d, &broker, errstr, errstr_size);
        if (!r && d->txn_producer) /* (the changelog takes its partition count) */
                r = startup_wait(d, &input, errstr, errstr_size);
        if (!r && d->registry)
                r = startup_wait(d, &registry, errstr, errstr_size);
        return r;
}

/* ---- the loop ---- */

static void process_message(dmp_daemon_t *d, rd_kafka_message_t *m) {
        if (m->err) {
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                        return;
                if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                        char e[512];
                        rd_kafka_fatal_error(d->consumer, e, sizeof(e));
                        fail(d, "fatal consumer error: %s", e);
                        return;
                }
                char cls[64];
                snprintf(cls, sizeof(cls), "consumer %d", (int)m->err);
                dmp_log_repeated(DMP_LOG_WARN, cls, "consumer: %s", rd_kafka_message_errstr(m));
                return;
        }
        if (!dmp_engine_wants(d->engine, m->partition, m->offset) ||
            dmp_pauses_is_paused(d->pauses, m->partition)) {
                d->skipped++; /* revoked meanwhile, read again after a seek, or
                               * behind a record that waits (read again later) */
                return;
        }
        rd_kafka_timestamp_type_t tstype;
        int64_t ts = rd_kafka_message_timestamp(m, &tstype);
        char errstr[512];
        d->serving = m; /* for sink_late */
        int rc = dmp_engine_process(d->engine, m->partition, m->offset, m->key, m->key_len, ts,
                                    m->payload, m->len, errstr, sizeof(errstr));
        d->serving = NULL;
        if (rc) {
                dmp_decode_err_t cls = dmp_engine_last_error(d->engine);
                dmp_copy_rec_t r = {rd_kafka_topic_name(m->rkt), m->partition, m->offset,
                                    tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts,
                                    m->key, m->key_len, m->payload, m->len};
                char e2[512];
                if (cls == DMP_DECODE_UNAVAILABLE) { /* wait for the registry */
                        if (dmp_pauses_add(d->pauses, m, d->conf->input.registry_pause_ms,
                                           errstr, e2, sizeof(e2)))
                                fail(d, "%s", e2);
                } else if (cls == DMP_DECODE_OK) /* not the record's fault */
                        dmp_log_repeated(DMP_LOG_WARN, "process", "%s [%d] offset %" PRId64
                                         ": %s", r.topic, (int)r.partition, r.offset, errstr);
                else if (dmp_dlq_send(d->dlq, &r, cls, errstr, e2, sizeof(e2)))
                        output_failed(d, "dead letter: ", e2);
        }
}

/* "state memory: ..." of the engine's stats, for the log. */
static void format_memory(const dmp_engine_stats_t *s, char *buf, size_t size) {
        snprintf(buf, size,
                 "state memory: entries %.1f MiB, block cache %.1f MiB, memtables %.1f MiB "
                 "of %.1f MiB, %" PRIu64 " evicted, %" PRIu64 " reloaded",
                 (double)s->mem_entries / 1048576.0, (double)s->mem_block_cache / 1048576.0,
                 (double)s->mem_memtables / 1048576.0, (double)s->mem_budget / 1048576.0,
                 s->evictions, s->reloads);
}

/* on_message of dmp_fetchq_serve; also for the consumer queue's messages. */
static void serve_message(rd_kafka_message_t *m, void *opaque) {
        dmp_daemon_t *d = opaque;
        if (!d->failed)
                process_message(d, m);
}

/* ---- the periodic tasks (cron_t) ---- */

/* Idle partitions advance their stream time by the clock (engine.h). */
static void cron_idle(dmp_daemon_t *d, int64_t now) {
        (void)now;
        dmp_engine_idle_tick(d->engine, dmp_now_ms(), d->conf->input.idle_timeout_ms);
        flush_outputs(d);
}

/* A defence: re-forwards any assigned partition that lost its forward
 * (src/fetchq.h). */
static void cron_reforward(dmp_daemon_t *d, int64_t now) {
        (void)now;
        dmp_fetchq_reforward(d->fetchq);
}

/* Rebuilds the /metrics text. */
static void cron_metrics(dmp_daemon_t *d, int64_t now) {
        (void)now;
        publish_metrics(d);
}

/* Over the memory budget: commit early (the commit evicts). */
static void cron_budget(dmp_daemon_t *d, int64_t now) {
        if (dmp_engine_over_budget(d->engine))
                d->cron[CRON_COMMIT].next_ms = now;
}

/* The commit; it sets its own next time (it also runs on revocation). */
static void cron_commit(dmp_daemon_t *d, int64_t now) {
        (void)now;
        commit(d);
        publish_counters(d);
}

static void cron_progress(dmp_daemon_t *d, int64_t now) {
        const dmp_engine_stats_t *s = dmp_engine_stats(d->engine);
        int64_t period = d->cron[CRON_PROGRESS].period_ms;
        char mem[256];
        format_memory(s, mem, sizeof(mem));
        (void)now;
        dmp_info("progress: %" PRIu64 " events (%.0f/s), %" PRIu64 " results, %" PRIu64
                 " late, %" PRIu64 " decode errors; %s",
                 s->events_in, (double)(s->events_in - d->progress_events) * 1000.0 / (double)period,
                 s->results_out, s->late_events, s->decode_errors, mem);
        d->progress_events = s->events_in;
}

/* The counts of repeated log lines whose interval has ended (log.h). */
static void cron_log(dmp_daemon_t *d, int64_t now) {
        (void)d;
        dmp_log_repeats_tick(now);
}

/* The table, in the order a round runs them, with each task's period and
 * first run (0: the first round; else one period in). */
static void cron_start(dmp_daemon_t *d, int64_t now) {
        const struct {
                const char *name;
                void (*run)(dmp_daemon_t *, int64_t);
                int64_t period_ms;
                int first_at_once;
        } table[CRON__CNT] = {
                [CRON_IDLE] = {"idle", cron_idle, d->conf->input.idle_timeout_ms > 0 ? 100 : 0, 1},
                [CRON_REFORWARD] = {"reforward", cron_reforward, 1000, 0},
                [CRON_METRICS] = {"metrics", cron_metrics, d->admin ? 500 : 0, 1},
                [CRON_BUDGET] = {"budget", cron_budget, 50, 1},
                [CRON_COMMIT] = {"commit", cron_commit, d->conf->state.commit_interval_ms, 0},
                [CRON_PROGRESS] = {"progress", cron_progress, 10000, 0},
                [CRON_LOG] = {"log", cron_log, 500, 0},
        };
        for (int i = 0; i < CRON__CNT; i++)
                d->cron[i] = (cron_t){table[i].name, table[i].run, table[i].period_ms,
                                      table[i].first_at_once ? now : now + table[i].period_ms};
}

int dmp_daemon_run(dmp_daemon_t *d, char *errstr, size_t errstr_size) {
        int reg = wait_for_dependencies(d, errstr, errstr_size);
        if (reg)
                return reg < 0 ? -1 : 0; /* 1: stopped while waiting */
        if (d->txn_producer) { /* (it needs the cluster) */
                int config_error = 0;
                if (setup_changelog(d, &config_error, errstr, errstr_size))
                        return config_error ? -2 : -1;
                /* restored records end the loop's wait */
                dmp_fetchq_watch(d->fetchq, dmp_changelog_restore_queue(d->changelog));
        }
        rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(topics, d->conf->input.topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t err = rd_kafka_subscribe(d->consumer, topics);
        rd_kafka_topic_partition_list_destroy(topics);
        if (err) {
                snprintf(errstr, errstr_size, "cannot subscribe to %s: %s", d->conf->input.topic,
                         rd_kafka_err2str(err));
                return -1;
        }
        dmp_info("dmpflow %s: consuming %s as group %s, results to %s, state in %s "
                 "(librdkafka %s)", DMPFLOW_VERSION, d->conf->input.topic,
                 d->conf->input.group_id, d->conf->output.topic, d->conf->state.dir,
                 rd_kafka_version_str());

        cron_start(d, dmp_mono_ms());
        rd_kafka_queue_t *cq = dmp_fetchq_events(d->fetchq);
        rd_kafka_message_t *batch[CONSUME_BATCH];
        while (!atomic_load(&d->stop)) {
                /* The messages queued now, in one call (src/fetchq.h), with
                 * the fetch waker poked before and after (what it must see
                 * is the longest the queue was). Then the consumer queue:
                 * the rebalance callback and other events, and the
                 * messages of a partition that is not forwarded (there
                 * should be none). A rebalance can revoke a partition
                 * whose messages are queued: librdkafka drops them (a
                 * version barrier), and dmp_engine_wants() skips any it
                 * still hands over. Serving the consumer queue counts as a
                 * poll for max.poll.interval.ms. When both were empty, the
                 * round ends waiting until either has something (at most
                 * 100 ms). */
                if (d->fetchwake)
                        dmp_fetchwake_poke(d->fetchwake, dmp_fetchq_length(d->fetchq),
                                           dmp_mono_ms());
                int served = dmp_fetchq_serve(d->fetchq, serve_message, d);
                ssize_t n = rd_kafka_consume_batch_queue(cq, 0, batch, CONSUME_BATCH);
                d->unforwarded += (uint64_t)n;
                for (ssize_t i = 0; i < n; i++) {
                        serve_message(batch[i], d);
                        rd_kafka_message_destroy(batch[i]);
                }
                flush_outputs(d); /* the batch's results (fails the daemon on error) */
                rd_kafka_poll(d->producer, 0); /* delivery reports */
                if (d->txn_producer && d->txn_producer != d->producer)
                        rd_kafka_poll(d->txn_producer, 0);
                long restored = 0;
                if (d->changelog && dmp_changelog_restoring(d->changelog)) {
                        char rerr[512];
                        restored = dmp_changelog_serve(d->changelog, d->engine, RESTORE_PER_ROUND,
                                                       partition_restored, d, rerr, sizeof(rerr));
                        if (restored < 0)
                                fail(d, "restore failed: %s", rerr);
                        else if (restored > 0)
                                update_ready(d); /* (its counters) */
                }
                int64_t now = dmp_mono_ms();
                if (d->fetchwake)
                        dmp_fetchwake_poke(d->fetchwake, dmp_fetchq_length(d->fetchq), now);
                dmp_pauses_resume_due(d->pauses, now);
                if (d->admin)
                        dmp_admin_serve(d->admin);
                for (int i = 0; i < CRON__CNT; i++) {
                        cron_t *c = &d->cron[i];
                        if (c->period_ms > 0 && now >= c->next_ms) {
                                c->next_ms = now + c->period_ms;
                                c->run(d, now); /* (may move any task's next_ms) */
                        }
                }
                if (served <= 0 && n <= 0 && restored <= 0) /* nothing to do */
                        dmp_fetchq_wait(d->fetchq, 100); /* (restores wake it too) */
        }

        if (d->fetchwake)
                dmp_debug("%" PRIu64 " fetch wake-up rounds", dmp_fetchwake_rounds(d->fetchwake));
        if (d->unforwarded) /* consumer errors count too */
                dmp_info("%" PRIu64 " records came through the consumer queue, not the fetch "
                         "queue (src/fetchq.h)", d->unforwarded);
        if (d->skipped)
                dmp_debug("%" PRIu64 " records of revoked partitions or read twice skipped",
                          d->skipped);
        if (!d->failed) {
                dmp_info("stopping: committing and leaving the group");
                commit(d);
                settle(d);
        }
        /* Leaves the group; the revoke callback commits again (a no-op when
         * clean) unless a failure happened. */
        rd_kafka_consumer_close(d->consumer);
        publish_counters(d);
        dmp_log_repeats_tick(INT64_MAX); /* before the last lines: the counts so far */
        if (d->failed) {
                snprintf(errstr, errstr_size, "%s", d->failure);
                return d->failed_usage ? -2 : -1;
        }
        const dmp_engine_stats_t *s = dmp_engine_stats(d->engine);
        char dead[512];
        dmp_dlq_format_counts(d->dlq, dead, sizeof(dead));
        char mem[256];
        format_memory(s, mem, sizeof(mem));
        dmp_info("%s", mem);
        const dmp_groups_stats_t *gs = dmp_engine_groups_stats(d->engine);
        if (gs)
                dmp_info("groups: %" PRIu64 " group results, %" PRIu64 " patterns, %" PRIu64
                         " late group updates", gs->group_results, gs->patterns,
                         gs->late_group_updates);
        dmp_info("stopped: %" PRIu64 " events, %" PRIu64 " results, %" PRIu64 " late, %" PRIu64
                 " decode errors; dead letters: %s", s->events_in, s->results_out,
                 s->late_events, s->decode_errors, dead);
        return 0;
}
