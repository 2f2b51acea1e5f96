/* Partitions that wait: a partition whose next record cannot be processed
 * yet (its writer schema is in a registry that does not answer) is paused
 * and sought back to that record, then resumed after a delay and the
 * record read again, so nothing is skipped.
 *
 * Threads: the processing thread (the consumer's poll thread). */
#ifndef DMP_PAUSE_H
#define DMP_PAUSE_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

typedef struct dmp_pauses dmp_pauses_t;

dmp_pauses_t *dmp_pauses_new(rd_kafka_t *consumer);
void dmp_pauses_destroy(dmp_pauses_t *ps);

/* Pauses m's partition, seeks it back to m and schedules its resumption in
 * delay_ms. Returns 0, or -1 with errstr if the seek failed. */
int dmp_pauses_add(dmp_pauses_t *ps, const rd_kafka_message_t *m, int64_t delay_ms,
                   const char *why, char *errstr, size_t errstr_size);

/* Whether the partition is paused now: its records still in hand (e.g. in
 * the rest of a consumed batch) must not be processed; they are read again
 * after the resumption. */
int dmp_pauses_is_paused(const dmp_pauses_t *ps, int32_t partition);

/* Resumes the partitions whose time has come (now: dmp_mono_ms()). */
void dmp_pauses_resume_due(dmp_pauses_t *ps, int64_t now);

/* Forgets a partition (revoked). */
void dmp_pauses_forget(dmp_pauses_t *ps, int32_t partition);

#endif
