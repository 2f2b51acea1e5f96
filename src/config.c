/* Configuration parsing and validation, driven by one property table. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef enum {
        SEC_KAFKA,
        SEC_INPUT,
        SEC_STATE,
        SEC_OUTPUT,
        SEC_LOG,
        SEC_HTTP,
        SEC_MEASURE,
        SEC_WINDOW,
        SEC_GROUP,
        SEC_PATTERN,
        SEC__CNT
} sec_kind_t;

typedef struct sec_desc {
        const char *name;
        int named;          /* "[window NAME]" */
        size_t line_off;    /* offsetof(struct, line) */
        const char *help;
} sec_desc_t;

static const sec_desc_t sections[SEC__CNT] = {
        [SEC_KAFKA] = {"kafka", 0, 0,
                       "librdkafka properties, passed unchanged to the consumer and the producer"},
        [SEC_INPUT] = {"input", 0, offsetof(dmp_input_conf_t, line), "where events come from"},
        [SEC_STATE] = {"state", 0, offsetof(dmp_state_conf_t, line), "RocksDB state and commits"},
        [SEC_OUTPUT] = {"output", 0, offsetof(dmp_output_conf_t, line), "where results go"},
        [SEC_LOG] = {"log", 0, offsetof(dmp_log_conf_t, line), "logging"},
        [SEC_HTTP] = {"http", 0, offsetof(dmp_http_conf_t, line),
                      "the read-only HTTP endpoint: the live page /, /api, /metrics, /healthz, "
                      "/readyz, /state (docs/METRICS.md)"},
        [SEC_MEASURE] = {"measure", 1, offsetof(dmp_measure_conf_t, line),
                         "a weighted sum f(x) = sum a_i * x_i of numeric fields"},
        [SEC_WINDOW] = {"window", 1, offsetof(dmp_window_conf_t, line),
                        "an event-time window definition over measures"},
        [SEC_GROUP] = {"group", 1, offsetof(dmp_group_conf_t, line),
                       "running and windowed statistics of measures per group (docs/PATTERNS.md)"},
        [SEC_PATTERN] = {"pattern", 1, offsetof(dmp_pattern_conf_t, line),
                         "a pattern mined when a window closes: topk, anomaly or threshold "
                         "(docs/PATTERNS.md)"},
};

/* How a value is stored in its section struct:
 *   PT_STR    char * (owned)
 *   PT_INT    int64_t, within [min, max]
 *   PT_BYTES  int64_t: an integer with an optional k, m or g suffix (powers
 *             of 1024), within [min, max]
 *   PT_ENUM   an enum (int-sized): the value of the name in s2i; -1 when a
 *             property without a default is not set
 *   PT_DOUBLE double, finite; "" (and no default) is NAN: not set */
typedef enum { PT_STR, PT_INT, PT_ENUM, PT_BYTES, PT_DOUBLE } prop_type_t;

#define PROP_S2I_MAX 8

typedef struct prop {
        sec_kind_t sec;
        const char *name;
        prop_type_t type;
        const char *def;   /* NULL: no default */
        int64_t min, max;  /* PT_INT / PT_BYTES range */
        struct {
                int val;
                const char *str; /* NULL ends the list */
        } s2i[PROP_S2I_MAX]; /* PT_ENUM: the names and their values (librdkafka's .s2i) */
        size_t off;        /* offset of the value in the section struct */
        const char *help;
} prop_t;

/* PT_ENUM values are stored through an int. */
_Static_assert(sizeof(dmp_input_format_t) == sizeof(int) &&
                       sizeof(dmp_offset_reset_t) == sizeof(int) &&
                       sizeof(dmp_nonfinite_t) == sizeof(int) &&
                       sizeof(dmp_log_level_t) == sizeof(int) &&
                       sizeof(dmp_log_format_t) == sizeof(int) &&
                       sizeof(dmp_offset_mismatch_t) == sizeof(int) &&
                       sizeof(dmp_window_kind_t) == sizeof(int) &&
                       sizeof(dmp_emit_mode_t) == sizeof(int) &&
                       sizeof(dmp_pattern_kind_t) == sizeof(int) &&
                       sizeof(dmp_stat_t) == sizeof(int) && sizeof(dmp_order_t) == sizeof(int),
               "enum properties are stored as int");

#define IN(f)  offsetof(dmp_input_conf_t, f)
#define ST(f)  offsetof(dmp_state_conf_t, f)
#define OUT(f) offsetof(dmp_output_conf_t, f)
#define LG(f)  offsetof(dmp_log_conf_t, f)
#define HT(f)  offsetof(dmp_http_conf_t, f)
#define MS(f)  offsetof(dmp_measure_conf_t, f)
#define WN(f)  offsetof(dmp_window_conf_t, f)
#define GR(f)  offsetof(dmp_group_conf_t, f)
#define PA(f)  offsetof(dmp_pattern_conf_t, f)

