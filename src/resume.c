/* A stored offset against the log (resume.h). */
#include "resume.h"

#include <stdio.h>

dmp_resume_t dmp_resume_classify(int64_t stored, int64_t start, int64_t end) {
        if (stored > end)
                return DMP_RESUME_BEYOND_END;
        if (stored < start)
                return DMP_RESUME_BELOW_START;
        return DMP_RESUME_OK;
}

dmp_resume_t dmp_resume_check(rd_kafka_t *rk, const char *topic, int32_t partition,
                              int64_t stored, int64_t *start, int64_t *end, int timeout_ms,
                              char *errstr, size_t errstr_size) {
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, topic, partition, start,
                                                                   end, timeout_ms);
        if (err) {
                snprintf(errstr, errstr_size, "%s", rd_kafka_err2str(err));
                return DMP_RESUME_UNKNOWN;
        }
        return dmp_resume_classify(stored, *start, *end);
}
