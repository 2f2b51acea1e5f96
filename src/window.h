/* Window definitions and the assignment of an event time to windows.
 * All windows are half-open [start, start + size) in epoch ms, aligned to
 * epoch 0. A window closes when the partition's stream time reaches
 * end + grace (Kafka Streams' rule). */
#ifndef DMP_WINDOW_H
#define DMP_WINDOW_H

#include <stdint.h>

#include "util.h"

typedef enum {
        DMP_WINDOW_TUMBLING,
        DMP_WINDOW_HOPPING,
} dmp_window_kind_t;

typedef struct dmp_window {
        char *name; /* owned */
        dmp_window_kind_t kind;
        int64_t size;
        int64_t advance; /* == size for tumbling */
        int64_t grace;
        int nmeasures;
        int measures[32]; /* indexes into the engine's measures */
} dmp_window_t;

const char *dmp_window_kind_name(dmp_window_kind_t kind);

/* The start of the latest window containing t. */
static inline int64_t dmp_window_last_start(const dmp_window_t *w, int64_t t) {
        return dmp_floor_div(t, w->advance) * w->advance;
}

/* The start of the earliest window containing t. */
static inline int64_t dmp_window_first_start(const dmp_window_t *w, int64_t t) {
        /* smallest multiple of advance that is > t - size */
        return (dmp_floor_div(t - w->size, w->advance) + 1) * w->advance;
}

/* Whether window [start, start+size) is closed at stream time st. */
static inline int dmp_window_closed(const dmp_window_t *w, int64_t start, int64_t st) {
        return start + w->size + w->grace <= st;
}

#endif