/* The property table: the single declaration of every property. */
static const prop_t props[] = {
        {SEC_INPUT, "topic", PT_STR, NULL, 0, 0, {{0}}, IN(topic),
         "Input topic (required). Events of one key must be in one partition."},
        {SEC_INPUT, "group.id", PT_STR, "dmpflow", 0, 0, {{0}}, IN(group_id),
         "Consumer group; instances with the same group.id share the partitions."},
        {SEC_INPUT, "format", PT_ENUM, "avro", 0, 0,
         {{DMP_FORMAT_AVRO, "avro"}, {DMP_FORMAT_CONFLUENT, "confluent"}}, IN(format),
         "Input encoding. avro: raw Avro binary written with `schema`. confluent: the "
         "Confluent wire format (byte 0, a 4-byte schema id, Avro); writer schemas come from "
         "the schema registry at registry.url and are read as reader.schema (or schema)."},
        {SEC_INPUT, "schema", PT_STR, NULL, 0, 0, {{0}}, IN(schema),
         "Path of the writer schema (.avsc) of the input events (required for format=avro)."},
        {SEC_INPUT, "reader.schema", PT_STR, "", 0, 0, {{0}}, IN(reader_schema),
         "Path of the reader schema (.avsc): the fields the pipeline reads, with their types "
         "and defaults. Records are read from the writer schema by the Avro resolution rules "
         "(fields added with defaults, removed, reordered, promoted). Empty: `schema` itself."},
        {SEC_INPUT, "key.field", PT_STR, "", 0, 0, {{0}}, IN(key_field),
         "Field (string, int or long) that keys the aggregates; empty: the Kafka message key. "
         "A key (or [group] value) longer than 65535 bytes, the most state keeps, makes the "
         "record a dead letter (class `key_too_long`)."},
        {SEC_INPUT, "time.field", PT_STR, "", 0, 0, {{0}}, IN(time_field),
         "Event-time field (long, timestamp-millis or timestamp-micros); empty: the Kafka timestamp."},
        {SEC_INPUT, "auto.offset.reset", PT_ENUM, "earliest", 0, 0,
         {{DMP_RESET_EARLIEST, "earliest"}, {DMP_RESET_LATEST, "latest"}}, IN(auto_offset_reset),
         "Where a partition without stored state starts reading: its earliest or latest "
         "offset when it is assigned (resolved before /readyz answers). A partition with "
         "stored state resumes at the stored offset whatever this says."},
        {SEC_INPUT, "idle.timeout.ms", PT_INT, "0", 0, INT64_C(1) << 40, {{0}},
         IN(idle_timeout_ms),
         "A partition that received nothing for this long (and is read to its end) advances its "
         "stream time by wall-clock time, so windows still close when data stops. 0: off "
         "(pure event time, reproducible)."},
        {SEC_INPUT, "nonfinite", PT_ENUM, "dead-letter", 0, 0,
         {{DMP_NONFINITE_DEAD_LETTER, "dead-letter"}, {DMP_NONFINITE_ACCEPT, "accept"}},
         IN(nonfinite),
         "A numeric field that measures read holding NaN or +-Infinity. dead-letter: the record "
         "is rejected (class `nonfinite`: counted, copied to dlq.topic) and updates nothing; "
         "accept: the value is used as it is (one NaN makes the window's sum and mean NaN)."},
        {SEC_INPUT, "registry.url", PT_STR, "", 0, 0, {{0}}, IN(registry_url),
         "Schema registry (Confluent REST API) base URL, http(s)://host:port (format=confluent). "
         "Results are then framed in the Confluent wire format, their schema registered as "
         "<output topic>-value."},
        {SEC_INPUT, "registry.basic.auth.user.info", PT_STR, "", 0, 0, {{0}}, IN(registry_auth),
         "Basic authentication for the registry, `user:password`; empty: none."},
        {SEC_INPUT, "registry.ssl.ca.location", PT_STR, "", 0, 0, {{0}}, IN(registry_ca),
         "CA bundle (PEM) that verifies an https registry; empty: the system's."},
        {SEC_INPUT, "registry.timeout.ms", PT_INT, "5000", 100, 600000, {{0}},
         IN(registry_timeout_ms), "Timeout of one registry request (3 retries with backoff follow "
         "a failure)."},
        {SEC_INPUT, "registry.pause.ms", PT_INT, "1000", 10, 600000, {{0}}, IN(registry_pause_ms),
         "While the registry does not answer, a partition that needs a schema from it is "
         "paused (not skipped) and tried again after this long."},
        {SEC_INPUT, "registry.cache.size", PT_INT, "1000", 1, 1000000, {{0}},
         IN(registry_cache_size),
         "Writer schemas (each with its compiled decoder) kept, by id; beyond it the least "
         "recently used is dropped and fetched again when needed. An unknown id is remembered "
         "as unknown for 10 s."},
        {SEC_INPUT, "registry.startup.timeout.ms", PT_INT, "300000", 0, INT64_C(1) << 40, {{0}},
         IN(registry_startup_timeout_ms),
         "At startup dmpflow registers its output schemas; while the registry does not answer "
         "(no connection, a timeout, HTTP 5xx) it tries again with backoff, consuming nothing "
         "and not ready on /readyz, for at most this long, then exits with code 1. 0: waits "
         "as long as it takes. An answer that refuses (bad credentials, an incompatible "
         "schema) is an error at once."},
        {SEC_INPUT, "startup.timeout.ms", PT_INT, "0", 0, INT64_C(1) << 40, {{0}},
         IN(startup_timeout_ms),
         "At startup dmpflow waits for the Kafka cluster to answer before it subscribes: "
         "it tries again with backoff (1 s doubling to 30 s, a log line per try), not ready "
         "on /readyz (which says why), for at most this long, then exits with code 1. 0: "
         "waits as long as it takes (a daemon outlives a broker that starts after it)."},
        {SEC_STATE, "dir", PT_STR, "./state", 0, 0, {{0}}, ST(dir),
         "RocksDB state directory (aggregates of open windows and the input offsets they reflect)."},
        {SEC_STATE, "commit.interval.ms", PT_INT, "1000", 10, 3600000, {{0}},
         ST(commit_interval_ms),
         "Interval between commits: dirty state, stream times and offsets are written atomically."},
        {SEC_STATE, "memory.budget", PT_BYTES, "0", 0, INT64_C(1) << 50, {{0}}, ST(memory_budget),
         "Memory for state, shared by the in-memory entries (3/4), RocksDB's block cache (1/8) "
         "and its memtables (1/8); e.g. 64m, 2g. Past it dmpflow commits early. 0: half the "
         "cgroup memory limit (memory.max, or cgroup v1's limit_in_bytes), else 1g. "
         "docs/STATE.md states the margin."},
        {SEC_STATE, "guarantee", PT_ENUM, "at_least_once", 0, 0,
         {{DMP_AT_LEAST_ONCE, "at_least_once"}, {DMP_EXACTLY_ONCE, "exactly_once"}},
         ST(guarantee),
         "at_least_once: state and input offsets never lose or double-count an event; results "
         "published since the last commit are published again after a crash or a move "
         "(identical copies). exactly_once: each commit is one Kafka transaction holding the "
         "results, group results, patterns, late and dead-letter copies, the changelog records "
         "and the input offsets, so consumers with isolation.level=read_committed see every "
         "result exactly once; needs changelog.enable. docs/STATE.md."},
        {SEC_STATE, "changelog.enable", PT_ENUM, "true", 0, 0, {{1, "true"}, {0, "false"}},
         ST(changelog_enable),
         "Every state change also goes to a compacted changelog topic, written with the input "
         "offsets in one transaction at each commit; a partition that moves to another "
         "instance, or whose local state is missing or behind, is restored from it instead of "
         "re-reading its input. false: the local state only (a moved partition is read again "
         "from auto.offset.reset)."},
        {SEC_STATE, "changelog.topic", PT_STR, "", 0, 0, {{0}}, ST(changelog_topic),
         "The changelog topic, created at startup if absent (cleanup.policy=compact, as many "
         "partitions as the input topic); empty: <group.id>-changelog."},
        {SEC_STATE, "changelog.replication.factor", PT_INT, "-1", -1, 32767, {{0}},
         ST(changelog_replication_factor),
         "Replication factor of the changelog topic when dmpflow creates it; -1: the broker's "
         "default.replication.factor."},
        {SEC_STATE, "on.offset.mismatch", PT_ENUM, "stop", 0, 0,
         {{DMP_MISMATCH_STOP, "stop"}, {DMP_MISMATCH_RESET, "reset"}}, ST(on_offset_mismatch),
         "A partition whose stored next offset is beyond its log end offset (the input topic "
         "was deleted and re-created, the state directory points at another cluster, the log "
         "was truncated after an unclean leader election): its state is of input that is not "
         "there. stop: exit with code 2, naming the partition and both offsets; reset: "
         "discard that partition's state and start it over (auto.offset.reset). Either way "
         "it is logged and counted (dmpflow_offset_mismatches_total). A stored offset below "
         "the log start offset (retention deleted unread input) is a warning and "
         "dmpflow_input_records_lost_total; the partition resumes at the log start."},
        {SEC_OUTPUT, "topic", PT_STR, NULL, 0, 0, {{0}}, OUT(topic),
         "Topic of the window results (schemas/window_result.avsc), keyed by the key and "
         "partitioned by it as the Java client does (murmur2; [kafka] partitioner to change) "
         "(required)."},
        {SEC_OUTPUT, "late.topic", PT_STR, "", 0, 0, {{0}}, OUT(late_topic),
         "Late events (late for at least one window definition) are copied here unchanged, with "
         "headers naming their source and the windows they were late for. Empty: not copied "
         "(always counted)."},
        {SEC_OUTPUT, "dlq.topic", PT_STR, "", 0, 0, {{0}}, OUT(dlq_topic),
         "Dead-letter topic: input records that cannot be decoded go there unchanged, with "
         "headers dmpflow.source.{topic,partition,offset,timestamp} and "
         "dmpflow.error.{class,message}; empty: they are only counted and logged."},
        {SEC_LOG, "level", PT_ENUM, "info", 0, 0,
         {{DMP_LOG_ERROR, "error"}, {DMP_LOG_WARN, "warn"}, {DMP_LOG_INFO, "info"},
          {DMP_LOG_DEBUG, "debug"}}, LG(level),
         "Log level."},
        {SEC_LOG, "format", PT_ENUM, "text", 0, 0, {{DMP_LOG_TEXT, "text"}, {DMP_LOG_JSON, "json"}},
         LG(format),
         "text: `time level message` lines; json: one JSON object per line (ts, level, msg)."},
        {SEC_LOG, "file", PT_STR, "", 0, 0, {{0}}, LG(file),
         "Log file (appended to; reopened on SIGHUP, for rotation); empty: stderr."},
        {SEC_LOG, "repeat.interval.ms", PT_INT, "10000", 0, 3600000, {{0}},
         LG(repeat_interval_ms),
         "Repeated errors and warnings (a failed delivery per result, a dead letter per record, "
         "librdkafka's reconnect lines, registry errors) are written once; the next ones of "
         "the same kind within this interval are counted, and one line per interval gives "
         "their count and the first of them. 0: every line is written."},
        {SEC_HTTP, "address", PT_STR, "127.0.0.1", 0, 0, {{0}}, HT(address),
         "IPv4 address the endpoint listens on (0.0.0.0: every interface, e.g. in a container)."},
        {SEC_HTTP, "port", PT_INT, "0", 0, 65535, {{0}}, HT(port),
         "TCP port of the endpoint; 0: no endpoint."},
        {SEC_HTTP, "auth.user.info", PT_STR, "", 0, 0, {{0}}, HT(auth_user_info),
         "Basic authentication, `user:password`, for every route but /healthz and /readyz "
         "(probes); empty: none. Use it with TLS in front when the endpoint leaves the host."},
        {SEC_MEASURE, "expr", PT_STR, NULL, 0, 0, {{0}}, MS(expr),
         "Weighted sum of numeric fields, e.g. `0.7*price + 0.3*quantity` (required)."},
        {SEC_WINDOW, "type", PT_ENUM, "tumbling", 0, 0,
         {{DMP_WINDOW_TUMBLING, "tumbling"}, {DMP_WINDOW_HOPPING, "hopping"},
          {DMP_WINDOW_SLIDING, "sliding"}, {DMP_WINDOW_SESSION, "session"}}, WN(type),
         "Window kind. Results are half-open [start, end) in epoch ms. tumbling and hopping are "
         "aligned to epoch 0; sliding is Kafka Streams' SlidingWindows; session windows merge "
         "events closer than gap.ms."},
        {SEC_WINDOW, "size.ms", PT_INT, "0", 0, INT64_C(1) << 50, {{0}}, WN(size_ms),
         "tumbling, hopping: window size (required). sliding: the time difference D; windows are "
         "[s, s+D] inclusive, reported as [s, s+D+1)."},
        {SEC_WINDOW, "advance.ms", PT_INT, "0", 0, INT64_C(1) << 50, {{0}}, WN(advance_ms),
         "Hopping windows: advance in ms, 0 < advance <= size (required for hopping)."},
        {SEC_WINDOW, "gap.ms", PT_INT, "0", 0, INT64_C(1) << 50, {{0}}, WN(gap_ms),
         "session: inactivity gap (required); events at most gap.ms apart are one session."},
        {SEC_WINDOW, "grace.ms", PT_INT, "0", 0, INT64_C(1) << 50, {{0}}, WN(grace_ms),
         "A window closes when the partition's stream time >= end + grace (a session: end + "
         "gap + grace)."},
        {SEC_WINDOW, "retention.ms", PT_INT, "0", 0, INT64_C(1) << 50, {{0}}, WN(retention_ms),
         "How long a closed window stays in state after its final result (for queries)."},
        {SEC_WINDOW, "measures", PT_STR, "", 0, 0, {{0}}, WN(measures),
         "Comma-separated measure names aggregated in this window; empty: all measures."},
        {SEC_WINDOW, "emit", PT_ENUM, "final", 0, 0,
         {{DMP_EMIT_FINAL, "final"}, {DMP_EMIT_UPDATE, "update"}}, WN(emit),
         "final: exactly one result per key, window and measure, when the window closes. "
         "update: a result per changed window at each commit, and its last one (final = true) "
         "when it closes."},
        {SEC_GROUP, "field", PT_STR, "", 0, 0, {{0}}, GR(field),
         "Event field (string, int or long) whose value is the group, e.g. segment. Either "
         "this or bucket.measure."},
        {SEC_GROUP, "bucket.measure", PT_STR, "", 0, 0, {{0}}, GR(bucket_measure),
         "Group by a measure's value in buckets of bucket.width: the group is "
         "floor(value / width) * width."},
        {SEC_GROUP, "bucket.width", PT_DOUBLE, "", 0, 0, {{0}}, GR(bucket_width),
         "Bucket width (a positive number) for bucket.measure."},
        {SEC_GROUP, "measures", PT_STR, "", 0, 0, {{0}}, GR(measures),
         "Comma-separated measures whose statistics are kept per group; empty: all."},
        {SEC_GROUP, "windows", PT_STR, "", 0, 0, {{0}}, GR(windows),
         "Comma-separated tumbling or hopping window definitions for windowed group statistics "
         "(final results when the window has closed on every partition); empty: running "
         "statistics only."},
        {SEC_GROUP, "topic", PT_STR, NULL, 0, 0, {{0}}, GR(topic),
         "Topic of the group results (schemas/group_result.avsc), keyed by the group value: "
         "running statistics at most once per group per commit interval when they changed, "
         "windowed ones when the window closes (required)."},
        {SEC_PATTERN, "kind", PT_ENUM, NULL, 0, 0,
         {{DMP_PATTERN_TOPK, "topk"}, {DMP_PATTERN_ANOMALY, "anomaly"},
          {DMP_PATTERN_THRESHOLD, "threshold"}}, PA(kind),
         "topk: the k highest (or lowest) values of the window. anomaly: a value more than z "
         "standard deviations from the mean of the same key's or group's values in its previous "
         "windows. threshold: a value above or below a bound (for consecutive windows)."},
        {SEC_PATTERN, "window", PT_STR, NULL, 0, 0, {{0}}, PA(window),
         "The window definition whose closed windows are mined (required)."},
        {SEC_PATTERN, "source", PT_STR, "key", 0, 0, {{0}}, PA(source),
         "What is mined: `key` (the window results of the keys) or `group:NAME` (the windowed "
         "statistics of [group NAME], which must list the window)."},
        {SEC_PATTERN, "measure", PT_STR, NULL, 0, 0, {{0}}, PA(measure),
         "The measure whose statistic is mined (required)."},
        {SEC_PATTERN, "stat", PT_ENUM, "mean", 0, 0,
         {{DMP_STAT_MEAN, "mean"}, {DMP_STAT_SUM, "sum"}, {DMP_STAT_COUNT, "count"},
          {DMP_STAT_MIN, "min"}, {DMP_STAT_MAX, "max"}}, PA(stat),
         "The statistic of the window that is the value mined."},
        {SEC_PATTERN, "k", PT_INT, "1", 1, 10000, {{0}}, PA(k),
         "topk: how many (k = 1: the maximum)."},
        {SEC_PATTERN, "order", PT_ENUM, "desc", 0, 0,
         {{DMP_ORDER_DESC, "desc"}, {DMP_ORDER_ASC, "asc"}}, PA(order),
         "topk: desc ranks the highest values first, asc the lowest."},
        {SEC_PATTERN, "z", PT_DOUBLE, "3", 0, 0, {{0}}, PA(z),
         "anomaly: the distance from the mean, in standard deviations, beyond which a value is "
         "an anomaly (a positive number)."},
        {SEC_PATTERN, "min.count", PT_INT, "5", 2, 1000000000, {{0}}, PA(min_count),
         "anomaly: previous windows needed before a value can be an anomaly."},
        {SEC_PATTERN, "above", PT_DOUBLE, "", 0, 0, {{0}}, PA(above),
         "threshold: values strictly above this bound match."},
        {SEC_PATTERN, "below", PT_DOUBLE, "", 0, 0, {{0}}, PA(below),
         "threshold: values strictly below this bound match."},
        {SEC_PATTERN, "consecutive", PT_INT, "1", 1, 1000000, {{0}}, PA(consecutive),
         "threshold: report once a key or group has matched in this many consecutive windows of "
         "its own (and in each further one)."},
        {SEC_PATTERN, "topic", PT_STR, NULL, 0, 0, {{0}}, PA(topic),
         "Topic of the pattern records (schemas/pattern.avsc), keyed by the group or key "
         "(required)."},
};

