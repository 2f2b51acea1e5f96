#include "fetchq.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

struct dmp_fetchq {
        rd_kafka_t *consumer;
        rd_kafka_queue_t *messages; /* ours: the partitions' queues forward here */
        rd_kafka_queue_t *events;   /* the consumer queue */
        int wake_fd;                /* eventfd both queues write to when they fill */
        int warned;                 /* a partition without a queue was reported */
        atomic_int woken;           /* dmp_fetchq_wake() since the last wait */
};

/* librdkafka writes this (8 bytes, as eventfd wants) when a queue that was
 * served becomes non-empty; at most once until it is served again. */
static const uint64_t wake_payload = 1;

dmp_fetchq_t *dmp_fetchq_new(rd_kafka_t *consumer, char *errstr, size_t errstr_size) {
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd < 0) {
                snprintf(errstr, errstr_size, "cannot make the consumer's wake-up eventfd: %s",
                         strerror(errno));
                return NULL;
        }
        dmp_fetchq_t *fq = dmp_calloc(1, sizeof(*fq));
        fq->consumer = consumer;
        fq->wake_fd = fd;
        fq->messages = rd_kafka_queue_new(consumer);
        fq->events = rd_kafka_queue_get_consumer(consumer);
        rd_kafka_queue_io_event_enable(fq->messages, fd, &wake_payload, sizeof(wake_payload));
        rd_kafka_queue_io_event_enable(fq->events, fd, &wake_payload, sizeof(wake_payload));
        return fq;
}

void dmp_fetchq_forward(dmp_fetchq_t *fq, const rd_kafka_topic_partition_list_t *parts) {
        for (int i = 0; i < parts->cnt; i++) {
                const rd_kafka_topic_partition_t *p = &parts->elems[i];
                rd_kafka_queue_t *pq = rd_kafka_queue_get_partition(fq->consumer, p->topic,
                                                                    p->partition);
                if (!pq) {
                        if (!fq->warned++)
                                dmp_warn("%s [%d]: no partition queue; its messages come "
                                         "through the consumer queue", p->topic,
                                         (int)p->partition);
                        continue;
                }
                rd_kafka_queue_forward(pq, fq->messages);
                rd_kafka_queue_destroy(pq); /* the partition keeps its queue */
        }
}

void dmp_fetchq_reforward(dmp_fetchq_t *fq) {
        rd_kafka_topic_partition_list_t *parts = NULL;
        if (rd_kafka_assignment(fq->consumer, &parts) || !parts)
                return;
        dmp_fetchq_forward(fq, parts);
        rd_kafka_topic_partition_list_destroy(parts);
}

int dmp_fetchq_serve(dmp_fetchq_t *fq, void (*on_message)(rd_kafka_message_t *m, void *opaque),
                     void *opaque) {
        /* timeout 0: serves what is queued now, all of it (max_cnt 0 in
         * librdkafka; bounded by queued.min.messages plus one fetch). Not
         * capped with rd_kafka_yield(): a yield puts the rest back, and
         * while it is out the queue looks empty to the fetcher, which then
         * fetches ahead up to queued.max.messages.kbytes (+60 MB RSS
         * measured at 3 M events/s). */
        return rd_kafka_consume_callback_queue(fq->messages, 0, on_message, opaque);
}

size_t dmp_fetchq_length(const dmp_fetchq_t *fq) {
        return rd_kafka_queue_length(fq->messages);
}

rd_kafka_queue_t *dmp_fetchq_events(const dmp_fetchq_t *fq) {
        return fq->events;
}

void dmp_fetchq_wait(dmp_fetchq_t *fq, int timeout_ms) {
        uint64_t n;
        /* Queues served since the last write re-arm librdkafka's wake-up:
         * a write after this read is a real wake-up; one before it is
         * consumed here, and its queue is checked before the wait. */
        while (read(fq->wake_fd, &n, sizeof(n)) == (ssize_t)sizeof(n))
                ;
        if (atomic_exchange(&fq->woken, 0) || rd_kafka_queue_length(fq->messages) ||
            rd_kafka_queue_length(fq->events))
                return;
        struct pollfd pfd = {.fd = fq->wake_fd, .events = POLLIN};
        (void)poll(&pfd, 1, timeout_ms);
}

void dmp_fetchq_watch(dmp_fetchq_t *fq, rd_kafka_queue_t *q) {
        rd_kafka_queue_io_event_enable(q, fq->wake_fd, &wake_payload, sizeof(wake_payload));
}

void dmp_fetchq_unwatch(dmp_fetchq_t *fq, rd_kafka_queue_t *q) {
        (void)fq;
        rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
}

void dmp_fetchq_wake(dmp_fetchq_t *fq) {
        atomic_store(&fq->woken, 1); /* a wake-up the wait's read drained still counts */
        ssize_t r = write(fq->wake_fd, &wake_payload, sizeof(wake_payload));
        (void)r; /* the counter is full: a wake-up is pending anyway */
}

void dmp_fetchq_destroy(dmp_fetchq_t *fq) {
        if (!fq)
                return;
        rd_kafka_queue_io_event_enable(fq->messages, -1, NULL, 0);
        rd_kafka_queue_io_event_enable(fq->events, -1, NULL, 0);
        rd_kafka_queue_destroy(fq->messages);
        rd_kafka_queue_destroy(fq->events);
        close(fq->wake_fd);
        free(fq);
}

int dmp_fetchq_seek(rd_kafka_t *consumer, const char *topic, int32_t partition, int64_t offset,
                    char *errstr, size_t errstr_size) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
        rd_kafka_error_t *e = rd_kafka_seek_partitions(consumer, l, 0);
        rd_kafka_resp_err_t err = l->elems[0].err;
        int rc = 0;
        if (e || (err && err != RD_KAFKA_RESP_ERR__IN_PROGRESS)) {
                snprintf(errstr, errstr_size, "cannot seek %s [%d] to offset %" PRId64 ": %s",
                         topic, (int)partition, offset,
                         e ? rd_kafka_error_string(e) : rd_kafka_err2str(err));
                rc = -1;
        }
        if (e)
                rd_kafka_error_destroy(e);
        rd_kafka_topic_partition_list_destroy(l);
        return rc;
}
