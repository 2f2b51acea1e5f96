/* dmpflow: a stream processor for real-time aggregation on Kafka.
 *
 * The daemon is a library with a thin main: everything hangs off a handle
 * passed explicitly, so tests and the demo run the whole pipeline
 * in-process. */
#ifndef DMPFLOW_H
#define DMPFLOW_H

#include <stddef.h>
#include <stdint.h>

#define DMPFLOW_VERSION "0.1.0"

/* Exit codes of the dmpflow command. */
#define DMP_EXIT_OK      0
#define DMP_EXIT_FAILURE 1 /* runtime failure */
#define DMP_EXIT_USAGE   2 /* bad configuration or usage */

typedef struct dmp_conf dmp_conf_t;
typedef struct dmp_daemon dmp_daemon_t;

/* Creates the daemon: the engine (schema, measures, windows, state store),
 * a consumer in the configured group and a producer. conf must be
 * validated and outlive the daemon. On a configuration problem it adds
 * errors to conf, sets *config_error and returns NULL; on another failure
 * it returns NULL with errstr set. */
dmp_daemon_t *dmp_daemon_new(dmp_conf_t *conf, int *config_error, char *errstr,
                             size_t errstr_size);

/* Runs until dmp_daemon_stop(); then publishes pending results, commits
 * state and offsets and leaves the group. Returns 0, -1 on a runtime
 * failure, or -2 when the stored state does not match the input and an
 * operator must decide (a stored offset beyond its partition's log end:
 * exit code 2); errstr set. @locality: the processing thread. */
int dmp_daemon_run(dmp_daemon_t *d, char *errstr, size_t errstr_size);

/* Asks a running daemon to stop. Async-signal-safe; any thread. */
void dmp_daemon_stop(dmp_daemon_t *d);

/* Frees everything; works on a daemon that never ran. */
void dmp_daemon_destroy(dmp_daemon_t *d);

typedef struct dmp_daemon_counters {
        uint64_t events_in;
        uint64_t decode_errors;
        uint64_t late_events;
        uint64_t results_out;
        uint64_t commits;
        uint64_t partitions;       /* open: restored and processing */
        uint64_t restoring;        /* partitions being restored from the changelog */
        uint64_t restored_records; /* changelog records applied by restores so far */
        int ready;                 /* what /readyz says: assigned, none restoring, no failure */
} dmp_daemon_counters_t;

/* A snapshot of the counters. Any thread (values may be slightly stale). */
void dmp_daemon_counters(const dmp_daemon_t *d, dmp_daemon_counters_t *out);

#endif
