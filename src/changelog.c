/* The changelog topic: see changelog.h and docs/STATE.md. */
#include "changelog.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafkaconf.h"
#include "log.h"
#include "util.h"

#define ADMIN_TIMEOUT_MS 30000
#define POLICY_TIMEOUT_MS 5000 /* a cluster that does not answer DescribeConfigs:
                                * not checked */
#define RESTORE_BATCH    1024 /* messages taken from the restore consumer per call */

/* One partition's changelog bookkeeping. */
typedef struct part {
        int64_t next;     /* the checkpoint: after the last record delivered (-1: unknown) */
        int need_fp;      /* the partition is empty: its first record is the fingerprint */
        int restoring;
        int64_t from, position;
        uint64_t records;
        int drop_pending; /* local state without a checkpoint: drop it if records come */
        int seen;         /* a record or the end was seen */
        int waiting;      /* the end reached is held back by an open transaction */
        int64_t began_ms; /* monotonic: when the restore began */
} part_t;

struct dmp_changelog {
        const dmp_conf_t *conf;
        char *topic;
        rd_kafka_t *producer; /* borrowed */
        rd_kafka_topic_t *rkt;
        rd_kafka_t *restorer; /* read_committed, assigned the partitions being restored */
        rd_kafka_queue_t *rq;
        uint64_t fingerprint;
        part_t *parts; /* by partition */
        int32_t nparts;
        int restoring;
        unsigned char *keybuf;
        size_t keybuf_cap;
        char error[512]; /* a produce error not reported yet */
        dmp_changelog_stats_t stats;
};

static part_t *part_of(dmp_changelog_t *cl, int32_t p) {
        if (p >= cl->nparts) {
                cl->parts = dmp_realloc(cl->parts, sizeof(*cl->parts) * (size_t)(p + 1));
                for (int32_t i = cl->nparts; i <= p; i++)
                        cl->parts[i] = (part_t){.next = -1, .position = -1};
                cl->nparts = p + 1;
        }
        return &cl->parts[p];
}

/* A librdkafka configuration with conf's [kafka] properties (errors: the
 * daemon checked them with its own clients). */
static rd_kafka_conf_t *client_conf(const dmp_conf_t *conf) {
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        dmp_kafkaconf_log_to_dmpflow(kc);
        for (int i = 0; i < conf->kafka_cnt; i++)
                rd_kafka_conf_set(kc, conf->kafka[i].name, conf->kafka[i].value, NULL, 0);
        return kc;
}

void dmp_changelog_topic_name(const dmp_conf_t *conf, char *buf, size_t size) {
        if (*conf->state.changelog_topic)
                snprintf(buf, size, "%s", conf->state.changelog_topic);
        else
                snprintf(buf, size, "%s-changelog", conf->input.group_id);
}