/* Index of a property within its section (indexes the section's line[]). */
static int prop_slot(const prop_t *p) {
        int slot = 0;
        for (const prop_t *q = props; q < p; q++)
                if (q->sec == p->sec)
                        slot++;
        return slot;
}

static const prop_t *prop_find(sec_kind_t sec, const char *name) {
        for (size_t i = 0; i < DMP_ARRAY_SIZE(props); i++)
                if (props[i].sec == sec && !strcmp(props[i].name, name))
                        return &props[i];
        return NULL;
}

static const char *prop_suggest(sec_kind_t sec, const char *name) {
        const char *best = NULL;
        int best_d = 4;
        for (size_t i = 0; i < DMP_ARRAY_SIZE(props); i++) {
                if (props[i].sec != sec)
                        continue;
                int d = dmp_edit_distance(name, props[i].name);
                if (d < best_d) {
                        best_d = d;
                        best = props[i].name;
                }
        }
        return best;
}

void dmp_conf_error(dmp_conf_t *conf, int line, const char *fmt, ...) {
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        char full[1400];
        int n;
        if (line > 0)
                n = snprintf(full, sizeof(full), "%s:%d: %s\n", conf->path, line, msg);
        else if (line < 0) /* an -o override */
                n = snprintf(full, sizeof(full), "-o: %s\n", msg);
        else
                n = snprintf(full, sizeof(full), "%s: %s\n", conf->path, msg);
        if (n < 0)
                return;
        if ((size_t)n >= sizeof(full))
                n = sizeof(full) - 1;
        conf->errors = dmp_realloc(conf->errors, conf->errors_len + (size_t)n + 1);
        memcpy(conf->errors + conf->errors_len, full, (size_t)n + 1);
        conf->errors_len += (size_t)n;
        conf->error_cnt++;
}

