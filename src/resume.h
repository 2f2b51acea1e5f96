/* Where a partition's input resumes, checked against its log (issue 22).
 * The state records each partition's next offset (store.h); on assignment
 * the input resumes there, never at the group's committed offset. The log
 * may no longer hold that offset:
 *  - beyond the log end offset: the topic was deleted and re-created, the
 *    state directory points at another cluster, or the log was truncated
 *    after an unclean leader election. The state is of input that is not
 *    there: resuming would skip every new record below the stored offset as
 *    already applied (librdkafka resets an out-of-range fetch to the
 *    beginning, dmp_engine_wants() then drops what comes), and the stored
 *    stream time would make new events late. The daemon stops (exit 2)
 *    unless [state] on.offset.mismatch = reset, which discards the
 *    partition's state and starts it over.
 *  - below the log start offset: retention (or DeleteRecords) removed input
 *    before it was read. Those records are lost: a warning with their count,
 *    a metric, and the input resumes at the log start.
 * Threads: the caller's (the consumer's poll thread: it blocks for a
 * ListOffsets round trip). */
#ifndef DMP_RESUME_H
#define DMP_RESUME_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

typedef enum {
        DMP_RESUME_OK,          /* start <= stored <= end */
        DMP_RESUME_BEYOND_END,  /* stored > end */
        DMP_RESUME_BELOW_START, /* stored < start: start - stored records lost */
        DMP_RESUME_UNKNOWN,     /* the log's offsets could not be asked (errstr) */
} dmp_resume_t;

/* Classifies a stored next offset against the log's start and end. */
dmp_resume_t dmp_resume_classify(int64_t stored, int64_t start, int64_t end);

/* Asks the partition's leader for its log start and end offsets (*start,
 * *end; at most timeout_ms) and classifies stored. */
dmp_resume_t dmp_resume_check(rd_kafka_t *rk, const char *topic, int32_t partition,
                              int64_t stored, int64_t *start, int64_t *end, int timeout_ms,
                              char *errstr, size_t errstr_size);

#endif
