/* Mergeable running statistics of one measure: count, sum, min, max, mean
 * and M2 (sum of squared deviations), updated with Welford's algorithm and
 * combined with Chan et al.'s parallel formula, so partial aggregates (per
 * partition, per session fragment, per instance) merge exactly. */
#ifndef DMP_AGG_H
#define DMP_AGG_H

#include <math.h>
#include <stdint.h>

typedef struct dmp_agg {
        int64_t count;
        double sum;
        double min;
        double max;
        double mean;
        double m2;
} dmp_agg_t;

static inline void dmp_agg_init(dmp_agg_t *a) {
        a->count = 0;
        a->sum = a->mean = a->m2 = 0.0;
        a->min = INFINITY;
        a->max = -INFINITY;
}

static inline void dmp_agg_add(dmp_agg_t *a, double x) {
        a->count++;
        a->sum += x;
        if (x < a->min)
                a->min = x;
        if (x > a->max)
                a->max = x;
        double d = x - a->mean;
        a->mean += d / (double)a->count;
        a->m2 += d * (x - a->mean);
}

/* a += b (Chan's merge). */
static inline void dmp_agg_merge(dmp_agg_t *a, const dmp_agg_t *b) {
        if (b->count == 0)
                return;
        if (a->count == 0) {
                *a = *b;
                return;
        }
        double n = (double)(a->count + b->count);
        double d = b->mean - a->mean;
        a->mean += d * (double)b->count / n;
        a->m2 += b->m2 + d * d * (double)a->count * (double)b->count / n;
        a->count += b->count;
        a->sum += b->sum;
        if (b->min < a->min)
                a->min = b->min;
        if (b->max > a->max)
                a->max = b->max;
}

/* Population variance M2/n; 0 for an empty aggregate. */
static inline double dmp_agg_variance(const dmp_agg_t *a) {
        return a->count > 0 ? a->m2 / (double)a->count : 0.0;
}

static inline double dmp_agg_stddev(const dmp_agg_t *a) {
        return sqrt(dmp_agg_variance(a));
}

#endif