static void *sec_instance(dmp_conf_t *conf, sec_kind_t sec, int idx) {
        switch (sec) {
        case SEC_INPUT: return &conf->input;
        case SEC_STATE: return &conf->state;
        case SEC_OUTPUT: return &conf->output;
        case SEC_LOG: return &conf->log;
        case SEC_HTTP: return &conf->http;
        case SEC_MEASURE: return &conf->measures[idx];
        case SEC_WINDOW: return &conf->windows[idx];
        case SEC_GROUP: return &conf->groups[idx];
        case SEC_PATTERN: return &conf->patterns[idx];
        default: return NULL;
        }
}

/* "a|b|c": the names of an enum property, for messages and the reference. */
static void enum_names(const prop_t *p, char *buf, size_t size) {
        size_t n = 0;
        buf[0] = '\0';
        for (int i = 0; i < PROP_S2I_MAX && p->s2i[i].str && n < size; i++)
                n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? "|" : "", p->s2i[i].str);
}

/* Parses and stores one value of section `section` (as errors name it:
 * "window w" for [window w]). Returns 0, or -1 after reporting the error. */
static int prop_set(dmp_conf_t *conf, void *obj, const prop_t *p, const char *section,
                    const char *value, int line) {
        char *field = (char *)obj + p->off;
        switch (p->type) {
        case PT_STR:
                free(*(char **)field);
                *(char **)field = dmp_strdup(value);
                return 0;
        case PT_ENUM: {
                for (int i = 0; i < PROP_S2I_MAX && p->s2i[i].str; i++)
                        if (!strcmp(p->s2i[i].str, value)) {
                                *(int *)field = p->s2i[i].val;
                                return 0;
                        }
                char names[256];
                enum_names(p, names, sizeof(names));
                dmp_conf_error(conf, line, "[%s] %s: invalid value \"%s\" (expected one of %s)",
                               section, p->name, value, names);
                return -1;
        }
        case PT_DOUBLE: {
                double v = NAN;
                if (*value && dmp_conf_parse_double(value, &v)) {
                        dmp_conf_error(conf, line, "[%s] %s: \"%s\" is not a number",
                                       section, p->name, value);
                        return -1;
                }
                *(double *)field = v;
                return 0;
        }
        case PT_INT:
        case PT_BYTES: {
                char *end;
                errno = 0;
                long long v = strtoll(value, &end, 10);
                int shift = 0;
                if (p->type == PT_BYTES && end != value && end[0] && !end[1]) {
                        const char *u = strchr("kKmMgG", end[0]);
                        shift = u ? 10 * (1 + (int)(u - "kKmMgG") / 2) : -1;
                        end += shift > 0;
                }
                if (errno || end == value || *end != '\0' || shift < 0 ||
                    (shift && (v < 0 || v > (LLONG_MAX >> shift)))) {
                        dmp_conf_error(conf, line, "[%s] %s: \"%s\" is not %s",
                                       section, p->name, value,
                                       p->type == PT_BYTES ? "a size (bytes, or with k, m, g)"
                                                           : "an integer");
                        return -1;
                }
                if (shift) /* v >= 0 here */
                        v <<= shift;
                if (v < p->min || v > p->max) {
                        dmp_conf_error(conf, line,
                                       "[%s] %s: %lld is out of range [%lld, %lld]",
                                       section, p->name, v,
                                       (long long)p->min, (long long)p->max);
                        return -1;
                }
                *(int64_t *)field = v;
                return 0;
        }
        }
        return -1;
}

static void sec_defaults(dmp_conf_t *conf, sec_kind_t sec, void *obj) {
        for (size_t i = 0; i < DMP_ARRAY_SIZE(props); i++) {
                const prop_t *p = &props[i];
                if (p->sec != sec)
                        continue;
                if (p->def)
                        prop_set(conf, obj, p, sections[sec].name, p->def, 0);
                else if (p->type == PT_ENUM) /* required: not set yet */
                        *(int *)((char *)obj + p->off) = -1;
        }
}

dmp_conf_t *dmp_conf_new(void) {
        int per_section[SEC__CNT] = {0}; /* each section's line[] has DMP_MAX_PROPS slots */
        for (size_t i = 0; i < DMP_ARRAY_SIZE(props); i++)
                if (++per_section[props[i].sec] > DMP_MAX_PROPS) {
                        fprintf(stderr, "dmpflow: bug: more than DMP_MAX_PROPS (%d) properties "
                                "in one section\n", DMP_MAX_PROPS);
                        abort();
                }
        dmp_conf_t *conf = dmp_calloc(1, sizeof(*conf));
        conf->path = dmp_strdup("(defaults)");
        sec_defaults(conf, SEC_INPUT, &conf->input);
        sec_defaults(conf, SEC_STATE, &conf->state);
        sec_defaults(conf, SEC_OUTPUT, &conf->output);
        sec_defaults(conf, SEC_LOG, &conf->log);
        sec_defaults(conf, SEC_HTTP, &conf->http);
        return conf;
}

static void sec_free(sec_kind_t sec, void *obj) {
        for (size_t i = 0; i < DMP_ARRAY_SIZE(props); i++)
                if (props[i].sec == sec && props[i].type == PT_STR)
                        free(*(char **)((char *)obj + props[i].off));
}

void dmp_conf_destroy(dmp_conf_t *conf) {
        if (!conf)
                return;
        for (int i = 0; i < conf->kafka_cnt; i++) {
                free(conf->kafka[i].name);
                free(conf->kafka[i].value);
        }
        free(conf->kafka);
        sec_free(SEC_INPUT, &conf->input);
        sec_free(SEC_STATE, &conf->state);
        sec_free(SEC_OUTPUT, &conf->output);
        sec_free(SEC_LOG, &conf->log);
        sec_free(SEC_HTTP, &conf->http);
        for (int i = 0; i < conf->measure_cnt; i++) {
                sec_free(SEC_MEASURE, &conf->measures[i]);
                free(conf->measures[i].name);
        }
        for (int i = 0; i < conf->window_cnt; i++) {
                sec_free(SEC_WINDOW, &conf->windows[i]);
                free(conf->windows[i].name);
        }
        for (int i = 0; i < conf->group_cnt; i++) {
                sec_free(SEC_GROUP, &conf->groups[i]);
                free(conf->groups[i].name);
        }
        for (int i = 0; i < conf->pattern_cnt; i++) {
                sec_free(SEC_PATTERN, &conf->patterns[i]);
                free(conf->patterns[i].name);
        }
        free(conf->errors);
        free(conf->path);
        free(conf);
}

const char *dmp_conf_kafka_get(const dmp_conf_t *conf, const char *name) {
        for (int i = conf->kafka_cnt - 1; i >= 0; i--)
                if (!strcmp(conf->kafka[i].name, name))
                        return conf->kafka[i].value;
        return NULL;
}

static int valid_name(const char *s) {
        if (!*s)
                return 0;
        for (; *s; s++)
                if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
                        return 0;
        return 1;
}

static int sec_kind_of(const char *kind) {
        for (int i = 0; i < SEC__CNT; i++)
                if (!strcmp(sections[i].name, kind))
                        return i;
        return -1;
}

/* Splits "[kind name]" into kind and name (name may be NULL). */
static void split_section(const char *section, char *kind, size_t kind_size,
                          const char **name) {
        size_t kl = strcspn(section, " \t");
        if (kl >= kind_size)
                kl = kind_size - 1;
        memcpy(kind, section, kl);
        kind[kl] = '\0';
        *name = NULL;
        if (section[kl]) {
                const char *n = section + kl;
                while (*n == ' ' || *n == '\t')
                        n++;
                if (*n)
                        *name = n;
        }
}

