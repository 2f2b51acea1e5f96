/* The librdkafka configurations of the daemon's Kafka clients, built in one
 * place so that `dmpflow check` and `dmpflow run` build them alike:
 * client.id and the log callback, every [kafka] property in file order
 * (then -o overrides), then dmpflow's defaults for the client's role where
 * [kafka] does not set them (docs/PERFORMANCE.md has the figures behind
 * the consumer's).
 *
 * Errors are configuration errors, added to conf: an invalid property as
 * "file:line: [kafka] name: <librdkafka's message>" (an override: "-o:
 * ..."). librdkafka checks some combinations only when a client is created
 * (acks with enable.idempotence, an ssl.ca.location that cannot be read),
 * so dmp_kafkaconf_client reports those the same way, at the line of the
 * property its message names.
 *
 * librdkafka's log lines go to dmpflow's log (log.h) through
 * dmp_log_repeated: one class per facility and message with the numbers
 * blanked out, so that its reconnect lines ("Connect to ... failed:
 * Connection refused", once per backoff) are counted, not repeated.
 *
 * Threads: the caller's; conf must not change meanwhile. The log callback
 * runs on librdkafka's threads. */
#ifndef DMP_KAFKACONF_H
#define DMP_KAFKACONF_H

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "util.h"

typedef enum { DMP_KAFKA_PRODUCER, DMP_KAFKA_CONSUMER } dmp_kafka_role_t;

/* A new configuration for a client of role; NULL after adding the errors
 * to conf ([kafka] bootstrap.servers is required). The caller adds its callbacks and opaque. */
rd_kafka_conf_t *dmp_kafkaconf_new(dmp_conf_t *conf, dmp_kafka_role_t role);

/* Creates the client (taking kc: freed on failure too); NULL after adding
 * librdkafka's refusal to conf. */
rd_kafka_t *dmp_kafkaconf_client(dmp_conf_t *conf, dmp_kafka_role_t role, rd_kafka_conf_t *kc);

/* librdkafka's log lines of a client whose configuration is built
 * elsewhere (the changelog's restorer) go to dmpflow's log, as above. */
void dmp_kafkaconf_log_to_dmpflow(rd_kafka_conf_t *kc);

/* `dmpflow check`: both clients can be created as the daemon creates them
 * (each destroyed at once). librdkafka's configuration warnings (e.g. a
 * deprecated property) go to notes (may be NULL), a line each; its other
 * lines are dropped. Returns the number of errors added. */
int dmp_kafkaconf_check(dmp_conf_t *conf, dmp_buf_t *notes);

/* The log class of a librdkafka line: fac, then buf with every run of
 * digits as one '#' (ports, timings, counts differ from line to line) and
 * without the " (after Nms in state ...)" of its connection errors. */
void dmp_kafkaconf_log_class(const char *fac, const char *buf, char *cls, size_t size);

#endif