dmp_changelog_t *dmp_changelog_new(const dmp_conf_t *conf, rd_kafka_t *producer, char *errstr,
                                   size_t errstr_size) {
        dmp_changelog_t *cl = dmp_calloc(1, sizeof(*cl));
        cl->conf = conf;
        cl->producer = producer;
        char topic[1024];
        dmp_changelog_topic_name(conf, topic, sizeof(topic));
        cl->topic = dmp_strdup(topic);
        /* The restorer: no group (assigned by hand), transactions' records
         * only once committed, an end-of-partition event per partition. A
         * checkpoint beyond the log (a recreated topic) starts over from
         * the earliest offset, which dmp_changelog_serve notices; its end
         * is known when a fetch returns nothing, after fetch.wait.max.ms.
         * Fetches of up to 16 MiB per partition and a deep queue (capped
         * by queued.max.messages.kbytes): a restore wants throughput, and
         * the input consumer's 256 KiB fetches made it fetch-bound
         * (docs/PERFORMANCE.md "Restore from the changelog"). */
        rd_kafka_conf_t *rc = client_conf(conf);
        char group[512];
        snprintf(group, sizeof(group), "%s-restore", conf->input.group_id);
        if (rd_kafka_conf_set(rc, "group.id", group, errstr, errstr_size) ||
            rd_kafka_conf_set(rc, "enable.auto.commit", "false", errstr, errstr_size) ||
            rd_kafka_conf_set(rc, "enable.auto.offset.store", "false", errstr, errstr_size) ||
            rd_kafka_conf_set(rc, "isolation.level", "read_committed", errstr, errstr_size) ||
            rd_kafka_conf_set(rc, "enable.partition.eof", "true", errstr, errstr_size) ||
            rd_kafka_conf_set(rc, "auto.offset.reset", "earliest", errstr, errstr_size) ||
            rd_kafka_conf_set(rc, "client.id", "dmpflow-restore", errstr, errstr_size) ||
            rd_kafka_conf_set(rc, "fetch.wait.max.ms", "10", errstr, errstr_size) ||
            rd_kafka_conf_set(rc, "max.partition.fetch.bytes", "16777216", errstr,
                              errstr_size) ||
            rd_kafka_conf_set(rc, "queued.min.messages", "1000000", errstr, errstr_size) ||
            !(cl->restorer = rd_kafka_new(RD_KAFKA_CONSUMER, rc, errstr, errstr_size))) {
                if (!cl->restorer)
                        rd_kafka_conf_destroy(rc);
                dmp_changelog_destroy(cl);
                return NULL;
        }
        cl->rq = rd_kafka_queue_get_consumer(cl->restorer);
        return cl;
}

void dmp_changelog_destroy(dmp_changelog_t *cl) {
        if (!cl)
                return;
        if (cl->rq)
                rd_kafka_queue_destroy(cl->rq);
        if (cl->restorer) {
                rd_kafka_assign(cl->restorer, NULL);
                rd_kafka_destroy(cl->restorer);
        }
        if (cl->rkt)
                rd_kafka_topic_destroy(cl->rkt);
        free(cl->topic);
        free(cl->parts);
        free(cl->keybuf);
        free(cl);
}

const char *dmp_changelog_topic(const dmp_changelog_t *cl) {
        return cl->topic;
}

/* ---- the topic ---- */

int32_t dmp_changelog_partitions_of(rd_kafka_t *rk, const char *topic, int timeout_ms,
                                    char *errstr, size_t errstr_size) {
        const struct rd_kafka_metadata *md;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
        if (err) {
                snprintf(errstr, errstr_size, "cannot read the cluster's metadata: %s",
                         rd_kafka_err2str(err));
                return -1;
        }
        int32_t n = 0;
        for (int i = 0; i < md->topic_cnt; i++)
                if (!strcmp(md->topics[i].topic, topic))
                        n = md->topics[i].partition_cnt;
        rd_kafka_metadata_destroy(md);
        return n;
}

