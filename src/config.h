/* Configuration: one INI file, every property declared once in the table in
 * config.c (section, name, type, default, range, help). The table drives
 * parsing, validation (errors as "file:line: message"), defaults and
 * `dmpflow --help-config`. [kafka] properties pass through to librdkafka. */
#ifndef DMP_CONFIG_H
#define DMP_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "log.h"
#include "util.h"
#include "window.h"

#define DMP_MAX_MEASURES 32
#define DMP_MAX_WINDOWS  32
#define DMP_MAX_PROPS    24 /* properties per section kind (checked by dmp_conf_new) */
#define DMP_MAX_HOPS     1000 /* hopping windows per event */
#define DMP_MAX_GROUPS   8    /* [group NAME] sections (one label field each) */
#define DMP_MAX_PATTERNS 32

/* Enumerated properties: the property table (config.c) maps each value's
 * name to these once, at parsing; the rest of the code never sees the text.
 * A required enum that is not set holds -1. */
typedef enum { DMP_FORMAT_AVRO, DMP_FORMAT_CONFLUENT } dmp_input_format_t;
typedef enum { DMP_RESET_EARLIEST, DMP_RESET_LATEST } dmp_offset_reset_t;
typedef enum { DMP_NONFINITE_DEAD_LETTER, DMP_NONFINITE_ACCEPT } dmp_nonfinite_t;
typedef enum { DMP_LOG_TEXT, DMP_LOG_JSON } dmp_log_format_t;
typedef enum { DMP_MISMATCH_STOP, DMP_MISMATCH_RESET } dmp_offset_mismatch_t;
typedef enum { DMP_PATTERN_TOPK, DMP_PATTERN_ANOMALY, DMP_PATTERN_THRESHOLD } dmp_pattern_kind_t;
typedef enum { DMP_STAT_MEAN, DMP_STAT_SUM, DMP_STAT_COUNT, DMP_STAT_MIN, DMP_STAT_MAX } dmp_stat_t;
typedef enum { DMP_ORDER_DESC, DMP_ORDER_ASC } dmp_order_t;
typedef enum { DMP_AT_LEAST_ONCE, DMP_EXACTLY_ONCE } dmp_guarantee_t;

typedef struct dmp_kv {
        char *name;
        char *value;
        int line;
} dmp_kv_t;

typedef struct dmp_input_conf {
        char *topic;
        char *group_id;
        dmp_input_format_t format;
        char *schema;
        char *reader_schema;
        char *key_field;
        char *time_field;
        dmp_offset_reset_t auto_offset_reset;
        int64_t idle_timeout_ms;
        dmp_nonfinite_t nonfinite;
        char *registry_url;
        char *registry_auth;
        char *registry_ca;
        int64_t registry_timeout_ms;
        int64_t registry_pause_ms;
        int64_t registry_cache_size;
        int64_t registry_startup_timeout_ms; /* 0: wait forever */
        int64_t startup_timeout_ms; /* for the Kafka cluster; 0: wait forever */
        int line[DMP_MAX_PROPS];
} dmp_input_conf_t;

typedef struct dmp_state_conf {
        char *dir;
        int64_t commit_interval_ms;
        int64_t memory_budget; /* bytes; 0: derived (dmp_state_memory_budget) */
        dmp_guarantee_t guarantee;
        int changelog_enable;      /* 0 or 1 */
        char *changelog_topic;     /* "": <group.id>-changelog */
        int64_t changelog_replication_factor; /* -1: the broker's default */
        dmp_offset_mismatch_t on_offset_mismatch; /* resume.h */
        int line[DMP_MAX_PROPS];
} dmp_state_conf_t;

typedef struct dmp_output_conf {
        char *topic;
        char *late_topic;
        char *dlq_topic;
        int line[DMP_MAX_PROPS];
} dmp_output_conf_t;

typedef struct dmp_http_conf {
        char *address;
        int64_t port; /* 0: no endpoint */
        char *auth_user_info; /* basic auth "user:password"; "": none */
        int line[DMP_MAX_PROPS];
} dmp_http_conf_t;

typedef struct dmp_log_conf {
        dmp_log_level_t level;
        dmp_log_format_t format;
        char *file;   /* "": stderr */
        int64_t repeat_interval_ms; /* log.h dmp_log_repeated; 0: every line */
        int line[DMP_MAX_PROPS];
} dmp_log_conf_t;

typedef struct dmp_measure_conf {
        char *name;
        char *expr;
        int line[DMP_MAX_PROPS];
        int section_line;
} dmp_measure_conf_t;