/* The instances of a named section kind: their count, capacity, and the
 * name and header line of instance i. */
static int *named_cnt(dmp_conf_t *conf, sec_kind_t sec, int *max) {
        switch (sec) {
        case SEC_MEASURE: *max = DMP_MAX_MEASURES; return &conf->measure_cnt;
        case SEC_WINDOW: *max = DMP_MAX_WINDOWS; return &conf->window_cnt;
        case SEC_GROUP: *max = DMP_MAX_GROUPS; return &conf->group_cnt;
        default: *max = DMP_MAX_PATTERNS; return &conf->pattern_cnt;
        }
}

static char **named_name(dmp_conf_t *conf, sec_kind_t sec, int i, int **section_line) {
        switch (sec) {
        case SEC_MEASURE:
                *section_line = &conf->measures[i].section_line;
                return &conf->measures[i].name;
        case SEC_WINDOW:
                *section_line = &conf->windows[i].section_line;
                return &conf->windows[i].name;
        case SEC_GROUP:
                *section_line = &conf->groups[i].section_line;
                return &conf->groups[i].name;
        default:
                *section_line = &conf->patterns[i].section_line;
                return &conf->patterns[i].name;
        }
}

/* Finds or creates the instance of a named section; -1 on error. */
static int named_instance(dmp_conf_t *conf, sec_kind_t sec, const char *name, int line) {
        int max, *sl;
        int *cnt = named_cnt(conf, sec, &max);
        for (int i = 0; i < *cnt; i++)
                if (!strcmp(*named_name(conf, sec, i, &sl), name))
                        return i;
        if (!valid_name(name)) {
                dmp_conf_error(conf, line, "[%s %s]: invalid name (use letters, digits, _ - .)",
                               sections[sec].name, name);
                return -1;
        }
        if (*cnt >= max) {
                dmp_conf_error(conf, line, "too many [%s] sections (at most %d)",
                               sections[sec].name, max);
                return -1;
        }
        int idx = (*cnt)++;
        *named_name(conf, sec, idx, &sl) = dmp_strdup(name);
        *sl = line;
        sec_defaults(conf, sec, sec_instance(conf, sec, idx));
        return idx;
}

/* Stores one "name = value" of "[section]" found at `line` (-1: command line).
 * In files, bad section headers were reported by the reader: their
 * properties are ignored here. */
static void conf_set(dmp_conf_t *conf, const char *section, const char *name,
                     const char *value, int line) {
        char kind[64], label[256];
        const char *inst_name;
        split_section(section, kind, sizeof(kind), &inst_name);
        int sec = sec_kind_of(kind);
        if (sec < 0 || sections[sec].named != (inst_name != NULL)) {
                if (line < 0)
                        dmp_conf_error(conf, line, "unknown or malformed section \"%s\"",
                                       section);
                return;
        }
        /* the section as messages name it: always in full ("window w") */
        snprintf(label, sizeof(label), "%s%s%s", kind, inst_name ? " " : "",
                 inst_name ? inst_name : "");
        section = label;

        if (sec == SEC_KAFKA) {
                conf->kafka = dmp_realloc(conf->kafka,
                                          sizeof(*conf->kafka) * (size_t)(conf->kafka_cnt + 1));
                conf->kafka[conf->kafka_cnt].name = dmp_strdup(name);
                conf->kafka[conf->kafka_cnt].value = dmp_strdup(value);
                conf->kafka[conf->kafka_cnt].line = line;
                conf->kafka_cnt++;
                return;
        }

        const prop_t *p = prop_find(sec, name);
        if (!p) {
                const char *near = prop_suggest(sec, name);
                if (near)
                        dmp_conf_error(conf, line, "[%s] unknown property \"%s\" (did you mean \"%s\"?)",
                                       section, name, near);
                else
                        dmp_conf_error(conf, line, "[%s] unknown property \"%s\"", section, name);
                return;
        }
        int idx = 0;
        if (sections[sec].named && line > 0 && !valid_name(inst_name))
                return; /* reported at the header */
        if (sections[sec].named && (idx = named_instance(conf, sec, inst_name, line)) < 0)
                return;
        void *obj = sec_instance(conf, sec, idx);
        int *lines = (int *)((char *)obj + sections[sec].line_off);
        int slot = prop_slot(p);
        if (line > 0 && lines[slot] > 0) {
                dmp_conf_error(conf, line, "[%s] %s is set twice (first at line %d)", section,
                               name, lines[slot]);
                return;
        }
        if (prop_set(conf, obj, p, section, value, line) == 0)
                lines[slot] = line;
}

/* inih gives the handler no line number (Debian builds it without
 * INI_HANDLER_LINENO) and reads lines into a fixed 200-byte buffer, so lines
 * are read here, by the reader callback, which:
 *   - counts lines: inih calls the handler right after reading the line
 *     that holds the value;
 *   - strips indentation, so indented lines are properties, not inih's
 *     continuation lines;
 *   - sees section headers, so named sections get their header's line and
 *     bad headers are reported there;
 *   - passes a value too long for inih's buffer out of band: inih gets
 *     "name = \x01N" and the handler substitutes long value N. */
#define LONG_VALUE_MARK '\x01'

typedef struct parse_ctx {
        dmp_conf_t *conf;
        int line;
        FILE *fp;           /* file source, or */
        const char *text;   /* string source */
        char *buf;          /* the current line */
        size_t buf_cap;
        char **long_values;
        int long_cnt;
        int stopped; /* after a structural error: the rest is not read */
} parse_ctx_t;

/* A section header seen at line: checks it, creates named instances. */
static void section_seen(dmp_conf_t *conf, const char *header, size_t len, int line) {
        char section[256], kind[64];
        const char *name;
        if (len >= sizeof(section))
                len = sizeof(section) - 1;
        memcpy(section, header, len);
        section[len] = '\0';
        while (len > 0 && (section[len - 1] == ' ' || section[len - 1] == '\t'))
                section[--len] = '\0';
        split_section(section, kind, sizeof(kind), &name);
        int sec = sec_kind_of(kind);
        if (sec < 0) {
                dmp_conf_error(conf, line, "unknown section [%s] (sections: kafka, input, "
                               "state, output, log, measure NAME, window NAME)", section);
                return;
        }
        if (sections[sec].named && !name)
                dmp_conf_error(conf, line, "section [%s] needs a name: [%s NAME]", kind, kind);
        else if (!sections[sec].named && name)
                dmp_conf_error(conf, line, "section [%s] takes no name", kind);
        else if (sections[sec].named)
                named_instance(conf, (sec_kind_t)sec, name, line);
}

/* Reads the next whole line into ctx->buf; NULL at the end. A line of a
 * file that holds a NUL byte is reported and read as a comment (C strings
 * would end there and silently drop the rest). */
static char *read_line(parse_ctx_t *ctx) {
        if (ctx->fp) {
                ssize_t n = getline(&ctx->buf, &ctx->buf_cap, ctx->fp);
                if (n < 0)
                        return NULL;
                if (memchr(ctx->buf, '\0', (size_t)n)) {
                        dmp_conf_error(ctx->conf, ctx->line + 1,
                                       "the line holds a NUL byte (is this a text file?)");
                        snprintf(ctx->buf, ctx->buf_cap, "#\n");
                }
                return ctx->buf;
        }
        if (!*ctx->text)
                return NULL;
        size_t l = strcspn(ctx->text, "\n");
        if (ctx->text[l] == '\n')
                l++;
        if (l + 1 > ctx->buf_cap) {
                ctx->buf_cap = l + 1;
                ctx->buf = dmp_realloc(ctx->buf, ctx->buf_cap);
        }
        memcpy(ctx->buf, ctx->text, l);
        ctx->buf[l] = '\0';
        ctx->text += l;
        return ctx->buf;
}

/* What inih will take line (indentation stripped) for, told here so that
 * its syntax errors are found in line order: inih reports only the first,
 * after reading to the end and handing on the lines that follow it, which
 * then land in the wrong section and are reported first. Returns NULL, or
 * the error. The rules are inih's: ';' and '#' start comments, and so does
 * ';' after a space within a line; a header is '[' ... ']'; else a name
 * ends at '=' or ':'. */