/* Waits for the result event of an admin request on q. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, rd_kafka_event_type_t type,
                                    int timeout_ms) {
        rd_kafka_event_t *ev;
        while ((ev = rd_kafka_queue_poll(q, timeout_ms + 1000))) {
                if (rd_kafka_event_type(ev) == type)
                        return ev;
                rd_kafka_event_destroy(ev);
        }
        return NULL;
}

static int create_topic(dmp_changelog_t *cl, int32_t partitions, char *errstr,
                        size_t errstr_size) {
        char e[256];
        rd_kafka_NewTopic_t *nt =
                rd_kafka_NewTopic_new(cl->topic, partitions,
                                      (int)cl->conf->state.changelog_replication_factor, e,
                                      sizeof(e));
        if (!nt || rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact")) {
                snprintf(errstr, errstr_size, "changelog topic %s: %s", cl->topic,
                         nt ? "cannot set cleanup.policy" : e);
                rd_kafka_NewTopic_destroy(nt);
                return -1;
        }
        rd_kafka_queue_t *q = rd_kafka_queue_new(cl->producer);
        rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(cl->producer,
                                                               RD_KAFKA_ADMIN_OP_CREATETOPICS);
        rd_kafka_AdminOptions_set_request_timeout(o, ADMIN_TIMEOUT_MS, NULL, 0);
        rd_kafka_CreateTopics(cl->producer, &nt, 1, o, q);
        rd_kafka_event_t *ev = admin_wait(q, RD_KAFKA_EVENT_CREATETOPICS_RESULT, ADMIN_TIMEOUT_MS);
        int rc = -1;
        if (!ev) {
                snprintf(errstr, errstr_size, "changelog topic %s: no answer to its creation",
                         cl->topic);
        } else if (rd_kafka_event_error(ev)) {
                snprintf(errstr, errstr_size, "cannot create the changelog topic %s: %s",
                         cl->topic, rd_kafka_event_error_string(ev));
        } else {
                size_t cnt;
                const rd_kafka_topic_result_t **r = rd_kafka_CreateTopics_result_topics(
                        rd_kafka_event_CreateTopics_result(ev), &cnt);
                rd_kafka_resp_err_t err = cnt ? rd_kafka_topic_result_error(r[0])
                                              : RD_KAFKA_RESP_ERR_UNKNOWN;
                if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                        snprintf(errstr, errstr_size, "cannot create the changelog topic %s: %s",
                                 cl->topic,
                                 cnt ? rd_kafka_topic_result_error_string(r[0])
                                     : rd_kafka_err2str(err));
                else
                        rc = 0;
        }
        if (ev)
                rd_kafka_event_destroy(ev);
        rd_kafka_AdminOptions_destroy(o);
        rd_kafka_NewTopic_destroy(nt);
        rd_kafka_queue_destroy(q);
        if (!rc)
                dmp_info("created the changelog topic %s (%d partitions, compacted)", cl->topic,
                         (int)partitions);
        return rc;
}

/* Whether the cluster's metadata names a controller among its brokers:
 * DescribeConfigs goes to the controller, and librdkafka waits for it until
 * the request times out. librdkafka 2.0's mock cluster names broker 0 of
 * brokers 1..n (5 s lost per start without this check). */
static int controller_known(dmp_changelog_t *cl) {
        const struct rd_kafka_metadata *md;
        if (rd_kafka_metadata(cl->producer, 0, NULL, &md, POLICY_TIMEOUT_MS))
                return 0;
        int32_t id = rd_kafka_controllerid(cl->producer, POLICY_TIMEOUT_MS);
        int known = 0;
        for (int i = 0; i < md->broker_cnt && id >= 0; i++)
                known |= md->brokers[i].id == id;
        rd_kafka_metadata_destroy(md);
        return known;
}

