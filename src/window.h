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
        DMP_WINDOW_SLIDING, /* Kafka Streams' SlidingWindows */
        DMP_WINDOW_SESSION,
} dmp_window_kind_t;

typedef enum {
        DMP_EMIT_FINAL,  /* one result per window, when it closes */
        DMP_EMIT_UPDATE, /* a result per changed window per commit interval */
} dmp_emit_mode_t;

typedef struct dmp_window {
        char *name; /* owned */
        dmp_window_kind_t kind;
        int64_t size;      /* tumbling, hopping; sliding: time difference + 1 */
        int64_t advance;   /* hopping; == size for tumbling */
        int64_t gap;       /* session: inactivity gap */
        int64_t grace;
        int64_t retention; /* how long emitted windows stay in state */
        dmp_emit_mode_t emit;
        int nmeasures;
        int measures[32]; /* indexes into the engine's measures */
} dmp_window_t;

/* Kinds whose windows depend on the events (per-key state, scheduled). */
static inline int dmp_window_is_keyed(const dmp_window_t *w) {
        return w->kind == DMP_WINDOW_SLIDING || w->kind == DMP_WINDOW_SESSION;
}

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

/* dmp_window_last_start through a memo the caller keeps between calls:
 * *memo is any multiple of advance (0 to begin with) and ends as t's
 * start. While the times stay within one advance of it, as in-order events
 * do, no 64-bit division is done (one per window bound per event was a
 * visible part of the core pipeline's time). */
static inline int64_t dmp_window_last_start_memo(const dmp_window_t *w, int64_t t, int64_t *memo) {
        /* t < *memo wraps to a difference >= advance */
        if ((uint64_t)t - (uint64_t)*memo >= (uint64_t)w->advance)
                *memo = dmp_window_last_start(w, t);
        return *memo;
}

/* dmp_window_first_start through a memo, as above: the first start is the
 * last start of t - size, plus advance. */
static inline int64_t dmp_window_first_start_memo(const dmp_window_t *w, int64_t t,
                                                  int64_t *memo) {
        return dmp_window_last_start_memo(w, t - w->size, memo) + w->advance;
}

/* Whether window [start, start+size) is closed at stream time st. */
static inline int dmp_window_closed(const dmp_window_t *w, int64_t start, int64_t st) {
        return start + w->size + w->grace <= st;
}

/* A session [start, last + 1) closes when st >= last + 1 + gap + grace: until
 * then an event within the gap may still extend it (Kafka Streams' rule). */
static inline int64_t dmp_session_close_time(const dmp_window_t *w, int64_t last) {
        return last + 1 + w->gap + w->grace;
}

#endif
