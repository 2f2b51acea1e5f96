/* See test_sink.h. */
#include "test_sink.h"

static void on_result(void *opaque, const dmp_result_t *r) {
        test_sink_t *ts = opaque;
        if (ts->result)
                ts->result(ts->result_opaque, r);
}

static void on_group(void *opaque, const dmp_group_result_t *r) {
        test_sink_t *ts = opaque;
        if (ts->group)
                ts->group(ts->group_opaque, r);
}

static void on_pattern(void *opaque, const dmp_pattern_result_t *r) {
        test_sink_t *ts = opaque;
        if (ts->pattern)
                ts->pattern(ts->pattern_opaque, r);
}

static void on_late(void *opaque, const dmp_late_record_t *r) {
        test_sink_t *ts = opaque;
        ts->late_mask = r->late_mask;
        ts->late_records++;
}

static int on_caught_up(void *opaque, int32_t partition, int64_t next_offset) {
        (void)partition;
        (void)next_offset;
        return ((test_sink_t *)opaque)->caught_up;
}

const dmp_engine_sink_t *test_sink_init(test_sink_t *ts) {
        ts->sink = (dmp_engine_sink_t){.result = on_result,
                                       .group = on_group,
                                       .pattern = on_pattern,
                                       .late = on_late,
                                       .caught_up = on_caught_up,
                                       .opaque = ts};
        return &ts->sink;
}