/* The topic's cleanup.policy must keep the latest record of each key. */
static int check_policy(dmp_changelog_t *cl, int *config_error, char *errstr,
                        size_t errstr_size) {
        if (!controller_known(cl)) {
                dmp_info("changelog topic %s: its cleanup.policy is not checked: the cluster "
                         "names no controller among its brokers", cl->topic);
                return 0;
        }
        rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC,
                                                                     cl->topic);
        rd_kafka_queue_t *q = rd_kafka_queue_new(cl->producer);
        rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(cl->producer,
                                                               RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
        rd_kafka_AdminOptions_set_request_timeout(o, POLICY_TIMEOUT_MS, NULL, 0);
        rd_kafka_DescribeConfigs(cl->producer, &res, 1, o, q);
        rd_kafka_event_t *ev = admin_wait(q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT,
                                          POLICY_TIMEOUT_MS);
        const char *policy = NULL;
        if (ev && !rd_kafka_event_error(ev)) {
                size_t rcnt, ccnt;
                const rd_kafka_ConfigResource_t **rs = rd_kafka_DescribeConfigs_result_resources(
                        rd_kafka_event_DescribeConfigs_result(ev), &rcnt);
                const rd_kafka_ConfigEntry_t **ce =
                        rcnt ? rd_kafka_ConfigResource_configs(rs[0], &ccnt) : NULL;
                for (size_t i = 0; ce && i < ccnt; i++)
                        if (!strcmp(rd_kafka_ConfigEntry_name(ce[i]), "cleanup.policy"))
                                policy = rd_kafka_ConfigEntry_value(ce[i]);
        }
        int rc = 0;
        if (!policy) /* a broker that does not say (librdkafka's mock cluster): not checked */
                dmp_info("changelog topic %s: the broker does not say its cleanup.policy",
                         cl->topic);
        else if (!strstr(policy, "compact")) {
                snprintf(errstr, errstr_size,
                         "the changelog topic %s has cleanup.policy=%s: it must be compact (or "
                         "compact,delete), or its state would be deleted with old segments; "
                         "change the topic or set [state] changelog.topic", cl->topic, policy);
                *config_error = 1;
                rc = -1;
        }
        if (ev)
                rd_kafka_event_destroy(ev);
        rd_kafka_AdminOptions_destroy(o);
        rd_kafka_ConfigResource_destroy(res);
        rd_kafka_queue_destroy(q);
        return rc;
}

/* Reads the first record of each partition: a non-empty partition must
 * start with this pipeline's fingerprint record. */
static int check_fingerprints(dmp_changelog_t *cl, int32_t partitions, int *config_error,
                              char *errstr, size_t errstr_size) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
        for (int32_t p = 0; p < partitions; p++)
                rd_kafka_topic_partition_list_add(l, cl->topic, p)->offset =
                        RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_assign(cl->restorer, l);
        rd_kafka_topic_partition_list_destroy(l);
        int32_t left = partitions;
        char *seen = dmp_calloc((size_t)partitions, 1);
        int rc = 0;
        int64_t deadline = dmp_mono_ms() + ADMIN_TIMEOUT_MS;
        while (left > 0 && !rc && dmp_mono_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(cl->restorer, 100);
                if (!m)
                        continue;
                int32_t p = m->partition;
                if (p >= 0 && p < partitions && !seen[p] &&
                    (!m->err || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)) {
                        seen[p] = 1;
                        left--;
                        uint64_t fp = m->len == 8 ? dmp_be64_get(m->payload) : 0;
                        if (!m->err &&
                            (m->key_len != sizeof(DMP_CHANGELOG_FINGERPRINT_KEY) - 1 ||
                             memcmp(m->key, DMP_CHANGELOG_FINGERPRINT_KEY, m->key_len) ||
                             fp != cl->fingerprint)) {
                                snprintf(errstr, errstr_size,
                                         "the changelog topic %s [%d] holds the state of "
                                         "another pipeline definition (fingerprint %016" PRIx64
                                         ", this one %016" PRIx64 "): set another [state] "
                                         "changelog.topic or [input] group.id, or delete the "
                                         "topic to start over", cl->topic, (int)p, fp,
                                         cl->fingerprint);
                                *config_error = 1;
                                rc = -1;
                        }
                } else if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        dmp_warn("changelog %s: %s", cl->topic, rd_kafka_message_errstr(m));
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_assign(cl->restorer, NULL);
        free(seen);
        if (!rc && left > 0) {
                snprintf(errstr, errstr_size, "cannot read the changelog topic %s within %d ms",
                         cl->topic, ADMIN_TIMEOUT_MS);
                rc = -1;
        }
        return rc;
}