typedef struct dmp_window_conf {
        char *name;
        dmp_window_kind_t type;
        int64_t size_ms;
        int64_t advance_ms;
        int64_t grace_ms;
        int64_t gap_ms;
        int64_t retention_ms;
        char *measures;
        dmp_emit_mode_t emit;
        int line[DMP_MAX_PROPS];
        int section_line;
} dmp_window_conf_t;

typedef struct dmp_group_conf {
        char *name;
        char *field;          /* the event field whose value is the group */
        char *bucket_measure; /* or: a measure, grouped in buckets of bucket_width */
        double bucket_width;  /* NAN: not set */
        char *measures;       /* comma-separated; empty: all */
        char *windows;        /* window definitions of windowed group statistics */
        char *topic;
        int line[DMP_MAX_PROPS];
        int section_line;
} dmp_group_conf_t;

typedef struct dmp_pattern_conf {
        char *name;
        dmp_pattern_kind_t kind; /* -1: not set */
        char *window;
        char *source; /* key | group:NAME */
        char *measure;
        dmp_stat_t stat;
        int64_t k;
        dmp_order_t order;
        double z;
        int64_t min_count;
        double above, below; /* NAN: not set */
        int64_t consecutive;
        char *topic;
        int line[DMP_MAX_PROPS];
        int section_line;
} dmp_pattern_conf_t;

typedef struct dmp_conf {
        char *path;
        dmp_kv_t *kafka;
        int kafka_cnt;
        dmp_input_conf_t input;
        dmp_state_conf_t state;
        dmp_output_conf_t output;
        dmp_log_conf_t log;
        dmp_http_conf_t http;
        dmp_measure_conf_t measures[DMP_MAX_MEASURES];
        int measure_cnt;
        dmp_window_conf_t windows[DMP_MAX_WINDOWS];
        int window_cnt;
        dmp_group_conf_t groups[DMP_MAX_GROUPS];
        int group_cnt;
        dmp_pattern_conf_t patterns[DMP_MAX_PATTERNS];
        int pattern_cnt;
        /* Errors found so far, one "file:line: message" per line. */
        char *errors;
        size_t errors_len;
        int error_cnt;
} dmp_conf_t;

/* Creates a configuration holding only defaults. Never fails. */
dmp_conf_t *dmp_conf_new(void);
void dmp_conf_destroy(dmp_conf_t *conf);

/* Parses FILE into conf. Returns the number of errors (0 on success); the
 * messages are in conf->errors. */
int dmp_conf_load_file(dmp_conf_t *conf, const char *path);

/* Parses INI text (for tests), errors are reported against `name`. */
int dmp_conf_load_string(dmp_conf_t *conf, const char *name, const char *text);

/* Applies "section.name=value" (e.g. "kafka.bootstrap.servers=host:9092",
 * "state.dir=/tmp/s") as if it were in the file. Returns errors added. */
int dmp_conf_set_override(dmp_conf_t *conf, const char *assignment);

/* Checks required properties and cross references. Returns errors added. */
int dmp_conf_validate(dmp_conf_t *conf);

/* Adds an error "file:line: message" (line <= 0: "file: message"). */
void dmp_conf_error(dmp_conf_t *conf, int line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* The line where [section] name was set (0 if not set in the file), for
 * errors found after parsing. section is a singleton: input, state, ... */
int dmp_conf_line(const dmp_conf_t *conf, const char *section, const char *name);

/* Looks up a [kafka] property; NULL if not set. */
const char *dmp_conf_kafka_get(const dmp_conf_t *conf, const char *name);

/* Index of the measure / window named name[0..len) or [group name], or -1. */
int dmp_conf_find_measure(const dmp_conf_t *conf, const char *name, size_t len);
int dmp_conf_find_window(const dmp_conf_t *conf, const char *name, size_t len);
int dmp_conf_find_group(const dmp_conf_t *conf, const char *name);

/* The name of value v of enumerated property [section] name, from the
 * property table (e.g. ("pattern", "stat", DMP_STAT_SUM) is "sum"); NULL if
 * there is no such property or value. */
const char *dmp_conf_enum_name(const char *section, const char *name, int v);

/* Parses a finite number: 0, or -1 if s is not one. */
int dmp_conf_parse_double(const char *s, double *out);

/* Whether a property's value is a secret (passwords, keys, SASL and
 * registry credentials): never printed. */
int dmp_conf_is_secret(const char *name);

/* The effective configuration, one "[section] name = value" line per
 * property (defaults included, [kafka] as given), secrets redacted and
 * user:password@ in URLs masked. */
void dmp_conf_dump(const dmp_conf_t *conf, dmp_buf_t *out);

/* Prints the property reference (--help-config); markdown if md != 0. */
void dmp_conf_print_reference(FILE *fp, int md);

#endif
