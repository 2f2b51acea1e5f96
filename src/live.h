/* What the live page (GET / of the HTTP endpoint, admin.h; src/web/)
 * shows, as the two JSON documents the page and scripts read
 * (docs/METRICS.md has their fields):
 *   /api/status   how it runs: the figures of /metrics (metrics.h), the
 *                 last 5 minutes of events/s, results/s and watermark lag
 *                 (one sample a second), the last dead letters, the window
 *                 definitions;
 *   /api/results  what it computed: per window definition and measure the
 *                 top keys (by sum) of the latest closed window; per
 *                 windowed group statistic the means of the last windows;
 *                 the last patterns found.
 *
 * The processing thread feeds it the window results and group results it
 * publishes; patterns are read from the groups' own recent lists. It keeps
 * bounded copies (DMP_LIVE_* below) and never touches the hot path when
 * the endpoint is off (the daemon then has no live view).
 *
 * Ownership: borrows the engine and the configuration, which outlive it.
 * Threads: the processing thread only. */
#ifndef DMP_LIVE_H
#define DMP_LIVE_H

#include <stdint.h>

#include "config.h"
#include "engine.h"
#include "groups.h"
#include "metrics.h"
#include "util.h"

#define DMP_LIVE_HISTORY 300 /* one-second samples */
#define DMP_LIVE_TOP 10      /* keys per window definition and measure */
#define DMP_LIVE_SERIES 48   /* group values charted, over all group statistics */
#define DMP_LIVE_POINTS 30   /* windows per group value */
#define DMP_LIVE_PATTERNS 50 /* patterns in the feed */
#define DMP_LIVE_KEY_MAX 200 /* bytes of a key or group value kept (longer: cut, flagged) */

typedef struct dmp_live dmp_live_t;

dmp_live_t *dmp_live_new(const dmp_conf_t *conf, dmp_engine_t *e);
void dmp_live_destroy(dmp_live_t *l);

/* A window result being published (only final ones are kept). */
void dmp_live_result(dmp_live_t *l, const dmp_result_t *r);
/* A group result being published (only windowed ones are kept). */
void dmp_live_group(dmp_live_t *l, const dmp_group_result_t *r);

/* Takes a sample if a second has passed since the last one, then builds
 * the documents: /api/status (with in, the figures of /metrics) into
 * status and /api/results into results. */
void dmp_live_format(dmp_live_t *l, const dmp_metrics_input_t *in, dmp_buf_t *status,
                     dmp_buf_t *results);

#endif