int dmp_changelog_prepare(dmp_changelog_t *cl, int32_t input_partitions, uint64_t fingerprint,
                          int *config_error, char *errstr, size_t errstr_size) {
        cl->fingerprint = fingerprint;
        int32_t n = dmp_changelog_partitions_of(cl->producer, cl->topic, ADMIN_TIMEOUT_MS, errstr,
                                                errstr_size);
        if (n < 0)
                return -1;
        /* (the producer's topic handle only now: a producer asks the
         * metadata of its topics, and a broker with auto.create.topics.enable
         * would create a missing one with its defaults, not as a changelog) */
        if (!n) { /* (it does not exist) */
                if (create_topic(cl, input_partitions, errstr, errstr_size))
                        return -1;
                cl->rkt = rd_kafka_topic_new(cl->producer, cl->topic, NULL);
                return 0;
        }
        cl->rkt = rd_kafka_topic_new(cl->producer, cl->topic, NULL);
        if (n != input_partitions) {
                snprintf(errstr, errstr_size,
                         "the changelog topic %s has %d partitions, the input topic %s has %d: "
                         "they must be equal (a partition's state lives in the changelog "
                         "partition of the same number); set another [state] changelog.topic, "
                         "or delete the topic to start over", cl->topic, (int)n,
                         cl->conf->input.topic, (int)input_partitions);
                *config_error = 1;
                return -1;
        }
        if (check_policy(cl, config_error, errstr, errstr_size))
                return -1;
        return check_fingerprints(cl, n, config_error, errstr, errstr_size);
}

/* ---- producing ---- */

static void produce(dmp_changelog_t *cl, int32_t partition, const void *key, size_t key_len,
                    const void *val, size_t val_len) {
        for (;;) {
                rd_kafka_resp_err_t err = rd_kafka_producev(
                        cl->producer, RD_KAFKA_V_RKT(cl->rkt), RD_KAFKA_V_PARTITION(partition),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_KEY((void *)key, key_len),
                        RD_KAFKA_V_VALUE((void *)val, val ? val_len : 0),
                        RD_KAFKA_V_OPAQUE(cl), RD_KAFKA_V_END);
                if (!err) {
                        cl->stats.records_out++;
                        return;
                }
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        if (!cl->error[0])
                                snprintf(cl->error, sizeof(cl->error),
                                         "cannot produce to the changelog %s [%d]: %s",
                                         cl->topic, (int)partition, rd_kafka_err2str(err));
                        return;
                }
                rd_kafka_poll(cl->producer, 10); /* wait for room in the queue */
        }
}

void dmp_changelog_log(void *opaque, int32_t partition, int family, const void *key,
                       size_t key_len, const void *val, size_t val_len) {
        dmp_changelog_t *cl = opaque;
        part_t *pt = part_of(cl, partition);
        if (pt->need_fp) {
                unsigned char fp[8];
                dmp_be64_put(fp, cl->fingerprint);
                produce(cl, partition, DMP_CHANGELOG_FINGERPRINT_KEY,
                        sizeof(DMP_CHANGELOG_FINGERPRINT_KEY) - 1, fp, sizeof(fp));
                pt->need_fp = 0;
        }
        if (key_len + 1 > cl->keybuf_cap) {
                cl->keybuf_cap = (key_len + 1) * 2;
                cl->keybuf = dmp_realloc(cl->keybuf, cl->keybuf_cap);
        }
        cl->keybuf[0] = (unsigned char)family;
        memcpy(cl->keybuf + 1, key, key_len);
        produce(cl, partition, cl->keybuf, key_len + 1, val, val_len);
}

int dmp_changelog_error(dmp_changelog_t *cl, char *errstr, size_t errstr_size) {
        if (!cl->error[0])
                return 0;
        snprintf(errstr, errstr_size, "%s", cl->error);
        cl->error[0] = '\0';
        return 1;
}

int dmp_changelog_owns(const dmp_changelog_t *cl, const rd_kafka_message_t *m) {
        return m->_private == cl;
}

