/* An engine sink for tests: the engine's sink has one opaque for all its
 * callbacks, tests like one per callback (results into one recorder, group
 * results into another). Also records late records and answers caught_up.
 * The test_sink_t must outlive the engine built with it. */
#ifndef DMP_TEST_SINK_H
#define DMP_TEST_SINK_H

#include <stdint.h>

#include "engine.h"

typedef struct test_sink {
        void (*result)(void *opaque, const dmp_result_t *r); /* each may be NULL */
        void *result_opaque;
        void (*group)(void *opaque, const dmp_group_result_t *r);
        void *group_opaque;
        void (*pattern)(void *opaque, const dmp_pattern_result_t *r);
        void *pattern_opaque;
        uint32_t late_mask;    /* of the last late record (the test resets it) */
        uint64_t late_records; /* late records seen */
        int caught_up;         /* what caught_up answers for every partition */
        dmp_engine_sink_t sink; /* test_sink_init's: calls the above */
} test_sink_t;

/* Fills ts->sink with callbacks that forward to ts's; returns it. */
const dmp_engine_sink_t *test_sink_init(test_sink_t *ts);

#endif
