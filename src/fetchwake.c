#include "fetchwake.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "util.h"

struct dmp_fetchwake {
        rd_kafka_t *consumer;
        dmp_fetchwake_gate_t gate; /* poll thread only */
        pthread_t thread;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        atomic_int wanted; /* a poke since the last round began */
        int stop;          /* under mu */
        _Atomic uint64_t rounds;
        int warned; /* waker thread only */
};

int dmp_fetchwake_needed(void) {
        return rd_kafka_version() < 0x02030000;
}

/* One ListOffsets request per leader of the assigned partitions. */
static void wake_round(dmp_fetchwake_t *fw) {
        rd_kafka_topic_partition_list_t *parts = NULL;
        if (rd_kafka_assignment(fw->consumer, &parts) || !parts)
                return;
        if (parts->cnt) {
                for (int i = 0; i < parts->cnt; i++)
                        parts->elems[i].offset = RD_KAFKA_OFFSET_END; /* "latest" */
                rd_kafka_resp_err_t err =
                    rd_kafka_offsets_for_times(fw->consumer, parts, DMP_FETCHWAKE_TIMEOUT_MS);
                if (err && !fw->warned) { /* harmless: the next round tries again */
                        dmp_debug("fetch wake-up: ListOffsets failed: %s", rd_kafka_err2str(err));
                        fw->warned = 1;
                }
                atomic_fetch_add(&fw->rounds, 1);
        }
        rd_kafka_topic_partition_list_destroy(parts);
}

static void *waker_main(void *arg) {
        dmp_fetchwake_t *fw = arg;
        pthread_setname_np(pthread_self(), "dmp:fetchwake");
        for (;;) {
                pthread_mutex_lock(&fw->mu);
                while (!fw->stop && !atomic_load(&fw->wanted))
                        pthread_cond_wait(&fw->cv, &fw->mu);
                int stop = fw->stop;
                pthread_mutex_unlock(&fw->mu);
                if (stop)
                        return NULL;
                wake_round(fw);
                struct timespec pause = {0, DMP_FETCHWAKE_MIN_INTERVAL_US * 1000L};
                nanosleep(&pause, NULL);
                atomic_store(&fw->wanted, 0); /* pokes meanwhile are served by this round */
        }
}

dmp_fetchwake_t *dmp_fetchwake_new(rd_kafka_t *consumer, size_t queue_min, size_t drain,
                                   char *errstr, size_t errstr_size) {
        dmp_fetchwake_t *fw = dmp_calloc(1, sizeof(*fw));
        fw->consumer = consumer;
        fw->gate.queue_min = queue_min;
        fw->gate.drain = drain;
        pthread_mutex_init(&fw->mu, NULL);
        pthread_cond_init(&fw->cv, NULL);
        int e = pthread_create(&fw->thread, NULL, waker_main, fw);
        if (e) {
                snprintf(errstr, errstr_size, "cannot start the fetch waker thread: %s",
                         strerror(e));
                pthread_cond_destroy(&fw->cv);
                pthread_mutex_destroy(&fw->mu);
                free(fw);
                return NULL;
        }
        return fw;
}

int dmp_fetchwake_gate_check(dmp_fetchwake_gate_t *g, size_t queue_len, int64_t now_ms,
                             int busy) {
        if (queue_len + g->drain >= g->queue_min)
                g->armed = 1; /* a broker thread may have seen >= queued.min.messages */
        if (busy || queue_len >= g->queue_min ||
            (!g->armed && now_ms - g->last_wake_ms < DMP_FETCHWAKE_RETRY_MS))
                return 0;
        g->armed = 0;
        g->last_wake_ms = now_ms;
        return 1;
}

void dmp_fetchwake_poke(dmp_fetchwake_t *fw, size_t queue_len, int64_t now_ms) {
        /* A round asked for and not yet done serves this poke too (busy);
         * the gate still notes what it saw for the next one. */
        if (!dmp_fetchwake_gate_check(&fw->gate, queue_len, now_ms,
                                      atomic_load_explicit(&fw->wanted, memory_order_relaxed)))
                return;
        atomic_store(&fw->wanted, 1);
        pthread_mutex_lock(&fw->mu);
        pthread_cond_signal(&fw->cv);
        pthread_mutex_unlock(&fw->mu);
}

uint64_t dmp_fetchwake_rounds(dmp_fetchwake_t *fw) {
        return fw ? atomic_load(&fw->rounds) : 0;
}

void dmp_fetchwake_destroy(dmp_fetchwake_t *fw) {
        if (!fw)
                return;
        pthread_mutex_lock(&fw->mu);
        fw->stop = 1;
        pthread_cond_signal(&fw->cv);
        pthread_mutex_unlock(&fw->mu);
        pthread_join(fw->thread, NULL);
        pthread_cond_destroy(&fw->cv);
        pthread_mutex_destroy(&fw->mu);
        free(fw);
}
