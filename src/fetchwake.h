/* Keeps the consumer's fetcher going while its local queue stays short.
 *
 * librdkafka decides whether to fetch a partition again only when its
 * broker thread wakes up. Once the consumer queue holds queued.min.messages
 * (or queued.max.messages.kbytes), the broker thread stops fetching and
 * sleeps until network IO, an op for it, or a fixed 1 s timeout; draining
 * the queue does not wake it. librdkafka 2.3 added fetch.queue.backoff.ms
 * for this (librdkafka issue 2879); Debian 12 ships 2.0. Without a wake-up,
 * a short queue (little memory) means the consumer idles up to 1 s at a
 * time, and a fast one needs a queue holding a second of input (~400 bytes
 * per message beyond its payload: hundreds of MB at 10^6 events/s).
 *
 * The waker gives back the short queue's speed: when the processing thread
 * sees the queue drop below queued.min.messages after it was full enough
 * for a broker thread to have stopped fetching, a helper thread sends one
 * ListOffsets request to the leader of each assigned partition
 * (rd_kafka_offsets_for_times: one request per broker). The request is an
 * op on that broker's thread, which wakes it, and the thread then fetches
 * for every partition under the threshold. A broker thread can only have
 * stopped when the queue held >= queued.min.messages, and between two pokes
 * the processing thread takes at most `drain` messages, so a poke that saw
 * fewer than queued.min.messages - drain needs no round unless one was seen
 * since the last round (or DMP_FETCHWAKE_RETRY_MS passed: a round that
 * reached no broker). At most one round per DMP_FETCHWAKE_MIN_INTERVAL_US.
 *
 * With librdkafka >= 2.3, dmp_fetchwake_needed() is false: the daemon sets
 * fetch.queue.backoff.ms instead and starts no waker.
 *
 * Threads: new, poke and destroy on the consumer's poll thread (poke is a
 * load and a compare unless the queue is short); the rounds on the waker's
 * own thread ("dmp:fetchwake"). */
#ifndef DMP_FETCHWAKE_H
#define DMP_FETCHWAKE_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#define DMP_FETCHWAKE_MIN_INTERVAL_US 1000
#define DMP_FETCHWAKE_TIMEOUT_MS 1000 /* one round's ListOffsets wait */
#define DMP_FETCHWAKE_RETRY_MS 100

typedef struct dmp_fetchwake dmp_fetchwake_t;

/* The decision alone (poll thread; exposed for tests). */
typedef struct dmp_fetchwake_gate {
        size_t queue_min, drain;
        int armed;            /* a broker thread may have stopped since the last wake */
        int64_t last_wake_ms; /* when the last wake was asked for */
} dmp_fetchwake_gate_t;

/* Whether a poke that saw queue_len at now_ms asks for a round (and then
 * records it); busy: a round is already asked for (never a second one). */
int dmp_fetchwake_gate_check(dmp_fetchwake_gate_t *g, size_t queue_len, int64_t now_ms,
                             int busy);

/* Whether the linked librdkafka lacks fetch.queue.backoff.ms (< 2.3). */
int dmp_fetchwake_needed(void);

/* Starts the waker for consumer (borrowed: destroy the waker first), whose
 * queued.min.messages is queue_min and whose processing thread takes at most
 * drain messages between two pokes. Returns NULL with errstr if the thread
 * cannot start. */
dmp_fetchwake_t *dmp_fetchwake_new(rd_kafka_t *consumer, size_t queue_min, size_t drain,
                                   char *errstr, size_t errstr_size);

/* The processing thread's report of the consumer queue's length
 * (rd_kafka_queue_length of the consumer queue) at now_ms (dmp_mono_ms). */
void dmp_fetchwake_poke(dmp_fetchwake_t *fw, size_t queue_len, int64_t now_ms);

/* Wake-up rounds done so far (any thread; 0 for NULL). */
uint64_t dmp_fetchwake_rounds(dmp_fetchwake_t *fw);

/* Stops and joins the thread (waits for a round in progress). NULL is a no-op. */
void dmp_fetchwake_destroy(dmp_fetchwake_t *fw);

#endif
