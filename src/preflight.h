/* The checks of a configuration that `dmpflow check` makes, and that
 * `dmpflow run` makes before it starts anything: run and check agree
 * because both are this code. Beyond the parsing and validation of
 * config.c:
 *  - the pipeline compiles against the input schemas (engine.h: measures,
 *    windows, groups, patterns);
 *  - [kafka]: the producer's and the consumer's librdkafka configurations
 *    are built, and the clients created, as the daemon does (kafkaconf.h);
 *  - [state] dir: it exists and is writable, or it can be created, and a
 *    store in it holds this pipeline's state (store.h dmp_store_probe).
 * What is not wrong with the configuration but keeps run from starting
 * now (the state directory held by a running instance, the HTTP port
 * taken) goes to notes, a line each.
 * Threads: the caller's; nothing stays open. */
#ifndef DMP_PREFLIGHT_H
#define DMP_PREFLIGHT_H

#include "config.h"
#include "util.h"

/* Returns the number of "file:line: message" errors added to conf; notes
 * may be NULL. conf must be validated (dmp_conf_validate). */
int dmp_preflight(dmp_conf_t *conf, dmp_buf_t *notes);

#endif