static const char *structural_error(const char *line) {
        if (!*line || strchr(";#\r\n", *line))
                return NULL;
        const char *s = line;
        int was_space = 0;
        for (; *s && *s != '\n' && *s != '\r'; s++) {
                if (*line != '[' && (*s == '=' || *s == ':'))
                        return NULL;
                if (*line == '[' && *s == ']')
                        return NULL;
                if (was_space && *s == ';')
                        break;
                was_space = *s == ' ' || *s == '\t';
        }
        if (*line == '[')
                return "a section header without its closing ]";
        while (s > line && (s[-1] == ' ' || s[-1] == '\t'))
                s--;
        return s == line ? NULL : "syntax error (expected [section] or name = value)";
}

static char *ctx_reader(char *str, int num, void *stream) {
        parse_ctx_t *ctx = stream;
        if (ctx->stopped)
                return NULL;
        char *line = read_line(ctx);
        if (!line)
                return NULL;
        ctx->line++;
        if (ctx->line == 1 && !strncmp(line, "\xEF\xBB\xBF", 3)) /* a UTF-8 BOM (inih skips it) */
                line += 3;
        while (*line == ' ' || *line == '\t')
                line++;
        const char *bad = structural_error(line);
        if (bad) { /* what follows would be misread: stop here */
                dmp_conf_error(ctx->conf, ctx->line, "%s; the rest of the file is not read",
                               bad);
                ctx->stopped = 1;
                return NULL;
        }
        if (*line == '[') {
                size_t close = strcspn(line, "]");
                if (line[close] == ']')
                        section_seen(ctx->conf, line + 1, close - 1, ctx->line);
        }
        size_t len = strlen(line);
        if (len + 1 > (size_t)num) {
                size_t eq = strcspn(line, "=:");
                if (!line[eq] || eq + 16 > (size_t)num) {
                        dmp_conf_error(ctx->conf, ctx->line, "line is too long to parse");
                        snprintf(str, (size_t)num, "#\n");
                        return str;
                }
                /* The value, trimmed, without an inline " ;comment". */
                const char *v = line + eq + 1;
                while (*v == ' ' || *v == '\t')
                        v++;
                size_t vl = strcspn(v, "\r\n");
                const char *sc = strstr(v, " ;");
                if (sc && (size_t)(sc - v) < vl)
                        vl = (size_t)(sc - v);
                while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                        vl--;
                ctx->long_values = dmp_realloc(ctx->long_values,
                                               sizeof(char *) * (size_t)(ctx->long_cnt + 1));
                ctx->long_values[ctx->long_cnt] = dmp_strndup(v, vl);
                snprintf(str, (size_t)num, "%.*s= %c%d\n", (int)eq, line, LONG_VALUE_MARK,
                         ctx->long_cnt++);
                return str;
        }
        memcpy(str, line, len + 1);
        return str;
}

static int ctx_handler(void *user, const char *section, const char *name, const char *value) {
        parse_ctx_t *ctx = user;
        if (!*section) {
                dmp_conf_error(ctx->conf, ctx->line, "\"%s\" is outside of any [section]", name);
                return 1;
        }
        if (value && value[0] == LONG_VALUE_MARK) {
                int i = atoi(value + 1);
                if (i >= 0 && i < ctx->long_cnt)
                        value = ctx->long_values[i];
        }
        conf_set(ctx->conf, section, name, value ? value : "", ctx->line);
        return 1;
}

static int conf_parse(dmp_conf_t *conf, parse_ctx_t *ctx) {
        int before = conf->error_cnt;
        int r = ini_parse_stream(ctx_reader, ctx, ctx_handler, ctx);
        if (r > 0) /* a syntax error inih found itself: returns its line */
                dmp_conf_error(conf, r, "syntax error (expected [section] or name = value)");
        else if (r < 0)
                dmp_conf_error(conf, 0, "cannot parse the file");
        for (int i = 0; i < ctx->long_cnt; i++)
                free(ctx->long_values[i]);
        free(ctx->long_values);
        free(ctx->buf);
        return conf->error_cnt - before;
}

int dmp_conf_load_file(dmp_conf_t *conf, const char *path) {
        free(conf->path);
        conf->path = dmp_strdup(path);
        FILE *fp = fopen(path, "r");
        if (!fp) {
                dmp_conf_error(conf, 0, "cannot open: %s", strerror(errno));
                return 1;
        }
        parse_ctx_t ctx = {.conf = conf, .fp = fp};
        int n = conf_parse(conf, &ctx);
        fclose(fp);
        return n;
}

int dmp_conf_load_string(dmp_conf_t *conf, const char *name, const char *text) {
        free(conf->path);
        conf->path = dmp_strdup(name);
        parse_ctx_t ctx = {.conf = conf, .text = text};
        return conf_parse(conf, &ctx);
}

int dmp_conf_set_override(dmp_conf_t *conf, const char *assignment) {
        int before = conf->error_cnt;
        const char *eq = strchr(assignment, '=');
        const char *dot = strchr(assignment, '.');
        if (!eq || !dot || dot > eq) {
                dmp_conf_error(conf, -1, "\"%s\": expected section.name=value", assignment);
                return 1;
        }
        char *section = dmp_strndup(assignment, (size_t)(dot - assignment));
        char *name = dmp_strndup(dot + 1, (size_t)(eq - dot - 1));
        int sec = sec_kind_of(section);
        if (sec >= 0 && sections[sec].named) {
                /* window.NAME.size.ms=v is "window NAME.size.ms=v": NAME ends
                 * at the first dot after which a property of the section
                 * follows (names and properties may hold dots; no property
                 * ends with another's name after a dot), else at the first. */
                char *split = strchr(name, '.');
                for (char *d = split; d; d = strchr(d + 1, '.'))
                        if (prop_find((sec_kind_t)sec, d + 1)) {
                                split = d;
                                break;
                        }
                if (!split || split == name) {
                        dmp_conf_error(conf, -1, "\"%s\": expected %s.NAME.property=value",
                                       assignment, section);
                        goto out;
                }
                char *full = dmp_malloc(strlen(section) + strlen(name) + 2);
                sprintf(full, "%s %.*s", section, (int)(split - name), name);
                memmove(name, split + 1, strlen(split + 1) + 1);
                free(section);
                section = full;
        }
        conf_set(conf, section, name, eq + 1, -1);
out:
        free(section);
        free(name);
        return conf->error_cnt - before;
}

static int line_of(const int *lines, sec_kind_t sec, const char *name) {
        const prop_t *p = prop_find(sec, name);
        return p ? lines[prop_slot(p)] : 0;
}

int dmp_conf_line(const dmp_conf_t *conf, const char *section, const char *name) {
        for (int s = 0; s < SEC__CNT; s++) {
                if (strcmp(sections[s].name, section) || sections[s].named || s == SEC_KAFKA)
                        continue;
                const void *obj = sec_instance((dmp_conf_t *)conf, (sec_kind_t)s, 0);
                return line_of((const int *)((const char *)obj + sections[s].line_off),
                               (sec_kind_t)s, name);
        }
        return 0;
}

const char *dmp_conf_enum_name(const char *section, const char *name, int v) {
        int sec = sec_kind_of(section);
        const prop_t *p = sec < 0 ? NULL : prop_find((sec_kind_t)sec, name);
        for (int i = 0; p && p->type == PT_ENUM && i < PROP_S2I_MAX && p->s2i[i].str; i++)
                if (p->s2i[i].val == v)
                        return p->s2i[i].str;
        return NULL;
}

int dmp_conf_find_measure(const dmp_conf_t *conf, const char *name, size_t len) {
        for (int i = 0; i < conf->measure_cnt; i++)
                if (strlen(conf->measures[i].name) == len &&
                    !strncmp(conf->measures[i].name, name, len))
                        return i;
        return -1;
}

int dmp_conf_find_window(const dmp_conf_t *conf, const char *name, size_t len) {
        for (int i = 0; i < conf->window_cnt; i++)
                if (strlen(conf->windows[i].name) == len &&
                    !strncmp(conf->windows[i].name, name, len))
                        return i;
        return -1;
}

