/* Live state queries of the HTTP endpoint (admin.h), answered on the
 * processing thread from the engine:
 *   windows/<window>/<key>       the key's windows of a tumbling or hopping
 *                                definition as of the last commit (RocksDB)
 *   groups/<group>[/<value>]     running group statistics, combined over the
 *                                partitions (live: up to the last event)
 *   patterns/<pattern>?last=N    the last N (<= 100, default 10) published
 * JSON bodies; errors are {"error": "..."} with 400 or 404. */
#ifndef DMP_QUERY_H
#define DMP_QUERY_H

#include "engine.h"
#include "groups.h"
#include "util.h"

/* path: after "/state/"; last: the ?last= argument (0: absent). Returns the
 * HTTP status; the body is appended to out. */
int dmp_query_answer(dmp_engine_t *e, const char *path, int last, dmp_buf_t *out);

/* Appends a pattern record as the JSON object /state/patterns lists. */
void dmp_query_pattern_json(dmp_buf_t *b, const dmp_pattern_result_t *r);

#endif