void dmp_changelog_delivered(dmp_changelog_t *cl, const rd_kafka_message_t *m) {
        if (m->err) {
                if (!cl->error[0])
                        snprintf(cl->error, sizeof(cl->error),
                                 "a changelog record to %s [%d] was not delivered: %s",
                                 cl->topic, (int)m->partition, rd_kafka_err2str(m->err));
                return;
        }
        part_t *pt = part_of(cl, m->partition);
        if (m->offset + 1 > pt->next)
                pt->next = m->offset + 1;
}

int64_t dmp_changelog_checkpoint(const dmp_changelog_t *cl, int32_t partition) {
        return partition < cl->nparts ? cl->parts[partition].next : -1;
}

/* ---- restoring ---- */

static void restorer_assign(dmp_changelog_t *cl, int32_t partition, int64_t offset, int add) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, cl->topic, partition)->offset = offset;
        rd_kafka_error_t *e = add ? rd_kafka_incremental_assign(cl->restorer, l)
                                  : rd_kafka_incremental_unassign(cl->restorer, l);
        if (e) {
                dmp_warn("changelog %s [%d]: %s: %s", cl->topic, (int)partition,
                         add ? "assign" : "unassign", rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
        }
        rd_kafka_topic_partition_list_destroy(l);
}

int dmp_changelog_restore(dmp_changelog_t *cl, dmp_engine_t *e,
                          const rd_kafka_topic_partition_list_t *parts, char *errstr,
                          size_t errstr_size) {
        /* Where each restore starts: its local checkpoint, or the start. */
        rd_kafka_topic_partition_list_t *q = rd_kafka_topic_partition_list_new(parts->cnt);
        for (int i = 0; i < parts->cnt; i++) {
                int32_t p = parts->elems[i].partition;
                int64_t checkpoint = 0;
                int local;
                int r = dmp_engine_restore_begin(e, p, &checkpoint, &local, errstr, errstr_size);
                if (r < 0) {
                        rd_kafka_topic_partition_list_destroy(q);
                        return -1;
                }
                part_t *pt = part_of(cl, p);
                if (pt->restoring)
                        continue;
                *pt = (part_t){.next = -1, .restoring = 1, .from = r ? checkpoint : 0,
                               .position = -1, .drop_pending = !r && local,
                               .began_ms = dmp_mono_ms()};
                cl->restoring++;
                rd_kafka_topic_partition_list_add(q, cl->topic, p)->offset = RD_KAFKA_OFFSET_END;
        }
        /* The end of each changelog partition (read_committed: the last
         * stable offset), in one request: one below the local checkpoint
         * means that the topic was recreated. */
        rd_kafka_resp_err_t err = q->cnt ? rd_kafka_offsets_for_times(cl->restorer, q, 10000)
                                         : RD_KAFKA_RESP_ERR_NO_ERROR;
        rd_kafka_topic_partition_list_t *a = rd_kafka_topic_partition_list_new(q->cnt);
        for (int i = 0; i < q->cnt; i++) {
                int32_t p = q->elems[i].partition;
                part_t *pt = &cl->parts[p];
                int64_t end = err || q->elems[i].err ? -1 : q->elems[i].offset;
                /* (Even when the end equals the checkpoint the restorer reads
                 * to it: that end is the last stable offset, which an open
                 * transaction of a previous owner may hold back;
                 * behind_open_txn tells when the restorer gets there.) */
                if (end >= 0 && end < pt->from) { /* the topic was recreated */
                        dmp_warn("partition %d: the changelog ends at %" PRId64 ", before "
                                 "the local checkpoint %" PRId64 " (recreated?): "
                                 "restoring from its start", (int)p, end, pt->from);
                        pt->from = 0;
                        pt->drop_pending = 1;
                }
                rd_kafka_topic_partition_list_add(a, cl->topic, p)->offset = pt->from;
                dmp_info("partition %d: restoring its state from %s [%d] at offset %" PRId64
                         "%s", (int)p, cl->topic, (int)p, pt->from,
                         pt->drop_pending ? " (local state without a checkpoint)" : "");
        }
        if (a->cnt) {
                rd_kafka_error_t *ae = rd_kafka_incremental_assign(cl->restorer, a);
                if (ae) {
                        snprintf(errstr, errstr_size, "cannot read the changelog %s: %s",
                                 cl->topic, rd_kafka_error_string(ae));
                        rd_kafka_error_destroy(ae);
                        err = RD_KAFKA_RESP_ERR__FAIL;
                }
        }
        int failed = a->cnt && err == RD_KAFKA_RESP_ERR__FAIL;
        rd_kafka_topic_partition_list_destroy(a);
        rd_kafka_topic_partition_list_destroy(q);
        return failed ? -1 : 0;
}

