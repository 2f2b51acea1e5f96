#include "pause.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetchq.h"
#include "log.h"
#include "util.h"

typedef struct paused {
        char *topic;
        int32_t partition;
        int64_t until; /* mono ms; 0: not paused */
} paused_t;

struct dmp_pauses {
        rd_kafka_t *consumer;
        paused_t *v;
        size_t n;
};

dmp_pauses_t *dmp_pauses_new(rd_kafka_t *consumer) {
        dmp_pauses_t *ps = dmp_calloc(1, sizeof(*ps));
        ps->consumer = consumer;
        return ps;
}

void dmp_pauses_destroy(dmp_pauses_t *ps) {
        if (!ps)
                return;
        for (size_t i = 0; i < ps->n; i++)
                free(ps->v[i].topic);
        free(ps->v);
        free(ps);
}

static paused_t *entry(dmp_pauses_t *ps, const char *topic, int32_t partition) {
        for (size_t i = 0; i < ps->n; i++)
                if (ps->v[i].partition == partition && !strcmp(ps->v[i].topic, topic))
                        return &ps->v[i];
        ps->v = dmp_realloc(ps->v, (ps->n + 1) * sizeof(*ps->v));
        ps->v[ps->n] = (paused_t){dmp_strdup(topic), partition, 0};
        return &ps->v[ps->n++];
}

int dmp_pauses_is_paused(const dmp_pauses_t *ps, int32_t partition) {
        for (size_t i = 0; i < ps->n; i++) /* one topic: the partition is the key */
                if (ps->v[i].partition == partition && ps->v[i].until)
                        return 1;
        return 0;
}

static void pause_or_resume(dmp_pauses_t *ps, const paused_t *p, int64_t offset, int pause) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = offset;
        if (pause)
                rd_kafka_pause_partitions(ps->consumer, l);
        else
                rd_kafka_resume_partitions(ps->consumer, l);
        rd_kafka_topic_partition_list_destroy(l);
}

int dmp_pauses_add(dmp_pauses_t *ps, const rd_kafka_message_t *m, int64_t delay_ms,
                   const char *why, char *errstr, size_t errstr_size) {
        paused_t *p = entry(ps, rd_kafka_topic_name(m->rkt), m->partition);
        pause_or_resume(ps, p, m->offset, 1);
        /* the seek drops what was fetched after m; m comes again on resume */
        if (dmp_fetchq_seek(ps->consumer, p->topic, p->partition, m->offset, errstr,
                            errstr_size))
                return -1;
        dmp_log_repeated(DMP_LOG_WARN, "registry pause", /* counted while it lasts (log.h) */
                         "partition %d paused at offset %" PRId64 " (read again every %" PRId64
                         " ms): %s", (int)p->partition, m->offset, delay_ms, why);
        p->until = dmp_mono_ms() + delay_ms;
        return 0;
}

void dmp_pauses_resume_due(dmp_pauses_t *ps, int64_t now) {
        for (size_t i = 0; i < ps->n; i++) {
                if (!ps->v[i].until || now < ps->v[i].until)
                        continue;
                pause_or_resume(ps, &ps->v[i], 0, 0);
                ps->v[i].until = 0;
        }
}

void dmp_pauses_forget(dmp_pauses_t *ps, int32_t partition) {
        for (size_t i = 0; i < ps->n; i++)
                if (ps->v[i].partition == partition)
                        ps->v[i].until = 0;
}