int dmp_conf_find_group(const dmp_conf_t *conf, const char *name) {
        for (int i = 0; i < conf->group_cnt; i++)
                if (!strcmp(conf->groups[i].name, name))
                        return i;
        return -1;
}

int dmp_conf_parse_double(const char *s, double *out) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (!*s || *end || errno || !isfinite(v))
                return -1;
        *out = v;
        return 0;
}

/* Checks each name of a comma-separated list with find (measures or
 * windows); reports unknown ones. */
static void check_list(dmp_conf_t *conf, const char *list, int line, const char *owner,
                       const char *what, int (*find)(const dmp_conf_t *, const char *, size_t)) {
        const char *s = list, *n;
        size_t l;
        while (dmp_list_next(&s, &n, &l))
                if (find(conf, n, l) < 0)
                        dmp_conf_error(conf, line, "%s unknown %s \"%.*s\"", owner, what, (int)l,
                                       n);
}

static void validate_groups(dmp_conf_t *conf) {
        for (int i = 0; i < conf->group_cnt; i++) {
                dmp_group_conf_t *g = &conf->groups[i];
                char owner[128];
                snprintf(owner, sizeof(owner), "[group %s]", g->name);
                if (!g->topic || !*g->topic)
                        dmp_conf_error(conf, g->section_line, "%s topic is required", owner);
                else if (conf->output.topic && !strcmp(g->topic, conf->output.topic))
                        dmp_conf_error(conf, line_of(g->line, SEC_GROUP, "topic"),
                                       "%s topic must differ from [output] topic (its records "
                                       "have another schema)", owner);
                if (!*g->field == !*g->bucket_measure)
                        dmp_conf_error(conf, g->section_line,
                                       "%s needs exactly one of field and bucket.measure", owner);
                if (*g->bucket_measure) {
                        check_list(conf, g->bucket_measure,
                                   line_of(g->line, SEC_GROUP, "bucket.measure"), owner, "measure",
                                   dmp_conf_find_measure);
                        if (!(g->bucket_width > 0)) /* NAN: not set */
                                dmp_conf_error(conf,
                                               line_of(g->line, SEC_GROUP, "bucket.width") ?: g->section_line,
                                               "%s bucket.width must be a positive number", owner);
                } else if (!isnan(g->bucket_width)) {
                        dmp_conf_error(conf, line_of(g->line, SEC_GROUP, "bucket.width"),
                                       "%s bucket.width is only for bucket.measure", owner);
                }
                check_list(conf, g->measures, line_of(g->line, SEC_GROUP, "measures"), owner,
                           "measure", dmp_conf_find_measure);
                check_list(conf, g->windows, line_of(g->line, SEC_GROUP, "windows"), owner,
                           "window", dmp_conf_find_window);
        }
}

static void validate_patterns(dmp_conf_t *conf) {
        for (int i = 0; i < conf->pattern_cnt; i++) {
                dmp_pattern_conf_t *p = &conf->patterns[i];
                char owner[128];
                snprintf(owner, sizeof(owner), "[pattern %s]", p->name);
                int sl = p->section_line;
                if ((int)p->kind < 0)
                        dmp_conf_error(conf, sl, "%s kind is required", owner);
                if (!p->topic || !*p->topic) {
                        dmp_conf_error(conf, sl, "%s topic is required", owner);
                } else {
                        int clash = conf->output.topic && !strcmp(p->topic, conf->output.topic);
                        for (int g = 0; g < conf->group_cnt; g++)
                                clash |= conf->groups[g].topic &&
                                         !strcmp(p->topic, conf->groups[g].topic);
                        if (clash)
                                dmp_conf_error(conf, line_of(p->line, SEC_PATTERN, "topic"),
                                               "%s topic must differ from [output] topic and the "
                                               "[group] topics (its records have another schema)",
                                               owner);
                }
                if (!p->measure || !*p->measure)
                        dmp_conf_error(conf, sl, "%s measure is required", owner);
                else
                        check_list(conf, p->measure, line_of(p->line, SEC_PATTERN, "measure"),
                                   owner, "measure", dmp_conf_find_measure);
                int wi = -1;
                if (!p->window || !*p->window)
                        dmp_conf_error(conf, sl, "%s window is required", owner);
                else if ((wi = dmp_conf_find_window(conf, p->window, strlen(p->window))) < 0)
                        dmp_conf_error(conf, line_of(p->line, SEC_PATTERN, "window"),
                                       "%s unknown window \"%s\"", owner, p->window);
                int sline = line_of(p->line, SEC_PATTERN, "source") ?: sl;
                if (!strncmp(p->source, "group:", 6)) {
                        int gi = dmp_conf_find_group(conf, p->source + 6);
                        if (gi < 0) {
                                dmp_conf_error(conf, sline, "%s unknown group \"%s\"", owner,
                                               p->source + 6);
                        } else if (wi >= 0) {
                                const char *ws = conf->groups[gi].windows, *n = p->window, *w;
                                size_t nl = strlen(n), l;
                                int listed = 0;
                                while (dmp_list_next(&ws, &w, &l))
                                        listed |= l == nl && !strncmp(w, n, l);
                                if (!listed)
                                        dmp_conf_error(conf, sline,
                                                       "%s [group %s] has no windowed statistics "
                                                       "for window %s (add it to its windows)",
                                                       owner, p->source + 6, n);
                        }
                } else if (strcmp(p->source, "key")) {
                        dmp_conf_error(conf, sline, "%s source must be key or group:NAME (got "
                                       "\"%s\")", owner, p->source);
                }
                if (!(p->z > 0))
                        dmp_conf_error(conf, line_of(p->line, SEC_PATTERN, "z") ?: sl,
                                       "%s z must be a positive number", owner);
                if (p->kind == DMP_PATTERN_THRESHOLD && isnan(p->above) && isnan(p->below))
                        dmp_conf_error(conf, sl, "%s a threshold needs above or below", owner);
        }
}