void dmp_changelog_forget(dmp_changelog_t *cl, int32_t partition) {
        if (partition >= cl->nparts || !cl->parts[partition].restoring)
                return;
        part_t *pt = &cl->parts[partition];
        pt->restoring = 0;
        cl->restoring--;
        restorer_assign(cl, partition, RD_KAFKA_OFFSET_INVALID, 0);
        dmp_info("partition %d: restore stopped (revoked)", (int)partition);
}

/* The restore of p reached the end of its changelog partition. */
static int restore_done(dmp_changelog_t *cl, dmp_engine_t *e, int32_t partition, int64_t end,
                        void (*done)(void *opaque, int32_t partition), void *opaque,
                        char *errstr, size_t errstr_size) {
        part_t *pt = &cl->parts[partition];
        /* Nothing to replay but a local state the changelog lacks (written
         * before the changelog was on, or the topic was recreated): keep it
         * and log it whole with the next commit. */
        int relog = !pt->records && (pt->drop_pending || end < pt->from);
        if (dmp_engine_restore_end(e, partition, end, errstr, errstr_size))
                return -1;
        restorer_assign(cl, partition, RD_KAFKA_OFFSET_INVALID, 0);
        pt->restoring = 0;
        cl->restoring--;
        pt->next = end;
        pt->need_fp = end == 0;
        cl->stats.restores++;
        double secs = (double)(dmp_mono_ms() - pt->began_ms) / 1000.0;
        dmp_info("partition %d: restored %" PRIu64 " changelog records (offsets %" PRId64
                 " to %" PRId64 ") in %.3f s", (int)partition, pt->records, pt->from, end, secs);
        if (relog) {
                long n = dmp_engine_relog(e, partition, errstr, errstr_size);
                if (n < 0)
                        return -1;
                cl->stats.relogged += (uint64_t)n;
                if (n)
                        dmp_info("partition %d: its local state (%ld records) goes to the "
                                 "changelog with the next commit", (int)partition, n);
        }
        done(opaque, partition);
        return 0;
}

/* Applies one fetched record of a partition being restored. */
static int restore_record(dmp_changelog_t *cl, dmp_engine_t *e, part_t *pt,
                          const rd_kafka_message_t *m, char *errstr, size_t errstr_size) {
        if (!pt->seen) {
                pt->seen = 1;
                if (m->offset < pt->from) { /* the topic was recreated: start over */
                        dmp_warn("partition %d: the changelog starts at offset %" PRId64
                                 ", before the local checkpoint %" PRId64 " (recreated?): "
                                 "restoring from it", (int)m->partition, m->offset, pt->from);
                        pt->drop_pending = 1;
                }
                if (pt->drop_pending)
                        dmp_engine_restore_drop(e, m->partition);
                pt->drop_pending = 0;
        }
        pt->position = m->offset + 1;
        if (m->key_len == sizeof(DMP_CHANGELOG_FINGERPRINT_KEY) - 1 &&
            !memcmp(m->key, DMP_CHANGELOG_FINGERPRINT_KEY, m->key_len))
                return 0; /* checked at startup */
        if (dmp_engine_restore_record(e, m->partition, m->key, m->key_len, m->payload, m->len,
                                      errstr, errstr_size))
                return -1;
        pt->records++;
        cl->stats.restored_records++;
        return 0;
}