int dmp_conf_validate(dmp_conf_t *conf) {
        int before = conf->error_cnt;
        if (!conf->input.topic || !*conf->input.topic)
                dmp_conf_error(conf, 0, "[input] topic is required");
        if (conf->input.format == DMP_FORMAT_AVRO && (!conf->input.schema || !*conf->input.schema))
                dmp_conf_error(conf, 0, "[input] schema is required for format = avro");
        if (conf->input.format == DMP_FORMAT_CONFLUENT) {
                if ((!conf->input.schema || !*conf->input.schema) && !*conf->input.reader_schema)
                        dmp_conf_error(conf, 0, "[input] reader.schema (or schema) is required "
                                       "for format = confluent");
                if (!*conf->input.registry_url)
                        dmp_conf_error(conf, 0, "[input] registry.url is required for "
                                       "format = confluent");
                else if (strncmp(conf->input.registry_url, "http://", 7) &&
                         strncmp(conf->input.registry_url, "https://", 8))
                        dmp_conf_error(conf, dmp_conf_line(conf, "input", "registry.url"),
                                       "[input] registry.url must be http://HOST:PORT or "
                                       "https://HOST:PORT");
        }
        if (!conf->output.topic || !*conf->output.topic)
                dmp_conf_error(conf, 0, "[output] topic is required");
        if (conf->state.guarantee == DMP_EXACTLY_ONCE && !conf->state.changelog_enable)
                dmp_conf_error(conf,
                               dmp_conf_line(conf, "state", "changelog.enable")
                                       ?: dmp_conf_line(conf, "state", "guarantee"),
                               "[state] guarantee = exactly_once needs changelog.enable = true "
                               "(the changelog is what restores state after an aborted "
                               "transaction)");
        if (*conf->http.auth_user_info && !strchr(conf->http.auth_user_info, ':'))
                dmp_conf_error(conf, dmp_conf_line(conf, "http", "auth.user.info"),
                               "[http] auth.user.info must be user:password");
        if (conf->measure_cnt == 0)
                dmp_conf_error(conf, 0, "at least one [measure NAME] section is required");
        if (conf->window_cnt == 0)
                dmp_conf_error(conf, 0, "at least one [window NAME] section is required");

        for (int i = 0; i < conf->measure_cnt; i++) {
                dmp_measure_conf_t *m = &conf->measures[i];
                if (!m->expr || !*m->expr)
                        dmp_conf_error(conf, m->section_line, "[measure %s] expr is required",
                                       m->name);
        }
        for (int i = 0; i < conf->window_cnt; i++) {
                dmp_window_conf_t *w = &conf->windows[i];
                int wl = w->section_line;
                if (w->type == DMP_WINDOW_SESSION) {
                        if (w->gap_ms <= 0)
                                dmp_conf_error(conf, wl, "[window %s] gap.ms is required for "
                                               "session windows", w->name);
                        if (w->size_ms != 0)
                                dmp_conf_error(conf, line_of(w->line, SEC_WINDOW, "size.ms"),
                                               "[window %s] session windows have no size.ms "
                                               "(they are as long as their events)", w->name);
                } else if (w->size_ms <= 0) {
                        dmp_conf_error(conf, wl, "[window %s] size.ms is required", w->name);
                } else if (w->gap_ms != 0) {
                        dmp_conf_error(conf, line_of(w->line, SEC_WINDOW, "gap.ms"),
                                       "[window %s] gap.ms is only for type = session", w->name);
                }
                if (w->type == DMP_WINDOW_HOPPING) {
                        int al = line_of(w->line, SEC_WINDOW, "advance.ms");
                        if (w->advance_ms <= 0 || w->advance_ms > w->size_ms)
                                dmp_conf_error(conf, al ? al : wl,
                                               "[window %s] hopping windows need 0 < advance.ms <= size.ms",
                                               w->name);
                        else if (w->size_ms / w->advance_ms > DMP_MAX_HOPS)
                                dmp_conf_error(conf, al ? al : wl,
                                               "[window %s] size.ms / advance.ms must be <= %d "
                                               "(each event updates that many windows)",
                                               w->name, DMP_MAX_HOPS);
                } else if (w->advance_ms != 0 && w->advance_ms != w->size_ms) {
                        dmp_conf_error(conf, line_of(w->line, SEC_WINDOW, "advance.ms"),
                                       "[window %s] advance.ms is only for type = hopping",
                                       w->name);
                }
                /* Every listed measure must exist. */
                char owner[128];
                snprintf(owner, sizeof(owner), "[window %s]", w->name);
                check_list(conf, w->measures, line_of(w->line, SEC_WINDOW, "measures"), owner,
                           "measure", dmp_conf_find_measure);
        }
        validate_groups(conf);
        validate_patterns(conf);
        return conf->error_cnt - before;
}

int dmp_conf_is_secret(const char *name) {
        static const char *const marks[] = {"password", "secret", "sasl.", "ssl.key",
                                            "ssl_key", "token", "basic.auth", "user.info", "credential",
                                            "private", "keystore", "oauthbearer"};
        for (size_t i = 0; i < DMP_ARRAY_SIZE(marks); i++)
                if (strstr(name, marks[i]))
                        return 1;
        return 0;
}

/* value, with the user:password@ of a URL masked. */
static void dump_value(dmp_buf_t *out, const char *v) {
        const char *scheme = strstr(v, "://"), *at = scheme ? strchr(scheme + 3, '@') : NULL;
        const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
        if (at && (!slash || at < slash)) {
                dmp_buf_append(out, v, (size_t)(scheme + 3 - v));
                dmp_buf_append(out, "[redacted]", 10);
                v = at;
        }
        dmp_buf_append(out, v, strlen(v));
}

static void dump_prop(dmp_buf_t *out, const char *sec, const char *inst, const char *name,
                      const char *value) {
        dmp_buf_printf(out, "[%s%s%s] %s = ", sec, inst ? " " : "", inst ? inst : "", name);
        if (dmp_conf_is_secret(name) && *value)
                dmp_buf_append(out, "[redacted]", 10);
        else
                dump_value(out, value);
        dmp_buf_append(out, "\n", 1);
}

static void dump_section(const dmp_conf_t *conf, dmp_buf_t *out, sec_kind_t sec, int idx,
                         const char *inst) {
        const void *obj = sec_instance((dmp_conf_t *)conf, sec, idx);
        for (size_t i = 0; i < DMP_ARRAY_SIZE(props); i++) {
                const prop_t *p = &props[i];
                if (p->sec != sec)
                        continue;
                const char *field = (const char *)obj + p->off;
                char num[32];
                const char *v = num;
                switch (p->type) {
                case PT_INT:
                case PT_BYTES:
                        snprintf(num, sizeof(num), "%lld", (long long)*(const int64_t *)field);
                        break;
                case PT_DOUBLE: {
                        double d = *(const double *)field;
                        num[0] = '\0';
                        for (int prec = 1; !isnan(d) && prec <= 17; prec++) {
                                snprintf(num, sizeof(num), "%.*g", prec, d);
                                if (strtod(num, NULL) == d) /* the shortest that reads back */
                                        break;
                        }
                        break;
                }
                case PT_ENUM:
                        v = "";
                        for (int k = 0; k < PROP_S2I_MAX && p->s2i[k].str; k++)
                                if (p->s2i[k].val == *(const int *)field)
                                        v = p->s2i[k].str;
                        break;
                case PT_STR:
                        v = *(char *const *)field ? *(char *const *)field : "";
                        break;
                }
                dump_prop(out, sections[sec].name, inst, p->name, v);
        }
}

void dmp_conf_dump(const dmp_conf_t *conf, dmp_buf_t *out) {
        for (int i = 0; i < conf->kafka_cnt; i++)
                dump_prop(out, "kafka", NULL, conf->kafka[i].name, conf->kafka[i].value);
        for (int s = SEC_INPUT; s < SEC__CNT; s++) {
                if (!sections[s].named) {
                        dump_section(conf, out, (sec_kind_t)s, 0, NULL);
                        continue;
                }
                int max, *sl;
                int cnt = *named_cnt((dmp_conf_t *)conf, (sec_kind_t)s, &max);
                for (int i = 0; i < cnt; i++)
                        dump_section(conf, out, (sec_kind_t)s, i,
                                     *named_name((dmp_conf_t *)conf, (sec_kind_t)s, i, &sl));
        }
}

void dmp_conf_print_reference(FILE *fp, int md) {
        if (md)
                fprintf(fp, "# dmpflow configuration reference\n\n"
                            "Generated by `make docs` (`dmpflow --help-config --markdown`) from "
                            "the property table in src/config.c; tests/integration/test_docs.py "
                            "fails when this file is out of date. One INI file; errors are "
                            "reported as `file:line: message` (exit code 2), unknown properties "
                            "with the nearest known one. Secrets (passwords, keys, SASL and "
                            "registry credentials) are never printed.\n");
        for (int s = 0; s < SEC__CNT; s++) {
                if (md)
                        fprintf(fp, "\n## [%s%s]\n\n%s.\n\n", sections[s].name,
                                sections[s].named ? " NAME" : "", sections[s].help);
                else
                        fprintf(fp, "\n[%s%s]  %s\n", sections[s].name,
                                sections[s].named ? " NAME" : "", sections[s].help);
                if (md && s != SEC_KAFKA)
                        fprintf(fp, "| property | type | default | range | description |\n"
                                    "|---|---|---|---|---|\n");
                for (size_t i = 0; i < DMP_ARRAY_SIZE(props); i++) {
                        const prop_t *p = &props[i];
                        if ((int)p->sec != s)
                                continue;
                        char range[64] = "";
                        if (p->type == PT_INT || p->type == PT_BYTES)
                                snprintf(range, sizeof(range), "%lld..%lld", (long long)p->min,
                                         (long long)p->max);
                        else if (p->type == PT_ENUM)
                                enum_names(p, range, sizeof(range));
                        const char *type = p->type == PT_INT      ? "integer"
                                           : p->type == PT_BYTES  ? "bytes"
                                           : p->type == PT_ENUM   ? "enum"
                                           : p->type == PT_DOUBLE ? "number"
                                                                  : "string";
                        const char *def = p->def ? p->def : "(required)";
                        if (md)
                                fprintf(fp, "| `%s` | %s | `%s` | %s | %s |\n", p->name, type,
                                        def, range, p->help);
                        else
                                fprintf(fp, "  %-20s %-8s default: %-10s %s\n      %s\n", p->name,
                                        type, *def ? def : "\"\"", range, p->help);
                }
        }
}