/* Whether the end the restorer reached (m: its end-of-partition event) is
 * a last stable offset held back by an open transaction with records past
 * it: the transaction of a previous owner that died in it, which its
 * restart or the broker (after its transaction.timeout.ms) aborts, with
 * the records of the next owner committed after it. Ending the restore
 * there would open the partition with a state older than its committed
 * offsets; the restore goes on to the next end instead. */
static int behind_open_txn(dmp_changelog_t *cl, part_t *pt, const rd_kafka_message_t *m) {
        int64_t lo = -1, hi = -1; /* (hi: the high watermark of the last fetch) */
        if (rd_kafka_get_watermark_offsets(cl->restorer, cl->topic, m->partition, &lo, &hi) ||
            hi <= m->offset)
                return 0;
        if (!pt->waiting)
                dmp_info("partition %d: the changelog's last stable offset %" PRId64 " is below "
                         "its end %" PRId64 ": a transaction is open (a previous owner's, "
                         "aborted on its restart or after its transaction.timeout.ms); "
                         "restoring on when it ends", (int)m->partition, m->offset, hi);
        pt->waiting = 1;
        return 1;
}

long dmp_changelog_serve(dmp_changelog_t *cl, dmp_engine_t *e, long max,
                         void (*done)(void *opaque, int32_t partition), void *opaque,
                         char *errstr, size_t errstr_size) {
        rd_kafka_message_t *batch[RESTORE_BATCH];
        long applied = 0;
        while (cl->restoring && applied < max) {
                ssize_t n = rd_kafka_consume_batch_queue(cl->rq, 0, batch, RESTORE_BATCH);
                if (n <= 0)
                        break;
                int rc = 0;
                for (ssize_t i = 0; i < n; i++) {
                        rd_kafka_message_t *m = batch[i];
                        part_t *pt = m->partition >= 0 && m->partition < cl->nparts
                                             ? &cl->parts[m->partition]
                                             : NULL;
                        if (!rc && pt && pt->restoring) {
                                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                                        if (!behind_open_txn(cl, pt, m))
                                                rc = restore_done(cl, e, m->partition, m->offset,
                                                                  done, opaque, errstr,
                                                                  errstr_size);
                                } else if (m->err) {
                                        dmp_warn("restoring partition %d: %s", (int)m->partition,
                                                 rd_kafka_message_errstr(m));
                                } else {
                                        rc = restore_record(cl, e, pt, m, errstr, errstr_size);
                                        applied++;
                                }
                        }
                        rd_kafka_message_destroy(m);
                }
                if (rc)
                        return -1;
        }
        return applied;
}

int dmp_changelog_restoring(const dmp_changelog_t *cl) {
        return cl->restoring;
}

rd_kafka_queue_t *dmp_changelog_restore_queue(const dmp_changelog_t *cl) {
        return cl->rq;
}

void dmp_changelog_foreach_restore(const dmp_changelog_t *cl,
                                   void (*cb)(void *opaque, const dmp_restore_info_t *ri),
                                   void *opaque) {
        for (int32_t p = 0; p < cl->nparts; p++) {
                const part_t *pt = &cl->parts[p];
                if (!pt->restoring)
                        continue;
                int64_t lo, hi;
                int64_t end = rd_kafka_get_watermark_offsets(cl->restorer, cl->topic, p, &lo,
                                                             &hi) == RD_KAFKA_RESP_ERR_NO_ERROR
                                      ? hi
                                      : -1;
                dmp_restore_info_t ri = {p, pt->from, pt->position, end, pt->records};
                cb(opaque, &ri);
        }
}

const dmp_changelog_stats_t *dmp_changelog_stats(const dmp_changelog_t *cl) {
        return &cl->stats;
}
